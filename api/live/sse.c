/* sse.c -- the one Server-Sent Events loop (the model is described in live.h).
 *
 * A content-reader call hands out buffered bytes; when the buffer is drained it asks the
 * stream's 'fill' op for more, writes a keep-alive after 'heartbeat_ms' of silence, and
 * otherwise suspends the connection until a commit, the heartbeat deadline or shutdown.
 * Commits are never missed: the commit generation is read before 'fill' reads the store,
 * and api__wait() refuses to suspend when a commit came in between.
 */
#include <stdlib.h>
#include <string.h>

#include "api/live/live.h"

#define SSE_KEEP_CAP (16u << 10) /* buffers bigger than this are freed when drained */
#define SSE_SKIP_NOTE 8          /* fills that only skipped events before a comment */

int api__sse_slot(api_req_t *rq, enum MHD_Result *answered)
{
    api_server_t *srv = rq->srv;
    if (atomic_fetch_add(&srv->sse_clients, 1) < srv->lim.max_sse_clients)
        return 0;
    atomic_fetch_sub(&srv->sse_clients, 1);
    /* Suspended streams do not notice a client that went away. Resuming them makes
     * libmicrohttpd read the socket, so closed ones are freed for the next try. */
    api__wake_all(srv, 0);
    *answered = api__problem(rq, REEL_ETOO_MANY, "too many SSE clients (--max-sse-clients %u)",
                             srv->lim.max_sse_clients);
    return -1;
}

void *api__sse_new(api_req_t *rq, size_t size, enum MHD_Result *answered)
{
    if (api__sse_slot(rq, answered))
        return NULL;
    void *p = calloc(1, size);
    if (!p) {
        atomic_fetch_sub(&rq->srv->sse_clients, 1);
        *answered = api__problem(rq, REEL_ENOMEM, "out of memory");
    }
    return p;
}

void api__sse_init(api_sse_t *s, const api_sse_ops_t *ops, api_req_t *rq, uint64_t heartbeat_ms,
                   uint64_t max_ms)
{
    s->ops = ops;
    s->srv = rq->srv;
    s->w.conn = rq->conn;
    store_buf_init(&s->out);
    s->off = 0;
    s->start_ms = s->last_write_ms = api__now_ms();
    s->heartbeat_ms = heartbeat_ms;
    s->max_ms = max_ms;
    s->finished = 0;
    memcpy(s->token_digest, rq->token_digest, sizeof s->token_digest);
    s->token_need = rq->token_need;
    s->tokens_gen = rq->tokens_gen;
    s->prefixes = NULL;
    s->n_prefixes = 0;
    s->cell_key = api__cell_key_dup(rq, &s->cell_key_len);
    s->cell_epoch = atomic_load(&rq->srv->cluster_epoch);
    size_t len = 0;
    for (size_t i = 0; i < rq->n_prefixes; i++)
        len += strlen(rq->prefixes + len) + 1;
    if (rq->n_prefixes && (s->prefixes = malloc(len))) {
        memcpy(s->prefixes, rq->prefixes, len);
        s->n_prefixes = rq->n_prefixes;
    } else if (rq->n_prefixes) {
        s->finished = 1; /* out of memory: end at once rather than serve unchecked */
    }
}

/* 0 when a reload since the stream began took its token away (see api_sse). */
static int token_still_valid(api_sse_t *s)
{
    uint64_t gen = atomic_load(&s->srv->tokens_gen);
    if (!s->token_need || gen == s->tokens_gen)
        return 1;
    if (!api__token_still_valid(s->srv, s->token_digest, s->token_need, s->prefixes,
                                s->n_prefixes))
        return 0;
    s->tokens_gen = gen;
    return 1;
}

static ssize_t give(api_sse_t *s, char *buf, size_t max)
{
    size_t n = s->out.len - s->off;
    if (n > max)
        n = max;
    memcpy(buf, s->out.data + s->off, n);
    s->off += n;
    s->last_write_ms = api__now_ms();
    return (ssize_t)n;
}

static void drained(api_sse_t *s)
{
    s->off = 0;
    if (s->out.cap > SSE_KEEP_CAP)
        store_buf_release(&s->out);
    else
        store_buf_clear(&s->out);
}

/* When a caught-up stream must speak next: the heartbeat, or the end of the response. */
static uint64_t deadline(const api_sse_t *s)
{
    uint64_t d = s->last_write_ms + s->heartbeat_ms;
    if (s->max_ms && d > s->start_ms + s->max_ms)
        d = s->start_ms + s->max_ms;
    return d;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    api_sse_t *s = cls;
    api_server_t *srv = s->srv;
    (void)pos;
    for (int skipped = 0;;) {
        if (s->off < s->out.len)
            return give(s, buf, max);
        drained(s);
        uint64_t now = api__now_ms();
        if (s->finished || api__stopping(srv) || (s->max_ms && now - s->start_ms >= s->max_ms) ||
            !token_still_valid(s) ||
            (s->cell_key && !api__cell_still_owns(srv, s->cell_key, s->cell_key_len,
                                                  &s->cell_epoch)))
            return MHD_CONTENT_READER_END_OF_STREAM;
        uint64_t gen = api__gen(srv);
        int moved = 0;
        if (s->ops->fill(s, &moved) != REEL_OK || store_buf_failed(&s->out))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->out.len || s->finished)
            continue;
        if (moved) {
            /* A filter skipped a whole batch: keep scanning, but after a few batches hand
             * out a comment so that this call ends and libmicrohttpd calls again. A
             * tenant's stream is told nothing of other tenants' events: only the timed
             * heartbeat. */
            if (s->n_prefixes && now - s->last_write_ms >= s->heartbeat_ms)
                s->ops->heartbeat(s);
            else if (!s->n_prefixes && ++skipped % SSE_SKIP_NOTE == 0)
                store_buf_puts(&s->out, ":\n");
            continue;
        }
        if (now - s->last_write_ms >= s->heartbeat_ms) {
            s->ops->heartbeat(s);
            continue;
        }
        if (api__peer_closed(s->w.conn))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        s->w.deadline_ms = deadline(s);
        if (api__wait(srv, &s->w, gen))
            return 0;
    }
}

static void sse_free(void *cls)
{
    api_sse_t *s = cls;
    atomic_fetch_sub(&s->srv->sse_clients, 1);
    store_buf_release(&s->out);
    free(s->cell_key);
    free(s->prefixes);
    s->ops->dispose(s);
}

struct MHD_Response *api__sse_response(api_sse_t *s, size_t block)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, block, sse_read, s, sse_free);
    if (!resp) {
        sse_free(s);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return resp;
}
