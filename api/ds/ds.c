/* ds.c -- the Durable Streams protocol at /v1/stream/{path} (docs/durable-streams.md).
 *
 * PUT creates, POST appends (or closes), GET reads (catch-up, long-poll, SSE), HEAD
 * answers the state, DELETE deletes. Each stream is a session of the log (ds_int.h
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ds/ds_int.h"

/* ---- Responses ---- */

void api__ds_headers(api_req_t *rq, struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "cross-origin");
    if (api__cors_allowed(rq))
        MHD_add_response_header(
            resp, "Access-Control-Expose-Headers",
            "Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, Stream-TTL, "
            "Stream-Expires-At, Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, "
            "Producer-Expected-Seq, Producer-Received-Seq, ETag, Location");
}

struct MHD_Response *ds__resp(const void *body, size_t len)
{
    return MHD_create_response_from_buffer(len, (void *)(body ? body : ""),
                                           MHD_RESPMEM_MUST_COPY);
}

void ds__hdr(struct MHD_Response *r, const char *k, const char *v)
{
    MHD_add_response_header(r, k, v);
}

void ds__hdr_u64(struct MHD_Response *r, const char *k, uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    MHD_add_response_header(r, k, b);
}

void ds__hdr_offset(struct MHD_Response *r, uint64_t seq)
{
    char off[DS_OFFSET_LEN + 1];
    ds__offset(seq, off);
    MHD_add_response_header(r, "Stream-Next-Offset", off);
}

enum MHD_Result ds__queue_problem(api_req_t *rq, int err, struct MHD_Response *r)
{
    return r ? api__queue(rq, reel_err_status(err), r) : MHD_NO;
}

enum MHD_Result ds__not_found(api_req_t *rq, const ds_req_t *d)
{
    return api__problem(rq, REEL_ENOT_FOUND, "stream '%.200s' does not exist", d->path);
}

/* ---- Request state ---- */

static void req_dispose(api_req_t *rq)
{
    ds_req_t *d = rq->ctx;
    if (d->ib_live)
        ingest_batch_release(&d->ib);
    store_buf_release(&d->meta);
    store_buf_release(&d->src_meta);
    store_buf_release(&d->prefix);
    store_buf_release(&d->seen);
    store_buf_release(&d->src_seen);
    free(d);
    rq->ctx = NULL;
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
    rq->ctx = d;
    rq->dispose = req_dispose;
    if (set_path(d, rq->param, rq->param_len) < 0) /* the route's '*': after /v1/stream/ */
        d->path_len = 0;
    return d;
}

/* ---- Finding the stream ---- */

/* Finds the current generation of the stream on 'r': d->sid/gen are set to it (or to
 * the generation a create would make, with S_NONE). '*rec' and 'm' are filled for a
 * found record ('m' must be released). Returns a S_* state, or a negative reel_err. */
static int lookup(api_server_t *srv, store_read_t *r, ds_req_t *d, store_session_t *rec,
                  ds_meta_t *m)
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
            return rc;
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
        return REEL_ECORRUPT;
    }
    if (rec->status == STORE_DELETED) {
        d->gen = found + 1;
        ds__gen_id(d->base, d->base_len, d->gen, d->sid, &d->sid_len);
        return S_NONE;
    }
    if (m->soft_deleted)
        return S_SOFT_DELETED;
    if (ds__expired(m, rec, api__access_last(srv, rec->id, rec->id_len), (int64_t)store_wall_ms()))
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

int ds__find(api_req_t *rq, ds_req_t *d, store_session_t *rec, ds_meta_t *m)
{
    store_read_t r;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc) {
        memset(m, 0, sizeof *m); /* releasing it stays safe */
        return rc;
    }
    int st = lookup(rq->srv, &r, d, rec, m);
    store_buf_clear(&d->seen);
    if (st > S_NONE && rec->metadata)
        store_buf_put(&d->seen, rec->metadata, rec->metadata_len);
    store_read_end(&r);
    rec->metadata = NULL; /* borrowed from the read */
    if (store_buf_failed(&d->seen))
        st = REEL_ENOMEM;
    if (st < 0)
        ds__meta_release(m); /* an error leaves nothing to release */
    if (st == S_EXPIRED)
        reap(rq->srv, d->sid, d->sid_len);
    return st;
}

int ds__state(store_read_t *r, const char *sid, size_t sid_len, store_session_t *rec,
              ds_meta_t *m)
{
    memset(m, 0, sizeof *m);
    int rc = store_session_get(r, sid, sid_len, rec);
    if (rc != REEL_OK)
        return rc;
    return ds__meta_parse(rec->metadata, rec->metadata_len, m) ? REEL_ECORRUPT : REEL_OK;
}

uint64_t ds__base(const ds_meta_t *m)
{
    return m->is_fork ? m->fork_offset : 0;
}

int api__ds_query_token(const api_req_t *rq)
{
    char live[8];
    return rq->method_bit == API_M_GET && api__query(rq, "live", live, sizeof live) > 0 &&
           !strcmp(live, "sse");
}

/* ---- Dispatch ---- */

/* POST and PUT: the headers, the body, the decision, then the commit's answer. */
static enum MHD_Result write_route(api_req_t *rq, ds_req_t *d, const char *data, size_t *size)
{
    int put = rq->method_bit == API_M_PUT;
    enum MHD_Result r;
    switch (rq->phase) {
    case API_PHASE_NEW:
        if (put ? ds__parse_put_headers(rq, d) : ds__parse_write_headers(rq, d))
            return MHD_YES;
        if (!api__body_precheck(rq, &r))
            return r;
        rq->phase = DS_BODY;
        return MHD_YES;
    case DS_BODY: {
        int more = api__collect_body(rq, data, size);
        if (more < 0)
            return MHD_NO;
        if (more)
            return MHD_YES;
        if (api__body_complete(rq, &r) != REEL_OK)
            return r;
        return put ? ds__put_decide(rq, d) : ds__post_decide(rq, d);
    }
    default:
        if (!rq->async_done)
            return MHD_YES;
        return put ? ds__put_done(rq, d) : ds__post_done(rq, d);
    }
}

enum MHD_Result api__ds(api_req_t *rq, const char *data, size_t *size)
{
    ds_req_t *d = rq->ctx;
    if (!d && !(d = req_new(rq)))
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    if (rq->phase == API_PHASE_NEW && d->path_len == 0)
        return api__problem(rq, REEL_EINVALID_PARAMETER,
                            "the stream path is not valid (bad escape, NUL byte or over %d bytes once escaped)",
                            DS_BASE_MAX);
    switch (rq->method_bit) {
    case API_M_GET:
        return ds__get(rq, d);
    case API_M_HEAD:
        return ds__head(rq, d);
    case API_M_DELETE:
        return ds__delete(rq, d);
    default:
        return write_route(rq, d, data, size);
    }
}

int ds__state_read(api_server_t *srv, const char *sid, size_t sid_len, store_session_t *rec,
                   ds_meta_t *m, store_buf_t *seen)
{
    store_read_t r;
    memset(m, 0, sizeof *m);
    int rc = store_read_begin(srv->store, &r);
    if (rc != REEL_OK)
        return rc;
    rc = ds__state(&r, sid, sid_len, rec, m);
    if (rc == REEL_OK && seen) {
        store_buf_clear(seen);
        if (rec->metadata)
            store_buf_put(seen, rec->metadata, rec->metadata_len);
        if (store_buf_failed(seen))
            rc = REEL_ENOMEM;
    }
    store_read_end(&r);
    rec->metadata = NULL; /* it pointed into the read */
    return rc;
}

/* ---- for the subscriptions (subs.c) ---- */

int ds__stream_tail(api_server_t *srv, store_read_t *r, const char *path, size_t len,
                    uint64_t *tail, int *closed)
{
    ds_req_t *d = calloc(1, sizeof *d);
    if (!d)
        return REEL_ENOMEM;
    int st = S_NONE;
    if (len && len <= DS_PATH_MAX && ds__base_id(path, len, d->base, &d->base_len) == 0) {
        store_session_t rec;
        ds_meta_t m;
        st = lookup(srv, r, d, &rec, &m);
        if (st == S_LIVE) {
            *tail = ds__base(&m) + rec.last_sequence;
            *closed = m.closed;
        }
        if (st >= 0) /* lookup() keeps a deleted record's state too */
            ds__meta_release(&m);
    }
    free(d);
    return st < 0 ? st : st == S_LIVE ? 1 : 0;
}

int ds__append_json(api_server_t *srv, const char *path, size_t len, const char *json,
                    size_t json_len)
{
    ds_req_t *d = calloc(1, sizeof *d);
    if (!d)
        return REEL_ENOMEM;
    int rc = REEL_EINVALID_PARAMETER;
    store_buf_t mp = STORE_BUF_INIT;
    store_json_error_t je;
    memset(&je, 0, sizeof je);
    if (len && len <= DS_PATH_MAX && ds__base_id(path, len, d->base, &d->base_len) == 0 &&
        (rc = store_json_to_msgpack(json, json_len, 64, &mp, &je)) == REEL_OK) {
        for (int attempt = 0; attempt < DS_MAX_ATTEMPTS; attempt++) {
            store_read_t r;
            store_session_t rec;
            ds_meta_t m;
            if ((rc = store_read_begin(srv->store, &r)) != REEL_OK)
                break;
            int st = lookup(srv, &r, d, &rec, &m);
            store_buf_clear(&d->seen);
            if (st > S_NONE && rec.metadata)
                store_buf_put(&d->seen, rec.metadata, rec.metadata_len);
            store_read_end(&r);
            int closed = st > S_NONE && m.closed;
            if (st >= 0)
                ds__meta_release(&m);
            if (st != S_LIVE || closed) {
                rc = st < 0 ? st : closed ? REEL_ECONFLICT : REEL_ENOT_FOUND;
                break;
            }
            ingest_batch_t ib;
            ingest_error_t e;
            if ((rc = ingest_batch_init(&ib, d->sid, d->sid_len)) != REEL_OK)
                break;
            rc = ingest_add(&ib, DS_TYPE_MESSAGE, NULL, -1, NULL, NULL, mp.data, mp.len, NULL, 0,
                            &e);
            if (rc == REEL_OK) {
                /* The state unchanged, as a compare-and-swap: never after a close. */
                ds__cas_meta(&ib.b, &d->seen, &d->seen);
                rc = ingest_append(srv->store, &ib);
            }
            ingest_batch_release(&ib);
            if (rc != REEL_ECONFLICT)
                break;
        }
    }
    store_buf_release(&mp);
    store_buf_release(&d->seen);
    free(d);
    return rc;
}
