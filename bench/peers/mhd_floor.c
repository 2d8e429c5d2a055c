/* mhd_floor.c -- the floor of durable single-event ingest with reel's server shape (issue 19).
 *
 *   build/peers/mhd_floor --port P --log FILE [--threads N] [--sync fdatasync|none]
 *                         [--zstd-dict FILE [--zstd-late MS]]
 *
 * Not a store. http_floor.c says what the machine and the client allow; this says what the
 * shape of reel's server allows, so the single-event gap can be split into "the shape"
 * and "the store's work". It is built the way api/ and store/ are: libmicrohttpd with the
 * daemon flags of api/server.c (an epoll thread pool of N workers, default 2, suspend and
 * resume, an inter-thread channel), a handler that collects the body, suspends the
 * connection and queues the body; one committer thread that takes everything queued,
 * appends it to FILE with one write() and one fdatasync(), then resumes each connection,
 * whose handler answers 200 with a fixed JSON body. Nothing else: no parsing, index,
 * hashing or LMDB. --zstd-dict FILE adds what reel's request path adds most: each body is
 * compressed on the worker with that dictionary at level 3 (a dictionary reel trained,
 * e.g. extracted with `reel admin`, or any ZDICT-made file) before it is queued. With
 * --zstd-late MS the bodies go to FILE raw and are acknowledged, and an applier thread then
 * compresses the flushed groups' bodies one after another (warm caches) and appends them
 * to FILE.z without a flush: the shape of a store that makes a group durable in a journal
 * and compresses it when it applies the group to its tables, off the acknowledgement path.
 * The applier sleeps MS milliseconds after each round, so that it takes the groups of that
 * time at once (an applier that runs every few milliseconds); 0 applies each group at once.
 * Ctrl-C or SIGTERM stops it; it prints "requests N syncs M" on exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "mhd_floor"
struct opts;
#include "benchutil.h"
#include <zstd.h>

static const char answer[] =
    "{\"session_id\":\"s\",\"first_sequence\":1,\"last_sequence\":1,\"duplicates\":0}";

struct req {
    struct MHD_Connection *conn;
    char *body;
    size_t len, cap;
    int queued, done;
    struct req *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static struct req *queue;
static int lfd, sync_on = 1;
static unsigned long long requests, syncs;
static ZSTD_CDict *cdict;
static __thread ZSTD_CCtx *cctx;
/* --zstd-late: the committer hands each flushed group to the applier, which compresses its
 * bodies in bulk after the acknowledgement and appends them to FILE.z without a flush */
struct applied {
    char *group;
    size_t *ends, n;
    struct applied *next;
};
static int late, late_ms, zfd = -1; /* late: --zstd-late given */
static pthread_cond_t apply_cv = PTHREAD_COND_INITIALIZER;
static struct applied *apply_head, **apply_tail = &apply_head;

static void put(struct req *r, const char *p, size_t n)
{
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2;
        if (!(r->body = realloc(r->body, r->cap)))
            die("realloc", NULL);
    }
    memcpy(r->body + r->len, p, n);
    r->len += n;
}

/* Compresses 'len' bytes at 'src' with the dictionary into a new buffer ('*n' bytes). */
static char *zcompress(const char *src, size_t len, size_t *n)
{
    if (!cctx && !(cctx = ZSTD_createCCtx()))
        die("ZSTD_createCCtx", NULL);
    size_t cap = ZSTD_compressBound(len);
    char *out = malloc(cap + 1);
    if (!out)
        die("malloc", NULL);
    *n = ZSTD_compress_usingCDict(cctx, out, cap, src, len, cdict);
    if (ZSTD_isError(*n))
        die("ZSTD_compress_usingCDict", ZSTD_getErrorName(*n));
    return out;
}

/* Compresses the body in place with the dictionary, as store_submit() does. */
static void compress(struct req *r)
{
    size_t n;
    char *out = zcompress(r->body, r->len, &n);
    free(r->body);
    r->body = out, r->len = n, r->cap = n;
}

/* --zstd-late: compresses every body of each handed group, one group after another. */
static void *applier(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!apply_head && !bench_stop)
            pthread_cond_wait(&apply_cv, &mu);
        struct applied *a = apply_head;
        if (!a)
            break;
        apply_head = NULL, apply_tail = &apply_head;
        pthread_mutex_unlock(&mu);
        for (struct applied *next; a; a = next) {
            next = a->next;
            for (size_t i = 0, at = 0; i < a->n; at = a->ends[i++] + 1) {
                size_t n;
                char *z = zcompress(a->group + at, a->ends[i] - at, &n);
                if (write(zfd, z, n) != (ssize_t)n)
                    die("write", NULL);
                free(z);
            }
            free(a->group), free(a->ends), free(a);
        }
        if (late_ms) /* let groups gather, as an applier running every few ms would */
            usleep((useconds_t)late_ms * 1000);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Hands the group's 'n' bodies (their ends in '*ends') to the applier, buffers and all;
 * the committer starts the next group with new ones. */
static void hand_to_applier(char **group, size_t *cap, size_t **ends, size_t *ends_cap,
                            size_t n)
{
    struct applied *a = calloc(1, sizeof *a);
    if (!a)
        die("calloc", NULL);
    a->group = *group, a->ends = *ends, a->n = n;
    *group = NULL, *cap = 0, *ends = NULL, *ends_cap = 0;
    pthread_mutex_lock(&mu);
    *apply_tail = a, apply_tail = &a->next;
    pthread_cond_signal(&apply_cv);
    pthread_mutex_unlock(&mu);
}

static void *committer(void *arg)
{
    (void)arg;
    char *group = NULL;
    size_t cap = 0, *ends = NULL, ends_cap = 0;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!queue && !bench_stop)
            pthread_cond_wait(&work, &mu);
        if (!queue)
            break;
        struct req *list = queue;
        queue = NULL;
        pthread_mutex_unlock(&mu);
        size_t len = 0, n = 0;
        for (struct req *r = list; r; r = r->next, n++) {
            if (n == ends_cap && !(ends = realloc(ends, (ends_cap = 2 * n + 64) * sizeof *ends)))
                die("realloc", NULL);
            if (len + r->len + 1 > cap && !(group = realloc(group, cap = (len + r->len + 1) * 2)))
                die("realloc", NULL);
            memcpy(group + len, r->body, r->len);
            group[len + r->len] = '\n';
            len += r->len + 1;
            ends[n] = len - 1;
        }
        if (write(lfd, group, len) != (ssize_t)len)
            die("write", NULL);
        if (sync_on && fdatasync(lfd))
            die("fdatasync", NULL);
        syncs++;
        for (struct req *r = list, *next; r; r = next) {
            next = r->next;
            r->done = 1;
            MHD_resume_connection(r->conn);
        }
        if (late)
            hand_to_applier(&group, &cap, &ends, &ends_cap, n);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    free(group);
    free(ends);
    return NULL;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **ctx)
{
    (void)cls, (void)url, (void)method, (void)version;
    struct req *r = *ctx;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        r->conn = conn;
        *ctx = r;
        return MHD_YES;
    }
    if (*size) {
        put(r, data, *size);
        *size = 0;
        return MHD_YES;
    }
    if (!r->queued) {
        if (cdict && !late)
            compress(r);
        r->queued = 1;
        MHD_suspend_connection(conn);
        pthread_mutex_lock(&mu);
        r->next = queue;
        queue = r;
        requests++;
        pthread_cond_signal(&work);
        pthread_mutex_unlock(&mu);
        return MHD_YES;
    }
    struct MHD_Response *res = MHD_create_response_from_buffer(
        sizeof answer - 1, (void *)answer, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, res);
    MHD_destroy_response(res);
    return ok;
}

static void completed(void *cls, struct MHD_Connection *conn, void **ctx,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    struct req *r = *ctx;
    if (r) {
        free(r->body);
        free(r);
    }
    *ctx = NULL;
}

static void load_dict(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path, NULL);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (!(cdict = ZSTD_createCDict(buf, n, 3)))
        die("ZSTD_createCDict", NULL);
}

int main(int argc, char **argv)
{
    int port = 0, threads = 2;
    const char *log = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--log") && i + 1 < argc)
            log = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sync") && i + 1 < argc)
            sync_on = strcmp(argv[++i], "none") != 0;
        else if (!strcmp(argv[i], "--zstd-dict") && i + 1 < argc)
            load_dict(argv[++i]);
        else if (!strcmp(argv[i], "--zstd-late") && i + 1 < argc)
            late = 1, late_ms = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: mhd_floor --port P --log FILE [--threads N] "
                            "[--sync fdatasync|none] [--zstd-dict FILE [--zstd-late MS]]  (see the "
                            "source's head)\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!port || !log || threads < 1 || (late && !cdict)) {
        fprintf(stderr, "mhd_floor: --port and --log are required, --threads at least 1, "
                        "--zstd-late only with --zstd-dict\n");
        return 2;
    }
    if ((lfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644)) < 0)
        die(log, NULL);
    char zpath[4096];
    snprintf(zpath, sizeof zpath, "%s.z", log);
    if (late && (zfd = open(zpath, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644)) < 0)
        die(zpath, NULL);
    bench_stop_on_signals();
    pthread_t t, at;
    if (pthread_create(&t, NULL, committer, NULL))
        die("pthread_create", NULL);
    if (late && pthread_create(&at, NULL, applier, NULL))
        die("pthread_create", NULL);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC,
        (uint16_t)port, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_CONNECTION_LIMIT, 4096u,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16 * 1024, MHD_OPTION_NOTIFY_COMPLETED,
        completed, NULL, MHD_OPTION_END);
    if (!d)
        die("MHD_start_daemon", NULL);
    while (!bench_stop)
        pause();
    pthread_mutex_lock(&mu);
    pthread_cond_signal(&work);
    pthread_mutex_unlock(&mu);
    pthread_join(t, NULL); /* resumes the last group's connections before the stop */
    if (late) {
        pthread_mutex_lock(&mu);
        pthread_cond_signal(&apply_cv);
        pthread_mutex_unlock(&mu);
        pthread_join(at, NULL);
    }
    MHD_stop_daemon(d);
    printf("requests %llu syncs %llu\n", requests, syncs);
    return 0;
}
