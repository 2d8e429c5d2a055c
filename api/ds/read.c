/* read.c -- Durable Streams reads: message pages (catch-up and long-poll answers), HEAD,
 * GET and live=sse (docs/durable-streams.md).
 *
 * A read is one short store read transaction: the stream's record (state), then its
 * events after a sequence. For a fork the source's messages up to the fork point come
 * first, read through the same transaction, so a fork shares its source's offsets.
 *
 * live=sse runs on the one SSE loop (api/live/sse.c): each fill is one read, written as a
 * data event and a control event; a caught-up stream waits on its session's commits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ds/ds_int.h"
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
    if (store_mp_next(&m, &o) || o.type != STORE_MP_ARRAY || o.u < 7 || o.u > 9 ||
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
        return replay_write_event(pg->out, ev, pg->flags);
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
    ds_meta_t m = DS_META_INIT;
    int rc = ds__state(r, sid, sid_len, &rec, &m);
    ds__meta_release(&m); /* producers are not needed here */
    if (rc)
        return rc;
    uint64_t base = ds__base(&m);
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
    if (own + 1 < rec.first_sequence) /* retention removed them: read on from the first kept */
        pg->first_kept = base + rec.first_sequence;
    int left = 0;
    rc = store_events_after(r, sid, sid_len, own, 100000, walk_event, &w, &left);
    if (rc > 0)
        rc = REEL_OK;
    if (w.err)
        return w.err;
    *more = w.stopped || (left && !w.capped);
    return rc;
}

int ds__read(api_server_t *srv, const char *sid, size_t sid_len, uint64_t after, ds_page_t *pg)
{
    store_read_t r;
    store_session_t rec;
    ds_meta_t m = DS_META_INIT;
    int rc = store_read_begin(srv->store, &r);
    if (rc)
        return rc;
    pg->n = 0;
    pg->next = after;
    pg->at_end = pg->closed = pg->gone = 0;
    rc = ds__state(&r, sid, sid_len, &rec, &m);
    ds__meta_release(&m);
    if (rc == REEL_OK) {
        if (rec.status == STORE_DELETED ||
            ds__expired(&m, &rec, api__access_last(srv, rec.id, rec.id_len), (int64_t)store_wall_ms()))
            pg->gone = 1;
        int more = 0;
        uint64_t tail = 0;
        if (!pg->gone)
            rc = read_range(&r, sid, sid_len, after, UINT64_MAX, pg, 0, &more, &tail);
        if (rc == REEL_OK && !more) {
            pg->at_end = 1;
            if (tail > pg->next)
                pg->next = tail;
            pg->closed = m.closed;
        }
        if (rc == REEL_OK)
            rc = store_redaction_count(&r, &pg->redactions);
    }
    store_read_end(&r);
    if (rc == REEL_OK && store_buf_failed(pg->out))
        rc = REEL_ENOMEM;
    return rc;
}

/* ---- Server-Sent Events ---- */

typedef struct ds_sse {
    api_sse_t s;            /* first: the loop's state */
    char sid[STORE_SESSION_ID_MAX + 1];
    size_t sid_len;
    uint64_t next;          /* last offset sent */
    int json, b64;
    int flags;              /* api__render_flags() of the request */
    char cursor[32];        /* the client's cursor */
    store_buf_t msgs;       /* scratch: one read's messages */
    int controls;           /* control events sent */
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
    store_buf_t *out = &c->s.out;
    char off[DS_OFFSET_LEN + 1];
    ds__offset(next, off);
    store_buf_printf(out, "event: control\ndata:{\"streamNextOffset\":\"%s\"", off);
    if (closed) {
        store_buf_puts(out, ",\"streamClosed\":true");
    } else {
        store_buf_printf(out, ",\"streamCursor\":\"%llu\"",
                         (unsigned long long)ds__cursor(c->cursor));
        if (up_to_date)
            store_buf_puts(out, ",\"upToDate\":true");
    }
    store_buf_puts(out, "}\n\n");
    c->controls++;
}

static void data_event(ds_sse_t *c)
{
    store_buf_t *out = &c->s.out;
    store_buf_puts(out, "event: data\n");
    if (c->json) {
        store_buf_putc(&c->msgs, ']');
        store_buf_puts(out, "data:[");
        store_buf_put(out, c->msgs.data, c->msgs.len);
        store_buf_puts(out, "\n\n");
    } else if (c->b64) {
        store_buf_t t = STORE_BUF_INIT;
        ds__base64(&t, c->msgs.data, c->msgs.len);
        data_lines(out, t.data, t.len);
        store_buf_release(&t);
    } else {
        data_lines(out, c->msgs.data, c->msgs.len);
    }
}

/* One read: a data event with every message read, then a control event. A stream that
 * was deleted or expired ends the response. */
static int fill(api_sse_t *s, int *moved)
{
    ds_sse_t *c = (ds_sse_t *)s;
    store_buf_clear(&c->msgs);
    ds_page_t pg = {c->json, s->srv->lim.sse_buffer_bytes, &c->msgs, 0, 0, 0, 0, 0, 0, 0, c->flags};
    int rc = ds__read(s->srv, c->sid, c->sid_len, c->next, &pg);
    *moved = 0;
    if (rc == REEL_ESESSION_NOT_FOUND || (rc == REEL_OK && pg.gone)) {
        s->finished = 1;
        return REEL_OK;
    }
    if (rc)
        return rc;
    if (pg.n)
        data_event(c);
    int advanced = pg.next != c->next;
    c->next = pg.next;
    if (pg.at_end && pg.closed) {
        control(c, c->next, 1, 1);
        s->finished = 1;
    } else if (pg.n || advanced || c->controls == 0) {
        control(c, c->next, pg.at_end, 0);
    }
    return store_buf_failed(&c->msgs) ? REEL_ENOMEM : REEL_OK;
}

static void heartbeat(api_sse_t *s)
{
    ds_sse_t *c = (ds_sse_t *)s;
    control(c, c->next, 1, 0);
}

static void dispose(api_sse_t *s)
{
    ds_sse_t *c = (ds_sse_t *)s;
    store_buf_release(&c->msgs);
    free(c);
}

static const api_sse_ops_t ds_sse_ops = {fill, heartbeat, dispose};

static enum MHD_Result sse_start(api_req_t *rq, ds_req_t *d)
{
    enum MHD_Result answered;
    ds_sse_t *c = api__sse_new(rq, sizeof *c, &answered);
    if (!c)
        return answered;
    api__sse_init(&c->s, &ds_sse_ops, rq, DS_SSE_KEEPALIVE_MS, DS_SSE_MAX_MS);
    memcpy(c->sid, d->sid, d->sid_len);
    c->sid_len = d->sid_len;
    c->next = d->after;
    c->json = ds__is_json(d->ctype_read);
    c->flags = api__render_flags(rq, 0);
    c->b64 = !ds__is_text(d->ctype_read);
    snprintf(c->cursor, sizeof c->cursor, "%s", d->cursor);
    store_buf_init(&c->msgs);
    c->s.w.kind = API_WAIT_SESSION;
    c->s.w.session = c->sid;
    c->s.w.session_len = c->sid_len;
    struct MHD_Response *resp = api__sse_response(&c->s, 16384);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    if (c->b64)
        MHD_add_response_header(resp, "Stream-SSE-Data-Encoding", "base64");
    return api__queue(rq, 200, resp);
}

/* ---- HEAD ---- */

enum MHD_Result ds__head(api_req_t *rq, ds_req_t *d)
{
    store_session_t rec;
    ds_meta_t m = DS_META_INIT;
    int st = ds__find(rq, d, &rec, &m);
    if (st < 0)
        return api__problem(rq, st, "reading the stream failed");
    if (st == S_SOFT_DELETED) {
        ds__meta_release(&m);
        return api__problem(rq, REEL_EGONE, "stream '%.200s' was deleted", d->path);
    }
    if (st != S_LIVE) {
        ds__meta_release(&m);
        return ds__not_found(rq, d);
    }
    uint64_t tail = (m.is_fork ? m.fork_offset : 0) + rec.last_sequence;
    struct MHD_Response *r = ds__resp(NULL, 0);
    if (!r) {
        ds__meta_release(&m);
        return MHD_NO;
    }
    char off[DS_OFFSET_LEN + 1], etag[STORE_SESSION_ID_MAX + 160];
    ds__offset(tail, off);
    ds__hdr(r, "Stream-Next-Offset", off);
    ds__hdr(r, MHD_HTTP_HEADER_CONTENT_TYPE, m.ctype);
    ds__hdr(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (m.closed)
        ds__hdr(r, "Stream-Closed", "true");
    if (m.has_ttl)
        ds__hdr_u64(r, "Stream-TTL", m.ttl_s);
    if (m.has_expires)
        ds__hdr(r, "Stream-Expires-At", m.expires);
    snprintf(etag, sizeof etag, "\"%s:-1:%s%s\"", d->sid, off, m.closed ? ":c" : "");
    ds__hdr(r, MHD_HTTP_HEADER_ETAG, etag);
    ds__meta_release(&m);
    return api__queue(rq, 200, r);
}

/* ---- GET ---- */

static int parse_read_query(api_req_t *rq, ds_req_t *d)
{
    char live[32] = "";
    int n = api__query_count(rq, "offset");
    if (n > 1) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "send one 'offset'");
        return -1;
    }
    if (n == 1) {
        int rc = api__query(rq, "offset", d->offset_text, sizeof d->offset_text);
        if (rc < 0 || !d->offset_text[0]) {
            api__problem(rq, REEL_EINVALID_PARAMETER, "'offset' must be -1, now or an offset");
            return -1;
        }
        d->has_offset = 1;
        if (!strcmp(d->offset_text, "-1"))
            d->after = 0;
        else if (!strcmp(d->offset_text, "now"))
            d->off_now = 1;
        else if (ds__offset_parse(d->offset_text, &d->after)) {
            api__problem(rq, REEL_EINVALID_PARAMETER, "'offset' must be -1, now or an offset");
            return -1;
        }
    }
    if (api__query(rq, "live", live, sizeof live) > 0) {
        if (!strcmp(live, "long-poll"))
            d->live = 1;
        else if (!strcmp(live, "sse"))
            d->live = 2;
    }
    if (api__query(rq, "cursor", d->cursor, sizeof d->cursor) < 0)
        d->cursor[0] = '\0';
    if (d->live && !d->has_offset) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "live=%s needs an 'offset'", live);
        return -1;
    }
    return 0;
}

static enum MHD_Result read_reply(api_req_t *rq, ds_req_t *d, ds_page_t *pg, store_buf_t *out)
{
    char off[DS_OFFSET_LEN + 1], etag[STORE_SESSION_ID_MAX + 160], cur[32];
    ds__offset(pg->next, off);
    int closed = pg->closed && pg->at_end;
    char red[32] = ""; /* a store that was never redacted keeps the ETags it always had */
    if (pg->redactions)
        snprintf(red, sizeof red, ":r%llu", (unsigned long long)pg->redactions);
    snprintf(etag, sizeof etag, "\"%s:%s:%s%s%s\"", d->sid, d->has_offset ? d->offset_text : "-1",
             off, closed ? ":c" : "", red);
    const char *inm = api__header(rq, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && !strcmp(inm, etag)) {
        struct MHD_Response *r = ds__resp(NULL, 0);
        if (!r)
            return MHD_NO;
        ds__hdr(r, MHD_HTTP_HEADER_ETAG, etag);
        ds__hdr(r, "Stream-Next-Offset", off);
        return api__queue(rq, 304, r);
    }
    if (pg->json) {
        store_buf_putc(out, ']');
    }
    if (store_buf_failed(out))
        return api__problem(rq, REEL_ENOMEM, "the response did not fit in memory");
    struct MHD_Response *r = ds__resp(out->data, out->len);
    if (!r)
        return MHD_NO;
    ds__hdr(r, MHD_HTTP_HEADER_CONTENT_TYPE, d->ctype_read);
    ds__hdr(r, "Stream-Next-Offset", off);
    if (pg->first_kept) { /* docs/RETENTION.md: the messages before it are gone */
        char first[24];
        snprintf(first, sizeof first, "%llu", (unsigned long long)pg->first_kept);
        ds__hdr(r, "Reel-First-Sequence", first);
    }
    ds__hdr(r, MHD_HTTP_HEADER_ETAG, etag);
    if (pg->at_end)
        ds__hdr(r, "Stream-Up-To-Date", "true");
    if (closed)
        ds__hdr(r, "Stream-Closed", "true");
    if (d->live == 1) {
        snprintf(cur, sizeof cur, "%llu", (unsigned long long)ds__cursor(d->cursor));
        ds__hdr(r, "Stream-Cursor", cur);
    }
    /* Pages behind the tail never change: cacheable. The tail is not. */
    ds__hdr(r, MHD_HTTP_HEADER_CACHE_CONTROL,
        pg->at_end ? "no-store"
                   : rq->token_scope ? /* authenticated */ "private, max-age=60, stale-while-revalidate=300"
                                       : "public, max-age=60, stale-while-revalidate=300");
    return api__queue(rq, 200, r);
}

static enum MHD_Result long_poll_empty(api_req_t *rq, ds_req_t *d, uint64_t next, int closed)
{
    struct MHD_Response *r = ds__resp(NULL, 0);
    if (!r)
        return MHD_NO;
    char cur[32];
    ds__hdr_offset(r, next);
    ds__hdr(r, "Stream-Up-To-Date", "true");
    snprintf(cur, sizeof cur, "%llu", (unsigned long long)ds__cursor(d->cursor));
    ds__hdr(r, "Stream-Cursor", cur);
    if (closed)
        ds__hdr(r, "Stream-Closed", "true");
    ds__hdr(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return api__queue(rq, 204, r);
}

/* Reads a page, or waits (long-poll). Called first and on every wake-up. */
static enum MHD_Result read_or_wait(api_req_t *rq, ds_req_t *d)
{
    api_server_t *srv = rq->srv;
    for (;;) {
        uint64_t gen = api__gen(srv);
        store_buf_t out = STORE_BUF_INIT;
        int json = ds__is_json(d->ctype_read);
        if (json)
            store_buf_putc(&out, '[');
        ds_page_t pg = {json, DS_PAGE_BYTES, &out, 0, 0, 0, 0, 0, 0, 0, api__render_flags(rq, 0)};
        int rc = ds__read(srv, d->sid, d->sid_len, d->after, &pg);
        if (rc == REEL_OK && pg.gone)
            rc = REEL_ESESSION_NOT_FOUND;
        if (rc) {
            store_buf_release(&out);
            if (rc == REEL_ESESSION_NOT_FOUND)
                return ds__not_found(rq, d);
            return api__problem(rq, rc, "reading the stream failed: %s", reel_strerror(rc));
        }
        api__access_touch(rq->srv, d->sid, d->sid_len);
        if (d->live != 1 || pg.n) {
            enum MHD_Result r = read_reply(rq, d, &pg, &out);
            store_buf_release(&out);
            return r;
        }
        store_buf_release(&out);
        if (pg.at_end && pg.closed)
            return long_poll_empty(rq, d, pg.next, 1);
        uint64_t deadline = rq->start_ms + rq->srv->lim.ds_long_poll_ms;
        if (api__now_ms() >= deadline || api__stopping(srv))
            return long_poll_empty(rq, d, d->after, 0);
        rq->phase = DS_WAIT;
        if (api__wait_for(rq, &d->waiter, API_WAIT_SESSION, d->sid, d->sid_len, deadline, gen))
            return MHD_YES;
    }
}

enum MHD_Result ds__get(api_req_t *rq, ds_req_t *d)
{
    if (rq->phase == DS_WAIT)
        return read_or_wait(rq, d);
    if (parse_read_query(rq, d))
        return MHD_YES;
    store_session_t rec;
    ds_meta_t m = DS_META_INIT;
    int st = ds__find(rq, d, &rec, &m);
    if (st < 0)
        return api__problem(rq, st, "reading the stream failed");
    snprintf(d->ctype_read, sizeof d->ctype_read, "%s", m.ctype);
    uint64_t tail = (m.is_fork ? m.fork_offset : 0) + rec.last_sequence;
    int closed = m.closed;
    ds__meta_release(&m);
    if (st == S_SOFT_DELETED)
        return api__problem(rq, REEL_EGONE, "stream '%.200s' was deleted", d->path);
    if (st != S_LIVE)
        return ds__not_found(rq, d);
    api__access_touch(rq->srv, d->sid, d->sid_len);
    if (d->off_now)
        d->after = tail;
    if (d->live == 2)
        return sse_start(rq, d);
    if (d->off_now && d->live != 1) {
        int json = ds__is_json(d->ctype_read);
        struct MHD_Response *r = ds__resp(json ? "[]" : "", json ? 2 : 0);
        if (!r)
            return MHD_NO;
        ds__hdr(r, MHD_HTTP_HEADER_CONTENT_TYPE, d->ctype_read);
        ds__hdr_offset(r, tail);
        ds__hdr(r, "Stream-Up-To-Date", "true");
        ds__hdr(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        if (closed)
            ds__hdr(r, "Stream-Closed", "true");
        return api__queue(rq, 200, r);
    }
    return read_or_wait(rq, d);
}

