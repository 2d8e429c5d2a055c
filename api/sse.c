/* sse.c -- Server-Sent Events: /v1/sessions/{id}/events/sse and /v1/events/sse.
 *
 * Pull model (research/anchors-reliability.md §5.3): a client holds only the last key it
 * was sent ('next': a sequence, or a position on the feed). libmicrohttpd calls the
 * content reader when the socket can take more bytes; the reader hands out what is left
 * of its buffer, or fills the buffer with one bounded batch read on a short read
 * transaction (at least one event, then up to sse_buffer_bytes). When caught up it
 * suspends the connection as a waiter and returns 0; a commit, the watcher or the
 * heartbeat deadline resumes it. Nothing is queued per client beyond that one buffer, so
 * a reader that stops reading costs at most sse_buffer_bytes plus MHD's connection
 * memory; its connection makes no progress and libmicrohttpd closes it after the request
 * timeout. It can reconnect with Last-Event-ID and misses nothing.
 *
 * Messages: "id: <key>\ndata: <event JSON>\n\n" (JSON has no raw newlines), comment
 * heartbeats ": keepalive\n\n" every API_HEARTBEAT_MS, and "retry: 2000" first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "replay/replay.h"

#define SSE_BATCH 256         /* events per read */
#define SSE_KEEP_CAP (16u << 10) /* buffers bigger than this are freed when drained */

typedef struct api_sse {
    api_server_t *srv;
    api_waiter_t w;
    int feed;
    char session[STORE_SESSION_ID_MAX + 1];
    size_t session_len;
    uint64_t next;           /* last key sent (sequence or position) */
    int include_raw;
    char types[1024];        /* filter or "" */
    store_buf_t out;         /* bytes read and not yet handed to MHD */
    size_t off;              /* bytes of 'out' already handed out */
    uint64_t last_write_ms;
    int started;
    int ended;               /* the session was deleted: end the stream */
} api_sse_t;


static int sse_event(void *arg, const store_event_view_t *ev)
{
    api_sse_t *c = arg;
    uint64_t key = c->feed ? ev->position : ev->sequence;
    if (c->out.len >= c->srv->lim.sse_buffer_bytes)
        return 1; /* full: the rest waits for the next read */
    if (c->types[0] && !replay_type_listed(ev, c->types)) {
        c->next = key;
        return 0;
    }
    size_t mark = c->out.len;
    store_buf_printf(&c->out, "id: %llu\ndata: ", (unsigned long long)key);
    if (api__render_event(c->srv, &c->out, ev, c->include_raw) != REEL_OK) {
        c->out.len = mark;
        return REEL_ECORRUPT;
    }
    store_buf_puts(&c->out, "\n\n");
    c->next = key;
    return 0;
}

/* Reads the next batch into c->out. Returns REEL_OK (maybe with nothing new) or an
 * error that ends the stream. */
static int fill(api_sse_t *c)
{
    store_read_t r;
    int rc = store_read_begin(c->srv->store, &r);
    if (rc != REEL_OK)
        return rc;
    if (c->feed)
        rc = store_feed_after(&r, c->next, SSE_BATCH, sse_event, c, NULL);
    else if ((rc = api__session_readable(&r, c->session, c->session_len)) == REEL_OK)
        rc = store_events_after(&r, c->session, c->session_len, c->next, SSE_BATCH, sse_event,
                                c, NULL);
    store_read_end(&r);
    if (rc > 0) /* stopped by sse_event: the buffer is full */
        rc = REEL_OK;
    if (rc == REEL_OK && store_buf_failed(&c->out))
        rc = REEL_ENOMEM;
    return rc;
}

static ssize_t give(api_sse_t *c, char *buf, size_t max)
{
    size_t n = c->out.len - c->off;
    if (n > max)
        n = max;
    memcpy(buf, c->out.data + c->off, n);
    c->off += n;
    c->last_write_ms = api__now_ms();
    return (ssize_t)n;
}

static void drained(api_sse_t *c)
{
    c->off = 0;
    if (c->out.cap > SSE_KEEP_CAP)
        store_buf_release(&c->out);
    else
        store_buf_clear(&c->out);
}

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

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    api_sse_t *c = cls;
    api_server_t *srv = c->srv;
    if (!c->started) {
        c->started = 1;
        store_buf_puts(&c->out, "retry: 2000\n\n");
    }
    for (int skipped = 0;;) {
        if (c->off < c->out.len)
            return give(c, buf, max);
        drained(c);
        if (api__stopping(srv))
            return MHD_CONTENT_READER_END_OF_STREAM;
        uint64_t gen = api__gen(srv), before = c->next;
        int rc = fill(c);
        if (rc != REEL_OK)
            return rc == REEL_ESESSION_NOT_FOUND || rc == REEL_EGONE
                       ? MHD_CONTENT_READER_END_OF_STREAM
                       : MHD_CONTENT_READER_END_WITH_ERROR;
        if (c->out.len)
            continue;
        if (c->next != before) {
            /* A 'types' filter skipped a whole batch: keep scanning, but after a few
             * batches hand out a comment so that this call ends and MHD calls again. */
            if (++skipped % 8 == 0)
                store_buf_puts(&c->out, ":\n");
            continue;
        }
        uint64_t now = api__now_ms();
        if (now - c->last_write_ms >= API_HEARTBEAT_MS) {
            store_buf_puts(&c->out, ": keepalive\n\n");
            continue;
        }
        if (api__peer_closed(c->w.conn))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        c->w.deadline_ms = c->last_write_ms + API_HEARTBEAT_MS;
        if (api__wait(srv, &c->w, gen))
            return 0;
    }
}

static void sse_free(void *cls)
{
    api_sse_t *c = cls;
    atomic_fetch_sub(&c->srv->sse_clients, 1);
    store_buf_release(&c->out);
    free(c);
}

/* Parses the starting key: Last-Event-ID wins over the query parameter. */
static int start_key(api_req_t *rq, int feed, uint64_t *key)
{
    const char *lei = api__header(rq, "Last-Event-ID");
    if (lei) {
        char *end;
        if (!*lei || *lei < '0' || *lei > '9')
            goto bad;
        unsigned long long v = strtoull(lei, &end, 10);
        if (*end || v > INT64_MAX)
            goto bad;
        *key = v;
        return REEL_OK;
    bad:
        api__problem(rq, REEL_EINVALID_PARAMETER, "Last-Event-ID must be an integer, not '%.40s'",
                     lei);
        return REEL_EINVALID_PARAMETER;
    }
    return api__query_u64(rq, feed ? "after" : "offset", INT64_MAX, key);
}

static int session_exists(api_req_t *rq)
{
    store_read_t r;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc != REEL_OK)
        return rc;
    rc = api__session_readable(&r, rq->session, rq->session_len);
    store_read_end(&r);
    return rc;
}

static enum MHD_Result sse_reply(api_req_t *rq, api_sse_t *c)
{
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, sse_read, c, sse_free);
    if (!resp) {
        sse_free(c);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return api__queue(rq, 200, resp);
}

enum MHD_Result api__sse_start(api_req_t *rq, int feed)
{
    api_server_t *srv = rq->srv;
    uint64_t key = 0;
    int raw = 0;
    char types[1024] = "";
    if (start_key(rq, feed, &key) != REEL_OK || api__query_bool(rq, "include_raw", &raw) != REEL_OK)
        return MHD_YES;
    if (api__query(rq, "types", types, sizeof types) < 0)
        return api__problem(rq, REEL_EINVALID_PARAMETER, "'types' is not valid");
    if (!feed) {
        int rc = session_exists(rq);
        if (rc == REEL_ESESSION_NOT_FOUND)
            return api__problem(rq, rc, "session '%s' does not exist", rq->session);
        if (rc == REEL_EGONE)
            return api__problem(rq, rc, "session '%s' was deleted", rq->session);
        if (rc != REEL_OK)
            return api__problem(rq, rc, "reading the session failed: %s", reel_strerror(rc));
    }
    enum MHD_Result full;
    if (api__sse_slot(rq, &full))
        return full;
    api_sse_t *c = calloc(1, sizeof *c);
    if (!c) {
        atomic_fetch_sub(&srv->sse_clients, 1);
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    }
    c->srv = srv;
    c->feed = feed;
    memcpy(c->session, rq->session, rq->session_len + 1);
    c->session_len = rq->session_len;
    c->next = key;
    c->include_raw = raw;
    memcpy(c->types, types, sizeof types);
    store_buf_init(&c->out);
    c->last_write_ms = api__now_ms();
    c->w.conn = rq->conn;
    c->w.kind = feed ? API_WAIT_FEED : API_WAIT_SESSION;
    c->w.session = c->session;
    c->w.session_len = c->session_len;
    return sse_reply(rq, c);
}
