/* subs_http.c -- the routes of the Durable Streams subscriptions at /v1/stream/__ds/
 * (docs/durable-streams.md "Subscriptions"): create, read, delete, link and unlink streams,
 * callbacks, claims, acks, releases and the JWKS key. Errors are the protocol's
 * {"error": {"code", "message"}} objects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/ds/subs_int.h"

/* ---- answers ----
 *
 * A change (PUT, POST, DELETE) is written through to the store without waiting
 * (ds__sub_save()); its answer is kept here and sent once a barrier batch submitted after
 * it completed (STORE_CONSUMER_SYNC: batches commit in submission order), so a client
 * told 201 or {"ok": true} finds it after a crash. Reads answer at once. */

enum { SB_BODY = API_PHASE_OWN, SB_COMMIT };

typedef struct sreq {
    int status;     /* the kept answer, 0 = none */
    char *body;     /* JSON text (NULL: empty) */
    store_consumer_req_t q;
} sreq_t;

static void sreq_dispose(api_req_t *rq)
{
    sreq_t *c = rq->ctx;
    if (c)
        free(c->body);
    free(c);
    rq->ctx = NULL;
}

static enum MHD_Result send_now(api_req_t *rq, int status, char *text)
{
    if (!text)
        return api__reply_text(rq, status, "application/json", "", 0);
    store_buf_t b = STORE_BUF_INIT;
    store_buf_puts(&b, text);
    free(text);
    return api__reply_json(rq, status, &b);
}

/* Answers 'status' with 'text' (taken over; NULL = no body): now for a read, else kept
 * for after the barrier. */
static enum MHD_Result reply_text(api_req_t *rq, int status, char *text)
{
    sreq_t *c = rq->ctx;
    if (!c || (rq->method_bit & API_M_READ))
        return send_now(rq, status, text);
    free(c->body);
    c->status = status;
    c->body = text;
    return MHD_YES;
}

static enum MHD_Result reply_j(api_req_t *rq, int status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    return reply_text(rq, status, text);
}

static enum MHD_Result reply_error(api_req_t *rq, int status, const char *code,
                                   const char *message, const char *holder)
{
    json_t *e = json_pack("{s:s,s:s}", "code", code, "message", message);
    if (e && holder)
        json_object_set_new(e, "current_holder", json_string(holder));
    if (status >= 500)
        atomic_fetch_add(&rq->srv->problems_5xx, 1);
    else
        atomic_fetch_add(&rq->srv->problems_4xx, 1);
    return reply_j(rq, status, e ? json_pack("{s:o}", "error", e) : NULL);
}

static void jwks_url(const struct ds_subs *x, const sub_t *s, char *out, size_t cap)
{
    (void)x;
    snprintf(out, cap, "%s/v1/stream/__ds/jwks.json", s->base);
}

/* The subscription as GET answers it (lock held; streams read on 'r'). */
static json_t *sub_j(struct ds_subs *x, sub_t *s, store_read_t *r)
{
    ds__sub_find_pattern_streams(x->srv, r, s);
    json_t *st = json_array();
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(st, ds__sub_stream_j(&s->streams[i],
                                                   ds__sub_tail_of(x->srv, r, s->streams[i].path)));
    json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:o}", "id", s->id, "type",
                          s->type == T_WEBHOOK ? "webhook" : "pull-wake", "lease_ttl_ms",
                          (json_int_t)s->ttl_ms, "generation", (json_int_t)s->generation,
                          "streams", st);
    if (!j)
        return NULL;
    if (s->pattern[0])
        json_object_set_new(j, "pattern", json_string(s->pattern));
    if (s->description[0])
        json_object_set_new(j, "description", json_string(s->description));
    if (s->type == T_WEBHOOK) {
        char ju[400];
        jwks_url(x, s, ju, sizeof ju);
        json_object_set_new(j, "webhook",
                            json_pack("{s:s,s:{s:s,s:s,s:s}}", "url", s->url, "signing", "alg",
                                      "ed25519", "kid", x->kid, "jwks_url", ju));
    } else {
        json_object_set_new(j, "wake_stream", json_string(s->wake_stream));
    }
    if (s->holder[0] && api__now_ms() < s->claim_until)
        json_object_set_new(j, "holder", json_string(s->holder));
    return j;
}

/* ---- the routes ---- */


/* The Host of the request as "http://host" (the base of the URLs a subscription gives). */
static void request_base(api_req_t *rq, char *out, size_t cap)
{
    const char *host = api__header(rq, MHD_HTTP_HEADER_HOST);
    if (!host || !*host || strpbrk(host, " \"\\<>/"))
        snprintf(out, cap, "http://127.0.0.1:%u", rq->srv->port);
    else
        snprintf(out, cap, "http://%s", host);
}

/* The config of a PUT into 's' (fresh); NULL or an error code with 'msg'. */
static const char *parse_config(api_req_t *rq, json_t *j, sub_t *s, char *msg, size_t cap)
{
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type || (strcmp(type, "webhook") && strcmp(type, "pull-wake")))
        return snprintf(msg, cap, "'type' must be \"webhook\" or \"pull-wake\""), "INVALID_REQUEST";
    s->type = !strcmp(type, "webhook") ? T_WEBHOOK : T_PULL;
    json_t *pat = json_object_get(j, "pattern"), *streams = json_object_get(j, "streams");
    if (pat && (!json_is_string(pat) || !json_string_length(pat) ||
                json_string_length(pat) > DS_PATH_MAX))
        return snprintf(msg, cap, "'pattern' must be a glob of stream paths"), "INVALID_REQUEST";
    ds__sub_copy_str(s->pattern, sizeof s->pattern, pat);
    if (streams && !json_is_array(streams))
        return snprintf(msg, cap, "'streams' must be an array of stream paths"), "INVALID_REQUEST";
    size_t i;
    json_t *v;
    json_array_foreach(streams, i, v) {
        const char *p = json_string_value(v);
        sub_stream_t *st = p && *p ? ds__sub_stream_of(s, p, 1) : NULL;
        if (!st)
            return snprintf(msg, cap, "'streams' must hold stream paths (at most %d)",
                            SUB_STREAMS_MAX), "INVALID_REQUEST";
        st->explicit_link = 1;
    }
    if (!s->pattern[0] && !s->n)
        return snprintf(msg, cap, "a subscription needs a 'pattern' or 'streams'"),
               "INVALID_REQUEST";
    json_t *ttl = json_object_get(j, "lease_ttl_ms");
    s->ttl_ms = SUB_TTL_DEFAULT;
    if (ttl) {
        double t = json_number_value(ttl);
        if (!json_is_number(ttl) || t < SUB_TTL_MIN || t > SUB_TTL_MAX)
            return snprintf(msg, cap, "'lease_ttl_ms' must be from %d to %d", SUB_TTL_MIN,
                            SUB_TTL_MAX), "INVALID_REQUEST";
        s->ttl_ms = (uint64_t)t;
    }
    json_t *d = json_object_get(j, "description");
    if (d && (!json_is_string(d) || json_string_length(d) > TEXT_MAX))
        return snprintf(msg, cap, "'description' must be a string of at most %d bytes",
                        TEXT_MAX), "INVALID_REQUEST";
    ds__sub_copy_str(s->description, sizeof s->description, d);
    if (s->type == T_WEBHOOK) {
        const char *url = json_string_value(json_object_get(json_object_get(j, "webhook"), "url"));
        if (!url || strlen(url) > URL_MAX)
            return snprintf(msg, cap, "a webhook subscription needs 'webhook': {\"url\": ...}"),
                   "INVALID_REQUEST";
        if (ds__sub_url_allowed(rq->srv, url))
            return snprintf(msg, cap, "webhook URL '%.300s' is not allowed (http or https to a "
                            "public address)", url), "WEBHOOK_URL_REJECTED";
        snprintf(s->url, sizeof s->url, "%s", url);
    } else {
        const char *ws = json_string_value(json_object_get(j, "wake_stream"));
        if (!ws || !*ws || strlen(ws) > DS_PATH_MAX)
            return snprintf(msg, cap, "a pull-wake subscription needs 'wake_stream'"),
                   "INVALID_REQUEST";
        snprintf(s->wake_stream, sizeof s->wake_stream, "%s", ws);
    }
    return NULL;
}

static int same_config(const sub_t *a, const sub_t *b)
{
    if (a->type != b->type || strcmp(a->pattern, b->pattern) || strcmp(a->url, b->url) ||
        strcmp(a->wake_stream, b->wake_stream) || a->ttl_ms != b->ttl_ms ||
        strcmp(a->description, b->description))
        return 0;
    size_t na = 0, nb = 0;
    for (size_t i = 0; i < a->n; i++)
        na += a->streams[i].explicit_link;
    for (size_t i = 0; i < b->n; i++) {
        if (!b->streams[i].explicit_link)
            continue;
        nb++;
        const sub_stream_t *x = NULL;
        for (size_t k = 0; k < a->n && !x; k++)
            if (!strcmp(a->streams[k].path, b->streams[i].path))
                x = &a->streams[k];
        if (!x || !x->explicit_link)
            return 0;
    }
    return na == nb;
}

/* Answers with subscription 's' (lock held). */
static enum MHD_Result reply_sub(api_req_t *rq, struct ds_subs *x, sub_t *s, int status)
{
    store_read_t r;
    if (store_read_begin(rq->srv->store, &r) != REEL_OK)
        return reply_error(rq, 503, "UNAVAILABLE", "the store cannot be read", NULL);
    json_t *j = sub_j(x, s, &r);
    store_read_end(&r);
    return reply_j(rq, status, j);
}

static enum MHD_Result put_sub(api_req_t *rq, struct ds_subs *x, const char *id, json_t *j)
{
    sub_t *n = calloc(1, sizeof *n);
    char msg[512];
    if (!n)
        return reply_error(rq, 500, "INTERNAL", "out of memory", NULL);
    snprintf(n->id, sizeof n->id, "%s", id);
    const char *code = parse_config(rq, j, n, msg, sizeof msg);
    if (code) {
        ds__sub_free(n);
        return reply_error(rq, 400, code, msg, NULL);
    }
    request_base(rq, n->base, sizeof n->base);
    pthread_mutex_lock(&x->lock);
    sub_t *old = ds__sub_find(x, id);
    enum MHD_Result r;
    if (old) {
        int same = same_config(old, n);
        ds__sub_free(n);
        r = same ? reply_sub(rq, x, old, 200)
                 : reply_error(rq, 409, "SUBSCRIPTION_EXISTS",
                               "a subscription with this id exists with another configuration",
                               NULL);
    } else {
        n->created_ms = store_wall_ms();
        n->next = x->list;
        x->list = n;
        ds__sub_save(x, n);
        r = reply_sub(rq, x, n, 201);
    }
    pthread_mutex_unlock(&x->lock);
    return r;
}

static enum MHD_Result not_found(api_req_t *rq, const char *id)
{
    char msg[300];
    snprintf(msg, sizeof msg, "subscription '%s' does not exist", id);
    return reply_error(rq, 404, "NOT_FOUND", msg, NULL);
}

/* The Bearer token of the request into 'out' ("" when none). */
static void bearer(api_req_t *rq, char *out, size_t cap)
{
    const char *h = api__header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
    out[0] = '\0';
    if (h && !strncasecmp(h, "Bearer ", 7))
        snprintf(out, cap, "%s", h + 7);
}

/* Checks (apply 0: each a linked stream, an offset not past its tail) or applies 'acks'
 * ([{stream, offset}]) to 's'; -1 for a bad one, so a request with one bad ack changes
 * nothing. */
static int apply_acks(api_server_t *srv, sub_t *s, json_t *acks, int apply)
{
    size_t i;
    json_t *v;
    json_array_foreach(acks, i, v) {
        const char *path = json_string_value(json_object_get(v, "stream"));
        const char *off = json_string_value(json_object_get(v, "offset"));
        uint64_t seq;
        sub_stream_t *st = path ? ds__sub_stream_of(s, path, 0) : NULL;
        if (!st || !off || ds__offset_parse(off, &seq))
            return -1;
        if (!apply) {
            store_read_t r;
            uint64_t tail = 0;
            if (store_read_begin(srv->store, &r) == REEL_OK) {
                tail = ds__sub_tail_of(srv, &r, st->path);
                store_read_end(&r);
            }
            if (seq > tail)
                return -1;
        }
        if (apply && seq > st->acked)
            st->acked = seq;
    }
    return 0;
}

/* 1 when a linked stream has messages past its acknowledged offset. */
static int any_pending(struct ds_subs *x, sub_t *s)
{
    store_read_t r;
    int any = 0;
    if (store_read_begin(x->srv->store, &r) != REEL_OK)
        return 0;
    ds__sub_find_pattern_streams(x->srv, &r, s);
    for (size_t i = 0; i < s->n && !any; i++)
        any = ds__sub_tail_of(x->srv, &r, s->streams[i].path) > s->streams[i].acked;
    store_read_end(&r);
    return any;
}

/* callback (webhook) and ack (pull-wake): acks of the current wake, fenced by generation. */
static enum MHD_Result wake_ack(api_req_t *rq, struct ds_subs *x, sub_t *s, json_t *j, int pull)
{
    char tok[128];
    bearer(rq, tok, sizeof tok);
    const char *want = pull ? s->claim_token : s->wake_token;
    int live = s->wake_open && (!pull || (s->holder[0] && api__now_ms() < s->claim_until));
    const char *wid = json_string_value(json_object_get(j, "wake_id"));
    json_t *gen = json_object_get(j, "generation");
    /* An older or finished wake first: its holder is told it was fenced, whatever token. */
    if (!live || !wid || strcmp(wid, s->wake_id) || !json_is_integer(gen) ||
        (uint64_t)json_integer_value(gen) != s->generation)
        return reply_error(rq, 409, "FENCED", "this wake is finished, or was given again under "
                           "a newer generation", NULL);
    if (!ds__sub_token_is(tok, want))
        return reply_error(rq, 401, "UNAUTHORIZED", "the bearer token is not this wake's token",
                           NULL);
    json_t *acks = json_object_get(j, "acks");
    if (acks && (!json_is_array(acks) || apply_acks(rq->srv, s, acks, 0)))
        return reply_error(rq, 400, "INVALID_REQUEST",
                           "'acks' must be [{\"stream\": a linked path, \"offset\": an offset "
                           "not past its tail}]",
                           NULL);
    if (acks)
        apply_acks(rq->srv, s, acks, 1);
    int done = json_is_true(json_object_get(j, "done"));
    if (done) {
        for (size_t i = 0; i < s->n; i++)
            s->streams[i].snap = 0;
        s->wake_open = 0;
        if (pull) {
            s->holder[0] = '\0';
            s->claim_token[0] = '\0';
        }
    }
    ds__sub_save(x, s);
    int next = done && any_pending(x, s);
    return reply_j(rq, 200, json_pack("{s:b,s:b}", "ok", 1, "next_wake", next));
}

static enum MHD_Result claim(api_req_t *rq, struct ds_subs *x, sub_t *s, json_t *j)
{
    const char *worker = json_string_value(json_object_get(j, "worker"));
    if (!worker || !*worker || strlen(worker) > STORE_CONSUMER_OWNER_MAX)
        return reply_error(rq, 400, "INVALID_REQUEST", "'worker' must name the worker", NULL);
    if (s->type != T_PULL)
        return reply_error(rq, 400, "INVALID_REQUEST", "only pull-wake subscriptions are claimed",
                           NULL);
    uint64_t now = api__now_ms();
    if (s->holder[0] && now < s->claim_until && strcmp(s->holder, worker))
        return reply_error(rq, 409, "ALREADY_CLAIMED", "another worker holds the subscription",
                           s->holder);
    store_read_t r;
    if (store_read_begin(rq->srv->store, &r) != REEL_OK)
        return reply_error(rq, 503, "UNAVAILABLE", "the store cannot be read", NULL);
    ds__sub_snapshot(x, s, &r);
    store_read_end(&r);
    if (!s->wake_open || s->delivering)
        ds__sub_open_wake(x, s, s->ttl_ms);
    snprintf(s->holder, sizeof s->holder, "%s", worker);
    ds__sub_random_hex(s->claim_token, 20);
    s->claim_until = now + s->ttl_ms;
    s->wake_until = s->claim_until;
    json_t *w = ds__sub_wake_j(x, s, s->claim_token);
    if (w) {
        json_object_set_new(w, "worker", json_string(worker));
        json_object_set_new(w, "lease_ttl_ms", json_integer((json_int_t)s->ttl_ms));
    }
    return reply_j(rq, 200, w);
}

static enum MHD_Result release(api_req_t *rq, struct ds_subs *x, sub_t *s, json_t *j)
{
    char tok[128];
    bearer(rq, tok, sizeof tok);
    if (!s->holder[0] || api__now_ms() >= s->claim_until || !ds__sub_token_is(tok, s->claim_token))
        return reply_error(rq, 409, "FENCED", "no claim with this token is held", NULL);
    const char *wid = json_string_value(json_object_get(j, "wake_id"));
    if (wid && strcmp(wid, s->wake_id))
        return reply_error(rq, 409, "FENCED", "the wake_id is not the current wake's", NULL);
    s->holder[0] = '\0';
    s->claim_token[0] = '\0';
    s->wake_open = 0; /* what is not acked is given again */
    x->kick = 1;
    return reply_text(rq, 204, NULL);
}

static enum MHD_Result jwks(api_req_t *rq, struct ds_subs *x)
{
    json_t *j = json_pack("{s:[{s:s,s:s,s:s,s:s,s:s,s:s}]}", "keys", "kty", "OKP", "crv",
                          "Ed25519", "x", x->jwk_x, "kid", x->kid, "alg", "EdDSA", "use", "sig");
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    enum MHD_Result r = api__reply_text(rq, 200, "application/jwk-set+json", text, strlen(text));
    free(text);
    return r;
}

/* Management routes need a reel token like a stream's (GET read, PUT/POST append, DELETE
 * full) and an unlimited one; callback, ack and release carry the wake's or claim's token
 * instead. 0 when allowed, else answered. */
static int manage_auth(api_req_t *rq, enum MHD_Result *r)
{
    int need = rq->method_bit & API_M_READ ? API_SCOPE_READ
             : rq->method_bit == API_M_DELETE ? API_SCOPE_DELETE : API_SCOPE_APPEND;
    int rc = api__auth(rq, need, 0);
    if (rc == REEL_OK && !rq->n_prefixes)
        return 0;
    if (rc == REEL_OK) { /* a tenant's token: as for a stream outside its prefixes */
        *r = api__problem(rq, REEL_ENOT_FOUND, "stream '__ds/%.*s' does not exist",
                          (int)rq->param_len, rq->param);
        return -1;
    }
    *r = api__problem(rq, rc, rc == REEL_EUNAUTHORIZED ? "this route needs a token"
                                                      : "the token's scope does not allow %s",
                      rq->method);
    return -1;
}

/* Splits "subscriptions/<id>[/<rest>]"; -1 when the path is not one. */
static int split(const char *p, size_t n, char *id, char *rest, size_t rest_cap)
{
    static const char pre[] = "subscriptions/";
    if (n <= sizeof pre - 1 || memcmp(p, pre, sizeof pre - 1))
        return -1;
    p += sizeof pre - 1;
    n -= sizeof pre - 1;
    const char *slash = memchr(p, '/', n);
    size_t idn = slash ? (size_t)(slash - p) : n;
    if (!ds__sub_id_valid(p, idn))
        return -1;
    memcpy(id, p, idn);
    id[idn] = '\0';
    rest[0] = '\0';
    if (slash) {
        size_t rn = n - idn - 1;
        if (rn >= rest_cap)
            return -1;
        memcpy(rest, slash + 1, rn);
        rest[rn] = '\0';
    }
    return 0;
}

static enum MHD_Result no_content(api_req_t *rq)
{
    return reply_text(rq, 204, NULL);
}

static enum MHD_Result delete_sub(api_req_t *rq, struct ds_subs *x, sub_t *s)
{
    sub_t **pp = &x->list;
    while (*pp != s)
        pp = &(*pp)->next;
    *pp = s->next;
    ds__sub_unsave(x, s->id);
    ds__sub_free(s);
    return no_content(rq);
}

/* POST .../streams {streams: [...]}: links more streams. */
static enum MHD_Result link_streams(api_req_t *rq, struct ds_subs *x, sub_t *s, json_t *j)
{
    json_t *st = json_object_get(j, "streams"), *v;
    size_t i;
    int bad = !json_is_array(st);
    json_array_foreach(st, i, v) {
        const char *path = json_string_value(v);
        sub_stream_t *one = path && *path ? ds__sub_stream_of(s, path, 1) : NULL;
        if (!one)
            bad = 1;
        else
            one->explicit_link = 1;
    }
    ds__sub_save(x, s);
    return bad ? reply_error(rq, 400, "INVALID_REQUEST", "'streams' must be an array of paths",
                             NULL)
               : no_content(rq);
}

/* DELETE .../streams/{percent-encoded path} */
static enum MHD_Result unlink_stream(api_req_t *rq, struct ds_subs *x, sub_t *s,
                                     const char *enc)
{
    char path[DS_PATH_MAX + 1];
    long pn = api__pct_decode(enc, strlen(enc), path, DS_PATH_MAX, 0);
    sub_stream_t *st = pn > 0 ? ds__sub_stream_of(s, path, 0) : NULL;
    if (!st)
        return reply_error(rq, 404, "NOT_FOUND", "the stream is not linked", NULL);
    *st = s->streams[--s->n];
    ds__sub_save(x, s);
    return no_content(rq);
}

/* The routes of one existing subscription (lock held). */
static enum MHD_Result sub_action(api_req_t *rq, struct ds_subs *x, sub_t *s, const char *rest,
                                  json_t *j)
{
    unsigned m = rq->method_bit;
    if (!rest[0] && (m & API_M_READ))
        return reply_sub(rq, x, s, 200);
    if (!rest[0] && m == API_M_DELETE)
        return delete_sub(rq, x, s);
    if (!strcmp(rest, "streams") && m == API_M_POST)
        return link_streams(rq, x, s, j);
    if (!strncmp(rest, "streams/", 8) && m == API_M_DELETE)
        return unlink_stream(rq, x, s, rest + 8);
    if (!strcmp(rest, "callback") && m == API_M_POST && s->type == T_WEBHOOK)
        return wake_ack(rq, x, s, j, 0);
    if (!strcmp(rest, "ack") && m == API_M_POST && s->type == T_PULL)
        return wake_ack(rq, x, s, j, 1);
    if (!strcmp(rest, "claim") && m == API_M_POST)
        return claim(rq, x, s, j);
    if (!strcmp(rest, "release") && m == API_M_POST)
        return release(rq, x, s, j);
    return reply_error(rq, 404, "NOT_FOUND", "no such subscription route", NULL);
}

static enum MHD_Result route(api_req_t *rq, struct ds_subs *x, json_t *j)
{
    const char *p = rq->param; /* after "/v1/stream/__ds/" */
    size_t n = rq->param_len;
    enum MHD_Result r;
    char id[SUB_ID_MAX + 1], rest[DS_PATH_MAX * 3 + 32];
    unsigned m = rq->method_bit;
    if (n == 9 && !memcmp(p, "jwks.json", 9) && (m & API_M_READ))
        return jwks(rq, x);
    if (split(p, n, id, rest, sizeof rest)) {
        if (manage_auth(rq, &r))
            return r;
        return api__problem(rq, REEL_ENOT_FOUND, "stream '__ds/%.*s' does not exist", (int)n, p);
    }
    int wake_route = m == API_M_POST && (!strcmp(rest, "callback") || !strcmp(rest, "ack") ||
                                         !strcmp(rest, "release"));
    if (!wake_route && manage_auth(rq, &r))
        return r;
    if (!rest[0] && m == API_M_PUT)
        return put_sub(rq, x, id, j);
    pthread_mutex_lock(&x->lock);
    sub_t *s = ds__sub_find(x, id);
    if (!s) {
        pthread_mutex_unlock(&x->lock);
        return not_found(rq, id);
    }
    r = sub_action(rq, x, s, rest, j);
    pthread_mutex_unlock(&x->lock);
    return r;
}

/* Sends the kept answer once the barrier completed. */
static enum MHD_Result after_barrier(api_req_t *rq)
{
    sreq_t *c = rq->ctx;
    if (rq->batch.err != REEL_OK) {
        json_t *e = json_pack("{s:{s:s,s:s}}", "error", "code", "UNAVAILABLE", "message",
                              reel_strerror(rq->batch.err));
        char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
        json_decref(e);
        return send_now(rq, 503, text);
    }
    char *text = c->body;
    c->body = NULL;
    return send_now(rq, c->status, text);
}

static enum MHD_Result barrier(api_req_t *rq)
{
    sreq_t *c = rq->ctx;
    c->q.op = STORE_CONSUMER_SYNC;
    store_batch_init(&rq->batch, STORE_OP_CONSUMER, NULL, 0);
    rq->batch.consumer = &c->q;
    rq->phase = SB_COMMIT;
    return api__submit(rq, &rq->batch);
}

enum MHD_Result api__ds_subs(api_req_t *rq, const char *data, size_t *size)
{
    struct ds_subs *x = rq->srv->subs;
    if (rq->phase == SB_COMMIT)
        return rq->async_done ? after_barrier(rq) : MHD_YES;
    if (!x)
        return api__problem(rq, REEL_EUNAVAILABLE, "subscriptions are not running");
    if (rq->method_bit & (API_M_POST | API_M_PUT)) {
        enum MHD_Result r;
        if (api__body_step(rq, data, size, SB_BODY, &r))
            return r;
    }
    json_t *j = NULL;
    if (rq->body.len) {
        json_error_t e;
        j = json_loadb((const char *)rq->body.data, rq->body.len, 0, &e);
        if (!json_is_object(j)) {
            json_decref(j);
            char msg[300];
            snprintf(msg, sizeof msg, "the body must be a JSON object: %s", e.text);
            return reply_error(rq, 400, "INVALID_REQUEST", msg, NULL);
        }
    }
    if (!j)
        j = json_object();
    sreq_t *c = NULL;
    if (!(rq->method_bit & API_M_READ) && !(c = calloc(1, sizeof *c))) {
        json_decref(j);
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    }
    if (c) {
        rq->ctx = c;
        rq->dispose = sreq_dispose;
    }
    enum MHD_Result r = route(rq, x, j);
    json_decref(j);
    /* (a problem queued at once, api__problem(), left no kept answer) */
    return c && c->status ? barrier(rq) : r;
}
