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
 * and the source's checked). Each batch of copies is marked as copied in its own write
 * transaction (docs/FORMAT.md section 20): the feed with skip_copied=1 passes over them,
 * so a reader of every cell's feed reads each event once (from the cell that first had
 * it), whatever stops a load. Calling it again catches up (the loader copies what a
 * session lacks).
 *
 * The answer: {"from", "sessions", "events", "deleted", "copied_ranges",
 * "copied_positions", "position"} -- the last the end of this cell's log after the copy,
 * which the move waits for this cell's sink to reach before the shards go live.
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

typedef struct load_job {
    api_req_t *rq;
    char *dsn;
    char schema[64], from[CLUSTER_ID_MAX + 1];
    unsigned v;
    uint64_t *bounds;
    uint8_t *set;        /* v entries: the shards loaded */
    char why[400];
} load_job_t;

static void job_free(void *arg)
{
    load_job_t *j = arg;
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

/* The loader's filter: the sessions of the moving shards. */
static int pick(void *arg, const char *session, size_t len)
{
    return in_set(arg, session, len);
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
    int rc = cluster_pgload(srv->store, &o, &st, j->why, sizeof j->why);
    if (!rc) {
        answer(j, &st);
        api_server_log(srv, API_LOG_INFO, "reel serve: cluster load from '%s': %llu sessions, "
                       "%llu events", j->from, (unsigned long long)st.sessions,
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
