/* handlers.h -- the session routes of api/ (top floor, see api/core/core.h), by resource.
 *
 * Files: events.c (append, offset pages and long-poll of a session and of the feed),
 * sse.c (Server-Sent Events of a session and of the feed, on api/live/sse.c), sessions.c
 * (session records and the list), consumers.c (durable consumers), projections.c (restore,
 * transcript, stats, verify and export, served by replay/), redact.c (redaction after the
 * fact), metrics.c (health and /metrics), ui.c (the /ui/ inspector).
 *
 * Every handler has the api_handler_fn signature and is named in one row of the route
 * table (api/routes.c), which says its path, methods, auth and whether it reads a body.
 * docs/HTTP.md documents each route.
 */
#ifndef REEL_API_HANDLERS_H
#define REEL_API_HANDLERS_H

#include "api/core/core.h"

#define API_HEARTBEAT_MS 10000    /* SSE comment heartbeat; docs/HTTP.md promises <= 15 s */
#define API_MAX_WAIT_S 60         /* long-poll 'wait' ceiling */
#define API_DEFAULT_LIMIT 100     /* page size when 'limit' is absent */
#define API_MAX_LIMIT 10000       /* page size ceiling */
#define API_MAX_PAGE_BYTES (16u << 20) /* a page stops growing past this (at least 1 event) */

/* REEL_OK if session 'id' exists and is not deleted; REEL_ESESSION_NOT_FOUND or
 * REEL_EGONE otherwise (events.c). */
int api__session_readable(store_read_t *r, const char *id, size_t len);
/* The same, also giving the session's first kept sequence (1 unless trimmed) in '*first'. */
int api__session_readable_from(store_read_t *r, const char *id, size_t len, uint64_t *first);
/* Answers a session route's error 'rc': 404 and 410 name the session, any other error
 * says what failed ('doing', e.g. "reading events"). */
enum MHD_Result api__session_problem(api_req_t *rq, int rc, const char *doing);

/* cluster.c: what `reel cluster move` drives on a cell */
enum MHD_Result api__cluster_map_put(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__cluster_load(api_req_t *rq, const char *data, size_t *size);
/* events.c */
enum MHD_Result api__events_append(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__events_read(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__feed_read(api_req_t *rq, const char *data, size_t *size);
/* sse.c */
enum MHD_Result api__session_sse(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__feed_sse(api_req_t *rq, const char *data, size_t *size);
/* changes.c: the feed with changes (?changes=1), for pages and SSE */
typedef struct api_cfeed {
    api_server_t *srv;
    store_buf_t *out;
    int sse;          /* 1: SSE messages (id:, event: change, data:), else page items */
    int include_raw;
    int bodies;       /* 1: each event also gets "hash" and "body" (base64 msgpack) */
    int kept_hashes;  /* 1 (with 'bodies', an admin token or no auth): a redacted body's
                         "kept_hash" too (api__feed_kept) */
    int unreplicated; /* 1: past the replica watermark too (the replica sink's own read) */
    size_t max_bytes; /* stop before an item once the output holds this much */
    int skip_copied;  /* 1: events copied in by a shard move are passed over */
    size_t n;         /* out: items written */
    uint64_t last;    /* out: the cursor after the last item written (the one read from */
    uint32_t last_index; /* when none): position, and 0 or the change's index */
    int more;         /* out: items past it exist */
} api_cfeed_t;
/* Parses the feed's 'changes' and 'bodies', and with 'changes' its cursor 'after' ("P" or
 * "P.I") into rq->offset and rq->after_index (events.c); -1 after answering a 400. */
int api__feed_params(api_req_t *rq);
/* 1 when the feed with bodies may carry the kept hashes of redacted bodies: the request
 * came without auth or with an admin token (restore needs them; a reader could test
 * guesses of a short secret against one). */
int api__feed_kept(const api_req_t *rq);
/* Parses a cursor of the feed with changes, "P" or "P.I" (I >= 1); -1 when it is not one. */
int api__cursor_parse(const char *s, uint64_t *pos, uint32_t *index);
/* Appends cursor ('pos', 'index') in that form ("P" when 'index' is 0). */
void api__cursor_write(store_buf_t *out, uint64_t pos, uint32_t index);
/* Reads events and changes after cursor ('after', 'index'), at most 'limit', into f->out. */
int api__cfeed_read(api_cfeed_t *f, uint64_t after, uint32_t index, size_t limit);
/* Appends change 'ch' as its JSON object. */
int api__render_change(store_buf_t *out, const store_change_view_t *ch);
/* sinks.c: POST/PUT /v1/sinks/{name} (admin scope), DELETE /v1/sinks/{name}, GET /v1/sinks */
enum MHD_Result api__sink_report(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__sink_forget(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__sinks_list(api_req_t *rq, const char *data, size_t *size);
/* 1 when --max-sink-lag is set and the slowest sink that reported is further behind
 * ('*lag', positions) */
int api__sink_over_lag(api_server_t *srv, uint64_t *lag);
/* The reel_sink_* metrics. */
void api__sink_metrics(api_server_t *srv, store_buf_t *o);
/* sessions.c */
enum MHD_Result api__session_get(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__session_put(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__session_delete(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__sessions_list(api_req_t *rq, const char *data, size_t *size);
/* GET /v1/tenant: the token's name and session prefixes (docs/HTTP.md "Tenants") */
enum MHD_Result api__tenant(api_req_t *rq, const char *data, size_t *size);
/* projections.c */
enum MHD_Result api__restore(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__transcript(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__stats(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__verify(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__session_export(api_req_t *rq, const char *data, size_t *size);
/* redact.c */
enum MHD_Result api__session_redact(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__export(api_req_t *rq, const char *data, size_t *size);
/* consumers.c: durable consumers, /v1/consumers (docs/HTTP.md "Consumers") */
enum MHD_Result api__consumers_list(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__consumer_get(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__consumer_put(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__consumer_delete(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__consumer_lease(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__consumer_release(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__consumer_next(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__consumer_ack(api_req_t *rq, const char *data, size_t *size);
/* reel_consumer_lag_events and reel_consumers for /metrics */
void api__consumer_metrics(api_server_t *srv, store_buf_t *o);
/* metrics.c */
enum MHD_Result api__health(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__metrics(api_req_t *rq, const char *data, size_t *size);
/* ui.c: /ui and /ui/ (index.html), /ui/{name} (an embedded file, else 404) */
enum MHD_Result api__root(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__ui_index(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__ui_slash(api_req_t *rq, const char *data, size_t *size);
enum MHD_Result api__ui_file(api_req_t *rq, const char *data, size_t *size);

#endif
