/* subs.c -- the Durable Streams subscriptions at /v1/stream/__ds/ (docs/durable-streams.md
 * "Subscriptions").
 *
 * A subscription links streams (an explicit list, a glob pattern, or both) and keeps, per
 * stream, the offset its consumer acknowledged. When a linked stream has messages past that
 * offset, a "wake" is opened: a generation number (fencing), a wake id and a random
 * callback token, and a snapshot of the pending streams with their tails. A webhook
 * subscription POSTs the wake to its URL, signed with Ed25519 (header Webhook-Signature:
 * t=<unix s>,kid=<kid>,ed25519=<base64url of the signature of "<t>.<body>">; the public key
 * at __ds/jwks.json); the receiver answers {"done":true} to acknowledge the snapshot at
 * once, or later calls the wake's callback URL with acks. A pull-wake subscription appends
 * the wake as a JSON message to its wake stream; a worker claims the subscription (a
 * lease of lease_ttl_ms: one worker at a time), acks, and releases. A wake not finished
 * within lease_ttl_ms is given again under the next generation; acks of an older
 * generation are refused (409 FENCED).
 *
 * State: the subscriptions live in memory under 'lock' and are written through to the
 * store's 'consumers' database (raw records "sub:<id>", a JSON text, docs/FORMAT.md
 * section 12) after every change, in order; the signing key is derived from the store's
 * secret (store_secret()), or is the raw record "key:ed25519" where a store has one (stores
 * written before the derivation). A restart reloads them; an open wake or claim is not kept (it is given
 * again under a new generation, which the stored generation keeps increasing).
 * One thread (deliver_main) opens wakes and delivers them, polling every TICK_MS; webhook
 * POSTs run on threads of their own (at most POSTS_MAX at once, then inline), never while
 * holding 'lock', so a slow receiver (5 s timeout) does not hold up the others.
 *
 * The routes are in subs_http.c, webhook deliveries in subs_webhook.c (subs_int.h).
 */
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/ds/subs_int.h"
#include "store/json.h"

/* ---- small helpers ---- */

void ds__sub_b64url(const uint8_t *p, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = t[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = t[v & 63];
    }
    out[o] = '\0';
}

void ds__sub_random_hex(char *out, size_t bytes)
{
    uint8_t r[32];
    if (bytes > sizeof r)
        bytes = sizeof r;
    if (RAND_bytes(r, (int)bytes) != 1)
        for (size_t i = 0; i < bytes; i++)
            r[i] = (uint8_t)rand();
    for (size_t i = 0; i < bytes; i++)
        sprintf(out + 2 * i, "%02x", r[i]);
}

int ds__sub_id_valid(const char *id, size_t n)
{
    return n <= SUB_ID_MAX && store_consumer_name_valid(id, n);
}

/* Constant-time comparison of a bearer token with the expected one. */
int ds__sub_token_is(const char *got, const char *want)
{
    size_t a = strlen(got), b = strlen(want);
    unsigned d = (unsigned)(a ^ b);
    for (size_t i = 0; i < a && i < b; i++)
        d |= (unsigned)(got[i] ^ want[i]);
    return d == 0 && b > 0;
}

/* Glob: '*' any bytes but '/', '**' any bytes, '?' one byte but '/'. */
static int glob_match(const char *p, const char *s)
{
    if (!*p)
        return !*s;
    if (p[0] == '*' && p[1] == '*') {
        for (const char *t = s;; t++) {
            if (glob_match(p + 2, t))
                return 1;
            if (!*t)
                return 0;
        }
    }
    if (*p == '*') {
        for (const char *t = s;; t++) {
            if (glob_match(p + 1, t))
                return 1;
            if (!*t || *t == '/')
                return 0;
        }
    }
    if (!*s || (*p == '?' ? *s == '/' : *p != *s))
        return 0;
    return glob_match(p + 1, s + 1);
}

/* The path of a stream session id "ds:<escaped>[:gen]"; -1 when it is not one. */
static int path_of_sid(const char *id, size_t n, char *out)
{
    if (n < 3 || memcmp(id, "ds:", 3))
        return -1;
    size_t o = 0;
    for (size_t i = 3; i < n && id[i] != ':'; i++) {
        if (o >= DS_PATH_MAX)
            return -1;
        if (id[i] == '~' && i + 2 < n) {
            unsigned v;
            if (sscanf(id + i + 1, "%2X", &v) != 1)
                return -1;
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = id[i];
        }
    }
    out[o] = '\0';
    return 0;
}

/* ---- the subscriptions' streams ---- */

sub_stream_t *ds__sub_stream_of(sub_t *s, const char *path, int create)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->streams[i].path, path))
            return &s->streams[i];
    if (!create || s->n >= SUB_STREAMS_MAX || strlen(path) > DS_PATH_MAX)
        return NULL;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        sub_stream_t *p = realloc(s->streams, cap * sizeof *p);
        if (!p)
            return NULL;
        s->streams = p;
        s->cap = cap;
    }
    sub_stream_t *x = &s->streams[s->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->path, sizeof x->path, "%s", path);
    return x;
}

struct scan_arg {
    sub_t *s;
    const char *pattern;
};

static int scan_one(void *arg, const store_session_t *rec)
{
    struct scan_arg *a = arg;
    char path[DS_PATH_MAX + 1];
    /* A stream joins when it is written after the subscription was made: a new pattern
     * subscription does not wake for the whole history of every stream it matches. */
    if (rec->status == STORE_DELETED || rec->updated_ms < (int64_t)a->s->created_ms ||
        path_of_sid(rec->id, rec->id_len, path) || !glob_match(a->pattern, path) ||
        !strcmp(path, a->s->wake_stream)) /* its own wakes would wake it again, forever */
        return 0;
    ds__sub_stream_of(a->s, path, 1);
    return 0;
}

/* Tracks every existing stream the pattern matches (read 'r'). */
void ds__sub_find_pattern_streams(api_server_t *srv, store_read_t *r, sub_t *s)
{
    if (!s->pattern[0])
        return;
    char lit[DS_PATH_MAX + 1], prefix[STORE_SESSION_ID_MAX + 1];
    size_t n = strcspn(s->pattern, "*?"), plen;
    memcpy(lit, s->pattern, n);
    lit[n] = '\0';
    if (ds__base_id(lit, n, prefix, &plen))
        return;
    store_list_t q;
    memset(&q, 0, sizeof q);
    q.prefix = prefix;
    q.prefix_len = plen;
    q.status = -1;
    struct scan_arg a = {s, s->pattern};
    int more = 0;
    store_sessions_query(r, &q, SUB_STREAMS_MAX, SUB_STREAMS_MAX * 4, scan_one, &a, &more);
}

/* The tail of a linked stream, 0 when it does not exist (now). */
uint64_t ds__sub_tail_of(api_server_t *srv, store_read_t *r, const char *path)
{
    uint64_t tail = 0;
    int closed = 0;
    return ds__stream_tail(srv, r, path, strlen(path), &tail, &closed) == 1 ? tail : 0;
}

/* ---- persistence ---- */

struct put_job {
    store_batch_t b;
    store_consumer_req_t q;
    char *text;
};

static void put_done(store_batch_t *b, void *arg)
{
    struct put_job *j = arg;
    free(j->text);
    free(j);
}

/* Writes raw record 'name' (text NULL: deletes it); in submission order, not waited for. */
static void put_raw(api_server_t *srv, const char *name, char *text)
{
    struct put_job *j = calloc(1, sizeof *j);
    if (!j) {
        free(text);
        return;
    }
    j->text = text;
    store_batch_init(&j->b, STORE_OP_CONSUMER, NULL, 0);
    j->q.op = STORE_CONSUMER_PUT_RAW;
    snprintf(j->q.rec.name, sizeof j->q.rec.name, "%s", name);
    j->q.rec.name_len = strlen(j->q.rec.name);
    j->q.value = (const uint8_t *)text;
    j->q.value_len = text ? strlen(text) : 0;
    j->b.consumer = &j->q;
    j->b.done = put_done;
    j->b.done_arg = j;
    if (store_submit(srv->store, &j->b) != REEL_OK)
        put_done(&j->b, j);
}

static json_t *sub_json_stored(const sub_t *s)
{
    json_t *st = json_array();
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(st, json_pack("{s:s,s:b,s:I}", "path", s->streams[i].path,
                                            "explicit", s->streams[i].explicit_link, "acked",
                                            (json_int_t)s->streams[i].acked));
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:o}", "type",
                     s->type == T_WEBHOOK ? "webhook" : "pull-wake", "pattern", s->pattern,
                     "url", s->url, "wake_stream", s->wake_stream, "description", s->description,
                     "base", s->base, "lease_ttl_ms", (json_int_t)s->ttl_ms, "created",
                     (json_int_t)s->created_ms, "generation", (json_int_t)s->generation,
                     "streams", st);
}

/* Called with 'lock' held after every change of 's'. */
void ds__sub_save(struct ds_subs *x, const sub_t *s)
{
    x->kick = 1;
    char name[8 + SUB_ID_MAX];
    snprintf(name, sizeof name, "sub:%s", s->id);
    json_t *j = sub_json_stored(s);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text)
        put_raw(x->srv, name, text);
}

void ds__sub_unsave(struct ds_subs *x, const char *id)
{
    char name[8 + SUB_ID_MAX];
    snprintf(name, sizeof name, "sub:%s", id);
    put_raw(x->srv, name, NULL);
}

void ds__sub_copy_str(char *dst, size_t cap, json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, cap, "%s", s ? s : "");
}

static sub_t *sub_from_stored(const char *id, size_t id_len, json_t *j)
{
    sub_t *s = calloc(1, sizeof *s);
    if (!s || id_len > SUB_ID_MAX)
        return free(s), NULL;
    memcpy(s->id, id, id_len);
    const char *type = json_string_value(json_object_get(j, "type"));
    s->type = type && !strcmp(type, "webhook") ? T_WEBHOOK : T_PULL;
    ds__sub_copy_str(s->pattern, sizeof s->pattern, json_object_get(j, "pattern"));
    ds__sub_copy_str(s->url, sizeof s->url, json_object_get(j, "url"));
    ds__sub_copy_str(s->wake_stream, sizeof s->wake_stream, json_object_get(j, "wake_stream"));
    ds__sub_copy_str(s->description, sizeof s->description, json_object_get(j, "description"));
    ds__sub_copy_str(s->base, sizeof s->base, json_object_get(j, "base"));
    s->ttl_ms = (uint64_t)json_integer_value(json_object_get(j, "lease_ttl_ms"));
    s->created_ms = (uint64_t)json_integer_value(json_object_get(j, "created"));
    s->generation = (uint64_t)json_integer_value(json_object_get(j, "generation"));
    json_t *st = json_object_get(j, "streams"), *v;
    size_t i;
    json_array_foreach(st, i, v) {
        const char *p = json_string_value(json_object_get(v, "path"));
        sub_stream_t *x = p ? ds__sub_stream_of(s, p, 1) : NULL;
        if (x) {
            x->explicit_link = json_is_true(json_object_get(v, "explicit"));
            x->acked = (uint64_t)json_integer_value(json_object_get(v, "acked"));
        }
    }
    if (s->ttl_ms < SUB_TTL_MIN || s->ttl_ms > SUB_TTL_MAX)
        s->ttl_ms = SUB_TTL_DEFAULT;
    return s;
}

struct load_arg {
    struct ds_subs *x;
    const uint8_t *key;
    size_t key_len;
};

static int load_one(void *arg, const char *name, size_t len, const uint8_t *val, size_t vlen)
{
    struct load_arg *a = arg;
    if (len == 11 && !memcmp(name, "key:ed25519", 11)) {
        a->key = val;
        a->key_len = vlen;
        return 0;
    }
    if (len <= 4 || memcmp(name, "sub:", 4))
        return 0;
    json_t *j = json_loadb((const char *)val, vlen, 0, NULL);
    sub_t *s = j ? sub_from_stored(name + 4, len - 4, j) : NULL;
    json_decref(j);
    if (s) {
        s->next = a->x->list;
        a->x->list = s;
    }
    return 0;
}

/* Loads the subscriptions and the signing key (a stored one, else derived from the store's
 * secret). */
static int load(struct ds_subs *x)
{
    store_read_t r;
    int rc = store_read_begin(x->srv->store, &r);
    if (rc != REEL_OK)
        return rc;
    struct load_arg a = {x, NULL, 0};
    rc = store_consumer_raw_list(&r, load_one, &a);
    if (rc == REEL_OK && a.key_len == 32)
        x->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, a.key, 32);
    store_read_end(&r);
    if (rc != REEL_OK)
        return rc;
    if (!x->key) {
        /* No key stored: derived from the store's own secret, so it needs no write (a store
         * that never uses subscriptions stays as it was) and is the same after a restart
         * or on a backup. */
        uint8_t secret[STORE_SECRET_LEN], seed[32];
        unsigned slen = 0;
        if (store_secret(x->srv->store, secret) != REEL_OK)
            return REEL_EUNAVAILABLE; /* a read-only store of an older format */
        if (!HMAC(EVP_sha256(), secret, sizeof secret, (const uint8_t *)"reel ds subscriptions: ed25519",
                  30, seed, &slen) || slen != 32 ||
            !(x->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32)))
            return REEL_ENOMEM;
    }
    uint8_t pub[32], h[32];
    size_t plen = sizeof pub;
    if (EVP_PKEY_get_raw_public_key(x->key, pub, &plen) != 1 || plen != 32)
        return REEL_ENOMEM;
    ds__sub_b64url(pub, 32, x->jwk_x);
    SHA256(pub, 32, h);
    char hex[17];
    for (int i = 0; i < 8; i++)
        sprintf(hex + 2 * i, "%02x", h[i]);
    snprintf(x->kid, sizeof x->kid, "ds_%s", hex);
    return REEL_OK;
}

static json_t *offset_j(uint64_t seq)
{
    char o[DS_OFFSET_LEN + 1];
    ds__offset(seq, o);
    return json_string(o);
}

/* One stream's state: path, link type, offsets, pending. */
json_t *ds__sub_stream_j(const sub_stream_t *st, uint64_t tail)
{
    return json_pack("{s:s,s:s,s:o,s:o,s:b}", "path", st->path, "link_type",
                     st->explicit_link ? "explicit" : "pattern", "acked_offset",
                     offset_j(st->acked), "tail_offset", offset_j(tail), "has_pending",
                     tail > st->acked);
}

sub_t *ds__sub_find(struct ds_subs *x, const char *id)
{
    for (sub_t *s = x->list; s; s = s->next)
        if (!strcmp(s->id, id))
            return s;
    return NULL;
}

void ds__sub_free(sub_t *s)
{
    if (s) {
        free(s->streams);
        free(s);
    }
}

/* ---- wakes ---- */

/* The pending streams into the wake's snapshot; 1 when any (lock held, read 'r'). */
int ds__sub_snapshot(struct ds_subs *x, sub_t *s, store_read_t *r)
{
    ds__sub_find_pattern_streams(x->srv, r, s);
    int any = 0;
    for (size_t i = 0; i < s->n; i++) {
        uint64_t tail = strcmp(s->streams[i].path, s->wake_stream)
                            ? ds__sub_tail_of(x->srv, r, s->streams[i].path) : 0; /* never itself */
        s->streams[i].snap = tail > s->streams[i].acked ? tail : 0;
        any |= s->streams[i].snap != 0;
    }
    return any;
}

void ds__sub_open_wake(struct ds_subs *x, sub_t *s, uint64_t ttl)
{
    s->generation++;
    s->wake_open = 1;
    s->wake_until = api__now_ms() + ttl;
    char r[17];
    ds__sub_random_hex(r, 8);
    snprintf(s->wake_id, sizeof s->wake_id, "w_%llu_%s", (unsigned long long)s->generation, r);
    ds__sub_random_hex(s->wake_token, 20);
    ds__sub_save(x, s);
}

/* The wake as notified or claimed: ids and the snapshot's streams. */
json_t *ds__sub_wake_j(const struct ds_subs *x, const sub_t *s, const char *token)
{
    json_t *st = json_array();
    for (size_t i = 0; i < s->n; i++)
        if (s->streams[i].snap)
            json_array_append_new(st, ds__sub_stream_j(&s->streams[i], s->streams[i].snap));
    char cb[600];
    snprintf(cb, sizeof cb, "%s/v1/stream/__ds/subscriptions/%s/callback", s->base, s->id);
    json_t *j = json_pack("{s:s,s:s,s:I,s:o}", "subscription_id", s->id, "wake_id", s->wake_id,
                          "generation", (json_int_t)s->generation, "streams", st);
    if (j && s->type == T_WEBHOOK) {
        json_object_set_new(j, "callback_url", json_string(cb));
        json_object_set_new(j, "callback_token", json_string(token));
    } else if (j && token) {
        json_object_set_new(j, "token", json_string(token));
    }
    return j;
}

/* Closes the wake: every stream of the snapshot acknowledged up to its snapshot tail. */
static void ack_snapshot(struct ds_subs *x, sub_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->streams[i].snap > s->streams[i].acked)
            s->streams[i].acked = s->streams[i].snap;
        s->streams[i].snap = 0;
    }
    s->wake_open = 0;
    ds__sub_save(x, s);
}

struct job {
    char id[SUB_ID_MAX + 1];
    int type;
    uint64_t generation;
    char url[URL_MAX + 1];
    char wake_stream[DS_PATH_MAX + 1];
    char *body;
    struct job *next;
};

/* One tick: opens the wakes due (lock held) and lists their deliveries. */
static struct job *due(struct ds_subs *x)
{
    struct job *jobs = NULL;
    uint64_t now = api__now_ms(), gen = api__gen(x->srv);
    int timers = 0;
    for (sub_t *s = x->list; s; s = s->next)
        timers |= (s->wake_open && !s->delivering && now >= s->wake_until) ||
                  (s->holder[0] && now >= s->claim_until);
    /* Idle costs nothing: scan only after a commit (of any process: the watcher moves the
     * generation too), a change here, or a lease that ran out. */
    if (!x->list || (gen == x->seen_gen && !x->kick && !timers))
        return NULL;
    x->seen_gen = gen;
    x->kick = 0;
    store_read_t r;
    if (store_read_begin(x->srv->store, &r) != REEL_OK)
        return NULL;
    for (sub_t *s = x->list; s; s = s->next) {
        if (s->holder[0] && now >= s->claim_until)
            s->holder[0] = '\0'; /* the claim's lease ran out */
        if (s->wake_open && !s->delivering && now >= s->wake_until && !s->holder[0])
            s->wake_open = 0; /* not finished in time: given again, next generation */
        if (s->wake_open || s->delivering || s->holder[0] || !ds__sub_snapshot(x, s, &r))
            continue;
        ds__sub_open_wake(x, s, s->ttl_ms);
        struct job *j = calloc(1, sizeof *j);
        /* a webhook's receiver gets the callback token; a wake stream's readers never a
         * token (a worker gets the claim's) */
        json_t *w = j ? ds__sub_wake_j(x, s, s->type == T_WEBHOOK ? s->wake_token : NULL) : NULL;
        if (!j || !w || !(j->body = json_dumps(w, JSON_COMPACT))) {
            json_decref(w);
            free(j);
            continue;
        }
        json_decref(w);
        snprintf(j->id, sizeof j->id, "%s", s->id);
        j->type = s->type;
        j->generation = s->generation;
        snprintf(j->url, sizeof j->url, "%s", s->url);
        snprintf(j->wake_stream, sizeof j->wake_stream, "%s", s->wake_stream);
        s->delivering = 1;
        j->next = jobs;
        jobs = j;
    }
    store_read_end(&r);
    return jobs;
}

static void deliver(struct ds_subs *x, struct job *j)
{
    int done = 0;
    if (j->type == T_WEBHOOK)
        done = ds__sub_webhook_post(x, j->url, j->body);
    else
        ds__append_json(x->srv, j->wake_stream, strlen(j->wake_stream), j->body, strlen(j->body));
    pthread_mutex_lock(&x->lock);
    sub_t *s = ds__sub_find(x, j->id);
    if (s) {
        s->delivering = 0;
        if (done == 1 && s->wake_open && s->generation == j->generation)
            ack_snapshot(x, s);
    }
    pthread_mutex_unlock(&x->lock);
}

static void job_free(struct job *j)
{
    free(j->body);
    free(j);
}

struct post {
    struct ds_subs *x;
    struct job *j;
};

static void *post_main(void *arg)
{
    struct post *p = arg;
    struct ds_subs *x = p->x;
    deliver(x, p->j);
    job_free(p->j);
    free(p);
    pthread_mutex_lock(&x->lock);
    if (--x->posting == 0)
        pthread_cond_broadcast(&x->idle);
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

/* A webhook POST on a thread of its own when there is room, else here. */
static void run_job(struct ds_subs *x, struct job *j)
{
    struct post *p = j->type == T_WEBHOOK ? malloc(sizeof *p) : NULL;
    pthread_attr_t at;
    pthread_t t;
    int spawned = 0;
    if (p && pthread_attr_init(&at) == 0) {
        *p = (struct post){x, j};
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&x->lock);
        if (x->posting < POSTS_MAX && pthread_create(&t, &at, post_main, p) == 0) {
            x->posting++;
            spawned = 1;
        }
        pthread_mutex_unlock(&x->lock);
        pthread_attr_destroy(&at);
    }
    if (spawned)
        return;
    free(p);
    deliver(x, j);
    job_free(j);
}

static void *deliver_main(void *arg)
{
    struct ds_subs *x = arg;
    pthread_mutex_lock(&x->lock);
    while (!x->stop) {
        struct job *jobs = due(x);
        pthread_mutex_unlock(&x->lock);
        while (jobs) {
            struct job *j = jobs;
            jobs = j->next;
            run_job(x, j);
        }
        pthread_mutex_lock(&x->lock);
        if (x->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&x->cv, &x->lock, &ts);
    }
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

/* ---- start, stop ---- */

struct ds_subs *api__ds_subs_start(api_server_t *srv)
{
    struct ds_subs *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->srv = srv;
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->cv, NULL);
    pthread_cond_init(&x->idle, NULL);
    if (load(x) != REEL_OK || pthread_create(&x->thread, NULL, deliver_main, x)) {
        api__ds_subs_stop(x);
        api__ds_subs_free(x);
        return NULL;
    }
    x->started = 1;
    return x;
}

void api__ds_subs_stop(struct ds_subs *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->lock);
    x->stop = 1;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->lock);
    if (x->started)
        pthread_join(x->thread, NULL);
    pthread_mutex_lock(&x->lock); /* the POSTs in flight end within their timeout */
    while (x->posting > 0)
        pthread_cond_wait(&x->idle, &x->lock);
    pthread_mutex_unlock(&x->lock);
}

void api__ds_subs_free(struct ds_subs *x)
{
    if (!x)
        return;
    while (x->list) {
        sub_t *s = x->list;
        x->list = s->next;
        ds__sub_free(s);
    }
    EVP_PKEY_free(x->key);
    pthread_mutex_destroy(&x->lock);
    pthread_cond_destroy(&x->cv);
    pthread_cond_destroy(&x->idle);
    free(x);
}
