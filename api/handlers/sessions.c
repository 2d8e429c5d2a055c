/* sessions.c -- session records: GET /v1/sessions, GET|POST|PUT|DELETE /v1/sessions/{id}.
 *
 * Changes (put, delete, purge) go through the committer like appends: the connection is
 * suspended until the change is durable, then the record is read back and served.
 * The body of a put is {agent, native_session_id, metadata, expected_version}; each field
 * may be absent (left unchanged) or null; metadata must be an object, kept exactly
 * (store/json.h).
 *
 * Conditional changes: a record's version is its strong entity-tag ("3"); If-Match,
 * If-None-Match: * and expected_version become conditions of the store batch, checked by
 * the committer inside its write transaction (a check here, before the commit, would
 * race with every other writer).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers/handlers.h"
#include "retain/retain.h"

enum { CHANGE_BODY = API_PHASE_OWN, CHANGE_COMMIT, PURGE_TRIM };
#include "replay/replay.h"
#include "store/json.h"
#include "store/parse.h"

#define LIST_MAX 1000      /* sessions per page */
#define LIST_BUDGET 20000  /* records one filtered page may examine */

/* ---- Reading one record ---- */

/* Answers 200 with the record JSON 'out' (taken over) and its ETag. */
static enum MHD_Result reply_etag(api_req_t *rq, store_buf_t *out, uint64_t version)
{
    if (store_buf_failed(out)) {
        store_buf_release(out);
        return api__problem(rq, REEL_ENOMEM, "the response did not fit in memory");
    }
    size_t len;
    uint8_t *data = store_buf_detach(out, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    rq->resp_bytes = (int64_t)len;
    char etag[32];
    snprintf(etag, sizeof etag, "\"%" PRIu64 "\"", version);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    return api__queue(rq, 200, resp);
}

/* Reads the record of rq->session and answers with it (status 200). */
static enum MHD_Result reply_record(api_req_t *rq)
{
    store_read_t r;
    store_session_t rec;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc != REEL_OK)
        return api__problem(rq, rc, "reading the session failed: %s", reel_strerror(rc));
    rc = store_session_get(&r, rq->session, rq->session_len, &rec);
    store_buf_t out = STORE_BUF_INIT;
    if (rc == REEL_OK)
        rc = replay_write_session(&out, &rec);
    store_read_end(&r);
    if (rc != REEL_OK) {
        store_buf_release(&out);
        return api__session_problem(rq, rc, "reading the session");
    }
    return reply_etag(rq, &out, rec.version);
}

/* ---- Conditions (RFC 9110 section 13.1) ---- */

#define COND_TEXT 64 /* bytes of a bad header value quoted in a problem */

/* Parses an If-Match value into b->if_version and b->if_match: "*", or a list of strong
 * entity-tags whose opaque part is a version ("3"). A weak tag (W/"3") is refused rather
 * than left never to match: reel never sends one, so it comes from a proxy or a client
 * mistake, and a read-modify-write loop would retry it forever. Returns REEL_OK or
 * REEL_EINVALID_PARAMETER with the reason in 'why'. */
static int parse_if_match(const char *v, store_batch_t *b, char *why, size_t cap)
{
    const char *p = v;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '*') {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (!*q) {
            b->if_version |= STORE_IF_EXISTS;
            return REEL_OK;
        }
    }
    size_t n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (p[0] == 'W' && p[1] == '/') {
            snprintf(why, cap, "a weak entity-tag never matches (reel's are strong, e.g. \"3\")");
            return REEL_EINVALID_PARAMETER;
        }
        const char *q = p + 1, *end;
        if (*p != '"' || !(end = strchr(q, '"'))) {
            snprintf(why, cap, "an entity-tag is a quoted version, e.g. \"3\"");
            return REEL_EINVALID_PARAMETER;
        }
        uint64_t ver = 0;
        if (end == q || *q == '0' || store_parse_u64(q, (size_t)(end - q), &ver)) {
            snprintf(why, cap, "\"%.*s\" is not a version reel gave (a positive integer)",
                     (int)(end - q) < COND_TEXT ? (int)(end - q) : COND_TEXT, q);
            return REEL_EINVALID_PARAMETER;
        }
        if (n == STORE_IF_MATCH_MAX) {
            snprintf(why, cap, "more than %d entity-tags", STORE_IF_MATCH_MAX);
            return REEL_EINVALID_PARAMETER;
        }
        b->if_match[n++] = ver;
        for (p = end + 1; *p == ' ' || *p == '\t'; p++)
            ;
        if (*p && *p != ',') {
            snprintf(why, cap, "entity-tags are separated by commas");
            return REEL_EINVALID_PARAMETER;
        }
    }
    if (!n) {
        snprintf(why, cap, "no entity-tag");
        return REEL_EINVALID_PARAMETER;
    }
    b->if_version |= STORE_IF_VERSION;
    b->n_if_match = n;
    return REEL_OK;
}

/* Turns the request's If-Match / If-None-Match headers and 'expected' (the body's
 * expected_version, 0 = absent) into the conditions of 'b'. Answers 400 itself and
 * returns 0 when one is malformed; 1 when 'b' is ready. */
static int conditions(api_req_t *rq, store_batch_t *b, uint64_t expected, enum MHD_Result *r)
{
    const char *im = api__header(rq, MHD_HTTP_HEADER_IF_MATCH);
    const char *inm = api__header(rq, MHD_HTTP_HEADER_IF_NONE_MATCH);
    char why[128];
    if (im && parse_if_match(im, b, why, sizeof why)) {
        *r = api__problem(rq, REEL_EINVALID_PARAMETER, "If-Match '%.*s': %s", COND_TEXT, im, why);
        return 0;
    }
    if (inm) {
        const char *p = inm + strspn(inm, " \t");
        size_t n = strcspn(p, " \t");
        if (n != 1 || *p != '*' || p[1 + strspn(p + 1, " \t")]) {
            *r = api__problem(rq, REEL_EINVALID_PARAMETER,
                              "If-None-Match '%.*s': only * (create only) is supported here",
                              COND_TEXT, inm);
            return 0;
        }
        b->if_version |= STORE_IF_ABSENT;
    }
    if (!expected)
        return 1;
    if (im && !(b->n_if_match == 1 && b->if_match[0] == expected &&
                b->if_version == STORE_IF_VERSION)) {
        *r = api__problem(rq, REEL_EINVALID_PARAMETER,
                          "If-Match '%.*s' and expected_version %" PRIu64 " differ", COND_TEXT,
                          im, expected);
        return 0;
    }
    b->if_version |= STORE_IF_VERSION;
    b->if_match[0] = expected;
    b->n_if_match = 1;
    return 1;
}

/* The 412 answer: names what the request expected and the current version, and carries
 * the current ETag so that a client can retry at once. */
static enum MHD_Result precondition_failed(api_req_t *rq)
{
    const store_batch_t *b = &rq->batch;
    char want[160] = "", have[64];
    if (b->if_version & STORE_IF_VERSION) {
        size_t n = (size_t)snprintf(want, sizeof want, "version %s", b->n_if_match > 1 ? "one of " : "");
        for (size_t i = 0; i < b->n_if_match && n < sizeof want; i++)
            n += (size_t)snprintf(want + n, sizeof want - n, "%s%" PRIu64, i ? ", " : "",
                                  b->if_match[i]);
    } else if (b->if_version & STORE_IF_ABSENT) {
        snprintf(want, sizeof want, "no session (If-None-Match: *)");
    } else {
        snprintf(want, sizeof want, "an existing session (If-Match: *)");
    }
    if (b->version)
        snprintf(have, sizeof have, "it is at version %" PRIu64, b->version);
    else
        snprintf(have, sizeof have, "it does not exist");
    struct MHD_Response *resp = api__problem_response(
        rq, REEL_EPRECONDITION, "session '%s': the request expected %s, %s; nothing changed",
        rq->session, want, have);
    if (!resp)
        return MHD_NO;
    if (b->version) {
        char etag[32];
        snprintf(etag, sizeof etag, "\"%" PRIu64 "\"", b->version);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    }
    return api__queue(rq, reel_err_status(REEL_EPRECONDITION), resp);
}

/* ---- Put ---- */

/* Parses a string-or-null field into 'dst' (cap bytes + NUL) and '*len'; sets '*set' when
 * a string was given. The bytes are kept exactly, \u0000 included (issue 14, finding 8:
 * the same value arriving on an event is kept, so a put keeps it too). Returns REEL_OK or
 * an error recorded in 'j'. */
static int string_field(store_json_t *j, const char *name, char *dst, size_t cap, size_t *len,
                        int *set)
{
    store_buf_t tmp = STORE_BUF_INIT;
    int rc;
    if (store_json_peek(j) == '"') {
        rc = store_json_string(j, &tmp);
        if (rc == REEL_OK && tmp.len > cap)
            rc = store_json_fail(j, REEL_EINVALID_PARAMETER, "'%s' is longer than %zu bytes",
                                 name, cap);
        if (rc == REEL_OK) {
            if (tmp.len)
                memcpy(dst, tmp.data, tmp.len);
            dst[tmp.len] = '\0';
            *len = tmp.len;
            *set = 1;
        }
    } else {
        rc = store_json_value(j, &tmp, 1);
        if (rc == REEL_OK && !(tmp.len == 1 && tmp.data[0] == 0xc0))
            rc = store_json_fail(j, REEL_EINVALID_PARAMETER, "'%s' must be a string or null",
                                 name);
    }
    store_buf_release(&tmp);
    return rc;
}

static int metadata_field(store_json_t *j, store_buf_t *meta, int *set)
{
    int c = store_json_peek(j);
    int rc = store_json_value(j, meta, 1);
    if (rc != REEL_OK)
        return rc;
    if (c == '{') {
        *set = 1;
        return REEL_OK;
    }
    if (meta->len == 1 && meta->data[0] == 0xc0) {
        /* null clears the metadata: stored as an empty map */
        store_buf_clear(meta);
        store_mp_map(meta, 0);
        *set = 1;
        return REEL_OK;
    }
    return store_json_fail(j, REEL_EINVALID_PARAMETER, "'metadata' must be an object or null");
}

/* ---- retention (docs/RETENTION.md) ---- */

/* A limit of a retention object: a duration ("30d", or a number of seconds) or, for
 * max_events ('count'), a positive integer. */
static int limit_value(store_json_t *j, const char *name, int count, uint64_t *out)
{
    store_buf_t tmp = STORE_BUF_INIT;
    int rc;
    if (store_json_peek(j) == '"') {
        rc = store_json_string(j, &tmp);
        if (rc == REEL_OK && (count || retain_duration_parse((const char *)tmp.data, tmp.len, out)))
            rc = store_json_fail(j, REEL_EINVALID_PARAMETER, "retention '%s': '%.40s' is not %s",
                                 name, store_buf_cstr(&tmp),
                                 count ? "a positive integer" : "a duration like 30d, 12h, 90m");
        store_buf_release(&tmp);
        return rc;
    }
    const char *a = j->p;
    rc = store_json_value(j, &tmp, 1);
    store_buf_release(&tmp);
    if (rc != REEL_OK)
        return rc;
    size_t n = (size_t)(j->p - a);
    uint64_t v;
    if (!n || *a == '0' || store_parse_u64(a, n, &v) || (!count && v > UINT64_MAX / 1000000))
        return store_json_fail(j, REEL_EINVALID_PARAMETER,
                               "retention '%s' must be a positive integer%s, not %.*s", name,
                               count ? "" : " of seconds or a duration string",
                               n < COND_TEXT ? (int)n : COND_TEXT, a);
    *out = count ? v : v * 1000;
    return REEL_OK;
}

/* "retention": {max_age, max_age_after_end, max_events, archive} or null (the store
 * default applies again). Sets '*set' when given. */
static int retention_field(store_json_t *j, store_retention_t *p, int *set)
{
    memset(p, 0, sizeof *p);
    store_buf_t key = STORE_BUF_INIT;
    int rc, c = store_json_peek(j);
    if (c != '{') {
        rc = store_json_value(j, &key, 1);
        if (rc == REEL_OK && !(key.len == 1 && key.data[0] == 0xc0))
            rc = store_json_fail(j, REEL_EINVALID_PARAMETER, "'retention' must be an object or null");
        store_buf_release(&key);
        *set = rc == REEL_OK;
        return rc;
    }
    p->set = 1;
    rc = store_json_expect(j, '{');
    for (int first = 1; rc == REEL_OK && store_json_peek(j) != '}'; first = 0) {
        if (!first && (rc = store_json_expect(j, ',')) != REEL_OK)
            break;
        store_buf_clear(&key);
        if ((rc = store_json_string(j, &key)) != REEL_OK || (rc = store_json_expect(j, ':')))
            break;
        if (store_buf_is(&key, "max_age"))
            rc = limit_value(j, "max_age", 0, &p->max_age_ms);
        else if (store_buf_is(&key, "max_age_after_end"))
            rc = limit_value(j, "max_age_after_end", 0, &p->max_age_ended_ms);
        else if (store_buf_is(&key, "max_events"))
            rc = limit_value(j, "max_events", 1, &p->max_events);
        else if (store_buf_is(&key, "archive")) {
            store_buf_t v = STORE_BUF_INIT;
            rc = store_json_value(j, &v, 1);
            if (rc == REEL_OK && !(v.len == 1 && (v.data[0] == 0xc2 || v.data[0] == 0xc3)))
                rc = store_json_fail(j, REEL_EINVALID_PARAMETER, "retention 'archive' must be "
                                     "true or false");
            else if (rc == REEL_OK)
                p->no_archive = v.data[0] == 0xc2;
            store_buf_release(&v);
        } else
            rc = store_json_fail(j, REEL_EINVALID_PARAMETER,
                                 "unknown retention field '%.64s' (expected max_age, "
                                 "max_age_after_end, max_events, archive)", store_buf_cstr(&key));
    }
    if (rc == REEL_OK)
        rc = store_json_expect(j, '}');
    store_buf_release(&key);
    *set = rc == REEL_OK;
    return rc;
}

struct put_fields {
    int agent, native, meta, retention;
    size_t agent_len, native_len;
    uint64_t expected_version; /* 0 = absent */
};

/* expected_version: a JSON integer from 1 to 2^64-1, written as digits. */
static int version_field(store_json_t *j, uint64_t *out)
{
    store_buf_t tmp = STORE_BUF_INIT;
    store_json_peek(j);
    const char *a = j->p;
    int rc = store_json_value(j, &tmp, 1);
    store_buf_release(&tmp);
    if (rc != REEL_OK)
        return rc;
    size_t n = (size_t)(j->p - a);
    if (!n || *a == '0' || store_parse_u64(a, n, out))
        return store_json_fail(j, REEL_EINVALID_PARAMETER,
                               "'expected_version' must be a positive integer, not %.*s",
                               n < COND_TEXT ? (int)n : COND_TEXT, a);
    return REEL_OK;
}

static int parse_put(api_req_t *rq, struct put_fields *f, store_json_error_t *e)
{
    store_json_t j;
    store_json_init(&j, (const char *)rq->body.data, rq->body.len, rq->srv->lim.max_depth, e);
    if (store_json_peek(&j) < 0)
        return REEL_OK; /* an empty body creates the session with nothing set */
    int rc = store_json_expect(&j, '{');
    if (rc != REEL_OK)
        return store_json_fail(&j, REEL_EINVALID_PARAMETER, "the body must be a JSON object");
    store_buf_t key = STORE_BUF_INIT;
    int first = 1;
    while (rc == REEL_OK && store_json_peek(&j) != '}') {
        if (!first && (rc = store_json_expect(&j, ',')) != REEL_OK)
            break;
        first = 0;
        store_buf_clear(&key);
        if ((rc = store_json_string(&j, &key)) != REEL_OK ||
            (rc = store_json_expect(&j, ':')) != REEL_OK)
            break;
        /* By length: a key "agent\u0000x" is not "agent". */
        if (store_buf_is(&key, "agent"))
            rc = string_field(&j, "agent", rq->agent, STORE_NAME_MAX, &f->agent_len, &f->agent);
        else if (store_buf_is(&key, "native_session_id"))
            rc = string_field(&j, "native_session_id", rq->native, STORE_NAME_MAX, &f->native_len,
                              &f->native);
        else if (store_buf_is(&key, "metadata"))
            rc = metadata_field(&j, &rq->meta, &f->meta);
        else if (store_buf_is(&key, "expected_version"))
            rc = version_field(&j, &f->expected_version);
        else if (store_buf_is(&key, "retention"))
            rc = retention_field(&j, &rq->retention, &f->retention);
        else
            rc = store_json_fail(&j, REEL_EINVALID_PARAMETER,
                                 "unknown field '%.64s' (expected agent, native_session_id, "
                                 "metadata, retention, expected_version)",
                                 store_buf_cstr(&key));
    }
    store_buf_release(&key);
    if (rc == REEL_OK)
        rc = store_json_expect(&j, '}');
    if (rc == REEL_OK)
        rc = store_json_end(&j);
    if (rc == REEL_OK && store_buf_failed(&rq->meta))
        rc = REEL_ENOMEM;
    return rc;
}

static enum MHD_Result put_submit(api_req_t *rq)
{
    if (rq->reject)
        return api__problem(rq, rq->reject, "%s", rq->reject_detail);
    struct put_fields f = {0, 0, 0, 0, 0, 0, 0};
    store_json_error_t e;
    memset(&e, 0, sizeof e);
    int rc = parse_put(rq, &f, &e);
    if (rc != REEL_OK)
        return api__problem(rq, rc, "line %d, column %d: %s", e.line, e.column,
                            e.text[0] ? e.text : reel_strerror(rc));
    store_batch_t *b = &rq->batch;
    store_batch_init(b, STORE_OP_SESSION_PUT, rq->session, rq->session_len);
    if (f.agent) {
        b->agent = rq->agent;
        b->agent_len = f.agent_len;
    }
    if (f.native) {
        b->native_session_id = rq->native;
        b->native_session_id_len = f.native_len;
    }
    if (f.meta) {
        b->metadata = rq->meta.data;
        b->metadata_len = rq->meta.len;
    }
    if (f.retention)
        b->retention = &rq->retention;
    enum MHD_Result r;
    if (!conditions(rq, b, f.expected_version, &r))
        return r;
    rq->phase = CHANGE_COMMIT;
    return api__submit(rq, b);
}

/* 204: a purged session has no record left to show. */
static enum MHD_Result reply_purged(api_req_t *rq)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"",
                                                                MHD_RESPMEM_PERSISTENT);
    return resp ? api__queue(rq, 204, resp) : MHD_NO;
}

static enum MHD_Result change_done(api_req_t *rq)
{
    int err = rq->batch.err;
    if (err == REEL_EPRECONDITION)
        return precondition_failed(rq);
    if (err != REEL_OK)
        return api__session_problem(rq, err, "the change");
    return rq->batch.op == STORE_OP_PURGE ? reply_purged(rq) : reply_record(rq);
}

enum MHD_Result api__session_get(api_req_t *rq, const char *data, size_t *size)
{
    return reply_record(rq);
}

/* ?purge=true, after each trim batch: another batch while events remain, then the purge
 * of the emptied record (a tombstone has none: straight to the purge). The conditions
 * stay in the batch, so the purge checks them again. */
static enum MHD_Result purge_step(api_req_t *rq)
{
    store_batch_t *b = &rq->batch;
    int err = b->err;
    if (err == REEL_EPRECONDITION)
        return precondition_failed(rq);
    if (err != REEL_OK && err != REEL_EGONE)
        return api__session_problem(rq, err, "the purge");
    int more = err == REEL_OK && b->first_sequence <= b->last_sequence;
    b->op = more ? STORE_OP_TRIM : STORE_OP_PURGE;
    b->trim_before = UINT64_MAX;
    b->err = REEL_OK;
    rq->phase = more ? PURGE_TRIM : CHANGE_COMMIT;
    return api__submit(rq, b);
}

enum MHD_Result api__session_delete(api_req_t *rq, const char *data, size_t *size)
{
    if (rq->phase == CHANGE_COMMIT)
        return rq->async_done ? change_done(rq) : MHD_YES;
    if (rq->phase == PURGE_TRIM)
        return rq->async_done ? purge_step(rq) : MHD_YES;
    /* ?purge=true: removed for good (record, ids, events; docs/RETENTION.md), a tombstone
     * included; else the tombstone that keeps the id from being used again. */
    int purge = 0;
    if (api__query_bool(rq, "purge", &purge) != REEL_OK)
        return MHD_YES;
    /* A purge first trims the events in bounded batches (STORE_TRIM_MAX each), so that a
     * long session does not hold the appends queued behind one long transaction. */
    store_batch_init(&rq->batch, purge ? STORE_OP_TRIM : STORE_OP_SESSION_DELETE, rq->session,
                     rq->session_len);
    rq->batch.trim_before = UINT64_MAX;
    enum MHD_Result r;
    if (!conditions(rq, &rq->batch, 0, &r))
        return r;
    rq->phase = purge ? PURGE_TRIM : CHANGE_COMMIT;
    return api__submit(rq, &rq->batch);
}

/* POST or PUT */
enum MHD_Result api__session_put(api_req_t *rq, const char *data, size_t *size)
{
    if (rq->phase == CHANGE_COMMIT)
        return rq->async_done ? change_done(rq) : MHD_YES;
    if (rq->phase == API_PHASE_NEW) {
        enum MHD_Result r;
        const char *ct = api__header(rq, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (ct && strncasecmp(ct, "application/json", 16))
            return api__problem(rq, REEL_EUNSUPPORTED_MEDIA,
                                "Content-Type '%s' is not application/json", ct);
        if (!api__body_precheck(rq, &r))
            return r;
        rq->phase = CHANGE_BODY;
        return MHD_YES;
    }
    int more = api__collect_body(rq, data, size);
    if (more < 0)
        return MHD_NO;
    return more ? MHD_YES : put_submit(rq);
}

/* ---- List ----
 *
 * GET /v1/sessions?prefix=&order=id|recent&agent=&status=&limit=&cursor= (docs/HTTP.md).
 * The cursor is opaque to clients: in id order it is the last session id examined (what
 * earlier versions served), in recent order "<updated_ms>.<num>" of the last record
 * examined. A page examines at most LIST_BUDGET records; a filtered page that ran out of
 * budget comes back short (even empty) with a next_cursor. */

struct list {
    store_buf_t *out;
    size_t n;
    int err;
    api_req_t *rq;      /* a tenant's listing keeps only its own records */
    int peek, found;    /* the page is full: only look whether another of its own follows */
    int64_t mine_ms;    /* the last record served: a tenant's recent-order cursor */
    char mine_id[STORE_SESSION_ID_MAX + 1];
};

static int list_record(void *arg, const store_session_t *rec)
{
    struct list *l = arg;
    if (l->rq && !api__tenant_allows(l->rq, rec->id, rec->id_len))
        return 0;
    if (l->peek)
        return l->found = 1;
    if (l->n)
        store_buf_putc(l->out, ',');
    int rc = replay_write_session(l->out, rec);
    if (rc != REEL_OK) {
        l->err = rc;
        return 1;
    }
    l->n++;
    l->mine_ms = rec->updated_ms;
    memcpy(l->mine_id, rec->id, rec->id_len);
    l->mine_id[rec->id_len] = '\0';
    return 0;
}

static int parse_status(const char *s)
{
    if (!strcmp(s, "active"))
        return STORE_ACTIVE;
    if (!strcmp(s, "ended"))
        return STORE_ENDED;
    if (!strcmp(s, "deleted"))
        return STORE_DELETED;
    return -1;
}

/* A recent-order cursor: "<updated_ms>.<num>", both decimal. */
static int parse_recent_cursor(const char *c, store_list_t *q)
{
    const char *dot = strchr(c, '.');
    uint64_t ms, num;
    if (!dot || store_parse_u64(c, (size_t)(dot - c), &ms) ||
        store_parse_u64(dot + 1, strlen(dot + 1), &num) || ms > INT64_MAX || !num)
        return -1;
    q->started = 1;
    q->last_ms = (int64_t)ms;
    q->last_num = num;
    return 0;
}

/* A tenant's recent-order cursor: "<updated_ms>.<id>" of the last record it was served
 * (its own), where others get the store-wide session number (docs/HTTP.md "Tenants").
 * The number is looked up again; a session gone for good resumes after every record of
 * that time (some may come again, none is skipped). */
static int parse_tenant_recent_cursor(api_req_t *rq, const char *c, store_list_t *q)
{
    const char *dot = strchr(c, '.');
    uint64_t ms;
    size_t id_len = dot ? strlen(dot + 1) : 0;
    if (!dot || store_parse_u64(c, (size_t)(dot - c), &ms) || ms > INT64_MAX ||
        !store_session_id_valid(dot + 1, id_len) || !api__tenant_allows(rq, dot + 1, id_len))
        return -1;
    store_read_t r;
    store_session_t rec;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc != REEL_OK)
        return -1;
    rc = store_session_get(&r, dot + 1, id_len, &rec);
    q->last_num = rc == REEL_OK ? rec.num : UINT64_MAX;
    store_read_end(&r);
    q->started = 1;
    q->last_ms = (int64_t)ms;
    return rc == REEL_OK || rc == REEL_ESESSION_NOT_FOUND ? 0 : -1;
}

/* A token limited to session prefixes lists only under them, and learns nothing of other
 * sessions. In id order the listing is narrowed to its prefix (the store then examines no
 * other record, so neither short pages nor cursors speak of them). In recent order the
 * store walks every record by time: the tenant's records are kept (list_record), the page
 * goes on past others' until it is full or the walk ends, and the cursor names its own
 * last record. A token with several prefixes must name one with ?prefix= in id order.
 * '*empty' when the request's prefix lies outside the token's. */
static enum MHD_Result tenant_listing(api_req_t *rq, store_list_t *q, char *prefix, size_t cap,
                                      int *empty)
{
    if (q->order != STORE_ORDER_ID) {
        const char *p = rq->prefixes;
        for (size_t i = 0; i < rq->n_prefixes; i++, p += strlen(p) + 1)
            if (!q->prefix || (strlen(p) >= q->prefix_len && !memcmp(p, q->prefix, q->prefix_len)) ||
                (q->prefix_len >= strlen(p) && !memcmp(q->prefix, p, strlen(p))))
                return MHD_YES;
        *empty = 1;
        return MHD_YES;
    }
    const char *p = rq->prefixes, *mine = NULL;
    for (size_t i = 0; i < rq->n_prefixes; i++, p += strlen(p) + 1) {
        size_t pl = strlen(p);
        if (q->prefix && q->prefix_len >= pl && !memcmp(q->prefix, p, pl))
            return MHD_YES; /* already inside this prefix */
        if (!q->prefix || (pl > q->prefix_len && !memcmp(p, q->prefix, q->prefix_len)))
            mine = mine ? "" : p; /* "" marks a second candidate */
    }
    if (!mine) {
        *empty = 1;
        return MHD_YES;
    }
    if (!*mine)
        return api__problem(rq, REEL_EINVALID_PARAMETER, "this token has several session "
                            "prefixes: name one with ?prefix= (GET /v1/tenant lists them)");
    snprintf(prefix, cap, "%s", mine);
    q->prefix = prefix;
    q->prefix_len = strlen(prefix);
    return MHD_YES;
}

enum MHD_Result api__sessions_list(api_req_t *rq, const char *data, size_t *size)
{
    char cursor[STORE_SESSION_ID_MAX + 1] = "", agent[STORE_NAME_MAX + 1], status[16],
        order[16] = "id";
    char prefix[STORE_SESSION_ID_MAX + 1];
    uint64_t limit = API_DEFAULT_LIMIT;
    store_list_t *q = calloc(1, sizeof *q);
    if (!q)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    q->status = -1;
    enum MHD_Result res = MHD_YES;
    int rc = api__query(rq, "order", order, sizeof order);
    if (rc < 0 || (strcmp(order, "id") && strcmp(order, "recent"))) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER, "'order' must be id or recent, not '%s'",
                           rc < 0 ? "(bad encoding or too long)" : order);
        goto done;
    }
    q->order = strcmp(order, "recent") ? STORE_ORDER_ID : STORE_ORDER_RECENT;
    rc = api__query(rq, "prefix", prefix, sizeof prefix);
    if (rc < 0 || (rc > 0 && prefix[0] && !store_session_id_valid(prefix, strlen(prefix)) &&
                   strcmp(prefix, ".") && strcmp(prefix, ".."))) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER,
                           "'prefix' must be UTF-8 of at most %d bytes without control "
                           "characters (percent-encoded)", STORE_SESSION_ID_MAX);
        goto done;
    }
    if (rc > 0 && prefix[0]) {
        q->prefix = prefix;
        q->prefix_len = strlen(prefix);
    }
    if (rq->n_prefixes) {
        int empty = 0;
        if ((res = tenant_listing(rq, q, prefix, sizeof prefix, &empty)) != MHD_YES || rq->phase == API_PHASE_ANSWERED)
            goto done;
        if (empty) {
            store_buf_t none = STORE_BUF_INIT;
            store_buf_puts(&none, "{\"sessions\":[],\"next_cursor\":null}");
            res = api__reply_json(rq, 200, &none);
            goto done;
        }
    }
    rc = api__query(rq, "cursor", cursor, sizeof cursor);
    if (rc > 0 && cursor[0]) {
        if (q->order == STORE_ORDER_RECENT && rq->n_prefixes) {
            rc = parse_tenant_recent_cursor(rq, cursor, q) ? -1 : rc;
        } else if (q->order == STORE_ORDER_RECENT) {
            rc = parse_recent_cursor(cursor, q) ? -1 : rc;
        } else if (store_session_id_valid(cursor, strlen(cursor))) {
            q->started = 1;
            q->last_id_len = strlen(cursor);
            memcpy(q->last_id, cursor, q->last_id_len + 1);
        } else {
            rc = -1;
        }
    }
    if (rc < 0) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER,
                           "'cursor' is not a cursor of this listing (%s order): pass "
                           "next_cursor as it was served", order);
        goto done;
    }
    if (api__query_u64(rq, "limit", LIST_MAX, &limit) != REEL_OK)
        goto done;
    if (limit == 0) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER, "'limit' must be from 1 to %d", LIST_MAX);
        goto done;
    }
    rc = api__query(rq, "agent", agent, sizeof agent);
    if (rc < 0) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER, "'agent' is not valid");
        goto done;
    }
    if (rc > 0) {
        q->agent = agent;
        q->agent_len = strlen(agent);
    }
    rc = api__query(rq, "status", status, sizeof status);
    if (rc < 0 || (rc > 0 && (q->status = parse_status(status)) < 0)) {
        res = api__problem(rq, REEL_EINVALID_PARAMETER,
                           "'status' must be active, ended or deleted, not '%s'",
                           rc < 0 ? "(bad encoding or too long)" : status);
        goto done;
    }
    store_buf_t out = STORE_BUF_INIT;
    struct list l = {&out, 0, 0, rq->n_prefixes && q->order == STORE_ORDER_RECENT ? rq : NULL,
                     0, 0, 0, ""};
    int more = 0;
    store_buf_puts(&out, "{\"sessions\":[");
    /* A tenant's recent page goes on, a short read at a time, until it holds 'limit' of
     * its own records or the walk ends, then looks on for one more of its own: its length,
     * next_cursor and the page after tell nothing of others' records. */
    do {
        store_read_t r;
        l.peek = l.rq && l.n == limit;
        if ((rc = store_read_begin(rq->srv->store, &r)) == REEL_OK) {
            rc = store_sessions_query(&r, q, l.peek ? LIST_BUDGET : (size_t)limit - l.n,
                                      LIST_BUDGET, list_record, &l, &more);
            store_read_end(&r);
            if (rc == 1 && l.found) /* list_record's stop: one more of its own is there */
                rc = REEL_OK;
        }
    } while (l.rq && rc == REEL_OK && !l.err && more && !l.found);
    if (l.rq)
        more = l.found;
    if (rc == REEL_OK && l.err)
        rc = l.err;
    if (rc != REEL_OK) {
        store_buf_release(&out);
        res = api__problem(rq, rc, "listing sessions failed: %s", reel_strerror(rc));
        goto done;
    }
    store_buf_puts(&out, "],\"next_cursor\":");
    if (!more) {
        store_buf_puts(&out, "null");
    } else if (l.rq) {
        store_buf_t c = STORE_BUF_INIT;
        store_buf_printf(&c, "%lld.%s", (long long)l.mine_ms, l.mine_id);
        store_json_write_string(&out, (const char *)c.data, c.len);
        store_buf_release(&c);
    } else if (q->order == STORE_ORDER_RECENT) {
        char c[48];
        snprintf(c, sizeof c, "%lld.%llu", (long long)q->last_ms,
                 (unsigned long long)q->last_num);
        store_json_write_string(&out, c, strlen(c));
    } else {
        store_json_write_string(&out, q->last_id, q->last_id_len);
    }
    store_buf_putc(&out, '}');
    res = api__reply_json(rq, 200, &out);
done:
    free(q);
    return res;
}

/* ---- GET /v1/tenant: what the caller's token may do ---- */

enum MHD_Result api__tenant(api_req_t *rq, const char *data, size_t *size)
{
    store_buf_t out = STORE_BUF_INIT;
    store_buf_puts(&out, "{\"name\":");
    if (rq->token_name[0])
        store_json_write_string(&out, rq->token_name, strlen(rq->token_name));
    else
        store_buf_puts(&out, "null");
    store_buf_puts(&out, ",\"scopes\":[");
    int scope = rq->token_scope ? rq->token_scope : API_SCOPE_FULL, first = 1; /* 0: no auth */
    for (int i = 0; i < 4; i++)
        if (scope & (1 << i)) {
            store_buf_printf(&out, "%s\"%s\"", first ? "" : ",", api_scope_name(i));
            first = 0;
        }
    store_buf_puts(&out, "],\"prefixes\":");
    if (!rq->n_prefixes) {
        store_buf_puts(&out, "null"); /* every session */
    } else {
        store_buf_putc(&out, '[');
        const char *p = rq->prefixes;
        for (size_t i = 0; i < rq->n_prefixes; i++, p += strlen(p) + 1) {
            if (i)
                store_buf_putc(&out, ',');
            store_json_write_string(&out, p, strlen(p));
        }
        store_buf_putc(&out, ']');
    }
    store_buf_puts(&out, ",\"usage\":");
    api__tenant_usage(rq, &out);
    store_buf_putc(&out, '}');
    return api__reply_json(rq, 200, &out);
}
