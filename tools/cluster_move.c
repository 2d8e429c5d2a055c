/* cluster_move.c -- `reel cluster move SHARDS --to CELL`: shards move between cells while
 * they are written, with one writer at every moment and nothing acknowledged lost
 * (docs/CLUSTER.md "Moving shards"). Also `reel cluster push MAP`: a map to every cell.
 *
 * PostgreSQL (the sink's tables) is the copy the shards move through and the fencing
 * authority. The steps, each printed as it starts:
 *
 *   1 check     the map, the shards, the cells that answer (their epoch), the sink rows
 *   2 hand over map epoch E+1 gives the shards to the new owner as "loading" (it answers
 *               503 for them); pushed to the new owner first, then to the old owners, each
 *               of which installs it (421 from then on), waits for its writes admitted under
 *               E and answers the last cursor of its log
 *   3 fence     one PostgreSQL transaction per old owner, under its sink row's lock: its
 *               shards are fenced after that cursor (or, for an old owner that did not
 *               answer, after its sink's checkpoint): its sink never copies anything of
 *               them written later (tools/sink_fence.c)
 *   4 route     the map file, the other cells, nginx (configuration and reload)
 *   5 catch up  each old owner's sink reaches its fence
 *   6 load      the new owner copies the shards' sessions from PostgreSQL, in its own
 *               process (POST /v1/cluster/load: the PostgreSQL loader on a job thread)
 *   7 activate  map epoch E+2 without "loading": pushed to the new owner first, then the
 *               others; the map file and nginx again
 *
 * An old owner that cannot be reached may be a zombie (stopped, partitioned) that wakes
 * up later with the old map and accepts writes. Under --ack replica it cannot acknowledge
 * them (its sink stops at the fence), so the move goes on; under --ack local it would
 * acknowledge them locally and it may hold acknowledged writes its sink had not copied:
 * the move refuses unless --force, and says what is lost.
 */
#include <curl/curl.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "store/json.h"
#include "tools/cmds.h"
#include "tools/sink.h"

#define PROG "cluster move"

typedef struct settings {
    const char *map, *to, *dsn, *schema, *token, *nginx_conf, *nginx_listen, *reload;
    int ack; /* 0 local, 1 replica */
    int force, quiet, resume;
    unsigned long long drain_ms, timeout_s, cell_timeout_ms;
} settings_t;

typedef struct cell_state {
    int answered;       /* it answered the health check */
    uint64_t epoch;     /* its Reel-Cluster-Epoch */
    int old_owner;      /* it owns some of the shards now */
    int handed;         /* it took epoch E+1 and drained */
    uint64_t position;  /* its last cursor after the drain, or its sink's checkpoint */
    uint32_t index;
} cell_state_t;

typedef struct move {
    const settings_t *st;
    cluster_map_t *m;    /* epoch E, as read */
    uint8_t *set;        /* the shards to move */
    uint16_t *from;      /* from[shard]: its old owner (an index into m->cells) */
    int to;              /* the new owner */
    cell_state_t *cs;
    PGconn *pg;
    CURL *c;
    double t0, pause_start, pause_end;
    unsigned n_shards;
    uint64_t sessions, events, events_ahead;
} move_t;

/* ---- small helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void step(const move_t *mv, int n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void step(const move_t *mv, int n, const char *fmt, ...)
{
    if (mv->st->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "reel cluster move: [%5.2f s] step %d/8: ", now_s() - mv->t0, n);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- HTTP to the cells (libcurl, one handle) ---- */

typedef struct answer {
    long status;
    store_buf_t body;
    char epoch[24]; /* Reel-Cluster-Epoch */
    char error[300];
} answer_t;

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

/* One request to cell 'ci'; 0 when it answered (any status: a->status), -1 when it did
 * not within 'timeout_ms' (a->error says why). */
static int call(move_t *mv, size_t ci, const char *method, const char *path, const char *body,
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

/* PUT 'map' to cell 'ci'. 1 when it took it and drained (its cursor in mv->cs[ci]),
 * 0 when it did not answer, -1 when it refused (printed). */
static int push(move_t *mv, size_t ci, const store_buf_t *map, answer_t *a)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/cluster/map?drain_ms=%llu", mv->st->drain_ms);
    long wait = (long)mv->st->drain_ms + (long)mv->st->cell_timeout_ms;
    if (call(mv, ci, "PUT", path, (const char *)map->data, map->len, wait, a))
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

static PGresult *pq(move_t *mv, const char *fmt, int n, const char *const *params,
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
    PGresult *res = pq(mv, sql, 0, NULL, PGRES_COMMAND_OK, what);
    PQclear(res);
    return res ? 0 : -1;
}

/* The checkpoint of cell 'ci''s sink: 1 found, 0 no row, -1 failed. 'lock' within a
 * transaction: FOR UPDATE (the lock every page of that sink takes first). */
static int checkpoint(move_t *mv, size_t ci, int lock, uint64_t *pos, uint32_t *index)
{
    const char *p[1] = {mv->m->cells[ci].id};
    PGresult *res = pq(mv, lock ? "SELECT position, change_index FROM \"%s\".sink WHERE cell = $1 "
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

/* The moved shards owned by cell 'ci' now, as a PostgreSQL array literal "{1,2,...}". */
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

/* Step 3 for old owner 'ci': its shards fenced after its drained cursor, or after its
 * sink's checkpoint when it did not answer; in one transaction under the sink row's
 * lock, so its sink's next page sees the fence and no page commits in between. */
static int fence(move_t *mv, size_t ci, uint64_t epoch)
{
    cell_state_t *c = &mv->cs[ci];
    uint64_t pos = 0;
    uint32_t index = 0;
    if (pq_cmd(mv, "BEGIN", "beginning the fence"))
        return -1;
    int rc = checkpoint(mv, ci, 1, &pos, &index);
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
        res = pq(mv, "DELETE FROM \"%s\".shard_fence WHERE cell = $2 AND shard = ANY($1::int[])",
                 2, (const char *[]){prm[1], prm[6]}, PGRES_COMMAND_OK, "lifting old fences");
    if (res) {
        PQclear(res);
        res = pq(mv, "INSERT INTO \"%1$s\".shard_fence AS f (cell, shard, shards, epoch, position, "
                 "change_index, to_cell) SELECT $1, s, $3::int, $4::bigint, $5::bigint, "
                 "$6::bigint, $7 FROM unnest($2::int[]) s ON CONFLICT (cell, shard) DO UPDATE SET "
                 "shards = EXCLUDED.shards, epoch = EXCLUDED.epoch, position = EXCLUDED.position, "
                 "change_index = EXCLUDED.change_index, to_cell = EXCLUDED.to_cell, "
                 "created_at = now()", 7, prm, PGRES_COMMAND_OK, "recording the fences");
    }
    if (res) {
        PQclear(res);
        res = pq(mv, "UPDATE \"%s\".sink SET fences = fences + 1 WHERE cell IN ($1, $2)", 2,
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

/* Step 5: the old owner's sink has copied everything up to its fence. */
static int catch_up(move_t *mv, size_t ci)
{
    cell_state_t *c = &mv->cs[ci];
    double until = now_s() + (double)mv->st->timeout_s;
    for (;;) {
        uint64_t pos = 0;
        uint32_t index = 0;
        if (checkpoint(mv, ci, 0, &pos, &index) < 0)
            return -1;
        if (pos > c->position || (pos == c->position && index >= c->index))
            return 0;
        if (now_s() > until) {
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
static cluster_map_t *next_map(const move_t *mv, uint64_t epoch, int loading, store_buf_t *text)
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
static int route(move_t *mv, const cluster_map_t *m, const store_buf_t *text)
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
static void push_rest(move_t *mv, const store_buf_t *text, const uint8_t *done, answer_t *a)
{
    for (size_t i = 0; i < mv->m->n_cells; i++) {
        if (done[i])
            continue;
        if (push(mv, i, text, a) == 0)
            fprintf(stderr, "reel cluster move: cell '%s' did not answer (%s): it gets the map "
                    "at its next start or SIGHUP\n", mv->m->cells[i].id, a->error);
    }
}

/* ---- step 6: the load, in the new owner's process ---- */

static int load(move_t *mv, size_t from, int precopy, answer_t *a)
{
    store_buf_t body = STORE_BUF_INIT, arr = STORE_BUF_INIT;
    shard_array(mv, from, &arr);
    store_buf_puts(&body, "{\"dsn\":");
    store_json_write_string(&body, mv->st->dsn, strlen(mv->st->dsn));
    store_buf_printf(&body, ",\"schema\":\"%s\",\"from\":\"%s\",\"precopy\":%s,"
                     "\"shards\":[%.*s]}", mv->st->schema, mv->m->cells[from].id,
                     precopy ? "true" : "false", (int)(arr.len - 2), (const char *)arr.data + 1);
    int rc = call(mv, (size_t)mv->to, "POST", "/v1/cluster/load", (const char *)body.data,
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

/* ---- the steps ---- */

/* Step 1: the shards, the cells that answer, the sink rows. 0 or an exit status. */
static int check(move_t *mv, answer_t *a)
{
    const settings_t *st = mv->st;
    cluster_map_t *m = mv->m;
    for (unsigned s = 0; s < m->v; s++) {
        if (!mv->set[s])
            continue;
        if (m->loading[s]) {
            cmd_error(PROG, "shard %u is still loading into '%s' (a move that did not finish: "
                      "docs/CLUSTER.md \"Moving shards\")", s, m->cells[m->owner[s]].id);
            return CMD_USAGE;
        }
        if (m->owner[s] == mv->to) {
            cmd_error(PROG, "shard %u already belongs to '%s'", s, st->to);
            return CMD_USAGE;
        }
        mv->from[s] = m->owner[s];
        mv->cs[m->owner[s]].old_owner = 1;
        mv->n_shards++;
    }
    for (size_t i = 0; i < m->n_cells; i++) {
        cell_state_t *c = &mv->cs[i];
        c->answered = !call(mv, i, "GET", "/v1/health", NULL, 0, (long)st->cell_timeout_ms, a) &&
                      a->status == 200;
        c->epoch = strtoull(a->epoch, NULL, 10);
        if (c->answered && c->epoch > m->epoch) {
            cmd_error(PROG, "cell '%s' serves under epoch %llu, newer than %s's %llu: the map "
                      "file is out of date", m->cells[i].id, (unsigned long long)c->epoch,
                      st->map, (unsigned long long)m->epoch);
            return CMD_FAIL;
        }
        uint64_t pos;
        uint32_t idx;
        int has = checkpoint(mv, i, 0, &pos, &idx);
        if (has < 0)
            return CMD_FAIL;
        if (c->old_owner && !has) {
            cmd_error(PROG, "cell '%s' has no sink in PostgreSQL (schema %s): run `reel sink "
                      "postgres --cell %s` first; its shards move through the sink's copy",
                      m->cells[i].id, st->schema, m->cells[i].id);
            return CMD_FAIL;
        }
        if (c->old_owner && !c->answered && !st->ack && !st->force) {
            cmd_error(PROG, "cell '%s' does not answer (%s). Under --ack local it acknowledged "
                      "writes its sink may not have copied yet (PostgreSQL holds its log up to "
                      "position %llu): moving its shards loses those, and if it is only "
                      "stopped it would go on acknowledging writes of them. --force moves them "
                      "all the same", m->cells[i].id, a->error[0] ? a->error : "not 200",
                      (unsigned long long)pos);
            return CMD_FAIL;
        }
        if (c->old_owner)
            step(mv, 1, "old owner '%s' %s; its sink is at %llu.%u", m->cells[i].id,
                 c->answered ? "answers" : "DOES NOT ANSWER (fenced at its sink's checkpoint)",
                 (unsigned long long)pos, idx);
    }
    if (!mv->cs[mv->to].answered) {
        cmd_error(PROG, "the new owner '%s' does not answer at %s", st->to,
                  m->cells[mv->to].address);
        return CMD_FAIL;
    }
    return 0;
}

/* Step 2: the new owner copies the shards' sessions while the old owners still serve
 * them; the copy after the hand-over then only catches up. */
static int copy_ahead(move_t *mv, answer_t *a)
{
    for (size_t i = 0; i < mv->m->n_cells; i++)
        if (mv->cs[i].old_owner) {
            step(mv, 2, "'%s' copies the sessions of '%s' ahead, from PostgreSQL (no pause)",
                 mv->st->to, mv->m->cells[i].id);
            if (load(mv, i, 1, a))
                return CMD_FAIL;
        }
    return 0;
}

/* Step 3: epoch E+1 ('text') to the new owner (503 for the shards from now on), then to
 * each old owner (421, after its writes in flight). */
static int hand_over(move_t *mv, uint64_t e1, const store_buf_t *text, uint8_t *done, answer_t *a)
{
    cluster_map_t *m = mv->m;
    step(mv, 3, "epoch %llu: %u shards to '%s' (loading), old owners hand over",
         (unsigned long long)e1, mv->n_shards, mv->st->to);
    mv->pause_start = now_s();
    int p = push(mv, (size_t)mv->to, text, a);
    done[mv->to] = 1;
    if (p != 1) {
        if (p == 0)
            cmd_error(PROG, "the new owner did not take the map: %s", a->error);
        return CMD_FAIL;
    }
    for (size_t i = 0; i < m->n_cells; i++) {
        if (!mv->cs[i].old_owner)
            continue;
        p = push(mv, i, text, a);
        done[i] = 1;
        if (p < 0)
            return CMD_FAIL;
        mv->cs[i].handed = p == 1;
        if (p == 0)
            step(mv, 3, "old owner '%s' did not take the map (%s): fenced at its sink's "
                 "checkpoint", m->cells[i].id, a->error);
        else
            step(mv, 3, "old owner '%s' handed over at %llu.%u", m->cells[i].id,
                 (unsigned long long)mv->cs[i].position, mv->cs[i].index);
    }
    return 0;
}

/* Steps 6 to 8: the old owners' sinks reach their fences, the new owner loads what the
 * copy ahead did not have, its sink copies it, map epoch 'e2' serves the shards. */
static int finish(move_t *mv, uint64_t e2, answer_t *a)
{
    cluster_map_t *m = mv->m;
    for (size_t i = 0; i < m->n_cells; i++)
        if (mv->cs[i].old_owner) {
            step(mv, 6, "waiting for the sink of '%s' to reach %llu.%u", m->cells[i].id,
                 (unsigned long long)mv->cs[i].position, mv->cs[i].index);
            if (catch_up(mv, i))
                return CMD_FAIL;
        }
    for (size_t i = 0; i < m->n_cells; i++)
        if (mv->cs[i].old_owner) {
            step(mv, 7, "'%s' loads the rest of the sessions of '%s' from PostgreSQL",
                 mv->st->to, m->cells[i].id);
            if (load(mv, i, 0, a))
                return CMD_FAIL;
        }
    uint64_t pos;
    uint32_t idx;
    int has = checkpoint(mv, (size_t)mv->to, 0, &pos, &idx);
    if (has < 0)
        return CMD_FAIL;
    if (has) { /* the copies in PostgreSQL under the new owner too, before they go live */
        step(mv, 7, "waiting for the sink of '%s' to reach %llu", mv->st->to,
             (unsigned long long)mv->cs[mv->to].position);
        if (catch_up(mv, (size_t)mv->to))
            return CMD_FAIL;
    } else {
        fprintf(stderr, "reel cluster move: WARNING: cell '%s' has no sink: PostgreSQL will "
                "not hold what it gets\n", mv->st->to);
    }
    store_buf_t text = STORE_BUF_INIT;
    uint8_t *done = calloc(m->n_cells, 1);
    cluster_map_t *m2 = done ? next_map(mv, e2, 0, &text) : NULL;
    int rc = m2 ? 0 : CMD_FAIL;
    if (!rc) {
        step(mv, 8, "epoch %llu: '%s' serves the shards", (unsigned long long)e2, mv->st->to);
        int p = push(mv, (size_t)mv->to, &text, a);
        mv->pause_end = now_s();
        done[mv->to] = 1;
        if (p == 0)
            cmd_error(PROG, "the new owner did not take the map: %s", a->error);
        rc = p == 1 ? 0 : CMD_FAIL;
    }
    if (!rc) {
        push_rest(mv, &text, done, a);
        rc = route(mv, m2, &text) ? CMD_FAIL : 0;
    }
    cluster_map_free(m2);
    free(done);
    store_buf_release(&text);
    return rc;
}

/* Steps 2 to 8. 0 or an exit status. */
static int run(move_t *mv, answer_t *a)
{
    cluster_map_t *m = mv->m;
    uint64_t e1 = m->epoch + 1;
    store_buf_t text = STORE_BUF_INIT;
    uint8_t *done = calloc(m->n_cells, 1);
    cluster_map_t *m1 = done ? next_map(mv, e1, 1, &text) : NULL;
    int rc = m1 ? copy_ahead(mv, a) : CMD_FAIL;
    if (!rc)
        rc = hand_over(mv, e1, &text, done, a);
    for (size_t i = 0; !rc && i < m->n_cells; i++)
        if (mv->cs[i].old_owner) {
            rc = fence(mv, i, e1) ? CMD_FAIL : 0;
            if (!rc)
                step(mv, 4, "shards of '%s' fenced after %llu.%u", m->cells[i].id,
                     (unsigned long long)mv->cs[i].position, mv->cs[i].index);
        }
    if (!rc) {
        step(mv, 5, "map file, other cells, nginx");
        push_rest(mv, &text, done, a);
        rc = route(mv, m1, &text) ? CMD_FAIL : 0;
    }
    if (!rc)
        rc = finish(mv, m->epoch + 2, a);
    if (rc)
        cmd_error(PROG, "the move stopped; what is done stays done (the fences, the maps "
                  "pushed, the map file). %s", m1 && mv->pause_start ?
                  "Once the cause is fixed, `reel cluster move SHARDS --to CELL --resume` "
                  "finishes it (docs/CLUSTER.md \"Moving shards\")" :
                  "Nothing was handed over: the shards stay where they were");
    cluster_map_free(m1);
    free(done);
    store_buf_release(&text);
    return rc;
}

/* --resume: the map says the shards are loading at the new owner (a move stopped after
 * its hand-over); the fences in PostgreSQL say whose they were and where they stop. */
static int resume(move_t *mv, answer_t *a)
{
    cluster_map_t *m = mv->m;
    char e[24];
    snprintf(e, sizeof e, "%llu", (unsigned long long)m->epoch);
    const char *prm[2] = {m->cells[mv->to].id, e};
    PGresult *res = pq(mv, "SELECT cell, shard, position, change_index FROM \"%s\".shard_fence "
                       "WHERE to_cell = $1 AND epoch = $2", 2, prm, PGRES_TUPLES_OK,
                       "reading the move's fences");
    if (!res)
        return CMD_FAIL;
    int rc = 0;
    for (int r = 0; r < PQntuples(res) && !rc; r++) {
        int ci = cluster_map_cell(m, PQgetvalue(res, r, 0));
        unsigned s = (unsigned)strtoul(PQgetvalue(res, r, 1), NULL, 10);
        if (ci < 0 || s >= m->v) {
            cmd_error(PROG, "a fence names cell '%s' or shard %u, which the map does not have",
                      PQgetvalue(res, r, 0), s);
            rc = CMD_FAIL;
        } else if (mv->set[s]) {
            mv->from[s] = (uint16_t)ci;
            mv->cs[ci].old_owner = 1;
            mv->cs[ci].position = strtoull(PQgetvalue(res, r, 2), NULL, 10);
            mv->cs[ci].index = (uint32_t)strtoull(PQgetvalue(res, r, 3), NULL, 10);
            mv->set[s] = 2; /* found */
        }
    }
    PQclear(res);
    for (unsigned s = 0; s < m->v && !rc; s++) {
        if (!mv->set[s])
            continue;
        if (mv->set[s] != 2 || m->owner[s] != mv->to || !m->loading[s]) {
            cmd_error(PROG, "shard %u is not loading into '%s' under a fence of epoch %llu: "
                      "nothing to resume for it", s, mv->st->to, (unsigned long long)m->epoch);
            rc = CMD_USAGE;
        }
        mv->set[s] = 1;
        mv->n_shards++;
    }
    mv->pause_start = now_s();
    return rc ? rc : finish(mv, m->epoch + 1, a);
}

/* ---- the command ---- */

static const char about[] =
    "Moves SHARDS (FIRST[-LAST][,...]) to cell CELL while they are written: one writer at\n"
    "every moment, nothing acknowledged lost (docs/CLUSTER.md \"Moving shards\"). The\n"
    "shards move through PostgreSQL (the sinks' tables, --dsn), which also fences the old\n"
    "owner: its sink never copies anything of them written after the move, so under\n"
    "--ack replica nothing it accepts afterwards is acknowledged. Steps (each printed):\n"
    "1 check, 2 the new owner copies the shards' sessions ahead (no pause), 3 hand over\n"
    "(epoch E+1: the new owner answers 503 for the shards, each old owner 421 once its\n"
    "writes in flight ended), 4 fence, 5 the map file, the other cells and nginx, 6 the\n"
    "old owners' sinks catch up, 7 the new owner loads the rest, 8 epoch E+2: it serves\n"
    "them. Writes to the shards pause from 3 to 8. The cells need an admin token\n"
    "(--token). Exit status 0 when the shards moved, 1 when a step failed (what was done\n"
    "stays done; the message says how to go on), 2 for bad arguments.\n";

static int parse(settings_t *st, int argc, char **argv, int *nargs)
{
    const opt_t rows[] = {
        {.name = "to", .type = OPT_STRING, .arg = "CELL", .dest = &st->to, .required = 1,
         .help = "the cell that gets the shards (in the map; a spare or an owner)"},
        {.name = "map", .type = OPT_STRING, .arg = "MAP", .env = "REEL_CLUSTER_MAP",
         .dest = &st->map, .required = 1,
         .help = "the cluster map file; rewritten with each new epoch"},
        {.name = "dsn", .type = OPT_STRING, .arg = "DSN", .env = "REEL_SINK_DSN",
         .dest = &st->dsn, .required = 1, .help = "the sinks' PostgreSQL (libpq connection)"},
        {.name = "schema", .type = OPT_STRING, .arg = "SCHEMA", .env = "REEL_SINK_SCHEMA",
         .dest = &st->schema, .help = "the sinks' schema", .def = "reel"},
        {.name = "token", .type = OPT_STRING, .arg = "T", .env = "REEL_TOKEN", .dest = &st->token,
         .help = "bearer token with the admin scope, for every cell"},
        {.name = "ack", .type = OPT_CHOICE, .arg = "local|replica", .env = "REEL_ACK",
         .dest = &st->ack, .help = "how the cells acknowledge (serve --ack): with local, an\n"
                                   "old owner that does not answer needs --force",
         .def = "local"},
        {.name = "force", .type = OPT_FLAG, .dest = &st->force,
         .help = "--ack local: move the shards of an old owner that does not answer,\n"
                 "losing what it acknowledged and its sink had not copied"},
        {.name = "nginx-conf", .type = OPT_STRING, .arg = "FILE", .dest = &st->nginx_conf,
         .help = "rewrite this nginx configuration (reel cluster nginx-conf) and reload"},
        {.name = "nginx-listen", .type = OPT_STRING, .arg = "HOST:PORT", .dest = &st->nginx_listen,
         .help = "with --nginx-conf: also write its server block listening there"},
        {.name = "reload-command", .type = OPT_STRING, .arg = "CMD", .dest = &st->reload,
         .help = "with --nginx-conf: how to reload nginx (sh -c)", .def = "nginx -s reload"},
        {.name = "drain-ms", .type = OPT_U64, .arg = "MS", .dest = &st->drain_ms, .min = 1,
         .max = 120000, .help = "how long an old owner waits for its writes in flight",
         .def = "10000"},
        {.name = "cell-timeout-ms", .type = OPT_U64, .arg = "MS", .dest = &st->cell_timeout_ms,
         .min = 1, .max = 600000, .help = "a cell that does not answer within it is down",
         .def = "2000"},
        {.name = "timeout", .type = OPT_U64, .arg = "S", .dest = &st->timeout_s, .min = 1,
         .max = 86400, .help = "how long the sinks' catching up and the load may take",
         .def = "600"},
        {.name = "resume", .type = OPT_FLAG, .dest = &st->resume,
         .help = "finish a move that stopped after its hand-over (the map file says\n"
                 "the shards are loading at CELL; PostgreSQL has its fences)"},
        {.name = "quiet", .alias = 'q', .type = OPT_FLAG, .dest = &st->quiet,
         .help = "no step lines"},
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = PROG, .args = "SHARDS", .about = about, .opts = rows};
    return opt_parse(&cmd, argc, argv, nargs);
}

static void summary(const move_t *mv)
{
    printf("moved %u shards to %s: %llu sessions, %llu events (%llu copied ahead) in %.2f s; "
           "writes to them paused %.2f s; epoch %llu\n", mv->n_shards, mv->st->to,
           (unsigned long long)mv->sessions, (unsigned long long)mv->events,
           (unsigned long long)mv->events_ahead, now_s() - mv->t0,
           mv->pause_end - mv->pause_start,
           (unsigned long long)mv->m->epoch + (mv->st->resume ? 1 : 2));
}

static int go(move_t *mv, const char *shards)
{
    char msg[512];
    answer_t a = {0};
    if (cluster_map_load(mv->st->map, &mv->m, msg, sizeof msg)) {
        cmd_error(PROG, "%s", msg);
        return CMD_FAIL;
    }
    mv->to = cluster_map_cell(mv->m, mv->st->to);
    if (mv->to < 0) {
        cmd_error(PROG, "--to '%s': the map has no such cell", mv->st->to);
        return CMD_USAGE;
    }
    mv->set = calloc(mv->m->v, 1);
    mv->cs = calloc(mv->m->n_cells, sizeof *mv->cs);
    mv->from = calloc(mv->m->v, sizeof *mv->from);
    if (!mv->set || !mv->cs || !mv->from)
        return CMD_FAIL;
    if (cluster_shards_parse(shards, mv->m->v, mv->set, msg, sizeof msg)) {
        cmd_error(PROG, "%s", msg);
        return CMD_USAGE;
    }
    mv->pg = PQconnectdb(mv->st->dsn);
    if (PQstatus(mv->pg) != CONNECTION_OK) {
        cmd_error(PROG, "cannot connect to PostgreSQL: %s", PQerrorMessage(mv->pg));
        return CMD_FAIL;
    }
    PQclear(PQexec(mv->pg, "SET client_min_messages = warning"));
    if (sink_fence_schema(mv->pg, mv->st->schema))
        return CMD_FAIL;
    mv->c = curl_easy_init();
    if (!mv->c)
        return CMD_FAIL;
    step(mv, 1, "%s: epoch %llu, moving shards %s to '%s'", mv->st->map,
         (unsigned long long)mv->m->epoch, shards, mv->st->to);
    int rc = mv->st->resume ? resume(mv, &a) : check(mv, &a);
    if (!rc && !mv->st->resume)
        rc = run(mv, &a);
    if (!rc)
        summary(mv);
    store_buf_release(&a.body);
    return rc;
}

int cmd_cluster_move(int argc, char **argv)
{
    settings_t st = {.schema = "reel", .drain_ms = 10000, .cell_timeout_ms = 2000,
                     .timeout_s = 600};
    int nargs = 0, rc = parse(&st, argc, argv, &nargs);
    if (rc != OPT_GO)
        return rc;
    if (nargs != 1 || !st.to || !st.map || !st.dsn) {
        cmd_error(PROG, "usage: reel cluster move SHARDS --to CELL --map MAP --dsn DSN (see "
                  "--help)");
        return CMD_USAGE;
    }
    for (const char *p = st.schema; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
              (p > st.schema && *p >= '0' && *p <= '9'))) {
            cmd_error(PROG, "--schema '%s': letters, digits and '_' only", st.schema);
            return CMD_USAGE;
        }
    move_t mv = {.st = &st, .t0 = now_s()};
    rc = go(&mv, argv[0]);
    if (mv.c)
        curl_easy_cleanup(mv.c);
    if (mv.pg)
        PQfinish(mv.pg);
    cluster_map_free(mv.m);
    free(mv.set);
    free(mv.from);
    free(mv.cs);
    return rc;
}
