/* routes.c -- every route of the server, one row each (docs/HTTP.md documents them).
 *
 * Adding a route is adding a row: its path pattern, its methods, which of them read a
 * body, who may call it, and its handler (core.h describes the fields). The dispatcher
 * (api/core/request.c) takes the 404 and 405 answers, the Allow list, OPTIONS and the
 * auth check from these rows, so they cannot disagree. Rows are tried in order; the first
 * whose pattern and method match is used.
 */
#include "api/routes.h"
#include "api/ds/ds.h"
#include "api/handlers/handlers.h"

#define R API_M_READ
#define OPEN API_AUTH_NONE
#define TOKEN API_AUTH_SCOPED
#define TOKEN_Q API_AUTH_SCOPED_QUERY /* EventSource cannot send headers */

const api_route_t api__routes[] = {
    /* pattern                        methods        body        auth     handler */
    {"/v1/health",                    R,             0,          OPEN,    api__health, NULL, NULL},
    {"/metrics",                      R,             0,          TOKEN,   api__metrics, NULL, NULL},
    {"/v1/sessions",                  R,             0,          TOKEN,   api__sessions_list, NULL, NULL},
    {"/v1/sessions/{id}",             R,             0,          TOKEN,   api__session_get, NULL, NULL},
    {"/v1/sessions/{id}",             API_M_POST | API_M_PUT, API_M_POST | API_M_PUT, TOKEN,
                                                                          api__session_put, NULL, NULL},
    {"/v1/sessions/{id}",             API_M_DELETE,  0,          TOKEN,   api__session_delete, NULL, NULL},
    {"/v1/sessions/{id}/events",      R,             0,          TOKEN,   api__events_read, NULL, NULL},
    {"/v1/sessions/{id}/events",      API_M_POST,    API_M_POST, TOKEN,   api__events_append, NULL, NULL},
    {"/v1/sessions/{id}/events/sse",  R,             0,          TOKEN_Q, api__session_sse, NULL, NULL},
    {"/v1/sessions/{id}/restore",     R,             0,          TOKEN,   api__restore, NULL, NULL},
    {"/v1/sessions/{id}/transcript",  R,             0,          TOKEN,   api__transcript, NULL, NULL},
    {"/v1/sessions/{id}/export",      R,             0,          TOKEN,   api__session_export, NULL, NULL},
    {"/v1/sessions/{id}/verify",      R,             0,          TOKEN,   api__verify, NULL, NULL},
    {"/v1/events",                    R,             0,          TOKEN,   api__feed_read, NULL, NULL},
    {"/v1/events/sse",                R,             0,          TOKEN_Q, api__feed_sse, NULL, NULL},
    {"/v1/stats",                     R,             0,          TOKEN,   api__stats, NULL, NULL},
    {"/v1/export",                    R,             0,          TOKEN,   api__export, NULL, NULL},
    /* The Durable Streams protocol (api/ds/, docs/durable-streams.md): the path after
     * /v1/stream/ is the stream's. */
    {"/v1/stream/*", R | API_M_POST | API_M_PUT | API_M_DELETE, API_M_POST | API_M_PUT, TOKEN_Q,
     api__ds, api__ds_headers, API_DS_CORS_HEADERS},
    /* The inspector's files hold no data; its requests to the API carry the token. */
    {"/ui",                           R,             0,          OPEN,    api__ui_index, NULL, NULL},
    {"/ui/",                          R,             0,          OPEN,    api__ui_index, NULL, NULL},
    {"/ui/{name}",                    R,             0,          OPEN,    api__ui_file, NULL, NULL},
};

const size_t api__n_routes = sizeof api__routes / sizeof api__routes[0];
