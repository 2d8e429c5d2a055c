/* sessions.c -- one session record: GET|POST|PUT|DELETE /v1/sessions/{id} (listing.c lists
 * them).
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
#include "replay/replay.h"
#include "retain/retain.h"
#include "store/json.h"
#include "store/parse.h"

enum { CHANGE_BODY = API_PHASE_OWN, CHANGE_COMMIT, PURGE_TRIM };

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
    enum MHD_Result r;
    return api__json_body_step(rq, data, size, CHANGE_BODY, &r) ? r : put_submit(rq);
}
