/* subs_int.h -- private to the Durable Streams subscriptions (api/ds/subs*.c): the
 * registry's types and the functions its files share. What the subscriptions do is in
 * subs.c's header and docs/durable-streams.md "Subscriptions".
 *
 * Files: subs.c (the registry, streams, persistence, wakes and the delivery thread),
 * subs_webhook.c (webhook URL rules, signing, the POST), subs_http.c (the routes).
 * Rules: every sub_t and the list are guarded by ds_subs.lock; functions taking a sub_t
 * are called with it held, except ds__sub_webhook_post() (never under the lock: it waits
 * on the network).
 */
#ifndef REEL_API_DS_SUBS_INT_H
#define REEL_API_DS_SUBS_INT_H

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>

#include "api/ds/ds_int.h"

#define TICK_MS 50
#define SUB_ID_MAX 120          /* the raw key "sub:<id>" stays within the name limit */
#define SUB_STREAMS_MAX 1000    /* streams linked or tracked per subscription */
#define SUB_TTL_DEFAULT 30000
#define SUB_TTL_MIN 100
#define SUB_TTL_MAX 3600000
#define WEBHOOK_TIMEOUT_MS 5000
#define POSTS_MAX 16 /* webhook POSTs at once: a slow receiver does not hold up the others */
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
    int posting;       /* webhook POSTs in flight on their own threads */
    pthread_cond_t idle; /* signalled when 'posting' drops to 0 */
    pthread_cond_t cv;
};

/* ---- subs.c ---- */

void ds__sub_b64url(const uint8_t *p, size_t n, char *out);
void ds__sub_random_hex(char *out, size_t bytes);
int ds__sub_id_valid(const char *id, size_t n);
/* Constant-time comparison of a bearer token with the expected (non-empty) one. */
int ds__sub_token_is(const char *got, const char *want);
/* The linked or tracked stream 'path' of 's' (made when 'create'; NULL past the limit). */
sub_stream_t *ds__sub_stream_of(sub_t *s, const char *path, int create);
/* Tracks every stream written since 's' was made that its pattern matches (read 'r'). */
void ds__sub_find_pattern_streams(api_server_t *srv, store_read_t *r, sub_t *s);
/* The tail (an offset's sequence) of the live stream 'path', 0 when there is none. */
uint64_t ds__sub_tail_of(api_server_t *srv, store_read_t *r, const char *path);
/* Writes 's' (or deletes subscription 'id') through to the store, in order. */
void ds__sub_save(struct ds_subs *x, const sub_t *s);
void ds__sub_unsave(struct ds_subs *x, const char *id);
void ds__sub_copy_str(char *dst, size_t cap, json_t *v);
json_t *ds__sub_stream_j(const sub_stream_t *st, uint64_t tail);
sub_t *ds__sub_find(struct ds_subs *x, const char *id);
void ds__sub_free(sub_t *s);
/* The pending streams into the wake's snapshot; 1 when any. */
int ds__sub_snapshot(struct ds_subs *x, sub_t *s, store_read_t *r);
/* Opens the next wake of 's': generation + 1, new ids, lease 'ttl' ms. */
void ds__sub_open_wake(struct ds_subs *x, sub_t *s, uint64_t ttl);
/* The wake as delivered or claimed; 'token' NULL: none (a wake stream's message). */
json_t *ds__sub_wake_j(const struct ds_subs *x, const sub_t *s, const char *token);

/* ---- subs_webhook.c ---- */

/* 0 when 'url' may be a webhook: http(s), not to a private address (docs). */
int ds__sub_url_allowed(const api_server_t *srv, const char *url);
/* POSTs 'body' signed: 1 answered {"done":true}, 0 another 2xx, -1 failed. */
int ds__sub_webhook_post(struct ds_subs *x, const char *url, const char *body);

#endif
