/* reply.c -- responses, RFC 7807 problems, CORS and OPTIONS.
 *
 * Every answer goes through api__queue(), which adds the common headers: CORS when
 * configured, and whatever the request's add_headers hook adds (a protocol's own headers,
 * on its problems too). Problems come from the one error table (store/err.h): type,
 * title and status are the error's; only the detail is the caller's.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/core.h"
#include "store/json.h"

/* ---- Responses ---- */

int api__cors_allowed(const api_req_t *rq)
{
    const char *want = rq->srv->cors_origin;
    if (!want)
        return 0;
    if (!strcmp(want, "*"))
        return 1;
    const char *origin = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Origin");
    return !origin || !strcasecmp(origin, want);
}

static void cors(api_req_t *rq, struct MHD_Response *resp)
{
    const char *want = rq->srv->cors_origin;
    if (!want)
        return;
    if (strcmp(want, "*")) /* the answer depends on the request's Origin */
        MHD_add_response_header(resp, "Vary", "Origin");
    if (!api__cors_allowed(rq))
        return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", want);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", "Content-Type, ETag");
}

enum MHD_Result api__queue(api_req_t *rq, int status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    cors(rq, resp);
    if (rq->add_headers)
        rq->add_headers(rq, resp);
    if (rq->request_id[0])
        MHD_add_response_header(resp, "X-Request-Id", rq->request_id);
    api__cell_headers(rq, resp);

    rq->status = status;
    enum MHD_Result r = MHD_queue_response(rq->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (r == MHD_YES)
        rq->phase = API_PHASE_ANSWERED;
    return r;
}

enum MHD_Result api__reply_json(api_req_t *rq, int status, store_buf_t *b)
{
    if (store_buf_failed(b)) {
        store_buf_release(b);
        return api__problem(rq, REEL_ENOMEM, "the response did not fit in memory");
    }
    size_t len;
    uint8_t *data = store_buf_detach(b, &len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, data ? data : (void *)"", data ? MHD_RESPMEM_MUST_FREE
                                                                           : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    rq->resp_bytes = (int64_t)len;
    return api__queue(rq, status, resp);
}

enum MHD_Result api__reply_text(api_req_t *rq, int status, const char *type, const char *text,
                                size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    rq->resp_bytes = (int64_t)len;
    return api__queue(rq, status, resp);
}

/* Length of the UTF-8 sequence at 'p' (before 'end') if it is a valid, printable code
 * point of U+00A0 or above other than U+2028/U+2029 (no C1 controls, no line
 * separators), else 0. */
static size_t printable_utf8(const unsigned char *p, const unsigned char *end)
{
    size_t n = *p >= 0xc2 && *p <= 0xdf ? 2 : *p >= 0xe0 && *p <= 0xef ? 3
             : *p >= 0xf0 && *p <= 0xf4 ? 4 : 0;
    if (!n || (size_t)(end - p) < n || !store_session_id_valid((const char *)p, n))
        return 0;
    if ((p[0] == 0xc2 && p[1] < 0xa0) || (p[0] == 0xe2 && p[1] == 0x80 && (p[2] & 0xfe) == 0xa8))
        return 0;
    return n;
}

/* Detail text may quote client bytes (a session id); keep it printable (ASCII, and whole
 * printable UTF-8 characters, as session ids may be) so the body is valid JSON and safe
 * to show in logs whatever the client sent. */
static void format_detail(const api_req_t *rq, char *detail, size_t cap, int err,
                          const char *fmt, va_list ap)
{
    int n = vsnprintf(detail, cap, fmt, ap);
    /* A failed check names the session and sequence (store_read_corruption()). */
    const char *where = err != REEL_ECORRUPT ? ""
                        : rq->has_store_detail ? rq->store_detail
                                               : store_read_corruption();
    if (where[0] && n >= 0 && (size_t)n < cap)
        snprintf(detail + n, cap - (size_t)n, "; %s", where);
    unsigned char *p = (unsigned char *)detail, *end = p + strlen(detail);
    while (p < end) {
        size_t k = *p >= 0x80 ? printable_utf8(p, end) : 0;
        if (k) {
            p += k;
            continue;
        }
        if (*p < 0x20 || *p >= 0x7f)
            *p = '?';
        p++;
    }
}

/* The problem body and headers for 'err' (counted in the 4xx/5xx counters). */
static struct MHD_Response *problem_build(api_req_t *rq, int err, const char *detail)
{
    int status = reel_err_status(err);
    atomic_fetch_add(status >= 500 ? &rq->srv->problems_5xx : &rq->srv->problems_4xx, 1);
    store_buf_t b = STORE_BUF_INIT;
    store_buf_printf(&b, "{\"type\":\"urn:reel:error:%s\",\"title\":", reel_err_code(err));
    store_json_write_string(&b, reel_strerror(err), strlen(reel_strerror(err)));
    store_buf_printf(&b, ",\"status\":%d,\"detail\":", status);
    store_json_write_string(&b, detail, strlen(detail));
    store_buf_putc(&b, '}');
    if (store_buf_failed(&b)) {
        store_buf_release(&b);
        return NULL;
    }
    size_t len;
    uint8_t *data = store_buf_detach(&b, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return NULL;
    }
    rq->resp_bytes = (int64_t)len;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/problem+json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (err == REEL_EUNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"reel\"");
    if (err == REEL_EMETHOD_NOT_ALLOWED && rq->route) {
        char allow[128];
        api__methods_text(api__route_methods(rq->srv->routes, rq->srv->n_routes,
                                             rq->route->pattern),
                          allow, sizeof allow);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    }
    if (err == REEL_ETOO_MANY || err == REEL_EUNAVAILABLE || err == REEL_ESINK_BEHIND ||
        err == REEL_ESHARD_LOADING || err == REEL_EREPLICA_BEHIND) {
        char v[16];
        snprintf(v, sizeof v, "%u", rq->retry_after ? rq->retry_after : 1);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    return resp;
}

struct MHD_Response *api__problem_response(api_req_t *rq, int err, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    format_detail(rq, detail, sizeof detail, err, fmt, ap);
    va_end(ap);
    return problem_build(rq, err, detail);
}

enum MHD_Result api__problem(api_req_t *rq, int err, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    format_detail(rq, detail, sizeof detail, err, fmt, ap);
    va_end(ap);
    if (err == REEL_ECORRUPT) /* a damaged page or value: counted for health and metrics */
        store_note_corrupt(rq->srv->store);
    /* A 5xx is the server's failure: the operator must hear of it. A 4xx is the client's,
     * for debugging a client. */
    int status = reel_err_status(err);
    api__log_req(rq, status >= 500 ? API_LOG_ERROR : API_LOG_DEBUG, "%d %s %s %.*s: %s", status,
                 reel_err_code(err), rq->method ? rq->method : "-",
                 (int)strcspn(rq->uri, "?"), rq->uri, detail); /* no query: no token */
    if (rq->in_first && !rq->close_now) {
        /* libmicrohttpd closes the connection after an answer queued in the first call;
         * keep-alive clients get the problem once their request was read in full. */
        rq->reject = err;
        snprintf(rq->reject_detail, sizeof rq->reject_detail, "%s", detail);
        rq->phase = API_PHASE_ANSWERED;
        return MHD_YES;
    }
    struct MHD_Response *resp = problem_build(rq, err, detail);
    return resp ? api__queue(rq, reel_err_status(err), resp) : MHD_NO;
}

/* OPTIONS: the route's methods (Allow), and for a preflight what the route takes
 * (Access-Control-Allow-Methods and -Headers: facts about the route, granting nothing, so
 * sent whatever --cors-origin says); the grant, Access-Control-Allow-Origin (cors() in
 * api__queue) and the Max-Age to cache it, only when --cors-origin allows the request's
 * Origin. Preflights carry no credentials, so OPTIONS needs no token. */
enum MHD_Result api__options(api_req_t *rq)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    rq->resp_bytes = 0;
    char allow[128];
    api__methods_text(api__route_methods(rq->srv->routes, rq->srv->n_routes, rq->route->pattern),
                      allow, sizeof allow);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Origin")) { /* a preflight */
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                rq->route->cors_headers
                                    ? rq->route->cors_headers
                                    : "Authorization, Content-Type, Last-Event-ID, If-Match, "
                                      "If-None-Match");
    }
    if (api__cors_allowed(rq))
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    return api__queue(rq, MHD_HTTP_NO_CONTENT, resp);
}
