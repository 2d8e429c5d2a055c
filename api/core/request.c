/* request.c -- per-request state and the access handler: checks, then the route's handler.
 *
 * The dispatcher knows no route: it matches the request against the route table the top
 * floor gave (api_server.routes), and takes from the matched row the methods (405 with
 * the Allow list otherwise), the auth rule, whether the body is read, and the handler.
 * Checks run once, before any body byte is read: connection limits, framing (request
 * smuggling), route, auth, method, the {id} segment, shutdown.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/core/core.h"

/* ---- Request state ---- */

void *api__on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    api_server_t *srv = cls;
    api_req_t *rq = calloc(1, sizeof *rq);
    if (!rq)
        return NULL;
    rq->srv = srv;
    rq->conn = conn;
    rq->uri = strdup(uri ? uri : "");
    if (!rq->uri) {
        free(rq);
        return NULL;
    }
    store_buf_init(&rq->body);
    store_buf_init(&rq->meta);
    rq->resp_bytes = -1;
    atomic_fetch_add(&srv->requests, 1);
    atomic_fetch_add(&srv->live, 1);
    return rq;
}

void api__on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                       enum MHD_RequestTerminationCode toe)
{
    api_req_t *rq = *req_cls;
    api_conn_t *c = api__conn_of(conn);
    if (c) /* a keep-alive connection now waits for its next request head */
        atomic_store(&c->head_since_ms, (int_fast64_t)api__now_ms());
    if (!rq)
        return;
    if (rq->method) { /* a request that got as far as its head */
        api__log_access(rq);
        api__note_latency(rq);
    }
    if (rq->dispose)
        rq->dispose(rq);
    api__cell_done(rq);
    free(rq->prefixes);
    store_buf_release(&rq->body);
    store_buf_release(&rq->meta);
    atomic_fetch_sub(&rq->srv->live, 1);
    free(rq->uri);
    free(rq);
    *req_cls = NULL;
}

/* ---- Framing ---- */

struct framing {
    int cl, te, host;
    int te_chunked;
    int malformed; /* a header line libmicrohttpd 0.9.75 lets through but should not */
};

/* 1 if 'key' is an RFC 9110 token (tchar only). */
static int token(const char *key, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("!#$%&'*+-.^_`|~", key[i]) && !isalnum((unsigned char)key[i]))
            return 0;
    return 1;
}

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     size_t key_size, const char *value, size_t value_size)
{
    struct framing *f = cls;
    /* Each of these turned a body into a second, hidden request in tests/http/
     * test_bad_input.py: a space before the colon ("Content-Length : 91", not a framing
     * header to libmicrohttpd), a NUL inside a value (cut there, "0\091" reads as 0), and
     * a folded framing header (kept as "Content-Length91" with an empty value). */
    if (!token(key, key_size) || (value && strlen(value) != value_size))
        f->malformed = 1;
    if (!strncasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH, 14) && key_size != 14)
        f->malformed = 1;
    if (!strncasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING, 17) && key_size != 17)
        f->malformed = 1;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        f->cl++;
    if (!strcasecmp(key, MHD_HTTP_HEADER_HOST))
        f->host++;
    if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->te++;
        f->te_chunked = value && !strcasecmp(value, "chunked");
    }
    return MHD_YES;
}

/* RFC 9112 §6.1/§6.3: ambiguous framing is an error (request smuggling). libmicrohttpd
 * 0.9.75 ignores Content-Length when any Transfer-Encoding is present and takes the
 * first of duplicate Content-Length headers, so such requests are refused here, as are
 * the malformed header lines above and a second Host (RFC 9112 §3.2). */
static int framing_ok(api_req_t *rq)
{
    struct framing f = {0, 0, 0, 0, 0};
    MHD_get_connection_values_n(rq->conn, MHD_HEADER_KIND, count_framing, &f);
    if (f.malformed || f.host > 1 || f.cl > 1 || (f.cl && f.te) || f.te > 1 ||
        (f.te && !f.te_chunked))
        return 0;
    return 1;
}

/* ---- Routing ---- */

/* Finds the row for the request's path and method. When the path matches rows but none
 * takes the method, rq->route is the first of them (for the Allow list) and 0 returned. */
static int route(api_req_t *rq)
{
    const char *q = strchr(rq->uri, '?');
    size_t plen = q ? (size_t)(q - rq->uri) : strlen(rq->uri);
    rq->query = q ? q + 1 : "";
    rq->route = NULL;
    for (size_t i = 0; i < rq->srv->n_routes; i++) {
        const api_route_t *rt = &rq->srv->routes[i];
        const char *p;
        size_t n;
        if (!api__route_match(rt->pattern, rq->uri, plen, &p, &n))
            continue;
        if (!rq->route) {
            rq->route = rt;
            rq->param = p;
            rq->param_len = n;
        }
        if (rt->methods & rq->method_bit) {
            rq->route = rt;
            return 1;
        }
    }
    return rq->route && rq->method_bit == API_M_OPTIONS;
}

/* The {id} segment: percent-decoded exactly once and checked (docs/HTTP.md, "Session
 * ids"). A raw '/' always splits segments, so an id holding '/' arrives as %2F. ".." and
 * "." are refused so that no id can be mistaken for a path step by a proxy or a log
 * reader. On failure rq->bad_id is set and rq->reject_detail says why, naming the
 * segment as received (bytes outside printable ASCII shown as %XX). */
static void take_id(api_req_t *rq)
{
    long n = api__pct_decode(rq->param, rq->param_len, rq->session, STORE_SESSION_ID_MAX, 0);
    const char *why = NULL;
    for (size_t i = 0; i < rq->param_len && !why; i++)
        if ((unsigned char)rq->param[i] <= 0x20 || (unsigned char)rq->param[i] >= 0x7f)
            why = "a byte outside printable ASCII was sent raw (percent-encode it)";
    if (why) {
        /* named below */
    } else if (n < 0) {
        /* Which rule: a bad escape, %00, or too long once decoded? */
        int bad_escape = 0, nul = 0;
        const char *p = rq->param;
        for (size_t i = 0; i < rq->param_len && !bad_escape; i++) {
            if (p[i] != '%')
                continue;
            if (i + 2 >= rq->param_len || !isxdigit((unsigned char)p[i + 1]) ||
                !isxdigit((unsigned char)p[i + 2]))
                bad_escape = 1;
            else
                nul |= p[i + 1] == '0' && p[i + 2] == '0';
            i += 2;
        }
        why = bad_escape ? "a '%' is not followed by two hex digits"
              : nul      ? "it holds %00 (U+0000, a control character)"
                         : "it is longer than 1024 bytes once decoded";
    } else if (n == 0) {
        why = "it is empty";
    } else if (!store_session_id_valid(rq->session, (size_t)n)) {
        why = !strcmp(rq->session, ".") || !strcmp(rq->session, "..")
                  ? "'.' and '..' are path steps, not ids"
                  : "it is not UTF-8 without control characters (U+0000..U+001F, U+007F)";
    }
    if (!why) {
        rq->session_len = (size_t)n;
        return;
    }
    rq->bad_id = 1;
    rq->session[0] = '\0';
    rq->session_len = 0;
    char seg[160];
    size_t o = 0;
    for (size_t i = 0; i < rq->param_len && o + 4 < sizeof seg; i++) {
        unsigned char c = (unsigned char)rq->param[i];
        if (c > 0x20 && c < 0x7f && c != '"' && c != '\\')
            seg[o++] = (char)c;
        else
            o += (size_t)snprintf(seg + o, sizeof seg - o, "%%%02X", c);
    }
    seg[o] = '\0';
    snprintf(rq->reject_detail, sizeof rq->reject_detail,
             "the session id segment '%s%s' is not valid: %s. Session ids are 1..%d bytes of "
             "UTF-8 without control characters, sent as one percent-encoded path segment "
             "('/' as %%2F)", seg, o + 4 >= sizeof seg ? "..." : "", why, STORE_SESSION_ID_MAX);
}

int api__query_token_get(const api_req_t *rq)
{
    return rq->method_bit == API_M_GET;
}

/* The scope bits the request needs from its token; 0 when the route is open. */
static int needed_scope(const api_req_t *rq)
{
    if (rq->route->auth == API_AUTH_NONE || rq->method_bit == API_M_OPTIONS)
        return 0; /* preflights carry no credentials */
    if (rq->route->scope) /* a POST that destroys data (redact) needs 'delete' */
        return rq->route->scope;
    if (rq->method_bit & API_M_READ)
        return API_SCOPE_READ;
    if (rq->method_bit == API_M_DELETE)
        return API_SCOPE_DELETE;
    return API_SCOPE_APPEND;
}

static enum MHD_Result check_auth(api_req_t *rq, int *ok)
{
    int need = needed_scope(rq);
    int query = rq->route->query_token && rq->route->query_token(rq);
    int rc = need ? api__auth(rq, need, query) : REEL_OK;
    *ok = rc == REEL_OK;
    if (rc == REEL_EUNAUTHORIZED && rq->bad_token)
        return api__problem(rq, rc, "the token sent is not valid (unknown, mistyped or revoked)");
    if (rc == REEL_EUNAUTHORIZED)
        return api__problem(rq, rc, "this route needs a token: send 'Authorization: Bearer "
                            "<token>'%s", query ? " or ?access_token=" : "");
    if (rc == REEL_EFORBIDDEN)
        return api__problem(rq, rc, "the token's scope does not allow %s on this route",
                            rq->method);
    if (rc == REEL_ETOO_MANY)
        return api__problem(rq, rc, "the token '%s' is over its rate of requests per second; "
                            "retry in %u s", rq->token_name, rq->retry_after);
    if (rc == REEL_ENOMEM)
        return api__problem(rq, rc, "out of memory");
    return MHD_YES;
}

/* A token limited to session prefixes (a tenant): outside them a session or stream is
 * answered exactly as one that does not exist, whether it exists or not, so nothing about
 * other tenants can be learned; the store-wide routes are refused. 0 with '*r' set when
 * answered. */
static int tenant_ok(api_req_t *rq, enum MHD_Result *r)
{
    switch (rq->route->tenant) {
    case API_TENANT_SESSION:
        if (api__tenant_allows(rq, rq->session, rq->session_len))
            return 1;
        *r = api__problem(rq, REEL_ESESSION_NOT_FOUND, "session '%s' does not exist", rq->session);
        return 0;
    case API_TENANT_STREAM: {
        char path[1024];
        long n = api__pct_decode(rq->param, rq->param_len, path, sizeof path - 1, 0);
        if (n >= 0 && api__tenant_allows(rq, path, (size_t)n))
            return 1;
        /* the words of api/ds/ds.c for a stream that does not exist */
        *r = api__problem(rq, REEL_ENOT_FOUND, "stream '%.200s' does not exist",
                          n >= 0 ? path : "(bad encoding)");
        return 0;
    }
    case API_TENANT_STORE:
        *r = api__problem(rq, REEL_EFORBIDDEN, "this route reads every session; the token '%s' "
                          "is limited to session prefixes (GET /v1/tenant shows them)",
                          rq->token_name);
        return 0;
    default:
        return 1;
    }
}

/* Checks done once, before any body byte is read. Returns MHD_YES with rq->phase
 * API_PHASE_NEW to continue, or the result of an answer already queued or deferred. */
static enum MHD_Result first_call(api_req_t *rq)
{
    api_server_t *srv = rq->srv;
    api_conn_t *c = api__conn_of(rq->conn);
    if (c)
        atomic_store(&c->head_since_ms, 0); /* the head is complete */
    rq->phase = API_PHASE_ANSWERED;
    if (c && c->over_limit) {
        rq->close_now = 1;
        return api__problem(rq, REEL_ETOO_MANY, "too many open connections (limit %u, %u per address)",
                            srv->lim.max_connections, srv->lim.max_connections_per_ip);
    }
    if (!framing_ok(rq)) {
        rq->close_now = 1;
        return api__problem(rq, REEL_EINVALID_PARAMETER,
                            "malformed or ambiguous header lines (framing, Host, header names)");
    }
    rq->method_bit = api__method_bit(rq->method);
    int found = route(rq);
    if (!rq->route)
        return api__problem(rq, REEL_ENOT_FOUND, "no route for this path");
    rq->add_headers = rq->route->add_headers;
    int ok = 1;
    enum MHD_Result r = check_auth(rq, &ok);
    if (!ok)
        return r;
    if (!found)
        return api__problem(rq, REEL_EMETHOD_NOT_ALLOWED, "%s is not allowed here", rq->method);
    if (strstr(rq->route->pattern, "{id}"))
        take_id(rq);
    if (rq->bad_id && rq->method_bit != API_M_OPTIONS) /* a preflight names no session */
        return api__problem(rq, REEL_EINVALID_SESSION_ID, "%s", rq->reject_detail);
    if (rq->method_bit != API_M_OPTIONS && !api__cell_check(rq, &r))
        return r;
    if (rq->n_prefixes && rq->method_bit != API_M_OPTIONS && !tenant_ok(rq, &r))
        return r;
    if (api__stopping(srv))
        return api__problem(rq, REEL_EUNAVAILABLE, "the server is shutting down");
    rq->phase = API_PHASE_NEW;
    return MHD_YES;
}

static int has_body(const api_req_t *rq)
{
    return rq->route && (rq->route->body & rq->method_bit);
}

static enum MHD_Result dispatch(api_req_t *rq, const char *data, size_t *size)
{
    if (rq->method_bit == API_M_OPTIONS)
        return api__options(rq);
    enum MHD_Result r;
    if (rq->ack_pending && api__ack_gate(rq, &r)) /* --ack replica: not answered before */
        return r;
    return rq->route->handler(rq, data, size);
}

/* Answers the deferred problem once the whole body has been swallowed. The swallowing
 * is bounded by max_body_bytes, past which the connection is closed. */
static enum MHD_Result deferred(api_req_t *rq, size_t *size)
{
    if (*size) {
        rq->swallowed += *size;
        *size = 0;
        return rq->swallowed > rq->srv->lim.max_body_bytes ? MHD_NO : MHD_YES;
    }
    int err = rq->reject;
    rq->reject = 0;
    return api__problem(rq, err, "%s", rq->reject_detail);
}

/* libmicrohttpd (0.9.75) closes the connection after any answer queued in the first call
 * for a request, so the first call only checks (problems are deferred, except those that
 * should close the connection) and body routes begin; answers come from the later calls. */
enum MHD_Result api__on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **req_cls)
{
    api_req_t *rq = *req_cls;
    if (!rq)
        return MHD_NO; /* out of memory in api__on_uri: drop the connection */
    if (!rq->method) {
        rq->conn = conn;
        rq->method = method;
        rq->start_us = api__now_us();
        rq->start_ms = rq->start_us / 1000;
        rq->in_first = 1;
        api__request_id(rq);
        enum MHD_Result r = first_call(rq);
        if (r == MHD_YES && rq->phase == API_PHASE_NEW && has_body(rq))
            r = dispatch(rq, upload_data, upload_data_size);
        rq->in_first = 0;
        return r;
    }
    if (rq->reject)
        return deferred(rq, upload_data_size);
    if (rq->phase == API_PHASE_ANSWERED || (*upload_data_size && !has_body(rq))) {
        /* Answered already, or a body nobody asked for (GET, DELETE): discard it, within
         * the body limit, before answering. */
        rq->swallowed += *upload_data_size;
        *upload_data_size = 0;
        return rq->swallowed > rq->srv->lim.max_body_bytes ? MHD_NO : MHD_YES;
    }
    return dispatch(rq, upload_data, upload_data_size);
}
