/* create.c -- a stream's life: PUT (create, fork) and DELETE with the release of fork
 * sources (docs/durable-streams.md "Forks").
 *
 * A fork shares its source's messages up to the fork point, so a source that forks still
 * read is only soft-deleted (410 from then on) and counted down as its forks go; the last
 * fork's DELETE releases the chain.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ds/ds_int.h"
#include "store/json.h"

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
    enum MHD_Result w;
    if (api__ack_retry(rq, &w)) /* a retried create: --ack replica waits for its first copy */
        return w;
    struct MHD_Response *r = ds__resp(NULL, 0);
    if (!r)
        return MHD_NO;
    ds__hdr(r, MHD_HTTP_HEADER_CONTENT_TYPE, m->ctype);
    ds__hdr_offset(r, (m->is_fork ? m->fork_offset : 0) + rec->last_sequence);
    if (m->closed)
        ds__hdr(r, "Stream-Closed", "true");
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
    ds_page_t pg = {json, json ? DS_PAGE_BYTES : 1, &d->prefix, 0, 0, 0, 0, 0, 0, 0,
                    api__render_flags(rq, 0)};
    int rc = ds__read(rq->srv, src->sid, src->sid_len, m->fork_req, &pg);
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
    char owner[CLUSTER_ID_MAX + 1];
    if (!api__cell_owns_stream(rq->srv, src.path, src.path_len, owner, sizeof owner)) {
        /* A fork reads its source's events locally (docs/CLUSTER.md "Routing with nginx"). */
        api__problem(rq, REEL_ECONFLICT, "the fork source '%.200s' is on cell '%s', not on this "
                     "cell '%s': a fork must be in a shard of its source's cell",
                     d->fork_path, owner, rq->srv->cell_id);
        return -1;
    }
    store_session_t rec;
    ds_meta_t sm = DS_META_INIT;
    int ret = -1;
    store_buf_init(&src.seen);
    int st = ds__find(rq, &src, &rec, &sm);
    store_buf_release(&src.seen);
    if (st < 0) {
        api__problem(rq, st, "reading the source failed");
        goto out;
    }
    if (st != S_LIVE) {
        if (st == S_SOFT_DELETED)
            api__problem(rq, REEL_ECONFLICT, "the source stream was deleted");
        else
            api__problem(rq, REEL_ENOT_FOUND, "source stream '%.200s' does not exist",
                         d->fork_path);
        goto out;
    }
    uint64_t tail = ds__base(&sm) + rec.last_sequence;
    uint64_t at = d->has_fork_offset ? d->fork_offset : tail;
    if (at > tail) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "Stream-Fork-Offset is past the source's tail");
        goto out;
    }
    if (d->has_ctype) {
        char a[DS_CTYPE_MAX + 1], b[DS_CTYPE_MAX + 1];
        ds__ctype_norm(d->ctype, a, sizeof a);
        ds__ctype_norm(sm.ctype, b, sizeof b);
        if (strcmp(a, b)) {
            api__problem(rq, REEL_ECONFLICT, "Content-Type does not match the source stream's");
            goto out;
        }
    }
    snprintf(m->ctype, sizeof m->ctype, "%s", sm.ctype);
    m->is_fork = 1;
    snprintf(m->fork_of, sizeof m->fork_of, "%s", src.sid);
    m->fork_offset = m->fork_req = at;
    m->fork_sub = d->fork_sub;
    if (d->fork_sub && sub_offset(rq, d, &src, sm.ctype, m))
        goto out;
    if (!d->has_ttl && !d->has_expires) { /* a fork inherits its source's lifetime rule */
        m->has_ttl = sm.has_ttl;
        m->ttl_s = sm.ttl_s;
        m->has_expires = sm.has_expires;
        snprintf(m->expires, sizeof m->expires, "%s", sm.expires);
        m->expires_ms = sm.expires_ms;
    }
    memcpy(d->src_sid, src.sid, src.sid_len + 1); /* counted once the fork exists */
    ret = 0;
out:
    ds__meta_release(&sm);
    return ret;
}

/* Counts one more fork on the source (d->src_sid) so that a DELETE keeps what forks
 * read: a compare-and-swap of the metadata just read, redone when another write to the
 * source came first. Returns 1 when submitted, 0 when the source is gone. */
static int src_inc(api_req_t *rq, ds_req_t *d)
{
    store_session_t rec;
    ds_meta_t m = DS_META_INIT;
    if (ds__state_read(rq->srv, d->src_sid, strlen(d->src_sid), &rec, &m, &d->src_seen)) {
        ds__meta_release(&m);
        return 0;
    }
    m.forks++;
    store_buf_clear(&d->src_meta);
    ds__meta_encode(&m, m.path, strlen(m.path), &d->src_meta);
    ds__meta_release(&m);
    if (store_buf_failed(&d->src_meta) || store_buf_failed(&d->src_seen))
        return 0;
    store_batch_init(&d->src_b, STORE_OP_SESSION_PUT, d->src_sid, strlen(d->src_sid));
    ds__cas_meta(&d->src_b, &d->src_meta, &d->src_seen);
    d->kind = W_NONE;
    rq->phase = DS_COMMIT;
    api__submit(rq, &d->src_b);
    return 1;
}

enum MHD_Result ds__put_decide(api_req_t *rq, ds_req_t *d)
{
    store_session_t rec;
    ds_meta_t m = DS_META_INIT;
    int st = ds__find(rq, d, &rec, &m);
    if (st < 0 || st == S_LIVE || st == S_SOFT_DELETED) {
        enum MHD_Result r =
            st < 0 ? api__problem(rq, st, "reading the stream failed: %s", reel_strerror(st))
            : st == S_LIVE
                ? put_existing(rq, d, &rec, &m)
                : api__problem(rq, REEL_ECONFLICT,
                               "stream '%.200s' was deleted but forks still read it", d->path);
        ds__meta_release(&m);
        return r;
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
    int rc = ds__batch_start(d);
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
        rc = ds__add_messages(rq, d, ds__is_json(m.ctype), &n, why, sizeof why);
    if (rc)
        return api__problem(rq, rc == REEL_ENOMEM ? rc : REEL_EINVALID_JSON,
                            "the body is not valid JSON: %s", why);
    if (d->close && (rc = ds__add_close_marker(d)))
        return api__problem(rq, rc, "out of memory");
    d->is_new = 1;
    d->closing = d->close;
    if (d->ib.b.n_events)
        return ds__submit_append(rq, d, &m);
    ds__batch_reset(d);
    ds__meta_encode(&m, d->path, d->path_len, &d->meta);
    return ds__submit_plain(rq, d, STORE_OP_SESSION_PUT, W_PUT);
}

enum MHD_Result ds__put_done(api_req_t *rq, ds_req_t *d)
{
    /* W_NONE: the source's fork count was written (a failure there only risks that the
     * source is later deleted outright instead of kept for the fork). */
    store_batch_t *b = d->kind == W_APPEND ? &d->ib.b : &d->pb;
    if (d->kind != W_NONE && b->err == REEL_ECONFLICT && ++d->attempts < DS_MAX_ATTEMPTS) {
        rq->async_done = 0;
        return ds__put_decide(rq, d);
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
    store_session_t rec;
    ds_meta_t m = DS_META_INIT;
    uint64_t tail = 0;
    if (ds__state_read(rq->srv, d->sid, d->sid_len, &rec, &m, NULL) == REEL_OK)
        tail = ds__base(&m) + rec.last_sequence;
    struct MHD_Response *resp = ds__resp(NULL, 0);
    if (!resp) {
        ds__meta_release(&m);
        return MHD_NO;
    }
    ds__hdr(resp, MHD_HTTP_HEADER_CONTENT_TYPE, m.ctype[0] ? m.ctype : d->ctype);
    ds__meta_release(&m);
    ds__hdr_offset(resp, tail);
    if (d->closing)
        ds__hdr(resp, "Stream-Closed", "true");
    const char *host = api__header(rq, MHD_HTTP_HEADER_HOST);
    char loc[4096]; /* an encoded path of 512 decoded bytes is up to 1536 */
    size_t plen = strcspn(rq->uri, "?");
    snprintf(loc, sizeof loc, "http://%s%.*s", host ? host : "localhost", (int)plen, rq->uri);
    ds__hdr(resp, MHD_HTTP_HEADER_LOCATION, loc);
    return api__queue(rq, 201, resp);
}

/* ---- DELETE ---- */

/* Releases the fork source named in d->gc_next after its fork was deleted: one less
 * fork; a source deleted (or expired) while forks read it goes now that none does, and
 * so on up the chain. Returns 1 when a batch was submitted, 0 when there is nothing left. */
static int gc_step(api_req_t *rq, ds_req_t *d)
{
    while (d->gc_next[0]) {
        store_session_t rec;
        ds_meta_t m = DS_META_INIT;
        memcpy(d->gc_cur, d->gc_next, sizeof d->gc_cur);
        d->gc_next[0] = '\0';
        int rc = ds__state_read(rq->srv, d->gc_cur, strlen(d->gc_cur), &rec, &m, &d->seen);
        if (rc || rec.status == STORE_DELETED) {
            ds__meta_release(&m);
            return 0;
        }
        if (m.forks)
            m.forks--;
        int dead = m.soft_deleted ||
                   ds__expired(&m, &rec, api__access_last(rq->srv, rec.id, rec.id_len),
                               (int64_t)store_wall_ms());
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
            ds__cas_meta(&d->pb, &d->meta, &d->seen);
        }
        rq->phase = DS_COMMIT;
        api__submit(rq, &d->pb);
        return 1;
    }
    return 0;
}

enum MHD_Result ds__delete(api_req_t *rq, ds_req_t *d)
{
    if (rq->phase == DS_COMMIT) {
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
            struct MHD_Response *r = ds__resp(NULL, 0);
            return r ? api__queue(rq, 204, r) : MHD_NO;
        }
    }
    store_session_t rec;
    ds_meta_t m = DS_META_INIT;
    int st = ds__find(rq, d, &rec, &m);
    if (st < 0)
        return api__problem(rq, st, "reading the stream failed");
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
        return ds__not_found(rq, d);
    if (forks)
        return ds__submit_plain(rq, d, STORE_OP_SESSION_PUT, W_PUT);
    return ds__submit_plain(rq, d, STORE_OP_SESSION_DELETE, W_DELETE);
}

