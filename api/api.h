/* api.h -- reel's HTTP server (libmicrohttpd 0.9.75) over the store.
 *
 * The server speaks the routes documented in docs/HTTP.md: appends,
 * offset reads with long-poll, Server-Sent Events per session and over the global feed,
 * session records, restore, transcript, stats, streamed export, health, Prometheus
 * metrics, the /ui/ inspector, and the Durable Streams protocol at /v1/stream/{path}
 * (api/ds/, docs/durable-streams.md). docs/DESIGN.md "Layout" describes the three
 * floors of api/ and where a new route goes.
 *
 * Threading model:
 *  - libmicrohttpd runs a small pool of epoll threads (api_config_t.threads, at most 2
 *    by default). Handlers run there and never block: an append is handed to the store's
 *    committer with store_submit() and its connection is suspended; the committer's
 *    completion callback resumes it once the batch is durable (or failed).
 *  - Long-poll and caught-up SSE connections are suspended too. They are resumed by the
 *    store's commit hook (appends made by this process), by a watcher thread that polls
 *    store_tail_position() every 50 ms (appends made by another process on the same data
 *    directory), or by a deadline (long-poll timeout, SSE heartbeat).
 *  - Reads run on short store read transactions inside the handler or the SSE content
 *    reader; no read transaction is ever held across a network wait. Transcript and stats,
 *    which scan whole ranges, run on a thread each (at most 4) with the connection
 *    suspended, like an append.
 *
 * Rules:
 *  - api_server_start() starts the threads and returns; api_server_stop() answers every
 *    waiting client, waits for in-flight appends, stops the threads and frees the server.
 *    The caller closes the store after api_server_stop(), never before.
 *  - The configuration and the token array are borrowed during api_server_start() only:
 *    the server copies what it keeps (tokens are kept as SHA-256 digests).
 *  - Errors: REEL_OK or a reel_err. HTTP problems are served as RFC 7807 bodies from the
 *    one error table (store/err.h), never with codes of their own.
 */
#ifndef REEL_API_H
#define REEL_API_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* ---- Configuration ---- */

/* Token scopes are bit sets: a route needs its bit in the token's scope (GET/HEAD: read;
 * POST/PUT: append; DELETE: delete). The store-wide routes (the all-sessions feed, stats
 * and export of the whole store, metrics) also need a token that is not limited to session
 * prefixes. 'admin' is recorded for the token tools and later routes; no route needs it
 * yet (docs/HTTP.md "Tenants"). */
enum api_scope {
    API_SCOPE_READ = 1,   /* every GET route (and metrics) */
    API_SCOPE_APPEND = 2, /* POST events, POST/PUT session records */
    API_SCOPE_DELETE = 4, /* DELETE of a session or stream */
    API_SCOPE_ADMIN = 8,
    API_SCOPE_FULL = 15,  /* everything */
};

/* A token the server accepts. A token is either given as its text ('token', the --token
 * and --tokens-file forms) or only by its SHA-256 ('token' NULL, 'digest' set: the named
 * tokens of a --tokens file, which never holds secrets). A named token may be limited to
 * sessions whose ids start with one of 'prefixes' (a tenant, docs/HTTP.md "Tenants"). */
typedef struct api_token {
    const char *token;    /* the bearer token text (borrowed), or NULL */
    uint8_t digest[32];   /* SHA-256 of the token text, when 'token' is NULL */
    int scope;            /* enum api_scope bits */
    const char *name;     /* NULL for the unnamed forms */
    char **prefixes;      /* session-id prefixes (borrowed); NULL/0 = every session */
    size_t n_prefixes;
    double rate_requests; /* requests per second (token bucket, 1 s burst); 0 = no limit */
    double rate_events;   /* appended events per second (2 s burst); 0 = no limit */
    uint64_t quota_bytes; /* stored bytes of its sessions; 0 = no quota */
    uint64_t quota_sessions; /* sessions (not deleted) under its prefixes; 0 = no quota */
} api_token_t;

typedef struct api_limits {
    size_t max_body_bytes;            /* request body; larger -> 413 */
    size_t max_event_bytes;           /* JSON bytes of one event; larger -> 413 */
    int max_depth;                    /* JSON nesting of one event; deeper -> 400 */
    unsigned max_connections;         /* open connections in total; more -> 429 */
    unsigned max_connections_per_ip;  /* open connections per client address; more -> 429 */
    unsigned request_timeout;         /* seconds: idle connections and slow bodies are closed */
    unsigned max_sse_clients;         /* concurrent SSE streams; more -> 429 */
    size_t sse_buffer_bytes;          /* bytes one SSE client may have buffered in the server */
    unsigned ds_long_poll_ms;         /* a Durable Streams long-poll answers 204 after this */
    uint64_t max_sink_lag;            /* appends wait past this sink lag (positions); 0 = off */
    unsigned sink_wait_ms;            /* ... at most this long, then 503 with Retry-After */
    /* --ack replica (docs/CLUSTER.md "Acknowledged by a replica"): an acknowledged write
     * waits until the replica sink reported it committed to a synchronously replicated
     * PostgreSQL, at most replica_wait_ms (then 503 replica_behind), and reads stop at
     * what it reported (the store's visible bound). 0: --ack local. */
    int ack_replica;
    unsigned replica_wait_ms;
    char replica_sink[64];            /* the sink counted; "" = "postgres-" + the cell (or 0) */
} api_limits_t;

/* Defaults (docs/HTTP.md): 16 MiB body, 8 MiB event, depth 512, 1024 connections,
 * 256 per IP, 30 s timeout, 1000 SSE clients, 256 KiB SSE buffer,
 * 3 s Durable Streams long-poll, --ack local (5 s replica wait when replica). */
#define API_LIMITS_DEFAULT                                                                 \
    {16u << 20, 8u << 20, 512, 1024, 256, 30, 1000, 256u << 10, 3000, 0, 2000, 0,               \
     5000, ""}

typedef struct api_config {
    const char *listen;          /* "HOST:PORT", "[v6]:PORT"; port 0 picks a free port */
    const char *cors_origin;     /* NULL = no CORS headers; "*" or one origin */
    const api_token_t *tokens;   /* NULL/0 = no auth */
    size_t n_tokens;
    api_limits_t limits;
    unsigned threads;            /* libmicrohttpd worker threads; 0 = 2 */
    const char *access_log;      /* file, "-" (standard error) or NULL (off) */
    const char *error_log;       /* file, or NULL / "-" (standard error) */
    int log_json;                /* 1: JSON lines, 0: text */
    int log_level;               /* enum api_log_level: the error log's threshold */
    /* More lines for GET /metrics (e.g. the retention janitor's, retain_metrics()): called
     * on a worker thread with 'metrics_arg', which must outlive the server. NULL = none. */
    void (*metrics)(void *arg, store_buf_t *out);
    void *metrics_arg;
    /* Cluster mode (docs/CLUSTER.md): the map, taken over by api_server_start() whether
     * it succeeds or not (the one exception to the borrowing rule above), and this cell's
     * id in it. NULL: a single node, which owns every session. */
    struct cluster_map *cluster;
    const char *cell;
    /* The map's file: a map pushed to the cell (PUT /v1/cluster/map, `reel cluster move`)
     * replaces it, so a restart reads the map in force. NULL: pushed maps are not kept. */
    const char *cluster_map_path;
} api_config_t;

/* Error-log levels: each includes the ones before it. */
enum api_log_level { API_LOG_ERROR = 0, API_LOG_WARN, API_LOG_INFO, API_LOG_DEBUG };

/* "error", "warn", "info", "debug" -> enum api_log_level; -1 if none. */
int api_log_level_parse(const char *s);

/* Reads a tokens file: one "TOKEN SCOPE" per line (SCOPE is full, read or append),
 * blank lines and lines starting with '#' ignored. On success '*out' is a new array of
 * '*n' tokens (free with api_tokens_free()). On error returns REEL_EINVALID_PARAMETER or
 * REEL_EIO and writes a message naming the file and line into 'msg'. */
int api_tokens_load(const char *path, api_token_t **out, size_t *n, char *msg, size_t msg_len);
void api_tokens_free(api_token_t *tokens, size_t n);

/* Parses "full", "read", "append", "delete" or "admin" into an enum api_scope; -1 if none. */
int api_scope_parse(const char *s);
/* The name of scope bit 'bit' (0: read, 1: append, 2: delete, 3: admin), NULL past them. */
const char *api_scope_name(int bit);

/* Reads a named-tokens file (--tokens FILE, written by `reel tokens`): one JSON object per
 * line, {"name":N,"sha256":HEX,"scopes":["read",...],"prefixes":["acme/",...]}, '#'
 * lines and blank lines ignored; optional "rate":{"requests":R,"events":E} per second and
 * "quota":{"bytes":B,"sessions":S}.
 * Same results and errors as api_tokens_load(). */
int api_tokens_load_named(const char *path, api_token_t **out, size_t *n, char *msg,
                          size_t msg_len);

/* ---- Lifecycle ---- */

typedef struct api_server api_server_t;

/* Starts serving store 's' (borrowed; it must outlive the server). On success '*out'
 * is the new server. Errors: REEL_EINVALID_PARAMETER (bad listen address; 'msg' says
 * why), REEL_EIO (cannot bind or start threads), REEL_ENOMEM. 'msg' may be NULL. */
int api_server_start(store_t *s, const api_config_t *cfg, api_server_t **out, char *msg,
                     size_t msg_len);

/* Stops serving (see the rules above) and frees 'srv'. NULL is allowed. */
void api_server_stop(api_server_t *srv);

/* The bound TCP port (useful with port 0). */
unsigned api_server_port(const api_server_t *srv);

/* A line in the server's error log (text or JSON, as configured), if 'level' passes the
 * threshold. Thread-safe. */
void api_server_log(api_server_t *srv, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Opens the log files again by name (after logrotate moved them; SIGHUP). A file that
 * cannot be opened keeps logging to the old one: REEL_EIO and 'msg' say which. */
int api_server_reopen_logs(api_server_t *srv, char *msg, size_t mlen);

/* Replaces the tokens (SIGHUP re-reads the tokens file): the next request of every
 * connection, open ones included, is checked against the new set. REEL_ENOMEM leaves the
 * old set. */
int api_server_set_tokens(api_server_t *srv, const api_token_t *t, size_t n);

/* Replaces the cluster map (SIGHUP re-reads --cluster-map), taking 'm' over in every case.
 * Refused, keeping the old map: a map without this server's cell (REEL_EINVALID_PARAMETER),
 * an epoch lower than the store has accepted, or the current epoch with other owners
 * (REEL_ECONFLICT). The new epoch is stored durably before the map is used. 'msg' says
 * why. REEL_EINVALID_PARAMETER also when the server was not started in cluster mode. */
int api_server_set_cluster(api_server_t *srv, struct cluster_map *m, char *msg, size_t mlen);

/* 1 when the server listens on a loopback address only (serve warns otherwise when no
 * token is configured). */
int api_server_loopback(const api_server_t *srv);

#endif
