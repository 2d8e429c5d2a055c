/* server.c -- the libmicrohttpd daemon: start/stop, connection limits, request dispatch.
 *
 * The threading model is described in api.h and docs/HTTP.md. This file owns:
 *  - the daemon options (0.9.75 defaults are unsafe: no timeout, no per-IP limit);
 *  - per-connection accounting, so that connections beyond a limit get a 429 problem
 *    instead of a silent close (libmicrohttpd's own hard limits sit a little above ours);
 *  - per-request state (api_req_t), created by the URI log callback with the raw target;
 *  - the access handler: framing checks, routing, auth, method checks, dispatch;
 *  - orderly shutdown: no suspended connection may be left when MHD_stop_daemon() runs.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/api_int.h"

/* ---- Connection accounting ---- */

typedef struct api_ipcount {
    struct api_ipcount *next;
    uint8_t ip[16];
    size_t ip_len;
    unsigned count;
} api_ipcount_t;

static unsigned ip_bucket(const uint8_t *ip, size_t len)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ ip[i]) * 16777619u;
    return h & 255;
}

/* Adjusts the open-connection count of 'c's address by 'delta' (+1/-1) and returns the
 * new count. Caller holds srv->conn_lock. */
static unsigned ip_add(api_server_t *srv, const api_conn_t *c, int delta)
{
    api_ipcount_t **pp = &srv->ips[ip_bucket(c->ip, c->ip_len)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->ip_len == c->ip_len && !memcmp((*pp)->ip, c->ip, c->ip_len))
            break;
    api_ipcount_t *e = *pp;
    if (!e) {
        if (delta < 0 || !(e = calloc(1, sizeof *e)))
            return 0;
        memcpy(e->ip, c->ip, c->ip_len);
        e->ip_len = c->ip_len;
        *pp = e;
    }
    e->count += (unsigned)delta;
    unsigned n = e->count;
    if (n == 0) {
        *pp = e->next;
        free(e);
    }
    return n;
}

static void conn_address(struct MHD_Connection *conn, api_conn_t *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET) {
        memcpy(c->ip, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        c->ip_len = 4;
    } else if (sa && sa->sa_family == AF_INET6) {
        memcpy(c->ip, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        c->ip_len = 16;
    }
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    api_server_t *srv = cls;
    api_conn_t *c = *socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        c = calloc(1, sizeof *c);
        if (!c)
            return;
        conn_address(conn, c);
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        c->fd = fi ? fi->connect_fd : -1;
        atomic_store(&c->head_since_ms, (int_fast64_t)api__now_ms());
        pthread_mutex_lock(&srv->conn_lock);
        c->next = srv->conns;
        if (srv->conns)
            srv->conns->prev = c;
        srv->conns = c;
        srv->n_conns++;
        unsigned per_ip = ip_add(srv, c, +1);
        c->over_limit = srv->n_conns > srv->lim.max_connections ||
                        (srv->lim.max_connections_per_ip &&
                         per_ip > srv->lim.max_connections_per_ip);
        pthread_mutex_unlock(&srv->conn_lock);
        *socket_context = c;
    } else if (c) {
        pthread_mutex_lock(&srv->conn_lock);
        if (c->prev)
            c->prev->next = c->next;
        else
            srv->conns = c->next;
        if (c->next)
            c->next->prev = c->prev;
        srv->n_conns--;
        ip_add(srv, c, -1);
        pthread_mutex_unlock(&srv->conn_lock);
        free(c);
        *socket_context = NULL;
    }
}

void api__sweep_heads(api_server_t *srv, uint64_t now_ms)
{
    int_fast64_t limit = (int_fast64_t)srv->lim.request_timeout * 1000;
    pthread_mutex_lock(&srv->conn_lock);
    for (api_conn_t *c = srv->conns; c; c = c->next) {
        int_fast64_t since = atomic_load(&c->head_since_ms);
        if (since && (int_fast64_t)now_ms - since > limit && c->fd >= 0) {
            /* shutdown, not close: libmicrohttpd sees the end of the stream and closes
             * the connection itself. Under conn_lock the socket cannot have been closed
             * and its number reused: the close notification (which takes the lock) comes
             * before libmicrohttpd closes the socket. */
            shutdown(c->fd, SHUT_RDWR);
            atomic_store(&c->head_since_ms, 0);
        }
    }
    pthread_mutex_unlock(&srv->conn_lock);
}

/* ---- Request state ---- */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
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
    atomic_fetch_add(&srv->requests, 1);
    atomic_fetch_add(&srv->live, 1);
    return rq;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    api_req_t *rq = *req_cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    api_conn_t *c = ci ? ci->socket_context : NULL;
    if (c) /* a keep-alive connection now waits for its next request head */
        atomic_store(&c->head_since_ms, (int_fast64_t)api__now_ms());
    if (!rq)
        return;
    if (rq->ib) {
        ingest_batch_release(rq->ib);
        free(rq->ib);
    }
    store_buf_release(&rq->body);
    store_buf_release(&rq->meta);
    api__stream_free(rq);
    atomic_fetch_sub(&rq->srv->live, 1);
    free(rq->uri);
    free(rq);
    *req_cls = NULL;
}

/* ---- Dispatch ---- */

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

static int is(const char *m, const char *want) { return !strcmp(m, want); }

/* The scope bit a request needs; 0 for routes open to everyone. */
static int needed_scope(const api_req_t *rq)
{
    if (rq->route == API_R_HEALTH || rq->route == API_R_UI || rq->route == API_R_UI_JS)
        return 0; /* the inspector's files hold no data; its requests carry the token */
    if (is(rq->method, "GET") || is(rq->method, "HEAD"))
        return API_SCOPE_READ;
    if (is(rq->method, "DELETE"))
        return API_SCOPE_FULL;
    return API_SCOPE_APPEND;
}

static int method_allowed(const api_req_t *rq)
{
    const char *m = rq->method;
    int get = is(m, "GET") || is(m, "HEAD");
    switch (rq->route) {
    case API_R_SESSION:
        return get || is(m, "POST") || is(m, "PUT") || is(m, "DELETE");
    case API_R_EVENTS:
        return get || is(m, "POST");
    case API_R_STREAM:
        return get || is(m, "POST") || is(m, "PUT") || is(m, "DELETE");
    default:
        return get;
    }
}

/* Checks done once, before any body byte is read. Returns MHD_YES with rq->phase set to
 * continue, or the result of an answer already queued (then rq->phase is -1). */
static enum MHD_Result first_call(api_req_t *rq)
{
    api_server_t *srv = rq->srv;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    api_conn_t *c = ci ? ci->socket_context : NULL;
    if (c)
        atomic_store(&c->head_since_ms, 0); /* the head is complete */
    rq->phase = -1;
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
    api__route(rq);
    if (rq->route == API_R_NONE)
        return api__problem(rq, REEL_ENOT_FOUND, "no route for this path");
    if (is(rq->method, "OPTIONS") && srv->cors_origin) {
        rq->phase = 0; /* answered by dispatch() */
        return MHD_YES;
    }
    int sse = rq->route == API_R_EVENTS_SSE || rq->route == API_R_FEED_SSE ||
              (rq->route == API_R_STREAM && is(rq->method, "GET")); /* live=sse (EventSource) */
    int need = needed_scope(rq);
    int rc = need ? api__auth(rq, need, sse) : REEL_OK;
    if (rc == REEL_EUNAUTHORIZED)
        return api__problem(rq, rc, "send 'Authorization: Bearer <token>'%s",
                            sse ? " or ?access_token=" : "");
    if (rc == REEL_EFORBIDDEN)
        return api__problem(rq, rc, "the token's scope does not allow %s on this route",
                            rq->method);
    if (!method_allowed(rq))
        return api__problem(rq, REEL_EMETHOD_NOT_ALLOWED, "%s is not allowed here", rq->method);
    if (rq->bad_id)
        return api__problem(rq, REEL_EINVALID_SESSION_ID,
                            "session ids are 1..%d bytes of [A-Za-z0-9._:~-] (not '.' or '..')",
                            STORE_SESSION_ID_MAX);
    if (api__stopping(srv))
        return api__problem(rq, REEL_EUNAVAILABLE, "the server is shutting down");
    rq->phase = 0;
    return MHD_YES;
}

static enum MHD_Result dispatch(api_req_t *rq, const char *data, size_t *size)
{
    int get = is(rq->method, "GET") || is(rq->method, "HEAD");
    if (is(rq->method, "OPTIONS"))
        return api__preflight(rq);
    switch (rq->route) {
    case API_R_HEALTH: return api__health(rq);
    case API_R_METRICS: return api__metrics(rq);
    case API_R_SESSIONS: return api__sessions_list(rq);
    case API_R_SESSION: return api__session_route(rq, data, size);
    case API_R_EVENTS: return get ? api__events_read(rq) : api__events_append(rq, data, size);
    case API_R_EVENTS_SSE: return api__sse_start(rq, 0);
    case API_R_FEED: return api__feed_read(rq);
    case API_R_FEED_SSE: return api__sse_start(rq, 1);
    case API_R_RESTORE: return api__restore(rq);
    case API_R_TRANSCRIPT: return api__transcript(rq);
    case API_R_SESSION_EXPORT: return api__session_export(rq);
    case API_R_STATS: return api__stats(rq);
    case API_R_EXPORT: return api__export(rq);
    case API_R_VERIFY: return api__verify(rq);
    case API_R_UI: return api__ui(rq, 0);
    case API_R_UI_JS: return api__ui(rq, 1);
    case API_R_STREAM: return api__stream(rq, data, size);
    default: return api__problem(rq, REEL_ENOT_FOUND, "no route for this path");
    }
}

static int has_body(const api_req_t *rq)
{
    return (rq->route == API_R_EVENTS && is(rq->method, "POST")) ||
           (rq->route == API_R_STREAM && (is(rq->method, "POST") || is(rq->method, "PUT"))) ||
           (rq->route == API_R_SESSION && (is(rq->method, "POST") || is(rq->method, "PUT")));
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

/* libmicrohttpd (0.9.75) closes the connection after any answer queued in the first
 * call for a request, so the first call only checks (problems are deferred, except
 * those that should close the connection) and body routes begin; answers come from
 * the later calls. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls)
{
    api_req_t *rq = *req_cls;
    if (!rq)
        return MHD_NO; /* out of memory in on_uri: drop the connection */
    if (!rq->method) {
        rq->conn = conn;
        rq->method = method;
        rq->start_ms = api__now_ms();
        rq->in_first = 1;
        enum MHD_Result r = first_call(rq);
        if (r == MHD_YES && rq->phase == 0 && has_body(rq))
            r = dispatch(rq, upload_data, upload_data_size);
        rq->in_first = 0;
        return r;
    }
    if (rq->reject)
        return deferred(rq, upload_data_size);
    if (rq->phase < 0 || (*upload_data_size && !has_body(rq))) {
        /* Answered already, or a body nobody asked for (GET, DELETE): discard it, within
         * the body limit, before answering. */
        rq->swallowed += *upload_data_size;
        *upload_data_size = 0;
        return rq->swallowed > rq->srv->lim.max_body_bytes ? MHD_NO : MHD_YES;
    }
    return dispatch(rq, upload_data, upload_data_size);
}

/* ---- Asynchronous store work ---- */

void api__batch_done(store_batch_t *b, void *arg)
{
    api_req_t *rq = arg;
    api_server_t *srv = rq->srv;
    rq->async_done = 1;
    /* The connection was suspended before the submit; resuming it from the committer
     * thread is allowed (MHD_USE_ITC wakes the daemon). The handler sees 'async_done'. */
    MHD_resume_connection(rq->conn);
    atomic_fetch_sub(&srv->inflight, 1);
}

int api__async_begin(api_req_t *rq)
{
    api_server_t *srv = rq->srv;
    rq->async_done = 0;
    /* Counted under the lock that api_server_stop() sets 'stopping' with, so the stop
     * either refuses this submit or waits for it. */
    pthread_mutex_lock(&srv->lock);
    int stopping = srv->stopping;
    if (!stopping)
        atomic_fetch_add(&srv->inflight, 1);
    pthread_mutex_unlock(&srv->lock);
    if (stopping)
        return REEL_EUNAVAILABLE;
    MHD_suspend_connection(rq->conn);
    return REEL_OK;
}

void api__async_failed(api_req_t *rq, store_batch_t *b, int rc)
{
    b->err = rc;
    rq->async_done = 1;
    MHD_resume_connection(rq->conn);
    atomic_fetch_sub(&rq->srv->inflight, 1);
}

enum MHD_Result api__submit(api_req_t *rq, store_batch_t *b)
{
    if (api__async_begin(rq) != REEL_OK)
        return api__problem(rq, REEL_EUNAVAILABLE, "the server is shutting down");
    b->done = api__batch_done;
    b->done_arg = rq;
    int rc = store_submit(rq->srv->store, b);
    if (rc != REEL_OK)
        api__async_failed(rq, b, rc);
    return MHD_YES;
}

/* ---- Request bodies ---- */

int api__body_precheck(api_req_t *rq, enum MHD_Result *r)
{
    const char *cl = api__header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > rq->srv->lim.max_body_bytes) {
        rq->close_now = 1; /* do not read a body we will not use */
        *r = api__problem(rq, REEL_ETOO_LARGE, "Content-Length %s exceeds --max-body-bytes (%zu)",
                          cl, rq->srv->lim.max_body_bytes);
        return 0;
    }
    return 1;
}

int api__collect_body(api_req_t *rq, const char *data, size_t *size)
{
    api_server_t *srv = rq->srv;
    if (*size == 0)
        return 0;
    if (api__now_ms() - rq->start_ms > (uint64_t)srv->lim.request_timeout * 1000) {
        rq->reject = REEL_ETOO_LARGE; /* never answered: the caller closes */
        return -1;
    }
    if (!rq->reject && rq->body.len + *size > srv->lim.max_body_bytes) {
        rq->reject = REEL_ETOO_LARGE;
        snprintf(rq->reject_detail, sizeof rq->reject_detail,
                 "the request body exceeds --max-body-bytes (%zu)", srv->lim.max_body_bytes);
        store_buf_release(&rq->body);
    }
    if (!rq->reject)
        store_buf_put(&rq->body, data, *size);
    *size = 0;
    return 1;
}

static void on_commit(void *arg, const store_commit_t *c)
{
    api_server_t *srv = arg;
    uint64_t seen = atomic_load(&srv->seen_tail);
    while (c->tail_position > seen &&
           !atomic_compare_exchange_weak(&srv->seen_tail, &seen, c->tail_position))
        ;
    api__wake_commit(srv, c);
}

/* ---- Lifecycle ---- */

static int parse_listen(const char *listen, struct sockaddr_storage *ss, char *msg, size_t mlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host || !colon[1]) {
        snprintf(msg, mlen, "--listen must be HOST:PORT, not '%s'", listen);
        return REEL_EINVALID_PARAMETER;
    }
    size_t hl = (size_t)(colon - listen);
    memcpy(host, listen, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, colon + 1, &hints, &res);
    if (gai != 0 || !res) {
        snprintf(msg, mlen, "cannot resolve --listen '%s': %s", listen, gai_strerror(gai));
        return REEL_EINVALID_PARAMETER;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return REEL_OK;
}

static struct MHD_Daemon *start_daemon(api_server_t *srv, const api_config_t *cfg,
                                       struct sockaddr_storage *ss)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC;
    if (ss->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned threads = cfg->threads ? cfg->threads : 2;
    /* Hard limits a little above ours leave room to answer 429 before closing. */
    unsigned hard = srv->lim.max_connections + 64;
    unsigned hard_ip = srv->lim.max_connections_per_ip ? srv->lim.max_connections_per_ip + 16 : 0;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, hard,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, hard_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, srv->lim.request_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16 * 1024,
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_END);
}

static void server_free(api_server_t *srv)
{
    for (int i = 0; i < 256; i++)
        while (srv->ips[i]) {
            api_ipcount_t *e = srv->ips[i];
            srv->ips[i] = e->next;
            free(e);
        }
    free(srv->tokens);
    free(srv->cors_origin);
    api__evcache_free(srv->evcache);
    pthread_mutex_destroy(&srv->lock);
    pthread_mutex_destroy(&srv->conn_lock);
    free(srv);
}

static void set_msg(char *msg, size_t mlen, const char *text)
{
    if (msg && mlen)
        snprintf(msg, mlen, "%s", text);
}

int api_server_start(store_t *s, const api_config_t *cfg, api_server_t **out, char *msg,
                     size_t msg_len)
{
    char tmp[256] = "";
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int rc = parse_listen(cfg->listen, &ss, tmp, sizeof tmp);
    if (rc != REEL_OK) {
        set_msg(msg, msg_len, tmp);
        return rc;
    }
    api_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return REEL_ENOMEM;
    srv->store = s;
    srv->lim = cfg->limits;
    srv->evcache = api__evcache_new(cfg->limits.event_cache_bytes); /* NULL: render always */
    pthread_mutex_init(&srv->lock, NULL);
    pthread_mutex_init(&srv->conn_lock, NULL);
    srv->waiters.next = srv->waiters.prev = &srv->waiters;
    if ((cfg->cors_origin && !(srv->cors_origin = strdup(cfg->cors_origin))) ||
        api__tokens_init(srv, cfg->tokens, cfg->n_tokens) != REEL_OK) {
        server_free(srv);
        return REEL_ENOMEM;
    }
    store_set_commit_hook(s, on_commit, srv);
    if (api__watcher_start(srv) != REEL_OK) {
        store_set_commit_hook(s, NULL, NULL);
        server_free(srv);
        set_msg(msg, msg_len, "cannot start the watcher thread");
        return REEL_EIO;
    }
    srv->daemon = start_daemon(srv, cfg, &ss);
    if (!srv->daemon) {
        snprintf(tmp, sizeof tmp, "cannot listen on '%s' (address in use or not local?)",
                 cfg->listen);
        set_msg(msg, msg_len, tmp);
        api__watcher_stop(srv);
        store_set_commit_hook(s, NULL, NULL);
        server_free(srv);
        return REEL_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : 0;
    *out = srv;
    return REEL_OK;
}

void api_server_stop(api_server_t *srv)
{
    if (!srv)
        return;
    /* 1. No new suspensions, and every waiting client is resumed so that it finishes
     *    (long-polls answer, SSE streams end). */
    api__wake_all(srv, 1);
    api__watcher_stop(srv);
    /* 2. Appends handed to the committer and transcript/stats jobs complete normally:
     *    their connections are suspended (libmicrohttpd must not stop under them) and
     *    jobs read the store (which the caller closes next), so wait for all of them.
     *    Resumed waiters and other requests under way get a bounded while to finish. */
    while (atomic_load(&srv->inflight) > 0)
        usleep(1000);
    for (int i = 0; i < 2000 && atomic_load(&srv->live) > 0; i++)
        usleep(1000);
    /* 3. libmicrohttpd refuses to stop with suspended connections; none are left. */
    MHD_stop_daemon(srv->daemon);
    store_set_commit_hook(srv->store, NULL, NULL);
    server_free(srv);
}

unsigned api_server_port(const api_server_t *srv)
{
    return srv->port;
}
