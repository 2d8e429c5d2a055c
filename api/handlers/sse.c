/* sse.c -- Server-Sent Events of a session and of the feed: /v1/sessions/{id}/events/sse
 * and /v1/events/sse (docs/HTTP.md "Server-Sent Events").
 *
 * The loop is api/live/sse.c's; this file gives it the session routes' messages. A
 * client holds only the last key it was sent ('next': a sequence, or a position on the
 * feed), so a reconnect with Last-Event-ID misses nothing (docs/RELIABILITY.md). Each
 * fill is one bounded read through replay_scan(): at least one event, then up to
 * sse_buffer_bytes.
 *
 * Messages: "id: <key>\ndata: <event JSON>\n\n" (JSON has no raw newlines), comment
 * heartbeats ": keepalive\n\n" every API_HEARTBEAT_MS, and "retry: 2000" first; on a
 * session stream asked for events retention trimmed, one "event: reel.trimmed" first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers/handlers.h"
#include "api/live/live.h"
#include "replay/replay.h"
#include "store/parse.h"

#define SSE_BATCH 256 /* events examined per read */

typedef struct feed_sse {
    api_sse_t s;             /* first: the loop's state */
    int feed;
    char session[STORE_SESSION_ID_MAX + 1];
    size_t session_len;
    uint64_t next;           /* last key sent (sequence or position) */
    uint32_t next_index;     /* with 'changes': the change index of the last item sent */
    int changes, bodies;     /* the feed with changes (changes.c) */
    int kept_hashes;         /* api__feed_kept() */
    int skip_copied; /* the feed passes over copies a shard move made (docs/CLUSTER.md) */
    int flags;               /* api__render_flags() */
    char types[1024];        /* filter or "" */
} feed_sse_t;

static int sse_event(void *arg, const store_event_view_t *ev, uint64_t key)
{
    feed_sse_t *c = arg;
    store_buf_t *out = &c->s.out;
    if (out->len >= c->s.srv->lim.sse_buffer_bytes)
        return 1; /* full: the rest waits for the next read */
    size_t mark = out->len;
    if (c->feed && c->s.n_prefixes) { /* a tenant's feed: sealed ids (events.c) */
        char sealed[API_SEAL_LEN + 1];
        if (api__seal(c->s.srv, key, sealed) != REEL_OK)
            return REEL_EINTERNAL;
        store_buf_printf(out, "id: %s\ndata: ", sealed);
    } else {
        store_buf_printf(out, "id: %llu\ndata: ", (unsigned long long)key);
    }
    if (api__render_event(c->s.srv, out, ev, c->flags) != REEL_OK) {
        out->len = mark;
        return REEL_ECORRUPT;
    }
    store_buf_puts(out, "\n\n");
    return 0;
}

/* A tenant's feed keeps the sessions under the stream's prefixes (store.h 'only'). */
static int tenant_only(void *arg, const char *id, size_t len)
{
    const api_sse_t *s = arg;
    const char *p = s->prefixes;
    for (size_t i = 0; i < s->n_prefixes; i++, p += strlen(p) + 1)
        if (strlen(p) <= len && !memcmp(id, p, strlen(p)))
            return 1;
    return 0;
}

/* Reads the next batch into the output. A deleted or missing session ends the stream. */
static int fill(api_sse_t *s, int *moved)
{
    feed_sse_t *c = (feed_sse_t *)s;
    store_read_t r;
    int rc = store_read_begin(s->srv->store, &r);
    if (rc != REEL_OK)
        return rc;
    uint64_t first = 1;
    if (!c->feed)
        rc = api__session_readable_from(&r, c->session, c->session_len, &first);
    if (rc == REEL_OK && !c->feed && c->next + 1 < first) {
        /* Retention trimmed the events the client asked for: say so once, with the id of
         * the place the stream goes on from (docs/HTTP.md "Server-Sent Events"). */
        store_buf_printf(&s->out, "event: reel.trimmed\nid: %llu\ndata: {\"first_sequence\":%llu,"
                         "\"requested_offset\":%llu}\n\n", (unsigned long long)(first - 1),
                         (unsigned long long)first, (unsigned long long)c->next);
        c->next = first - 1;
        *moved = 1;
    }
    /* every event goes through api__render_event(), which serves the envelope */
    r.envelopes = !(c->flags & REPLAY_RAW) && !c->types[0];
    if (rc == REEL_OK && c->changes) {
        store_read_end(&r); /* api__cfeed_read() takes its own */
        api_cfeed_t f = {.srv = s->srv, .out = &s->out, .sse = 1,
                         .include_raw = c->flags & REPLAY_RAW, .bodies = c->bodies,
                         .kept_hashes = c->kept_hashes, .max_bytes = s->srv->lim.sse_buffer_bytes,
                         .skip_copied = c->skip_copied};
        rc = api__cfeed_read(&f, c->next, c->next_index, SSE_BATCH);
        *moved = f.n > 0 || f.last != c->next || f.last_index != c->next_index;
        c->next = f.last;
        c->next_index = f.last_index;
        return rc;
    }
    r.skip_copied = c->feed && c->skip_copied;
    if (c->feed && s->n_prefixes) {
        r.only = tenant_only;
        r.only_arg = s;
    }
    if (rc == REEL_OK) {
        replay_scan_t sc = {c->feed ? NULL : c->session, c->session_len,
                            c->types[0] ? c->types : NULL, SSE_BATCH, 0, 0};
        rc = replay_scan(&r, &sc, c->next, sse_event, c);
        *moved |= sc.scanned != c->next;
        c->next = sc.scanned;
    }
    store_read_end(&r);
    if (rc == REEL_ESESSION_NOT_FOUND || rc == REEL_EGONE) {
        s->finished = 1;
        return REEL_OK;
    }
    return rc;
}

static void heartbeat(api_sse_t *s)
{
    store_buf_puts(&s->out, ": keepalive\n\n");
}

static void dispose(api_sse_t *s)
{
    free(s);
}

static const api_sse_ops_t feed_ops = {fill, heartbeat, dispose};

/* Parses the starting key: Last-Event-ID wins over the query parameter. A tenant's feed
 * takes 0 or a sealed id or next_after (events.c). */
static int start_key(api_req_t *rq, int feed, uint64_t *key)
{
    const char *lei = api__header(rq, "Last-Event-ID");
    if (feed && rq->n_prefixes) {
        char v[API_SEAL_LEN + 8];
        int rc = lei ? (int)snprintf(v, sizeof v, "%s", lei) : api__query(rq, "after", v, sizeof v);
        *key = 0;
        if (rc == 0 || (rc > 0 && !strcmp(v, "0")) ||
            (rc > 0 && rc < (int)sizeof v && api__unseal(rq->srv, v, strlen(v), key) == REEL_OK))
            return REEL_OK;
        api__problem(rq, REEL_EINVALID_PARAMETER, "%s must be 0 or an id this server gave: a "
                     "token limited to session prefixes reads the feed with sealed cursors",
                     lei ? "Last-Event-ID" : "'after'");
        return REEL_EINVALID_PARAMETER;
    }
    if (lei) {
        uint64_t v;
        if (store_parse_u64(lei, strlen(lei), &v) != REEL_OK || v > INT64_MAX) {
            api__problem(rq, REEL_EINVALID_PARAMETER,
                         "Last-Event-ID must be an integer, not '%.40s'", lei);
            return REEL_EINVALID_PARAMETER;
        }
        *key = v;
        return REEL_OK;
    }
    return api__query_u64(rq, feed ? "after" : "offset", INT64_MAX, key);
}

/* The feed with changes: 'changes', 'bodies' and the cursor 'after' (api__feed_params),
 * which Last-Event-ID ("P" or "P.I", the ids this stream sends) overrides. */
static int cfeed_start(api_req_t *rq, const char *types)
{
    rq->types[0] = types[0];
    if (api__feed_params(rq) < 0)
        return REEL_EINVALID_PARAMETER;
    const char *lei = api__header(rq, "Last-Event-ID");
    if (lei && api__cursor_parse(lei, &rq->offset, &rq->after_index)) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "Last-Event-ID must be a cursor of the feed "
                     "with changes (P or P.I), not '%.40s'", lei);
        return REEL_EINVALID_PARAMETER;
    }
    return REEL_OK;
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

static enum MHD_Result sse_start(api_req_t *rq, int feed)
{
    uint64_t key = 0;
    int raw = 0;
    char types[1024] = "";
    if (api__query(rq, "types", types, sizeof types) < 0)
        return api__problem(rq, REEL_EINVALID_PARAMETER, "'types' is not valid");
    int changes = 0, skip_copied = 0;
    if ((feed && api__query_bool(rq, "changes", &changes) != REEL_OK) ||
        (feed && api__query_bool(rq, "skip_copied", &skip_copied) != REEL_OK) ||
        api__query_bool(rq, "include_raw", &raw) != REEL_OK)
        return MHD_YES;
    if (changes ? cfeed_start(rq, types) != REEL_OK : start_key(rq, feed, &key) != REEL_OK)
        return MHD_YES;
    if (changes)
        key = rq->offset;
    if (!feed) {
        int rc = session_exists(rq);
        if (rc != REEL_OK)
            return api__session_problem(rq, rc, "reading the session");
    }
    enum MHD_Result answered;
    feed_sse_t *c = api__sse_new(rq, sizeof *c, &answered);
    if (!c)
        return answered;
    api__sse_init(&c->s, &feed_ops, rq, API_HEARTBEAT_MS, 0);
    c->feed = feed;
    memcpy(c->session, rq->session, rq->session_len + 1);
    c->session_len = rq->session_len;
    c->next = key;
    c->flags = api__render_flags(rq, raw);
    c->changes = rq->changes;
    c->bodies = rq->bodies;
    c->kept_hashes = api__feed_kept(rq);
    c->skip_copied = skip_copied;
    c->next_index = rq->after_index;
    memcpy(c->types, types, sizeof types);
    c->s.w.kind = feed ? API_WAIT_FEED : API_WAIT_SESSION;
    c->s.w.session = c->session;
    c->s.w.session_len = c->session_len;
    store_buf_puts(&c->s.out, "retry: 2000\n\n");
    struct MHD_Response *resp = api__sse_response(&c->s, 4096);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return api__queue(rq, 200, resp);
}

enum MHD_Result api__session_sse(api_req_t *rq, const char *data, size_t *size)
{
    return sse_start(rq, 0);
}

enum MHD_Result api__feed_sse(api_req_t *rq, const char *data, size_t *size)
{
    return sse_start(rq, 1);
}
