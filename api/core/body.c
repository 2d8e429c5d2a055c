/* body.c -- request bodies and asynchronous store work.
 *
 * A body is collected into rq->body within --max-body-bytes and --request-timeout; past
 * either the rest is discarded (or the connection closed) and a problem answered. Store
 * work is asynchronous: the connection is suspended before the batch is submitted and
 * the committer's completion callback resumes it, so no server thread waits for fsync.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/core/core.h"
#include "store/parse.h"

#define BODY_PRESIZE (4u << 20) /* bytes reserved from Content-Length, at most */

/* ---- Asynchronous store work ---- */

void api__batch_done(store_batch_t *b, void *arg)
{
    api_req_t *rq = arg;
    api_server_t *srv = rq->srv;
    api__ack_note(rq, b);
    rq->async_done = 1;
    /* The connection was suspended before the submit; resuming it from the committer
     * thread is allowed (MHD_USE_ITC wakes the daemon). The handler sees 'async_done'. */
    MHD_resume_connection(rq->conn);
    atomic_fetch_sub(&srv->inflight, 1);
}

enum MHD_Result api__job_start(api_req_t *rq, void *(*fn)(void *), void *arg,
                               void (*release)(void *), int max, const char *what, int phase)
{
    api_server_t *srv = rq->srv;
    if (atomic_fetch_add(&srv->jobs, 1) >= (uint_fast64_t)max) {
        atomic_fetch_sub(&srv->jobs, 1);
        release(arg);
        return api__problem(rq, REEL_ETOO_MANY, "too many %s requests at once (at most %d)",
                            what, max);
    }
    if (api__async_begin(rq) != REEL_OK) {
        atomic_fetch_sub(&srv->jobs, 1);
        release(arg);
        return api__problem(rq, REEL_EUNAVAILABLE, "the server is shutting down");
    }
    rq->phase = phase;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_fetch_sub(&srv->jobs, 1);
        release(arg);
        api__async_failed(rq, &rq->batch, REEL_ENOMEM);
    }
    return MHD_YES;
}

int api__async_begin(api_req_t *rq)
{
    api_server_t *srv = rq->srv;
    rq->async_done = 0;
    /* Counted under the lock that api_server_stop() sets 'stopping' with, so the stop
     * either refuses this submit or waits for it. */
    pthread_mutex_lock(&srv->lock);
    int stopping = srv->stopping;
    if (!stopping)
        atomic_fetch_add(&srv->inflight, 1);
    pthread_mutex_unlock(&srv->lock);
    if (stopping)
        return REEL_EUNAVAILABLE;
    MHD_suspend_connection(rq->conn);
    return REEL_OK;
}

void api__async_failed(api_req_t *rq, store_batch_t *b, int rc)
{
    b->err = rc;
    rq->async_done = 1;
    MHD_resume_connection(rq->conn);
    atomic_fetch_sub(&rq->srv->inflight, 1);
}

enum MHD_Result api__submit(api_req_t *rq, store_batch_t *b)
{
    if (api__async_begin(rq) != REEL_OK)
        return api__problem(rq, REEL_EUNAVAILABLE, "the server is shutting down");
    b->done = api__batch_done;
    b->done_arg = rq;
    int rc = store_submit(rq->srv->store, b);
    if (rc != REEL_OK)
        api__async_failed(rq, b, rc);
    return MHD_YES;
}

/* ---- Request bodies ---- */

int api__body_precheck(api_req_t *rq, enum MHD_Result *r)
{
    const char *cl = api__header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t n = 0;
    int known = cl && store_parse_u64(cl, strlen(cl), &n) == REEL_OK;
    if (known && n > rq->srv->lim.max_body_bytes) {
        rq->close_now = 1; /* do not read a body we will not use */
        *r = api__problem(rq, REEL_ETOO_LARGE, "Content-Length %s exceeds --max-body-bytes (%zu)",
                          cl, rq->srv->lim.max_body_bytes);
        return 0;
    }
    /* The body's room at once, instead of doubling from 64 bytes: a 100 KB batch was
     * reallocated and copied 11 times (1.7 % of the server's CPU on batched ingest, issue
     * 19). At most BODY_PRESIZE before any byte came: a client that only claims a size
     * gets no more. A failure here is seen by api__body_complete() as for any collected
     * byte. (+1: store_buf_put() wants room to spare.) */
    if (known && n > 0)
        store_buf_reserve(&rq->body, (n < BODY_PRESIZE ? (size_t)n : BODY_PRESIZE) + 1);
    return 1;
}

int api__collect_body(api_req_t *rq, const char *data, size_t *size)
{
    api_server_t *srv = rq->srv;
    if (*size == 0)
        return 0;
    if (api__now_ms() - rq->start_ms > (uint64_t)srv->lim.request_timeout * 1000) {
        rq->reject = REEL_ETOO_LARGE; /* never answered: the caller closes */
        return -1;
    }
    if (!rq->reject && rq->body.len + *size > srv->lim.max_body_bytes) {
        rq->reject = REEL_ETOO_LARGE;
        snprintf(rq->reject_detail, sizeof rq->reject_detail,
                 "the request body exceeds --max-body-bytes (%zu)", srv->lim.max_body_bytes);
        store_buf_release(&rq->body);
    }
    if (!rq->reject)
        store_buf_put(&rq->body, data, *size);
    *size = 0;
    return 1;
}


int api__body_complete(api_req_t *rq, enum MHD_Result *r)
{
    if (rq->reject) {
        int err = rq->reject;
        *r = api__problem(rq, err, "%s", rq->reject_detail);
        return err;
    }
    if (store_buf_failed(&rq->body)) {
        *r = api__problem(rq, REEL_ENOMEM, "the request body did not fit in memory");
        return REEL_ENOMEM;
    }
    return REEL_OK;
}

int api__body_step(api_req_t *rq, const char *data, size_t *size, int body_phase,
                   enum MHD_Result *r)
{
    if (rq->phase == API_PHASE_NEW) {
        if (!api__body_precheck(rq, r))
            return -1;
        rq->phase = body_phase;
        *r = MHD_YES;
        return 1;
    }
    int more = api__collect_body(rq, data, size);
    if (more) {
        *r = more < 0 ? MHD_NO : MHD_YES;
        return more < 0 ? -1 : 1;
    }
    return api__body_complete(rq, r) == REEL_OK ? 0 : -1;
}

int api__json_body_step(api_req_t *rq, const char *data, size_t *size, int body_phase,
                        enum MHD_Result *r)
{
    const char *ct = rq->phase == API_PHASE_NEW ? api__header(rq, MHD_HTTP_HEADER_CONTENT_TYPE)
                                                : NULL;
    if (ct && strncasecmp(ct, "application/json", 16)) {
        *r = api__problem(rq, REEL_EUNSUPPORTED_MEDIA, "Content-Type '%s' is not "
                          "application/json", ct);
        return -1;
    }
    return api__body_step(rq, data, size, body_phase, r);
}
