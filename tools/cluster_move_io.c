/* cluster_move_io.c -- what `reel cluster move` talks to (cluster_move.h): the cells over
 * HTTP (libcurl, one handle, a timeout on every call: a stopped cell must not stop the
 * move), the sinks' PostgreSQL (checkpoints and shard fences), the map file and nginx.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "store/json.h"
#include "tools/cluster_move.h"
#include "tools/cmds.h"

/* ---- small helpers ---- */

double move_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void move_step(const move_t *mv, int n, const char *fmt, ...)
{
    if (mv->st->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "reel cluster move: [%5.2f s] step %d/8: ", move_now_s() - mv->t0, n);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- HTTP to the cells (libcurl, one handle) ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    store_buf_put(&((answer_t *)arg)->body, p, size * n);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    answer_t *a = arg;
    size_t len = size * n;
    if (len > 19 && !strncasecmp(p, "Reel-Cluster-Epoch:", 19))
        snprintf(a->epoch, sizeof a->epoch, "%llu", strtoull(p + 19, NULL, 10));
    return len;
}

int move_call(move_t *mv, size_t ci, const char *method, const char *path, const char *body,
              size_t len, long timeout_ms, answer_t *a)
{
    char url[CLUSTER_ADDR_MAX + 200], auth[600];
    struct curl_slist *h = NULL;
    snprintf(url, sizeof url, "http://%s%s", mv->m->cells[ci].address, path);
    store_buf_clear(&a->body);
    a->status = 0, a->epoch[0] = 0, a->error[0] = 0;
    CURL *c = mv->c;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)mv->st->cell_timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (mv->st->token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %.500s", mv->st->token);
        h = curl_slist_append(h, auth);
    }
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        snprintf(a->error, sizeof a->error, "%s", curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a->status);
    return 0;
}

/* The problem's detail of an answer, or its first bytes. */
static const char *detail(answer_t *a)
{
    const char *v;
    size_t n;
    static char out[400];
    const char *b = store_buf_cstr(&a->body);
    if (!cmd_json_member(b, a->body.len, "detail", &v, &n))
        snprintf(out, sizeof out, "%.*s", (int)(n < 390 ? n : 390), v);
    else
        snprintf(out, sizeof out, "%.200s", b);
    return out;
}

/* The integer member 'name' of the JSON object text 'json' (0 when absent). */
static uint64_t member_u64(const char *json, const char *name)
{
    const char *v;
    size_t n;
    if (cmd_json_member(json, strlen(json), name, &v, &n))
        return 0;
    return strtoull(v, NULL, 10);
}

int move_push(move_t *mv, size_t ci, const store_buf_t *map, answer_t *a)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/cluster/map?drain_ms=%llu", mv->st->drain_ms);
    long wait = (long)mv->st->drain_ms + (long)mv->st->cell_timeout_ms;
    if (move_call(mv, ci, "PUT", path, (const char *)map->data, map->len, wait, a))
        return 0;
    if (a->status != 200) {
        cmd_error(PROG, "cell '%s' refused the map: HTTP %ld: %s", mv->m->cells[ci].id,
                  a->status, detail(a));
        return -1;
    }
    const char *b = store_buf_cstr(&a->body);
    mv->cs[ci].position = member_u64(b, "position");
    mv->cs[ci].index = (uint32_t)member_u64(b, "change_index");
    if (!strstr(b, "\"drained\":true")) {
        cmd_error(PROG, "cell '%s' took the map but its writes under the old epoch did not end "
                  "within %llu ms (--drain-ms)", mv->m->cells[ci].id, mv->st->drain_ms);
        return -1;
    }
    return 1;
}

/* ---- PostgreSQL: the sink rows and the fences ---- */

PGresult *move_pq(move_t *mv, const char *fmt, int n, const char *const *params,
                    ExecStatusType want, const char *what)
{
    char sql[1200];
    snprintf(sql, sizeof sql, fmt, mv->st->schema);
    PGresult *res = PQexecParams(mv->pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != want) {
        cmd_error(PROG, "PostgreSQL: %s: %s", what, PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

static int pq_cmd(move_t *mv, const char *sql, const char *what)
{
    PGresult *res = move_pq(mv, sql, 0, NULL, PGRES_COMMAND_OK, what);
    PQclear(res);
    return res ? 0 : -1;
}

/* The checkpoint of cell 'ci''s sink: 1 found, 0 no row, -1 failed. 'lock' within a
 * transaction: FOR UPDATE (the lock every page of that sink takes first). */
int move_checkpoint(move_t *mv, size_t ci, int lock, uint64_t *pos, uint32_t *index)
{
    const char *p[1] = {mv->m->cells[ci].id};
    PGresult *res = move_pq(mv, lock ? "SELECT position, change_index FROM \"%s\".sink WHERE cell = $1 "
                                  "FOR UPDATE"
                                : "SELECT position, change_index FROM \"%s\".sink WHERE cell = $1",
                       1, p, PGRES_TUPLES_OK, "reading a sink's checkpoint");
    if (!res)
        return -1;
    int found = PQntuples(res) == 1;
    if (found) {
        *pos = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
        *index = (uint32_t)strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return found;
}

/* The moved shards of old owner 'ci', as a PostgreSQL array literal "{1,2,...}". */
static void shard_array(const move_t *mv, size_t ci, store_buf_t *out)
{
    store_buf_clear(out);
    store_buf_putc(out, '{');
    int first = 1;
    for (unsigned s = 0; s < mv->m->v; s++)
        if (mv->set[s] && mv->from[s] == ci) {
            store_buf_printf(out, "%s%u", first ? "" : ",", s);
            first = 0;
        }
    store_buf_putc(out, '}');
}

/* Step 4 for old owner 'ci': its shards fenced after its drained cursor, or after its
 * sink's checkpoint when it did not answer; in one transaction under the sink row's
 * lock, so its sink's next page sees the fence and no page commits in between. */
int move_fence(move_t *mv, size_t ci, uint64_t epoch)
{
    cell_state_t *c = &mv->cs[ci];
    uint64_t pos = 0;
    uint32_t index = 0;
    if (pq_cmd(mv, "BEGIN", "beginning the fence"))
        return -1;
    int rc = move_checkpoint(mv, ci, 1, &pos, &index);
    if (rc == 0)
        cmd_error(PROG, "cell '%s' has no sink in PostgreSQL (schema %s): nothing of its shards "
                  "was ever copied, so they cannot move through it", mv->m->cells[ci].id,
                  mv->st->schema);
    if (rc == 1 && !c->handed)
        c->position = pos, c->index = index;
    store_buf_t arr = STORE_BUF_INIT;
    shard_array(mv, ci, &arr);
    char v[16], e[24], p[24], x[16];
    snprintf(v, sizeof v, "%u", mv->m->v);
    snprintf(e, sizeof e, "%llu", (unsigned long long)epoch);
    snprintf(p, sizeof p, "%llu", (unsigned long long)c->position);
    snprintf(x, sizeof x, "%u", c->index);
    const char *prm[7] = {mv->m->cells[ci].id, store_buf_cstr(&arr), v, e, p, x,
                          mv->m->cells[mv->to].id};
    PGresult *res = NULL;
    if (rc == 1) /* the new owner's own old fences of these shards end: it owns them again */
        res = move_pq(mv, "DELETE FROM \"%s\".shard_fence WHERE cell = $2 AND shard = ANY($1::int[])",
                 2, (const char *[]){prm[1], prm[6]}, PGRES_COMMAND_OK, "lifting old fences");
    if (res) {
        PQclear(res);
        res = move_pq(mv, "INSERT INTO \"%1$s\".shard_fence AS f (cell, shard, shards, epoch, position, "
                 "change_index, to_cell) SELECT $1, s, $3::int, $4::bigint, $5::bigint, "
                 "$6::bigint, $7 FROM unnest($2::int[]) s ON CONFLICT (cell, shard) DO UPDATE SET "
                 "shards = EXCLUDED.shards, epoch = EXCLUDED.epoch, position = EXCLUDED.position, "
                 "change_index = EXCLUDED.change_index, to_cell = EXCLUDED.to_cell, "
                 "created_at = now()", 7, prm, PGRES_COMMAND_OK, "recording the fences");
    }
    if (res) {
        PQclear(res);
        res = move_pq(mv, "UPDATE \"%s\".sink SET fences = fences + 1 WHERE cell IN ($1, $2)", 2,
                 (const char *[]){prm[0], prm[6]}, PGRES_COMMAND_OK, "announcing the fences");
    }
    store_buf_release(&arr);
    if (!res) {
        pq_cmd(mv, "ROLLBACK", "rolling back");
        return -1;
    }
    PQclear(res);
    return pq_cmd(mv, "COMMIT", "committing the fences");
}

/* Steps 6 and 7: a sink has copied everything up to mv->cs[ci]'s cursor. */
int move_catch_up(move_t *mv, size_t ci)
{
    cell_state_t *c = &mv->cs[ci];
    double until = move_now_s() + (double)mv->st->timeout_s;
    for (;;) {
        uint64_t pos = 0;
        uint32_t index = 0;
        if (move_checkpoint(mv, ci, 0, &pos, &index) < 0)
            return -1;
        if (pos > c->position || (pos == c->position && index >= c->index))
            return 0;
        if (move_now_s() > until) {
            cmd_error(PROG, "the sink of cell '%s' is at %llu.%u, short of %llu.%u after %llu s "
                      "(--timeout): is it running?", mv->m->cells[ci].id,
                      (unsigned long long)pos, index, (unsigned long long)c->position,
                      c->index, mv->st->timeout_s);
            return -1;
        }
        usleep(20000);
    }
}

/* ---- maps, files, nginx ---- */

/* Writes 'text' over 'path' through a synced temporary file and a rename. */
static int write_file(const char *path, const store_buf_t *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.move.tmp", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(text->data, 1, text->len, f) == text->len && fflush(f) == 0 &&
             fsync(fileno(f)) == 0;
    if (f && fclose(f))
        ok = 0;
    if (!ok || rename(tmp, path)) {
        cmd_error(PROG, "cannot write %s", path);
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The map after the move: epoch 'epoch', the shards the new owner's, 'loading' or not. */
cluster_map_t *move_next_map(const move_t *mv, uint64_t epoch, int loading, store_buf_t *text)
{
    cluster_map_t *n = cluster_map_dup(mv->m);
    if (!n)
        return NULL;
    n->epoch = epoch;
    for (unsigned s = 0; s < n->v; s++)
        if (mv->set[s]) {
            n->owner[s] = (uint16_t)mv->to;
            n->loading[s] = (uint8_t)loading;
        }
    cluster_map_recount(n);
    store_buf_clear(text);
    cluster_map_write(n, text);
    return n;
}

/* The map file, then nginx: its configuration for 'm' and a reload. */
int move_route(move_t *mv, const cluster_map_t *m, const store_buf_t *text)
{
    if (write_file(mv->st->map, text))
        return -1;
    const char *conf = mv->st->nginx_conf;
    if (!conf)
        return 0;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.move.tmp", conf);
    FILE *f = fopen(tmp, "wb");
    cluster_nginx_opt_t o = {.listen = mv->st->nginx_listen, .map_path = mv->st->map,
                             .keepalive = 64, .read_timeout_s = 3600};
    int rc = f ? cluster_nginx_conf(m, &o, f) : REEL_EIO;
    if (f && fclose(f))
        rc = REEL_EIO;
    if (rc || rename(tmp, conf)) {
        cmd_error(PROG, "cannot write the nginx configuration %s", conf);
        unlink(tmp);
        return -1;
    }
    const char *cmd = mv->st->reload ? mv->st->reload : "nginx -s reload";
    int st = system(cmd);
    if (st != 0) {
        cmd_error(PROG, "'%s' failed (status %d): nginx still routes by the old map; the cells "
                  "answer 421 for what it sends to the old owner", cmd, st);
        return -1;
    }
    return 0;
}

/* Pushes 'text' to every cell not in 'done' (best effort: those that do not answer are
 * named; they get the map from its file at their next start or SIGHUP). */
void move_push_rest(move_t *mv, const store_buf_t *text, const uint8_t *done, answer_t *a)
{
    for (size_t i = 0; i < mv->m->n_cells; i++) {
        if (done[i])
            continue;
        if (move_push(mv, i, text, a) == 0)
            fprintf(stderr, "reel cluster move: cell '%s' did not answer (%s): it gets the map "
                    "at its next start or SIGHUP\n", mv->m->cells[i].id, a->error);
    }
}

/* ---- steps 2 and 7: the load, in the new owner's process ---- */

int move_load(move_t *mv, size_t from, int precopy, answer_t *a)
{
    store_buf_t body = STORE_BUF_INIT, arr = STORE_BUF_INIT;
    shard_array(mv, from, &arr);
    store_buf_puts(&body, "{\"dsn\":");
    store_json_write_string(&body, mv->st->dsn, strlen(mv->st->dsn));
    store_buf_printf(&body, ",\"schema\":\"%s\",\"from\":\"%s\",\"precopy\":%s,"
                     "\"shards\":[%.*s]}", mv->st->schema, mv->m->cells[from].id,
                     precopy ? "true" : "false", (int)(arr.len - 2), (const char *)arr.data + 1);
    int rc = move_call(mv, (size_t)mv->to, "POST", "/v1/cluster/load", (const char *)body.data,
                  body.len, (long)mv->st->timeout_s * 1000, a);
    store_buf_release(&body);
    store_buf_release(&arr);
    if (rc || a->status != 200) {
        cmd_error(PROG, "loading the shards of '%s' into '%s' failed: %s",
                  mv->m->cells[from].id, mv->m->cells[mv->to].id,
                  rc ? a->error : detail(a));
        return -1;
    }
    const char *b = store_buf_cstr(&a->body);
    if (!precopy) /* the copy ahead's sessions are loaded again (caught up): not counted twice */
        mv->sessions += member_u64(b, "sessions");
    mv->events += member_u64(b, "events");
    if (precopy)
        mv->events_ahead += member_u64(b, "events");
    cell_state_t *t = &mv->cs[mv->to];
    uint64_t pos = member_u64(b, "position");
    if (pos > t->position)
        t->position = pos, t->index = 0;
    return 0;
}

