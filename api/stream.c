/* stream.c -- the Durable Streams protocol at /v1/stream/{path} (docs/durable-streams.md).
 *
 * PUT creates, POST appends (or closes), GET reads (catch-up, long-poll, SSE), HEAD
 * answers the state, DELETE deletes. Each stream is a session of the log (stream_int.h
 * has the mapping and the layout), so everything else reel does with sessions (feed,
 * export, verify, backup) covers streams too.
 *
 * Writes are optimistic: a request reads the stream's state (the session's metadata) on a
 * short read transaction, decides (closed? content type? Stream-Seq? producer epoch and
 * sequence?), then submits one atomic batch holding the new events and the new state, as
 * a compare-and-swap on the metadata it read (store_batch_t.check_metadata). If another
 * state-changing write committed in between, the store refuses the batch (REEL_ECONFLICT,
 * never seen by the client) and the request decides again on the new state. So every
 * write acts on the state it was decided on, producer state and data are committed
 * together, plain appends (which change no state) still share group commits, and no lock
 * is held across a network wait.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/stream_int.h"
#include "ingest/ingest.h"
#include "store/json.h"

#define DS_MAX_ATTEMPTS 1000 /* optimistic retries of one write before 503 */

/* Long-poll answers 204 after this many ms: REEL_DS_LONG_POLL_MS, default DS_LONG_POLL_MS. */
static uint64_t long_poll_ms(void)
{
    static uint64_t v;
    if (!v) {
        const char *e = getenv("REEL_DS_LONG_POLL_MS");
        long x = e ? strtol(e, NULL, 10) : 0;
        v = x >= 100 && x <= 600000 ? (uint64_t)x : DS_LONG_POLL_MS;
    }
    return v;
}

enum { W_NONE = 0, W_APPEND, W_PUT, W_DELETE };
enum { P_ACCEPT = 0, P_DUP, P_STALE, P_BAD_EPOCH, P_GAP };

typedef struct ds_req {
    char path[DS_PATH_MAX + 1];
    size_t path_len;
    char base[STORE_SESSION_ID_MAX + 1];
    size_t base_len;
    char sid[STORE_SESSION_ID_MAX + 1]; /* the current generation's session */
    size_t sid_len;
    unsigned gen;

    /* request headers (PUT, POST) */
    char ctype[DS_CTYPE_MAX + 1];
    int has_ctype;
    int close;
    int has_producer;
    char pid[DS_PRODUCER_ID_MAX + 1];
    uint64_t pepoch, pseq;
    int has_seq;
    char seq[DS_SEQ_MAX + 1];
    int has_ttl;
    uint64_t ttl;
    int has_expires;
    char expires[64];
    int64_t expires_ms;
    int has_fork;
    char fork_path[DS_PATH_MAX + 1];
    int has_fork_offset;
    uint64_t fork_offset;
    uint64_t fork_sub;
    store_buf_t prefix;  /* a binary sub-offset fork's first message */
    int has_prefix;
    char gc_next[STORE_SESSION_ID_MAX + 1]; /* DELETE: the source to release next */
    char gc_cur[STORE_SESSION_ID_MAX + 1];

    /* a write in flight */
    int kind;
    ingest_batch_t ib;
    int ib_live;
    store_batch_t pb;
    store_buf_t meta;
    int attempts;
    int is_new;       /* PUT created the stream */
    int closing;      /* the write closes the stream */
    int prod_status;  /* P_* of the write's producer check */
    store_buf_t seen;    /* the stream's metadata as read: the batch's compare-and-swap */
    char src_sid[STORE_SESSION_ID_MAX + 1]; /* fork: the source's session (forks+1) */
    store_buf_t src_seen;
    store_batch_t src_b;
    store_buf_t src_meta;
    int src_pending;

    /* reads */
    int has_offset, off_now;
    uint64_t after;
    char offset_text[64];
    int live;         /* 0, 1 long-poll, 2 sse */
    char cursor[32];
    char ctype_read[DS_CTYPE_MAX + 1];
    api_waiter_t waiter;
} ds_req_t;

/* ---- Responses ---- */

void api__stream_headers(api_req_t *rq, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "cross-origin");
    if (rq->srv->cors_origin)
        MHD_add_response_header(
            resp, "Access-Control-Expose-Headers",
            "Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, Stream-TTL, "
            "Stream-Expires-At, Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, "
            "Producer-Expected-Seq, Producer-Received-Seq, ETag, Location");
}

static struct MHD_Response *resp_new(const void *body, size_t len)
{
    return MHD_create_response_from_buffer(len, (void *)(body ? body : ""),
                                           MHD_RESPMEM_MUST_COPY);
}

static void hdr(struct MHD_Response *r, const char *k, const char *v)
{
    MHD_add_response_header(r, k, v);
}

static void hdr_u64(struct MHD_Response *r, const char *k, uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    MHD_add_response_header(r, k, b);
}

static void hdr_offset(struct MHD_Response *r, uint64_t seq)
{
    char off[DS_OFFSET_LEN + 1];
    ds__offset(seq, off);
    MHD_add_response_header(r, "Stream-Next-Offset", off);
}

/* A problem answer (RFC 7807, the one error table) to which the caller adds headers
 * before queue_problem(). Only after the first call of a request (see server.c). */
static struct MHD_Response *problem_new(api_req_t *rq, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct MHD_Response *problem_new(api_req_t *rq, int err, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    for (char *p = detail; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    int status = reel_err_status(err);
    atomic_fetch_add(status >= 500 ? &rq->srv->problems_5xx : &rq->srv->problems_4xx, 1);
    store_buf_t b = STORE_BUF_INIT;
    store_buf_printf(&b, "{\"type\":\"urn:reel:error:%s\",\"title\":", reel_err_code(err));
    store_json_write_string(&b, reel_strerror(err), strlen(reel_strerror(err)));
    store_buf_printf(&b, ",\"status\":%d,\"detail\":", status);
    store_json_write_string(&b, detail, strlen(detail));
    store_buf_putc(&b, '}');
    struct MHD_Response *r = resp_new(b.data, b.len);
    store_buf_release(&b);
    if (r) {
        hdr(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/problem+json");
        hdr(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    return r;
}

static enum MHD_Result queue_problem(api_req_t *rq, int err, struct MHD_Response *r)
{
    return api__queue(rq, reel_err_status(err), r);
}

static enum MHD_Result not_found(api_req_t *rq, const ds_req_t *d)
{
    return api__problem(rq, REEL_ENOT_FOUND, "stream '%.200s' does not exist", d->path);
}

/* ---- Request state ---- */

void api__stream_free(api_req_t *rq)
{
    ds_req_t *d = rq->stream;
    if (!d)
        return;
    if (d->ib_live)
        ingest_batch_release(&d->ib);
    store_buf_release(&d->meta);
    store_buf_release(&d->src_meta);
    store_buf_release(&d->prefix);
    store_buf_release(&d->seen);
    store_buf_release(&d->src_seen);
    free(d);
    rq->stream = NULL;
}


/* Sets the stream's path and base session id from a path (as in the URL, after
 * "/v1/stream/"). Returns 0, or -1 when it cannot name a stream. */
static int set_path(ds_req_t *d, const char *raw, size_t n)
{
    long len = api__pct_decode(raw, n, d->path, DS_PATH_MAX, 0);
    if (len <= 0)
        return -1;
    d->path_len = (size_t)len;
    return ds__base_id(d->path, d->path_len, d->base, &d->base_len);
}

static ds_req_t *req_new(api_req_t *rq)
{
    ds_req_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    store_buf_init(&d->meta);
    store_buf_init(&d->src_meta);
    store_buf_init(&d->prefix);
    store_buf_init(&d->seen);
    store_buf_init(&d->src_seen);
    rq->stream = d;
    const char *p = rq->uri + 11; /* after "/v1/stream/" */
    size_t n = strcspn(p, "?");
    if (set_path(d, p, n) < 0)
        d->path_len = 0;
    return d;
}

/* ---- Finding the stream ---- */

enum { S_NONE = 0, S_LIVE, S_EXPIRED, S_SOFT_DELETED };

/* Finds the current generation of the stream on 'r': d->sid/gen are set to it (or to
 * the generation a create would make, with S_NONE). '*rec' and 'm' are filled for a
 * found record ('m' must be released). Returns a S_* state, or a negative reel_err. */
static int lookup(store_read_t *r, ds_req_t *d, store_session_t *rec, ds_meta_t *m)
{
    unsigned found = 0;
    memset(m, 0, sizeof *m);
    for (unsigned g = 1; g < 100000; g++) {
        char id[STORE_SESSION_ID_MAX + 1];
        size_t len;
        store_session_t x;
        ds__gen_id(d->base, d->base_len, g, id, &len);
        int rc = store_session_get(r, id, len, &x);
        if (rc == REEL_ESESSION_NOT_FOUND)
            break;
        if (rc)
            return -rc;
        *rec = x;
        found = g;
    }
    if (!found) {
        d->gen = 1;
        ds__gen_id(d->base, d->base_len, 1, d->sid, &d->sid_len);
        return S_NONE;
    }
    d->gen = found;
    ds__gen_id(d->base, d->base_len, found, d->sid, &d->sid_len);
    if (ds__meta_parse(rec->metadata, rec->metadata_len, m)) {
        ds__meta_release(m);
        return -REEL_ECORRUPT;
    }
    if (rec->status == STORE_DELETED) {
        d->gen = found + 1;
        ds__gen_id(d->base, d->base_len, d->gen, d->sid, &d->sid_len);
        return S_NONE;
    }
    if (m->soft_deleted)
        return S_SOFT_DELETED;
    if (ds__expired(m, rec, ds__wall_ms()))
        return m->forks ? S_SOFT_DELETED : S_EXPIRED; /* forks still read an expired source */
    return S_LIVE;
}

static void free_batch(store_batch_t *b, void *arg)
{
    (void)arg;
    free(b);
}

/* Deletes an expired stream's session in the background: an expired stream is gone for
 * every route, and its session goes with it, as a DELETE would. */
static void reap(api_server_t *srv, const char *sid, size_t len)
{
    struct reap {
        store_batch_t b;
        char id[STORE_SESSION_ID_MAX + 1];
    } *x = calloc(1, sizeof *x);
    if (!x)
        return;
    memcpy(x->id, sid, len);
    store_batch_init(&x->b, STORE_OP_SESSION_DELETE, x->id, len);
    x->b.done = free_batch;
    if (store_submit(srv->store, &x->b) != REEL_OK)
        free(x);
}

/* Opens a read, looks the stream up, and ends the read unless 'keep'. */
static int find(api_req_t *rq, ds_req_t *d, store_session_t *rec, ds_meta_t *m)
{
    store_read_t r;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc)
        return -rc;
    int st = lookup(&r, d, rec, m);
    store_buf_clear(&d->seen);
    if (st > S_NONE && rec->metadata)
        store_buf_put(&d->seen, rec->metadata, rec->metadata_len);
    store_read_end(&r);
    rec->metadata = NULL; /* borrowed from the read */
    if (store_buf_failed(&d->seen))
        st = -REEL_ENOMEM;
    if (st == S_EXPIRED)
        reap(rq->srv, d->sid, d->sid_len);
    return st;
}

/* ---- Header parsing ---- */

/* ^(0|[1-9][0-9]*)$ within a JavaScript safe integer. */
static int strict_uint(const char *s, uint64_t *v, int no_leading_zero)
{
    uint64_t x = 0;
    if (!s || !*s || (no_leading_zero && s[0] == '0' && s[1]))
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        x = x * 10 + (uint64_t)(*p - '0');
        if (x > 9007199254740991ULL)
            return -1;
    }
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

static int parse_write_headers(api_req_t *rq, ds_req_t *d)
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

static int parse_put_headers(api_req_t *rq, ds_req_t *d)
{
    if (parse_write_headers(rq, d))
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
        if (strlen(exp) >= sizeof d->expires || (d->expires_ms = ds__parse_rfc3339(exp)) < 0) {
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
static int add_messages(api_req_t *rq, ds_req_t *d, int json, size_t *count, char *why,
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

static int add_close_marker(ds_req_t *d)
{
    static const uint8_t nil = 0xc0;
    ingest_error_t e;
    return ingest_add(&d->ib, DS_TYPE_CLOSED, NULL, -1, NULL, NULL, &nil, 1, NULL, 0, &e);
}

static void batch_reset(ds_req_t *d)
{
    if (d->ib_live)
        ingest_batch_release(&d->ib);
    d->ib_live = 0;
    store_buf_clear(&d->meta);
    d->kind = W_NONE;
}

static int batch_start(ds_req_t *d)
{
    batch_reset(d);
    int rc = ingest_batch_init(&d->ib, d->sid, d->sid_len);
    if (rc == REEL_OK)
        d->ib_live = 1;
    return rc;
}

/* Makes 'b' replace the session's metadata with 'meta' only if it is still 'seen' (the
 * record this request read): a compare-and-swap on the stream's state. Both buffers must
 * outlive the batch. */
static void cas_meta(store_batch_t *b, const store_buf_t *meta, const store_buf_t *seen)
{
    b->metadata = meta->data;
    b->metadata_len = meta->len;
    b->check_metadata = 1;
    b->expected_metadata = seen->data;
    b->expected_metadata_len = seen->len;
}

/* Submits the ingest batch (events + state) with expected_sequence 'expect'. */
static enum MHD_Result submit_append(api_req_t *rq, ds_req_t *d, const ds_meta_t *m)
{
    ds__meta_encode(m, d->path, d->path_len, &d->meta);
    if (store_buf_failed(&d->meta))
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    cas_meta(&d->ib.b, &d->meta, &d->seen);
    d->kind = W_APPEND;
    if (api__async_begin(rq) != REEL_OK)
        return api__problem(rq, REEL_EUNAVAILABLE, "the server is shutting down");
    rq->phase = 2;
    int rc = ingest_submit(rq->srv->store, &d->ib, api__batch_done, rq);
    if (rc != REEL_OK)
        api__async_failed(rq, &d->ib.b, rc);
    return MHD_YES;
}

static enum MHD_Result submit_plain(api_req_t *rq, ds_req_t *d, int op, int kind)
{
    store_batch_init(&d->pb, op, d->sid, d->sid_len);
    if (op == STORE_OP_SESSION_PUT) {
        cas_meta(&d->pb, &d->meta, &d->seen);
    }
    d->kind = kind;
    rq->phase = 2;
    return api__submit(rq, &d->pb);
}

/* ---- Producers ---- */

/* Kafka-style idempotent producer check on 'm' (updated in place when accepted). */
static int producer_check(ds_meta_t *m, const ds_req_t *d, uint64_t *a)
{
    int64_t now = ds__wall_ms();
    for (size_t i = 0; i < m->n_producers;) { /* forget producers idle for a week */
        if ((int64_t)m->producers[i].updated_ms + DS_PRODUCER_TTL_MS < now &&
            strcmp(m->producers[i].id, d->pid))
            m->producers[i] = m->producers[--m->n_producers];
        else
            i++;
    }
    ds_producer_t *p = ds__producer(m, d->pid, 0);
    if (!p) {
        if (d->pseq != 0) {
            *a = 0;
            return P_GAP;
        }
        if (!(p = ds__producer(m, d->pid, 1)))
            return -1;
        p->epoch = d->pepoch;
        p->seq = 0;
        p->updated_ms = (uint64_t)now;
        return P_ACCEPT;
    }
    if (d->pepoch < p->epoch) {
        *a = p->epoch;
        return P_STALE;
    }
    if (d->pepoch > p->epoch) {
        if (d->pseq != 0)
            return P_BAD_EPOCH;
        p->epoch = d->pepoch;
        p->seq = 0;
        p->updated_ms = (uint64_t)now;
        return P_ACCEPT;
    }
    if (d->pseq <= p->seq) {
        *a = p->seq;
        return P_DUP;
    }
    if (d->pseq != p->seq + 1) {
        *a = p->seq + 1;
        return P_GAP;
    }
    p->seq = d->pseq;
    p->updated_ms = (uint64_t)now;
    return P_ACCEPT;
}

/* Answers a producer check that did not accept. */
static enum MHD_Result producer_refused(api_req_t *rq, ds_req_t *d, int st, uint64_t a,
                                        uint64_t tail, int closed)
{
    struct MHD_Response *r;
    switch (st) {
    case P_DUP:
        r = resp_new(NULL, 0);
        if (!r)
            return MHD_NO;
        hdr_u64(r, "Producer-Epoch", d->pepoch);
        hdr_u64(r, "Producer-Seq", a);
        hdr_offset(r, tail);
        if (closed)
            hdr(r, "Stream-Closed", "true");
        return api__queue(rq, 204, r);
    case P_STALE:
        r = problem_new(rq, REEL_EFORBIDDEN, "Producer-Epoch %llu is stale; the current epoch is %llu",
                        (unsigned long long)d->pepoch, (unsigned long long)a);
        if (!r)
            return MHD_NO;
        hdr_u64(r, "Producer-Epoch", a);
        return queue_problem(rq, REEL_EFORBIDDEN, r);
    case P_BAD_EPOCH:
        return api__problem(rq, REEL_EINVALID_PARAMETER, "a new Producer-Epoch must start at Producer-Seq 0");
    default:
        r = problem_new(rq, REEL_ECONFLICT, "Producer-Seq %llu leaves a gap; expected %llu",
                        (unsigned long long)d->pseq, (unsigned long long)a);
        if (!r)
            return MHD_NO;
        hdr_u64(r, "Producer-Expected-Seq", a);
        hdr_u64(r, "Producer-Received-Seq", d->pseq);
        return queue_problem(rq, REEL_ECONFLICT, r);
    }
}

/* ---- POST: append, close ---- */

static enum MHD_Result closed_conflict(api_req_t *rq, uint64_t tail)
{
    struct MHD_Response *r = problem_new(rq, REEL_ECONFLICT, "the stream is closed");
    if (!r)
        return MHD_NO;
    hdr(r, "Stream-Closed", "true");
    hdr_offset(r, tail);
    return queue_problem(rq, REEL_ECONFLICT, r);
}

static enum MHD_Result post_decide(api_req_t *rq, ds_req_t *d)
{
    store_session_t rec;
    ds_meta_t m;
    int close_only = d->close && rq->body.len == 0;
    if (rq->body.len == 0 && !d->close)
        return api__problem(rq, REEL_EINVALID_PARAMETER, "an append needs a body");
    int st = find(rq, d, &rec, &m);
    if (st < 0)
        return api__problem(rq, -st, "reading the stream failed: %s", reel_strerror(-st));
    if (st == S_SOFT_DELETED) {
        ds__meta_release(&m);
        return api__problem(rq, REEL_EGONE, "stream '%.200s' was deleted", d->path);
    }
    if (st != S_LIVE) {
        ds__meta_release(&m);
        return not_found(rq, d);
    }
    uint64_t base = m.is_fork ? m.fork_offset : 0, tail = base + rec.last_sequence;
    if (m.closed) {
        int same = d->has_producer && m.has_closed_by && !strcmp(m.closed_by, d->pid) &&
                   m.closed_epoch == d->pepoch && m.closed_seq == d->pseq;
        ds__meta_release(&m);
        if (same || (close_only && !d->has_producer)) {
            struct MHD_Response *r = resp_new(NULL, 0);
            if (!r)
                return MHD_NO;
            hdr_offset(r, tail);
            hdr(r, "Stream-Closed", "true");
            if (same) {
                hdr_u64(r, "Producer-Epoch", d->pepoch);
                hdr_u64(r, "Producer-Seq", d->pseq);
            }
            return api__queue(rq, 204, r);
        }
        return closed_conflict(rq, tail);
    }
    if (!close_only) {
        if (!d->has_ctype) {
            ds__meta_release(&m);
            return api__problem(rq, REEL_EINVALID_PARAMETER, "an append needs a Content-Type");
        }
        char a[DS_CTYPE_MAX + 1], b[DS_CTYPE_MAX + 1];
        ds__ctype_norm(d->ctype, a, sizeof a);
        ds__ctype_norm(m.ctype, b, sizeof b);
        if (strcmp(a, b)) {
            ds__meta_release(&m);
            return api__problem(rq, REEL_ECONFLICT, "Content-Type '%.100s' does not match the stream's '%.100s'",
                                d->ctype, m.ctype);
        }
    }
    d->prod_status = P_ACCEPT;
    if (d->has_producer) {
        uint64_t a = 0;
        int ps = producer_check(&m, d, &a);
        if (ps != P_ACCEPT) {
            ds__meta_release(&m);
            return ps < 0 ? api__problem(rq, REEL_ENOMEM, "out of memory")
                          : producer_refused(rq, d, ps, a, tail, 0);
        }
    }
    if (d->has_seq) {
        if (m.has_seq && strcmp(d->seq, m.seq) <= 0) {
            ds__meta_release(&m);
            return api__problem(rq, REEL_ECONFLICT, "Stream-Seq '%.100s' is not above the last one", d->seq);
        }
        snprintf(m.seq, sizeof m.seq, "%s", d->seq);
        m.has_seq = 1;
    }
    int rc = batch_start(d);
    size_t n = 0;
    char why[256] = "";
    if (!rc && !close_only) {
        rc = add_messages(rq, d, ds__is_json(m.ctype), &n, why, sizeof why);
        if (!rc && n == 0) {
            ds__meta_release(&m);
            return api__problem(rq, REEL_EINVALID_PARAMETER, "an empty JSON array appends nothing");
        }
    }
    if (rc) {
        ds__meta_release(&m);
        return api__problem(rq, rc == REEL_ENOMEM ? rc : REEL_EINVALID_JSON,
                            "the body is not valid JSON: %s", why);
    }
    if (d->close) {
        m.closed = 1;
        if (d->has_producer) {
            m.has_closed_by = 1;
            snprintf(m.closed_by, sizeof m.closed_by, "%s", d->pid);
            m.closed_epoch = d->pepoch;
            m.closed_seq = d->pseq;
        }
        if ((rc = add_close_marker(d))) {
            ds__meta_release(&m);
            return api__problem(rq, rc, "out of memory");
        }
    }
    d->closing = d->close;
    enum MHD_Result r = submit_append(rq, d, &m);
    ds__meta_release(&m);
    return r;
}

static enum MHD_Result post_done(api_req_t *rq, ds_req_t *d)
{
    store_batch_t *b = &d->ib.b;
    if (b->err == REEL_ECONFLICT && ++d->attempts < DS_MAX_ATTEMPTS) {
        rq->async_done = 0;
        return post_decide(rq, d); /* another write came first: decide again */
    }
    if (b->err == REEL_EGONE)
        return not_found(rq, d);
    if (b->err)
        return api__problem(rq, b->err, "the append failed: %s", reel_strerror(b->err));
    atomic_fetch_add(&rq->srv->appends, 1);
    atomic_fetch_add(&rq->srv->append_events, b->n_events);
    store_read_t r;
    uint64_t base = 0;
    if (store_read_begin(rq->srv->store, &r) == REEL_OK) { /* a fork's offsets start later */
        store_session_t rec;
        ds_meta_t m;
        if (store_session_get(&r, d->sid, d->sid_len, &rec) == REEL_OK &&
            ds__meta_parse(rec.metadata, rec.metadata_len, &m) == 0 && m.is_fork)
            base = m.fork_offset;
        ds__meta_release(&m);
        store_read_end(&r);
    }
    struct MHD_Response *resp = resp_new(NULL, 0);
    if (!resp)
        return MHD_NO;
    hdr_offset(resp, base + b->last_sequence);
    if (d->closing)
        hdr(resp, "Stream-Closed", "true");
    if (d->has_producer) {
        hdr_u64(resp, "Producer-Epoch", d->pepoch);
        hdr_u64(resp, "Producer-Seq", d->pseq);
    }
    int status = d->has_producer && rq->body.len ? 200 : 204;
    return api__queue(rq, status, resp);
}

/* ---- PUT: create ---- */

static int same_config(const ds_req_t *d, const ds_meta_t *m)
{
    char a[DS_CTYPE_MAX + 1], b[DS_CTYPE_MAX + 1];
    ds__ctype_norm(d->ctype, a, sizeof a);
    ds__ctype_norm(m->ctype, b, sizeof b);
    if (d->has_fork && !d->has_ctype)
        strcpy(a, b); /* a fork without a type takes its source's */
    return !strcmp(a, b) && d->has_ttl == m->has_ttl && (!d->has_ttl || d->ttl == m->ttl_s) &&
           d->has_expires == m->has_expires &&
           (!d->has_expires || !strcmp(d->expires, m->expires)) && d->close == m->closed &&
           d->has_fork == m->is_fork &&
           (!d->has_fork || ((!d->has_fork_offset || d->fork_offset == m->fork_req) &&
                             d->fork_sub == m->fork_sub));
}

static enum MHD_Result put_existing(api_req_t *rq, ds_req_t *d, const store_session_t *rec,
                                    const ds_meta_t *m)
{
    if (!same_config(d, m))
        return api__problem(rq, REEL_ECONFLICT, "stream '%.200s' exists with another configuration",
                            d->path);
    struct MHD_Response *r = resp_new(NULL, 0);
    if (!r)
        return MHD_NO;
    hdr(r, MHD_HTTP_HEADER_CONTENT_TYPE, m->ctype);
    hdr_offset(r, (m->is_fork ? m->fork_offset : 0) + rec->last_sequence);
    if (m->closed)
        hdr(r, "Stream-Closed", "true");
    return api__queue(rq, 200, r);
}

/* Applies a Stream-Fork-Sub-Offset k: in JSON mode every value is a message, so the
 * fork simply starts k messages later; in byte mode the first k bytes of the message
 * after the fork offset become the fork's first own message. Answers 400 when the
 * source has no such message or it is shorter than k. */
static int sub_offset(api_req_t *rq, ds_req_t *d, const ds_req_t *src, const char *ctype,
                      ds_meta_t *m)
{
    int json = ds__is_json(ctype);
    store_buf_clear(&d->prefix);
    ds_page_t pg = {json, json ? DS_PAGE_BYTES : 1, &d->prefix, 0, 0, 0, 0, 0};
    int rc = ds__read(rq->srv->store, src->sid, src->sid_len, m->fork_req, &pg);
    if (rc) {
        api__problem(rq, rc, "reading the source failed: %s", reel_strerror(rc));
        return -1;
    }
    if (pg.n == 0 || (json ? (pg.n < d->fork_sub && pg.at_end) : d->prefix.len < d->fork_sub)) {
        api__problem(rq, REEL_EINVALID_PARAMETER,
                     "Stream-Fork-Sub-Offset %llu is past the message at the fork offset",
                     (unsigned long long)d->fork_sub);
        return -1;
    }
    if (json) {
        m->fork_offset = m->fork_req + d->fork_sub;
        store_buf_clear(&d->prefix);
    } else {
        d->prefix.len = d->fork_sub;
        d->has_prefix = 1;
    }
    return 0;
}

/* Resolves the fork source: fills 'm' (the new stream's state) from it. Returns 0, or
 * answers and returns -1. */
static int fork_source(api_req_t *rq, ds_req_t *d, ds_meta_t *m)
{
    ds_req_t src;
    memset(&src, 0, sizeof src);
    src.path_len = strlen(d->fork_path);
    memcpy(src.path, d->fork_path, src.path_len + 1);
    if (ds__base_id(src.path, src.path_len, src.base, &src.base_len) < 0) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "Stream-Forked-From is not a stream path");
        return -1;
    }
    store_session_t rec;
    ds_meta_t sm;
    store_buf_init(&src.seen);
    int st = find(rq, &src, &rec, &sm);
    store_buf_release(&src.seen);
    if (st < 0) {
        api__problem(rq, -st, "reading the source failed");
        return -1;
    }
    if (st == S_SOFT_DELETED) {
        ds__meta_release(&sm);
        api__problem(rq, REEL_ECONFLICT, "the source stream was deleted");
        return -1;
    }
    if (st != S_LIVE) {
        ds__meta_release(&sm);
        api__problem(rq, REEL_ENOT_FOUND, "source stream '%.200s' does not exist", d->fork_path);
        return -1;
    }
    uint64_t tail = (sm.is_fork ? sm.fork_offset : 0) + rec.last_sequence;
    uint64_t at = d->has_fork_offset ? d->fork_offset : tail;
    if (at > tail) {
        ds__meta_release(&sm);
        api__problem(rq, REEL_EINVALID_PARAMETER, "Stream-Fork-Offset is past the source's tail");
        return -1;
    }
    if (d->has_ctype) {
        char a[DS_CTYPE_MAX + 1], b[DS_CTYPE_MAX + 1];
        ds__ctype_norm(d->ctype, a, sizeof a);
        ds__ctype_norm(sm.ctype, b, sizeof b);
        if (strcmp(a, b)) {
            ds__meta_release(&sm);
            api__problem(rq, REEL_ECONFLICT, "Content-Type does not match the source stream's");
            return -1;
        }
    }
    snprintf(m->ctype, sizeof m->ctype, "%s", sm.ctype);
    m->is_fork = 1;
    snprintf(m->fork_of, sizeof m->fork_of, "%s", src.sid);
    m->fork_offset = m->fork_req = at;
    m->fork_sub = d->fork_sub;
    if (d->fork_sub && sub_offset(rq, d, &src, sm.ctype, m)) {
        ds__meta_release(&sm);
        return -1;
    }
    if (!d->has_ttl && !d->has_expires) { /* a fork inherits its source's lifetime rule */
        m->has_ttl = sm.has_ttl;
        m->ttl_s = sm.ttl_s;
        m->has_expires = sm.has_expires;
        snprintf(m->expires, sizeof m->expires, "%s", sm.expires);
        m->expires_ms = sm.expires_ms;
    }
    memcpy(d->src_sid, src.sid, src.sid_len + 1); /* counted once the fork exists */
    ds__meta_release(&sm);
    return 0;
}

/* Counts one more fork on the source (d->src_sid) so that a DELETE keeps what forks
 * read: a compare-and-swap of the metadata just read, redone when another write to the
 * source came first. Returns 1 when submitted, 0 when the source is gone. */
static int src_inc(api_req_t *rq, ds_req_t *d)
{
    store_read_t r;
    store_session_t rec;
    ds_meta_t m;
    if (store_read_begin(rq->srv->store, &r) != REEL_OK)
        return 0;
    if (store_session_get(&r, d->src_sid, strlen(d->src_sid), &rec) != REEL_OK ||
        ds__meta_parse(rec.metadata, rec.metadata_len, &m)) {
        store_read_end(&r);
        return 0;
    }
    store_buf_clear(&d->src_seen);
    if (rec.metadata)
        store_buf_put(&d->src_seen, rec.metadata, rec.metadata_len);
    store_read_end(&r);
    m.forks++;
    store_buf_clear(&d->src_meta);
    ds__meta_encode(&m, m.path, strlen(m.path), &d->src_meta);
    ds__meta_release(&m);
    if (store_buf_failed(&d->src_meta) || store_buf_failed(&d->src_seen))
        return 0;
    store_batch_init(&d->src_b, STORE_OP_SESSION_PUT, d->src_sid, strlen(d->src_sid));
    cas_meta(&d->src_b, &d->src_meta, &d->src_seen);
    d->kind = W_NONE;
    rq->phase = 2;
    api__submit(rq, &d->src_b);
    return 1;
}

static enum MHD_Result put_decide(api_req_t *rq, ds_req_t *d)
{
    store_session_t rec;
    ds_meta_t m;
    int st = find(rq, d, &rec, &m);
    if (st < 0)
        return api__problem(rq, -st, "reading the stream failed: %s", reel_strerror(-st));
    if (st == S_LIVE) {
        enum MHD_Result r = put_existing(rq, d, &rec, &m);
        ds__meta_release(&m);
        return r;
    }
    if (st == S_SOFT_DELETED) {
        ds__meta_release(&m);
        return api__problem(rq, REEL_ECONFLICT,
                            "stream '%.200s' was deleted but forks still read it", d->path);
    }
    ds__meta_release(&m);
    if (st == S_EXPIRED) { /* find() reaps it; the new stream is the next generation */
        store_buf_clear(&d->seen);
        d->gen++;
        ds__gen_id(d->base, d->base_len, d->gen, d->sid, &d->sid_len);
    }
    if (d->sid_len == 0 || d->sid_len > STORE_SESSION_ID_MAX)
        return api__problem(rq, REEL_EINVALID_PARAMETER, "the stream path is too long");
    memset(&m, 0, sizeof m);
    m.is_stream = 1;
    snprintf(m.ctype, sizeof m.ctype, "%s", d->ctype);
    m.has_ttl = d->has_ttl;
    m.ttl_s = d->ttl;
    m.has_expires = d->has_expires;
    snprintf(m.expires, sizeof m.expires, "%s", d->expires);
    m.expires_ms = d->expires_ms;
    m.closed = d->close;
    d->src_pending = 0;
    if (d->has_fork) {
        if (fork_source(rq, d, &m))
            return MHD_YES;
        d->src_pending = 1;
    }
    int rc = batch_start(d);
    size_t n = 0;
    char why[256] = "";
    if (!rc && d->has_prefix) {
        store_buf_t mp = STORE_BUF_INIT;
        ingest_error_t e;
        store_mp_bin(&mp, d->prefix.data, d->prefix.len);
        rc = ingest_add(&d->ib, DS_TYPE_MESSAGE, NULL, -1, NULL, NULL, mp.data, mp.len, NULL,
                        0, &e);
        store_buf_release(&mp);
    }
    if (!rc && rq->body.len)
        rc = add_messages(rq, d, ds__is_json(m.ctype), &n, why, sizeof why);
    if (rc)
        return api__problem(rq, rc == REEL_ENOMEM ? rc : REEL_EINVALID_JSON,
                            "the body is not valid JSON: %s", why);
    if (d->close && (rc = add_close_marker(d)))
        return api__problem(rq, rc, "out of memory");
    d->is_new = 1;
    d->closing = d->close;
    if (d->ib.b.n_events)
        return submit_append(rq, d, &m);
    batch_reset(d);
    ds__meta_encode(&m, d->path, d->path_len, &d->meta);
    return submit_plain(rq, d, STORE_OP_SESSION_PUT, W_PUT);
}

static enum MHD_Result put_done(api_req_t *rq, ds_req_t *d)
{
    /* W_NONE: the source's fork count was written (a failure there only risks that the
     * source is later deleted outright instead of kept for the fork). */
    store_batch_t *b = d->kind == W_APPEND ? &d->ib.b : &d->pb;
    if (d->kind != W_NONE && b->err == REEL_ECONFLICT && ++d->attempts < DS_MAX_ATTEMPTS) {
        rq->async_done = 0;
        return put_decide(rq, d);
    }
    if (d->kind != W_NONE && b->err)
        return api__problem(rq, b->err, "creating the stream failed: %s", reel_strerror(b->err));
    if (d->kind == W_NONE && d->src_b.err == REEL_ECONFLICT && ++d->attempts < DS_MAX_ATTEMPTS)
        d->src_pending = 1; /* another write to the source came first: count again */
    if (d->src_pending) { /* count the fork on its source before answering */
        d->src_pending = 0;
        rq->async_done = 0;
        if (src_inc(rq, d))
            return MHD_YES;
    }
    store_read_t r;
    store_session_t rec;
    ds_meta_t m;
    memset(&m, 0, sizeof m);
    uint64_t tail = 0;
    if (store_read_begin(rq->srv->store, &r) == REEL_OK) {
        if (store_session_get(&r, d->sid, d->sid_len, &rec) == REEL_OK &&
            ds__meta_parse(rec.metadata, rec.metadata_len, &m) == 0)
            tail = (m.is_fork ? m.fork_offset : 0) + rec.last_sequence;
        store_read_end(&r);
    }
    struct MHD_Response *resp = resp_new(NULL, 0);
    if (!resp) {
        ds__meta_release(&m);
        return MHD_NO;
    }
    hdr(resp, MHD_HTTP_HEADER_CONTENT_TYPE, m.ctype[0] ? m.ctype : d->ctype);
    ds__meta_release(&m);
    hdr_offset(resp, tail);
    if (d->closing)
        hdr(resp, "Stream-Closed", "true");
    const char *host = api__header(rq, MHD_HTTP_HEADER_HOST);
    char loc[1024];
    size_t plen = strcspn(rq->uri, "?");
    snprintf(loc, sizeof loc, "http://%s%.*s", host ? host : "localhost", (int)plen, rq->uri);
    hdr(resp, MHD_HTTP_HEADER_LOCATION, loc);
    return api__queue(rq, 201, resp);
}

/* ---- DELETE ---- */

/* Releases the fork source named in d->gc_next after its fork was deleted: one less
 * fork; a source deleted (or expired) while forks read it goes now that none does, and
 * so on up the chain. Returns 1 when a batch was submitted, 0 when there is nothing left. */
static int gc_step(api_req_t *rq, ds_req_t *d)
{
    while (d->gc_next[0]) {
        store_read_t r;
        store_session_t rec;
        ds_meta_t m;
        memcpy(d->gc_cur, d->gc_next, sizeof d->gc_cur);
        d->gc_next[0] = '\0';
        if (store_read_begin(rq->srv->store, &r) != REEL_OK)
            return 0;
        int rc = store_session_get(&r, d->gc_cur, strlen(d->gc_cur), &rec);
        if (rc || rec.status == STORE_DELETED ||
            ds__meta_parse(rec.metadata, rec.metadata_len, &m)) {
            store_read_end(&r);
            return 0;
        }
        store_buf_clear(&d->seen);
        if (rec.metadata)
            store_buf_put(&d->seen, rec.metadata, rec.metadata_len);
        store_read_end(&r);
        if (m.forks)
            m.forks--;
        int dead = m.soft_deleted || ds__expired(&m, &rec, ds__wall_ms());
        if (dead && m.forks == 0) {
            if (m.is_fork)
                memcpy(d->gc_next, m.fork_of, sizeof d->gc_next);
            ds__meta_release(&m);
            store_batch_init(&d->pb, STORE_OP_SESSION_DELETE, d->gc_cur, strlen(d->gc_cur));
        } else {
            store_buf_clear(&d->meta);
            ds__meta_encode(&m, m.path, strlen(m.path), &d->meta);
            ds__meta_release(&m);
            store_batch_init(&d->pb, STORE_OP_SESSION_PUT, d->gc_cur, strlen(d->gc_cur));
            cas_meta(&d->pb, &d->meta, &d->seen);
        }
        rq->phase = 2;
        api__submit(rq, &d->pb);
        return 1;
    }
    return 0;
}

static enum MHD_Result delete_route(api_req_t *rq, ds_req_t *d)
{
    if (rq->phase == 2) {
        if (!rq->async_done)
            return MHD_YES;
        rq->async_done = 0;
        int again = d->pb.err == REEL_ECONFLICT && ++d->attempts < DS_MAX_ATTEMPTS;
        if (again && d->gc_cur[0]) /* the source changed meanwhile: release it again */
            memcpy(d->gc_next, d->gc_cur, sizeof d->gc_next);
        if (!(again && !d->gc_cur[0])) { /* else: the soft delete raced a write: decide again */
            if (d->pb.err && d->pb.err != REEL_EGONE && !d->gc_cur[0])
                return api__problem(rq, d->pb.err, "deleting failed: %s",
                                    reel_strerror(d->pb.err));
            if (gc_step(rq, d))
                return MHD_YES;
            struct MHD_Response *r = resp_new(NULL, 0);
            return r ? api__queue(rq, 204, r) : MHD_NO;
        }
    }
    store_session_t rec;
    ds_meta_t m;
    int st = find(rq, d, &rec, &m);
    if (st < 0)
        return api__problem(rq, -st, "reading the stream failed");
    int forks = st == S_LIVE && m.forks > 0;
    if (forks) { /* forks still read its messages: keep them, answer 410 from now on */
        m.soft_deleted = 1;
        ds__meta_encode(&m, d->path, d->path_len, &d->meta);
    } else if (st == S_LIVE && m.is_fork) {
        memcpy(d->gc_next, m.fork_of, sizeof d->gc_next);
    }
    ds__meta_release(&m);
    if (st == S_SOFT_DELETED)
        return api__problem(rq, REEL_EGONE, "stream '%.200s' was deleted", d->path);
    if (st != S_LIVE)
        return not_found(rq, d);
    if (forks)
        return submit_plain(rq, d, STORE_OP_SESSION_PUT, W_PUT);
    return submit_plain(rq, d, STORE_OP_SESSION_DELETE, W_DELETE);
}

/* ---- HEAD ---- */

static enum MHD_Result head_route(api_req_t *rq, ds_req_t *d)
{
    store_session_t rec;
    ds_meta_t m;
    int st = find(rq, d, &rec, &m);
    if (st < 0)
        return api__problem(rq, -st, "reading the stream failed");
    if (st == S_SOFT_DELETED) {
        ds__meta_release(&m);
        return api__problem(rq, REEL_EGONE, "stream '%.200s' was deleted", d->path);
    }
    if (st != S_LIVE) {
        ds__meta_release(&m);
        return not_found(rq, d);
    }
    uint64_t tail = (m.is_fork ? m.fork_offset : 0) + rec.last_sequence;
    struct MHD_Response *r = resp_new(NULL, 0);
    if (!r) {
        ds__meta_release(&m);
        return MHD_NO;
    }
    char off[DS_OFFSET_LEN + 1], etag[512];
    ds__offset(tail, off);
    hdr(r, "Stream-Next-Offset", off);
    hdr(r, MHD_HTTP_HEADER_CONTENT_TYPE, m.ctype);
    hdr(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (m.closed)
        hdr(r, "Stream-Closed", "true");
    if (m.has_ttl)
        hdr_u64(r, "Stream-TTL", m.ttl_s);
    if (m.has_expires)
        hdr(r, "Stream-Expires-At", m.expires);
    snprintf(etag, sizeof etag, "\"%s:-1:%s%s\"", d->sid, off, m.closed ? ":c" : "");
    hdr(r, MHD_HTTP_HEADER_ETAG, etag);
    ds__meta_release(&m);
    return api__queue(rq, 200, r);
}

/* ---- GET ---- */

/* Counts occurrences of query parameter 'name'. */
static int query_count(const api_req_t *rq, const char *name)
{
    int n = 0;
    size_t nl = strlen(name);
    for (const char *p = rq->query; *p;) {
        size_t len = strcspn(p, "&");
        if (len >= nl && !strncmp(p, name, nl) && (len == nl || p[nl] == '='))
            n++;
        p += len;
        if (*p == '&')
            p++;
    }
    return n;
}

static int parse_read_query(api_req_t *rq, ds_req_t *d)
{
    char live[32] = "";
    int n = query_count(rq, "offset");
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
    char off[DS_OFFSET_LEN + 1], etag[512], cur[32];
    ds__offset(pg->next, off);
    int closed = pg->closed && pg->at_end;
    snprintf(etag, sizeof etag, "\"%s:%s:%s%s\"", d->sid, d->has_offset ? d->offset_text : "-1",
             off, closed ? ":c" : "");
    const char *inm = api__header(rq, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && !strcmp(inm, etag)) {
        struct MHD_Response *r = resp_new(NULL, 0);
        if (!r)
            return MHD_NO;
        hdr(r, MHD_HTTP_HEADER_ETAG, etag);
        hdr(r, "Stream-Next-Offset", off);
        return api__queue(rq, 304, r);
    }
    if (pg->json) {
        store_buf_putc(out, ']');
    }
    if (store_buf_failed(out))
        return api__problem(rq, REEL_ENOMEM, "the response did not fit in memory");
    struct MHD_Response *r = resp_new(out->data, out->len);
    if (!r)
        return MHD_NO;
    hdr(r, MHD_HTTP_HEADER_CONTENT_TYPE, d->ctype_read);
    hdr(r, "Stream-Next-Offset", off);
    hdr(r, MHD_HTTP_HEADER_ETAG, etag);
    if (pg->at_end)
        hdr(r, "Stream-Up-To-Date", "true");
    if (closed)
        hdr(r, "Stream-Closed", "true");
    if (d->live == 1) {
        snprintf(cur, sizeof cur, "%llu", (unsigned long long)ds__cursor(d->cursor));
        hdr(r, "Stream-Cursor", cur);
    }
    /* Pages behind the tail never change: cacheable. The tail is not. */
    hdr(r, MHD_HTTP_HEADER_CACHE_CONTROL,
        pg->at_end ? "no-store"
                   : rq->srv->n_tokens ? "private, max-age=60, stale-while-revalidate=300"
                                       : "public, max-age=60, stale-while-revalidate=300");
    return api__queue(rq, 200, r);
}

static enum MHD_Result long_poll_empty(api_req_t *rq, ds_req_t *d, uint64_t next, int closed)
{
    struct MHD_Response *r = resp_new(NULL, 0);
    if (!r)
        return MHD_NO;
    char cur[32];
    hdr_offset(r, next);
    hdr(r, "Stream-Up-To-Date", "true");
    snprintf(cur, sizeof cur, "%llu", (unsigned long long)ds__cursor(d->cursor));
    hdr(r, "Stream-Cursor", cur);
    if (closed)
        hdr(r, "Stream-Closed", "true");
    hdr(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
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
        ds_page_t pg = {json, DS_PAGE_BYTES, &out, 0, 0, 0, 0, 0};
        int rc = ds__read(srv->store, d->sid, d->sid_len, d->after, &pg);
        if (rc == REEL_OK && pg.gone)
            rc = REEL_ESESSION_NOT_FOUND;
        if (rc) {
            store_buf_release(&out);
            if (rc == REEL_ESESSION_NOT_FOUND)
                return not_found(rq, d);
            return api__problem(rq, rc, "reading the stream failed: %s", reel_strerror(rc));
        }
        ds__touch(d->sid, d->sid_len);
        if (d->live != 1 || pg.n) {
            enum MHD_Result r = read_reply(rq, d, &pg, &out);
            store_buf_release(&out);
            return r;
        }
        store_buf_release(&out);
        if (pg.at_end && pg.closed)
            return long_poll_empty(rq, d, pg.next, 1);
        uint64_t deadline = rq->start_ms + long_poll_ms();
        if (api__now_ms() >= deadline || api__stopping(srv))
            return long_poll_empty(rq, d, d->after, 0);
        api_waiter_t *w = &d->waiter;
        w->conn = rq->conn;
        w->kind = API_WAIT_SESSION;
        w->session = d->sid;
        w->session_len = d->sid_len;
        w->deadline_ms = deadline;
        rq->phase = 3;
        if (api__wait(srv, w, gen))
            return MHD_YES;
    }
}

static enum MHD_Result get_route(api_req_t *rq, ds_req_t *d)
{
    if (rq->phase == 3)
        return read_or_wait(rq, d);
    if (parse_read_query(rq, d))
        return MHD_YES;
    store_session_t rec;
    ds_meta_t m;
    int st = find(rq, d, &rec, &m);
    if (st < 0)
        return api__problem(rq, -st, "reading the stream failed");
    snprintf(d->ctype_read, sizeof d->ctype_read, "%s", m.ctype);
    uint64_t tail = (m.is_fork ? m.fork_offset : 0) + rec.last_sequence;
    int closed = m.closed;
    ds__meta_release(&m);
    if (st == S_SOFT_DELETED)
        return api__problem(rq, REEL_EGONE, "stream '%.200s' was deleted", d->path);
    if (st != S_LIVE)
        return not_found(rq, d);
    ds__touch(d->sid, d->sid_len);
    if (d->off_now)
        d->after = tail;
    if (d->live == 2)
        return ds__sse_start(rq, d->sid, d->sid_len, d->after, d->ctype_read, d->cursor);
    if (d->off_now && d->live != 1) {
        int json = ds__is_json(d->ctype_read);
        struct MHD_Response *r = resp_new(json ? "[]" : "", json ? 2 : 0);
        if (!r)
            return MHD_NO;
        hdr(r, MHD_HTTP_HEADER_CONTENT_TYPE, d->ctype_read);
        hdr_offset(r, tail);
        hdr(r, "Stream-Up-To-Date", "true");
        hdr(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        if (closed)
            hdr(r, "Stream-Closed", "true");
        return api__queue(rq, 200, r);
    }
    return read_or_wait(rq, d);
}

/* ---- Dispatch ---- */

static int is_m(const api_req_t *rq, const char *m)
{
    return !strcmp(rq->method, m);
}

enum MHD_Result api__stream(api_req_t *rq, const char *data, size_t *size)
{
    ds_req_t *d = rq->stream;
    if (!d && !(d = req_new(rq)))
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    if (rq->phase == 0 && d->path_len == 0)
        return api__problem(rq, REEL_EINVALID_PARAMETER,
                            "the stream path is not valid (bad escape, NUL byte or over %d bytes once escaped)",
                            DS_BASE_MAX);
    if (is_m(rq, "GET"))
        return get_route(rq, d);
    if (is_m(rq, "HEAD"))
        return head_route(rq, d);
    if (is_m(rq, "DELETE"))
        return delete_route(rq, d);
    int put = is_m(rq, "PUT");
    switch (rq->phase) {
    case 0: {
        enum MHD_Result r;
        if (put ? parse_put_headers(rq, d) : parse_write_headers(rq, d))
            return MHD_YES;
        if (!api__body_precheck(rq, &r))
            return r;
        rq->phase = 1;
        return MHD_YES;
    }
    case 1: {
        int more = api__collect_body(rq, data, size);
        if (more < 0)
            return MHD_NO;
        if (more)
            return MHD_YES;
        if (rq->reject)
            return api__problem(rq, rq->reject, "%s", rq->reject_detail);
        if (store_buf_failed(&rq->body))
            return api__problem(rq, REEL_ENOMEM, "the request body did not fit in memory");
        return put ? put_decide(rq, d) : post_decide(rq, d);
    }
    default:
        if (!rq->async_done)
            return MHD_YES;
        return put ? put_done(rq, d) : post_done(rq, d);
    }
}
