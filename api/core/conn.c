/* conn.c -- connection accounting: the connection limits and slow request heads.
 *
 * Connections beyond --max-connections (or the per-address limit) are accepted and
 * answered 429 with a problem instead of a silent close: libmicrohttpd's own hard limits
 * sit a little above ours (api/server.c). Every open connection is listed so that the
 * watcher thread can close request heads that arrive too slowly (slowloris).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "api/core/core.h"

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

void api__on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
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

api_conn_t *api__conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void api__conns_free(api_server_t *srv)
{
    for (int i = 0; i < 256; i++)
        while (srv->ips[i]) {
            api_ipcount_t *e = srv->ips[i];
            srv->ips[i] = e->next;
            free(e);
        }
}
