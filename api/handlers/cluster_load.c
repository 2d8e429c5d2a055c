/* cluster_load.c -- POST /v1/cluster/load: a cell copies in the sessions of shards moving
 * to it, from the PostgreSQL tables of the old owner's sink (docs/CLUSTER.md "Moving
 * shards", docs/HTTP.md "Cluster").
 *
 * Body: {"dsn": libpq connection, "schema": the sink's (default "reel"), "from": the old
 * owner's cell id, "shards": [N, ...], "precopy": false}. Every shard must be this cell's
 * and "loading" in the map in force (the cell answers 503 for them meanwhile), so no
 * client writes to those sessions while they are copied. With "precopy": true every
 * shard must still be cell 'from''s (this cell answers 421 for them): the bulk of the
 * copy runs before the hand-over, while the old owner serves, and the copy after it
 * only catches up (so writes pause for the difference, not for the whole shard). The copy runs in this process, on a job thread,
 * through the store's one committer (cluster/pgload.h, new positions, chains recomputed
 * and the source's checked). Afterwards the positions the copies took are recorded as
 * copied (store_copied_add): the feed with skip_copied=1 passes over them, so a reader
 * of every cell's feed reads each event once (from the cell that first had it). Calling
 * it again catches up (the loader copies what a session lacks); only what was copied in
 * is marked.
 *
 * The answer: {"from", "sessions", "events", "deleted", "copied_ranges", "position",
 * "change_index"} -- the last two the cursor of this cell's log after the copy, which the
 * move waits for this cell's sink to reach before the shards go live.
 */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers/handlers.h"
#include "cluster/pgload.h"

enum { LOAD_BODY = API_PHASE_OWN, LOAD_RUNNING };

static atomic_int load_running; /* one load per process (one store per server) */

typedef struct picked {
    char *id;
    size_t len;
    uint64_t before; /* its last sequence here before the copy (0: none) */
} picked_t;

typedef struct load_job {
    api_req_t *rq;
    char *dsn;
    char schema[64], from[CLUSTER_ID_MAX + 1];
    unsigned v;
    uint64_t *bounds;
    uint8_t *set;        /* v entries: the shards loaded */
    picked_t *p;         /* sessions of those shards: here before, or picked */
    size_t n, cap;
    char last[STORE_SESSION_ID_MAX + 1]; /* the listing's cursor */
    uint64_t last_seq;   /* the walk's last sequence */
    uint64_t *ranges;    /* copied position ranges (pairs) */
    size_t n_ranges, cap_ranges;
    char why[400];
} load_job_t;

static void job_free(void *arg)
{
    load_job_t *j = arg;
    for (size_t i = 0; i < j->n; i++)
        free(j->p[i].id);
    free(j->p);
    free(j->ranges);
    free(j->dsn);
    free(j->bounds);
    free(j->set);
    free(j);
}

static int in_set(const load_job_t *j, const char *id, size_t len)
{
    static _Thread_local char key[CLUSTER_KEY_MAX + 1];
    size_t kn = cluster_key_session(id, len, key);
    return j->set[cluster_shard_of(j->bounds, j->v, cluster_murmur2(key, kn))];
}

/* The session's entry, added (before = 0) when 'add'; NULL when absent or out of memory. */
static picked_t *find(load_job_t *j, const char *id, size_t len, int add)
{
    for (size_t i = 0; i < j->n; i++) /* sessions per move batch: a few thousand */
        if (j->p[i].len == len && !memcmp(j->p[i].id, id, len))
            return &j->p[i];
    if (!add)
        return NULL;
    if (j->n == j->cap) {
        size_t cap = j->cap ? j->cap * 2 : 256;
        picked_t *np = realloc(j->p, cap * sizeof *np);
        if (!np)
            return NULL;
        j->p = np, j->cap = cap;
    }
    picked_t *x = &j->p[j->n];
    if (!(x->id = malloc(len + 1)))
        return NULL;
    memcpy(x->id, id, len);
    x->id[len] = 0, x->len = len, x->before = 0;
    j->n++;
    return x;
}

/* Before the copy: the last sequence of each session of the shards already here. */
static int before_one(void *arg, const store_session_t *rec)
{
    load_job_t *j = arg;
    snprintf(j->last, sizeof j->last, "%s", rec->id);
    if (!in_set(j, rec->id, rec->id_len))
        return 0;
    picked_t *x = find(j, rec->id, rec->id_len, 1);
    if (!x)
        return REEL_ENOMEM;
    x->before = rec->last_sequence;
    return 0;
}

static int before(load_job_t *j, store_t *s)
{
    int more = 1, rc = REEL_OK;
    j->last[0] = 0;
    while (!rc && more) {
        store_read_t r;
        char cursor[STORE_SESSION_ID_MAX + 1];
        snprintf(cursor, sizeof cursor, "%s", j->last);
        if ((rc = store_read_begin(s, &r)))
            break;
        store_read_see_all(&r);
        rc = store_sessions_list(&r, cursor, strlen(cursor), 1000, before_one, j, &more);
        store_read_end(&r);
    }
    return rc;
}

static int pick(void *arg, const char *session, size_t len)
{
    load_job_t *j = arg;
    if (!in_set(j, session, len))
        return 0;
    return find(j, session, len, 1) != NULL;
}

static int add_range(load_job_t *j, uint64_t pos)
{
    if (j->n_ranges && j->ranges[2 * j->n_ranges - 1] + 1 == pos) {
        j->ranges[2 * j->n_ranges - 1] = pos;
        return 0;
    }
    if (j->n_ranges == j->cap_ranges) {
        size_t cap = j->cap_ranges ? j->cap_ranges * 2 : 256;
        uint64_t *nr = realloc(j->ranges, cap * 16);
        if (!nr)
            return REEL_ENOMEM;
        j->ranges = nr, j->cap_ranges = cap;
    }
    j->ranges[2 * j->n_ranges] = j->ranges[2 * j->n_ranges + 1] = pos;
    j->n_ranges++;
    return 0;
}

static int copied_one(void *arg, const store_event_view_t *ev)
{
    load_job_t *j = arg;
    j->last_seq = ev->sequence;
    return add_range(j, ev->position);
}

/* After the copy: the positions of each session's events past its 'before'. */
static int mark(load_job_t *j, store_t *s)
{
    int rc = REEL_OK;
    for (size_t i = 0; i < j->n && !rc; i++) {
        store_read_t r;
        if ((rc = store_read_begin(s, &r)))
            break;
        store_read_see_all(&r);
        int more = 1;
        j->last_seq = j->p[i].before;
        while (!rc && more)
            rc = store_events_after(&r, j->p[i].id, j->p[i].len, j->last_seq, 10000,
                                    copied_one, j, &more);
        store_read_end(&r);
        if (rc == REEL_ESESSION_NOT_FOUND || rc == REEL_EGONE)
            rc = REEL_OK; /* not copied (purged in the source), or a deleted tombstone */
    }
    return rc ? rc : store_copied_add(s, j->ranges, j->n_ranges);
}

/* ---- the job ---- */

static void answer(load_job_t *j, const cluster_pgload_stats_t *st)
{
    api_req_t *rq = j->rq;
    store_read_t r;
    uint64_t pos = 0, ranges = 0, spans = 0;
    if (store_read_begin(rq->srv->store, &r) == REEL_OK) {
        store_read_see_all(&r);
        store_tail_position(&r, &pos);
        store_copied_count(&r, &ranges, &spans);
        store_read_end(&r);
    }
    store_buf_t *b = &rq->meta;
    store_buf_clear(b);
    store_buf_printf(b, "{\"from\":\"%s\",\"sessions\":%llu,\"events\":%llu,\"deleted\":%llu,"
                     "\"copied_ranges\":%llu,\"copied_positions\":%llu,\"position\":%llu}",
                     j->from, (unsigned long long)st->sessions, (unsigned long long)st->events,
                     (unsigned long long)st->deleted, (unsigned long long)ranges,
                     (unsigned long long)spans, (unsigned long long)pos);
}

static void *run_load(void *arg)
{
    load_job_t *j = arg;
    api_req_t *rq = j->rq;
    api_server_t *srv = rq->srv;
    cluster_pgload_stats_t st = {0};
    cluster_pgload_opt_t o = {.dsn = j->dsn, .schema = j->schema, .cell = j->from,
                              .keep_positions = 0, .pick = pick, .pick_arg = j};
    int rc = before(j, srv->store);
    if (rc)
        snprintf(j->why, sizeof j->why, "listing this cell's sessions: %s", reel_strerror(rc));
    if (!rc)
        rc = cluster_pgload(srv->store, &o, &st, j->why, sizeof j->why);
    if (!rc && (rc = mark(j, srv->store)))
        snprintf(j->why, sizeof j->why, "recording the copied positions: %s", reel_strerror(rc));
    if (!rc) {
        answer(j, &st);
        api_server_log(srv, API_LOG_INFO, "reel serve: cluster load from '%s': %llu sessions, %llu "
                 "events", j->from, (unsigned long long)st.sessions,
                 (unsigned long long)st.events);
    } else {
        snprintf(rq->reject_detail, sizeof rq->reject_detail, "loading from cell '%s': %.300s "
                 "(%llu sessions and %llu events were copied before)", j->from, j->why,
                 (unsigned long long)st.sessions, (unsigned long long)st.events);
    }
    rq->batch.err = rc;
    job_free(j);
    atomic_store(&load_running, 0);
    atomic_fetch_sub(&srv->jobs, 1);
    api__batch_done(&rq->batch, rq);
    return NULL;
}

/* A job that could not start: the next load may. */
static void load_release(void *arg)
{
    job_free(arg);
    atomic_store(&load_running, 0);
}

/* ---- the request ---- */

static int str_field(json_t *o, const char *name, char *out, size_t cap, int need, char *why,
                     size_t wlen)
{
    json_t *v = json_object_get(o, name);
    if (!v && !need)
        return 0;
    if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) >= cap) {
        snprintf(why, wlen, "\"%s\" must be a string of 1..%zu bytes", name, cap - 1);
        return -1;
    }
    snprintf(out, cap, "%s", json_string_value(v));
    return 0;
}

/* The shards: each this cell's and loading under the map in force; or, for a copy ahead
 * of the hand-over ('precopy'), each still cell 'from''s. */
static int shards_field(api_server_t *srv, load_job_t *j, json_t *a, int precopy, char *why,
                        size_t wlen)
{
    if (!json_is_array(a) || !json_array_size(a)) {
        snprintf(why, wlen, "\"shards\" must be a non-empty array of shard numbers");
        return REEL_EINVALID_PARAMETER;
    }
    int rc = REEL_OK;
    pthread_rwlock_rdlock(&srv->cluster_lock);
    const cluster_map_t *m = srv->cluster;
    int me = cluster_map_cell(m, srv->cell_id);
    if (cluster_map_cell(m, j->from) < 0) {
        snprintf(why, wlen, "\"from\": '%s' is not a cell of the cluster map", j->from);
        rc = REEL_EINVALID_PARAMETER;
    }
    j->v = m->v;
    j->bounds = malloc(m->v * sizeof *j->bounds);
    j->set = calloc(m->v, 1);
    if (!rc && (!j->bounds || !j->set))
        rc = REEL_ENOMEM;
    else if (!rc)
        memcpy(j->bounds, m->bounds, m->v * sizeof *j->bounds);
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
        if (rc)
            break;
        json_int_t s = json_is_integer(e) ? json_integer_value(e) : -1;
        if (s < 0 || s >= (json_int_t)m->v) {
            snprintf(why, wlen, "\"shards\"[%zu] is not a shard number 0..%u", i, m->v - 1);
            rc = REEL_EINVALID_PARAMETER;
        } else if (precopy && strcmp(m->cells[m->owner[s]].id, j->from)) {
            snprintf(why, wlen, "shard %lld is not cell '%s''s under cluster map epoch %llu: "
                     "a copy ahead of a move reads the owner's rows", (long long)s, j->from,
                     (unsigned long long)m->epoch);
            rc = REEL_ECONFLICT;
        } else if (!precopy && (m->owner[s] != me || !m->loading[s])) {
            snprintf(why, wlen, "shard %lld is not loading into this cell under cluster map "
                     "epoch %llu (push the map that says so first)", (long long)s,
                     (unsigned long long)m->epoch);
            rc = REEL_ECONFLICT;
        } else {
            j->set[s] = 1;
        }
    }
    pthread_rwlock_unlock(&srv->cluster_lock);
    return rc;
}

static int parse_body(api_req_t *rq, load_job_t *j, char *why, size_t wlen)
{
    json_error_t e;
    json_t *o = json_loadb((const char *)rq->body.data, rq->body.len, JSON_REJECT_DUPLICATES, &e);
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(why, wlen, "the body must be a JSON object {\"dsn\", \"from\", \"shards\"}");
        return REEL_EINVALID_JSON;
    }
    char dsn[2048], from[CLUSTER_ID_MAX + 1];
    snprintf(j->schema, sizeof j->schema, "reel");
    int rc = str_field(o, "dsn", dsn, sizeof dsn, 1, why, wlen) ||
                     str_field(o, "from", from, sizeof from, 1, why, wlen) ||
                     str_field(o, "schema", j->schema, sizeof j->schema, 0, why, wlen)
                 ? REEL_EINVALID_PARAMETER
                 : REEL_OK;
    if (!rc) {
        snprintf(j->from, sizeof j->from, "%s", from);
        json_t *pre = json_object_get(o, "precopy");
        if (pre && !json_is_boolean(pre)) {
            snprintf(why, wlen, "\"precopy\" must be true or false");
            rc = REEL_EINVALID_PARAMETER;
        } else if (!(j->dsn = strdup(dsn))) {
            rc = REEL_ENOMEM;
        } else {
            rc = shards_field(rq->srv, j, json_object_get(o, "shards"), json_is_true(pre), why,
                              wlen);
        }
    }
    json_decref(o);
    return rc;
}

static enum MHD_Result load_done(api_req_t *rq)
{
    int rc = rq->batch.err;
    if (rc == REEL_OK)
        return api__reply_json(rq, 200, &rq->meta);
    return api__problem(rq, rc, "%s", rq->reject_detail);
}

enum MHD_Result api__cluster_load(api_req_t *rq, const char *data, size_t *size)
{
    if (rq->phase == LOAD_RUNNING)
        return rq->async_done ? load_done(rq) : MHD_YES;
    if (rq->phase == API_PHASE_NEW && !rq->srv->cell_id[0])
        return api__problem(rq, REEL_EINVALID_PARAMETER, "this server is not a cell of a "
                            "cluster (reel serve --cluster-map FILE --cell ID)");
    enum MHD_Result r;
    if (api__json_body_step(rq, data, size, LOAD_BODY, &r))
        return r;
    load_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    char why[400] = "";
    int rc = parse_body(rq, j, why, sizeof why);
    if (rc) {
        job_free(j);
        return api__problem(rq, rc, "%s", why[0] ? why : reel_strerror(rc));
    }
    j->rq = rq;
    if (atomic_exchange(&load_running, 1)) { /* the loader: one call per store at a time */
        job_free(j);
        return api__problem(rq, REEL_ECONFLICT, "a cluster load is running on this cell "
                            "already; one move at a time per new owner");
    }
    return api__job_start(rq, run_load, j, load_release, 8, "cluster", LOAD_RUNNING);
}
