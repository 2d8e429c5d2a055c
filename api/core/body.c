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

#include "api/core/core.h"
#include "store/parse.h"

/* ---- Asynchronous store work ---- */

void api__batch_done(store_batch_t *b, void *arg)
{
    api_req_t *rq = arg;
    api_server_t *srv = rq->srv;
    rq->async_done = 1;
    /* The connection was suspended before the submit; resuming it from the committer
     * thread is allowed (MHD_USE_ITC wakes the daemon). The handler sees 'async_done'. */
    MHD_resume_connection(rq->conn);
    atomic_fetch_sub(&srv->inflight, 1);
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
    uint64_t n;
    if (cl && store_parse_u64(cl, strlen(cl), &n) == REEL_OK && n > rq->srv->lim.max_body_bytes) {
        rq->close_now = 1; /* do not read a body we will not use */
        *r = api__problem(rq, REEL_ETOO_LARGE, "Content-Length %s exceeds --max-body-bytes (%zu)",
                          cl, rq->srv->lim.max_body_bytes);
        return 0;
    }
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
