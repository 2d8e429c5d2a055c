/* resp_load.c -- pipelined XADD load on N connections (Redis), from gen_events.py events.
 *
 *   build/peers/resp_load --port P --events FILE [--conns 64] [--batch 100] [--seconds S]
 *                         [--key-prefix m:]
 *
 * FILE holds one event per line (bench/peers/gen_events.py, e.g. with --mix). Connection n
 * appends to its own stream KEYPREFIX<n>: it sends --batch `XADD key * d EVENT` commands
 * at once and waits for all their replies before the next batch, the RESP analogue of one
 * HTTP request of --batch events. Events cycle through FILE (each connection starts at a
 * different place). One epoll thread drives every connection, as wrk does for HTTP.
 * redis-benchmark cannot vary the payload, which the transcript mix needs (its events
 * range from ~100 bytes to several KiB). Prints "events_per_s N"; exits 1 on an error reply.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    char *batch; /* the encoded commands of this connection's current batch */
    size_t len, off;
    int pending; /* replies still to come */
    char in[8192];
    size_t inlen;
    long next_event;
};

static char **events;
static size_t *event_len;
static long nevents;
static int batch = 100;
static long long done_events;

static void die(const char *what)
{
    fprintf(stderr, "resp_load: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void load_events(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long alloc = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0)
            continue;
        if (nevents == alloc) {
            alloc = alloc ? alloc * 2 : 1024;
            events = realloc(events, (size_t)alloc * sizeof *events);
            event_len = realloc(event_len, (size_t)alloc * sizeof *event_len);
            if (!events || !event_len)
                die("realloc");
        }
        events[nevents] = strdup(line);
        event_len[nevents++] = (size_t)n;
    }
    free(line);
    fclose(f);
    if (nevents == 0) {
        errno = 0;
        die("no events in the file");
    }
}

/* Encodes the next --batch XADD commands of connection c into c->batch. */
static void next_batch(struct conn *c, const char *key)
{
    size_t need = 0, kl = strlen(key);
    for (int j = 0; j < batch; j++)
        need += 64 + kl + event_len[(c->next_event + j) % nevents];
    free(c->batch);
    if (!(c->batch = malloc(need)))
        die("malloc");
    size_t o = 0;
    for (int j = 0; j < batch; j++, c->next_event++) {
        long e = c->next_event % nevents;
        o += (size_t)sprintf(c->batch + o, "*5\r\n$4\r\nXADD\r\n$%zu\r\n%s\r\n$1\r\n*\r\n$1\r\nd\r\n$%zu\r\n",
                             kl, key, event_len[e]);
        memcpy(c->batch + o, events[e], event_len[e]);
        o += event_len[e];
        memcpy(c->batch + o, "\r\n", 2);
        o += 2;
    }
    c->len = o;
    c->off = 0;
    c->pending = batch;
}

static int flush_out(struct conn *c)
{
    while (c->off < c->len) {
        ssize_t w = write(c->fd, c->batch + c->off, c->len - c->off);
        if (w < 0)
            return errno == EAGAIN ? 0 : -1;
        c->off += (size_t)w;
    }
    return 1;
}

/* Consumes complete replies ("$N\r\n<id>\r\n") from c->in; returns how many. */
static int take_replies(struct conn *c)
{
    int got = 0;
    size_t p = 0;
    for (;;) {
        char *nl = memmem(c->in + p, c->inlen - p, "\r\n", 2);
        if (!nl)
            break;
        if (c->in[p] == '-') {
            fprintf(stderr, "resp_load: %.*s\n", (int)(nl - c->in - (long)p), c->in + p);
            errno = 0;
            die("error reply");
        }
        if (c->in[p] != '$') {
            errno = 0;
            die("unexpected reply");
        }
        size_t end = (size_t)(nl - c->in) + 2 + (size_t)atol(c->in + p + 1) + 2;
        if (end > c->inlen)
            break;
        p = end;
        got++;
    }
    memmove(c->in, c->in + p, c->inlen - p);
    c->inlen -= p;
    return got;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS))
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int main(int argc, char **argv)
{
    int port = 0, nconns = 64;
    double secs = 10;
    const char *file = NULL, *prefix = "m:";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            puts("usage: resp_load --port P --events FILE [--conns 64] [--batch 100] [--seconds S]"
                 " [--key-prefix m:]");
            return 0;
        }
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--events")) file = v;
        else if (!strcmp(a, "--conns")) nconns = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--seconds")) secs = atof(v);
        else if (!strcmp(a, "--key-prefix")) prefix = v;
        else { fprintf(stderr, "resp_load: unknown option %s\n", a); return 2; }
        i++;
    }
    if (!port || !file || nconns <= 0 || batch <= 0) {
        fputs("usage: resp_load --port P --events FILE [--conns 64] [--batch 100] [--seconds S]\n", stderr);
        return 2;
    }
    load_events(file);
    int ep = epoll_create1(0);
    struct conn *cs = calloc((size_t)nconns, sizeof *cs);
    char (*keys)[64] = calloc((size_t)nconns, sizeof *keys);
    if (ep < 0 || !cs || !keys)
        die("setup");
    double t0 = now_s(), stop = t0 + secs;
    for (int i = 0; i < nconns; i++) {
        snprintf(keys[i], sizeof keys[i], "%s%d", prefix, i);
        cs[i].fd = dial(port);
        cs[i].next_event = (long)i * batch * 7; /* connections start at different events */
        next_batch(&cs[i], keys[i]);
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e);
    }
    int active = nconns;
    while (active > 0) {
        struct epoll_event ev[64];
        int n = epoll_wait(ep, ev, 64, 1000);
        for (int k = 0; k < n; k++) {
            int i = (int)ev[k].data.u32;
            struct conn *c = &cs[i];
            if (c->fd < 0)
                continue;
            if (ev[k].events & EPOLLOUT && flush_out(c) < 0)
                die("write");
            if (ev[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t r;
                while ((r = read(c->fd, c->in + c->inlen, sizeof c->in - c->inlen)) > 0) {
                    c->inlen += (size_t)r;
                    c->pending -= take_replies(c);
                }
                if (r == 0) {
                    errno = 0;
                    die("connection closed by the server");
                }
            }
            if (c->pending == 0) {
                done_events += batch;
                if (now_s() >= stop) {
                    close(c->fd);
                    c->fd = -1;
                    active--;
                    continue;
                }
                next_batch(c, keys[i]);
                if (flush_out(c) < 0)
                    die("write");
            }
        }
    }
    printf("events_per_s %.0f\n", done_events / (now_s() - t0));
    return 0;
}
