/* server.c -- the libmicrohttpd daemon: start and stop (top floor of api/, see core.h).
 *
 * The threading model is described in api.h and docs/HTTP.md. This file owns:
 *  - the daemon options (0.9.75 defaults are unsafe: no timeout, no per-IP limit), with
 *    the callbacks of api/core/ and the route table of api/routes.c;
 *  - the store's commit hook, which wakes waiting readers;
 *  - orderly shutdown: no suspended connection may be left when MHD_stop_daemon() runs.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/core/core.h"
#include "api/live/live.h"
#include "api/ds/ds.h"
#include "api/routes.h"

/* ---- The commit hook ---- */

static void on_commit(void *arg, const store_commit_t *c)
{
    api_server_t *srv = arg;
    api__own_commit(srv, c);
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
    /* getaddrinfo() would take ":99999" modulo 65536 and "80x" as a service name. */
    const char *port = colon + 1;
    size_t pl = strspn(port, "0123456789");
    if (port[pl] || pl > 5 || atol(port) > 65535) {
        snprintf(msg, mlen, "--listen '%s': the port must be a number from 0 to 65535, not '%s'",
                 listen, port);
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

/* 1 when the bound address is a loopback one (127.0.0.0/8, ::1): only local programs can
 * connect, the case where running without a token is the safe default. */
static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) ||
               (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
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
        flags, 0, NULL, NULL, api__on_request, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)ss,
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_LIMIT, hard,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, hard_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, srv->lim.request_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16 * 1024,
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
        MHD_OPTION_URI_LOG_CALLBACK, api__on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, api__on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, api__on_connection, srv,
        MHD_OPTION_END);
}

static void server_free(api_server_t *srv)
{
    api__conns_free(srv);
    api__tokens_free(srv);
    free(srv->cors_origin);
    api__access_free(srv->access);
    api__log_free(&srv->log);
    api__cell_free(srv);
    pthread_rwlock_destroy(&srv->cluster_lock);
    pthread_mutex_destroy(&srv->cluster_push);
    free(srv->cluster_map_path);
    pthread_rwlock_destroy(&srv->tokens_lock);
    pthread_mutex_destroy(&srv->rate_lock);
    pthread_mutex_destroy(&srv->sinks_lock);
    pthread_mutex_destroy(&srv->lock);
    pthread_mutex_destroy(&srv->conn_lock);
    pthread_mutex_destroy(&srv->own_lock);
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
        cluster_map_free(cfg->cluster);
        return rc;
    }
    api_server_t *srv = calloc(1, sizeof *srv);
    if (!srv) {
        cluster_map_free(cfg->cluster);
        return REEL_ENOMEM;
    }
    pthread_rwlock_init(&srv->cluster_lock, NULL);
    pthread_mutex_init(&srv->cluster_push, NULL);
    pthread_rwlock_init(&srv->tokens_lock, NULL);
    pthread_mutex_init(&srv->rate_lock, NULL);
    rc = api__log_init(&srv->log, cfg, tmp, sizeof tmp);
    if (rc != REEL_OK) {
        set_msg(msg, msg_len, tmp);
        cluster_map_free(cfg->cluster);
        server_free(srv);
        return rc;
    }
    srv->store = s;
    /* Before the first request: a cell never answers without its map. */
    if (cfg->cluster_map_path && !(srv->cluster_map_path = strdup(cfg->cluster_map_path))) {
        cluster_map_free(cfg->cluster);
        server_free(srv);
        return REEL_ENOMEM;
    }
    if (cfg->cluster && (rc = api__cell_init(srv, cfg->cluster, cfg->cell, tmp, sizeof tmp))) {
        set_msg(msg, msg_len, tmp);
        cluster_map_free(cfg->cluster);
        server_free(srv);
        return rc;
    }
    unsigned rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) /* ids stay unique within the run */
        rnd = (unsigned)time(NULL);
    srv->log.id_prefix = rnd;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    srv->started_s = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    api__seal_init(srv); /* without a store secret, tenants get no feed (has_seal 0) */
    srv->loopback = is_loopback(&ss);
    srv->lim = cfg->limits;
    srv->metrics = cfg->metrics;
    srv->metrics_arg = cfg->metrics_arg;
    srv->routes = api__routes;
    srv->n_routes = api__n_routes;
    if (!srv->lim.ds_long_poll_ms)
        srv->lim.ds_long_poll_ms = 3000;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_mutex_init(&srv->conn_lock, NULL);
    pthread_mutex_init(&srv->own_lock, NULL);
    pthread_mutex_init(&srv->sinks_lock, NULL);
    if (!srv->lim.sink_wait_ms)
        srv->lim.sink_wait_ms = 2000;
    if (srv->lim.ack_replica) { /* api/core/ack.c, handlers/sinks.c */
        if (!srv->lim.replica_wait_ms)
            srv->lim.replica_wait_ms = 5000;
        if (!srv->lim.replica_sink[0])
            snprintf(srv->lim.replica_sink, sizeof srv->lim.replica_sink, "postgres-%s",
                     cfg->cell ? cfg->cell : "0");
        /* Nothing is known to be on the replica until its sink reports (sinks.c). */
        store_set_visible(s, 0, 0);
    }
    srv->waiters.next = srv->waiters.prev = &srv->waiters;
    if ((cfg->cors_origin && !(srv->cors_origin = strdup(cfg->cors_origin))) ||
        !(srv->access = api__access_new()) ||
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
    /* Before the daemon, whose threads read it. NULL (a read-only store, out of memory):
     * the subscription routes answer 503. */
    srv->subs = api__ds_subs_start(srv);
    srv->daemon = start_daemon(srv, cfg, &ss);
    if (!srv->daemon) {
        api__ds_subs_stop(srv->subs);
        api__ds_subs_free(srv->subs);
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
    api__ds_subs_stop(srv->subs); /* its deliveries may append: before the commits end */
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
    api__ds_subs_free(srv->subs); /* requests read it until the daemon stopped */
    srv->subs = NULL;
    store_set_commit_hook(srv->store, NULL, NULL);
    if (srv->lim.ack_replica)
        store_set_visible(srv->store, STORE_VISIBLE_ALL, UINT32_MAX);
    server_free(srv);
}

unsigned api_server_port(const api_server_t *srv)
{
    return srv->port;
}

int api_server_loopback(const api_server_t *srv)
{
    return srv->loopback;
}
