/* fuzz_http.c -- libFuzzer harness: the whole HTTP request path, in process.
 *
 * api/api.h has no entry point that takes request bytes, so the harness runs the real
 * server (api_server_start on 127.0.0.1, a free port, on a scratch store opened with
 * --sync=none semantics) inside the fuzzing process and sends each input as raw bytes on a
 * fresh loopback connection: libmicrohttpd's parser, the router, the handlers, the JSON
 * codec and the store all run under ASan/UBSan here. It then half-closes the connection
 * and reads one answer, for at most 60 ms (an incomplete request, a long-poll or an SSE
 * stream is cut there; loopback answers come in well under that).
 *
 * Checks: no sanitizer report (a crash in any server thread fails the input); whatever
 * comes back starts with "HTTP/1."; every 256 inputs GET /v1/health still answers 200 on
 * a new connection (the server is alive and not wedged). Every 20000 inputs the store is
 * thrown away and recreated so it does not grow without bound.
 *
 * Leak detection is off for this harness (tests/fuzz/http.options): the server's threads
 * keep per-connection state across inputs, which libFuzzer's per-input leak check would
 * misreport; the campaign's end-of-run LeakSanitizer check still runs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "store/store.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static store_t *st;
static api_server_t *srv;
static unsigned port;
static char dir[] = "/tmp/reel-fuzz-http-XXXXXX";
static unsigned long runs;
static int last_errno;

static void rm_store(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s/data", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_http: cannot remove %s\n", dir);
}

static void start(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/data", dir);
    store_options_t opt = {0};
    opt.no_sync = 1;
    opt.map_size = 64u << 20;
    FZ_CHECK(store_open(path, &opt, &st) == REEL_OK, "store_open %s: %s", path,
             store_last_error());
    api_config_t cfg = {0};
    api_limits_t lim = API_LIMITS_DEFAULT;
    lim.max_body_bytes = 256u << 10;
    lim.request_timeout = 2;
    cfg.listen = "127.0.0.1:0";
    cfg.limits = lim;
    cfg.threads = 1;
    char msg[256] = "";
    FZ_CHECK(api_server_start(st, &cfg, &srv, msg, sizeof msg) == REEL_OK, "start: %s", msg);
    port = api_server_port(srv);
}

static void stop(void)
{
    api_server_stop(srv);
    store_close(st);
    srv = NULL;
    st = NULL;
}

static void atexit_cleanup(void)
{
    if (srv)
        stop();
    rm_store();
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    FZ_CHECK(mkdtemp(dir), "mkdtemp");
    start();
    atexit(atexit_cleanup);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 1 when 'r' holds one complete HTTP response (headers, then a Content-Length body or a
 * chunked body up to its last chunk). libmicrohttpd keeps a half-closed connection open
 * after answering, so the harness stops reading here instead of waiting for a close. */
static int response_complete(const char *r, size_t n)
{
    const char *h = memmem(r, n, "\r\n\r\n", 4);
    if (!h)
        return 0;
    size_t hl = (size_t)(h - r) + 4;
    for (const char *p = r; p < h; p++) {
        if (*p != '\n')
            continue;
        if (!strncasecmp(p + 1, "Content-Length:", 15))
            return n - hl >= strtoull(p + 16, NULL, 10);
        if (!strncasecmp(p + 1, "Transfer-Encoding: chunked", 26))
            return n >= hl + 5 && memmem(r + hl, n - hl, "0\r\n\r\n", 5) != NULL;
    }
    return !strncmp(r, "HTTP/1.1 1", 10) || !strncmp(r, "HTTP/1.1 204", 12) ||
           !strncmp(r, "HTTP/1.1 304", 12);
}

/* Sends 'data' on a new connection, half-closes, reads up to 'cap' bytes of the answer
 * for at most 'ms'. Returns the bytes read (or -1 if the connection failed). */
static ssize_t exchange(const void *data, size_t size, char *resp, size_t cap, int ms)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = -1;
    /* A refused or failed connect is retried for up to 2 s (a burst of connections the
     * server has not closed yet); only then is it reported, with its errno. */
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        FZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
        /* Close with RST: no TIME_WAIT pile-up over millions of connections. */
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
            last_errno = errno;
            close(fd);
            fd = -1;
            usleep(20000);
        }
    }
    if (fd < 0)
        return -1;
    const char *p = data;
    size_t left = size;
    while (left) {
        ssize_t n = send(fd, p, left, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        p += n, left -= (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    size_t got = 0;
    int64_t deadline = now_ms() + ms;
    while (got < cap) {
        int64_t wait = deadline - now_ms();
        struct pollfd pf = {fd, POLLIN, 0};
        if (wait <= 0 || poll(&pf, 1, (int)wait) <= 0)
            break;
        ssize_t n = recv(fd, resp + got, cap - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (response_complete(resp, got))
            break;
    }
    close(fd);
    return (ssize_t)got;
}

static void health(void)
{
    static const char req[] = "GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char resp[512];
    ssize_t n = 0;
    for (int attempt = 0; attempt < 3 && n <= 12; attempt++)
        n = exchange(req, sizeof req - 1, resp, sizeof resp - 1, 3000);
    FZ_CHECK(n > 12 && !memcmp(resp, "HTTP/1.1 200", 12), "server no longer healthy: %s",
             n > 0 ? fz_show(resp, (size_t)n) : "(no answer)");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char resp[1 << 16];
    ssize_t n = exchange(data, size, resp, sizeof resp, 60);
    FZ_CHECK(n >= 0, "cannot connect to the server: %s", strerror(last_errno));
    if (n > 0)
        FZ_CHECK(n >= 7 && !memcmp(resp, "HTTP/1.", 7), "answer is not HTTP: %s",
                 fz_show(resp, (size_t)n));
    if (++runs % 256 == 0)
        health();
    if (runs % 20000 == 0) {
        stop();
        rm_store();
        start();
    }
    return 0;
}
