/* reqlat.c -- request latency on one keep-alive connection, one request at a time.
 *
 *   build/peers/reqlat --http HOST:PORT --path PATH [--requests N] [--warmup W]
 *   build/peers/reqlat --resp HOST:PORT --cmd 'XREVRANGE s + - COUNT 50' [--requests N]
 *
 * Sends the request, reads the whole answer (HTTP: Content-Length or chunked; RESP: one
 * complete value), and times each round trip with CLOCK_MONOTONIC. The same C client for
 * every system keeps the client's own cost small and equal (a Python client would add
 * ~50 us per request, more than the servers' work). Prints
 * "requests N p50_us A p99_us B mean_us C bytes_per_answer D"; exits 1 on an HTTP status
 * >= 300 or a RESP error.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char *buf;
static size_t cap, len;

static void die(const char *what)
{
    fprintf(stderr, "reqlat: %s%s%s\n", what, errno ? ": " : "", errno ? strerror(errno) : "");
    exit(1);
}

static double mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int dial(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon - hostport >= (long)sizeof host)
        die("HOST:PORT expected");
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        die("getaddrinfo");
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        die("connect");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    freeaddrinfo(ai);
    return fd;
}

static void fill(int fd)
{
    if (cap - len < 65536) {
        cap = cap ? cap * 2 : 1 << 20;
        if (!(buf = realloc(buf, cap)))
            die("realloc");
    }
    ssize_t r = read(fd, buf + len, cap - len - 1);
    if (r <= 0)
        die(r == 0 ? "connection closed" : "read");
    len += (size_t)r;
    buf[len] = 0;
}

/* The length of one complete HTTP answer at buf[0..len), or 0. */
static size_t http_complete(void)
{
    char *e = memmem(buf, len, "\r\n\r\n", 4);
    if (!e)
        return 0;
    size_t hdr = (size_t)(e + 4 - buf);
    if (atoi(buf + 9) >= 300) {
        fprintf(stderr, "reqlat: %.*s\n", (int)(len < 400 ? len : 400), buf);
        errno = 0;
        die("HTTP error");
    }
    char *cl = strcasestr(buf, "\r\ncontent-length:");
    if (cl && cl < e) {
        size_t want = hdr + (size_t)atol(cl + 17);
        return len >= want ? want : 0;
    }
    /* chunked: the answer ends with the zero-length chunk */
    char *z = len >= hdr + 5 ? memmem(buf + hdr, len - hdr, "\r\n0\r\n\r\n", 7) : NULL;
    if (z)
        return (size_t)(z + 7 - buf);
    return len >= hdr + 5 && memcmp(buf + hdr, "0\r\n\r\n", 5) == 0 ? hdr + 5 : 0;
}

static long resp_end(long pos)
{
    const char *nl = pos < (long)len ? memchr(buf + pos, '\n', len - (size_t)pos) : NULL;
    if (!nl)
        return -1;
    long after = nl - buf + 1, v = atol(buf + pos + 1);
    switch (buf[pos]) {
    case '-':
        errno = 0;
        die(buf + pos);
        return -1;
    case '+': case ':':
        return after;
    case '$':
        return v < 0 ? after : (after + v + 2 <= (long)len ? after + v + 2 : -1);
    case '*':
        for (long i = 0; i < v && after >= 0; i++)
            after = resp_end(after);
        return after;
    default:
        errno = 0;
        die("unexpected RESP");
        return -1;
    }
}

static size_t resp_complete(void)
{
    long e = len ? resp_end(0) : -1;
    return e > 0 ? (size_t)e : 0;
}

/* "XREVRANGE s + - COUNT 50" -> RESP array of bulk strings (split on spaces). */
static size_t resp_encode(const char *cmd, char *out, size_t outcap)
{
    char words[64][256];
    int n = 0;
    for (const char *p = cmd; *p && n < 64;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t w = strcspn(p, " ");
        snprintf(words[n++], sizeof words[0], "%.*s", (int)w, p);
        p += w;
    }
    size_t o = (size_t)snprintf(out, outcap, "*%d\r\n", n);
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, outcap - o, "$%zu\r\n%s\r\n", strlen(words[i]), words[i]);
    return o;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *http = NULL, *resp = NULL, *path = NULL, *cmd = NULL;
    long n = 2000, warm = 100;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            puts("usage: reqlat (--http HOST:PORT --path PATH | --resp HOST:PORT --cmd CMD)"
                 " [--requests N] [--warmup W]");
            return 0;
        }
        if (!strcmp(a, "--http")) http = v;
        else if (!strcmp(a, "--resp")) resp = v;
        else if (!strcmp(a, "--path")) path = v;
        else if (!strcmp(a, "--cmd")) cmd = v;
        else if (!strcmp(a, "--requests")) n = atol(v);
        else if (!strcmp(a, "--warmup")) warm = atol(v);
        else { fprintf(stderr, "reqlat: unknown option %s\n", a); return 2; }
        i++;
    }
    if (!((http && path) || (resp && cmd)) || n <= 0) {
        fputs("usage: reqlat (--http HOST:PORT --path PATH | --resp HOST:PORT --cmd CMD)"
              " [--requests N] [--warmup W]\n", stderr);
        return 2;
    }
    char req[8192];
    size_t rl = http ? (size_t)snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, http)
                     : resp_encode(cmd, req, sizeof req);
    int fd = dial(http ? http : resp);
    double *lat = malloc((size_t)n * sizeof *lat), bytes = 0;
    if (!lat)
        die("malloc");
    for (long i = -warm; i < n; i++) {
        double t0 = mono_us();
        if (write(fd, req, rl) != (ssize_t)rl)
            die("write");
        size_t got;
        len = 0;
        while (!(got = http ? (len ? http_complete() : 0) : resp_complete()))
            fill(fd);
        if (i >= 0) {
            lat[i] = mono_us() - t0;
            bytes += (double)got;
        }
        if (got != len) {
            errno = 0;
            die("more bytes than one answer");
        }
    }
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += lat[i];
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    printf("requests %ld p50_us %.1f p99_us %.1f mean_us %.1f bytes_per_answer %.0f\n", n, lat[n / 2],
           lat[(long)(n * 0.99)], sum / n, bytes / n);
    close(fd);
    return 0;
}
