/* http.c -- request targets, query parameters, responses, RFC 7807 problems and CORS.
 *
 * Routing works on the raw request target (kept by the URI log callback in server.c),
 * not on libmicrohttpd's decoded URL: MHD decodes %2F to '/' and cuts the path at %00
 * before the handler sees it, so "/v1/sessions/a%2F..%2Fb/events" and
 * "/v1/sessions/abc%00x/events" could otherwise route as other paths. Here the path is
 * split on the raw '/' first and each segment is decoded alone; a session id segment
 * that decodes to anything but a valid id is answered with 400 invalid_session_id.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "store/json.h"

/* ---- Percent decoding ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes 'n' bytes of 's' into 'out' (room for 'cap' bytes plus a NUL). With 'plus',
 * '+' means a space (query strings). Returns the decoded length, or -1 for a bad escape,
 * a NUL byte, or a result longer than 'cap'. */
long api__pct_decode(const char *s, size_t n, char *out, size_t cap, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int h = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int l = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
        } else if (plus && c == '+') {
            c = ' ';
        }
        if (c == 0 || o >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

/* ---- Routing ---- */

struct seg {
    const char *p;
    size_t n;
};

static int seg_is(const struct seg *s, const char *lit)
{
    return s->n == strlen(lit) && !memcmp(s->p, lit, s->n);
}

/* The {id} segment: decoded and checked. ".." and "." are valid id characters but are
 * refused so that no id can be mistaken for a path step by a proxy or a log reader. */
static void take_id(api_req_t *rq, const struct seg *s)
{
    long n = api__pct_decode(s->p, s->n, rq->session, STORE_SESSION_ID_MAX, 0);
    if (n <= 0 || !store_session_id_valid(rq->session, (size_t)n) ||
        !strcmp(rq->session, ".") || !strcmp(rq->session, "..")) {
        rq->bad_id = 1;
        rq->session[0] = '\0';
        rq->session_len = 0;
        return;
    }
    rq->session_len = (size_t)n;
}

static int split_path(const char *path, size_t len, struct seg *segs, int max)
{
    int n = 0;
    if (len == 0 || path[0] != '/')
        return -1;
    size_t i = 1, start = 1;
    for (; i <= len; i++) {
        if (i == len || path[i] == '/') {
            if (n == max)
                return -1;
            segs[n].p = path + start;
            segs[n].n = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

void api__route(api_req_t *rq)
{
    const char *q = strchr(rq->uri, '?');
    size_t plen = q ? (size_t)(q - rq->uri) : strlen(rq->uri);
    rq->query = q ? q + 1 : "";
    rq->route = API_R_NONE;
    struct seg s[6];
    int n = split_path(rq->uri, plen, s, 6);
    if (n == 1 && seg_is(&s[0], "metrics")) {
        rq->route = API_R_METRICS;
        return;
    }
    if (n >= 1 && n <= 2 && seg_is(&s[0], "ui")) {
        if (n == 1 || seg_is(&s[1], ""))
            rq->route = API_R_UI;
        else
            rq->route = API_R_UI_JS; /* any file name: ui.c answers 404 for unknown ones */
        return;
    }
    if (plen > 11 && !memcmp(rq->uri, "/v1/stream/", 11)) {
        rq->route = API_R_STREAM; /* the rest of the path is the stream's (stream.c) */
        return;
    }
    if (n < 2 || !seg_is(&s[0], "v1"))
        return;
    if (n == 2 && seg_is(&s[1], "health"))
        rq->route = API_R_HEALTH;
    else if (n == 2 && seg_is(&s[1], "sessions"))
        rq->route = API_R_SESSIONS;
    else if (n == 2 && seg_is(&s[1], "events"))
        rq->route = API_R_FEED;
    else if (n == 2 && seg_is(&s[1], "stats"))
        rq->route = API_R_STATS;
    else if (n == 2 && seg_is(&s[1], "export"))
        rq->route = API_R_EXPORT;
    else if (n == 3 && seg_is(&s[1], "events") && seg_is(&s[2], "sse"))
        rq->route = API_R_FEED_SSE;
    else if (n >= 3 && seg_is(&s[1], "sessions")) {
        if (n == 3)
            rq->route = API_R_SESSION;
        else if (n == 4 && seg_is(&s[3], "events"))
            rq->route = API_R_EVENTS;
        else if (n == 5 && seg_is(&s[3], "events") && seg_is(&s[4], "sse"))
            rq->route = API_R_EVENTS_SSE;
        else if (n == 4 && seg_is(&s[3], "restore"))
            rq->route = API_R_RESTORE;
        else if (n == 4 && seg_is(&s[3], "transcript"))
            rq->route = API_R_TRANSCRIPT;
        else if (n == 4 && seg_is(&s[3], "export"))
            rq->route = API_R_SESSION_EXPORT;
        else if (n == 4 && seg_is(&s[3], "verify"))
            rq->route = API_R_VERIFY;
        if (rq->route != API_R_NONE)
            take_id(rq, &s[2]);
    }
}

/* ---- Query parameters ---- */

int api__query(const api_req_t *rq, const char *name, char *out, size_t out_len)
{
    const char *p = rq->query;
    char key[64];
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t kn = eq ? (size_t)(eq - p) : n;
        long k = api__pct_decode(p, kn, key, sizeof key - 1, 1);
        if (k >= 0 && !strcmp(key, name)) {
            const char *v = eq ? eq + 1 : p + n;
            size_t vn = eq ? n - kn - 1 : 0;
            if (api__pct_decode(v, vn, out, out_len - 1, 1) < 0)
                return REEL_EINVALID_PARAMETER;
            return 1;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return 0;
}

/* Parses a plain decimal integer: digits only, no sign, no blanks, no overflow. */
static int parse_u64(const char *s, uint64_t *v)
{
    uint64_t x = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

int api__query_u64(api_req_t *rq, const char *name, uint64_t max, uint64_t *v)
{
    char buf[64];
    int rc = api__query(rq, name, buf, sizeof buf);
    if (rc == 0)
        return REEL_OK;
    uint64_t x;
    if (rc < 0 || parse_u64(buf, &x) < 0 || x > max) {
        api__problem(rq, REEL_EINVALID_PARAMETER,
                     "'%s' must be an integer from 0 to %llu, not '%s'", name,
                     (unsigned long long)max, rc < 0 ? "(bad encoding)" : buf);
        return REEL_EINVALID_PARAMETER;
    }
    *v = x;
    return REEL_OK;
}

int api__query_bool(api_req_t *rq, const char *name, int *v)
{
    char buf[16];
    int rc = api__query(rq, name, buf, sizeof buf);
    if (rc == 0)
        return REEL_OK;
    if (rc > 0 && (!strcmp(buf, "true") || !strcmp(buf, "1"))) {
        *v = 1;
        return REEL_OK;
    }
    if (rc > 0 && (!strcmp(buf, "false") || !strcmp(buf, "0"))) {
        *v = 0;
        return REEL_OK;
    }
    api__problem(rq, REEL_EINVALID_PARAMETER, "'%s' must be true or false, not '%s'", name,
                 rc < 0 ? "(bad encoding)" : buf);
    return REEL_EINVALID_PARAMETER;
}

const char *api__header(const api_req_t *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/* ---- Responses ---- */

void api__cors(api_server_t *srv, struct MHD_Response *resp)
{
    if (!srv->cors_origin)
        return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", srv->cors_origin);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", "Content-Type");
    if (strcmp(srv->cors_origin, "*"))
        MHD_add_response_header(resp, "Vary", "Origin");
}

enum MHD_Result api__queue(api_req_t *rq, int status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    api__cors(rq->srv, resp);
    if (rq->route == API_R_STREAM)
        api__stream_headers(rq, resp);
    enum MHD_Result r = MHD_queue_response(rq->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (r == MHD_YES)
        rq->phase = -1; /* answered: later calls only swallow the body */
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
    return api__queue(rq, status, resp);
}

static const char *allowed_methods(int route)
{
    switch (route) {
    case API_R_SESSION: return "GET, HEAD, POST, PUT, DELETE, OPTIONS";
    case API_R_EVENTS: return "GET, HEAD, POST, OPTIONS";
    case API_R_STREAM: return "GET, HEAD, POST, PUT, DELETE, OPTIONS";
    default: return "GET, HEAD, OPTIONS";
    }
}

/* Detail text may quote client bytes; keep it printable ASCII so the body is valid JSON
 * and safe to show in logs whatever the client sent. */
static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

enum MHD_Result api__problem(api_req_t *rq, int err, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    sanitize(detail);
    if (rq->in_first && !rq->close_now) {
        /* libmicrohttpd closes the connection after an answer queued in the first call;
         * keep-alive clients get the problem once their request was read in full. */
        rq->reject = err;
        snprintf(rq->reject_detail, sizeof rq->reject_detail, "%s", detail);
        rq->phase = -1;
        return MHD_YES;
    }
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
        return MHD_NO;
    }
    size_t len;
    uint8_t *data = store_buf_detach(&b, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/problem+json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (err == REEL_EUNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"reel\"");
    if (err == REEL_EMETHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allowed_methods(rq->route));
    if (err == REEL_ETOO_MANY || err == REEL_EUNAVAILABLE)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    return api__queue(rq, status, resp);
}

enum MHD_Result api__preflight(api_req_t *rq)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", allowed_methods(rq->route));
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            rq->route == API_R_STREAM
                                ? "Authorization, Content-Type, If-None-Match, Stream-Seq, "
                                  "Stream-TTL, Stream-Expires-At, Stream-Closed, Producer-Id, "
                                  "Producer-Epoch, Producer-Seq, Stream-Forked-From, "
                                  "Stream-Fork-Offset, Stream-Fork-Sub-Offset"
                                : "Authorization, Content-Type, Last-Event-ID");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    return api__queue(rq, MHD_HTTP_NO_CONTENT, resp);
}
