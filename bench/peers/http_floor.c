/* http_floor.c -- the floor of durable single-event ingest over HTTP on this machine (issue 19).
 *
 *   build/peers/http_floor --port P --log FILE [--sync fdatasync|none]
 *
 * Not a store: the least any server can do for the single-event row of bench/peers, so the
 * row's target can be read against what the machine and the client allow. One thread and
 * one epoll loop, as Redis: each iteration reads every ready connection, takes each
 * complete HTTP/1.1 request (headers, Content-Length, body), appends the bodies of the
 * iteration to FILE with one write() and one fdatasync(), then answers every request of
 * the iteration with a fixed 200 JSON body -- Redis's `appendfsync always` group commit,
 * without parsing, indexing, hashing or compression. Ctrl-C or SIGTERM stops it; it prints
 * "requests N syncs M" on exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define PROG "http_floor"
struct opts;
#include "benchutil.h"

#define IN_MAX (1u << 20)
#define MAX_CONNS 4096

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: 70\r\n\r\n"
                             "{\"session_id\":\"s\",\"first_sequence\":1,\"last_sequence\":1,\"duplicates\":0}";

struct conn {
    int fd;
    char *in;
    size_t len;
    int answers; /* requests of this iteration still to answer */
};

static char *group;
static size_t group_len, group_cap;
static unsigned long long requests, syncs;

static void group_put(const char *p, size_t n)
{
    if (group_len + n > group_cap) {
        group_cap = (group_len + n) * 2;
        if (!(group = realloc(group, group_cap)))
            die("realloc", NULL);
    }
    memcpy(group + group_len, p, n);
    group_len += n;
}

/* Takes every complete request at the head of c->in; returns -1 on a malformed one. */
static int take_requests(struct conn *c)
{
    for (;;) {
        char *end = memmem(c->in, c->len, "\r\n\r\n", 4);
        if (!end)
            return 0;
        size_t head = (size_t)(end - c->in) + 4, body = 0;
        for (char *p = c->in; p < end; p++)
            if ((p == c->in || p[-1] == '\n') && !strncasecmp(p, "content-length:", 15))
                body = strtoul(p + 15, NULL, 10);
        if (head + body > IN_MAX)
            return -1;
        if (c->len < head + body)
            return 0;
        group_put(c->in + head, body);
        group_put("\n", 1);
        c->answers++;
        requests++;
        memmove(c->in, c->in + head + body, c->len - head - body);
        c->len -= head + body;
    }
}

static void drop(int ep, struct conn **conns, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->in);
    free(c);
}

int main(int argc, char **argv)
{
    int port = 0, sync = 1;
    const char *log = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--log") && i + 1 < argc)
            log = argv[++i];
        else if (!strcmp(argv[i], "--sync") && i + 1 < argc)
            sync = strcmp(argv[++i], "none") != 0;
        else {
            fprintf(stderr, "usage: http_floor --port P --log FILE [--sync fdatasync|none]  "
                            "(see the source's head)\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!port || !log) {
        fprintf(stderr, "http_floor: --port and --log are required\n");
        return 2;
    }
    int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644);
    if (lfd < 0)
        die(log, NULL);
    bench_stop_on_signals();
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024))
        die("listen", NULL);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct conn **conns = calloc(MAX_CONNS, sizeof *conns), *ready[MAX_CONNS];
    while (!bench_stop) {
        int n = epoll_wait(ep, evs, 256, 200);
        size_t nready = 0;
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int cfd;
                while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= MAX_CONNS) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = calloc(1, sizeof *c);
                    c->fd = cfd;
                    c->in = malloc(IN_MAX);
                    conns[cfd] = c;
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ce);
                }
                continue;
            }
            struct conn *c = conns[fd];
            if (!c)
                continue;
            ssize_t r = read(fd, c->in + c->len, IN_MAX - c->len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                drop(ep, conns, c);
                continue;
            }
            c->len += (size_t)r;
            if (take_requests(c) < 0) {
                drop(ep, conns, c);
                continue;
            }
            if (c->answers)
                ready[nready++] = c;
        }
        if (!group_len)
            continue;
        if (write(lfd, group, group_len) != (ssize_t)group_len)
            die("write", NULL);
        if (sync && fdatasync(lfd))
            die("fdatasync", NULL);
        syncs++;
        group_len = 0;
        for (size_t i = 0; i < nready; i++) {
            struct conn *c = ready[i];
            for (; c->answers > 0; c->answers--)
                if (write(c->fd, answer, sizeof answer - 1) != (ssize_t)(sizeof answer - 1))
                    break; /* the client went away: its next read drops it */
            c->answers = 0;
        }
    }
    printf("requests %llu syncs %llu\n", requests, syncs);
    return 0;
}
