/* auth.c -- bearer tokens with scopes (docs/HTTP.md "Auth").
 *
 * Tokens are kept only as SHA-256 digests. A presented token is hashed and compared with
 * every configured digest by CRYPTO_memcmp, without stopping at a match, so neither the
 * comparison nor the token's length shows in the response time.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/core.h"

/* The scope bits' names, bit 0 first ("full" is all of them). */
static const char *const scope_names[] = {"read", "append", "delete", "admin"};

int api_scope_parse(const char *s)
{
    if (!strcmp(s, "full"))
        return API_SCOPE_FULL;
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, scope_names[i]))
            return 1 << i;
    return -1;
}

const char *api_scope_name(int bit)
{
    return bit >= 0 && bit < 4 ? scope_names[bit] : NULL;
}

static void free_hashes(api_token_hash_t *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++) {
        for (size_t j = 0; j < h[i].n_prefixes; j++)
            free(h[i].prefixes[j]);
        free(h[i].prefixes);
    }
    free(h);
}

void api__tokens_free(api_server_t *srv)
{
    free_hashes(srv->tokens, srv->n_tokens);
    srv->tokens = NULL;
    srv->n_tokens = 0;
    for (api_bucket_t *b = srv->buckets, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    srv->buckets = NULL;
}

/* ---- Rate limits: token buckets per named token ---- */

/* Refills 'b' for the time since its last use; called under rate_lock. */
static void refill(api_bucket_t *b, uint64_t now)
{
    double dt = b->last_us ? (double)(now - b->last_us) / 1e6 : 1e9;
    b->last_us = now;
    b->requests = b->rate_requests * 1.0 < b->requests + dt * b->rate_requests
                      ? b->rate_requests * 1.0 : b->requests + dt * b->rate_requests;
    b->events = b->rate_events * 2.0 < b->events + dt * b->rate_events
                    ? b->rate_events * 2.0 : b->events + dt * b->rate_events;
}

/* The bucket of token 't' (made on first use), with t's current rates. */
static api_bucket_t *bucket_of(api_server_t *srv, const api_token_hash_t *t)
{
    api_bucket_t *b = srv->buckets;
    while (b && strcmp(b->name, t->name))
        b = b->next;
    if (!b && (b = calloc(1, sizeof *b))) {
        snprintf(b->name, sizeof b->name, "%s", t->name);
        b->next = srv->buckets;
        srv->buckets = b;
    }
    if (b) {
        b->rate_requests = t->rate_requests;
        b->rate_events = t->rate_events;
        b->quota_bytes = t->quota_bytes;
        b->quota_sessions = t->quota_sessions;
    }
    return b;
}

/* Seconds until 'need' tokens are back at 'rate' per second, at least 1. */
static unsigned wait_s(double have, double need, double rate)
{
    double s = (need - have) / rate;
    return s < 1 ? 1 : (unsigned)s + 1;
}

/* One request from t's requests/s bucket: REEL_OK or REEL_ETOO_MANY. */
static int rate_request(api_req_t *rq, const api_token_hash_t *t)
{
    if (!t->name[0])
        return REEL_OK;
    api_server_t *srv = rq->srv;
    pthread_mutex_lock(&srv->rate_lock);
    api_bucket_t *b = bucket_of(srv, t);
    int rc = REEL_OK;
    if (b) {
        refill(b, api__now_us());
        b->n_requests++;
        if (b->rate_requests > 0 && b->requests < 1) {
            rq->retry_after = wait_s(b->requests, 1, b->rate_requests);
            b->n_limited++;
            rc = REEL_ETOO_MANY;
        } else if (b->rate_requests > 0) {
            b->requests -= 1;
        }
    }
    rq->bucket = b;
    pthread_mutex_unlock(&srv->rate_lock);
    return rc;
}

int api__rate_events(api_req_t *rq, size_t n)
{
    api_bucket_t *b = rq->bucket;
    if (!b)
        return REEL_OK;
    pthread_mutex_lock(&rq->srv->rate_lock); /* (a reload changes the rates) */
    refill(b, api__now_us());
    double rate = b->rate_events, have = b->events;
    int over = rate > 0 && (double)n > have;
    if (!over && rate > 0)
        b->events -= (double)n;
    b->n_events += over ? 0 : n;
    b->n_limited += over;
    pthread_mutex_unlock(&rq->srv->rate_lock);
    if (!over)
        return REEL_OK;
    if ((double)n > 2 * rate) { /* no wait makes it fit: 413, not 429 */
        api__problem(rq, REEL_ETOO_LARGE, "%zu events in one request is more than the token "
                     "'%s' may append in 2 s (%g events/s): split the batch", n, rq->token_name,
                     rate);
        return REEL_ETOO_LARGE;
    }
    rq->retry_after = wait_s(have, (double)n, rate);
    api__problem(rq, REEL_ETOO_MANY, "the token '%s' may append %g events/s; retry in %u s",
                 rq->token_name, rate, rq->retry_after);
    return REEL_ETOO_MANY;
}

/* The digests of 't' (NULL when n is 0), with copies of their names and prefixes. */
static int digest_tokens(const api_token_t *t, size_t n, api_token_hash_t **out)
{
    *out = NULL;
    if (n == 0)
        return REEL_OK;
    api_token_hash_t *h = calloc(n, sizeof *h);
    if (!h)
        return REEL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (t[i].token)
            SHA256((const unsigned char *)t[i].token, strlen(t[i].token), h[i].digest);
        else
            memcpy(h[i].digest, t[i].digest, sizeof h[i].digest);
        h[i].scope = t[i].scope;
        h[i].rate_requests = t[i].rate_requests;
        h[i].rate_events = t[i].rate_events;
        h[i].quota_bytes = t[i].quota_bytes;
        h[i].quota_sessions = t[i].quota_sessions;
        snprintf(h[i].name, sizeof h[i].name, "%s", t[i].name ? t[i].name : "");
        if (t[i].n_prefixes && !(h[i].prefixes = calloc(t[i].n_prefixes, sizeof(char *)))) {
            free_hashes(h, n);
            return REEL_ENOMEM;
        }
        for (size_t j = 0; j < t[i].n_prefixes; j++, h[i].n_prefixes++)
            if (!(h[i].prefixes[j] = strdup(t[i].prefixes[j]))) {
                free_hashes(h, n);
                return REEL_ENOMEM;
            }
    }
    *out = h;
    return REEL_OK;
}

int api__tokens_init(api_server_t *srv, const api_token_t *t, size_t n)
{
    int rc = digest_tokens(t, n, &srv->tokens);
    srv->n_tokens = rc ? 0 : n;
    return rc;
}

int api_server_set_tokens(api_server_t *srv, const api_token_t *t, size_t n)
{
    api_token_hash_t *h;
    int rc = digest_tokens(t, n, &h);
    if (rc)
        return rc;
    pthread_rwlock_wrlock(&srv->tokens_lock);
    api_token_hash_t *old = srv->tokens;
    size_t old_n = srv->n_tokens;
    srv->tokens = h;
    srv->n_tokens = n;
    atomic_fetch_add(&srv->tokens_gen, 1);
    pthread_rwlock_unlock(&srv->tokens_lock);
    free_hashes(old, old_n);
    api__wake_all(srv, 0); /* long-polls and streams check their token again */
    return REEL_OK;
}

/* The index of the token 'tok' matches (-1 if none), looked up in constant time over all
 * tokens: every digest is compared, whatever matched before. */
static long token_index(const api_server_t *srv, const char *tok, size_t len)
{
    uint8_t d[32];
    SHA256((const unsigned char *)tok, len, d);
    long found = -1;
    for (size_t i = 0; i < srv->n_tokens; i++) {
        int eq = CRYPTO_memcmp(d, srv->tokens[i].digest, sizeof d) == 0;
        found = eq ? (long)i : found;
    }
    return found;
}

/* The matched token's name and prefixes, copied into the request (the set may be
 * replaced by SIGHUP while the request runs). */
static int take_principal(api_req_t *rq, const api_token_hash_t *t)
{
    snprintf(rq->token_name, sizeof rq->token_name, "%s", t->name);
    rq->token_scope = t->scope;
    if (!t->n_prefixes)
        return REEL_OK;
    size_t total = 0;
    for (size_t i = 0; i < t->n_prefixes; i++)
        total += strlen(t->prefixes[i]) + 1;
    if (!(rq->prefixes = malloc(total)))
        return REEL_ENOMEM;
    char *p = rq->prefixes;
    for (size_t i = 0; i < t->n_prefixes; i++) {
        size_t l = strlen(t->prefixes[i]) + 1;
        memcpy(p, t->prefixes[i], l);
        p += l;
    }
    rq->n_prefixes = t->n_prefixes;
    return REEL_OK;
}

static int check_token(api_req_t *rq, const char *tok, size_t len, int need)
{
    long i = token_index(rq->srv, tok, len);
    if (i < 0)
        return rq->bad_token = 1, REEL_EUNAUTHORIZED;
    const api_token_hash_t *t = &rq->srv->tokens[i];
    if ((t->scope & need) != need)
        return REEL_EFORBIDDEN;
    memcpy(rq->token_digest, t->digest, sizeof rq->token_digest);
    rq->token_need = need ? need : -1; /* -1: a token was checked for no scope */
    rq->tokens_gen = atomic_load(&rq->srv->tokens_gen);
    int rc = take_principal(rq, t);
    return rc ? rc : rate_request(rq, t);
}

/* The auth check with the token set held still (SIGHUP may replace it). */
static int auth_locked(api_req_t *rq, int need, int allow_query)
{
    api_server_t *srv = rq->srv;
    if (srv->n_tokens == 0)
        return REEL_OK;
    const char *h = api__header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        const char *t = h + 7;
        while (*t == ' ')
            t++;
        return check_token(rq, t, strlen(t), need);
    }
    if (allow_query) {
        char tok[512];
        if (api__query(rq, "access_token", tok, sizeof tok) > 0)
            return check_token(rq, tok, strlen(tok), need);
    }
    return REEL_EUNAUTHORIZED;
}

/* 1 when token 't' has exactly the NUL-separated 'prefixes'. */
static int same_prefixes(const api_token_hash_t *t, const char *prefixes, size_t n)
{
    if (t->n_prefixes != n)
        return 0;
    for (size_t i = 0; i < n; i++, prefixes += strlen(prefixes) + 1)
        if (strcmp(t->prefixes[i], prefixes))
            return 0;
    return 1;
}

int api__token_still_valid(api_server_t *srv, const uint8_t digest[32], int need,
                           const char *prefixes, size_t n_prefixes)
{
    if (!need)
        return 1;
    int ok = 0;
    pthread_rwlock_rdlock(&srv->tokens_lock);
    for (size_t i = 0; i < srv->n_tokens; i++) {
        const api_token_hash_t *t = &srv->tokens[i];
        if (!CRYPTO_memcmp(digest, t->digest, 32))
            ok = (need < 0 || (t->scope & need) == need) && same_prefixes(t, prefixes, n_prefixes);
    }
    pthread_rwlock_unlock(&srv->tokens_lock);
    return ok;
}

int api__auth_still_valid(api_req_t *rq)
{
    uint64_t gen = atomic_load(&rq->srv->tokens_gen);
    if (!rq->token_need || gen == rq->tokens_gen)
        return 1;
    if (!api__token_still_valid(rq->srv, rq->token_digest, rq->token_need, rq->prefixes,
                                rq->n_prefixes))
        return 0;
    rq->tokens_gen = gen;
    return 1;
}

int api__auth(api_req_t *rq, int need, int allow_query)
{
    pthread_rwlock_rdlock(&rq->srv->tokens_lock);
    int rc = auth_locked(rq, need, allow_query);
    pthread_rwlock_unlock(&rq->srv->tokens_lock);
    return rc;
}

int api__tenant_allows(const api_req_t *rq, const char *id, size_t len)
{
    const char *p = rq->prefixes;
    for (size_t i = 0; i < rq->n_prefixes; i++) {
        size_t pl = strlen(p);
        if (pl <= len && !memcmp(id, p, pl))
            return 1;
        p += pl + 1;
    }
    return rq->n_prefixes == 0;
}

/* ---- Tokens file ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

void api_tokens_free(api_token_t *tokens, size_t n)
{
    if (!tokens)
        return;
    for (size_t i = 0; i < n; i++) {
        free((char *)tokens[i].token);
        free((char *)tokens[i].name);
        for (size_t j = 0; j < tokens[i].n_prefixes; j++)
            free(tokens[i].prefixes[j]);
        free(tokens[i].prefixes);
    }
    free(tokens);
}

/* Parses one non-blank line "TOKEN SCOPE" into 't'. Returns 0 or -1. */
static int parse_line(char *s, api_token_t *t)
{
    char *sp = s;
    while (*sp && !isspace((unsigned char)*sp))
        sp++;
    if (!*sp)
        return -1;
    *sp++ = '\0';
    int scope = api_scope_parse(trim(sp));
    if (scope < 0 || !*s)
        return -1;
    memset(t, 0, sizeof *t);
    t->token = strdup(s);
    t->scope = scope;
    return t->token ? 0 : -1;
}

/* Reads a tokens file line by line: 'fn' turns each non-blank, non-comment line into an
 * entry (zeroed first) and returns NULL, or what is wrong with it; '*counted' says the
 * entry holds allocations even on error (api_tokens_free() then frees them). Names must
 * be unique. */
typedef const char *(*line_fn)(char *line, api_token_t *t, int *counted);

static int load_file(const char *path, line_fn fn, api_token_t **out, size_t *n, char *msg,
                     size_t msg_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, msg_len, "cannot read tokens file '%s': %s", path, strerror(errno));
        return REEL_EIO;
    }
    api_token_t *v = NULL;
    size_t cnt = 0, cap = 0, lineno = 0, lcap = 0;
    char *line = NULL;
    int rc = REEL_OK;
    while (rc == REEL_OK && getline(&line, &lcap, f) > 0) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 8;
            api_token_t *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                rc = REEL_ENOMEM;
                break;
            }
            v = nv;
        }
        memset(&v[cnt], 0, sizeof v[cnt]);
        int counted = 0;
        const char *why = fn(s, &v[cnt], &counted);
        cnt += !why || counted;
        for (size_t i = 0; !why && v[cnt - 1].name && i + 1 < cnt; i++)
            if (v[i].name && !strcmp(v[i].name, v[cnt - 1].name))
                why = "a name used twice"; /* names identify tokens in logs */
        if (why) {
            snprintf(msg, msg_len, "%s:%zu: %s", path, lineno, why);
            rc = REEL_EINVALID_PARAMETER;
        }
    }
    free(line);
    fclose(f);
    if (rc != REEL_OK) {
        api_tokens_free(v, cnt);
        return rc;
    }
    *out = v;
    *n = cnt;
    return REEL_OK;
}

static const char *legacy_line(char *s, api_token_t *t, int *counted)
{
    int rc = parse_line(s, t);
    *counted = t->token != NULL;
    return rc < 0 ? "expected 'TOKEN full|read|append'" : NULL;
}

int api_tokens_load(const char *path, api_token_t **out, size_t *n, char *msg, size_t msg_len)
{
    return load_file(path, legacy_line, out, n, msg, msg_len);
}

/* ---- Named tokens (--tokens FILE, JSON lines) ---- */

static int hex_digest(const char *h, uint8_t out[32])
{
    if (!h || strlen(h) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1 || !isxdigit((unsigned char)h[2 * i]) ||
            !isxdigit((unsigned char)h[2 * i + 1]))
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* One line's object into 't'; NULL on success, else what is wrong. */
static const char *named_token(json_t *o, api_token_t *t)
{
    memset(t, 0, sizeof *t);
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!name || !*name || strlen(name) >= 64 || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != strlen(name))
        return "'name' must be 1-63 characters of A-Z a-z 0-9 - _ .";
    if (hex_digest(json_string_value(json_object_get(o, "sha256")), t->digest))
        return "'sha256' must be the 64 hex digits of the token's SHA-256";
    json_t *sc = json_object_get(o, "scopes"), *v;
    size_t i;
    if (!json_is_array(sc) || !json_array_size(sc))
        return "'scopes' must be a non-empty array of read, append, delete, admin, full";
    json_array_foreach(sc, i, v) {
        int bit = json_is_string(v) ? api_scope_parse(json_string_value(v)) : -1;
        if (bit < 0)
            return "'scopes' must be a non-empty array of read, append, delete, admin, full";
        t->scope |= bit;
    }
    json_t *rate = json_object_get(o, "rate");
    if (rate && (!json_is_object(rate) ||
                 (json_object_get(rate, "requests") && !json_is_number(json_object_get(rate, "requests"))) ||
                 (json_object_get(rate, "events") && !json_is_number(json_object_get(rate, "events")))))
        return "'rate' must be {\"requests\": per second, \"events\": per second}";
    json_t *quota = json_object_get(o, "quota");
    json_t *qb = json_object_get(quota, "bytes"), *qs = json_object_get(quota, "sessions");
    if (quota && (!json_is_object(quota) || (qb && (!json_is_integer(qb) || json_integer_value(qb) < 0)) ||
                  (qs && (!json_is_integer(qs) || json_integer_value(qs) < 0))))
        return "'quota' must be {\"bytes\": N, \"sessions\": N}, whole numbers";
    t->quota_bytes = (uint64_t)json_integer_value(qb);
    t->quota_sessions = (uint64_t)json_integer_value(qs);
    t->rate_requests = json_number_value(json_object_get(rate, "requests"));
    t->rate_events = json_number_value(json_object_get(rate, "events"));
    if (t->rate_requests < 0 || t->rate_events < 0)
        return "'rate' values must not be negative";
    json_t *px = json_object_get(o, "prefixes");
    if (px && !json_is_array(px))
        return "'prefixes' must be an array of session-id prefixes";
    if (json_array_size(px) && !(t->prefixes = calloc(json_array_size(px), sizeof(char *))))
        return "out of memory";
    json_array_foreach(px, i, v) {
        const char *p = json_string_value(v);
        if (!p || !*p || !store_session_id_valid(p, strlen(p)))
            return "each prefix must be a non-empty session id (UTF-8, no control characters)";
        if (!(t->prefixes[t->n_prefixes++] = strdup(p)))
            return "out of memory";
    }
    return (t->name = strdup(name)) ? NULL : "out of memory";
}

static const char *named_line(char *s, api_token_t *t, int *counted)
{
    json_t *o = json_loads(s, 0, NULL);
    *counted = json_is_object(o);
    const char *why = *counted ? named_token(o, t) : "not a JSON object";
    json_decref(o);
    return why;
}

int api_tokens_load_named(const char *path, api_token_t **out, size_t *n, char *msg,
                          size_t msg_len)
{
    return load_file(path, named_line, out, n, msg, msg_len);
}

/* ---- Quotas ---- */

struct usage {
    uint64_t bytes, sessions;
};

static int add_usage(void *arg, const store_session_t *rec)
{
    struct usage *u = arg;
    u->bytes += rec->bytes;
    u->sessions += rec->status != STORE_DELETED;
    return 0;
}

/* The stored bytes and the sessions (not deleted) under the request's prefixes, or of the
 * whole store for a token without prefixes. */
static int count_usage(api_req_t *rq, struct usage *u)
{
    memset(u, 0, sizeof *u);
    store_read_t r;
    int rc = store_read_begin(rq->srv->store, &r);
    if (rc)
        return rc;
    const char *p = rq->prefixes;
    for (size_t i = 0; !rc && i < (rq->n_prefixes ? rq->n_prefixes : 1); i++) {
        store_list_t *q = calloc(1, sizeof *q); /* (it holds an id buffer: not on the stack) */
        if (!q) {
            rc = REEL_ENOMEM;
            break;
        }
        q->status = -1;
        if (rq->n_prefixes) {
            q->prefix = p, q->prefix_len = strlen(p);
            p += q->prefix_len + 1;
        }
        int more = 0;
        rc = store_sessions_query(&r, q, SIZE_MAX, 0, add_usage, u, &more);
        free(q);
    }
    store_read_end(&r);
    return rc;
}

/* 1 when the request's session has no record yet (an append would create it). */
static int session_is_new(api_req_t *rq)
{
    store_read_t r;
    store_session_t rec;
    if (store_read_begin(rq->srv->store, &r))
        return 0;
    int rc = store_session_get(&r, rq->session, rq->session_len, &rec);
    store_read_end(&r);
    return rc == REEL_ESESSION_NOT_FOUND;
}

int api__quota_check(api_req_t *rq, uint64_t bytes)
{
    api_bucket_t *b = rq->bucket;
    if (!b)
        return REEL_OK;
    uint64_t now = api__now_us();
    pthread_mutex_lock(&rq->srv->rate_lock);
    uint64_t qbytes = b->quota_bytes, qsessions = b->quota_sessions;
    int stale = !b->used_at_us || now - b->used_at_us > 1000000;
    pthread_mutex_unlock(&rq->srv->rate_lock);
    if (!qbytes && !qsessions)
        return REEL_OK;
    struct usage u;
    if (stale) {
        if (count_usage(rq, &u) != REEL_OK)
            return REEL_OK; /* the append itself will meet the store's error */
        pthread_mutex_lock(&rq->srv->rate_lock);
        b->used_bytes = u.bytes, b->used_sessions = u.sessions, b->used_at_us = now;
        pthread_mutex_unlock(&rq->srv->rate_lock);
    }
    int is_new = qsessions && session_is_new(rq);
    /* Checked and reserved at once: what an admitted append adds counts for the next
     * request at once, not only after the next count (at most a second later), so a burst
     * passes the quota by no more than the appends in flight when the count was taken. */
    pthread_mutex_lock(&rq->srv->rate_lock);
    int over_bytes = qbytes && b->used_bytes + bytes > qbytes;
    int over_sessions = is_new && b->used_sessions >= qsessions;
    if (over_bytes || over_sessions) {
        b->n_quota++;
    } else {
        b->used_bytes += bytes;
        b->used_sessions += (uint64_t)is_new;
    }
    u.bytes = b->used_bytes, u.sessions = b->used_sessions;
    pthread_mutex_unlock(&rq->srv->rate_lock);
    if (over_bytes) {
        api__problem(rq, REEL_EQUOTA, "the token '%s' has %llu of its %llu bytes stored; this "
                     "append needs about %llu more", rq->token_name, (unsigned long long)u.bytes,
                     (unsigned long long)qbytes, (unsigned long long)bytes);
        return REEL_EQUOTA;
    }
    if (over_sessions) {
        api__problem(rq, REEL_EQUOTA, "the token '%s' has all %llu of its sessions; a new one "
                     "needs another deleted first", rq->token_name,
                     (unsigned long long)qsessions);
        return REEL_EQUOTA;
    }
    return REEL_OK;
}

void api__tenant_usage(api_req_t *rq, store_buf_t *out)
{
    struct usage u;
    if (count_usage(rq, &u) != REEL_OK)
        u.bytes = u.sessions = 0;
    api_bucket_t *b = rq->bucket, copy;
    if (b) {
        pthread_mutex_lock(&rq->srv->rate_lock);
        copy = *b;
        pthread_mutex_unlock(&rq->srv->rate_lock);
    }
    store_buf_printf(out, "{\"bytes\":%llu,\"sessions\":%llu,\"limits\":{",
                     (unsigned long long)u.bytes, (unsigned long long)u.sessions);
    if (b)
        store_buf_printf(out, "\"requests_per_s\":%g,\"events_per_s\":%g,\"quota_bytes\":%llu,"
                              "\"quota_sessions\":%llu", copy.rate_requests, copy.rate_events,
                         (unsigned long long)copy.quota_bytes,
                         (unsigned long long)copy.quota_sessions);
    store_buf_puts(out, "}}");
}

void api__token_metrics(api_server_t *srv, store_buf_t *o)
{
    static const char *const names[4][2] = {
        {"reel_token_requests_total", "Requests authenticated by a named token."},
        {"reel_token_events_total", "Events appended with a named token."},
        {"reel_token_rate_limited_total", "Requests refused by a named token's rate limits."},
        {"reel_token_quota_refused_total", "Appends refused by a named token's quota."}};
    pthread_mutex_lock(&srv->rate_lock);
    for (int k = 0; k < 4 && srv->buckets; k++) {
        store_buf_printf(o, "# HELP %s %s\n# TYPE %s counter\n", names[k][0], names[k][1],
                         names[k][0]);
        for (api_bucket_t *b = srv->buckets; b; b = b->next) {
            uint64_t v = k == 0 ? b->n_requests : k == 1 ? b->n_events : k == 2 ? b->n_limited
                                                                                : b->n_quota;
            /* names are [A-Za-z0-9._-]: safe as a label value */
            store_buf_printf(o, "%s{token=\"%s\"} %llu\n", names[k][0], b->name,
                             (unsigned long long)v);
        }
    }
    pthread_mutex_unlock(&srv->rate_lock);
}
