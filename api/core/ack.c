/* ack.c -- `reel serve --ack replica`: a write is answered only once the replica holds it
 * (docs/CLUSTER.md "Acknowledged by a replica").
 *
 * The watermark is the store's visible bound (store.h "Visible bound"): the feed cursor
 * the replica sink last reported as committed to a synchronously replicated PostgreSQL
 * (handlers/sinks.c sets it). Every write completes through api__batch_done(), which
 * notes the batch's feed cursor here (api__ack_note, committer thread); the dispatcher
 * then runs api__ack_gate() before the handler, so no handler answers a write the replica
 * does not hold yet, and no handler needs to know about it. The wait is a suspended
 * connection (wait.c, kind API_WAIT_ACK), woken by every sink report (api__wake_all) and
 * by its deadline (--replica-wait-ms from the commit); past it the answer is 503
 * replica_behind with Retry-After. The write stays durable here and becomes visible when
 * the replica catches up; a retry with the same event ids finds duplicates (nothing is
 * appended twice) and waits for the same positions.
 */
#include "api/core/core.h"

static int needs_ack(const store_batch_t *b)
{
    if (b->err != REEL_OK)
        return 0;
    switch (b->op) {
    case STORE_OP_APPEND: return b->n_events > 0;
    case STORE_OP_SESSION_PUT:
    case STORE_OP_SESSION_DELETE:
    case STORE_OP_TRIM:
    case STORE_OP_PURGE:
    case STORE_OP_REDACT: return 1;
    default: return 0; /* consumers' state, jobs: not in the feed */
    }
}

void api__ack_note(api_req_t *rq, const store_batch_t *b)
{
    if (!rq->srv->lim.ack_replica || !needs_ack(b))
        return;
    rq->ack_pos = b->cursor_position;
    rq->ack_idx = b->cursor_index;
    rq->ack_since_us = api__now_us();
    rq->ack_pending = 1;
}

void api__feed_tail(api_server_t *srv, uint64_t *pos, uint32_t *idx)
{
    store_read_t r;
    *pos = 0;
    *idx = 0;
    if (store_read_begin(srv->store, &r) != REEL_OK)
        return;
    store_read_see_all(&r);
    store_feed_tail(&r, pos, idx);
    store_read_end(&r);
}

int api__ack_retry(api_req_t *rq, enum MHD_Result *r)
{
    if (!rq->srv->lim.ack_replica || rq->ack_retried)
        return 0;
    rq->ack_retried = 1;
    api__feed_tail(rq->srv, &rq->ack_pos, &rq->ack_idx);
    rq->ack_since_us = api__now_us();
    rq->ack_pending = 1;
    return api__ack_gate(rq, r);
}

static void count_wait(api_server_t *srv, uint64_t us, int acked)
{
    size_t b = 0;
    while (b < API_LAT_BUCKETS - 1 && us > api__lat_bounds_us[b])
        b++;
    atomic_fetch_add(&srv->ack_hist[b], 1);
    atomic_fetch_add(&srv->ack_sum_us, us);
    atomic_fetch_add(acked ? &srv->ack_acked : &srv->ack_refused, 1);
}

int api__ack_gate(api_req_t *rq, enum MHD_Result *r)
{
    api_server_t *srv = rq->srv;
    for (;;) {
        uint64_t gen = api__gen(srv), vis;
        uint32_t vis_idx;
        store_get_visible(srv->store, &vis, &vis_idx);
        uint64_t now = api__now_us();
        if (rq->ack_pos < vis || (rq->ack_pos == vis && rq->ack_idx <= vis_idx)) {
            rq->ack_pending = 0;
            count_wait(srv, now - rq->ack_since_us, 1);
            return 0;
        }
        uint64_t deadline_ms = rq->ack_since_us / 1000 + srv->lim.replica_wait_ms;
        if (now / 1000 >= deadline_ms || api__stopping(srv)) {
            rq->ack_pending = 0;
            count_wait(srv, now - rq->ack_since_us, 0);
            rq->retry_after = 1;
            *r = api__problem(rq, REEL_EREPLICA_BEHIND, "the write is durable on this cell "
                              "(feed position %llu) but the replica sink '%s' has reported "
                              "only position %llu within %u ms: it is not acknowledged; retry "
                              "it (the same event ids are not appended twice)",
                              (unsigned long long)rq->ack_pos, srv->lim.replica_sink,
                              (unsigned long long)(vis == STORE_VISIBLE_ALL ? 0 : vis),
                              srv->lim.replica_wait_ms);
            return 1;
        }
        if (api__wait_for(rq, &rq->waiter, API_WAIT_ACK, NULL, 0, deadline_ms, gen)) {
            *r = MHD_YES;
            return 1;
        }
    }
}
