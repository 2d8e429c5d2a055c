/* core.h -- the bottom floor of api/: HTTP plumbing that knows no route and no protocol.
 *
 * api/ is built in three floors (docs/DESIGN.md "Layout"); a file includes only headers
 * of its own floor or of the floors below it:
 *
 *   top      api/server.c, api/routes.c   the daemon, the one route table
 *            api/handlers/                 the session routes, by resource
 *            api/ds/                       the Durable Streams protocol
 *   middle   api/live/                     the generic SSE loop, the rendered-event cache
 *   bottom   api/core/                     this header: requests, dispatch, connections,
 *                                          bodies, suspend/resume, waiting, auth, replies
 *
 * Files: request.c (per-request state, the access handler, dispatch through the route
 * table), route.c (path patterns, methods, the Allow list), conn.c (connection accounting,
 * slow request heads), body.c (request bodies, asynchronous store work), wait.c (suspended
 * connections and their wake-ups, the watcher thread), reply.c (responses, RFC 7807
 * problems, CORS), query.c (percent-decoding, query parameters, headers), auth.c (tokens),
 * log.c (the access and error logs, request ids), cell.c (cluster mode: the 421 rule, the
 * cluster map and its epoch, docs/CLUSTER.md), ack.c (--ack replica: a write's answer waits
 * for the replica's watermark, docs/CLUSTER.md "Acknowledged by a replica").
 *
 * Request lifecycle: the URI log callback allocates an api_req_t (libmicrohttpd hands it
 * back to every call of the access handler as *req_cls); the completion callback calls
 * the request's 'dispose' hook and frees it. The dispatcher matches the path against the
 * route table (api_route_t rows, given by the top floor in api_server.routes), checks
 * framing, auth and the method from the matched row, then calls the row's handler. A
 * handler answers with api__reply_*() / api__problem() or suspends the connection through
 * api__async_begin() / api__submit() / api__wait(); when resumed, libmicrohttpd calls the
 * access handler again and the handler continues from the request's 'phase'.
 *
 * Threads: handlers run on libmicrohttpd's threads and never block. 'lock' guards the
 * waiter list, 'gen' and 'stopping'; 'conn_lock' guards connection accounting (a lock of
 * its own: libmicrohttpd calls the connection callback inside its own bookkeeping while
 * 'lock' is held around calls into libmicrohttpd, so one lock for both could invert the
 * lock order). Counters are atomics.
 */
#ifndef REEL_API_CORE_H
#define REEL_API_CORE_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>

#include "api/api.h"
#include "cluster/cluster.h"
#include "store/buf.h"
#include "store/store.h"

#define API_WATCH_MS 50 /* watcher period: cross-process appends within 100 ms */
#define API_OWN_TXNS 1024 /* ids of this process's commits the watcher keeps */

/* ---- Waiting (wait.c) ---- */

/* SESSION and FEED waiters are woken by commits (of the session, of any); ACK waiters (a
 * write waiting for the replica, ack.c) only by api__wake_all() and their deadline. */
enum api_wait_kind { API_WAIT_SESSION = 0, API_WAIT_FEED = 1, API_WAIT_ACK = 2 };

/* A suspended connection waiting for a commit, a deadline or shutdown. It is linked in
 * the server's list exactly while its connection is suspended for a wait. */
typedef struct api_waiter {
    struct api_waiter *prev, *next;
    struct MHD_Connection *conn;
    int kind;              /* enum api_wait_kind */
    const char *session;   /* API_WAIT_SESSION: borrowed from the owner */
    size_t session_len;
    uint64_t deadline_ms;  /* monotonic ms; 0 = none */
    int linked;
} api_waiter_t;

/* ---- Routes (route.c) ---- */

typedef struct api_req api_req_t;
typedef struct api_route api_route_t;

/* Methods as bits, so that a route row lists its methods in one field. */
enum api_method {
    API_M_GET = 1,
    API_M_HEAD = 2,
    API_M_POST = 4,
    API_M_PUT = 8,
    API_M_DELETE = 16,
    API_M_OPTIONS = 32,
    API_M_READ = API_M_GET | API_M_HEAD,
};

/* Who may call a route: anyone, or a token with the scope the method needs (GET, HEAD:
 * read; DELETE: delete; the others: append), unless the row names its scope. */
enum api_auth { API_AUTH_NONE = 0, API_AUTH_SCOPED };

/* A handler is called for every call of the access handler once the request passed the
 * dispatcher's checks; 'data'/'size' are the body bytes of this call (see request.c). */
typedef enum MHD_Result (*api_handler_fn)(api_req_t *rq, const char *data, size_t *size);

/* One row of the route table. A path pattern is literal segments, "{id}" (one segment:
 * a session id, percent-decoded once and checked), "{name}" (one raw segment, any bytes)
 * or a final "*" (the non-empty rest of the path, raw). Several rows may share a pattern
 * with different methods; the first row whose pattern and method match is used, and the
 * methods of all rows of the pattern make the Allow list and the 405 answers. */
struct api_route {
    const char *pattern;
    unsigned methods;           /* enum api_method bits (OPTIONS is always allowed) */
    unsigned body;              /* methods whose body the handler reads */
    int auth;                   /* enum api_auth */
    api_handler_fn handler;
    /* Extra headers on every response of the route, problems included; NULL = none. */
    void (*add_headers)(api_req_t *rq, struct MHD_Response *resp);
    const char *cors_headers;   /* Access-Control-Allow-Headers; NULL = the default */
    /* 1 when this request may carry its token as ?access_token= instead of a header: only
     * where a browser's EventSource must (it cannot send headers), because tokens in URLs
     * end up in logs and histories. NULL = never. */
    int (*query_token)(const api_req_t *rq);
    int tenant;                 /* enum api_tenant_rule */
    int scope;                  /* enum api_scope bits the route needs; 0 = by method */
};

/* The query_token rule of an SSE route: a GET. */
int api__query_token_get(const api_req_t *rq);

/* Parses an HTTP method into its bit; 0 for any other method. */
unsigned api__method_bit(const char *method);
/* Matches 'path' (raw, 'len' bytes, without the query) against 'pattern'. On a match
 * returns 1 and points '*param' at the raw {id}/{name}/'*' part ('*param_len' bytes;
 * NULL/0 when the pattern has none). */
int api__route_match(const char *pattern, const char *path, size_t len, const char **param,
                     size_t *param_len);
/* The methods of every row of 'tab' whose pattern is 'pattern' (OPTIONS included). */
unsigned api__route_methods(const api_route_t *tab, size_t n, const char *pattern);
/* Writes the methods of 'bits' as an Allow list ("GET, HEAD, OPTIONS") into 'out'. */
void api__methods_text(unsigned bits, char *out, size_t cap);

/* ---- The server ---- */

typedef struct api_token_hash {
    uint8_t digest[32]; /* SHA-256 of the token text */
    int scope;
    char name[64];      /* "" for the unnamed forms */
    char **prefixes;    /* owned; NULL/0 = every session */
    size_t n_prefixes;
    double rate_requests, rate_events; /* per second; 0 = no limit */
    uint64_t quota_bytes, quota_sessions; /* 0 = no quota */
} api_token_hash_t;

/* A named token's rate limits, quotas and counters (auth.c): kept by name, so a SIGHUP
 * reload keeps their levels; the limits are the token's current ones. Every named token
 * has one from its first request (the set of names bounds the metric's cardinality). Entries are never freed
 * before the server, so a request may keep a pointer. Guarded by api_server.rate_lock. */
typedef struct api_bucket {
    char name[64];
    double requests, events; /* tokens left */
    double rate_requests, rate_events;
    uint64_t last_us;
    uint64_t quota_bytes, quota_sessions;
    uint64_t used_bytes, used_sessions, used_at_us; /* usage as last counted */
    uint64_t n_requests, n_events, n_limited, n_quota; /* for /metrics, per token name */
    struct api_bucket *next;
} api_bucket_t;

/* Which sessions a route touches, for tokens limited to session prefixes (auth.c): */
enum api_tenant_rule {
    API_TENANT_OPEN = 0, /* none (health, the inspector's files, /v1/tenant) */
    API_TENANT_SESSION,  /* the {id} session: outside the prefixes it does not exist */
    API_TENANT_STREAM,   /* the Durable Streams path ('*'): likewise */
    API_TENANT_STORE,    /* every session (metrics): 403 for a limited token */
    API_TENANT_FILTER,   /* the handler filters or checks (listing, feed, stats, export) */
};

/* The logs (log.c). 'lock' serializes lines and guards the FILE pointers, which SIGHUP
 * replaces (api_server_reopen_logs). */
typedef struct api_log {
    pthread_mutex_t lock;
    FILE *access, *error;       /* access NULL = off */
    char *access_path, *error_path; /* "-" = standard error */
    int json, level;            /* format, enum api_log_level */
    unsigned id_prefix;         /* random, the first half of generated request ids */
} api_log_t;

/* Latency histograms per route row and method (metrics.c): bucket i counts requests that
 * took at most api__lat_bounds_us[i]; the last bucket everything slower. */
#define API_MAX_ROUTES 48
#define API_N_METHODS 6 /* the bits of enum api_method */
#define API_LAT_BUCKETS 14
extern const uint64_t api__lat_bounds_us[API_LAT_BUCKETS - 1];

#define API_MAX_SINKS 16 /* sinks one server keeps positions of (POST /v1/sinks/{name}) */

struct ds_subs; /* api/ds/subs.c */
typedef struct api_access api_access_t;
struct api_ipcount;

struct api_server {
    store_t *store;
    uint8_t seal_aes[16], seal_mac[32]; /* sealed cursors' keys (seal.c), set at start */
    int has_seal;                       /* 0: the store has no secret (read-only, older) */
    void (*metrics)(void *arg, store_buf_t *out); /* api_config_t.metrics */
    void *metrics_arg;
    api_access_t *access;       /* last read of each session (live/access.c) */
    struct ds_subs *subs;       /* Durable Streams subscriptions (ds/subs.c), or NULL */
    struct MHD_Daemon *daemon;
    api_limits_t lim;
    char *cors_origin;
    pthread_rwlock_t tokens_lock; /* guards tokens/n_tokens: SIGHUP replaces them */
    api_token_hash_t *tokens;
    size_t n_tokens;
    atomic_uint_fast64_t tokens_gen; /* counts token set replacements (SIGHUP) */
    api_log_t log;
    pthread_mutex_t rate_lock;  /* guards 'buckets' */
    api_bucket_t *buckets;
    atomic_uint_fast64_t next_request_id;
    double started_s;           /* wall clock at start (process_start_time_seconds) */
    unsigned port;
    int loopback; /* listening on a loopback address only (api_server_loopback) */
    const api_route_t *routes;  /* the route table (api/routes.c) */
    size_t n_routes;

    /* Cluster mode (cell.c): 'cluster' is replaced on SIGHUP under cluster_lock (held
     * shared by every request's check); 'cell_id' never changes. */
    pthread_rwlock_t cluster_lock;
    cluster_map_t *cluster;     /* NULL: a single node */
    char cell_id[CLUSTER_ID_MAX + 1];
    atomic_uint_fast64_t cluster_epoch; /* of 'cluster', for the response headers */
    atomic_uint_fast64_t misdirected;   /* 421 answers */
    /* Writes in flight, by the parity of 'cluster_gen' (maps installed, under
     * cluster_lock) when they were admitted: a new map waits for the other parity to
     * drain (PUT /v1/cluster/map, docs/CLUSTER.md "Moving shards"). 'cluster_push'
     * serialises pushed maps; 'cluster_map_path' is the --cluster-map file a pushed map
     * is written to (NULL: none). */
    uint64_t cluster_gen;
    atomic_uint_fast64_t cell_writes[2];
    atomic_uint_fast64_t shard_loading; /* 503 answers for shards being moved in */
    pthread_mutex_t cluster_push;
    char *cluster_map_path;

    pthread_mutex_t lock;       /* guards the waiter list, 'gen', 'stopping' */
    api_waiter_t waiters;       /* list head (sentinel) */
    uint64_t gen;               /* bumped on every observed commit */
    int stopping;

    /* Another process's commits are found by the watcher: the data directory's last
     * transaction id moved by more than this process's commits account for (one id per
     * commit). The commit hook notes its ids here, under own_lock; 'watch_txn' is the
     * watcher's. */
    pthread_mutex_t own_lock;
    uint64_t own[API_OWN_TXNS]; /* a ring, in commit order */
    size_t own_head, own_n;
    uint64_t watch_txn;

    pthread_t watcher;
    int watcher_started;
    pthread_mutex_t tick_lock;  /* with tick_cond: lets stop interrupt the watcher's sleep */
    pthread_cond_t tick_cond;
    int watch_stop;             /* guarded by tick_lock */

    pthread_mutex_t conn_lock;  /* connection accounting (see the rules above) */
    unsigned n_conns;
    struct api_conn *conns;     /* every open connection */
    uint64_t last_sweep_ms;     /* watcher thread only */
    struct api_ipcount *ips[256];

    /* counters for /metrics */
    atomic_uint_fast64_t inflight;     /* batches submitted and not yet completed */
    atomic_uint_fast64_t live;         /* requests begun and not yet completed */
    atomic_uint_fast64_t jobs;         /* transcript/stats jobs running on their threads */
    atomic_uint_fast64_t sse_clients;
    atomic_uint_fast64_t requests;
    atomic_uint_fast64_t appends;      /* successful append requests */
    atomic_uint_fast64_t append_events;
    atomic_uint_fast64_t append_batch_hist[8]; /* events per append: <=1,<=10,...,<=10^6,more */
    atomic_uint_fast64_t problems_4xx;
    atomic_uint_fast64_t problems_5xx;
    atomic_uint_fast64_t wakeups;
    /* sinks reporting their position (handlers/sinks.c), under sinks_lock */
    pthread_mutex_t sinks_lock;
    struct api_sink {
        char name[64];        /* [A-Za-z0-9._-], 1..63 bytes */
        uint64_t position;    /* the last position it committed (never goes back) */
        uint32_t index;       /* ... with the change index of its cursor */
        uint64_t reported_ms; /* monotonic ms of its last report */
        int replicated;       /* its last report said its PostgreSQL replicates
                                 synchronously (synchronous_commit on, a sync standby) */
        uint64_t rep_position; /* the highest cursor it reported with 'replicated' */
        uint32_t rep_index;
        char why[160];        /* why not 'replicated', as the sink said */
    } sinks[API_MAX_SINKS];
    unsigned n_sinks;
    atomic_uint_fast64_t sink_waited, sink_refused; /* appends held back by a sink */
    /* --ack replica (ack.c): writes acknowledged after waiting for the replica, refused
     * with 503, and how long they waited (api__lat_bounds_us buckets) */
    atomic_uint_fast64_t ack_acked, ack_refused, ack_sum_us;
    atomic_uint_fast64_t ack_hist[API_LAT_BUCKETS];
    atomic_uint_fast64_t lat[API_MAX_ROUTES][API_N_METHODS][API_LAT_BUCKETS];
    atomic_uint_fast64_t lat_sum_us[API_MAX_ROUTES][API_N_METHODS];
};

/* Per-connection state (libmicrohttpd socket context). */
typedef struct api_conn {
    uint8_t ip[16];
    size_t ip_len;
    int over_limit; /* accepted beyond a connection limit: answer 429 and close */
    int fd;         /* the socket, for api__sweep_heads() */
    /* When the request head now arriving began (accept, or the end of the previous
     * request); 0 while a request is being handled. */
    atomic_int_fast64_t head_since_ms;
    struct api_conn *prev, *next; /* srv->conns, under conn_lock */
} api_conn_t;

/* The phases every handler shares; a handler numbers its own from API_PHASE_OWN. */
enum api_phase {
    API_PHASE_ANSWERED = -1, /* answered: later calls only swallow the body */
    API_PHASE_NEW = 0,       /* the handler has not run yet */
    API_PHASE_OWN = 1,
};

struct api_req {
    api_server_t *srv;
    struct MHD_Connection *conn;
    char *uri;            /* raw request target, as received (new) */
    const char *query;    /* points into 'uri' after '?', or "" */
    const char *method;
    unsigned method_bit;  /* enum api_method */
    const api_route_t *route; /* the matched row, or NULL */
    const char *param;    /* the raw {id}, {name} or '*' part of the path (in 'uri') */
    size_t param_len;
    int bad_id;           /* the {id} segment decoded to an invalid session id */
    int bad_token;        /* a token was sent and matched none (401 says so) */
    char token_name[64];  /* the matched named token's name ("" for none or unnamed) */
    int token_scope;      /* the matched token's scopes (enum api_scope), 0 without auth */
    uint8_t token_digest[32]; /* the matched token's SHA-256 (valid when 'token_need') */
    int token_need;       /* the scopes the route needed of it; 0 when no token was checked */
    uint64_t tokens_gen;  /* the token set's generation when it was checked */
    api_bucket_t *bucket; /* the named token's rate limits, or NULL */
    unsigned retry_after; /* seconds for a Retry-After header on the answer, 0 = none */
    char *prefixes;       /* the token's session prefixes, NUL-separated (owned), or NULL */
    size_t n_prefixes;    /* 0: the token may touch every session */
    char session[STORE_SESSION_ID_MAX + 1]; /* the decoded {id} */
    size_t session_len;
    /* A misdirected request (cell.c): the owner cell and its address, for the 421's
     * headers; "" otherwise. */
    char owner[CLUSTER_ID_MAX + 1];
    char owner_addr[CLUSTER_ADDR_MAX + 1];
    int cell_write;       /* a write counted in srv->cell_writes[cell_write - 1], or 0 */
    int phase;            /* enum api_phase, then the handler's own */
    int in_first;         /* inside the first call: problems are deferred (see request.c) */
    int close_now;        /* answer at once even in the first call (closes the connection) */
    int reject;           /* a deferred problem, answered once the body was swallowed */
    size_t swallowed;     /* body bytes discarded while a problem is pending */
    char reject_detail[512];
    /* What a read on a worker thread found (store_read_corruption() is per thread); used
     * in a store_corrupt problem instead of this thread's when 'has_store_detail'. */
    char store_detail[320];
    int has_store_detail;
    uint64_t start_ms;    /* monotonic, first call */
    uint64_t start_us;    /* the same in microseconds (access log, latency metrics) */
    char request_id[72];  /* X-Request-Id: the client's (if sane) or generated */
    int status;           /* the status queued, 0 while none */
    int64_t resp_bytes;   /* body bytes of the answer when known, else -1 (streams) */
    store_buf_t body;

    /* Hooks of the request's handler: 'add_headers' (set from the route row) is called
     * for every response queued; 'dispose' once, when the request ends, to free 'ctx'. */
    void (*add_headers)(api_req_t *rq, struct MHD_Response *resp);
    void (*dispose)(api_req_t *rq);
    void *ctx;            /* the handler's own state */

    /* asynchronous store work */
    store_batch_t batch;  /* a plain store batch in flight (api__submit) */
    store_retention_t retention; /* a put's retention policy, borrowed by 'batch' */
    store_buf_t meta;     /* bytes a batch borrows (a session record's metadata) */
    int async_done;
    api_waiter_t waiter;  /* long-poll, and a write waiting for the replica */
    /* --ack replica (ack.c): a committed write waits until the replica reported the feed
     * cursor (ack_pos, ack_idx) before the handler may answer it */
    int ack_pending;
    uint64_t ack_pos;
    uint32_t ack_idx;
    uint64_t ack_since_us; /* monotonic, when it committed */
    int ack_retried;       /* api__ack_retry() waited once already */

    /* parameters of the session routes, kept across calls (handlers/) */
    int body_format;      /* enum ingest_format */
    char agent[STORE_NAME_MAX + 1];
    char native[STORE_NAME_MAX + 1];
    uint64_t offset;      /* 'offset' or 'after' */
    uint64_t first_sequence; /* a trimmed session's first kept sequence (Reel-First-Sequence
                                header of a page read before it), else 0 */
    uint64_t limit;
    uint64_t wait_s;
    int include_raw;
    int skip_copied;      /* the feed passes over events copied in by a shard move */
    int changes;          /* the feed with changes (?changes=1), 'bodies' with it */
    int bodies;
    int unreplicated;     /* the feed past the --ack replica watermark (?unreplicated=1) */
    uint32_t after_index; /* with 'changes': the change index of the cursor 'after' */
    int64_t expected;     /* expected_sequence, -1 = none */
    char types[1024];     /* 'types' as given, split at ',' */
    int markdown;         /* transcript job: answer text/markdown */
};

/* Monotonic clock in ms, and in microseconds. */
uint64_t api__now_ms(void);
uint64_t api__now_us(void);

/* Takes 'n' appended events from the request's token's events/s bucket: REEL_OK, or
 * REEL_ETOO_MANY (rq->retry_after set) or REEL_ETOO_LARGE (more than 2 s of the rate in
 * one request) with the problem queued (auth.c). */
int api__rate_events(api_req_t *rq, size_t n);
/* An append of about 'bytes' to session rq->session (which it may create) under the
 * token's quota: REEL_OK, or REEL_EQUOTA with the problem queued (auth.c).
 * Usage is counted at most once a second per token, so a quota may be passed by what is
 * appended within that second. */
int api__quota_check(api_req_t *rq, uint64_t bytes);
/* The token's usage, counted now, and its limits, as a JSON object into 'out' (auth.c). */
void api__tenant_usage(api_req_t *rq, store_buf_t *out);

/* 1 while the token a request was let in with still is in the token set with the scopes
 * it needed and the same prefixes: a long-poll or a stream checks it again after a SIGHUP
 * reload, so that a revoked token's open streams end. Requests without a token: 1. */
int api__token_still_valid(api_server_t *srv, const uint8_t digest[32], int need,
                           const char *prefixes, size_t n_prefixes);
/* The same for 'rq', cheap while the token set has not changed since it was checked. */
int api__auth_still_valid(api_req_t *rq);

/* ---- Sealed cursors (seal.c) ---- */

#define API_SEAL_LEN 49 /* "t" and 48 hex digits */
/* Derives the keys from the store's secret. REEL_ENOT_FOUND when the store has none. */
int api__seal_init(api_server_t *srv);
/* Position 'v' as a sealed cursor (a different text every call). */
int api__seal(const api_server_t *srv, uint64_t v, char out[API_SEAL_LEN + 1]);
/* The position of sealed cursor 's' ('n' bytes); REEL_EINVALID_PARAMETER when it is not
 * one this store sealed. */
int api__unseal(const api_server_t *srv, const char *s, size_t n, uint64_t *v);
/* Writes the per-token counters as Prometheus text (auth.c). */
void api__token_metrics(api_server_t *srv, store_buf_t *o);
/* Frees the server's token set and rate buckets (auth.c). */
void api__tokens_free(api_server_t *srv);
/* 1 when the request's token may touch session 'id' (it has no prefixes, or 'id' starts
 * with one of them) (auth.c). */
int api__tenant_allows(const api_req_t *rq, const char *id, size_t len);

/* ---- Logs (log.c) ---- */

int api__log_init(api_log_t *lg, const api_config_t *cfg, char *msg, size_t mlen);
void api__log_free(api_log_t *lg);
/* An error-log line naming the request's id. */
void api__log_req(api_req_t *rq, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The request's access-log line (at completion). */
void api__log_access(api_req_t *rq);
/* Sets rq->request_id from X-Request-Id, or a new one. */
void api__request_id(api_req_t *rq);
/* Counts the request's duration in its route's latency histogram (at completion). */
void api__note_latency(api_req_t *rq);

/* ---- request.c ---- */

/* The libmicrohttpd callbacks of a request (registered by api/server.c). */
void *api__on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
void api__on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                       enum MHD_RequestTerminationCode toe);
enum MHD_Result api__on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **req_cls);

/* ---- conn.c ---- */

/* The connection callback: accounting and the limits (registered by api/server.c). */
void api__on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe);
/* The connection state of 'conn', or NULL. */
api_conn_t *api__conn_of(struct MHD_Connection *conn);
/* Closes connections whose request head has been arriving for longer than the request
 * timeout: libmicrohttpd's timeout is an idle timeout, which a client sending one byte at
 * a time never reaches (slowloris). Called by the watcher thread. */
void api__sweep_heads(api_server_t *srv, uint64_t now_ms);
/* Frees the per-address counts (server shutdown). */
void api__conns_free(api_server_t *srv);

/* ---- wait.c ---- */

/* Links 'w' and suspends its connection unless a commit was observed since 'gen' or the
 * server is stopping. Returns 1 if suspended, 0 if the caller should re-check now.
 * MUST be called from a libmicrohttpd callback of that connection. */
int api__wait(api_server_t *srv, api_waiter_t *w, uint64_t gen);
/* api__wait() for request 'rq' with the waiter's fields: what wakes it ('kind', and the
 * session when API_WAIT_SESSION; borrowed) and its deadline (monotonic ms, 0 = none). */
int api__wait_for(api_req_t *rq, api_waiter_t *w, int kind, const char *session, size_t len,
                  uint64_t deadline_ms, uint64_t gen);
/* The current commit generation (read before a check, passed to api__wait()). */
uint64_t api__gen(api_server_t *srv);
/* Wakes the waiters of the touched sessions and every feed waiter (commit hook). */
void api__wake_commit(api_server_t *srv, const store_commit_t *c);
/* Wakes every waiter (a foreign commit, or shutdown when 'stopping' is set). */
void api__wake_all(api_server_t *srv, int stopping);
/* Wakes waiters whose deadline passed. */
void api__wake_expired(api_server_t *srv, uint64_t now_ms);
/* Starts/stops the watcher thread. */
int api__watcher_start(api_server_t *srv);
void api__watcher_stop(api_server_t *srv);
int api__stopping(api_server_t *srv);
/* The commit hook's part: notes the id of this process's commit 'c', so that the watcher
 * does not take it for another process's. */
void api__own_commit(api_server_t *srv, const store_commit_t *c);
/* 1 when the client closed its end; suspended connections are not polled by
 * libmicrohttpd, so streams check their socket themselves. */
int api__peer_closed(struct MHD_Connection *conn);

/* ---- query.c ---- */

/* Percent-decodes 'n' bytes of 's' into 'out' (room for 'cap' bytes plus a NUL); with
 * 'plus', '+' means a space. The decoded length, or -1 for a bad escape, a NUL byte, or a
 * result longer than 'cap'. */
long api__pct_decode(const char *s, size_t n, char *out, size_t cap, int plus);
/* Looks up query parameter 'name' of query string 'query', percent-decoded into 'out'
 * (NUL-terminated). Returns 1 found, 0 absent, or a negative reel_err for a bad encoding
 * or length. */
int api__query_in(const char *query, const char *name, char *out, size_t out_len);
/* The same on the request's query. */
int api__query(const api_req_t *rq, const char *name, char *out, size_t out_len);
/* How many times parameter 'name' occurs in the request's query. */
int api__query_count(const api_req_t *rq, const char *name);
/* Integer parameter in [0, max]: REEL_OK (found or default kept) or
 * REEL_EINVALID_PARAMETER after answering with a problem. */
int api__query_u64(api_req_t *rq, const char *name, uint64_t max, uint64_t *v);
/* Boolean parameter (true/false/1/0). */
int api__query_bool(api_req_t *rq, const char *name, int *v);
/* The value of request header 'name' (borrowed until the request ends), or NULL. */
const char *api__header(const api_req_t *rq, const char *name);

/* ---- reply.c ---- */

/* Answers with status and JSON body 'b' (its block is taken over; 'b' becomes empty). */
enum MHD_Result api__reply_json(api_req_t *rq, int status, store_buf_t *b);
/* Answers with a body of 'type' (copied). */
enum MHD_Result api__reply_text(api_req_t *rq, int status, const char *type, const char *text,
                                size_t len);
/* Answers with the problem for reel_err 'err'; 'fmt' gives the detail naming the value. */
enum MHD_Result api__problem(api_req_t *rq, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The problem response for 'err' without queueing it, for callers that add headers
 * before api__queue(rq, reel_err_status(err), resp). NULL when out of memory. Only after
 * the first call of a request (problems in the first call are deferred, see request.c). */
struct MHD_Response *api__problem_response(api_req_t *rq, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Queues 'resp' with the common headers (CORS, the request's add_headers hook), then
 * destroys our reference. */
enum MHD_Result api__queue(api_req_t *rq, int status, struct MHD_Response *resp);
/* Answers OPTIONS on an existing route: 204 with its Allow list and, for a CORS
 * preflight, Access-Control-Allow-Methods and -Headers (what the route takes); the grant
 * (Access-Control-Allow-Origin, -Max-Age) only when api__cors_allowed(). */
enum MHD_Result api__options(api_req_t *rq);
/* 1 when --cors-origin grants the request's origin: "*", or the request has no Origin
 * header (not a browser's cross-origin request), or its Origin is the configured one. */
int api__cors_allowed(const api_req_t *rq);

/* ---- body.c ---- */

/* Collects the body into rq->body (bounded by max_body_bytes; past it the rest is
 * discarded and rq->reject set). Returns 1 while more is coming (the caller returns
 * MHD_YES), 0 when the whole body is there, -1 when the body has taken longer than the
 * request timeout (the caller returns MHD_NO, closing the connection: slowloris). */
int api__collect_body(api_req_t *rq, const char *data, size_t *size);
/* After api__collect_body() returned 0: REEL_OK when the body is there in full, else
 * answers the deferred or out-of-memory problem into '*r' and returns its error. */
int api__body_complete(api_req_t *rq, enum MHD_Result *r);
/* Checks a request's declared body size against max_body_bytes; answers 413 and
 * returns 0 when it is too big, else returns 1. */
int api__body_precheck(api_req_t *rq, enum MHD_Result *r);
/* A POST/PUT body, one call per libmicrohttpd callback: in API_PHASE_NEW it checks the
 * declared size (api__body_precheck()) and moves to 'body_phase', then collects. Returns 1
 * while more is coming and -1 after answering (both: return '*r'), 0 once the whole body
 * is in rq->body (api__body_complete() passed). */
int api__body_step(api_req_t *rq, const char *data, size_t *size, int body_phase,
                   enum MHD_Result *r);
/* The same for a JSON body: a Content-Type other than application/json is answered 415
 * first (none is taken as JSON). */
int api__json_body_step(api_req_t *rq, const char *data, size_t *size, int body_phase,
                        enum MHD_Result *r);
/* ---- --ack replica (ack.c) ---- */

/* Notes, on the committer thread, that write 'b' (completed for rq) must reach the
 * replica before it is answered: with --ack replica and a batch that committed events or
 * record changes. */
void api__ack_note(api_req_t *rq, const store_batch_t *b);
/* Called before the handler on every call: while a noted write is not yet on the replica
 * it suspends (1, '*r' = MHD_YES) until the watermark reaches it, or answers 503
 * replica_behind after --replica-wait-ms (1). 0: nothing to wait for, the handler goes on. */
int api__ack_gate(api_req_t *rq, enum MHD_Result *r);
/* The feed's last cursor (position, change index) now, unclipped; (0, 0) on error. */
void api__feed_tail(api_server_t *srv, uint64_t *pos, uint32_t *idx);
/* A retried write that a handler answers without a batch (a Durable Streams producer's
 * duplicate): its first copy may not be on the replica yet, so with --ack replica the
 * answer waits like a write, for the feed's end now (at or past that copy). Once per
 * request: 1 when suspended or answered 503 ('*r' set: return it; the handler is called
 * again once the wait is over and then answers), 0 to answer now. */
int api__ack_retry(api_req_t *rq, enum MHD_Result *r);

/* Asynchronous store work: api__async_begin() counts the batch and suspends the
 * connection (REEL_EUNAVAILABLE without suspending when the server is stopping); the
 * caller then submits with done = api__batch_done and arg = rq, and on a failed submit
 * calls api__async_failed(). When resumed the handler finds rq->async_done set. */
int api__async_begin(api_req_t *rq);
void api__async_failed(api_req_t *rq, store_batch_t *b, int rc);
void api__batch_done(store_batch_t *b, void *arg);
/* The three steps above for a plain store batch. */
enum MHD_Result api__submit(api_req_t *rq, store_batch_t *b);
/* Long work (a transcript, stats, verify, a redaction) on a detached thread of its own:
 * 'fn(arg)' runs there and completes the request like a store batch (rq->batch.err, then
 * api__batch_done(&rq->batch, rq)), and decrements srv->jobs. At most 'max' run at once
 * (429 past them, naming 'what'). The request moves to 'phase'. On any failure to start,
 * 'release(arg)' is called and the answer is queued. */
enum MHD_Result api__job_start(api_req_t *rq, void *(*fn)(void *), void *arg,
                               void (*release)(void *), int max, const char *what, int phase);

/* ---- cell.c ---- */

/* Installs the cluster map at start (takes 'm' over on success). */
int api__cell_init(api_server_t *srv, cluster_map_t *m, const char *cell, char *msg,
                   size_t mlen);
void api__cell_free(api_server_t *srv);
/* The 421 rule: 1 when this cell owns the request's session or stream (or the route names
 * none, or there is no map); else 0 with the problem answered into '*r'. */
int api__cell_check(api_req_t *rq, enum MHD_Result *r);
/* 1 when this cell owns the Durable Stream 'path' (decoded, 'len' bytes), or there is no
 * map; else 0 with the owner's id in 'owner'. For requests that name a second stream
 * (a fork's source), which must live on the same cell. */
int api__cell_owns_stream(api_server_t *srv, const char *path, size_t len, char *owner,
                          size_t cap);
/* In cluster mode, a new copy of the request's routing key ('*len' bytes), or NULL when
 * it names no session or stream, the server is a single node, or out of memory. */
char *api__cell_key_dup(api_req_t *rq, size_t *len);
/* 1 while the current map gives routing key 'key' to this cell; checked again only when
 * the epoch moved past '*epoch' (then updated). A long-lived answer (SSE) ends when 0. */
int api__cell_still_owns(api_server_t *srv, const char *key, size_t len, uint64_t *epoch);
/* A request ends: its write no longer counts as in flight (cell.c). */
void api__cell_done(api_req_t *rq);
/* Checks, installs and stores (the --cluster-map file) the map 'text', then waits up to
 * 'drain_ms' for the writes admitted under older epochs to end; '*drained' says whether
 * they did. REEL_OK, or an error with 'msg' naming why (the map was not installed). */
int api__cell_push(api_server_t *srv, const char *text, size_t len, unsigned drain_ms,
                   int *drained, char *msg, size_t mlen);
/* The cluster metrics (cell, epoch, owned shards, 421 answers) in cluster mode. */
void api__cell_metrics(api_server_t *srv, store_buf_t *o);
/* Reel-Cell and Reel-Cluster-Epoch on every answer in cluster mode; the owner's headers
 * on a 421. */
void api__cell_headers(api_req_t *rq, struct MHD_Response *resp);

/* ---- auth.c ---- */

/* Checks the bearer token (header, or ?access_token= when 'allow_query') for 'need'
 * (enum api_scope bits). REEL_OK, REEL_EUNAUTHORIZED or REEL_EFORBIDDEN. */
int api__auth(api_req_t *rq, int need, int allow_query);
int api__tokens_init(api_server_t *srv, const api_token_t *t, size_t n);

#endif
