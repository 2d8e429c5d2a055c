/* producer.c -- idempotent producers (Producer-Id, -Epoch, -Seq): Kafka's rule of one
 * epoch per producer and dense sequences within it, checked against the state the write
 * decides on and committed with it (docs/durable-streams.md "Producers").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ds/ds_int.h"
#include "store/json.h"

/* ---- Producers ---- */

/* Kafka-style idempotent producer check on 'm' (updated in place when accepted). */
int ds__producer_check(ds_meta_t *m, const ds_req_t *d, uint64_t *a)
{
    int64_t now = (int64_t)store_wall_ms();
    for (size_t i = 0; i < m->n_producers;) { /* forget producers idle for a week */
        if ((int64_t)m->producers[i].updated_ms + DS_PRODUCER_TTL_MS < now &&
            strcmp(m->producers[i].id, d->pid))
            m->producers[i] = m->producers[--m->n_producers];
        else
            i++;
    }
    ds_producer_t *p = ds__producer(m, d->pid, 0);
    if (!p) {
        if (d->pseq != 0) {
            *a = 0;
            return P_GAP;
        }
        if (!(p = ds__producer(m, d->pid, 1)))
            return -1;
        p->epoch = d->pepoch;
        p->seq = 0;
        p->updated_ms = (uint64_t)now;
        return P_ACCEPT;
    }
    if (d->pepoch < p->epoch) {
        *a = p->epoch;
        return P_STALE;
    }
    if (d->pepoch > p->epoch) {
        if (d->pseq != 0)
            return P_BAD_EPOCH;
        p->epoch = d->pepoch;
        p->seq = 0;
        p->updated_ms = (uint64_t)now;
        return P_ACCEPT;
    }
    if (d->pseq <= p->seq) {
        *a = p->seq;
        return P_DUP;
    }
    if (d->pseq != p->seq + 1) {
        *a = p->seq + 1;
        return P_GAP;
    }
    p->seq = d->pseq;
    p->updated_ms = (uint64_t)now;
    return P_ACCEPT;
}

/* Answers a producer check that did not accept. */
enum MHD_Result ds__producer_refused(api_req_t *rq, ds_req_t *d, int st, uint64_t a,
                                        uint64_t tail, int closed)
{
    struct MHD_Response *r;
    switch (st) {
    case P_DUP:
        r = ds__resp(NULL, 0);
        if (!r)
            return MHD_NO;
        ds__hdr_u64(r, "Producer-Epoch", d->pepoch);
        ds__hdr_u64(r, "Producer-Seq", a);
        ds__hdr_offset(r, tail);
        if (closed)
            ds__hdr(r, "Stream-Closed", "true");
        return api__queue(rq, 204, r);
    case P_STALE:
        r = api__problem_response(rq, REEL_EFORBIDDEN, "Producer-Epoch %llu is stale; the current epoch is %llu",
                        (unsigned long long)d->pepoch, (unsigned long long)a);
        if (!r)
            return MHD_NO;
        ds__hdr_u64(r, "Producer-Epoch", a);
        return ds__queue_problem(rq, REEL_EFORBIDDEN, r);
    case P_BAD_EPOCH:
        return api__problem(rq, REEL_EINVALID_PARAMETER, "a new Producer-Epoch must start at Producer-Seq 0");
    default:
        r = api__problem_response(rq, REEL_ECONFLICT, "Producer-Seq %llu leaves a gap; expected %llu",
                        (unsigned long long)d->pseq, (unsigned long long)a);
        if (!r)
            return MHD_NO;
        ds__hdr_u64(r, "Producer-Expected-Seq", a);
        ds__hdr_u64(r, "Producer-Received-Seq", d->pseq);
        return ds__queue_problem(rq, REEL_ECONFLICT, r);
    }
}

