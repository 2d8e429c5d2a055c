/* stream_read.c -- Durable Streams reads: message pages (catch-up and long-poll answers,
 * built in stream.c) and live=sse (docs/durable-streams.md).
 *
 * A read is one short store read transaction: the stream's record (state), then its
 * events after a sequence. For a fork the source's messages up to the fork point come
 * first, read through the same transaction, so a fork shares its source's offsets.
 *
 * SSE follows the pull model of sse.c: the content reader fills a bounded buffer from one
 * read, or suspends the connection as a waiter of the stream's session until a commit,
 * the keep-alive deadline or shutdown resumes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/stream_int.h"
#include "replay/replay.h"
#include "store/json.h"

/* ---- Pages ---- */

struct walk {
    ds_page_t *pg;
    uint64_t base;   /* offset of the session's sequence 0 (a fork's fork point) */
    uint64_t cap;    /* last offset to include */
    int plain;       /* a session not made by the protocol: every event is a message */
    int stopped;     /* the page is full */
    int capped;      /* reached 'cap' (a fork's source ends there) */
    int err;
};

/* Positions 'data' at element 5 (data) of an event body; '*msg' says whether the event
 * is a stream message (type "stream.message"). */
static int body_data(const store_event_view_t *ev, int *msg, store_mp_t *data)
{
    store_mp_t m = {ev->body, ev->body + ev->body_len};
    store_mp_obj_t o;
    if (store_mp_next(&m, &o) || o.type != STORE_MP_ARRAY || o.u != 7 ||
        store_mp_skip(&m, 1) || store_mp_next(&m, &o) || o.type != STORE_MP_STR)
        return REEL_ECORRUPT;
    *msg = o.len == sizeof DS_TYPE_MESSAGE - 1 && !memcmp(o.ptr, DS_TYPE_MESSAGE, o.len);
    for (int i = 0; i < 3; i++)
        if (store_mp_skip(&m, 1))
            return REEL_ECORRUPT;
    *data = m;
    return REEL_OK;
}

static int write_message(struct walk *w, const store_event_view_t *ev)
{
    ds_page_t *pg = w->pg;
    if (w->plain) { /* the whole event, as the sessions routes serve it */
        if (pg->json && pg->n)
            store_buf_putc(pg->out, ',');
        return replay_write_event(pg->out, ev, 0);
    }
    int msg;
    store_mp_t data;
    int rc = body_data(ev, &msg, &data);
    if (rc || !msg)
        return rc ? rc : 1; /* 1: not a message (a close marker) */
    if (pg->json) {
        if (pg->n)
            store_buf_putc(pg->out, ',');
        return store_mp_to_json(&data, pg->out, STORE_JSON_MAX_DEPTH);
    }
    store_mp_t peek = data;
    store_mp_obj_t o;
    if (store_mp_next(&peek, &o))
        return REEL_ECORRUPT;
    if (o.type == STORE_MP_BIN) {
        store_buf_put(pg->out, o.ptr, o.len);
        return REEL_OK;
    }
    if (o.type == STORE_MP_STR) {
        /* Byte messages are stored as bin, which exports carry as base64 strings; a
         * message imported from an export comes back as that string: decode it. */
        if (ds__unbase64(pg->out, o.ptr, o.len) < 0)
            store_buf_put(pg->out, o.ptr, o.len);
        return REEL_OK;
    }
    if (o.type == STORE_MP_NIL)
        return REEL_OK;
    return store_mp_to_json(&data, pg->out, STORE_JSON_MAX_DEPTH);
}

static int walk_event(void *arg, const store_event_view_t *ev)
{
    struct walk *w = arg;
    ds_page_t *pg = w->pg;
    uint64_t off = w->base + ev->sequence;
    if (off > w->cap) {
        w->capped = 1;
        return 1;
    }
    if (pg->n && pg->out->len >= pg->budget) {
        w->stopped = 1;
        return 1;
    }
    int rc = write_message(w, ev);
    if (rc < 0 || rc > 1) {
        w->err = rc;
        return 1;
    }
    if (rc == 0)
        pg->n++;
    pg->next = off;
    return 0;
}

/* Reads session 'sid' (offsets 'after' < o <= 'cap') into 'pg', sources of forks first.
 * Returns REEL_OK, or an error; sets 'more' when the page stopped early. */
static int read_range(store_read_t *r, const char *sid, size_t sid_len, uint64_t after,
                      uint64_t cap, ds_page_t *pg, int depth, int *more, uint64_t *tail)
{
    store_session_t rec;
    ds_meta_t m;
    int rc = store_session_get(r, sid, sid_len, &rec);
    if (rc)
        return rc;
    if (ds__meta_parse(rec.metadata, rec.metadata_len, &m)) {
        ds__meta_release(&m);
        return REEL_ECORRUPT;
    }
    ds__meta_release(&m); /* producers are not needed here */
    uint64_t base = m.is_fork ? m.fork_offset : 0;
    *tail = base + rec.last_sequence;
    if (m.is_fork && after < base && depth < 64) {
        uint64_t src_tail;
        uint64_t c = cap < base ? cap : base;
        rc = read_range(r, m.fork_of, strlen(m.fork_of), after, c, pg, depth + 1, more,
                        &src_tail);
        if (rc == REEL_ESESSION_NOT_FOUND)
            rc = REEL_OK;
        if (rc || *more)
            return rc;
        after = base;
    }
    if (rec.status == STORE_DELETED || cap <= base)
        return REEL_OK;
    struct walk w = {pg, base, cap, !m.is_stream, 0, 0, 0};
    uint64_t own = after > base ? after - base : 0;
    int left = 0;
    rc = store_events_after(r, sid, sid_len, own, 100000, walk_event, &w, &left);
    if (rc > 0)
        rc = REEL_OK;
    if (w.err)
        return w.err;
    *more = w.stopped || (left && !w.capped);
    return rc;
}

int ds__read(store_t *s, const char *sid, size_t sid_len, uint64_t after, ds_page_t *pg)
{
    store_read_t r;
    store_session_t rec;
    ds_meta_t m;
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    pg->n = 0;
    pg->next = after;
    pg->at_end = pg->closed = pg->gone = 0;
    rc = store_session_get(&r, sid, sid_len, &rec);
    if (rc == REEL_OK && ds__meta_parse(rec.metadata, rec.metadata_len, &m) == 0) {
        int closed = m.closed;
        if (rec.status == STORE_DELETED || ds__expired(&m, &rec, ds__wall_ms()))
            pg->gone = 1;
        ds__meta_release(&m);
        int more = 0;
        uint64_t tail = 0;
        if (!pg->gone)
            rc = read_range(&r, sid, sid_len, after, UINT64_MAX, pg, 0, &more, &tail);
        if (rc == REEL_OK && !more) {
            pg->at_end = 1;
            if (tail > pg->next)
                pg->next = tail;
            pg->closed = closed;
        }
    } else if (rc == REEL_OK) {
        rc = REEL_ECORRUPT;
    }
    store_read_end(&r);
    if (rc == REEL_OK && store_buf_failed(pg->out))
        rc = REEL_ENOMEM;
    return rc;
}

/* ---- Server-Sent Events ---- */

typedef struct ds_sse {
    api_server_t *srv;
    api_waiter_t w;
    char sid[STORE_SESSION_ID_MAX + 1];
    size_t sid_len;
    uint64_t next;          /* last offset sent */
    int json, b64;
    char cursor[32];        /* the client's cursor */
    store_buf_t out;        /* bytes not yet handed to MHD */
    size_t off;
    store_buf_t msgs;       /* scratch: one read's messages */
    uint64_t start_ms, last_write_ms;
    int controls;           /* control events sent */
    int finished;           /* the final event is in 'out' */
} ds_sse_t;

/* Writes 'p' as SSE data lines: every CR, LF or CRLF starts a new "data:" line, so no
 * payload byte can end the event or start another (CRLF injection). No space follows
 * "data:": a client strips exactly one, which would eat a payload's leading space. */
static void data_lines(store_buf_t *out, const uint8_t *p, size_t n)
{
    size_t i = 0, start = 0;
    for (;;) {
        if (i == n || p[i] == '\r' || p[i] == '\n') {
            store_buf_puts(out, "data:");
            store_buf_put(out, p + start, i - start);
            store_buf_putc(out, '\n');
            if (i == n)
                break;
            if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
                i++;
            start = ++i;
            continue;
        }
        i++;
    }
    store_buf_putc(out, '\n');
}

static void control(ds_sse_t *c, uint64_t next, int up_to_date, int closed)
{
    char off[DS_OFFSET_LEN + 1];
    ds__offset(next, off);
    store_buf_printf(&c->out, "event: control\ndata:{\"streamNextOffset\":\"%s\"", off);
    if (closed) {
        store_buf_puts(&c->out, ",\"streamClosed\":true");
    } else {
        store_buf_printf(&c->out, ",\"streamCursor\":\"%llu\"",
                         (unsigned long long)ds__cursor(c->cursor));
        if (up_to_date)
            store_buf_puts(&c->out, ",\"upToDate\":true");
    }
    store_buf_puts(&c->out, "}\n\n");
    c->controls++;
}

/* One read: a data event with every message read, then a control event. Returns REEL_OK
 * with 1 in '*wrote' when something was queued. */
static int fill(ds_sse_t *c, int *wrote)
{
    store_buf_clear(&c->msgs);
    ds_page_t pg = {c->json, c->srv->lim.sse_buffer_bytes, &c->msgs, 0, 0, 0, 0, 0};
    int rc = ds__read(c->srv->store, c->sid, c->sid_len, c->next, &pg);
    *wrote = 0;
    if (rc == REEL_ESESSION_NOT_FOUND || (rc == REEL_OK && pg.gone)) {
        c->finished = 1;
        return REEL_OK;
    }
    if (rc)
        return rc;
    if (pg.n) {
        store_buf_puts(&c->out, "event: data\n");
        if (c->json) {
            store_buf_putc(&c->msgs, ']');
            store_buf_puts(&c->out, "data:[");
            store_buf_put(&c->out, c->msgs.data, c->msgs.len);
            store_buf_puts(&c->out, "\n\n");
        } else if (c->b64) {
            store_buf_t t = STORE_BUF_INIT;
            ds__base64(&t, c->msgs.data, c->msgs.len);
            data_lines(&c->out, t.data, t.len);
            store_buf_release(&t);
        } else {
            data_lines(&c->out, c->msgs.data, c->msgs.len);
        }
    }
    int moved = pg.next != c->next;
    c->next = pg.next;
    if (pg.at_end && pg.closed) {
        control(c, c->next, 1, 1);
        c->finished = 1;
        *wrote = 1;
    } else if (pg.n || moved || c->controls == 0) {
        control(c, c->next, pg.at_end, 0);
        *wrote = 1;
    }
    return store_buf_failed(&c->out) ? REEL_ENOMEM : REEL_OK;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    ds_sse_t *c = cls;
    api_server_t *srv = c->srv;
    (void)pos;
    for (;;) {
        if (c->off < c->out.len) {
            size_t n = c->out.len - c->off;
            if (n > max)
                n = max;
            memcpy(buf, c->out.data + c->off, n);
            c->off += n;
            c->last_write_ms = api__now_ms();
            return (ssize_t)n;
        }
        c->off = 0;
        store_buf_clear(&c->out);
        uint64_t now = api__now_ms();
        if (c->finished || api__stopping(srv) || now - c->start_ms >= DS_SSE_MAX_MS)
            return MHD_CONTENT_READER_END_OF_STREAM;
        uint64_t gen = api__gen(srv);
        int wrote;
        if (fill(c, &wrote) != REEL_OK)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (wrote)
            continue;
        if (now - c->last_write_ms >= DS_SSE_KEEPALIVE_MS) {
            control(c, c->next, 1, 0);
            continue;
        }
        if (api__peer_closed(c->w.conn))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        c->w.deadline_ms = c->last_write_ms + DS_SSE_KEEPALIVE_MS;
        if (c->w.deadline_ms > c->start_ms + DS_SSE_MAX_MS)
            c->w.deadline_ms = c->start_ms + DS_SSE_MAX_MS;
        if (api__wait(srv, &c->w, gen))
            return 0;
    }
}

static void sse_free(void *cls)
{
    ds_sse_t *c = cls;
    atomic_fetch_sub(&c->srv->sse_clients, 1);
    store_buf_release(&c->out);
    store_buf_release(&c->msgs);
    free(c);
}

enum MHD_Result ds__sse_start(api_req_t *rq, const char *sid, size_t sid_len, uint64_t after,
                              const char *ctype, const char *cursor)
{
    api_server_t *srv = rq->srv;
    enum MHD_Result full;
    if (api__sse_slot(rq, &full))
        return full;
    ds_sse_t *c = calloc(1, sizeof *c);
    if (!c) {
        atomic_fetch_sub(&srv->sse_clients, 1);
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    }
    c->srv = srv;
    memcpy(c->sid, sid, sid_len);
    c->sid_len = sid_len;
    c->next = after;
    c->json = ds__is_json(ctype);
    c->b64 = !ds__is_text(ctype);
    snprintf(c->cursor, sizeof c->cursor, "%s", cursor ? cursor : "");
    store_buf_init(&c->out);
    store_buf_init(&c->msgs);
    c->start_ms = c->last_write_ms = api__now_ms();
    c->w.conn = rq->conn;
    c->w.kind = API_WAIT_SESSION;
    c->w.session = c->sid;
    c->w.session_len = c->sid_len;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, sse_read, c, sse_free);
    if (!resp) {
        sse_free(c);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    if (c->b64)
        MHD_add_response_header(resp, "Stream-SSE-Data-Encoding", "base64");
    return api__queue(rq, 200, resp);
}
