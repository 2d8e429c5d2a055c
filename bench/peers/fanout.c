/* fanout.c -- live fan-out latency: N subscribers on one epoll thread, one publisher.
 *
 *   build/peers/fanout --subscribers N --events E --body FILE [--interval-ms MS]
 *       (--sse URL [--header 'K: V']... --publish URL [--content-type T]
 *        | --resp HOST:PORT --key KEY)
 *
 * FILE is one event (bench/peers/gen_events.py --format fanout) holding the marker
 * "REELTS" + 19 digits. Before each send the publisher overwrites the digits with
 * CLOCK_REALTIME in ns; every subscriber scans what it receives for markers, so the
 * latency is append-sent -> bytes-received, whatever the framing (SSE, Durable Streams,
 * RESP). Client and server share one host and one clock.
 *   --sse      each subscriber GETs URL (plus the headers) and reads the stream; it is
 *              ready once the response headers (status 200) arrived;
 *   --publish  the publisher POSTs FILE to URL on one keep-alive connection, waits for the
 *              answer (the append is durable when it comes), then sleeps --interval-ms;
 *   --resp     subscribers loop `XREAD BLOCK 0 COUNT 1000 STREAMS KEY <last id>` (starting
 *              at `$`); the publisher runs `XADD KEY k-1 d FILE` for k = 1..E.
 * Prints "deliveries D expected X p50_ms A p99_ms B max_ms C". One epoll thread holds all
 * subscribers because a thread per subscriber measured the client's scheduling, not the
 * server (docs/BENCHMARKS.md, the earlier Python client).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MARK "REELTS"
#define MARK_LEN 6
#define DIGITS 19
#define CARRY (MARK_LEN + DIGITS - 1) /* a whole marker never fits in the carry */
#define MAX_HEADERS 16

struct url {
    char host[256], port[16], target[2048];
};

struct opts {
    int subscribers, events, interval_ms;
    const char *body_file, *content_type, *key;
    struct url sse, publish, resp;
    int resp_mode;
    const char *headers[MAX_HEADERS];
    int nheaders;
};

struct sub {
    int fd, ready, sent;
    char *buf; /* RESP: the reply so far; SSE: carry + the headers until they are done */
    size_t len, cap;
    long long last_k; /* RESP: the id of the last entry received */
};

static struct opts O = {.interval_ms = 20, .content_type = "application/json"};
static char *body;
static size_t body_len;
static double *lat; /* ms, one per delivery */
static long nlat, caplat;
static atomic_int publishing_done; /* set by the publisher thread */

static void die(const char *what)
{
    fprintf(stderr, "fanout: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
    exit(1);
}

static long long realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void parse_url(const char *s, struct url *u)
{
    const char *p = strncmp(s, "http://", 7) == 0 ? s + 7 : s;
    const char *slash = strchr(p, '/'), *colon = strchr(p, ':');
    size_t hl = (colon && (!slash || colon < slash) ? colon : slash ? slash : p + strlen(p)) - p;
    if (hl == 0 || hl >= sizeof u->host)
        die("bad URL");
    memcpy(u->host, p, hl);
    u->host[hl] = 0;
    if (colon && (!slash || colon < slash))
        snprintf(u->port, sizeof u->port, "%.*s", (int)((slash ? slash : p + strlen(p)) - colon - 1),
                 colon + 1);
    else
        strcpy(u->port, "80");
    snprintf(u->target, sizeof u->target, "%s", slash ? slash : "/");
}

static int connect_to(const struct url *u, int nonblock)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(u->host, u->port, &hints, &ai) != 0)
        die("getaddrinfo");
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0), one = 1;
    if (fd < 0)
        die("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
        die("connect");
    freeaddrinfo(ai);
    return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

static void grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    if (!(*buf = realloc(*buf, c)))
        die("realloc");
    *cap = c;
}

static void record(double ms)
{
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 65536;
        if (!(lat = realloc(lat, caplat * sizeof *lat)))
            die("realloc");
    }
    lat[nlat++] = ms;
}

/* Every marker in p[0..n) gives one delivery at time `now`. */
static void scan_markers(const char *p, size_t n, long long now)
{
    const char *end = p + n;
    while ((p = memmem(p, (size_t)(end - p), MARK, MARK_LEN)) && end - p >= MARK_LEN + DIGITS) {
        long long t = 0;
        int ok = 1;
        for (int i = 0; i < DIGITS; i++) {
            char c = p[MARK_LEN + i];
            ok &= c >= '0' && c <= '9';
            t = t * 10 + (c - '0');
        }
        if (ok && t > 0)
            record((now - t) / 1e6);
        p += MARK_LEN;
    }
}

/* ---- RESP ---- */

static void resp_cmd(char **out, size_t *len, size_t *cap, int argc, const char **argv,
                     const size_t *arglen)
{
    char head[32];
    *len = 0;
    int h = snprintf(head, sizeof head, "*%d\r\n", argc);
    grow(out, cap, (size_t)h);
    memcpy(*out, head, (size_t)h);
    *len = (size_t)h;
    for (int i = 0; i < argc; i++) {
        h = snprintf(head, sizeof head, "$%zu\r\n", arglen[i]);
        grow(out, cap, *len + (size_t)h + arglen[i] + 2);
        memcpy(*out + *len, head, (size_t)h);
        memcpy(*out + *len + h, argv[i], arglen[i]);
        memcpy(*out + *len + h + arglen[i], "\r\n", 2);
        *len += (size_t)h + arglen[i] + 2;
    }
}

/* The end of the RESP value at p[pos..n), or -1 while it is incomplete. */
static long resp_end(const char *p, long n, long pos)
{
    const char *nl = pos < n ? memchr(p + pos, '\n', (size_t)(n - pos)) : NULL;
    if (!nl)
        return -1;
    long after = nl - p + 1, v = atol(p + pos + 1);
    switch (p[pos]) {
    case '+': case '-': case ':':
        return after;
    case '$':
        return v < 0 ? after : (after + v + 2 <= n ? after + v + 2 : -1);
    case '*':
        for (long i = 0; i < v && after >= 0; i++)
            after = resp_end(p, n, after);
        return after;
    default:
        errno = 0;
        die("unexpected RESP reply");
        return -1;
    }
}

/* The k of the last "k-1" entry id in a reply: ids are the only "\r\n<digits>-1\r\n". */
static long long last_id(const char *p, long n, long long prev)
{
    for (long i = n - 4; i > 0; i--) {
        if (memcmp(p + i, "-1\r\n", 4) != 0)
            continue;
        long j = i;
        while (j > 0 && p[j - 1] >= '0' && p[j - 1] <= '9')
            j--;
        if (j < i && j >= 1 && p[j - 1] == '\n')
            return atoll(p + j);
    }
    return prev;
}

static void resp_xread(struct sub *s)
{
    char id[32], *cmd = NULL;
    size_t len = 0, cap = 0;
    if (s->last_k > 0)
        snprintf(id, sizeof id, "%lld-1", s->last_k);
    else
        strcpy(id, "$");
    const char *argv[] = {"XREAD", "BLOCK", "0", "COUNT", "1000", "STREAMS", O.key, id};
    size_t al[8];
    for (int i = 0; i < 8; i++)
        al[i] = strlen(argv[i]);
    resp_cmd(&cmd, &len, &cap, 8, argv, al);
    write_all(s->fd, cmd, len);
    free(cmd);
}

static void resp_input(struct sub *s, long long now)
{
    long end;
    while (s->len > 0 && (end = resp_end(s->buf, (long)s->len, 0)) > 0) {
        scan_markers(s->buf, (size_t)end, now);
        s->last_k = last_id(s->buf, end, s->last_k);
        memmove(s->buf, s->buf + end, s->len - (size_t)end);
        s->len -= (size_t)end;
        resp_xread(s);
    }
}

/* ---- SSE ---- */

static void sse_request(struct sub *s)
{
    char req[4096];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%s\r\nAccept: text/event-stream\r\n",
                     O.sse.target, O.sse.host, O.sse.port);
    for (int i = 0; i < O.nheaders; i++)
        n += snprintf(req + n, sizeof req - (size_t)n, "%s\r\n", O.headers[i]);
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    write_all(s->fd, req, (size_t)n);
}

static void sse_input(struct sub *s, long long now)
{
    if (!s->ready) {
        char *e = memmem(s->buf, s->len, "\r\n\r\n", 4);
        if (!e)
            return;
        if (s->len < 12 || memcmp(s->buf + 9, "200", 3) != 0) {
            fprintf(stderr, "fanout: subscriber got: %.*s\n", (int)(e - s->buf), s->buf);
            errno = 0;
            die("subscription refused");
        }
        s->ready = 1;
        size_t rest = s->len - (size_t)(e + 4 - s->buf);
        memmove(s->buf, e + 4, rest);
        s->len = rest;
    }
    scan_markers(s->buf, s->len, now);
    size_t keep = s->len < CARRY ? s->len : CARRY;
    memmove(s->buf, s->buf + s->len - keep, keep);
    s->len = keep;
}

/* ---- publisher ---- */

static void stamp(char *p, long long ns)
{
    char *m = memmem(p, body_len, MARK, MARK_LEN);
    for (int i = DIGITS - 1; i >= 0; i--, ns /= 10)
        m[MARK_LEN + i] = (char)('0' + ns % 10);
}

/* Reads one HTTP answer (Content-Length or chunked); fails on a status >= 300. */
static void http_answer(int fd, char **buf, size_t *cap)
{
    size_t len = 0;
    for (;;) {
        grow(buf, cap, len + 65536);
        ssize_t r = read(fd, *buf + len, *cap - len - 1);
        if (r <= 0)
            die("publisher read");
        len += (size_t)r;
        (*buf)[len] = 0;
        char *e = strstr(*buf, "\r\n\r\n");
        if (!e)
            continue;
        int status = atoi(*buf + 9);
        if (status >= 300) {
            fprintf(stderr, "fanout: publish answered %.*s\n", (int)(e - *buf), *buf);
            errno = 0;
            die("publish failed");
        }
        char *cl = strcasestr(*buf, "\r\ncontent-length:");
        size_t hdr = (size_t)(e + 4 - *buf);
        if (cl && cl < e) {
            if (len >= hdr + (size_t)atol(cl + 17))
                return;
        } else if (strcasestr(*buf, "chunked") && strcasestr(*buf, "chunked") < e) {
            if (len >= 5 && memcmp(*buf + len - 5, "0\r\n\r\n", 5) == 0)
                return;
        } else {
            return; /* 204 and friends: no body */
        }
    }
}

static void *publisher(void *unused)
{
    char *msg = NULL, *ans = NULL;
    size_t len = 0, cap = 0, acap = 0;
    int fd = connect_to(O.resp_mode ? &O.resp : &O.publish, 0);
    for (int k = 1; k <= O.events; k++) {
        stamp(body, realtime_ns());
        if (O.resp_mode) {
            char id[32];
            snprintf(id, sizeof id, "%d-1", k);
            const char *argv[] = {"XADD", O.key, id, "d", body};
            size_t al[] = {4, strlen(O.key), strlen(id), 1, body_len};
            resp_cmd(&msg, &len, &cap, 5, argv, al);
            write_all(fd, msg, len);
            grow(&ans, &acap, 256);
            if (read(fd, ans, acap) <= 0 || ans[0] == '-')
                die("XADD failed");
        } else {
            char head[4096];
            int h = snprintf(head, sizeof head,
                             "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: %s\r\n"
                             "Content-Length: %zu\r\n\r\n",
                             O.publish.target, O.publish.host, O.publish.port, O.content_type, body_len);
            grow(&msg, &cap, (size_t)h + body_len);
            memcpy(msg, head, (size_t)h);
            memcpy(msg + h, body, body_len);
            write_all(fd, msg, (size_t)h + body_len);
            http_answer(fd, &ans, &acap);
        }
        struct timespec ts = {O.interval_ms / 1000, (O.interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    close(fd);
    free(msg);
    free(ans);
    publishing_done = 1;
    return unused;
}

/* ---- subscribers ---- */

static int all_ready(struct sub *subs)
{
    for (int i = 0; i < O.subscribers; i++)
        if (!subs[i].ready)
            return 0;
    return 1;
}

/* One epoll round: send requests on connect, read and account what arrived. */
static void pump(int ep, struct sub *subs, int timeout_ms)
{
    struct epoll_event ev[256];
    int n = epoll_wait(ep, ev, 256, timeout_ms);
    long long now = realtime_ns();
    for (int i = 0; i < n; i++) {
        struct sub *s = &subs[ev[i].data.u32];
        if ((ev[i].events & EPOLLOUT) && !s->sent) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            if (err) {
                errno = err;
                die("subscriber connect");
            }
            s->sent = 1;
            if (O.resp_mode) {
                resp_xread(s);
                s->ready = 1; /* XREAD BLOCK has no acknowledgement; the warm-up covers it */
            } else {
                sse_request(s);
            }
            struct epoll_event e = {.events = EPOLLIN, .data.u32 = ev[i].data.u32};
            epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e);
        }
        if (!(ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            continue;
        for (;;) {
            grow(&s->buf, &s->cap, s->len + 65536);
            ssize_t r = read(s->fd, s->buf + s->len, s->cap - s->len);
            if (r == 0) {
                errno = 0;
                die("a subscriber's connection was closed by the server");
            }
            if (r < 0)
                break;
            s->len += (size_t)r;
            if (O.resp_mode)
                resp_input(s, now);
            else
                sse_input(s, now);
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *f)
{
    fputs("usage: fanout --subscribers N --events E --body FILE [--interval-ms MS]\n"
          "         (--sse URL [--header 'K: V']... --publish URL [--content-type T]\n"
          "          | --resp HOST:PORT --key KEY)\n"
          "Live fan-out latency, append -> delivery; see bench/peers/fanout.c.\n",
          f);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!v) {
            usage(stderr);
            exit(2);
        }
        i++;
        if (!strcmp(a, "--subscribers")) O.subscribers = atoi(v);
        else if (!strcmp(a, "--events")) O.events = atoi(v);
        else if (!strcmp(a, "--interval-ms")) O.interval_ms = atoi(v);
        else if (!strcmp(a, "--body")) O.body_file = v;
        else if (!strcmp(a, "--sse")) parse_url(v, &O.sse);
        else if (!strcmp(a, "--publish")) parse_url(v, &O.publish);
        else if (!strcmp(a, "--content-type")) O.content_type = v;
        else if (!strcmp(a, "--resp")) { parse_url(v, &O.resp); O.resp_mode = 1; }
        else if (!strcmp(a, "--key")) O.key = v;
        else if (!strcmp(a, "--header") && O.nheaders < MAX_HEADERS) O.headers[O.nheaders++] = v;
        else { usage(stderr); exit(2); }
    }
    int ok = O.subscribers > 0 && O.events > 0 && O.body_file &&
             (O.resp_mode ? O.key != NULL : O.sse.host[0] && O.publish.host[0]);
    if (!ok) {
        usage(stderr);
        exit(2);
    }
}

static void read_body(void)
{
    FILE *f = fopen(O.body_file, "rb");
    if (!f)
        die(O.body_file);
    size_t cap = 0;
    body_len = 0;
    for (;;) {
        grow(&body, &cap, body_len + 65536);
        size_t r = fread(body + body_len, 1, cap - body_len - 1, f);
        if (r == 0)
            break;
        body_len += r;
    }
    fclose(f);
    body[body_len] = 0;
    char *m = memmem(body, body_len, MARK, MARK_LEN);
    if (!m || (size_t)(m - body) + MARK_LEN + DIGITS > body_len) {
        errno = 0;
        die("the body has no REELTS marker (gen_events.py --format fanout)");
    }
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    read_body();
    struct sub *subs = calloc((size_t)O.subscribers, sizeof *subs);
    int ep = epoll_create1(0);
    if (!subs || ep < 0)
        die("setup");
    for (int i = 0; i < O.subscribers; i++) {
        subs[i].fd = connect_to(O.resp_mode ? &O.resp : &O.sse, 1);
        struct epoll_event e = {.events = EPOLLOUT | EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &e);
    }
    time_t deadline = time(NULL) + 60;
    while (!all_ready(subs)) {
        if (time(NULL) > deadline) {
            errno = 0;
            die("subscribers not ready after 60 s");
        }
        pump(ep, subs, 100);
    }
    /* Let the server park every subscriber (a RESP client cannot tell when it has). */
    for (long long t_end = realtime_ns() + 1000000000LL; realtime_ns() < t_end;)
        pump(ep, subs, 50);
    nlat = 0; /* anything before the first publish is not a measurement */
    pthread_t th;
    pthread_create(&th, NULL, publisher, NULL);
    long expected = (long)O.subscribers * O.events;
    long long drain_end = 0;
    while (nlat < expected) {
        pump(ep, subs, 50);
        if (publishing_done && !drain_end)
            drain_end = realtime_ns() + 10000000000LL; /* 10 s for the stragglers */
        if (drain_end && realtime_ns() > drain_end)
            break;
    }
    pthread_join(th, NULL);
    qsort(lat, (size_t)nlat, sizeof *lat, cmp_double);
    double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(long)(nlat * 0.99)] : 0;
    printf("deliveries %ld expected %ld p50_ms %.3f p99_ms %.3f max_ms %.3f\n", nlat, expected, p50,
           p99, nlat ? lat[nlat - 1] : 0);
    return nlat == expected ? 0 : 3;
}
