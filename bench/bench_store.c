/* bench_store.c -- store benchmark: fsync rate, durable appends, group commit, reads.
 *
 * Prints numbers, never pass/fail. Every workload runs in one process on one temporary
 * data directory (created under --dir, on the disk being measured, and removed at the
 * end) with the default durable sync, so the ratios it prints compare like with like.
 * What each number means and what bounds it: docs/BENCHMARKS.md.
 *
 *   a. fdatasync rate of this disk (4 KiB write + fdatasync in a loop), and its
 *      sequential write bandwidth
 *   b. single submitter, batches of 1/10/100/1000 events of ~1 KiB JSON: through ingest
 *      (parse + encode + append timed) and store-only (batches prepared, append timed),
 *      alternating in rounds; plus two submitters of 1000-event batches
 *   c. 1/8/64 threads, one event per append: group commit (events per commit)
 *   d. scan of a large session: raw views and rendered JSON
 *   e. newest-50 read latency on a 1M-event session vs a 1k-event session
 *   f. poll: 100 events after a random offset of the large session, rendered
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "ingest/ingest.h"
#include "replay/replay.h"
#include "store/store.h"

/* ---- Settings ---- */

typedef struct bench_cfg {
    int quick;
    int keep;
    const char *parent;     /* directory the temporary data dir is created in */
    double fsync_secs;      /* duration of the fdatasync loop */
    size_t batch_events[4]; /* events per run for batch sizes 1, 10, 100, 1000 */
    double thread_secs;     /* duration of each concurrent-submitter run */
    size_t big_events;      /* events in the "large" session (d, e) */
    size_t small_events;    /* events in the small session (e) */
    size_t newest_reads;    /* newest-50 reads per session (e) */
} bench_cfg_t;

static const size_t batch_sizes[4] = {1, 10, 100, 1000};
static const int thread_counts[3] = {1, 8, 64};

#define TARGET_EVENTS_PER_SEC 150000.0
#define NEWEST_N 50
#define POOL_EVENTS 4096 /* distinct prebuilt event texts, cycled */

/* ---- Small helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "bench_store: %s: %s", what, err ? reel_strerror(err) : strerror(errno));
    if (err)
        fprintf(stderr, " (%s)", store_last_error());
    fputc('\n', stderr);
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_store: out of memory\n");
        exit(1);
    }
    return p;
}

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: deterministic, good enough to vary text. */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Value at quantile 'q' of sorted 'v[n]'. */
static uint64_t quantile(const uint64_t *v, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* "1234567" -> "1,234,567" into 'out'. */
static const char *fmt_int(char *out, size_t cap, double v)
{
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%.0f", v);
    size_t len = strlen(tmp), o = 0, lead = (tmp[0] == '-');
    for (size_t i = 0; i < len && o + 2 < cap; i++) {
        if (i > lead && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = tmp[i];
    }
    out[o] = 0;
    return out;
}

/* Copies 's' into 'out[cap]', truncating. */
static void copy_str(char *out, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

/* "dir/name" into 'out[cap]'; dies when it does not fit. */
static void join_path(char *out, size_t cap, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    if (a + 1 + b >= cap) {
        fprintf(stderr, "bench_store: path too long: %s/%s\n", dir, name);
        exit(1);
    }
    memcpy(out, dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b + 1);
}

/* Bytes this process has passed to write(2)-family calls so far (/proc/self/io "wchar"):
 * LMDB writes its dirty pages with pwrite/writev, so a delta is the bytes a commit wrote. */
static uint64_t proc_wchar(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "wchar: %llu", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* ---- Machine facts ---- */

static void cpu_model(char *out, size_t cap)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(out, cap, "unknown");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + (c[1] == ' ');
                c[strcspn(c, "\n")] = 0;
                copy_str(out, cap, c);
            }
            break;
        }
    }
    fclose(f);
}

/* Filesystem type and device of the mount holding 'path' (longest mount-point prefix). */
static void fs_of(const char *path, char *fstype, size_t tcap, char *dev, size_t dcap)
{
    char real[4096], line[4096];
    size_t best = 0;
    snprintf(fstype, tcap, "unknown");
    snprintf(dev, dcap, "unknown");
    if (!realpath(path, real))
        return;
    FILE *f = fopen("/proc/self/mounts", "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        char d[1024], mnt[2048], type[128];
        if (sscanf(line, "%1023s %2047s %127s", d, mnt, type) != 3)
            continue;
        size_t ml = strlen(mnt);
        int match = !strcmp(mnt, "/") ||
                    (!strncmp(real, mnt, ml) && (real[ml] == '/' || real[ml] == 0));
        if (match && ml >= best) {
            best = ml;
            copy_str(fstype, tcap, type);
            copy_str(dev, dcap, d);
        }
    }
    fclose(f);
}

/* The 1/5/15-minute load averages: a busy machine explains odd numbers. */
static void print_loadavg(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double a = 0, b = 0, c = 0;
    if (f && fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        printf("| load average at start | %.2f %.2f %.2f |\n", a, b, c);
    if (f)
        fclose(f);
}

static void print_machine(const char *dir, int no_sync)
{
    struct utsname u;
    char cpu[256], fstype[128], dev[256];
    cpu_model(cpu, sizeof cpu);
    fs_of(dir, fstype, sizeof fstype, dev, sizeof dev);
    uname(&u);
    printf("## Machine\n\n");
    printf("| fact | value |\n| --- | --- |\n");
    printf("| nproc | %ld |\n", sysconf(_SC_NPROCESSORS_ONLN));
    printf("| CPU | %s |\n", cpu);
    printf("| memory | %.1f GiB |\n",
           (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) / (1 << 30));
    printf("| kernel | %s %s |\n", u.sysname, u.release);
    printf("| bench dir | %s |\n", dir);
    printf("| filesystem | %s on %s |\n", fstype, dev);
    printf("| LMDB | %s |\n", mdb_version(NULL, NULL, NULL));
    print_loadavg();
    printf("| sync | %s |\n\n", no_sync ? "none (--no-sync: commits skip fsync)"
                                       : "full (default: fdatasync + synchronous meta page "
                                         "write per commit)");
    fflush(stdout);
}

/* ---- Temporary data directory ---- */

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        join_path(path, sizeof path, dir, e->d_name);
        struct stat st;
        if (!lstat(path, &st) && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static off_t file_size(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    join_path(path, sizeof path, dir, name);
    return stat(path, &st) ? 0 : st.st_size;
}

/* ---- a. fdatasync rate ---- */

typedef struct fsync_result {
    double per_sec;
    double us_each;
    long n;
} fsync_result_t;

/* 4 KiB written then fdatasync'd, for 'secs'. 'grow' = 1 appends each block (the file's
 * size changes, as when LMDB writes new pages past the end), 0 overwrites block 0. */
static fsync_result_t bench_fsync(const char *dir, double secs, int grow)
{
    char path[4096], block[4096];
    fsync_result_t r = {0, 0, 0};
    join_path(path, sizeof path, dir, "fsync-test");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        die("open fsync-test", 0);
    memset(block, 'x', sizeof block);
    double t0 = now_s(), t;
    do {
        off_t off = grow ? (off_t)r.n * (off_t)sizeof block : 0;
        block[0] = (char)r.n;
        if (pwrite(fd, block, sizeof block, off) != (ssize_t)sizeof block || fdatasync(fd))
            die("write+fdatasync", 0);
        r.n++;
        t = now_s();
    } while (t - t0 < secs);
    close(fd);
    unlink(path);
    r.per_sec = (double)r.n / (t - t0);
    r.us_each = (t - t0) * 1e6 / (double)r.n;
    return r;
}

/* Sequential write of 'mib' MiB in 1 MiB writes, then one fdatasync: MB/s. */
static double bench_seqwrite(const char *dir, size_t mib)
{
    char path[4096];
    size_t chunk = 1u << 20;
    char *block = xmalloc(chunk);
    join_path(path, sizeof path, dir, "seq-test");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        die("open seq-test", 0);
    memset(block, 'y', chunk);
    double t0 = now_s();
    for (size_t i = 0; i < mib; i++)
        if (write(fd, block, chunk) != (ssize_t)chunk)
            die("write seq-test", 0);
    if (fdatasync(fd))
        die("fdatasync seq-test", 0);
    double el = now_s() - t0;
    close(fd);
    unlink(path);
    free(block);
    return (double)mib * (double)chunk / el / 1e6;
}

/* ---- Event texts ---- */

/* A pool of distinct ~1 KiB NDJSON lines shaped like an agent's item.delta, each with a
 * ~900-byte text of words drawn at random so that zstd compresses it as it would prose
 * and code, not a repeated string. */
typedef struct pool {
    char **line; /* each ends with '\n' */
    size_t *len;
    size_t n;
    size_t json_bytes; /* total, for the average */
} pool_t;

static const char *const words[] = {
    "the", "function", "returns", "a", "pointer", "to", "buffer", "and", "we", "need",
    "check", "error", "before", "calling", "store_append", "with", "batch", "of", "events",
    "session", "sequence", "commit", "fsync", "LMDB", "transaction", "I'll", "update",
    "test", "file", "src/main.c", "line", "42", "because", "it", "fails", "when", "input",
    "is", "empty", "let", "me", "read", "header", "first", "then", "write", "patch",
    "struct", "field", "length", "offset", "const", "char", "*p", "=", "NULL;", "return",
    "0;", "if", "(err)", "{", "}", "goto", "fail;", "size_t", "n", "uint64_t", "position",
    "Looking", "at", "this", "code,", "there", "are", "two", "issues:", "missing", "bounds",
    "on", "loop", "index", "leak", "in", "path.", "Running", "make", "now.", "All", "tests",
    "pass.", "Next,", "refactor", "parser", "so", "handles", "escapes", "like", "\\n",
    "\\t", "\\\"quoted\\\"", "unicode", "é", "→", "✓", "done.", "todo:", "cleanup",
    "git", "diff", "--stat", "shows", "3", "files", "changed,", "120", "insertions(+),",
    "17", "deletions(-)", "HTTP", "GET", "/v1/sessions", "200", "OK", "JSON", "object",
    "array", "key", "value", "order", "preserved", "exactly", "round-trip", "integer",
    "0.125", "1e-3", "timestamp", "2026-11-22T13:00:00.123Z", "agent", "claude", "codex",
    "tool", "call", "result", "bash", "ls", "-la", "grep", "-rn", "todo", "stdout",
    "stderr", "exit", "status", "permission", "granted", "question", "answered", "user",
    "prompt", "assistant", "reasoning", "about", "next", "step", "should", "could", "would",
};

static void pool_init(pool_t *p, size_t n, uint64_t seed)
{
    size_t nw = sizeof words / sizeof words[0];
    char text[1200], line[1600];
    p->line = xmalloc(n * sizeof *p->line);
    p->len = xmalloc(n * sizeof *p->len);
    p->n = n;
    p->json_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        size_t t = 0;
        while (t < 890) {
            const char *w = words[rng_next(&seed) % nw];
            size_t wl = strlen(w);
            if (t + wl + 1 >= sizeof text - 1)
                break;
            memcpy(text + t, w, wl);
            t += wl;
            text[t++] = ' ';
        }
        text[t] = 0;
        int len = snprintf(line, sizeof line,
                           "{\"type\":\"item.delta\",\"source\":\"agent\",\"synthetic\":false,"
                           "\"native_session_id\":\"thread_bench\",\"data\":{\"item_id\":"
                           "\"itm_%06zu\",\"delta\":\"%s\"}}\n",
                           i, text);
        p->line[i] = xmalloc((size_t)len + 1);
        memcpy(p->line[i], line, (size_t)len + 1);
        p->len[i] = (size_t)len;
        p->json_bytes += (size_t)len - 1;
    }
}

static void pool_free(pool_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->line[i]);
    free(p->line);
    free(p->len);
}

/* NDJSON of 'k' pool lines starting at pool index 'start' into 'out' (cleared first). */
static void pool_ndjson(const pool_t *p, size_t start, size_t k, store_buf_t *out)
{
    store_buf_clear(out);
    for (size_t i = 0; i < k; i++) {
        size_t j = (start + i) % p->n;
        store_buf_put(out, p->line[j], p->len[j]);
    }
    if (store_buf_failed(out))
        die("ndjson buffer", REEL_ENOMEM);
}

/* Parses 'k' events into a fresh ingest batch for 'session'. */
static void parse_batch(ingest_batch_t *ib, const char *session, const pool_t *p, size_t start,
                        size_t k, store_buf_t *text)
{
    static const ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    ingest_error_t e;
    int rc;
    pool_ndjson(p, start, k, text);
    if ((rc = ingest_batch_init(ib, session, strlen(session))))
        die("ingest_batch_init", rc);
    if ((rc = ingest_parse(ib, (const char *)text->data, text->len, INGEST_NDJSON, &lim, &e))) {
        fprintf(stderr, "bench_store: ingest_parse: event %zu line %zu: %s\n", e.index, e.line,
                e.text);
        die("ingest_parse", rc);
    }
}

/* ---- b. single submitter, batched ---- */

typedef struct batch_result {
    size_t batch;
    size_t events;
    double ingest_eps;   /* parse + encode + append, timed together */
    double store_eps;    /* append only, batches prepared up front */
    double per_commit;   /* events per commit in the store-only run */
    double commit_us;    /* mean time in a commit (write + fsync), store-only run */
    double stored_bytes; /* mean stored value bytes per event */
    double written_kib;  /* KiB written to data.mdb per event, store-only run */
} batch_result_t;

/* Appends 'n' events in batches of 'k' to 'session', parsing each batch in the timed loop.
 * Returns the elapsed seconds. */
static double append_ingest(store_t *s, const char *session, const pool_t *p, size_t n,
                            size_t k, size_t pool_start)
{
    store_buf_t text = STORE_BUF_INIT;
    double t0 = now_s();
    for (size_t done = 0; done < n; done += k) {
        ingest_batch_t ib;
        size_t m = n - done < k ? n - done : k;
        parse_batch(&ib, session, p, pool_start + done, m, &text);
        int rc = ingest_append(s, &ib);
        if (rc)
            die("ingest_append", rc);
        ingest_batch_release(&ib);
    }
    double el = now_s() - t0;
    store_buf_release(&text);
    return el;
}

#define BATCH_ROUNDS 4

/* Store-only part of one round: 'n' events in batches of 'k', all parsed and encoded
 * before the clock starts. Adds the elapsed seconds to '*secs' and the bytes written to
 * '*written'. */
static void store_only_round(store_t *s, const char *sess, const pool_t *p, size_t n,
                             size_t k, size_t pool_start, double *secs, uint64_t *written)
{
    size_t nb = (n + k - 1) / k;
    ingest_batch_t *ib = xmalloc(nb * sizeof *ib);
    store_buf_t text = STORE_BUF_INIT;
    for (size_t i = 0; i < nb; i++) {
        size_t m = n - i * k < k ? n - i * k : k;
        parse_batch(&ib[i], sess, p, pool_start + i * k, m, &text);
    }
    store_buf_release(&text);
    uint64_t w0 = proc_wchar();
    double t0 = now_s();
    for (size_t i = 0; i < nb; i++) {
        int rc = ingest_append(s, &ib[i]);
        if (rc)
            die("ingest_append (store-only)", rc);
    }
    *secs += now_s() - t0;
    *written += proc_wchar() - w0;
    for (size_t i = 0; i < nb; i++)
        ingest_batch_release(&ib[i]);
    free(ib);
}

/* Batches of 'k', 'n' events per mode. The two modes alternate in BATCH_ROUNDS rounds so
 * that both see the same state of the disk (a virtual disk's write bandwidth drops after
 * a burst) and the same size of the store. */
static batch_result_t bench_batch(store_t *s, const pool_t *p, size_t k, size_t n)
{
    batch_result_t r = {k, n, 0, 0, 0, 0, 0, 0};
    char isess[64], ssess[64];
    store_stats_t a, b;
    double isecs = 0, ssecs = 0;
    uint64_t written = 0, commits = 0, events = 0, commit_ns = 0;
    size_t per = (n / BATCH_ROUNDS + k - 1) / k * k; /* whole batches per round */

    snprintf(isess, sizeof isess, "bench-batch%zu-ingest", k);
    snprintf(ssess, sizeof ssess, "bench-batch%zu-store", k);
    r.events = 0;
    for (size_t done = 0; done < n; done += per) {
        size_t m = n - done < per ? n - done : per;
        isecs += append_ingest(s, isess, p, m, k, done);
        store_get_stats(s, &a);
        store_only_round(s, ssess, p, m, k, done + 7, &ssecs, &written);
        store_get_stats(s, &b);
        commits += b.commits - a.commits;
        events += b.events - a.events;
        commit_ns += b.commit_ns - a.commit_ns;
        r.events += m;
    }
    r.ingest_eps = (double)r.events / isecs;
    r.store_eps = (double)r.events / ssecs;
    r.written_kib = (double)written / 1024.0 / (double)r.events;
    r.per_commit = commits ? (double)events / (double)commits : 0;
    r.commit_us = commits ? (double)commit_ns / (double)commits / 1e3 : 0;

    store_read_t rd;
    store_session_t rec;
    int rc = store_read_begin(s, &rd);
    if (rc)
        die("store_read_begin", rc);
    if ((rc = store_session_get(&rd, ssess, strlen(ssess), &rec)))
        die("store_session_get", rc);
    r.stored_bytes = rec.event_count ? (double)rec.bytes / (double)rec.event_count : 0;
    store_read_end(&rd);
    return r;
}

/* ---- c. concurrent submitters ---- */

typedef struct submitter {
    pthread_t th;
    store_t *s;
    const pool_t *p;
    int id;
    int nthreads;
    size_t batch; /* events per append */
    pthread_barrier_t *start;
    atomic_int *stop;
    uint64_t events;
    uint64_t appends;
    uint64_t lat_sum_ns;
    int err;
} submitter_t;

/* Appends batches of t->batch events through ingest (parse in this thread, as an HTTP
 * handler would) to its own session until told to stop. */
static void *submitter_run(void *arg)
{
    submitter_t *t = arg;
    static const ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    store_buf_t text = STORE_BUF_INIT;
    char sess[64];
    size_t i = (size_t)t->id * 131;
    snprintf(sess, sizeof sess, "bench-conc%d-b%zu-t%d", t->nthreads, t->batch, t->id);
    pthread_barrier_wait(t->start);
    while (!atomic_load_explicit(t->stop, memory_order_relaxed)) {
        ingest_batch_t ib;
        ingest_error_t e;
        uint64_t t0 = now_ns();
        pool_ndjson(t->p, i, t->batch, &text);
        i += t->batch;
        if ((t->err = ingest_batch_init(&ib, sess, strlen(sess))))
            break;
        t->err = ingest_parse(&ib, (const char *)text.data, text.len, INGEST_NDJSON, &lim, &e);
        if (!t->err)
            t->err = ingest_append(t->s, &ib);
        ingest_batch_release(&ib);
        if (t->err)
            break;
        t->lat_sum_ns += now_ns() - t0;
        t->events += t->batch;
        t->appends++;
    }
    store_buf_release(&text);
    return NULL;
}

typedef struct conc_result {
    int threads;
    size_t batch;
    double eps;
    double per_commit;
    double commits_per_sec;
    double mean_latency_us; /* per append, as seen by a submitter */
    double commit_us;
    double written_kib; /* KiB written to data.mdb per event */
} conc_result_t;

static conc_result_t bench_concurrent(store_t *s, const pool_t *p, int n, size_t batch,
                                      double secs)
{
    conc_result_t r = {n, batch, 0, 0, 0, 0, 0, 0};
    submitter_t *t = xmalloc((size_t)n * sizeof *t);
    pthread_barrier_t start;
    atomic_int stop = 0;
    store_stats_t a, b;

    pthread_barrier_init(&start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        t[i] = (submitter_t){.s = s, .p = p, .id = i, .nthreads = n, .batch = batch,
                             .start = &start, .stop = &stop};
        if (pthread_create(&t[i].th, NULL, submitter_run, &t[i]))
            die("pthread_create", 0);
    }
    pthread_barrier_wait(&start);
    store_get_stats(s, &a);
    uint64_t w0 = proc_wchar();
    double t0 = now_s();
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    uint64_t events = 0, appends = 0, lat = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i].th, NULL);
        if (t[i].err)
            die("concurrent append", t[i].err);
        events += t[i].events;
        appends += t[i].appends;
        lat += t[i].lat_sum_ns;
    }
    double el = now_s() - t0;
    uint64_t written = proc_wchar() - w0;
    store_get_stats(s, &b);
    pthread_barrier_destroy(&start);
    free(t);

    uint64_t commits = b.commits - a.commits;
    r.eps = (double)events / el;
    r.per_commit = commits ? (double)(b.events - a.events) / (double)commits : 0;
    r.commits_per_sec = (double)commits / el;
    r.mean_latency_us = appends ? (double)lat / (double)appends / 1e3 : 0;
    r.commit_us = commits ? (double)(b.commit_ns - a.commit_ns) / (double)commits / 1e3 : 0;
    r.written_kib = events ? (double)written / 1024.0 / (double)events : 0;
    return r;
}

/* ---- d. scans ---- */

typedef struct scan_ctx {
    store_buf_t out;
    int render;
    uint64_t events;
    uint64_t bytes; /* msgpack body bytes (raw) or JSON bytes (rendered) */
    uint64_t last_seq;
} scan_ctx_t;

static int scan_cb(void *arg, const store_event_view_t *ev)
{
    scan_ctx_t *c = arg;
    c->events++;
    c->last_seq = ev->sequence;
    if (!c->render) {
        c->bytes += ev->body_len;
        return 0;
    }
    int rc = replay_write_event(&c->out, ev, 0);
    store_buf_putc(&c->out, '\n');
    return rc ? rc : store_buf_failed(&c->out) ? REEL_ENOMEM : 0;
}

typedef struct scan_result {
    double eps;
    double mb_per_sec;
    uint64_t events;
} scan_result_t;

/* Reads session 'sess' from the start in pages of 'page' events, one short read
 * transaction per page (as the HTTP API pages). */
static scan_result_t bench_scan(store_t *s, const char *sess, int render, size_t page)
{
    scan_ctx_t c = {STORE_BUF_INIT, render, 0, 0, 0};
    scan_result_t r = {0, 0, 0};
    int more = 1;
    double t0 = now_s();
    while (more) {
        store_read_t rd;
        int rc = store_read_begin(s, &rd);
        if (rc)
            die("store_read_begin", rc);
        rc = store_events_after(&rd, sess, strlen(sess), c.last_seq, page, scan_cb, &c, &more);
        store_read_end(&rd);
        if (rc)
            die("store_events_after", rc);
        if (render) {
            c.bytes += c.out.len;
            store_buf_clear(&c.out);
        }
    }
    double el = now_s() - t0;
    store_buf_release(&c.out);
    r.events = c.events;
    r.eps = (double)c.events / el;
    r.mb_per_sec = (double)c.bytes / el / 1e6;
    return r;
}

/* ---- e. newest-50 latency ---- */

typedef struct newest_result {
    double p50_us, p99_us, mean_us;
} newest_result_t;

/* 'reads' reads of NEWEST_N newest events of 'sess' or, with 'poll_of' > 0, of 100 events
 * after a random offset below 'poll_of' - 100. */
static newest_result_t bench_newest(store_t *s, const char *sess, size_t reads, size_t poll_of)
{
    newest_result_t r;
    uint64_t *lat = xmalloc(reads * sizeof *lat);
    uint64_t sum = 0;
    scan_ctx_t c = {STORE_BUF_INIT, 1, 0, 0, 0};
    for (size_t i = 0; i < reads; i++) {
        store_read_t rd;
        store_buf_clear(&c.out);
        uint64_t t0 = now_ns();
        int rc = store_read_begin(s, &rd);
        if (rc)
            die("store_read_begin", rc);
        if (poll_of)
            rc = store_events_after(&rd, sess, strlen(sess),
                                    (uint64_t)rand() % (poll_of - 100), 100, scan_cb, &c, NULL);
        else
            rc = store_events_newest(&rd, sess, strlen(sess), NEWEST_N, scan_cb, &c);
        store_read_end(&rd);
        lat[i] = now_ns() - t0;
        if (rc)
            die("store_events_newest", rc);
        sum += lat[i];
    }
    if (c.events != (uint64_t)reads * (poll_of ? 100 : NEWEST_N))
        fprintf(stderr, "bench_store: warning: newest-50 gave %llu events over %zu reads\n",
                (unsigned long long)c.events, reads);
    store_buf_release(&c.out);
    qsort(lat, reads, sizeof *lat, cmp_u64);
    r.p50_us = (double)quantile(lat, reads, 0.50) / 1e3;
    r.p99_us = (double)quantile(lat, reads, 0.99) / 1e3;
    r.mean_us = (double)sum / (double)reads / 1e3;
    free(lat);
    return r;
}

/* ---- Main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_store [--quick] [--dir PARENT] [--only LETTERS] [--no-sync] [--keep]\n"
            "\n"
            "Measures reel's store on this machine and prints the numbers as Markdown tables\n"
            "(never pass/fail). Workloads:\n"
            "  a  fdatasync rate of the disk (4 KiB write + fdatasync)\n"
            "  b  durable appends of ~1 KiB item.delta events, one submitter, 1/10/100/1000\n"
            "     events per append, through ingest and store-only\n"
            "  c  1, 8 and 64 concurrent one-event submitters (group commit)\n"
            "  d  scan of a large session, raw and rendered as JSON\n"
            "  e  newest-50 read latency, 1M-event vs 1k-event session\n"
            "  f  poll: 100 events after a random offset of the large session\n"
            "\n"
            "    --quick         small run (about 15 s; 100k-event large session)\n"
            "    --dir PARENT    create the temporary data directory under PARENT (default:\n"
            "                    the current directory). Use the disk you want to measure,\n"
            "                    not a tmpfs.\n"
            "    --only LETTERS  run only these workloads, e.g. --only bc\n"
            "    --no-sync       open the store with --sync=none (not durable; shows the\n"
            "                    CPU ceiling without fsync)\n"
            "    --keep          keep the data directory afterwards\n"
            "    -h, --help      this text\n");
}

static void config(bench_cfg_t *c, int quick)
{
    c->quick = quick;
    c->fsync_secs = quick ? 0.5 : 2.0;
    c->batch_events[0] = quick ? 500 : 3000;
    c->batch_events[1] = quick ? 5000 : 20000;
    c->batch_events[2] = quick ? 20000 : 100000;
    c->batch_events[3] = quick ? 50000 : 300000;
    c->thread_secs = quick ? 0.5 : 2.0;
    c->big_events = quick ? 100000 : 1000000;
    c->small_events = 1000;
    c->newest_reads = quick ? 2000 : 10000;
}

/* Everything measured, for the ratios at the end; 'have_x' says whether it ran. */
typedef struct results {
    int have_a, have_b, have_c, have_d, have_e;
    fsync_result_t fa, fg;
    double seq_mbs;
    batch_result_t br[4];
    conc_result_t cr[3], pipe;
    scan_result_t raw, ren;
    newest_result_t nbig, nsmall;
} results_t;

static void run_fsync(const bench_cfg_t *cfg, const char *dir, results_t *r)
{
    char n1[32];
    r->fa = bench_fsync(dir, cfg->fsync_secs, 0);
    r->fg = bench_fsync(dir, cfg->fsync_secs, 1);
    size_t mib = cfg->quick ? 64 : 512;
    r->seq_mbs = bench_seqwrite(dir, mib);
    r->have_a = 1;
    printf("## a. Disk flush rate (4 KiB pwrite + fdatasync, %.1f s each)\n\n", cfg->fsync_secs);
    printf("| variant | fsyncs/s | µs each |\n| --- | ---: | ---: |\n");
    printf("| overwrite block 0 | %s | %.0f |\n", fmt_int(n1, sizeof n1, r->fa.per_sec),
           r->fa.us_each);
    printf("| append (file grows) | %s | %.0f |\n\n", fmt_int(n1, sizeof n1, r->fg.per_sec),
           r->fg.us_each);
    printf("Sequential write of %zu MiB in 1 MiB writes + one fdatasync: %.0f MB/s.\n\n", mib,
           r->seq_mbs);
    fflush(stdout);
}

static void run_batches(const bench_cfg_t *cfg, store_t *s, const pool_t *p, results_t *r)
{
    char n1[32], n2[32], n3[32];
    printf("## b. Durable append, one submitter, ~%zu-byte item.delta events\n\n",
           p->json_bytes / p->n);
    printf("| events per append | events per mode | through ingest (events/s) | store only (events/s) "
           "| events per commit | mean commit (µs) | stored bytes/event | KiB written/event |\n"
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < 4; i++) {
        batch_result_t *b = &r->br[i];
        *b = bench_batch(s, p, batch_sizes[i], cfg->batch_events[i]);
        printf("| %zu | %s | %s | %s | %.1f | %.0f | %.0f | %.1f |\n", b->batch,
               fmt_int(n1, sizeof n1, (double)b->events), fmt_int(n2, sizeof n2, b->ingest_eps),
               fmt_int(n3, sizeof n3, b->store_eps), b->per_commit, b->commit_us,
               b->stored_bytes, b->written_kib);
        fflush(stdout);
    }
    /* Two submitters of 1000-event batches: one parses while the other's batch commits,
     * which is how a server with several HTTP threads feeds the committer. */
    r->pipe = bench_concurrent(s, p, 2, 1000, cfg->thread_secs);
    printf("\nTwo submitters of 1000-event batches through ingest (parsing overlaps the "
           "commit): %s events/s, %.0f events per commit, mean commit %.0f µs, %.1f KiB "
           "written per event.\n\n",
           fmt_int(n1, sizeof n1, r->pipe.eps), r->pipe.per_commit, r->pipe.commit_us,
           r->pipe.written_kib);
    r->have_b = 1;
    fflush(stdout);
}

static void run_concurrent(const bench_cfg_t *cfg, store_t *s, const pool_t *p, results_t *r)
{
    char n1[32], n2[32];
    printf("## c. Concurrent submitters, one event per append through ingest, %.1f s each "
           "(group commit)\n\n", cfg->thread_secs);
    printf("| threads | events/s | commits/s | events per commit | mean append latency (µs) "
           "| mean commit (µs) | KiB written/event |\n"
           "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < 3; i++) {
        conc_result_t *c = &r->cr[i];
        *c = bench_concurrent(s, p, thread_counts[i], 1, cfg->thread_secs);
        printf("| %d | %s | %s | %.1f | %.0f | %.0f | %.1f |\n", c->threads,
               fmt_int(n1, sizeof n1, c->eps), fmt_int(n2, sizeof n2, c->commits_per_sec),
               c->per_commit, c->mean_latency_us, c->commit_us, c->written_kib);
        fflush(stdout);
    }
    r->have_c = 1;
    printf("\n");
}

static void run_reads(const bench_cfg_t *cfg, store_t *s, const pool_t *p, const char *want,
                      results_t *r)
{
    char n1[32], n2[32], big[64];
    const char *small = "bench-small-1000";
    snprintf(big, sizeof big, "bench-big-%zu", cfg->big_events);
    double el = append_ingest(s, big, p, cfg->big_events, 1000, 11);
    append_ingest(s, small, p, cfg->small_events, 1000, 13);
    printf("Built the large session: %s events in batches of 1000 at %s events/s "
           "(through ingest).\n\n", fmt_int(n1, sizeof n1, (double)cfg->big_events),
           fmt_int(n2, sizeof n2, (double)cfg->big_events / el));
    fflush(stdout);

    if (strchr(want, 'd')) {
        r->raw = bench_scan(s, big, 0, 1000);
        r->ren = bench_scan(s, big, 1, 1000);
        r->have_d = 1;
        printf("## d. Scan of the %s-event session (store_events_after, pages of 1000, one "
               "read transaction per page)\n\n", fmt_int(n1, sizeof n1, (double)cfg->big_events));
        printf("| mode | events/s | MB/s |\n| --- | ---: | ---: |\n");
        printf("| raw views (decompressed msgpack bodies) | %s | %.0f |\n",
               fmt_int(n1, sizeof n1, r->raw.eps), r->raw.mb_per_sec);
        printf("| rendered (replay_write_event JSON) | %s | %.0f |\n\n",
               fmt_int(n1, sizeof n1, r->ren.eps), r->ren.mb_per_sec);
        fflush(stdout);
    }
    if (strchr(want, 'e')) {
        r->nbig = bench_newest(s, big, cfg->newest_reads, 0);
        r->nsmall = bench_newest(s, small, cfg->newest_reads, 0);
        r->have_e = 1;
        printf("## e. Newest %d events, rendered (read txn + store_events_newest + "
               "replay_write_event), %zu reads each\n\n", NEWEST_N, cfg->newest_reads);
        printf("| session | p50 (µs) | p99 (µs) | mean (µs) |\n| --- | ---: | ---: | ---: |\n");
        printf("| %s events | %.1f | %.1f | %.1f |\n",
               fmt_int(n1, sizeof n1, (double)cfg->big_events), r->nbig.p50_us, r->nbig.p99_us,
               r->nbig.mean_us);
        printf("| 1,000 events | %.1f | %.1f | %.1f |\n\n", r->nsmall.p50_us, r->nsmall.p99_us,
               r->nsmall.mean_us);
        fflush(stdout);
    }
    if (strchr(want, 'f')) {
        newest_result_t pb = bench_newest(s, big, cfg->newest_reads, cfg->big_events);
        printf("## f. Poll: 100 events after a random offset of the %s-event session, rendered "
               "(read txn + store_events_after + replay_write_event), %zu reads\n\n",
               fmt_int(n1, sizeof n1, (double)cfg->big_events), cfg->newest_reads);
        printf("| p50 (µs) | p99 (µs) | mean (µs) |\n| ---: | ---: | ---: |\n");
        printf("| %.1f | %.1f | %.1f |\n\n", pb.p50_us, pb.p99_us, pb.mean_us);
        fflush(stdout);
    }
}

static void print_ratios(const bench_cfg_t *cfg, const results_t *r)
{
    char n1[32];
    const char *big = fmt_int(n1, sizeof n1, (double)cfg->big_events);
    printf("## Ratios\n\n| ratio | value |\n| --- | ---: |\n");
    if (r->have_c) {
        printf("| events per fsync (events / commits), 64 submitters | %.1f |\n",
               r->cr[2].per_commit);
        printf("| events per fsync, 8 submitters | %.1f |\n", r->cr[1].per_commit);
    }
    if (r->have_c && r->have_a)
        printf("| 64-submitter events/s / fdatasync rate | %.1f |\n",
               r->cr[2].eps / r->fa.per_sec);
    if (r->have_b && r->have_a)
        printf("| 1-event appends/s (store only) / fdatasync rate | %.2f |\n",
               r->br[0].store_eps / r->fa.per_sec);
    if (r->have_e) {
        printf("| newest-50 p50, %s / 1k events | %.2f |\n", big,
               r->nbig.p50_us / r->nsmall.p50_us);
        printf("| newest-50 p99, %s / 1k events | %.2f |\n", big,
               r->nbig.p99_us / r->nsmall.p99_us);
    }
    if (r->have_b) {
        printf("| batch 1000 through ingest / 150,000 events/s target | %.2f |\n",
               r->br[3].ingest_eps / TARGET_EVENTS_PER_SEC);
        printf("| batch 1000 store only / 150,000 events/s target | %.2f |\n",
               r->br[3].store_eps / TARGET_EVENTS_PER_SEC);
        printf("| batch 1000, 2 submitters through ingest / 150,000 target | %.2f |\n",
               r->pipe.eps / TARGET_EVENTS_PER_SEC);
    }
    if (r->have_d)
        printf("| rendered scan / raw scan | %.2f |\n", r->ren.eps / r->raw.eps);
    printf("\n");
}

int main(int argc, char **argv)
{
    bench_cfg_t cfg;
    int quick = 0, keep = 0, no_sync = 0;
    const char *parent = ".", *want = "abcdef";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "--keep")) {
            keep = 1;
        } else if (!strcmp(argv[i], "--no-sync")) {
            no_sync = 1;
        } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            parent = argv[++i];
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc &&
                   strspn(argv[i + 1], "abcdef") == strlen(argv[i + 1])) {
            want = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_store: bad option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    config(&cfg, quick);
    cfg.keep = keep;
    cfg.parent = parent;

    char dir[4096];
    snprintf(dir, sizeof dir, "%s/bench-store.XXXXXX", cfg.parent);
    if (mkdir(cfg.parent, 0755) && errno != EEXIST)
        die("mkdir --dir", 0);
    if (!mkdtemp(dir))
        die("mkdtemp under --dir", 0);

    printf("# reel store benchmark%s%s\n\n", cfg.quick ? " (--quick)" : "",
           no_sync ? " (--no-sync: NOT durable)" : "");
    print_machine(dir, no_sync);

    results_t r;
    memset(&r, 0, sizeof r);
    if (strchr(want, 'a'))
        run_fsync(&cfg, dir, &r);

    store_t *s;
    store_options_t opt = {0};
    opt.no_sync = no_sync;
    int rc = store_open(dir, &opt, &s);
    if (rc)
        die("store_open", rc);
    pool_t pool;
    pool_init(&pool, POOL_EVENTS, 0x9E3779B97F4A7C15ull);

    if (strchr(want, 'b'))
        run_batches(&cfg, s, &pool, &r);
    if (strchr(want, 'c'))
        run_concurrent(&cfg, s, &pool, &r);
    if (strchr(want, 'd') || strchr(want, 'e') || strchr(want, 'f'))
        run_reads(&cfg, s, &pool, want, &r);
    print_ratios(&cfg, &r);

    store_stats_t st;
    store_get_stats(s, &st);
    printf("Store after the run: data.mdb %.0f MiB, %.0f MiB of pages in use, map %.0f MiB "
           "(grown %llu times); %llu events in %llu commits.\n",
           (double)file_size(dir, "data.mdb") / (1 << 20), (double)st.used_bytes / (1 << 20),
           (double)st.map_size / (1 << 20), (unsigned long long)st.map_grows,
           (unsigned long long)st.events, (unsigned long long)st.commits);

    store_close(s);
    pool_free(&pool);
    if (cfg.keep)
        printf("Kept %s\n", dir);
    else
        remove_tree(dir);
    return 0;
}
