/* projections.c -- routes served by replay/: restore, transcript, stats and export.
 *
 *   GET /v1/sessions/{id}/restore?max_events=50&max_chars=12000&fit=newest|sdk
 *   GET /v1/sessions/{id}/transcript?at=SEQ&format=json|markdown
 *   GET /v1/stats?after=P&until=Q&since=T&before=T&session=S
 *   GET /v1/sessions/{id}/export?format=jsonl&compression=zstd|none
 *   GET /v1/export?after=P&until=Q&sessions=a,b&compression=zstd|none
 *
 * Restore costs O(max_events). Transcript and stats scan their whole range, so they run
 * on a thread of their own while the connection is suspended. Export is streamed:
 * the content reader asks replay/ for the next chunk (about 1 MiB of JSON, each from its
 * own short read) only when libmicrohttpd can send more, so a slow client holds one chunk
 * and never a read transaction.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers/handlers.h"
#include "api/live/live.h"

enum { JOB_RUNNING = API_PHASE_OWN };
#include "replay/replay.h"
#include "store/parse.h"

/* ---- Restore ---- */

static int restore_params(api_req_t *rq, replay_restore_opts_t *o)
{
    uint64_t max_events = o->max_events, max_chars = o->max_chars;
    char fit[16];
    int raw = 0;
    if (api__query_u64(rq, "max_events", REPLAY_RESTORE_MAX_EVENTS, &max_events) != REEL_OK ||
        api__query_u64(rq, "max_chars", 1u << 30, &max_chars) != REEL_OK ||
        api__query_bool(rq, "include_raw", &raw) != REEL_OK)
        return -1;
    o->flags = api__render_flags(rq, raw);
    int rc = api__query(rq, "fit", fit, sizeof fit);
    if (rc < 0 || (rc > 0 && strcmp(fit, "newest") && strcmp(fit, "sdk"))) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "'fit' must be newest or sdk, not '%s'",
                     rc < 0 ? "(bad encoding)" : fit);
        return -1;
    }
    if (max_events == 0) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "'max_events' must be from 1 to %d",
                     REPLAY_RESTORE_MAX_EVENTS);
        return -1;
    }
    o->fit = rc > 0 && !strcmp(fit, "sdk") ? REPLAY_FIT_SDK : REPLAY_FIT_NEWEST;
    o->max_events = (size_t)max_events;
    o->max_chars = (size_t)max_chars;
    return 0;
}

enum MHD_Result api__restore(api_req_t *rq, const char *data, size_t *size)
{
    replay_restore_opts_t o = REPLAY_RESTORE_DEFAULT;
    if (restore_params(rq, &o) < 0)
        return MHD_YES;
    o.render = api__render_event_cb;
    o.render_arg = rq->srv;
    store_read_t r;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc != REEL_OK)
        return api__session_problem(rq, rc, "reading the session");
    store_session_t rec;
    replay_restore_t res;
    store_buf_t out = STORE_BUF_INIT;
    rc = api__session_readable(&r, rq->session, rq->session_len);
    if (rc == REEL_OK)
        rc = store_session_get(&r, rq->session, rq->session_len, &rec);
    if (rc == REEL_OK) {
        rc = replay_restore(&r, rq->session, rq->session_len, &o, &res);
        /* The record's metadata is borrowed from the read: write before it ends. */
        if (rc == REEL_OK) {
            rc = replay_write_restore(&out, &rec, &res);
            replay_restore_release(&res);
        }
    }
    store_read_end(&r);
    if (rc != REEL_OK) {
        store_buf_release(&out);
        return api__session_problem(rq, rc, "reading the session");
    }
    return api__reply_json(rq, 200, &out);
}

/* ---- Transcript, stats and verify: jobs on their own threads ---- */

/* Transcript, stats and verify scan a whole session or range: they run on a thread of their own
 * while the connection is suspended, so that an HTTP worker is never held by one big
 * request. At most API_MAX_JOBS run at once; more are answered with 429. */
#define API_MAX_JOBS 4

enum job_kind { JOB_TRANSCRIPT, JOB_STATS, JOB_VERIFY };

typedef struct api_job {
    api_req_t *rq;
    int kind;
    uint64_t at;                               /* transcript */
    replay_stats_opts_t so;                    /* stats */
    char session[STORE_SESSION_ID_MAX + 1];    /* stats: its 'session' filter */
} api_job_t;

/* The job writes its answer into rq->body and its result into rq->batch.err, then
 * completes like a store batch: api__batch_done() resumes the connection. */
static void *run_job(void *arg)
{
    api_job_t *j = arg;
    api_req_t *rq = j->rq;
    api_server_t *srv = rq->srv;
    store_buf_clear(&rq->body);
    if (j->kind == JOB_TRANSCRIPT) {
        rq->batch.err = replay_transcript(srv->store, rq->session, rq->session_len, j->at,
                                          rq->markdown, &rq->body);
    } else if (j->kind == JOB_VERIFY) {
        store_verify_report_t rep;
        rq->batch.err = store_verify(srv->store, rq->session, rq->session_len, &rep, NULL, NULL);
        if (rq->batch.err == REEL_OK)
            rq->batch.err = replay_write_verify(&rq->body, &rep, api__render_flags(rq, 0));
    } else {
        rq->batch.err = replay_stats(srv->store, &j->so, &rq->body, NULL, NULL);
    }
    if (rq->batch.err == REEL_OK && store_buf_failed(&rq->body))
        rq->batch.err = REEL_ENOMEM;
    snprintf(rq->store_detail, sizeof rq->store_detail, "%s", store_read_corruption());
    rq->has_store_detail = 1;
    free(j);
    atomic_fetch_sub(&srv->jobs, 1);
    api__batch_done(&rq->batch, rq);
    return NULL;
}

/* Takes 'j' (new) and starts it; answers a problem when it cannot. */
static enum MHD_Result start_job(api_req_t *rq, api_job_t *j)
{
    j->rq = rq;
    return api__job_start(rq, run_job, j, free, API_MAX_JOBS, "transcript/stats/verify",
                          JOB_RUNNING);
}

static enum MHD_Result job_reply(api_req_t *rq, int per_session)
{
    int rc = rq->batch.err;
    if (rc != REEL_OK) {
        if (per_session)
            return api__session_problem(rq, rc, "reading the session");
        return api__problem(rq, rc, "stats failed: %s", reel_strerror(rc));
    }
    if (!rq->markdown)
        return api__reply_json(rq, 200, &rq->body);
    return api__reply_text(rq, 200, "text/markdown; charset=utf-8", (const char *)rq->body.data,
                           rq->body.len);
}

enum MHD_Result api__transcript(api_req_t *rq, const char *data, size_t *size)
{
    if (rq->phase == JOB_RUNNING)
        return rq->async_done ? job_reply(rq, 1) : MHD_YES;
    uint64_t at = 0;
    char format[16] = "json";
    if (api__query_u64(rq, "at", INT64_MAX, &at) != REEL_OK)
        return MHD_YES;
    int rc = api__query(rq, "format", format, sizeof format);
    if (rc < 0 || (strcmp(format, "json") && strcmp(format, "markdown")))
        return api__problem(rq, REEL_EINVALID_PARAMETER,
                            "'format' must be json or markdown, not '%s'",
                            rc < 0 ? "(bad encoding)" : format);
    rq->markdown = !strcmp(format, "markdown");
    api_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    j->kind = JOB_TRANSCRIPT;
    j->at = at;
    return start_job(rq, j);
}

/* GET /v1/sessions/{id}/verify: the integrity check of one session (200 either way; the
 * report's 'ok' says whether it is sound). */
enum MHD_Result api__verify(api_req_t *rq, const char *data, size_t *size)
{
    if (rq->phase == JOB_RUNNING)
        return rq->async_done ? job_reply(rq, 1) : MHD_YES;
    api_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    j->kind = JOB_VERIFY;
    return start_job(rq, j);
}

/* Parses time parameter 'name' (RFC 3339 UTC or Unix ms) into '*ms' when present. */
static int query_time(api_req_t *rq, const char *name, int64_t *ms)
{
    char v[64];
    int rc = api__query(rq, name, v, sizeof v);
    if (rc == 0)
        return REEL_OK;
    int64_t t = rc > 0 ? store_parse_time(v, strlen(v)) : -1;
    if (t < 0) {
        api__problem(rq, REEL_EINVALID_PARAMETER,
                     "'%s' must be an RFC 3339 UTC time or Unix milliseconds, not '%s'", name,
                     rc < 0 ? "(bad encoding)" : v);
        return REEL_EINVALID_PARAMETER;
    }
    *ms = t;
    return REEL_OK;
}

/* A token limited to session prefixes (docs/HTTP.md "Tenants") may ask for stats or an
 * export of named sessions under its prefixes: 1 to go on. A session outside them is
 * answered as one that does not exist; no list at all (the whole store) is refused. */
static int tenant_sessions(api_req_t *rq, const char *list)
{
    if (!list) {
        api__problem(rq, REEL_EFORBIDDEN, "a token limited to session prefixes must name its "
                     "sessions (?session= for stats, ?sessions= for an export)");
        return 0;
    }
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (!api__tenant_allows(rq, p, n)) {
            api__problem(rq, REEL_ESESSION_NOT_FOUND, "session '%.*s' does not exist",
                         (int)(n > 200 ? 200 : n), p);
            return 0;
        }
        p += n + (p[n] == ',');
    }
    return 1;
}

/* 0 after answering 400 when a token limited to session prefixes names a position range:
 * positions count every tenant's events (docs/HTTP.md "Tenants"); times work instead. */
static int tenant_no_positions(api_req_t *rq)
{
    char v[32];
    if (!rq->n_prefixes)
        return 1;
    const char *name = api__query(rq, "after", v, sizeof v) ? "after"
                       : api__query(rq, "until", v, sizeof v) ? "until" : NULL;
    if (!name)
        return 1;
    api__problem(rq, REEL_EINVALID_PARAMETER,
                 "'%s' is a store-wide position, which a token limited to session prefixes "
                 "cannot use; give times ('since', 'before') instead", name);
    return 0;
}

enum MHD_Result api__stats(api_req_t *rq, const char *data, size_t *size)
{
    if (rq->phase == JOB_RUNNING)
        return rq->async_done ? job_reply(rq, 0) : MHD_YES;
    api_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    j->kind = JOB_STATS;
    replay_stats_opts_t *o = &j->so;
    o->flags = api__render_flags(rq, 0);
    int rc = REEL_OK;
    if (!tenant_no_positions(rq) ||
        api__query_u64(rq, "after", INT64_MAX, &o->after) != REEL_OK ||
        api__query_u64(rq, "until", INT64_MAX, &o->until) != REEL_OK ||
        query_time(rq, "since", &o->since_ms) != REEL_OK ||
        query_time(rq, "before", &o->before_ms) != REEL_OK ||
        (rc = api__query(rq, "session", j->session, sizeof j->session)) < 0 ||
        (rc > 0 && !store_session_id_valid(j->session, strlen(j->session)))) {
        free(j);
        if (rc == 0)
            return MHD_YES; /* answered by the parser that failed */
        return api__problem(rq, REEL_EINVALID_PARAMETER, "'session' must be a session id");
    }
    if (rc > 0) {
        o->session = j->session;
        o->session_len = strlen(j->session);
    }
    if (rq->n_prefixes && !tenant_sessions(rq, rc > 0 ? j->session : NULL)) {
        free(j);
        return MHD_YES;
    }
    return start_job(rq, j);
}

/* ---- Export ---- */

typedef struct api_export {
    replay_export_t *ex;
    store_buf_t out;   /* the current chunk */
    size_t off;        /* bytes of it handed out */
    int done;          /* the trailer has been produced */
} api_export_t;

static ssize_t export_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    api_export_t *e = cls;
    while (e->off == e->out.len) {
        if (e->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        store_buf_clear(&e->out);
        e->off = 0;
        /* A failure mid-stream can only cut the stream: the status line is gone. The
         * client sees no trailer record and a truncated zstd frame, never a valid file. */
        if (replay_export_next(e->ex, &e->out, &e->done) != REEL_OK ||
            store_buf_failed(&e->out))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = e->out.len - e->off;
    if (n > max)
        n = max;
    memcpy(buf, e->out.data + e->off, n);
    e->off += n;
    return (ssize_t)n;
}

static void export_free(void *cls)
{
    api_export_t *e = cls;
    replay_export_free(e->ex);
    store_buf_release(&e->out);
    free(e);
}

/* Parses format/compression into 'o'. */
static int export_params(api_req_t *rq, replay_export_opts_t *o)
{
    char format[16] = "jsonl", comp[16] = "zstd";
    int rc = api__query(rq, "format", format, sizeof format);
    if (rc < 0 || strcmp(format, "jsonl")) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "'format' must be jsonl, not '%s'",
                     rc < 0 ? "(bad encoding)" : format);
        return -1;
    }
    rc = api__query(rq, "compression", comp, sizeof comp);
    if (rc < 0 || (strcmp(comp, "zstd") && strcmp(comp, "none"))) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "'compression' must be zstd or none, not '%s'",
                     rc < 0 ? "(bad encoding)" : comp);
        return -1;
    }
    o->compress = !strcmp(comp, "zstd");
    return 0;
}

/* The Content-Disposition of an export named 'name' (a session id: any UTF-8 without
 * control characters): an ASCII 'filename' fallback with every byte outside
 * [A-Za-z0-9._-] as '_', and the exact name as RFC 5987 'filename*' (RFC 6266 §4.3),
 * percent-encoded outside attr-char. Nothing of the id can end the header or the quoted
 * string. Returns a malloc'd string, or NULL. */
static char *content_disposition(const char *name, const char *ext)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(name), e = strlen(ext);
    char *out = malloc(64 + 4 * (n + e));
    if (!out)
        return NULL;
    size_t o = (size_t)sprintf(out, "attachment; filename=\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        out[o++] = isalnum(c) || c == '.' || c == '_' || c == '-' ? (char)c : '_';
    }
    o += (size_t)sprintf(out + o, "%s\"; filename*=UTF-8''", ext);
    for (size_t i = 0; i < n + e; i++) {
        unsigned char c = (unsigned char)(i < n ? name[i] : ext[i - n]);
        if (c < 0x80 && (isalnum(c) || strchr("!#$&+-.^_`|~", c))) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

static enum MHD_Result export_start(api_req_t *rq, const replay_export_opts_t *o,
                                    const char *name)
{
    api_export_t *e = calloc(1, sizeof *e);
    if (!e)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    store_buf_init(&e->out);
    int rc = replay_export_new(rq->srv->store, o, &e->ex);
    if (rc != REEL_OK) {
        free(e);
        if (rc == REEL_ESESSION_NOT_FOUND || rc == REEL_EGONE)
            return api__session_problem(rq, rc, "reading the session");
        return api__problem(rq, rc, "cannot export: %s", reel_strerror(rc));
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, export_read, e, export_free);
    if (!resp) {
        export_free(e);
        return MHD_NO;
    }
    char *disp = content_disposition(name, o->compress ? ".jsonl.zst" : ".jsonl");
    if (!disp) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            o->compress ? "application/zstd" : "application/x-ndjson");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp);
    free(disp);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return api__queue(rq, 200, resp);
}

enum MHD_Result api__session_export(api_req_t *rq, const char *data, size_t *size)
{
    replay_export_opts_t o = REPLAY_EXPORT_DEFAULT;
    if (export_params(rq, &o) < 0)
        return MHD_YES;
    o.flags = api__render_flags(rq, 0);
    o.session = rq->session;
    o.session_len = rq->session_len;
    return export_start(rq, &o, rq->session);
}

/* Checks a comma-separated list of session ids. */
static int sessions_valid(const char *s)
{
    while (*s) {
        size_t n = strcspn(s, ",");
        if (!n || !store_session_id_valid(s, n))
            return 0;
        s += n;
        if (*s == ',' && !*++s)
            return 0;
    }
    return 1;
}

enum MHD_Result api__export(api_req_t *rq, const char *data, size_t *size)
{
    replay_export_opts_t o = REPLAY_EXPORT_DEFAULT;
    o.flags = api__render_flags(rq, 0);
    if (export_params(rq, &o) < 0 || !tenant_no_positions(rq) ||
        api__query_u64(rq, "after", INT64_MAX, &o.after) != REEL_OK ||
        api__query_u64(rq, "until", INT64_MAX, &o.until) != REEL_OK ||
        query_time(rq, "since", &o.since_ms) != REEL_OK ||
        query_time(rq, "before", &o.before_ms) != REEL_OK)
        return MHD_YES;
    int rc = api__query(rq, "sessions", rq->types, sizeof rq->types);
    if (rc < 0 || (rc > 0 && !sessions_valid(rq->types)))
        return api__problem(rq, REEL_EINVALID_PARAMETER,
                            "'sessions' must be a comma-separated list of session ids");
    if (rc > 0)
        o.sessions = rq->types; /* lives as long as the request; copied by replay_export_new */
    if (rq->n_prefixes && !tenant_sessions(rq, rc > 0 ? rq->types : NULL))
        return MHD_YES;
    return export_start(rq, &o, "reel-export");
}
