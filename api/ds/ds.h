/* ds.h -- the Durable Streams protocol at /v1/stream/{path}: what the route table needs
 * (api/routes.c). The protocol as served is docs/durable-streams.md; the files and their
 * private declarations are in api/ds/ds_int.h.
 */
#ifndef REEL_API_DS_H
#define REEL_API_DS_H

#include "api/core/core.h"

/* The request headers a browser may send on a stream route (CORS preflight). */
#define API_DS_CORS_HEADERS                                                                \
    "Authorization, Content-Type, If-None-Match, Stream-Seq, Stream-TTL, "                 \
    "Stream-Expires-At, Stream-Closed, Producer-Id, Producer-Epoch, Producer-Seq, "        \
    "Stream-Forked-From, Stream-Fork-Offset, Stream-Fork-Sub-Offset"

/* The handler of every method of /v1/stream/{path} (the route's '*' is the path). */
enum MHD_Result api__ds(api_req_t *rq, const char *data, size_t *size);
/* The route's query_token rule: ?access_token= only on GET with live=sse (EventSource);
 * a plain read or a long-poll sends its token in the header like any other request. */
int api__ds_query_token(const api_req_t *rq);
/* The headers every stream response carries (security, CORS exposure): the route's
 * add_headers hook. */
void api__ds_headers(api_req_t *rq, struct MHD_Response *resp);

/* The subscriptions at /v1/stream/__ds/ (subs.c): their route's handler, and the
 * delivery thread, started after the daemon and stopped before it. */
enum MHD_Result api__ds_subs(api_req_t *rq, const char *data, size_t *size);
struct ds_subs *api__ds_subs_start(api_server_t *srv);
void api__ds_subs_stop(struct ds_subs *x);
/* Frees what api__ds_subs_stop() left for requests still running: call after the daemon
 * stopped. NULL is allowed. */
void api__ds_subs_free(struct ds_subs *x);

#endif
