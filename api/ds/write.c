/* write.c -- Durable Streams writes: the write headers, building a write, POST (append
 * and close). docs/durable-streams.md "Writes".
 *
 * Writes are optimistic (see ds.c): a request reads the stream's state, decides, then
 * submits one atomic batch holding the new events and the new state as a compare-and-swap
 * on the state it read; a lost race (REEL_ECONFLICT, never shown to the client) decides
 * again on the new state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ds/ds_int.h"
#include "store/json.h"
#include "store/parse.h"

/* ---- Header parsing ---- */

/* A protocol integer: decimal digits within a JavaScript safe integer, and with
 * 'no_leading_zero' of the form ^(0|[1-9][0-9]*)$ too. */
static int strict_uint(const char *s, uint64_t *v, int no_leading_zero)
{
    uint64_t x;
    if (!s || (no_leading_zero && s[0] == '0' && s[1]) ||
        store_parse_u64(s, strlen(s), &x) != REEL_OK || x > 9007199254740991ULL)
        return -1;
    *v = x;
    return 0;
}

static int header_true(api_req_t *rq, const char *name)
{
    const char *v = api__header(rq, name);
    return v && !strcasecmp(v, "true");
}

/* Producer-Id/Epoch/Seq: all or none. Answers 400 and returns -1 when bad. */
static int parse_producer(api_req_t *rq, ds_req_t *d)
{
    const char *id = api__header(rq, "Producer-Id");
    const char *ep = api__header(rq, "Producer-Epoch");
    const char *sq = api__header(rq, "Producer-Seq");
    if (!id && !ep && !sq)
        return 0;
    if (!id || !ep || !sq) {
        api__problem(rq, REEL_EINVALID_PARAMETER,
                     "Producer-Id, Producer-Epoch and Producer-Seq must be sent together");
        return -1;
    }
    if (!*id || strlen(id) > DS_PRODUCER_ID_MAX) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "Producer-Id must be 1..%d bytes",
                     DS_PRODUCER_ID_MAX);
        return -1;
    }
    if (strict_uint(ep, &d->pepoch, 0) || strict_uint(sq, &d->pseq, 0)) {
        api__problem(rq, REEL_EINVALID_PARAMETER,
                     "Producer-Epoch and Producer-Seq must be non-negative integers");
        return -1;
    }
    snprintf(d->pid, sizeof d->pid, "%s", id);
    d->has_producer = 1;
    return 0;
}

int ds__parse_write_headers(api_req_t *rq, ds_req_t *d)
{
    const char *ct = api__header(rq, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct && *ct) {
        if (strlen(ct) > DS_CTYPE_MAX) {
            api__problem(rq, REEL_EINVALID_PARAMETER, "Content-Type is too long");
            return -1;
        }
        snprintf(d->ctype, sizeof d->ctype, "%s", ct);
        d->has_ctype = 1;
    }
    d->close = header_true(rq, "Stream-Closed");
    const char *seq = api__header(rq, "Stream-Seq");
    if (seq) {
        if (!*seq || strlen(seq) > DS_SEQ_MAX) {
            api__problem(rq, REEL_EINVALID_PARAMETER, "Stream-Seq must be 1..%d bytes",
                         DS_SEQ_MAX);
            return -1;
        }
        snprintf(d->seq, sizeof d->seq, "%s", seq);
        d->has_seq = 1;
    }
    return parse_producer(rq, d);
}

/* A media type "type/subtype" (what the reference server accepts); else the default. */
static int media_type_ok(const char *ct)
{
    size_t i = 0;
    while (ct[i] && (ct[i] == '-' || ct[i] == '_' || (ct[i] >= '0' && ct[i] <= '9') ||
                     ((ct[i] | 32) >= 'a' && (ct[i] | 32) <= 'z')))
        i++;
    if (!i || ct[i] != '/')
        return 0;
    size_t j = i + 1;
    while (ct[j] == '-' || ct[j] == '_' || (ct[j] >= '0' && ct[j] <= '9') ||
           ((ct[j] | 32) >= 'a' && (ct[j] | 32) <= 'z'))
        j++;
    return j > i + 1;
}

int ds__parse_put_headers(api_req_t *rq, ds_req_t *d)
{
    if (ds__parse_write_headers(rq, d))
        return -1;
    if (!d->has_ctype || !media_type_ok(d->ctype)) {
        snprintf(d->ctype, sizeof d->ctype, "%s", "application/octet-stream");
        d->has_ctype = 0;
    }
    const char *ttl = api__header(rq, "Stream-TTL");
    const char *exp = api__header(rq, "Stream-Expires-At");
    if (ttl && exp) {
        api__problem(rq, REEL_EINVALID_PARAMETER,
                     "send Stream-TTL or Stream-Expires-At, not both");
        return -1;
    }
    if (ttl) {
        if (strict_uint(ttl, &d->ttl, 1)) {
            api__problem(rq, REEL_EINVALID_PARAMETER,
                         "Stream-TTL must be a whole number of seconds, not '%.40s'", ttl);
            return -1;
        }
        d->has_ttl = 1;
    }
    if (exp) {
        if (strlen(exp) >= sizeof d->expires || (d->expires_ms = store_parse_rfc3339(exp, strlen(exp))) < 0) {
            api__problem(rq, REEL_EINVALID_PARAMETER,
                         "Stream-Expires-At must be an RFC 3339 time, not '%.60s'", exp);
            return -1;
        }
        snprintf(d->expires, sizeof d->expires, "%s", exp);
        d->has_expires = 1;
    }
    const char *from = api__header(rq, "Stream-Forked-From");
    const char *foff = api__header(rq, "Stream-Fork-Offset");
    const char *fsub = api__header(rq, "Stream-Fork-Sub-Offset");
    if (fsub && !from) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "Stream-Fork-Sub-Offset needs Stream-Forked-From");
        return -1;
    }
    if (foff && ds__offset_parse(foff, &d->fork_offset)) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "Stream-Fork-Offset is not an offset");
        return -1;
    }
    if (fsub) {
        uint64_t v;
        if (strict_uint(fsub, &v, 1)) {
            api__problem(rq, REEL_EINVALID_PARAMETER, "Stream-Fork-Sub-Offset is not valid");
            return -1;
        }
        if (v > 0 && !foff) {
            api__problem(rq, REEL_EINVALID_PARAMETER,
                         "Stream-Fork-Sub-Offset needs Stream-Fork-Offset");
            return -1;
        }
        d->fork_sub = v;
    }
    d->has_fork_offset = foff != NULL;
    if (from) {
        const char *p = from;
        if (!strncmp(p, "/v1/stream/", 11))
            p += 11;
        else if (*p == '/')
            p++;
        long n = api__pct_decode(p, strlen(p), d->fork_path, DS_PATH_MAX, 0);
        if (n <= 0) {
            api__problem(rq, REEL_EINVALID_PARAMETER, "Stream-Forked-From is not a stream path");
            return -1;
        }
        d->has_fork = 1;
    }
    return 0;
}

/* ---- Building a write ---- */

/* Adds the request body as messages: JSON mode adds each element of a top-level array
 * (an empty array adds nothing), or the one value; byte mode adds the bytes as one
 * message. Returns REEL_OK or REEL_EINVALID_JSON / REEL_ETOO_DEEP with 'why' set. */
int ds__add_messages(api_req_t *rq, ds_req_t *d, int json, size_t *count, char *why,
                        size_t why_len)
{
    const char *body = (const char *)rq->body.data;
    size_t len = rq->body.len;
    ingest_error_t e;
    store_buf_t mp = STORE_BUF_INIT;
    int rc = REEL_OK;
    *count = 0;
    if (!json) {
        store_mp_bin(&mp, body, len);
        rc = ingest_add(&d->ib, DS_TYPE_MESSAGE, NULL, -1, NULL, NULL, mp.data, mp.len, NULL, 0,
                        &e);
        store_buf_release(&mp);
        if (!rc)
            *count = 1;
        return rc;
    }
    store_json_error_t je;
    memset(&je, 0, sizeof je);
    store_json_t j;
    store_json_init(&j, body, len, rq->srv->lim.max_depth, &je);
    int c = store_json_peek(&j);
    if (c == '[') {
        store_json_expect(&j, '[');
        if (store_json_peek(&j) == ']') {
            store_json_expect(&j, ']');
        } else {
            for (;;) {
                store_buf_clear(&mp);
                if ((rc = store_json_value(&j, &mp, 1)))
                    break;
                if ((rc = ingest_add(&d->ib, DS_TYPE_MESSAGE, NULL, -1, NULL, NULL, mp.data,
                                     mp.len, NULL, 0, &e)))
                    break;
                ++*count;
                c = store_json_peek(&j);
                if (c == ',') {
                    store_json_expect(&j, ',');
                    continue;
                }
                rc = store_json_expect(&j, ']');
                break;
            }
        }
    } else {
        rc = store_json_value(&j, &mp, 0);
        if (!rc && !(rc = ingest_add(&d->ib, DS_TYPE_MESSAGE, NULL, -1, NULL, NULL, mp.data,
                                     mp.len, NULL, 0, &e)))
            *count = 1;
    }
    if (!rc)
        rc = store_json_end(&j);
    store_buf_release(&mp);
    if (rc)
        snprintf(why, why_len, "line %d, column %d: %s", je.line, je.column,
                 je.text[0] ? je.text : reel_strerror(rc));
    return rc;
}

int ds__add_close_marker(ds_req_t *d)
{
    static const uint8_t nil = 0xc0;
    ingest_error_t e;
    return ingest_add(&d->ib, DS_TYPE_CLOSED, NULL, -1, NULL, NULL, &nil, 1, NULL, 0, &e);
}

void ds__batch_reset(ds_req_t *d)
{
    if (d->ib_live)
        ingest_batch_release(&d->ib);
    d->ib_live = 0;
    store_buf_clear(&d->meta);
    d->kind = W_NONE;
}

int ds__batch_start(ds_req_t *d)
{
    ds__batch_reset(d);
    int rc = ingest_batch_init(&d->ib, d->sid, d->sid_len);
    if (rc == REEL_OK)
        d->ib_live = 1;
    return rc;
}

/* Makes 'b' replace the session's metadata with 'meta' only if it is still 'seen' (the
 * record this request read): a compare-and-swap on the stream's state. Both buffers must
 * outlive the batch. */
void ds__cas_meta(store_batch_t *b, const store_buf_t *meta, const store_buf_t *seen)
{
    b->metadata = meta->data;
    b->metadata_len = meta->len;
    b->check_metadata = 1;
    b->expected_metadata = seen->data;
    b->expected_metadata_len = seen->len;
}

/* Submits the ingest batch (events + state) with expected_sequence 'expect'. */
enum MHD_Result ds__submit_append(api_req_t *rq, ds_req_t *d, const ds_meta_t *m)
{
    ds__meta_encode(m, d->path, d->path_len, &d->meta);
    if (store_buf_failed(&d->meta))
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    ds__cas_meta(&d->ib.b, &d->meta, &d->seen);
    d->kind = W_APPEND;
    if (api__async_begin(rq) != REEL_OK)
        return api__problem(rq, REEL_EUNAVAILABLE, "the server is shutting down");
    rq->phase = DS_COMMIT;
    int rc = ingest_submit(rq->srv->store, &d->ib, api__batch_done, rq);
    if (rc != REEL_OK)
        api__async_failed(rq, &d->ib.b, rc);
    return MHD_YES;
}

enum MHD_Result ds__submit_plain(api_req_t *rq, ds_req_t *d, int op, int kind)
{
    store_batch_init(&d->pb, op, d->sid, d->sid_len);
    if (op == STORE_OP_SESSION_PUT) {
        ds__cas_meta(&d->pb, &d->meta, &d->seen);
    }
    d->kind = kind;
    rq->phase = DS_COMMIT;
    return api__submit(rq, &d->pb);
}

/* ---- POST: append, close ---- */

static enum MHD_Result closed_conflict(api_req_t *rq, uint64_t tail)
{
    struct MHD_Response *r = api__problem_response(rq, REEL_ECONFLICT, "the stream is closed");
    if (!r)
        return MHD_NO;
    ds__hdr(r, "Stream-Closed", "true");
    ds__hdr_offset(r, tail);
    return ds__queue_problem(rq, REEL_ECONFLICT, r);
}

/* A POST to a closed stream: 204 when it repeats the close (the same producer tuple, or
 * a plain close), else 409 with the stream's tail. */
static enum MHD_Result post_closed(api_req_t *rq, ds_req_t *d, const ds_meta_t *m,
                                   uint64_t tail, int close_only)
{
    int same = d->has_producer && m->has_closed_by && !strcmp(m->closed_by, d->pid) &&
               m->closed_epoch == d->pepoch && m->closed_seq == d->pseq;
    if (!same && !(close_only && !d->has_producer))
        return closed_conflict(rq, tail);
    struct MHD_Response *r = ds__resp(NULL, 0);
    if (!r)
        return MHD_NO;
    ds__hdr_offset(r, tail);
    ds__hdr(r, "Stream-Closed", "true");
    if (same) {
        ds__hdr_u64(r, "Producer-Epoch", d->pepoch);
        ds__hdr_u64(r, "Producer-Seq", d->pseq);
    }
    return api__queue(rq, 204, r);
}

/* Applies the close to the state 'm' and adds the close marker. */
static int post_close(ds_req_t *d, ds_meta_t *m)
{
    m->closed = 1;
    if (d->has_producer) {
        m->has_closed_by = 1;
        snprintf(m->closed_by, sizeof m->closed_by, "%s", d->pid);
        m->closed_epoch = d->pepoch;
        m->closed_seq = d->pseq;
    }
    return ds__add_close_marker(d);
}

/* Decides a POST on the stream's current state and submits it: every answer but the
 * submit's is given here. Called again after a lost compare-and-swap. */
enum MHD_Result ds__post_decide(api_req_t *rq, ds_req_t *d)
{
    store_session_t rec;
    ds_meta_t m = DS_META_INIT;
    enum MHD_Result r;
    int close_only = d->close && rq->body.len == 0;
    if (rq->body.len == 0 && !d->close)
        return api__problem(rq, REEL_EINVALID_PARAMETER, "an append needs a body");
    int st = ds__find(rq, d, &rec, &m);
    if (st < 0) {
        r = api__problem(rq, st, "reading the stream failed: %s", reel_strerror(st));
        goto out;
    }
    if (st != S_LIVE) {
        r = st == S_SOFT_DELETED
                ? api__problem(rq, REEL_EGONE, "stream '%.200s' was deleted", d->path)
                : ds__not_found(rq, d);
        goto out;
    }
    uint64_t tail = ds__base(&m) + rec.last_sequence;
    if (m.closed) {
        r = post_closed(rq, d, &m, tail, close_only);
        goto out;
    }
    if (!close_only) {
        if (!d->has_ctype) {
            r = api__problem(rq, REEL_EINVALID_PARAMETER, "an append needs a Content-Type");
            goto out;
        }
        char a[DS_CTYPE_MAX + 1], b[DS_CTYPE_MAX + 1];
        ds__ctype_norm(d->ctype, a, sizeof a);
        ds__ctype_norm(m.ctype, b, sizeof b);
        if (strcmp(a, b)) {
            r = api__problem(rq, REEL_ECONFLICT, "Content-Type '%.100s' does not match the stream's '%.100s'",
                             d->ctype, m.ctype);
            goto out;
        }
    }
    d->prod_status = P_ACCEPT;
    if (d->has_producer) {
        uint64_t a = 0;
        int ps = ds__producer_check(&m, d, &a);
        /* a duplicate is answered as the first copy was: with --ack replica, once the
         * replica holds it (api/core/ack.c) */
        if (ps == P_DUP && api__ack_retry(rq, &r))
            goto out;
        if (ps != P_ACCEPT) {
            r = ps < 0 ? api__problem(rq, REEL_ENOMEM, "out of memory")
                       : ds__producer_refused(rq, d, ps, a, tail, 0);
            goto out;
        }
    }
    if (d->has_seq) {
        if (m.has_seq && strcmp(d->seq, m.seq) <= 0) {
            r = api__problem(rq, REEL_ECONFLICT, "Stream-Seq '%.100s' is not above the last one",
                             d->seq);
            goto out;
        }
        snprintf(m.seq, sizeof m.seq, "%s", d->seq);
        m.has_seq = 1;
    }
    int rc = ds__batch_start(d);
    size_t n = 0;
    char why[256] = "";
    if (!rc && !close_only) {
        rc = ds__add_messages(rq, d, ds__is_json(m.ctype), &n, why, sizeof why);
        if (!rc && n == 0) {
            r = api__problem(rq, REEL_EINVALID_PARAMETER, "an empty JSON array appends nothing");
            goto out;
        }
    }
    if (rc) {
        r = api__problem(rq, rc == REEL_ENOMEM ? rc : REEL_EINVALID_JSON,
                         "the body is not valid JSON: %s", why);
        goto out;
    }
    if (d->close && (rc = post_close(d, &m))) {
        r = api__problem(rq, rc, "out of memory");
        goto out;
    }
    d->closing = d->close;
    r = ds__submit_append(rq, d, &m);
out:
    ds__meta_release(&m);
    return r;
}

enum MHD_Result ds__post_done(api_req_t *rq, ds_req_t *d)
{
    store_batch_t *b = &d->ib.b;
    if (b->err == REEL_ECONFLICT && ++d->attempts < DS_MAX_ATTEMPTS) {
        rq->async_done = 0;
        return ds__post_decide(rq, d); /* another write came first: decide again */
    }
    if (b->err == REEL_EGONE)
        return ds__not_found(rq, d);
    if (b->err)
        return api__problem(rq, b->err, "the append failed: %s", reel_strerror(b->err));
    atomic_fetch_add(&rq->srv->appends, 1);
    atomic_fetch_add(&rq->srv->append_events, b->n_events);
    /* A fork's offsets start later. Should the state not be read (a DELETE came in
     * between, out of memory) the offset is the session's own. */
    uint64_t base = 0;
    store_session_t rec;
    ds_meta_t m = DS_META_INIT;
    if (ds__state_read(rq->srv, d->sid, d->sid_len, &rec, &m, NULL) == REEL_OK)
        base = ds__base(&m);
    ds__meta_release(&m);
    struct MHD_Response *resp = ds__resp(NULL, 0);
    if (!resp)
        return MHD_NO;
    ds__hdr_offset(resp, base + b->last_sequence);
    if (d->closing)
        ds__hdr(resp, "Stream-Closed", "true");
    if (d->has_producer) {
        ds__hdr_u64(resp, "Producer-Epoch", d->pepoch);
        ds__hdr_u64(resp, "Producer-Seq", d->pseq);
    }
    int status = d->has_producer && rq->body.len ? 200 : 204;
    return api__queue(rq, status, resp);
}

