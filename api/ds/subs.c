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
 * section 12) after every change, in order; the signing key is the raw record
 * "key:ed25519". A restart reloads them; an open wake or claim is not kept (it is given
 * again under a new generation, which the stored generation keeps increasing).
 * One thread (deliver_main) opens wakes and delivers them, polling every TICK_MS; webhook
 * POSTs are made there with libcurl, never while holding 'lock'.
 *
 * Errors of these routes are the protocol's {"error":{"code","message"}} objects.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/ds/ds_int.h"
#include "store/json.h"

#define TICK_MS 50
#define SUB_ID_MAX 120          /* the raw key "sub:<id>" stays within the name limit */
#define SUB_STREAMS_MAX 1000    /* streams linked or tracked per subscription */
#define SUB_TTL_DEFAULT 30000
#define SUB_TTL_MIN 100
#define SUB_TTL_MAX 3600000
#define WEBHOOK_TIMEOUT_MS 5000
#define URL_MAX 2048
#define TEXT_MAX 1024

enum { T_WEBHOOK = 1, T_PULL = 2 };

typedef struct sub_stream {
    char path[DS_PATH_MAX + 1];
    int explicit_link; /* listed by the subscription (else found by its pattern) */
    uint64_t acked;    /* sequence of the acknowledged offset */
    uint64_t snap;     /* the open wake's tail for this stream, 0 = not in the wake */
} sub_stream_t;

typedef struct sub {
    char id[SUB_ID_MAX + 1];
    int type;
    char pattern[DS_PATH_MAX + 1]; /* "" = none */
    char url[URL_MAX + 1];
    char wake_stream[DS_PATH_MAX + 1];
    char description[TEXT_MAX + 1];
    char base[256]; /* http://host of the creating request: callback and JWKS URLs */
    uint64_t ttl_ms, created_ms, generation;
    sub_stream_t *streams;
    size_t n, cap;
    /* the open wake (not stored) */
    int wake_open, delivering;
    char wake_id[48], wake_token[48];
    uint64_t wake_until;
    /* the claim (pull-wake) */
    char holder[STORE_CONSUMER_OWNER_MAX + 1];
    char claim_token[48];
    uint64_t claim_until;
    struct sub *next;
} sub_t;

struct ds_subs {
    api_server_t *srv;
    pthread_mutex_t lock;
    sub_t *list;
    EVP_PKEY *key;
    char kid[40];
    char jwk_x[64]; /* base64url of the public key */
    pthread_t thread;
    int started, stop;
    uint64_t seen_gen; /* the commit generation (api__gen) the last scan saw */
    int kick;          /* a change since the last scan: scan again even without a commit */
    pthread_cond_t cv;
};

/* ---- small helpers ---- */

static void b64url(const uint8_t *p, size_t n, char *out)
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

static void random_hex(char *out, size_t bytes)
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

static int id_valid(const char *id, size_t n)
{
    return n <= SUB_ID_MAX && store_consumer_name_valid(id, n);
}

/* Constant-time comparison of a bearer token with the expected one. */
static int token_is(const char *got, const char *want)
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

static sub_stream_t *stream_of(sub_t *s, const char *path, int create)
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
    stream_of(a->s, path, 1);
    return 0;
}

/* Tracks every existing stream the pattern matches (read 'r'). */
static void find_pattern_streams(api_server_t *srv, store_read_t *r, sub_t *s)
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
static uint64_t tail_of(api_server_t *srv, store_read_t *r, const char *path)
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
static void save(struct ds_subs *x, const sub_t *s)
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

static void unsave(struct ds_subs *x, const char *id)
{
    char name[8 + SUB_ID_MAX];
    snprintf(name, sizeof name, "sub:%s", id);
    put_raw(x->srv, name, NULL);
}

static void copy_str(char *dst, size_t cap, json_t *v)
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
    copy_str(s->pattern, sizeof s->pattern, json_object_get(j, "pattern"));
    copy_str(s->url, sizeof s->url, json_object_get(j, "url"));
    copy_str(s->wake_stream, sizeof s->wake_stream, json_object_get(j, "wake_stream"));
    copy_str(s->description, sizeof s->description, json_object_get(j, "description"));
    copy_str(s->base, sizeof s->base, json_object_get(j, "base"));
    s->ttl_ms = (uint64_t)json_integer_value(json_object_get(j, "lease_ttl_ms"));
    s->created_ms = (uint64_t)json_integer_value(json_object_get(j, "created"));
    s->generation = (uint64_t)json_integer_value(json_object_get(j, "generation"));
    json_t *st = json_object_get(j, "streams"), *v;
    size_t i;
    json_array_foreach(st, i, v) {
        const char *p = json_string_value(json_object_get(v, "path"));
        sub_stream_t *x = p ? stream_of(s, p, 1) : NULL;
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

/* Loads the subscriptions and the signing key (made and stored when there is none). */
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
        uint8_t seed[32];
        if (RAND_bytes(seed, sizeof seed) != 1 ||
            !(x->key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32)))
            return REEL_ENOMEM;
        char *hex = malloc(65);
        if (!hex)
            return REEL_ENOMEM;
        memcpy(hex, seed, 32); /* stored as the 32 raw bytes */
        hex[32] = 0;
        /* put_raw takes a NUL-terminated text; the seed may hold NUL bytes, so store it
         * through a request of its own. */
        struct put_job *j = calloc(1, sizeof *j);
        if (!j)
            return free(hex), REEL_ENOMEM;
        j->text = hex;
        store_batch_init(&j->b, STORE_OP_CONSUMER, NULL, 0);
        j->q.op = STORE_CONSUMER_PUT_RAW;
        memcpy(j->q.rec.name, "key:ed25519", 11);
        j->q.rec.name_len = 11;
        j->q.value = (const uint8_t *)hex;
        j->q.value_len = 32;
        j->b.consumer = &j->q;
        int st = store_append(x->srv->store, &j->b);
        put_done(&j->b, j);
        if (st != REEL_OK && st != REEL_EUNAVAILABLE)
            return st;
    }
    uint8_t pub[32], h[32];
    size_t plen = sizeof pub;
    if (EVP_PKEY_get_raw_public_key(x->key, pub, &plen) != 1 || plen != 32)
        return REEL_ENOMEM;
    b64url(pub, 32, x->jwk_x);
    SHA256(pub, 32, h);
    char hex[17];
    for (int i = 0; i < 8; i++)
        sprintf(hex + 2 * i, "%02x", h[i]);
    snprintf(x->kid, sizeof x->kid, "ds_%s", hex);
    return REEL_OK;
}

/* ---- JSON answers ---- */

static enum MHD_Result reply_j(api_req_t *rq, int status, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    store_buf_t b = STORE_BUF_INIT;
    store_buf_puts(&b, text);
    free(text);
    return api__reply_json(rq, status, &b);
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

static json_t *offset_j(uint64_t seq)
{
    char o[DS_OFFSET_LEN + 1];
    ds__offset(seq, o);
    return json_string(o);
}

/* One stream's state: path, link type, offsets, pending. */
static json_t *stream_j(const sub_stream_t *st, uint64_t tail)
{
    return json_pack("{s:s,s:s,s:o,s:o,s:b}", "path", st->path, "link_type",
                     st->explicit_link ? "explicit" : "pattern", "acked_offset",
                     offset_j(st->acked), "tail_offset", offset_j(tail), "has_pending",
                     tail > st->acked);
}

static void jwks_url(const struct ds_subs *x, const sub_t *s, char *out, size_t cap)
{
    (void)x;
    snprintf(out, cap, "%s/v1/stream/__ds/jwks.json", s->base);
}

/* The subscription as GET answers it (lock held; streams read on 'r'). */
static json_t *sub_j(struct ds_subs *x, sub_t *s, store_read_t *r)
{
    find_pattern_streams(x->srv, r, s);
    json_t *st = json_array();
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(st, stream_j(&s->streams[i], tail_of(x->srv, r, s->streams[i].path)));
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

static sub_t *find(struct ds_subs *x, const char *id)
{
    for (sub_t *s = x->list; s; s = s->next)
        if (!strcmp(s->id, id))
            return s;
    return NULL;
}

static void sub_free(sub_t *s)
{
    if (s) {
        free(s->streams);
        free(s);
    }
}

/* ---- webhook URLs ---- */

/* 1 when connecting to 'sa' is allowed: not a private, link-local or unspecified address;
 * loopback only while the server itself listens on loopback only (a local setup). */
static int addr_allowed(const api_server_t *srv, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        if ((a >> 24) == 127)
            return srv->loopback;
        return !((a >> 24) == 10 || (a >> 24) == 0 || (a >> 20) == (172u << 4 | 1) ||
                 (a >> 16) == (192u << 8 | 168) || (a >> 16) == (169u << 8 | 254) ||
                 (a >> 22) == (100u << 2 | 1) || a >= 0xe0000000u);
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t lo[16] = {[15] = 1}, any[16] = {0};
        if (!memcmp(b, lo, 16))
            return srv->loopback;
        if (!memcmp(b, any, 16) || (b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||
            b[0] == 0xff)
            return 0;
        if (!memcmp(b, any, 10) && b[10] == 0xff && b[11] == 0xff) { /* IPv4-mapped */
            struct sockaddr_in v4 = {.sin_family = AF_INET};
            memcpy(&v4.sin_addr, b + 12, 4);
            return addr_allowed(srv, (struct sockaddr *)&v4);
        }
        return 1;
    }
    return 0;
}

/* 0 when 'url' is an http(s) URL whose host (when a literal address) is allowed; names are
 * checked again at each delivery, on the address connected to (DNS may change). */
static int url_allowed(const api_server_t *srv, const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
             (!strcasecmp(scheme, "http") || !strcasecmp(scheme, "https"));
    if (ok) {
        char h[256];
        snprintf(h, sizeof h, "%s", host);
        size_t n = strlen(h);
        if (n > 2 && h[0] == '[' && h[n - 1] == ']') {
            memmove(h, h + 1, n - 2);
            h[n - 2] = '\0';
        }
        struct sockaddr_in v4 = {.sin_family = AF_INET};
        struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
        if (inet_pton(AF_INET, h, &v4.sin_addr) == 1)
            ok = addr_allowed(srv, (struct sockaddr *)&v4);
        else if (inet_pton(AF_INET6, h, &v6.sin6_addr) == 1)
            ok = addr_allowed(srv, (struct sockaddr *)&v6);
        else if (!strcasecmp(h, "localhost") || strstr(h, ".localhost"))
            ok = srv->loopback;
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

static curl_socket_t open_checked(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    if (purpose != CURLSOCKTYPE_IPCXN || !addr_allowed(arg, &a->addr))
        return CURL_SOCKET_BAD;
    return socket(a->family, a->socktype, a->protocol);
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    store_buf_t *b = arg;
    if (b->len < 65536)
        store_buf_put(b, p, size * n);
    return size * n;
}

/* POSTs 'body' signed; 1 when the receiver answered 2xx with {"done":true}, 0 on another
 * 2xx, -1 when the delivery failed. */
static int webhook_post(struct ds_subs *x, const char *url, const char *body)
{
    char ts[24], hdr[256];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL));
    size_t mlen = strlen(ts) + 1 + strlen(body);
    uint8_t *msg = malloc(mlen + 1), sig[64];
    size_t slen = sizeof sig;
    if (!msg)
        return -1;
    snprintf((char *)msg, mlen + 1, "%s.%s", ts, body);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, x->key) == 1 &&
             EVP_DigestSign(ctx, sig, &slen, msg, mlen) == 1;
    EVP_MD_CTX_free(ctx);
    free(msg);
    if (!ok)
        return -1;
    char sig64[100];
    b64url(sig, slen, sig64);
    snprintf(hdr, sizeof hdr, "Webhook-Signature: t=%s,kid=%s,ed25519=%s", ts, x->kid, sig64);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, hdr);
    store_buf_t resp = STORE_BUF_INIT;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)WEBHOOK_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_checked);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, x->srv);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    long status = 0;
    int rc = curl_easy_perform(c) == CURLE_OK ? 0 : -1;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc == 0 && (status < 200 || status > 299))
        rc = -1;
    if (rc == 0) {
        json_t *j = json_loadb((const char *)resp.data, resp.len, 0, NULL);
        rc = json_is_true(json_object_get(j, "done")) ? 1 : 0;
        json_decref(j);
    }
    store_buf_release(&resp);
    return rc;
}

/* ---- wakes ---- */

/* The pending streams into the wake's snapshot; 1 when any (lock held, read 'r'). */
static int snapshot(struct ds_subs *x, sub_t *s, store_read_t *r)
{
    find_pattern_streams(x->srv, r, s);
    int any = 0;
    for (size_t i = 0; i < s->n; i++) {
        uint64_t tail = strcmp(s->streams[i].path, s->wake_stream)
                            ? tail_of(x->srv, r, s->streams[i].path) : 0; /* never itself */
        s->streams[i].snap = tail > s->streams[i].acked ? tail : 0;
        any |= s->streams[i].snap != 0;
    }
    return any;
}

static void open_wake(struct ds_subs *x, sub_t *s, uint64_t ttl)
{
    s->generation++;
    s->wake_open = 1;
    s->wake_until = api__now_ms() + ttl;
    char r[17];
    random_hex(r, 8);
    snprintf(s->wake_id, sizeof s->wake_id, "w_%llu_%s", (unsigned long long)s->generation, r);
    random_hex(s->wake_token, 20);
    save(x, s);
}

/* The wake as notified or claimed: ids and the snapshot's streams. */
static json_t *wake_j(const struct ds_subs *x, const sub_t *s, const char *token)
{
    json_t *st = json_array();
    for (size_t i = 0; i < s->n; i++)
        if (s->streams[i].snap)
            json_array_append_new(st, stream_j(&s->streams[i], s->streams[i].snap));
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
    save(x, s);
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
        if (s->wake_open || s->delivering || s->holder[0] || !snapshot(x, s, &r))
            continue;
        open_wake(x, s, s->ttl_ms);
        struct job *j = calloc(1, sizeof *j);
        /* a webhook's receiver gets the callback token; a wake stream's readers never a
         * token (a worker gets the claim's) */
        json_t *w = j ? wake_j(x, s, s->type == T_WEBHOOK ? s->wake_token : NULL) : NULL;
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
        done = webhook_post(x, j->url, j->body);
    else
        ds__append_json(x->srv, j->wake_stream, strlen(j->wake_stream), j->body, strlen(j->body));
    pthread_mutex_lock(&x->lock);
    sub_t *s = find(x, j->id);
    if (s) {
        s->delivering = 0;
        if (done == 1 && s->wake_open && s->generation == j->generation)
            ack_snapshot(x, s);
    }
    pthread_mutex_unlock(&x->lock);
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
            deliver(x, j);
            free(j->body);
            free(j);
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
    if (load(x) != REEL_OK || pthread_create(&x->thread, NULL, deliver_main, x)) {
        api__ds_subs_stop(x);
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
    while (x->list) {
        sub_t *s = x->list;
        x->list = s->next;
        sub_free(s);
    }
    EVP_PKEY_free(x->key);
    pthread_mutex_destroy(&x->lock);
    pthread_cond_destroy(&x->cv);
    free(x);
}

/* ---- the routes ---- */

enum { SB_BODY = API_PHASE_OWN };

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
    copy_str(s->pattern, sizeof s->pattern, pat);
    if (streams && !json_is_array(streams))
        return snprintf(msg, cap, "'streams' must be an array of stream paths"), "INVALID_REQUEST";
    size_t i;
    json_t *v;
    json_array_foreach(streams, i, v) {
        const char *p = json_string_value(v);
        sub_stream_t *st = p && *p ? stream_of(s, p, 1) : NULL;
        if (!st)
            return snprintf(msg, cap, "'streams' must hold stream paths (at most %d)",
                            SUB_STREAMS_MAX), "INVALID_REQUEST";
        st->explicit_link = 1;
    }
    if (!s->pattern[0] && !s->n)
        return snprintf(msg, cap, "a subscription needs a 'pattern' or 'streams'"), "INVALID_REQUEST";
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
    copy_str(s->description, sizeof s->description, d);
    if (s->type == T_WEBHOOK) {
        const char *url = json_string_value(json_object_get(json_object_get(j, "webhook"), "url"));
        if (!url || strlen(url) > URL_MAX)
            return snprintf(msg, cap, "a webhook subscription needs 'webhook': {\"url\": ...}"),
                   "INVALID_REQUEST";
        if (url_allowed(rq->srv, url))
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
        sub_free(n);
        return reply_error(rq, 400, code, msg, NULL);
    }
    request_base(rq, n->base, sizeof n->base);
    pthread_mutex_lock(&x->lock);
    sub_t *old = find(x, id);
    enum MHD_Result r;
    if (old) {
        int same = same_config(old, n);
        sub_free(n);
        r = same ? reply_sub(rq, x, old, 200)
                 : reply_error(rq, 409, "SUBSCRIPTION_EXISTS",
                               "a subscription with this id exists with another configuration",
                               NULL);
    } else {
        n->created_ms = store_wall_ms();
        n->next = x->list;
        x->list = n;
        save(x, n);
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

/* Applies 'acks' ([{stream, offset}]) to the wake of 's'; -1 for a bad one. */
static int apply_acks(sub_t *s, json_t *acks)
{
    size_t i;
    json_t *v;
    json_array_foreach(acks, i, v) {
        const char *path = json_string_value(json_object_get(v, "stream"));
        const char *off = json_string_value(json_object_get(v, "offset"));
        uint64_t seq;
        sub_stream_t *st = path ? stream_of(s, path, 0) : NULL;
        if (!st || !off || ds__offset_parse(off, &seq))
            return -1;
        if (seq > st->acked)
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
    find_pattern_streams(x->srv, &r, s);
    for (size_t i = 0; i < s->n && !any; i++)
        any = tail_of(x->srv, &r, s->streams[i].path) > s->streams[i].acked;
    store_read_end(&r);
    return any;
}

/* callback (webhook) and ack (pull-wake): acks of the current wake, fenced by generation. */
static enum MHD_Result wake_ack(api_req_t *rq, struct ds_subs *x, sub_t *s, json_t *j, int pull)
{
    char tok[128];
    bearer(rq, tok, sizeof tok);
    const char *want = pull ? s->claim_token : s->wake_token;
    int live = pull ? s->holder[0] && api__now_ms() < s->claim_until : s->wake_open;
    if (!live || !token_is(tok, want))
        return reply_error(rq, live ? 401 : 409, live ? "UNAUTHORIZED" : "FENCED",
                           live ? "the bearer token is not this wake's token"
                                : "this wake is finished or was given again under a newer generation",
                           NULL);
    const char *wid = json_string_value(json_object_get(j, "wake_id"));
    json_t *gen = json_object_get(j, "generation");
    if (!wid || strcmp(wid, s->wake_id) || !json_is_integer(gen) ||
        (uint64_t)json_integer_value(gen) != s->generation || !s->wake_open)
        return reply_error(rq, 409, "FENCED", "the wake_id or generation is not the current wake's",
                           NULL);
    json_t *acks = json_object_get(j, "acks");
    if (acks && (!json_is_array(acks) || apply_acks(s, acks)))
        return reply_error(rq, 400, "INVALID_REQUEST",
                           "'acks' must be [{\"stream\": a linked path, \"offset\": an offset}]",
                           NULL);
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
    save(x, s);
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
    snapshot(x, s, &r);
    store_read_end(&r);
    if (!s->wake_open || s->delivering)
        open_wake(x, s, s->ttl_ms);
    snprintf(s->holder, sizeof s->holder, "%s", worker);
    random_hex(s->claim_token, 20);
    s->claim_until = now + s->ttl_ms;
    s->wake_until = s->claim_until;
    json_t *w = wake_j(x, s, s->claim_token);
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
    if (!s->holder[0] || api__now_ms() >= s->claim_until || !token_is(tok, s->claim_token))
        return reply_error(rq, 409, "FENCED", "no claim with this token is held", NULL);
    const char *wid = json_string_value(json_object_get(j, "wake_id"));
    if (wid && strcmp(wid, s->wake_id))
        return reply_error(rq, 409, "FENCED", "the wake_id is not the current wake's", NULL);
    s->holder[0] = '\0';
    s->claim_token[0] = '\0';
    s->wake_open = 0; /* what is not acked is given again */
    x->kick = 1;
    return api__reply_text(rq, 204, "application/json", "", 0);
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
    if (!id_valid(p, idn))
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
    return api__reply_text(rq, 204, "application/json", "", 0);
}

static enum MHD_Result delete_sub(api_req_t *rq, struct ds_subs *x, sub_t *s)
{
    sub_t **pp = &x->list;
    while (*pp != s)
        pp = &(*pp)->next;
    *pp = s->next;
    unsave(x, s->id);
    sub_free(s);
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
        sub_stream_t *one = path && *path ? stream_of(s, path, 1) : NULL;
        if (!one)
            bad = 1;
        else
            one->explicit_link = 1;
    }
    save(x, s);
    return bad ? reply_error(rq, 400, "INVALID_REQUEST", "'streams' must be an array of paths", NULL)
               : no_content(rq);
}

/* DELETE .../streams/{percent-encoded path} */
static enum MHD_Result unlink_stream(api_req_t *rq, struct ds_subs *x, sub_t *s,
                                     const char *enc)
{
    char path[DS_PATH_MAX + 1];
    long pn = api__pct_decode(enc, strlen(enc), path, DS_PATH_MAX, 0);
    sub_stream_t *st = pn > 0 ? stream_of(s, path, 0) : NULL;
    if (!st)
        return reply_error(rq, 404, "NOT_FOUND", "the stream is not linked", NULL);
    *st = s->streams[--s->n];
    save(x, s);
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
    sub_t *s = find(x, id);
    if (!s) {
        pthread_mutex_unlock(&x->lock);
        return not_found(rq, id);
    }
    r = sub_action(rq, x, s, rest, j);
    pthread_mutex_unlock(&x->lock);
    return r;
}

enum MHD_Result api__ds_subs(api_req_t *rq, const char *data, size_t *size)
{
    struct ds_subs *x = rq->srv->subs;
    if (!x)
        return api__problem(rq, REEL_EUNAVAILABLE, "subscriptions are not running");
    if (rq->method_bit & (API_M_POST | API_M_PUT)) {
        if (rq->phase == API_PHASE_NEW) {
            enum MHD_Result r;
            if (!api__body_precheck(rq, &r))
                return r;
            rq->phase = SB_BODY;
            return MHD_YES;
        }
        int more = api__collect_body(rq, data, size);
        if (more < 0)
            return MHD_NO;
        if (more)
            return MHD_YES;
        enum MHD_Result r;
        if (api__body_complete(rq, &r) != REEL_OK)
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
    enum MHD_Result r = route(rq, x, j);
    json_decref(j);
    return r;
}
