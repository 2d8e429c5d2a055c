/* http.c -- a small HTTP/1.1 client over a socket, enough for a runner to append to a
 * reel server (`reel run --server http://host:port`): one request per connection
 * (Connection: close), Content-Length or chunked responses, timeouts on every step.
 * No TLS: put a TLS-terminating proxy in front for a remote server. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agents/agent_int.h"

int agent__http_init(agent__http_t *h, const char *url, const char *token)
{
    memset(h, 0, sizeof *h);
    if (strncmp(url, "http://", 7))
        return REEL_EINVALID_PARAMETER;
    const char *host = url + 7, *end = host + strcspn(host, "/");
    const char *colon = memchr(host, ':', (size_t)(end - host));
    if (host[0] == '[') /* [v6]:port */
        colon = strstr(host, "]:") && strstr(host, "]:") < end ? strstr(host, "]:") + 1 : NULL;
    size_t hl = (size_t)((colon ? colon : end) - host);
    if (!hl || hl >= sizeof h->host)
        return REEL_EINVALID_PARAMETER;
    memcpy(h->host, host, hl);
    if (h->host[0] == '[') { /* strip the brackets for getaddrinfo */
        memmove(h->host, h->host + 1, hl);
        char *rb = strchr(h->host, ']');
        if (rb)
            *rb = 0;
    }
    size_t pl = colon ? (size_t)(end - colon - 1) : 2;
    if (pl == 0 || pl >= sizeof h->port)
        return REEL_EINVALID_PARAMETER;
    memcpy(h->port, colon ? colon + 1 : "80", pl);
    snprintf(h->prefix, sizeof h->prefix, "%.*s", (int)strcspn(end, "?#"), end);
    size_t n = strlen(h->prefix);
    if (n && h->prefix[n - 1] == '/')
        h->prefix[n - 1] = 0;
    snprintf(h->token, sizeof h->token, "%s", token ? token : "");
    return REEL_OK;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for 'events' on 'fd' until 'deadline' (monotonic ms). 0 ready, -1 timeout/error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

static int connect_to(agent__http_t *h, int64_t deadline)
{
    struct addrinfo hints = {0}, *res, *ai;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(h->host, h->port, &hints, &res))
        return -1;
    int fd = -1;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
        if (fd < 0)
            continue;
        if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
            break;
        if (errno == EINPROGRESS && !wait_fd(fd, POLLOUT, deadline)) {
            int err = 0;
            socklen_t len = sizeof err;
            if (!getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) && !err)
                break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const void *p, size_t len, int64_t deadline)
{
    const char *s = p;
    while (len) {
        ssize_t w = send(fd, s, len, MSG_NOSIGNAL);
        if (w > 0) {
            s += w;
            len -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline))
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Decodes a chunked body in place; returns its length or -1. */
static long dechunk(char *b, size_t len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *end;
        if (in >= len)
            return -1;
        unsigned long n = strtoul(b + in, &end, 16);
        char *nl = memchr(b + in, '\n', len - in);
        if (!nl || end == b + in)
            return -1;
        in = (size_t)(nl - b) + 1;
        if (n == 0)
            return (long)out;
        if (in + n > len)
            return -1;
        memmove(b + out, b + in, n);
        out += n;
        in += n;
        if (in < len && b[in] == '\r')
            in++;
        if (in < len && b[in] == '\n')
            in++;
    }
}

int agent__http_request(agent__http_t *h, const char *method, const char *path,
                        const char *ctype, const void *body, size_t len, int timeout_ms,
                        int *status, store_buf_t *resp)
{
    int64_t deadline = now_ms() + timeout_ms;
    int fd = connect_to(h, deadline);
    if (fd < 0)
        return REEL_EIO;
    store_buf_t req = STORE_BUF_INIT, in = STORE_BUF_INIT;
    int v6 = strchr(h->host, ':') != NULL;
    store_buf_printf(&req, "%s %s%s HTTP/1.1\r\nHost: %s%s%s:%s\r\nConnection: close\r\n"
                     "Accept: application/json\r\nContent-Length: %zu\r\n",
                     method, h->prefix, path, v6 ? "[" : "", h->host, v6 ? "]" : "", h->port,
                     len);
    if (ctype)
        store_buf_printf(&req, "Content-Type: %s\r\n", ctype);
    if (h->token[0])
        store_buf_printf(&req, "Authorization: Bearer %s\r\n", h->token);
    store_buf_puts(&req, "\r\n");
    int rc = REEL_EIO;
    if (store_buf_failed(&req) || send_all(fd, req.data, req.len, deadline) ||
        (len && send_all(fd, body, len, deadline)))
        goto out;
    for (;;) {
        if (store_buf_reserve(&in, 65536))
            goto out;
        ssize_t r = recv(fd, in.data + in.len, in.cap - in.len, 0);
        if (r > 0) {
            in.len += (size_t)r;
        } else if (r == 0) {
            break;
        } else if (errno == EAGAIN || errno == EINTR) {
            if (wait_fd(fd, POLLIN, deadline))
                goto out;
        } else {
            goto out;
        }
    }
    store_buf_cstr(&in);
    char *text = (char *)in.data, *hdr_end = text ? strstr(text, "\r\n\r\n") : NULL;
    if (!hdr_end || sscanf(text, "HTTP/1.%*d %d", status) != 1)
        goto out;
    char *b = hdr_end + 4;
    size_t blen = in.len - (size_t)(b - text);
    *hdr_end = 0;
    for (char *l = strstr(text, "\r\n"); l; l = strstr(l + 2, "\r\n"))
        if (!strncasecmp(l + 2, "Transfer-Encoding:", 18) && strstr(l + 2, "chunked")) {
            long n = dechunk(b, blen);
            if (n < 0)
                goto out;
            blen = (size_t)n;
            break;
        }
    if (resp)
        store_buf_put(resp, b, blen);
    rc = REEL_OK;
out:
    close(fd);
    store_buf_release(&req);
    store_buf_release(&in);
    return rc;
}
