/* consumers.c -- durable consumers over HTTP: /v1/consumers (docs/HTTP.md "Consumers").
 *
 * A consumer is a named cursor kept by the store (store.h "Durable consumers"): over one
 * session or over the all-sessions feed, optionally only some event types. Workers take a
 * lease (POST .../lease) and get a fencing token; GET .../next reads the events after the
 * acknowledged position (or after 'after', what this worker has already seen in its
 * lease); POST .../ack moves the acknowledged position. Every change is one store batch
 * decided inside the committer's transaction (no read-modify-write here), so the store's
 * answer is the whole decision: 409 lease_held / stale_token / sequence_conflict.
 *
 * Tenants: the routes are T_FILTER. A consumer over a session outside the token's prefixes
 * answers as one that does not exist; a consumer over the feed reads every session, so a
 * token limited to prefixes gets 403 for it, as for the feed itself.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers/handlers.h"
#include "api/live/live.h"
#include "replay/replay.h"
#include "store/json.h"

#define NEXT_BUDGET 100000 /* events a filtered 'next' examines at most (replay_scan) */
#define LAG_SERIES 100     /* consumers in reel_consumer_lag_events, in name order */
#define DEFAULT_TTL_MS 30000

enum { C_BODY = API_PHASE_OWN, C_COMMIT, C_WAIT };

typedef struct creq {
    store_consumer_req_t q;
    char name[STORE_CONSUMER_NAME_MAX + 1];
    size_t name_len;
} creq_t;

static void creq_dispose(api_req_t *rq)
{
    free(rq->ctx);
    rq->ctx = NULL;
}

/* The {name} segment, checked; answers 400 and returns NULL when it is not a name. */
static creq_t *creq_of(api_req_t *rq)
{
    creq_t *c = rq->ctx;
    if (c)
        return c;
    if (!store_consumer_name_valid(rq->param, rq->param_len)) {
        api__problem(rq, REEL_EINVALID_PARAMETER,
                     "consumer name '%.*s' is not valid (1..%d of A-Z a-z 0-9 . _ : -)",
                     (int)(rq->param_len > 200 ? 200 : rq->param_len), rq->param,
                     STORE_CONSUMER_NAME_MAX);
        return NULL;
    }
    if (!(c = calloc(1, sizeof *c))) {
        api__problem(rq, REEL_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(c->name, rq->param, rq->param_len);
    c->name_len = rq->param_len;
    memcpy(c->q.rec.name, c->name, c->name_len);
    c->q.rec.name_len = c->name_len;
    rq->ctx = c;
    rq->dispose = creq_dispose;
    return c;
}

/* 0 when the token may use consumer 'c'; else answers (404 as for a missing one, or 403
 * for the feed) and returns -1. */
static int tenant_check(api_req_t *rq, const store_consumer_t *c)
{
    if (!rq->n_prefixes)
        return 0;
    if (c->feed) {
        api__problem(rq, REEL_EFORBIDDEN, "consumer '%s' reads every session; the token '%s' is "
                     "limited to session prefixes", c->name, rq->token_name);
        return -1;
    }
    if (api__tenant_allows(rq, c->session, c->session_len))
        return 0;
    api__problem(rq, REEL_ENOT_FOUND, "consumer '%s' does not exist", c->name);
    return -1;
}

/* ---- rendering ---- */

static void write_types(store_buf_t *o, const char *types)
{
    store_buf_putc(o, '[');
    for (const char *p = types; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (p != types)
            store_buf_putc(o, ',');
        store_json_write_string(o, p, n);
        p += n + (e ? 1 : 0);
    }
    store_buf_putc(o, ']');
}

static void write_consumer(store_buf_t *o, const store_consumer_t *c, uint64_t tail,
                           uint64_t now)
{
    store_buf_puts(o, "{\"name\":");
    store_json_write_string(o, c->name, c->name_len);
    if (c->feed) {
        store_buf_puts(o, ",\"feed\":true,\"session\":null");
    } else {
        store_buf_puts(o, ",\"feed\":false,\"session\":");
        store_json_write_string(o, c->session, c->session_len);
    }
    store_buf_puts(o, ",\"types\":");
    write_types(o, c->types);
    store_buf_printf(o, ",\"acked\":%llu,\"tail\":%llu,\"lag\":%llu,\"acks\":%llu,\"token\":%llu",
                     (unsigned long long)c->acked, (unsigned long long)tail,
                     (unsigned long long)(tail > c->acked ? tail - c->acked : 0),
                     (unsigned long long)c->acks, (unsigned long long)c->token);
    store_buf_puts(o, ",\"lease\":");
    if (c->token && c->owner_len && now < c->lease_until_ms) {
        store_buf_puts(o, "{\"owner\":");
        store_json_write_string(o, c->owner, c->owner_len);
        store_buf_printf(o, ",\"token\":%llu,\"expires_at\":", (unsigned long long)c->token);
        replay_write_time(o, (int64_t)c->lease_until_ms);
        store_buf_printf(o, ",\"expires_in_ms\":%llu}",
                         (unsigned long long)(c->lease_until_ms - now));
    } else {
        store_buf_puts(o, "null");
    }
    store_buf_printf(o, ",\"takeovers\":%llu,\"created_at\":", (unsigned long long)c->takeovers);
    replay_write_time(o, (int64_t)c->created_ms);
    store_buf_puts(o, ",\"acked_at\":");
    if (c->acked_ms)
        replay_write_time(o, (int64_t)c->acked_ms);
    else
        store_buf_puts(o, "null");
    store_buf_putc(o, '}');
}

/* Answers with consumer 'c' as read now (its tail and lag from a short read). */
static enum MHD_Result reply_consumer(api_req_t *rq, int status, const store_consumer_t *c)
{
    store_read_t r;
    uint64_t tail = 0;
    if (store_read_begin(rq->srv->store, &r) == REEL_OK) {
        tail = store_consumer_tail(&r, c);
        store_read_end(&r);
    }
    store_buf_t o = STORE_BUF_INIT;
    write_consumer(&o, c, tail, store_wall_ms());
    return api__reply_json(rq, status, &o);
}

/* Reads consumer 'name'; answers 404 (or the store's error) and returns -1 when absent. */
static int read_consumer(api_req_t *rq, const creq_t *cr, store_consumer_t *out)
{
    store_read_t r;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc == REEL_OK) {
        rc = store_consumer_get(&r, cr->name, cr->name_len, out);
        store_read_end(&r);
    }
    if (rc == REEL_ENOT_FOUND) {
        api__problem(rq, rc, "consumer '%s' does not exist", cr->name);
        return -1;
    }
    if (rc != REEL_OK) {
        api__problem(rq, rc, "reading consumer '%s' failed: %s", cr->name, reel_strerror(rc));
        return -1;
    }
    return tenant_check(rq, out);
}

/* ---- list, get ---- */

struct list_arg {
    api_req_t *rq;
    store_read_t *r;
    store_buf_t *o;
    size_t n;
    uint64_t now;
};

static int list_one(void *arg, const store_consumer_t *c)
{
    struct list_arg *a = arg;
    api_req_t *rq = a->rq;
    if (rq->n_prefixes && (c->feed || !api__tenant_allows(rq, c->session, c->session_len)))
        return 0;
    if (a->n++)
        store_buf_putc(a->o, ',');
    write_consumer(a->o, c, store_consumer_tail(a->r, c), a->now);
    return 0;
}

enum MHD_Result api__consumers_list(api_req_t *rq, const char *data, size_t *size)
{
    store_read_t r;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc != REEL_OK)
        return api__problem(rq, rc, "listing consumers failed: %s", reel_strerror(rc));
    store_buf_t o = STORE_BUF_INIT;
    store_buf_puts(&o, "{\"consumers\":[");
    struct list_arg a = {rq, &r, &o, 0, store_wall_ms()};
    rc = store_consumer_list(&r, list_one, &a);
    store_read_end(&r);
    if (rc != REEL_OK) {
        store_buf_release(&o);
        return api__problem(rq, rc, "listing consumers failed: %s", reel_strerror(rc));
    }
    store_buf_puts(&o, "]}");
    return api__reply_json(rq, 200, &o);
}

enum MHD_Result api__consumer_get(api_req_t *rq, const char *data, size_t *size)
{
    creq_t *cr = creq_of(rq);
    store_consumer_t c;
    if (!cr || read_consumer(rq, cr, &c))
        return MHD_YES;
    return reply_consumer(rq, 200, &c);
}

/* ---- changes: one store batch each ---- */

/* The answer to a change once the store decided. */
static enum MHD_Result change_done(api_req_t *rq)
{
    creq_t *cr = rq->ctx;
    store_consumer_req_t *q = &cr->q;
    int err = rq->batch.err;
    const store_consumer_t *c = &q->rec;
    switch (err) {
    case REEL_OK:
        break;
    case REEL_ENOT_FOUND:
        return api__problem(rq, err, "consumer '%s' does not exist", cr->name);
    case REEL_ELEASE_HELD:
        return api__problem(rq, err,
                            "consumer '%s' is leased by '%s' (token %llu) for %llu ms more",
                            cr->name, c->owner, (unsigned long long)c->token,
                            (unsigned long long)(c->lease_until_ms - q->now_ms));
    case REEL_ESTALE_TOKEN:
        if (c->token != q->token)
            return api__problem(rq, err, "token %llu of consumer '%s' is stale: the current lease "
                                "is token %llu (owner '%s')", (unsigned long long)q->token,
                                cr->name, (unsigned long long)c->token, c->owner);
        return api__problem(rq, err, "token %llu of consumer '%s' is stale: its lease expired; "
                            "take a new lease", (unsigned long long)q->token, cr->name);
    case REEL_ECONFLICT:
        if (q->op == STORE_CONSUMER_CREATE)
            return api__problem(rq, err, "consumer '%s' exists with another definition",
                                cr->name);
        return api__problem(rq, err, "position %llu is before the acknowledged position %llu of "
                            "consumer '%s'", (unsigned long long)q->position,
                            (unsigned long long)c->acked, cr->name);
    case REEL_EINVALID_PARAMETER:
        if (q->op == STORE_CONSUMER_ACK)
            return api__problem(rq, err, "position %llu is past the end of consumer '%s'",
                                (unsigned long long)q->position, cr->name);
        return api__problem(rq, err, "the change of consumer '%s' is not valid", cr->name);
    default:
        return api__problem(rq, err, "changing consumer '%s' failed: %s", cr->name,
                            reel_strerror(err));
    }
    if (q->op == STORE_CONSUMER_DELETE || q->op == STORE_CONSUMER_RELEASE)
        return api__reply_text(rq, 204, "application/json", "", 0);
    return reply_consumer(rq, q->op == STORE_CONSUMER_CREATE && q->created ? 201 : 200, c);
}

static enum MHD_Result submit(api_req_t *rq, creq_t *cr, int op)
{
    cr->q.op = op;
    store_batch_init(&rq->batch, STORE_OP_CONSUMER, NULL, 0);
    rq->batch.consumer = &cr->q;
    rq->phase = C_COMMIT;
    return api__submit(rq, &rq->batch);
}

/* A JSON object body (NULL after answering 400). An empty body is an empty object. */
static json_t *body_object(api_req_t *rq)
{
    if (rq->body.len == 0)
        return json_object();
    json_error_t e;
    json_t *j = json_loadb((const char *)rq->body.data, rq->body.len, JSON_REJECT_DUPLICATES, &e);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        api__problem(rq, REEL_EINVALID_JSON, "the body must be a JSON object%s%s",
                     j ? "" : ": ", j ? "" : e.text);
        return NULL;
    }
    return j;
}

/* An unsigned integer field; 1 found, 0 absent, -1 after answering 400. */
static int u64_field(api_req_t *rq, json_t *j, const char *key, uint64_t max, uint64_t *v)
{
    json_t *x = json_object_get(j, key);
    if (!x)
        return 0;
    if (!json_is_integer(x) || json_integer_value(x) < 0 ||
        (uint64_t)json_integer_value(x) > max) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "'%s' must be an integer from 0 to %llu", key,
                     (unsigned long long)max);
        return -1;
    }
    *v = (uint64_t)json_integer_value(x);
    return 1;
}

static int parse_definition(api_req_t *rq, creq_t *cr, json_t *j)
{
    store_consumer_t *c = &cr->q.rec;
    json_t *sess = json_object_get(j, "session"), *feed = json_object_get(j, "feed");
    json_t *types = json_object_get(j, "types");
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v) {
        if (strcmp(k, "session") && strcmp(k, "feed") && strcmp(k, "types")) {
            api__problem(rq, REEL_EINVALID_PARAMETER, "unknown field '%.64s' (expected "
                         "session, feed, types)", k);
            return -1;
        }
    }
    c->feed = feed && json_is_true(feed);
    if (feed && !json_is_boolean(feed)) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "'feed' must be true or false");
        return -1;
    }
    if (c->feed == (sess != NULL && !json_is_null(sess))) {
        api__problem(rq, REEL_EINVALID_PARAMETER,
                     "a consumer reads either one 'session' or the 'feed' (\"feed\": true)");
        return -1;
    }
    if (!c->feed) {
        const char *id = json_string_value(sess);
        size_t n = json_string_length(sess);
        if (!id || !store_session_id_valid(id, n)) {
            api__problem(rq, REEL_EINVALID_SESSION_ID, "'session' must be a valid session id");
            return -1;
        }
        if (!api__tenant_allows(rq, id, n)) {
            api__problem(rq, REEL_EFORBIDDEN, "session '%s' is outside the token's prefixes", id);
            return -1;
        }
        memcpy(c->session, id, n);
        c->session_len = n;
    } else if (rq->n_prefixes) {
        api__problem(rq, REEL_EFORBIDDEN, "a feed consumer reads every session; the token '%s' "
                     "is limited to session prefixes", rq->token_name);
        return -1;
    }
    size_t used = 0;
    if (types && !json_is_array(types)) {
        api__problem(rq, REEL_EINVALID_PARAMETER, "'types' must be an array of event types");
        return -1;
    }
    for (size_t i = 0; types && i < json_array_size(types); i++) {
        json_t *t = json_array_get(types, i);
        const char *s = json_string_value(t);
        size_t n = json_string_length(t);
        if (!s || !n || n > STORE_TYPE_MAX || memchr(s, ',', n) ||
            used + n + 1 > STORE_CONSUMER_TYPES_MAX) {
            api__problem(rq, REEL_EINVALID_PARAMETER, "'types' must hold event types (no commas), "
                         "at most %d bytes in all", STORE_CONSUMER_TYPES_MAX);
            return -1;
        }
        if (used)
            c->types[used++] = ',';
        memcpy(c->types + used, s, n);
        used += n;
    }
    c->types[used] = '\0';
    return 0;
}

enum MHD_Result api__consumer_put(api_req_t *rq, const char *data, size_t *size)
{
    if (rq->phase == C_COMMIT)
        return rq->async_done ? change_done(rq) : MHD_YES;
    enum MHD_Result r;
    if (api__body_step(rq, data, size, C_BODY, &r))
        return r;
    creq_t *cr = creq_of(rq);
    json_t *j = cr ? body_object(rq) : NULL;
    if (!j)
        return MHD_YES;
    int bad = parse_definition(rq, cr, j);
    json_decref(j);
    return bad ? MHD_YES : submit(rq, cr, STORE_CONSUMER_CREATE);
}

enum MHD_Result api__consumer_delete(api_req_t *rq, const char *data, size_t *size)
{
    if (rq->phase == C_COMMIT)
        return rq->async_done ? change_done(rq) : MHD_YES;
    creq_t *cr = creq_of(rq);
    store_consumer_t c;
    if (!cr || read_consumer(rq, cr, &c))
        return MHD_YES;
    return submit(rq, cr, STORE_CONSUMER_DELETE);
}

/* lease, ack, release: a JSON body, a tenant check on the stored consumer, one batch. */
static enum MHD_Result lease_route(api_req_t *rq, const char *data, size_t *size, int op)
{
    if (rq->phase == C_COMMIT)
        return rq->async_done ? change_done(rq) : MHD_YES;
    enum MHD_Result r;
    if (api__body_step(rq, data, size, C_BODY, &r))
        return r;
    creq_t *cr = creq_of(rq);
    store_consumer_t c;
    if (!cr || read_consumer(rq, cr, &c))
        return MHD_YES;
    json_t *j = body_object(rq);
    if (!j)
        return MHD_YES;
    store_consumer_req_t *q = &cr->q;
    int bad = 0, has_token = u64_field(rq, j, "token", UINT64_MAX >> 1, &q->token);
    bad = has_token < 0;
    if (!bad && op == STORE_CONSUMER_LEASE) {
        json_t *w = json_object_get(j, "worker");
        const char *s = json_string_value(w);
        size_t n = json_string_length(w);
        q->ttl_ms = DEFAULT_TTL_MS;
        if (!s || !n || n > STORE_CONSUMER_OWNER_MAX) {
            api__problem(rq, REEL_EINVALID_PARAMETER, "'worker' must be a string of 1..%d bytes "
                         "naming the worker", STORE_CONSUMER_OWNER_MAX);
            bad = 1;
        } else if ((bad = u64_field(rq, j, "ttl_ms", STORE_CONSUMER_TTL_MAX, &q->ttl_ms) < 0)) {
        } else if (q->ttl_ms == 0) {
            api__problem(rq, REEL_EINVALID_PARAMETER, "'ttl_ms' must be from 1 to %u",
                         STORE_CONSUMER_TTL_MAX);
            bad = 1;
        } else {
            memcpy(q->rec.owner, s, n);
            q->rec.owner_len = n;
        }
    } else if (!bad && !has_token) {
        api__problem(rq, REEL_EINVALID_PARAMETER,
                     "'token' (the lease's fencing token) is required");
        bad = 1;
    }
    if (!bad && op == STORE_CONSUMER_ACK) {
        int has = u64_field(rq, j, "position", UINT64_MAX >> 1, &q->position);
        if (has == 0)
            api__problem(rq, REEL_EINVALID_PARAMETER, "'position' (acknowledge up to) is required");
        bad = has <= 0;
    }
    json_decref(j);
    return bad ? MHD_YES : submit(rq, cr, op);
}

enum MHD_Result api__consumer_lease(api_req_t *rq, const char *data, size_t *size)
{
    return lease_route(rq, data, size, STORE_CONSUMER_LEASE);
}

enum MHD_Result api__consumer_ack(api_req_t *rq, const char *data, size_t *size)
{
    return lease_route(rq, data, size, STORE_CONSUMER_ACK);
}

enum MHD_Result api__consumer_release(api_req_t *rq, const char *data, size_t *size)
{
    return lease_route(rq, data, size, STORE_CONSUMER_RELEASE);
}

/* ---- next: the events after the acknowledged position, for the lease's holder ---- */

struct batch {
    api_server_t *srv;
    store_buf_t *out;
    size_t limit, n;
    uint64_t last;
    int flags; /* api__render_flags(): a tenant's envelopes carry no store-wide position */
};

static int batch_event(void *arg, const store_event_view_t *ev, uint64_t key)
{
    struct batch *b = arg;
    if (b->n >= b->limit || (b->n > 0 && b->out->len > API_MAX_PAGE_BYTES))
        return 1;
    if (b->n)
        store_buf_putc(b->out, ',');
    int rc = api__render_event(b->srv, b->out, ev, b->flags);
    if (rc != REEL_OK)
        return rc;
    b->n++;
    b->last = key;
    return 0;
}

/* One attempt: 1 answered, 0 nothing to give yet (the caller may wait). */
static int next_try(api_req_t *rq, creq_t *cr, enum MHD_Result *res, int may_wait)
{
    store_read_t r;
    store_consumer_t c;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc == REEL_OK && (rc = store_consumer_get(&r, cr->name, cr->name_len, &c)) != REEL_OK)
        store_read_end(&r);
    if (rc == REEL_ENOT_FOUND)
        return *res = api__problem(rq, rc, "consumer '%s' does not exist", cr->name), 1;
    if (rc != REEL_OK)
        return *res = api__problem(rq, rc, "reading consumer '%s' failed: %s", cr->name,
                                   reel_strerror(rc)), 1;
    if (tenant_check(rq, &c)) {
        store_read_end(&r);
        return *res = MHD_YES, 1;
    }
    uint64_t now = store_wall_ms();
    if (cr->q.token != c.token || !c.owner_len || now >= c.lease_until_ms) {
        store_read_end(&r);
        *res = c.token != cr->q.token
                   ? api__problem(rq, REEL_ESTALE_TOKEN, "token %llu of consumer '%s' is stale: "
                                  "the current lease is token %llu (owner '%s')",
                                  (unsigned long long)cr->q.token, cr->name,
                                  (unsigned long long)c.token, c.owner)
                   : api__problem(rq, REEL_ESTALE_TOKEN, "token %llu of consumer '%s' is stale: "
                                  "its lease expired; take a new lease",
                                  (unsigned long long)cr->q.token, cr->name);
        return 1;
    }
    uint64_t after = cr->q.position > c.acked ? cr->q.position : c.acked;
    r.envelopes = !c.types[0]; /* every event goes through api__render_event() */
    store_buf_t o = STORE_BUF_INIT;
    store_buf_puts(&o, "{\"events\":[");
    struct batch b = {rq->srv, &o, (size_t)rq->limit, 0, 0, api__render_flags(rq, 0)};
    replay_scan_t sc = {c.feed ? NULL : c.session, c.session_len, c.types[0] ? c.types : NULL,
                        c.types[0] ? NEXT_BUDGET : b.limit + 1, 0, 0};
    rc = replay_scan(&r, &sc, after, batch_event, &b);
    if (rc == REEL_ESESSION_NOT_FOUND) /* a session that does not exist yet: nothing to read */
        rc = REEL_OK, sc.scanned = after;
    uint64_t tail = store_consumer_tail(&r, &c);
    store_read_end(&r);
    if (rc != REEL_OK) {
        store_buf_release(&o);
        return *res = api__problem(rq, rc, "reading consumer '%s' failed: %s", cr->name,
                                   reel_strerror(rc)), 1;
    }
    if (!b.n && !sc.more && may_wait) {
        store_buf_release(&o);
        return 0;
    }
    uint64_t next = b.n ? b.last : (sc.scanned > after ? sc.scanned : after);
    store_buf_printf(&o, "],\"more\":%s,\"next_position\":%llu,\"acked\":%llu,\"tail\":%llu,"
                         "\"token\":%llu,\"lease_expires_in_ms\":%llu}",
                     sc.more ? "true" : "false", (unsigned long long)next,
                     (unsigned long long)c.acked, (unsigned long long)tail,
                     (unsigned long long)c.token, (unsigned long long)(c.lease_until_ms - now));
    *res = api__reply_json(rq, 200, &o);
    return 1;
}

enum MHD_Result api__consumer_next(api_req_t *rq, const char *data, size_t *size)
{
    creq_t *cr = creq_of(rq);
    if (!cr)
        return MHD_YES;
    if (rq->phase == API_PHASE_NEW) {
        char tok[32];
        rq->limit = API_DEFAULT_LIMIT;
        if (api__query_u64(rq, "after", INT64_MAX, &cr->q.position) != REEL_OK ||
            api__query_u64(rq, "limit", API_MAX_LIMIT, &rq->limit) != REEL_OK ||
            api__query_u64(rq, "wait", API_MAX_WAIT_S, &rq->wait_s) != REEL_OK)
            return MHD_YES;
        if (api__query(rq, "token", tok, sizeof tok) <= 0)
            return api__problem(rq, REEL_EINVALID_PARAMETER,
                                "'token' (the lease's fencing token) is required");
        if (api__query_u64(rq, "token", INT64_MAX, &cr->q.token) != REEL_OK)
            return MHD_YES;
        if (rq->limit == 0)
            return api__problem(rq, REEL_EINVALID_PARAMETER, "'limit' must be from 1 to %d",
                                API_MAX_LIMIT);
    }
    if (rq->phase == C_WAIT && !api__auth_still_valid(rq))
        return api__problem(rq, REEL_EUNAUTHORIZED, "the token is no longer valid (reloaded)");
    for (;;) {
        uint64_t gen = api__gen(rq->srv);
        uint64_t deadline = rq->start_ms + rq->wait_s * 1000;
        int may_wait = rq->wait_s && api__now_ms() < deadline && !api__stopping(rq->srv);
        enum MHD_Result res;
        if (next_try(rq, cr, &res, may_wait))
            return res;
        rq->phase = C_WAIT;
        if (api__wait_for(rq, &rq->waiter, API_WAIT_FEED, NULL, 0, deadline, gen))
            return MHD_YES;
    }
}

/* ---- metrics ---- */

struct lag_arg {
    store_read_t *r;
    store_buf_t *o;
    size_t n;
};

static int lag_one(void *arg, const store_consumer_t *c)
{
    struct lag_arg *a = arg;
    if (a->n++ >= LAG_SERIES)
        return 0;
    uint64_t tail = store_consumer_tail(a->r, c);
    /* names are [A-Za-z0-9._:-]: nothing to escape in a label */
    store_buf_printf(a->o, "reel_consumer_lag_events{consumer=\"%s\"} %llu\n", c->name,
                     (unsigned long long)(tail > c->acked ? tail - c->acked : 0));
    return 0;
}

void api__consumer_metrics(api_server_t *srv, store_buf_t *o)
{
    store_read_t r;
    if (store_read_begin(srv->store, &r) != REEL_OK)
        return;
    store_buf_printf(o, "# HELP reel_consumer_lag_events Events (feed: positions) after the "
                        "acknowledged position of each durable consumer (the first %d by name).\n"
                        "# TYPE reel_consumer_lag_events gauge\n", LAG_SERIES);
    struct lag_arg a = {&r, o, 0};
    store_consumer_list(&r, lag_one, &a);
    store_read_end(&r);
    store_buf_printf(o, "# HELP reel_consumers Durable consumers.\n# TYPE reel_consumers gauge\n"
                        "reel_consumers %zu\n", a.n);
}
