/* routes.c -- every route of the server, one row each (docs/HTTP.md documents them).
 *
 * Adding a route is adding a row: its path pattern, its methods, which of them read a
 * body, who may call it, and its handler (core.h describes the fields; ROUTE() leaves the
 * hooks out). The dispatcher
 * (api/core/request.c) takes the 404 and 405 answers, the Allow list, OPTIONS and the
 * auth check from these rows, so they cannot disagree. Rows are tried in order; the first
 * whose pattern and method match is used.
 */
#include "api/routes.h"
#include "api/ds/ds.h"
#include "api/handlers/handlers.h"

#define R API_M_READ
#define W (API_M_POST | API_M_PUT)
#define OPEN API_AUTH_NONE
#define TOKEN API_AUTH_SCOPED

/* A plain row, and an SSE row (which also takes ?access_token=: EventSource cannot send
 * headers). */
#define ROUTE(pattern, methods, body, auth, handler, tenant) \
    {pattern, methods, body, auth, handler, NULL, NULL, NULL, tenant, 0}
#define SSE_ROUTE(pattern, handler, tenant) \
    {pattern, R, 0, TOKEN, handler, NULL, NULL, api__query_token_get, tenant, 0}
/* A row whose token needs 'scope' whatever the method (enum api_scope bits). */
#define SCOPED_ROUTE(pattern, methods, body, handler, tenant, scope) \
    {pattern, methods, body, TOKEN, handler, NULL, NULL, NULL, tenant, scope}
/* What a token limited to session prefixes may touch (enum api_tenant_rule). */
#define T_OPEN API_TENANT_OPEN
#define T_SESS API_TENANT_SESSION
#define T_STORE API_TENANT_STORE
#define T_FILTER API_TENANT_FILTER

const api_route_t api__routes[] = {
    /*     pattern                         methods       body        auth   handler                tenant */
    ROUTE("/v1/health",                    R,            0,          OPEN,  api__health,           T_OPEN),
    ROUTE("/metrics",                      R,            0,          TOKEN, api__metrics,          T_STORE),
    ROUTE("/v1/tenant",                    R,            0,          TOKEN, api__tenant,           T_OPEN),
    ROUTE("/v1/sessions",                  R,            0,          TOKEN, api__sessions_list,    T_FILTER),
    ROUTE("/v1/sessions/{id}",             R,            0,          TOKEN, api__session_get,      T_SESS),
    ROUTE("/v1/sessions/{id}",             W,            W,          TOKEN, api__session_put,      T_SESS),
    ROUTE("/v1/sessions/{id}",             API_M_DELETE, 0,          TOKEN, api__session_delete,   T_SESS),
    ROUTE("/v1/sessions/{id}/events",      R,            0,          TOKEN, api__events_read,      T_SESS),
    ROUTE("/v1/sessions/{id}/events",      API_M_POST,   API_M_POST, TOKEN, api__events_append,    T_SESS),
    SSE_ROUTE("/v1/sessions/{id}/events/sse", api__session_sse,                                    T_SESS),
    ROUTE("/v1/sessions/{id}/restore",     R,            0,          TOKEN, api__restore,          T_SESS),
    ROUTE("/v1/sessions/{id}/transcript",  R,            0,          TOKEN, api__transcript,       T_SESS),
    ROUTE("/v1/sessions/{id}/export",      R,            0,          TOKEN, api__session_export,   T_SESS),
    ROUTE("/v1/sessions/{id}/verify",      R,            0,          TOKEN, api__verify,           T_SESS),
    /* Redaction rewrites stored events: it destroys data, so it needs 'delete'. */
    SCOPED_ROUTE("/v1/sessions/{id}/redact", API_M_POST, API_M_POST, api__session_redact, T_SESS,
                 API_SCOPE_DELETE),
    ROUTE("/v1/events",                    R,            0,          TOKEN, api__feed_read,        T_FILTER),
    SSE_ROUTE("/v1/events/sse",            api__feed_sse,                                          T_FILTER),
    /* Sinks (handlers/sinks.c): a sink's committed position, for lag and backpressure. */
    ROUTE("/v1/sinks",                     R,            0,          TOKEN, api__sinks_list,       T_STORE),
    ROUTE("/v1/sinks/{name}",              W,            W,          TOKEN, api__sink_report,      T_STORE),
    ROUTE("/v1/sinks/{name}",              API_M_DELETE, 0,          TOKEN, api__sink_forget,      T_STORE),
    /* Durable consumers (handlers/consumers.c): the handler checks a session consumer's
     * session against the token's prefixes and refuses feed consumers to limited tokens. */
    ROUTE("/v1/consumers",                 R,            0,          TOKEN, api__consumers_list,   T_FILTER),
    ROUTE("/v1/consumers/{name}",          R,            0,          TOKEN, api__consumer_get,     T_FILTER),
    ROUTE("/v1/consumers/{name}",          API_M_PUT,    API_M_PUT,  TOKEN, api__consumer_put,     T_FILTER),
    ROUTE("/v1/consumers/{name}",          API_M_DELETE, 0,          TOKEN, api__consumer_delete,  T_FILTER),
    ROUTE("/v1/consumers/{name}/lease",    API_M_POST,   API_M_POST, TOKEN, api__consumer_lease,   T_FILTER),
    ROUTE("/v1/consumers/{name}/release",  API_M_POST,   API_M_POST, TOKEN, api__consumer_release, T_FILTER),
    ROUTE("/v1/consumers/{name}/next",     R,            0,          TOKEN, api__consumer_next,    T_FILTER),
    ROUTE("/v1/consumers/{name}/ack",      API_M_POST,   API_M_POST, TOKEN, api__consumer_ack,     T_FILTER),
    /* Cluster mode (handlers/cluster.c): `reel cluster move` pushes maps (admin scope). */
    SCOPED_ROUTE("/v1/cluster/map", API_M_PUT, API_M_PUT, api__cluster_map_put, T_STORE,
                 API_SCOPE_ADMIN),
    SCOPED_ROUTE("/v1/cluster/load", API_M_POST, API_M_POST, api__cluster_load, T_STORE,
                 API_SCOPE_ADMIN),
    ROUTE("/v1/stats",                     R,            0,          TOKEN, api__stats,            T_FILTER),
    ROUTE("/v1/export",                    R,            0,          TOKEN, api__export,           T_FILTER),
    /* Durable Streams subscriptions (api/ds/subs.c): management takes a reel token
     * (checked by the handler), callbacks and acks the wake's own token; tenants limited
     * to prefixes see no subscriptions (as a stream outside their prefixes). */
    {.pattern = "/v1/stream/__ds/*", .methods = R | W | API_M_DELETE, .body = W, .auth = OPEN,
     .handler = api__ds_subs, .add_headers = api__ds_headers, .cors_headers = API_DS_CORS_HEADERS,
     .tenant = API_TENANT_STREAM},
    /* The Durable Streams protocol (api/ds/, docs/durable-streams.md): the path after
     * /v1/stream/ is the stream's; its headers on every answer; ?access_token= with
     * live=sse only. A limited token sees only streams whose path starts with a prefix. */
    {.pattern = "/v1/stream/*", .methods = R | W | API_M_DELETE, .body = W, .auth = TOKEN,
     .handler = api__ds, .add_headers = api__ds_headers, .cors_headers = API_DS_CORS_HEADERS,
     .query_token = api__ds_query_token, .tenant = API_TENANT_STREAM},
    /* The inspector's files hold no data; its requests to the API carry the token. */
    ROUTE("/",                             R,            0,          OPEN,  api__root,             T_OPEN),
    ROUTE("/ui",                           R,            0,          OPEN,  api__ui_slash,         T_OPEN),
    ROUTE("/ui/",                          R,            0,          OPEN,  api__ui_index,         T_OPEN),
    ROUTE("/ui/{name}",                    R,            0,          OPEN,  api__ui_file,          T_OPEN),
};

const size_t api__n_routes = sizeof api__routes / sizeof api__routes[0];
