/* log.c -- the server's two logs, as text or JSON lines.
 *
 * The access log has one line per request, written when the request ends: time, peer,
 * method, path (an access_token in the query is replaced by "REDACTED"; headers, where
 * tokens usually are, are never logged), status, body bytes when known ("-" for streams),
 * duration, request id and the name of the token used ("-" for none or an unnamed one).
 * The error log says what happened to the server: start and stop,
 * reloads, every 5xx answer with its request id and detail, a damaged store; 4xx answers at
 * level debug. Each line is written with one fwrite under the log's lock and flushed, so
 * lines of concurrent requests never interleave and a crash loses none.
 *
 * api_server_reopen_logs() (SIGHUP) opens the files again by name, which is what logrotate
 * expects; a file that cannot be opened keeps the old one and says so.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "api/core/core.h"
#include "store/json.h"

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int api_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, level_names[i]))
            return i;
    return -1;
}

/* "-" is standard error; NULL stays NULL (the log is off). */
static FILE *open_log(const char *path, char *msg, size_t mlen)
{
    if (!path || !strcmp(path, "-"))
        return path ? stderr : NULL;
    FILE *f = fopen(path, "ae");
    if (!f)
        snprintf(msg, mlen, "cannot open log file '%s': %s", path, strerror(errno));
    return f;
}

static void close_log(FILE *f)
{
    if (f && f != stderr)
        fclose(f);
}

int api__log_init(api_log_t *lg, const api_config_t *cfg, char *msg, size_t mlen)
{
    memset(lg, 0, sizeof *lg);
    pthread_mutex_init(&lg->lock, NULL);
    lg->json = cfg->log_json;
    lg->level = cfg->log_level;
    const char *err_path = cfg->error_log ? cfg->error_log : "-";
    if ((cfg->access_log && !(lg->access_path = strdup(cfg->access_log))) ||
        !(lg->error_path = strdup(err_path)))
        return REEL_ENOMEM;
    lg->error = open_log(lg->error_path, msg, mlen);
    if (!lg->error)
        return REEL_EINVALID_PARAMETER;
    if (lg->access_path && !(lg->access = open_log(lg->access_path, msg, mlen)))
        return REEL_EINVALID_PARAMETER;
    return REEL_OK;
}

void api__log_free(api_log_t *lg)
{
    close_log(lg->access);
    close_log(lg->error);
    free(lg->access_path);
    free(lg->error_path);
    pthread_mutex_destroy(&lg->lock);
}

int api_server_reopen_logs(api_server_t *srv, char *msg, size_t mlen)
{
    api_log_t *lg = &srv->log;
    msg[0] = '\0';
    FILE *e = open_log(lg->error_path, msg, mlen);
    FILE *a = lg->access_path ? open_log(lg->access_path, msg, mlen) : NULL;
    pthread_mutex_lock(&lg->lock);
    if (e) {
        close_log(lg->error);
        lg->error = e;
    }
    if (a) {
        close_log(lg->access);
        lg->access = a;
    }
    pthread_mutex_unlock(&lg->lock);
    return (e && (a || !lg->access_path)) ? REEL_OK : REEL_EIO;
}

/* "2026-12-05T04:55:00.123Z" (UTC, ms) into 'out' (at least 25 bytes). */
static void now_text(char *out, size_t cap)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

/* Appends 'b' and a newline to the access log ('access') or the error log. The FILE is
 * read under the lock: SIGHUP replaces it (api_server_reopen_logs). */
static void write_line(api_log_t *lg, int access, store_buf_t *b)
{
    store_buf_printf(b, "\n");
    if (store_buf_failed(b))
        return;
    pthread_mutex_lock(&lg->lock);
    FILE *f = access ? lg->access : lg->error;
    if (f) {
        fwrite(b->data, 1, b->len, f);
        fflush(f);
    }
    pthread_mutex_unlock(&lg->lock);
}

static void vlog(api_server_t *srv, int level, const char *rid, const char *fmt, va_list ap)
{
    api_log_t *lg = &srv->log;
    if (level > lg->level)
        return;
    char msg[1024], t[32];
    vsnprintf(msg, sizeof msg, fmt, ap);
    now_text(t, sizeof t);
    store_buf_t b = STORE_BUF_INIT;
    if (lg->json) {
        store_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", t, level_names[level]);
        store_json_write_string(&b, msg, strlen(msg));
        if (rid) {
            store_buf_printf(&b, ",\"request_id\":");
            store_json_write_string(&b, rid, strlen(rid));
        }
        store_buf_printf(&b, "}");
    } else {
        store_buf_printf(&b, "%s %s %s%s%s", t, level_names[level], msg, rid ? " request_id=" : "",
                         rid ? rid : "");
    }
    write_line(lg, 0, &b);
    store_buf_release(&b);
}

void api_server_log(api_server_t *srv, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(srv, level, NULL, fmt, ap);
    va_end(ap);
}

void api__log_req(api_req_t *rq, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(rq->srv, level, rq->request_id, fmt, ap);
    va_end(ap);
}

/* ---- Request ids ---- */

/* An id a client sent is kept when it is 1..64 characters a log line can hold unquoted;
 * anything else is replaced, never echoed. */
static int id_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:") == n;
}

void api__request_id(api_req_t *rq)
{
    const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (h && id_ok(h)) {
        snprintf(rq->request_id, sizeof rq->request_id, "%s", h);
        return;
    }
    /* A random prefix per server and a counter: unique in a run, across runs likely. */
    uint64_t n = atomic_fetch_add(&rq->srv->next_request_id, 1);
    snprintf(rq->request_id, sizeof rq->request_id, "%08x%08llx", rq->srv->log.id_prefix,
             (unsigned long long)n);
}

/* ---- The access log ---- */

/* The path and query, with the value of every access_token parameter replaced. */
static void safe_path(store_buf_t *b, const char *uri)
{
    const char *q = strchr(uri, '?');
    size_t n = q ? (size_t)(q + 1 - uri) : strlen(uri);
    char tmp[8192];
    size_t len = 0;
    #define PUT(p, k) do { size_t k_ = (k); if (len + k_ < sizeof tmp) memcpy(tmp + len, p, k_), len += k_; } while (0)
    PUT(uri, n);
    while (q && *++q) {
        const char *amp = strchr(q, '&');
        size_t plen = amp ? (size_t)(amp - q) : strlen(q);
        if (plen >= 13 && !strncmp(q, "access_token=", 13))
            PUT("access_token=REDACTED", 21);
        else
            PUT(q, plen);
        if (!amp)
            break;
        PUT("&", 1);
        q = amp;
    }
    #undef PUT
    tmp[len] = '\0';
    store_json_write_string(b, tmp, len);
}

static void peer_text(const api_req_t *rq, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, cap, "-");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

void api__log_access(api_req_t *rq)
{
    api_log_t *lg = &rq->srv->log;
    if (!lg->access_path) /* (set once at start; the FILE itself may be replaced) */
        return;
    char t[32], peer[64], bytes[24];
    now_text(t, sizeof t);
    peer_text(rq, peer, sizeof peer);
    double ms = (double)(api__now_us() - rq->start_us) / 1000.0;
    if (rq->resp_bytes >= 0)
        snprintf(bytes, sizeof bytes, "%lld", (long long)rq->resp_bytes);
    else
        snprintf(bytes, sizeof bytes, lg->json ? "null" : "-");
    /* 0: the client went away before an answer (nginx says 499). */
    int status = rq->status ? rq->status : 499;
    store_buf_t b = STORE_BUF_INIT;
    store_buf_t path = STORE_BUF_INIT;
    safe_path(&path, rq->uri);
    if (lg->json) {
        store_buf_printf(&b, "{\"time\":\"%s\",\"peer\":\"%s\",\"method\":", t, peer);
        store_json_write_string(&b, rq->method ? rq->method : "-",
                                strlen(rq->method ? rq->method : "-"));
        store_buf_printf(&b, ",\"path\":%.*s,\"status\":%d,\"bytes\":%s,\"duration_ms\":%.3f,"
                             "\"request_id\":\"%s\",\"token\":",
                         (int)path.len, (const char *)path.data, status, bytes, ms,
                         rq->request_id);
        if (rq->token_name[0]) /* names are [A-Za-z0-9._-]: safe unescaped */
            store_buf_printf(&b, "\"%s\"}", rq->token_name);
        else
            store_buf_puts(&b, "null}");
    } else {
        /* The quoted path is JSON-escaped: a raw control byte cannot forge a line. */
        store_buf_printf(&b, "%s %s %s %.*s %d %s %.3fms %s %s", t, peer,
                         rq->method ? rq->method : "-", (int)path.len, (const char *)path.data,
                         status, bytes, ms, rq->request_id,
                         rq->token_name[0] ? rq->token_name : "-");
    }
    store_buf_release(&path);
    write_line(lg, 1, &b);
    store_buf_release(&b);
}

/* ---- Latency per route (served by /metrics) ---- */

const uint64_t api__lat_bounds_us[API_LAT_BUCKETS - 1] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    10000000};

void api__note_latency(api_req_t *rq)
{
    api_server_t *srv = rq->srv;
    if (!rq->route || !rq->method_bit)
        return;
    size_t row = (size_t)(rq->route - srv->routes);
    int m = __builtin_ctz(rq->method_bit);
    if (row >= API_MAX_ROUTES || m >= API_N_METHODS)
        return;
    uint64_t us = api__now_us() - rq->start_us;
    int b = 0;
    while (b < API_LAT_BUCKETS - 1 && us > api__lat_bounds_us[b])
        b++;
    atomic_fetch_add(&srv->lat[row][m][b], 1);
    atomic_fetch_add(&srv->lat_sum_us[row][m], us);
}
