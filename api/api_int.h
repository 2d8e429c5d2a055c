/* api_int.h -- private declarations shared by the files of api/ (not part of the API).
 *
 * Files: server.c (daemon, connection accounting, dispatch, shutdown), wait.c (suspended
 * connections and their wake-ups), http.c (URIs, queries, responses, problems, CORS),
 * auth.c (tokens), events.c (append and read routes), sessions.c (session records),
 * sse.c (Server-Sent Events), metrics.c (health and /metrics), projections.c (restore,
 * transcript, stats and export, served by replay/), ui.c (the /ui/ inspector), stream*.c
 * (the Durable Streams protocol at /v1/stream/{path}; private header api/stream_int.h).
 *
 * Request lifecycle: the URI log callback allocates an api_req_t (libmicrohttpd hands it
 * back to every call of the access handler as *req_cls); the completion callback frees
 * it. A handler answers with api__reply_*() or suspends the connection through
 * api__suspend() / api__submit(); when resumed, libmicrohttpd calls the access handler
 * again and the route's handler continues from the request's 'phase'.
 */
#ifndef REEL_API_INT_H
#define REEL_API_INT_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "api/api.h"
#include "ingest/ingest.h"
#include "store/buf.h"
#include "store/store.h"

#define API_HEARTBEAT_MS 10000    /* SSE comment heartbeat; SPEC asks for at most 15 s */
#define API_WATCH_MS 50           /* watcher period: cross-process appends within 100 ms */
#define API_MAX_WAIT_S 60         /* long-poll 'wait' ceiling */
#define API_DEFAULT_LIMIT 100     /* page size when 'limit' is absent */
#define API_MAX_LIMIT 10000       /* page size ceiling */
#define API_MAX_PAGE_BYTES (16u << 20) /* a page stops growing past this (at least 1 event) */
#define API_MAX_TYPES 32          /* names in one 'types' filter */

/* ---- Waiting (wait.c) ---- */

enum api_wait_kind { API_WAIT_SESSION = 0, API_WAIT_FEED = 1, API_WAIT_COMMIT = 2 };

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

/* ---- The server ---- */

typedef struct api_token_hash {
    uint8_t digest[32]; /* SHA-256 of the token text */
    int scope;
} api_token_hash_t;

typedef struct api_evcache api_evcache_t;

struct api_server {
    store_t *store;
    api_evcache_t *evcache;     /* NULL when off (evcache.c) */
    struct MHD_Daemon *daemon;
    api_limits_t lim;
    char *cors_origin;
    api_token_hash_t *tokens;
    size_t n_tokens;
    unsigned port;

    pthread_mutex_t lock;       /* guards the waiter list, 'gen', 'stopping' */
    api_waiter_t waiters;       /* list head (sentinel) */
    uint64_t gen;               /* bumped on every observed commit */
    int stopping;
    atomic_uint_fast64_t seen_tail; /* last tail position seen by the hook or the watcher */

    pthread_t watcher;
    int watcher_started;
    pthread_mutex_t tick_lock;  /* with tick_cond: lets stop interrupt the watcher's sleep */
    pthread_cond_t tick_cond;
    int watch_stop;             /* guarded by tick_lock */

    /* connection accounting; a lock of its own because libmicrohttpd calls the connection
     * callback from inside its own bookkeeping, while 'lock' is held around calls into
     * libmicrohttpd (suspend/resume): one lock for both could invert the lock order. */
    pthread_mutex_t conn_lock;
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

enum api_route {
    API_R_NONE = 0,
    API_R_HEALTH,
    API_R_METRICS,
    API_R_SESSIONS,       /* /v1/sessions */
    API_R_SESSION,        /* /v1/sessions/{id} */
    API_R_EVENTS,         /* /v1/sessions/{id}/events */
    API_R_EVENTS_SSE,     /* /v1/sessions/{id}/events/sse */
    API_R_FEED,           /* /v1/events */
    API_R_FEED_SSE,       /* /v1/events/sse */
    API_R_RESTORE,        /* /v1/sessions/{id}/restore */
    API_R_TRANSCRIPT,     /* /v1/sessions/{id}/transcript */
    API_R_SESSION_EXPORT, /* /v1/sessions/{id}/export */
    API_R_STATS,          /* /v1/stats */
    API_R_EXPORT,         /* /v1/export */
    API_R_VERIFY,         /* /v1/sessions/{id}/verify */
    API_R_UI,             /* /ui, /ui/ */
    API_R_UI_JS,          /* /ui/<file> */
    API_R_STREAM,         /* /v1/stream/{path}: Durable Streams protocol (stream.c) */
};

typedef struct api_req {
    api_server_t *srv;
    struct MHD_Connection *conn;
    char *uri;            /* raw request target, as received (new) */
    const char *query;    /* points into 'uri' after '?', or "" */
    const char *method;
    int route;            /* enum api_route */
    int bad_id;           /* the {id} segment decoded to an invalid session id */
    char session[STORE_SESSION_ID_MAX + 1];
    size_t session_len;
    int phase;            /* 0 new; then per handler */
    int in_first;         /* inside the first call: problems are deferred (see server.c) */
    int close_now;        /* answer at once even in the first call (closes the connection) */
    int reject;           /* a deferred problem, answered once the body was swallowed */
    size_t swallowed;     /* body bytes discarded while a problem is pending */
    char reject_detail[512];
    uint64_t start_ms;    /* monotonic, first call */
    store_buf_t body;
    int body_format;      /* enum ingest_format */

    /* asynchronous work */
    ingest_batch_t *ib;   /* an append in flight (new) */
    store_batch_t batch;  /* a session put/delete in flight */
    store_buf_t meta;     /* msgpack metadata of a session put */
    char agent[STORE_NAME_MAX + 1];
    char native[STORE_NAME_MAX + 1];
    int async_done;
    api_waiter_t waiter;  /* long-poll */

    /* parsed read parameters (events.c) */
    uint64_t offset;      /* 'offset' or 'after' */
    uint64_t limit;
    uint64_t wait_s;
    int include_raw;
    int64_t expected;     /* expected_sequence, -1 = none */
    char types[1024];     /* 'types' as given, split at ',' */
    int markdown;         /* transcript job: answer text/markdown */
    void *stream;         /* Durable Streams request state (new; freed by api__stream_free) */
} api_req_t;

/* Monotonic clock in ms. */
uint64_t api__now_ms(void);

/* ---- wait.c ---- */

/* Links 'w' and suspends its connection unless a commit was observed since 'gen' or the
 * server is stopping. Returns 1 if suspended, 0 if the caller should re-check now.
 * MUST be called from a libmicrohttpd callback of that connection. */
int api__wait(api_server_t *srv, api_waiter_t *w, uint64_t gen);
/* The current commit generation (read before a check, passed to api__wait()). */
uint64_t api__gen(api_server_t *srv);
/* Wakes the waiters of the touched sessions and every feed waiter (commit hook). */
void api__wake_commit(api_server_t *srv, const store_commit_t *c);
/* Wakes every waiter (a foreign commit, or shutdown when 'stopping' is set). */
void api__wake_all(api_server_t *srv, int stopping);
/* Wakes waiters whose deadline passed. */
void api__wake_expired(api_server_t *srv, uint64_t now_ms);
/* Starts/stops the watcher thread. */
/* Closes connections whose request head has been arriving for longer than the request
 * timeout: libmicrohttpd's timeout is an idle timeout, which a client sending one byte at
 * a time never reaches (slowloris). Called by the watcher thread. */
void api__sweep_heads(api_server_t *srv, uint64_t now_ms);
int api__watcher_start(api_server_t *srv);
void api__watcher_stop(api_server_t *srv);
int api__stopping(api_server_t *srv);

/* ---- http.c ---- */

/* Parses the raw target into route, session id and query. */
void api__route(api_req_t *rq);
/* Looks up query parameter 'name', percent-decoded into 'out' (NUL-terminated).
 * Returns 1 found, 0 absent, or a negative reel_err for a bad encoding or length. */
int api__query(const api_req_t *rq, const char *name, char *out, size_t out_len);
/* Integer parameter in [0, max]: REEL_OK (found or default kept) or
 * REEL_EINVALID_PARAMETER after answering with a problem. */
int api__query_u64(api_req_t *rq, const char *name, uint64_t max, uint64_t *v);
/* Boolean parameter (true/false/1/0). */
int api__query_bool(api_req_t *rq, const char *name, int *v);

/* Answers with status and JSON body 'b' (its block is taken over; 'b' becomes empty). */
enum MHD_Result api__reply_json(api_req_t *rq, int status, store_buf_t *b);
/* Answers with a body of 'type' (copied). */
enum MHD_Result api__reply_text(api_req_t *rq, int status, const char *type, const char *text,
                                size_t len);
/* Answers with the problem for reel_err 'err'; 'fmt' gives the detail naming the value. */
enum MHD_Result api__problem(api_req_t *rq, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Queues 'resp' with the common headers (CORS), then destroys our reference. */
enum MHD_Result api__queue(api_req_t *rq, int status, struct MHD_Response *resp);
/* Adds the CORS headers when configured. */
void api__cors(api_server_t *srv, struct MHD_Response *resp);
/* Answers a CORS preflight (OPTIONS). */
enum MHD_Result api__preflight(api_req_t *rq);
/* The value of request header 'name' (borrowed until the request ends), or NULL. */
const char *api__header(const api_req_t *rq, const char *name);

/* ---- auth.c ---- */

/* Checks the bearer token (header, or ?access_token= when 'allow_query') for 'need'
 * (enum api_scope bits). REEL_OK, REEL_EUNAUTHORIZED or REEL_EFORBIDDEN. */
int api__auth(api_req_t *rq, int need, int allow_query);
int api__tokens_init(api_server_t *srv, const api_token_t *t, size_t n);

/* ---- routes ---- */

/* REEL_OK if session 'id' exists and is not deleted; REEL_ESESSION_NOT_FOUND or
 * REEL_EGONE otherwise (events.c). */
int api__session_readable(store_read_t *r, const char *id, size_t len);
enum MHD_Result api__events_append(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__events_read(api_req_t *rq);
enum MHD_Result api__feed_read(api_req_t *rq);
enum MHD_Result api__session_route(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__sessions_list(api_req_t *rq);
enum MHD_Result api__sse_start(api_req_t *rq, int feed);
enum MHD_Result api__health(api_req_t *rq);
enum MHD_Result api__restore(api_req_t *rq);
enum MHD_Result api__transcript(api_req_t *rq);
enum MHD_Result api__stats(api_req_t *rq);
enum MHD_Result api__verify(api_req_t *rq);
enum MHD_Result api__session_export(api_req_t *rq);
enum MHD_Result api__export(api_req_t *rq);
/* The web inspector's page, or its script when 'script_file' (ui.c). */
enum MHD_Result api__ui(api_req_t *rq, int script_file);
enum MHD_Result api__metrics(api_req_t *rq);
/* The Durable Streams protocol at /v1/stream/{path} (stream.c, docs/durable-streams.md). */
enum MHD_Result api__stream(api_req_t *rq, const char *data, size_t *size);
/* Frees rq->stream (request completion). */
void api__stream_free(api_req_t *rq);
/* Adds the headers every /v1/stream response carries (security, CORS exposure). */
void api__stream_headers(api_req_t *rq, struct MHD_Response *resp);

/* Collects the body into rq->body (bounded by max_body_bytes; past it the rest is
 * discarded and rq->reject set). Returns 1 while more is coming (the caller returns
 * MHD_YES), 0 when the whole body is there, -1 when the body has taken longer than the
 * request timeout (the caller returns MHD_NO, closing the connection: slowloris). */
int api__collect_body(api_req_t *rq, const char *data, size_t *size);
/* Checks a request's declared body size against max_body_bytes; answers 413 and
 * returns 0 when it is too big, else returns 1. */
int api__body_precheck(api_req_t *rq, enum MHD_Result *r);
/* Asynchronous store work: api__async_begin() counts the batch and suspends the
 * connection (REEL_EUNAVAILABLE without suspending when the server is stopping); the
 * caller then submits with done = api__batch_done and arg = rq, and on a failed submit
 * calls api__async_failed(). When resumed the handler finds rq->async_done set. */
int api__async_begin(api_req_t *rq);
void api__async_failed(api_req_t *rq, store_batch_t *b, int rc);
void api__batch_done(store_batch_t *b, void *arg);
/* The three steps above for a plain store batch. */
enum MHD_Result api__submit(api_req_t *rq, store_batch_t *b);

/* Percent-decodes 'n' bytes of 's' into 'out' (room for 'cap' bytes plus a NUL); with
 * 'plus', '+' means a space. The decoded length, or -1 for a bad escape, a NUL byte, or a
 * result longer than 'cap'. (http.c) */
long api__pct_decode(const char *s, size_t n, char *out, size_t cap, int plus);
/* 1 when the client closed its end; suspended connections are not polled by
 * libmicrohttpd, so streams check their socket themselves. (wait.c) */
int api__peer_closed(struct MHD_Connection *conn);
/* Takes one of the --max-sse-clients slots (released by the stream's free callback):
 * 0 when taken, -1 after answering 429 into '*answered'. (sse.c) */
int api__sse_slot(api_req_t *rq, enum MHD_Result *answered);

/* evcache.c: rendered event JSON by position (rules at the top of evcache.c). */
api_evcache_t *api__evcache_new(size_t max_bytes); /* NULL when max_bytes is 0 */
void api__evcache_free(api_evcache_t *c);
/* replay_write_event() through the cache: the same bytes, copied when kept. */
int api__render_event(api_server_t *srv, store_buf_t *out, const store_event_view_t *ev,
                      int include_raw);
/* The same with a void * server, for replay_restore_opts_t.render. */
int api__render_event_cb(void *srv, store_buf_t *out, const store_event_view_t *ev,
                         int include_raw);
void api__evcache_stats(api_evcache_t *c, uint64_t *hits, uint64_t *misses, uint64_t *bytes);

#endif
