/* cluster.c -- the routes `reel cluster move` drives on each cell (docs/CLUSTER.md "Moving
 * shards", docs/HTTP.md "Cluster"):
 *
 *   PUT /v1/cluster/map   a new map (the body, the file format): checked as SIGHUP checks
 *                         one (api/core/cell.c), installed, written to --cluster-map, then
 *                         the writes admitted under older epochs are waited for. The
 *                         answer's cursor (position, change_index) is the last item of the
 *                         log after that wait: every write of a shard this cell gave away
 *                         is at or before it, which is where the move fences the shard.
 *
 * Both need the admin scope. The wait runs on a job thread (api__job_start), never on a
 * server thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers/handlers.h"

enum { MAP_BODY = API_PHASE_OWN, MAP_RUNNING };

#define DRAIN_MS_DEFAULT 10000
#define DRAIN_MS_MAX 120000

typedef struct push_job {
    api_req_t *rq;
    unsigned drain_ms;
} push_job_t;

static int last_change(void *arg, const store_change_view_t *ch)
{
    uint32_t *index = arg;
    *index = ch->index;
    return 0;
}

static int no_event(void *arg, const store_event_view_t *ev)
{
    (void)arg, (void)ev;
    return 0;
}

/* The cursor of the log's last item: the tail position and the last change after it. */
static int last_cursor(store_t *s, uint64_t *pos, uint32_t *index)
{
    store_read_t r;
    *pos = 0, *index = 0;
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    store_read_see_all(&r); /* the log's own end, not the replica's (--ack replica) */
    rc = store_tail_position(&r, pos);
    int more = 1;
    while (!rc && more) {
        uint32_t before = *index;
        rc = store_feed_changes_after(&r, *pos, *index, 1000, no_event, last_change, index,
                                      &more);
        if (*index == before)
            break;
    }
    store_read_end(&r);
    return rc;
}

static void *run_push(void *arg)
{
    push_job_t *j = arg;
    api_req_t *rq = j->rq;
    api_server_t *srv = rq->srv;
    int drained = 0;
    char msg[512] = "";
    int rc = api__cell_push(srv, (const char *)rq->body.data, rq->body.len, j->drain_ms,
                            &drained, msg, sizeof msg);
    uint64_t pos = 0;
    uint32_t index = 0;
    if (rc == REEL_OK)
        rc = last_cursor(srv->store, &pos, &index);
    if (rc == REEL_OK) {
        store_buf_t *b = &rq->meta;
        store_buf_clear(b);
        store_buf_printf(b, "{\"cell\":\"%s\",\"epoch\":%llu,\"drained\":%s,\"position\":%llu,"
                         "\"change_index\":%u}", srv->cell_id,
                         (unsigned long long)atomic_load(&srv->cluster_epoch),
                         drained ? "true" : "false", (unsigned long long)pos, index);
        if (store_buf_failed(b))
            rc = REEL_ENOMEM;
    } else {
        snprintf(rq->reject_detail, sizeof rq->reject_detail, "%s",
                 msg[0] ? msg : reel_strerror(rc));
    }
    rq->batch.err = rc;
    free(j);
    atomic_fetch_sub(&srv->jobs, 1);
    api__batch_done(&rq->batch, rq);
    return NULL;
}

static enum MHD_Result push_done(api_req_t *rq)
{
    int rc = rq->batch.err;
    if (rc == REEL_OK)
        return api__reply_json(rq, 200, &rq->meta);
    return api__problem(rq, rc, "%s", rq->reject_detail);
}

enum MHD_Result api__cluster_map_put(api_req_t *rq, const char *data, size_t *size)
{
    if (rq->phase == MAP_RUNNING)
        return rq->async_done ? push_done(rq) : MHD_YES;
    enum MHD_Result r;
    if (rq->phase == API_PHASE_NEW) {
        if (!rq->srv->cell_id[0])
            return api__problem(rq, REEL_EINVALID_PARAMETER, "this server is not a cell of a "
                                "cluster (reel serve --cluster-map FILE --cell ID)");
        uint64_t drain = DRAIN_MS_DEFAULT;
        if (api__query_u64(rq, "drain_ms", DRAIN_MS_MAX, &drain) != REEL_OK)
            return MHD_YES;
        rq->limit = drain; /* kept until the body is in */
    }
    if (api__json_body_step(rq, data, size, MAP_BODY, &r))
        return r;
    push_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    j->rq = rq;
    j->drain_ms = (unsigned)rq->limit;
    return api__job_start(rq, run_push, j, free, 8, "cluster", MAP_RUNNING);
}
