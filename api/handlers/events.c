/* events.c -- POST/GET /v1/sessions/{id}/events and GET /v1/events (docs/HTTP.md).
 *
 * Appends: the body is collected (bounded), parsed by ingest/ into one atomic batch,
 * then the connection is suspended and the batch handed to the committer. The
 * committer's callback resumes the connection once the batch is durable, and the
 * handler, called again, answers with the assigned sequences. No server thread waits
 * for fsync.
 *
 * Reads: one short read transaction per page, walked by replay_scan() (the 'types'
 * filter included). A long-poll ('wait') that finds nothing suspends the connection as a
 * waiter (api/core/wait.c) and reads again when woken.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers/handlers.h"
#include "api/live/live.h"
#include "ingest/ingest.h"
#include "replay/replay.h"

#define SCAN_BUDGET 20000  /* events one filtered page may examine before it stops */

enum { APPEND_BODY = API_PHASE_OWN, APPEND_COMMIT, APPEND_LAG, READ_WAIT = API_PHASE_OWN };

/* ---- Append ---- */

/* The body format from Content-Type, or -1 for an unsupported type. A missing type is
 * taken as JSON (curl --data-binary without -H). */
static int body_format(const api_req_t *rq)
{
    const char *ct = api__header(rq, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct)
        return INGEST_JSON;
    size_t n = strcspn(ct, "; \t");
    if (n == 16 && !strncasecmp(ct, "application/json", n))
        return INGEST_JSON;
    if ((n == 20 && !strncasecmp(ct, "application/x-ndjson", n)) ||
        (n == 18 && !strncasecmp(ct, "application/ndjson", n)) ||
        (n == 17 && !strncasecmp(ct, "application/jsonl", n)))
        return INGEST_NDJSON;
    return -1;
}

static enum MHD_Result append_checks(api_req_t *rq)
{
    enum MHD_Result r;
    rq->body_format = body_format(rq);
    if (rq->body_format < 0)
        return api__problem(rq, REEL_EUNSUPPORTED_MEDIA,
                            "Content-Type '%s' is not application/json or application/x-ndjson",
                            api__header(rq, MHD_HTTP_HEADER_CONTENT_TYPE));
    if (!api__body_precheck(rq, &r))
        return r;
    uint64_t exp = UINT64_MAX;
    if (api__query_u64(rq, "expected_sequence", INT64_MAX, &exp) != REEL_OK)
        return MHD_YES;
    rq->expected = exp == UINT64_MAX ? -1 : (int64_t)exp;
    rq->phase = APPEND_BODY;
    return MHD_YES;
}

static void count_append(api_server_t *srv, size_t n)
{
    size_t bucket = 0, lim = 1;
    while (bucket < 7 && n > lim) {
        bucket++;
        lim *= 10;
    }
    atomic_fetch_add(&srv->appends, 1);
    atomic_fetch_add(&srv->append_events, n);
    atomic_fetch_add(&srv->append_batch_hist[bucket], 1);
}

static ingest_batch_t *append_batch(api_req_t *rq)
{
    return rq->ctx;
}

static enum MHD_Result append_reply(api_req_t *rq)
{
    store_batch_t *b = &append_batch(rq)->b;
    if (b->err == REEL_ECONFLICT)
        return api__problem(rq, b->err, "expected_sequence is %lld but the session's last sequence is %llu",
                            (long long)rq->expected, (unsigned long long)b->last_sequence);
    if (b->err == REEL_EGONE)
        return api__problem(rq, b->err, "session '%s' was deleted; its sequences are not reused",
                            rq->session);
    if (b->err != REEL_OK)
        return api__problem(rq, b->err, "the append failed: %s", reel_strerror(b->err));
    count_append(rq->srv, b->n_events);
    store_buf_t o = STORE_BUF_INIT;
    store_buf_puts(&o, "{\"session_id\":");
    store_json_write_string(&o, rq->session, rq->session_len);
    store_buf_printf(&o, ",\"first_sequence\":%llu,\"last_sequence\":%llu",
                     (unsigned long long)b->first_sequence, (unsigned long long)b->last_sequence);
    if (!rq->n_prefixes) /* a store-wide count: not a tenant's to see (docs/HTTP.md) */
        store_buf_printf(&o, ",\"position\":%llu", (unsigned long long)b->position);
    store_buf_printf(&o, ",\"duplicates\":%zu}", b->duplicates);
    return api__reply_json(rq, 200, &o);
}

static void append_dispose(api_req_t *rq)
{
    ingest_batch_t *ib = rq->ctx;
    ingest_batch_release(ib);
    free(ib);
    rq->ctx = NULL;
}

static enum MHD_Result append_submit(api_req_t *rq)
{
    ingest_batch_t *ib = rq->ctx;
    if (api__async_begin(rq) != REEL_OK)
        return api__problem(rq, REEL_EUNAVAILABLE, "the server is shutting down");
    rq->phase = APPEND_COMMIT;
    int rc = ingest_submit(rq->srv->store, ib, api__batch_done, rq);
    if (rc != REEL_OK)
        api__async_failed(rq, &ib->b, rc);
    return MHD_YES;
}

/* Backpressure (serve --max-sink-lag, docs/HTTP.md "Sinks"): while the slowest sink that
 * reported is further behind than the limit, the parsed batch waits (the connection
 * suspended, woken by commits and by sink reports) for at most --sink-wait-ms from the
 * request's start, then is refused with 503 and Retry-After, nothing appended. */
static enum MHD_Result append_gate(api_req_t *rq)
{
    api_server_t *srv = rq->srv;
    for (;;) {
        uint64_t gen = api__gen(srv), lag;
        if (!api__sink_over_lag(srv, &lag)) {
            if (rq->phase == APPEND_LAG)
                atomic_fetch_add(&srv->sink_waited, 1);
            return append_submit(rq);
        }
        uint64_t deadline = rq->start_ms + srv->lim.sink_wait_ms;
        if (api__now_ms() >= deadline || api__stopping(srv)) {
            atomic_fetch_add(&srv->sink_refused, 1);
            rq->retry_after = 1;
            return api__problem(rq, REEL_ESINK_BEHIND, "the slowest sink is %llu positions "
                                "behind, past --max-sink-lag %llu; nothing was appended, retry "
                                "later", (unsigned long long)lag,
                                (unsigned long long)srv->lim.max_sink_lag);
        }
        rq->phase = APPEND_LAG;
        if (api__wait_for(rq, &rq->waiter, API_WAIT_FEED, NULL, 0, deadline, gen))
            return MHD_YES;
    }
}

static enum MHD_Result append_parse_submit(api_req_t *rq)
{
    api_server_t *srv = rq->srv;
    enum MHD_Result r;
    if (api__body_complete(rq, &r) != REEL_OK)
        return r;
    ingest_batch_t *ib = calloc(1, sizeof *ib);
    if (!ib)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    int rc = ingest_batch_init(ib, rq->session, rq->session_len);
    if (rc != REEL_OK) {
        free(ib);
        return api__problem(rq, rc, "session id '%s' is not valid", rq->session);
    }
    rq->ctx = ib;
    rq->dispose = append_dispose;
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    lim.max_event_bytes = srv->lim.max_event_bytes;
    lim.max_depth = srv->lim.max_depth;
    ingest_error_t e;
    memset(&e, 0, sizeof e);
    rc = ingest_parse(ib, (const char *)rq->body.data, rq->body.len, rq->body_format, &lim, &e);
    if (rc != REEL_OK)
        return api__problem(rq, rc, "event %zu (line %zu, column %zu): %s", e.index, e.line,
                            e.column, e.text[0] ? e.text : reel_strerror(rc));
    uint64_t body_bytes = rq->body.len;
    store_buf_release(&rq->body);
    if (api__rate_events(rq, ib->b.n_events) != REEL_OK ||
        api__quota_check(rq, body_bytes) != REEL_OK)
        return MHD_YES; /* answered: 429, 413 or quota_exceeded */
    ib->b.expected_sequence = rq->expected;
    return append_gate(rq);
}

enum MHD_Result api__events_append(api_req_t *rq, const char *data, size_t *size)
{
    switch (rq->phase) {
    case API_PHASE_NEW:
        return append_checks(rq);
    case APPEND_BODY: {
        int more = api__collect_body(rq, data, size);
        if (more < 0)
            return MHD_NO;
        return more ? MHD_YES : append_parse_submit(rq);
    }
    case APPEND_LAG:
        return append_gate(rq);
    default:
        return rq->async_done ? append_reply(rq) : MHD_YES;
    }
}

/* ---- Reading pages ---- */

struct page {
    api_server_t *srv;    /* for its event cache */
    store_buf_t *out;
    int flags;            /* api__render_flags() */
    size_t limit;
    size_t n;             /* events written */
    uint64_t last;        /* key of the last event written */
    uint64_t scanned;     /* key of the last event examined */
    int more;             /* stopped with events left */
    int feed;
    int full;             /* stopped before an event that did not fit */
    int trimmed;          /* the offset is before the session's first kept sequence */
};

static int page_event(void *arg, const store_event_view_t *ev, uint64_t key)
{
    struct page *pg = arg;
    /* Stop before an event that does not fit, so 'more' is exact. */
    if (pg->n >= pg->limit || (pg->n > 0 && pg->out->len > API_MAX_PAGE_BYTES))
        return pg->full = 1;
    if (pg->n)
        store_buf_putc(pg->out, ',');
    int rc = api__render_event(pg->srv, pg->out, ev, pg->flags);
    if (rc != REEL_OK)
        return rc;
    pg->n++;
    pg->last = key;
    return 0;
}

/* REEL_EGONE for a deleted session: its events are gone and no new ones can come, so
 * a reader (or a long-poll) is told so instead of waiting on an empty page. */
int api__session_readable_from(store_read_t *r, const char *id, size_t len, uint64_t *first)
{
    store_session_t rec;
    int rc = store_session_get(r, id, len, &rec);
    if (rc == REEL_OK && rec.status == STORE_DELETED)
        return REEL_EGONE;
    if (rc == REEL_OK && first)
        *first = rec.first_sequence;
    return rc;
}

int api__session_readable(store_read_t *r, const char *id, size_t len)
{
    return api__session_readable_from(r, id, len, NULL);
}

/* Reel-First-Sequence on a page that was asked for events a trim removed. */
static void first_sequence_header(api_req_t *rq, struct MHD_Response *resp)
{
    char v[24];
    snprintf(v, sizeof v, "%llu", (unsigned long long)rq->first_sequence);
    MHD_add_response_header(resp, "Reel-First-Sequence", v);
}

enum MHD_Result api__session_problem(api_req_t *rq, int rc, const char *doing)
{
    if (rc == REEL_ESESSION_NOT_FOUND)
        return api__problem(rq, rc, "session '%s' does not exist", rq->session);
    if (rc == REEL_EGONE)
        return api__problem(rq, rc, "session '%s' was deleted", rq->session);
    return api__problem(rq, rc, "%s of session '%s' failed: %s", doing, rq->session,
                        reel_strerror(rc));
}

/* A tenant's feed: the read's 'only' hook keeps its own sessions (store.h). */
static int tenant_only(void *arg, const char *id, size_t len)
{
    return api__tenant_allows(arg, id, len);
}

static int tenant_feed(const api_req_t *rq, int feed)
{
    return feed && rq->n_prefixes;
}

/* Reads one page past rq->offset into 'pg'. Returns REEL_OK or a store error. */
static int read_page(api_req_t *rq, struct page *pg)
{
    store_read_t r;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc != REEL_OK)
        return rc;
    if (pg->feed && rq->unreplicated)
        store_read_see_all(&r);
    uint64_t first = 1;
    if (!pg->feed &&
        (rc = api__session_readable_from(&r, rq->session, rq->session_len, &first)) != REEL_OK) {
        store_read_end(&r);
        return rc;
    }
    /* Events before first_sequence were trimmed (retention): the page starts at the first
     * kept one and says so (docs/HTTP.md "Read a page"). */
    pg->trimmed = !pg->feed && rq->offset + 1 < first;
    rq->first_sequence = pg->trimmed ? first : 0;
    /* every event goes through api__render_event(), which serves the envelope */
    r.envelopes = !(pg->flags & REPLAY_RAW) && !rq->types[0];
    r.skip_copied = pg->feed && rq->skip_copied; /* docs/CLUSTER.md "Moving shards" */
    int tenant = tenant_feed(rq, pg->feed);
    if (tenant) {
        r.only = tenant_only;
        r.only_arg = rq;
    }
    replay_scan_t sc = {pg->feed ? NULL : rq->session, rq->session_len,
                        rq->types[0] ? rq->types : NULL,
                        rq->types[0] || tenant ? SCAN_BUDGET : pg->limit + 1, 0, 0};
    rc = replay_scan(&r, &sc, rq->offset, page_event, pg);
    store_read_end(&r);
    pg->scanned = sc.scanned;
    pg->more = sc.more;
    return rc;
}

static enum MHD_Result page_reply(api_req_t *rq, store_buf_t *out, const struct page *pg)
{
    uint64_t next = pg->n ? pg->last : pg->scanned;
    if (tenant_feed(rq, pg->feed)) { /* sealed, and more only when its own events wait */
        char sealed[API_SEAL_LEN + 1];
        if (api__seal(rq->srv, pg->scanned, sealed) != REEL_OK) {
            store_buf_release(out);
            return api__problem(rq, REEL_EINTERNAL, "cannot seal the feed cursor");
        }
        store_buf_printf(out, "],\"hasMore\":%s,\"next_after\":\"%s\"}",
                         pg->full ? "true" : "false", sealed);
        return api__reply_json(rq, 200, out);
    }
    if (pg->trimmed && next < rq->first_sequence - 1)
        next = rq->first_sequence - 1; /* a trimmed session with no kept event */
    store_buf_printf(out, "],\"hasMore\":%s,\"%s\":%llu", pg->more ? "true" : "false",
                     pg->feed ? "next_after" : "next_offset", (unsigned long long)next);
    if (pg->trimmed) {
        store_buf_printf(out, ",\"first_sequence\":%llu,\"trimmed\":true",
                         (unsigned long long)rq->first_sequence);
        rq->add_headers = first_sequence_header;
    }
    store_buf_putc(out, '}');
    return api__reply_json(rq, 200, out);
}

/* The feed's 'changes' and 'bodies' (docs/HTTP.md "The feed with changes"). */
int api__feed_params(api_req_t *rq)
{
    if (api__query_bool(rq, "changes", &rq->changes) != REEL_OK ||
        api__query_bool(rq, "bodies", &rq->bodies) != REEL_OK ||
        api__query_bool(rq, "unreplicated", &rq->unreplicated) != REEL_OK)
        return -1;
    /* What the replica does not hold yet is the replica sink's to read, no one else's
     * (serve --ack replica, docs/CLUSTER.md): the full scope, like its reports. */
    if (rq->unreplicated && ((rq->token_scope && !(rq->token_scope & API_SCOPE_ADMIN)) ||
                             rq->n_prefixes)) {
        api__problem(rq, REEL_EFORBIDDEN, "'unreplicated' (the feed past the replica "
                     "watermark) needs a token with the full scope");
        return -1;
    }
    char after[48];
    int found = rq->changes ? api__query(rq, "after", after, sizeof after) : 0;
    if (found < 0 || (found > 0 && api__cursor_parse(after, &rq->offset, &rq->after_index))) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "'after' must be a cursor of the feed with "
                     "changes: a position P, or P.I after a change (its \"cursor\")");
        return -1;
    }
    if (rq->changes && rq->n_prefixes) {
        api__problem(rq, REEL_EFORBIDDEN, "the feed with changes covers every session: a token "
                     "limited to session prefixes cannot read it");
        return -1;
    }
    if (rq->bodies && !rq->changes) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "'bodies' needs 'changes=1'");
        return -1;
    }
    if (rq->changes && rq->types[0]) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "'types' cannot be combined with "
                     "'changes=1' (the feed with changes gives every event)");
        return -1;
    }
    return 0;
}

int api__feed_kept(const api_req_t *rq)
{
    return rq->bodies && (!rq->token_need || (rq->token_scope & API_SCOPE_ADMIN));
}

/* A tenant's 'after': absent or 0 for the start, else a sealed next_after. */
static int tenant_after(api_req_t *rq)
{
    char v[API_SEAL_LEN + 8];
    int rc = api__query(rq, "after", v, sizeof v);
    rq->offset = 0;
    if (rc == 0 || (rc > 0 && !strcmp(v, "0")))
        return 0;
    if (rc > 0 && api__unseal(rq->srv, v, strlen(v), &rq->offset) == REEL_OK)
        return 0;
    api__problem(rq, REEL_EINVALID_PARAMETER, "'after' must be 0 or a next_after this server "
                 "gave: a token limited to session prefixes reads the feed with sealed cursors");
    return -1;
}

static int read_params(api_req_t *rq, int feed)
{
    rq->limit = API_DEFAULT_LIMIT;
    int changes = 0; /* the feed with changes parses its own cursor (api__feed_params) */
    if (feed && api__query_bool(rq, "changes", &changes) != REEL_OK)
        return -1;
    if ((!changes && (tenant_feed(rq, feed) ? tenant_after(rq) < 0
                                            : api__query_u64(rq, feed ? "after" : "offset",
                                                             INT64_MAX, &rq->offset) != REEL_OK)) ||
        api__query_u64(rq, "limit", API_MAX_LIMIT, &rq->limit) != REEL_OK ||
        api__query_u64(rq, "wait", API_MAX_WAIT_S, &rq->wait_s) != REEL_OK ||
        api__query_bool(rq, "include_raw", &rq->include_raw) != REEL_OK ||
        (feed && api__query_bool(rq, "skip_copied", &rq->skip_copied) != REEL_OK))
        return -1;
    if (rq->limit == 0) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "'limit' must be from 1 to %d, not 0",
                     API_MAX_LIMIT);
        return -1;
    }
    int rc = api__query(rq, "types", rq->types, sizeof rq->types);
    if (rc < 0 || (rc > 0 && (!rq->types[0] || strstr(rq->types, ",,") ||
                              rq->types[0] == ',' || rq->types[strlen(rq->types) - 1] == ','))) {
        api__problem(rq, REEL_EINVALID_PARAMETER,
                     "'types' must be a comma-separated list of event types (at most %zu bytes)",
                     sizeof rq->types - 1);
        return -1;
    }
    if (!(rc > 0 && strlen(rq->types) > 0))
        rq->types[0] = '\0';
    return feed ? api__feed_params(rq) : 0;
}

/* Serves a page now, or suspends as a long-poll waiter. Called on the first call and on
 * every wake-up (READ_WAIT). */
/* The feed with changes: one page of events and changes, or a long-poll wait. */
static enum MHD_Result cfeed_page_or_wait(api_req_t *rq)
{
    api_server_t *srv = rq->srv;
    for (;;) {
        uint64_t gen = api__gen(srv);
        store_buf_t out = STORE_BUF_INIT;
        api_cfeed_t f = {.srv = srv, .out = &out, .include_raw = rq->include_raw,
                         .bodies = rq->bodies, .kept_hashes = api__feed_kept(rq),
                         .unreplicated = rq->unreplicated, .max_bytes = API_MAX_PAGE_BYTES,
                         .skip_copied = rq->skip_copied};
        store_buf_puts(&out, "{\"events\":[");
        int rc = api__cfeed_read(&f, rq->offset, rq->after_index, (size_t)rq->limit);
        if (rc != REEL_OK) {
            store_buf_release(&out);
            return api__problem(rq, rc, "reading the feed failed: %s", reel_strerror(rc));
        }
        uint64_t deadline = rq->start_ms + rq->wait_s * 1000;
        if (f.n || f.more || !rq->wait_s || api__now_ms() >= deadline || api__stopping(srv)) {
            store_buf_printf(&out, "],\"hasMore\":%s,\"next_after\":\"", f.more ? "true" : "false");
            api__cursor_write(&out, f.last, f.last_index);
            store_buf_puts(&out, "\"}");
            return api__reply_json(rq, 200, &out);
        }
        store_buf_release(&out);
        rq->phase = READ_WAIT;
        if (api__wait_for(rq, &rq->waiter, API_WAIT_FEED, NULL, 0, deadline, gen))
            return MHD_YES;
    }
}

static enum MHD_Result page_or_wait(api_req_t *rq, int feed)
{
    api_server_t *srv = rq->srv;
    if (rq->phase == READ_WAIT && !api__auth_still_valid(rq))
        return api__problem(rq, REEL_EUNAUTHORIZED, "the token is no longer valid (reloaded)");
    if (feed && rq->changes)
        return cfeed_page_or_wait(rq);
    int tenant = tenant_feed(rq, feed);
    for (;;) {
        uint64_t gen = api__gen(srv);
        store_buf_t out = STORE_BUF_INIT;
        struct page pg = {srv, &out, api__render_flags(rq, rq->include_raw), (size_t)rq->limit,
                          0, 0, 0, 0, feed, 0, 0};
        store_buf_puts(&out, "{\"events\":[");
        uint64_t deadline = rq->start_ms + rq->wait_s * 1000, until = api__now_ms() + 1000;
        int rc = read_page(rq, &pg);
        /* A tenant's page goes on past other tenants' events, in short reads, so that
         * neither its contents nor its timing tell how many there were (for up to a
         * second, or the long-poll's wait). */
        while (tenant && rc == REEL_OK && pg.more && !pg.full &&
               api__now_ms() < (deadline > until ? deadline : until)) {
            rq->offset = pg.scanned;
            rc = read_page(rq, &pg);
        }
        if (rc != REEL_OK) {
            store_buf_release(&out);
            return api__session_problem(rq, rc, "reading events");
        }
        if (pg.n || (tenant ? pg.full : pg.more) || !rq->wait_s || api__now_ms() >= deadline ||
            api__stopping(srv))
            return page_reply(rq, &out, &pg);
        if (tenant) /* nothing of its own yet: the next look starts past what was seen */
            rq->offset = pg.scanned;
        store_buf_release(&out);
        rq->phase = READ_WAIT;
        if (api__wait_for(rq, &rq->waiter, feed ? API_WAIT_FEED : API_WAIT_SESSION, rq->session,
                          rq->session_len, deadline, gen))
            return MHD_YES;
    }
}

static enum MHD_Result read_route(api_req_t *rq, int feed)
{
    if (rq->phase == API_PHASE_NEW && read_params(rq, feed) < 0)
        return MHD_YES;
    return page_or_wait(rq, feed);
}

enum MHD_Result api__events_read(api_req_t *rq, const char *data, size_t *size)
{
    return read_route(rq, 0);
}

enum MHD_Result api__feed_read(api_req_t *rq, const char *data, size_t *size)
{
    return read_route(rq, 1);
}
