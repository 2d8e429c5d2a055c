/* live.h -- the middle floor of api/: what readers of the log share, whatever protocol
 * serves them (see api/core/core.h for the floors).
 *
 * sse.c is the one Server-Sent Events loop: a pull model in which a client holds only
 * its position. libmicrohttpd calls the content reader when the socket can take more
 * bytes; the reader hands out what is left of its buffer, or asks the stream's 'fill' op
 * for the next bounded batch, read on a short read transaction. When caught up it
 * suspends the connection as a waiter and returns 0; a commit, the watcher or the
 * heartbeat deadline resumes it. Nothing is queued per client beyond that one buffer, so
 * a reader that stops reading costs at most one batch plus libmicrohttpd's connection
 * memory; it can reconnect from its last position and miss nothing. The session feeds
 * (api/handlers/sse.c) and Durable Streams' live=sse (api/ds/read.c) are ops on it.
 *
 * render.c serves the envelopes the store keeps (store/cache.c);
 * access.c the time of the last read of each session (sliding TTLs).
 *
 * Threads: a stream's ops run on the libmicrohttpd thread that calls its content reader,
 * one call at a time; the stream is freed by libmicrohttpd through api__sse_response().
 */
#ifndef REEL_API_LIVE_H
#define REEL_API_LIVE_H

#include "api/core/core.h"

/* ---- Server-Sent Events (sse.c) ---- */

typedef struct api_sse api_sse_t;

typedef struct api_sse_ops {
    /* Appends the next messages to s->out from one short read. Returns REEL_OK and sets
     * '*moved' when the position advanced (with or without output, e.g. past filtered
     * events); sets s->finished to end the stream once 'out' is sent. Any other return
     * ends the stream with an error. */
    int (*fill)(api_sse_t *s, int *moved);
    /* Appends a keep-alive to s->out (a comment or a protocol's control event). */
    void (*heartbeat)(api_sse_t *s);
    /* Frees the owner's state (the struct that embeds 's'); called once. */
    void (*dispose)(api_sse_t *s);
} api_sse_ops_t;

/* Embedded in the owner's state; set up by api__sse_init(). */
struct api_sse {
    const api_sse_ops_t *ops;
    api_server_t *srv;
    api_waiter_t w;          /* wake-ups: kind and session set by the owner */
    store_buf_t out;         /* bytes read and not yet handed to libmicrohttpd */
    size_t off;              /* bytes of 'out' already handed out */
    uint64_t start_ms, last_write_ms;
    uint64_t heartbeat_ms;   /* keep-alive after this much silence */
    uint64_t max_ms;         /* the response ends after this long; 0 = never */
    int finished;            /* end the stream once 'out' is sent */
    /* The token it was opened with (api__auth_still_valid()): a SIGHUP reload that
     * revokes it, takes a scope it needed or changes its prefixes ends the stream. */
    uint8_t token_digest[32];
    int token_need;          /* 0: opened without a token */
    uint64_t tokens_gen;
    /* Cluster mode: the routing key of the stream's session (owned; NULL for the feed or
     * a single node) and the epoch it was last found ours under. A new map that gives the
     * session to another cell ends the stream (a moved shard: docs/CLUSTER.md). */
    char *cell_key;
    size_t cell_key_len;
    uint64_t cell_epoch;
    char *prefixes;          /* owned copy of the request's, NUL-separated */
    size_t n_prefixes;       /* > 0: a tenant's stream, whose filter skips other tenants'
                                events silently (no note that would tell how many) */
};

/* Takes one of the --max-sse-clients slots (released when the stream is freed): 0 when
 * taken, -1 after answering 429 into '*answered'. */
int api__sse_slot(api_req_t *rq, enum MHD_Result *answered);
/* A slot and 'size' zeroed bytes for the owner's state (whose first member is the
 * api_sse_t); NULL after answering 429 or 500 into '*answered'. */
void *api__sse_new(api_req_t *rq, size_t size, enum MHD_Result *answered);
/* Sets up 's' for request 'rq' (which holds a slot). */
void api__sse_init(api_sse_t *s, const api_sse_ops_t *ops, api_req_t *rq, uint64_t heartbeat_ms,
                   uint64_t max_ms);
/* The response for 's' (Content-Type text/event-stream, X-Accel-Buffering: no); the
 * caller adds its headers and queues it. From now on libmicrohttpd owns 's' and frees it
 * (ops->dispose) with the response. NULL when out of memory ('s' is freed). */
struct MHD_Response *api__sse_response(api_sse_t *s, size_t block);

/* ---- Last reads (access.c) ---- */

/* The table lives in api_server.access (made by api/server.c; NULL = reads not kept). */
api_access_t *api__access_new(void);
void api__access_free(api_access_t *a);
/* Notes a read of session 'sid' now (wall clock). */
void api__access_touch(api_server_t *srv, const char *sid, size_t len);
/* The last read of session 'sid' noted (Unix ms), or 0. */
int64_t api__access_last(api_server_t *srv, const char *sid, size_t len);

/* ---- Rendered events (render.c) ---- */

/* The envelope of 'ev': its cached one (store_read_t.envelopes) when the read gave it,
 * else replay_write_event() ('flags': REPLAY_RAW renders every time; REPLAY_NO_POSITION
 * cuts the envelope's position). */
int api__render_event(api_server_t *srv, store_buf_t *out, const store_event_view_t *ev,
                      int flags);
/* The flags api__render_event() takes for request 'rq': REPLAY_RAW with 'include_raw',
 * and REPLAY_NO_POSITION for a token limited to session prefixes (positions count every
 * tenant's events: docs/HTTP.md "Tenants"). */
int api__render_flags(const api_req_t *rq, int include_raw);
/* The same with a void * server, for replay_restore_opts_t.render. */
int api__render_event_cb(void *srv, store_buf_t *out, const store_event_view_t *ev,
                         int flags);

#endif
