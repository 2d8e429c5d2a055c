/* bench_retention.c -- what retention costs and frees (docs/RETENTION.md, issue 21).
 *
 *   build/bench_retention [--quick] [--dir DIR]
 *
 *  1. Mixed policies: 10,000 sessions of 10 events (a quarter each: max_events=4,
 *     max_age=1s (idle: expired), ended + max_age_after_end=1s (expired), no policy),
 *     one janitor pass: its time, events trimmed, sessions expired, then `verify` of
 *     the whole store (time, ok).
 *  2. Churn: 30 rounds; each appends 40 events of ~400 B to 300 new sessions and ends
 *     the previous round's 300, then runs one janitor pass (store default
 *     max_age_after_end: ended sessions expire). data.mdb's size and the pages in use
 *     after each round: the file stops growing once freed pages are reused.
 *  3. Append latency: one thread appends single events (the HTTP shape) to 50 sessions
 *     with --sync full, first alone for 4 s, then for as long as the janitor takes to trim
 *     200 sessions of 2,000 events down to 10 (in STORE_TRIM_MAX batches), then alone
 *     again for 4 s (A/B/A: the disk's latency drifts): p50, p99, max.
 * Numbers, never pass/fail. --quick shrinks every part.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "ingest/ingest.h"
#include "retain/retain.h"

static int quick;

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_retention: %s: %s (%s)\n", what, reel_strerror(rc), store_last_error());
    exit(1);
}

/* Appends 'n' events of about 'size' bytes (the last a session.ended when 'end'). */
static void append(store_t *s, const char *id, int n, size_t size, int end)
{
    store_buf_t t = STORE_BUF_INIT;
    for (int i = 0; i < n; i++) {
        store_buf_printf(&t, "{\"type\":\"item.delta\",\"data\":{\"i\":%d,\"text\":\"", i);
        for (size_t k = 0; k < size; k++)
            store_buf_putc(&t, (char)('a' + bench_next() % 26));
        store_buf_puts(&t, "\"}}\n");
    }
    if (end)
        store_buf_puts(&t, "{\"type\":\"session.ended\"}\n");
    ingest_batch_t ib;
    int rc = ingest_batch_init(&ib, id, strlen(id));
    if (!rc)
        rc = ingest_parse(&ib, (const char *)t.data, t.len, INGEST_NDJSON, NULL, NULL);
    if (!rc)
        rc = ingest_append(s, &ib);
    if (rc)
        die("append", rc);
    ingest_batch_release(&ib);
    store_buf_release(&t);
}

static void set_policy(store_t *s, const char *id, const store_retention_t *p)
{
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_PUT, id, strlen(id));
    b.retention = p;
    int rc = store_append(s, &b);
    if (rc)
        die("put", rc);
}

static void fresh(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd))
        exit(1);
}

static long long file_size(const char *dir)
{
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    return stat(p, &st) ? -1 : (long long)st.st_size;
}

static void mixed(const char *dir)
{
    fresh(dir);
    store_t *s;
    store_options_t o = {.no_sync = 1};
    int rc = store_open(dir, &o, &s);
    if (rc)
        die("open", rc);
    int n = quick ? 1000 : 10000;
    store_retention_t trim = {1, 0, 0, 4, 0}, idle = {1, 1000, 0, 0, 0}, ended = {1, 0, 1000, 0, 0};
    double t0 = bench_now();
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "mixed-%05d", i);
        append(s, id, 10, 200, i % 4 == 2);
        if (i % 4 < 3)
            set_policy(s, id, i % 4 == 0 ? &trim : i % 4 == 1 ? &idle : &ended);
    }
    double built = bench_now() - t0;
    sleep(1); /* the idle and ended quarters pass their 1 s */
    usleep(100000);
    retain_config_t cfg = {0};
    retain_t *j;
    retain_new(s, &cfg, &j);
    t0 = bench_now();
    retain_run_once(j);
    double pass = bench_now() - t0;
    retain_stats_t st;
    retain_get_stats(j, &st);
    t0 = bench_now();
    retain_run_once(j); /* nothing left to do: the cost of a pass that only reads */
    double quiet = bench_now() - t0;
    t0 = bench_now();
    store_verify_report_t rep;
    rc = store_verify(s, NULL, 0, &rep, NULL, NULL);
    double ver = bench_now() - t0;
    printf("mixed policies: %d sessions x 10 events built in %.1f s; one janitor pass %.2f s: "
           "%llu events trimmed, %llu sessions expired; a second pass (nothing to do) %.3f s; "
           "verify %.2f s: %s (%llu sessions, %llu events)\n", n, built, pass,
           (unsigned long long)st.events_trimmed, (unsigned long long)st.sessions_expired, quiet,
           ver, !rc && rep.ok ? "ok" : rep.problem,
           (unsigned long long)rep.sessions, (unsigned long long)rep.events);
    retain_free(j);
    store_close(s);
}

static void churn(const char *dir)
{
    fresh(dir);
    store_t *s;
    store_options_t o = {.no_sync = 1};
    int rc = store_open(dir, &o, &s);
    if (rc)
        die("open", rc);
    retain_config_t cfg = {0};
    cfg.dflt = (store_retention_t){1, 0, 1, 0, 0};
    retain_t *j;
    retain_new(s, &cfg, &j);
    int rounds = quick ? 10 : 30, per = quick ? 100 : 300;
    printf("churn: %d rounds of %d new sessions x 40 events of ~400 B, the previous round's "
           "ended and expired\n  round  data.mdb MiB  high-water MiB  expired\n", rounds, per);
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < per; i++) {
            char id[48];
            snprintf(id, sizeof id, "churn-%03d-%04d", r, i);
            append(s, id, 40, 400, 0);
            if (r) {
                snprintf(id, sizeof id, "churn-%03d-%04d", r - 1, i);
                append(s, id, 0, 0, 1);
            }
        }
        usleep(2000);
        retain_run_once(j);
        store_stats_t st;
        store_get_stats(s, &st);
        retain_stats_t rs;
        retain_get_stats(j, &rs);
        printf("  %5d  %12.1f  %14.1f  %7llu\n", r + 1, (double)file_size(dir) / 1048576.0,
               (double)st.used_bytes / 1048576.0, (unsigned long long)rs.sessions_expired);
    }
    /* What `reel backup` (always compacted) gives back to the file system. */
    char copy[600];
    snprintf(copy, sizeof copy, "%s.compact", dir);
    fresh(copy);
    rmdir(copy);
    double t0 = bench_now();
    if ((rc = store_backup(s, copy)))
        die("backup", rc);
    printf("  compacted copy (reel backup): %.1f MiB in %.2f s, against %.1f MiB of data.mdb\n",
           (double)file_size(copy) / 1048576.0, bench_now() - t0,
           (double)file_size(dir) / 1048576.0);
    fresh(copy);
    rmdir(copy);
    retain_free(j);
    store_close(s);
}

/* ---- append latency with and without the janitor ---- */

struct lat {
    store_t *s;
    double until;
    atomic_int *stop; /* NULL, or set when the janitor's backlog is done */
    double *v;
    size_t n, cap;
};

static void *appender(void *arg)
{
    struct lat *l = arg;
    char id[32];
    for (size_t i = 0; bench_now() < l->until && !(l->stop && atomic_load(l->stop)); i++) {
        snprintf(id, sizeof id, "lat-%02zu", i % 50);
        ingest_batch_t ib;
        static const char ev[] = "{\"type\":\"item.delta\",\"data\":{\"text\":\"a small delta of an "
                                 "agent's answer, about a hundred bytes long, as the HTTP tests "
                                 "send\"}}";
        double t0 = bench_now();
        if (ingest_batch_init(&ib, id, strlen(id)) ||
            ingest_parse(&ib, ev, sizeof ev - 1, INGEST_JSON, NULL, NULL) ||
            ingest_append(l->s, &ib))
            die("latency append", REEL_EIO);
        ingest_batch_release(&ib);
        if (l->n < l->cap)
            l->v[l->n++] = bench_now() - t0;
    }
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, struct lat *l)
{
    qsort(l->v, l->n, sizeof *l->v, cmp_d);
    printf("  %-28s %7zu appends  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms\n", what, l->n,
           l->v[l->n / 2] * 1e3, l->v[l->n * 99 / 100] * 1e3, l->v[l->n - 1] * 1e3);
}

struct jan {
    retain_t *j;
    uint64_t target; /* events to trim */
    double took;
    atomic_int done;
};

/* Janitor passes until the backlog is trimmed: the appender measures meanwhile. */
static void *janitor(void *arg)
{
    struct jan *x = arg;
    double t0 = bench_now();
    retain_stats_t st = {0};
    while (st.events_trimmed < x->target) {
        retain_run_once(x->j);
        retain_get_stats(x->j, &st);
    }
    x->took = bench_now() - t0;
    atomic_store(&x->done, 1);
    return NULL;
}

static void latency(const char *dir)
{
    fresh(dir);
    store_t *s;
    int rc = store_open(dir, NULL, &s); /* --sync full */
    if (rc)
        die("open", rc);
    int big = quick ? 40 : 200, each = quick ? 1000 : 2000;
    double secs = quick ? 2 : 4;
    store_retention_t keep10 = {1, 0, 0, 10, 0};
    for (int i = 0; i < big; i++) {
        char id[32];
        snprintf(id, sizeof id, "backlog-%03d", i);
        for (int k = 0; k < each; k += 1000)
            append(s, id, 1000, 300, 0);
        set_policy(s, id, &keep10);
    }
    struct lat a = {s, bench_now() + secs, NULL, malloc(1000000 * sizeof(double)), 0, 1000000};
    pthread_t t;
    pthread_create(&t, NULL, appender, &a);
    pthread_join(t, NULL);
    printf("append latency (single events, --sync full, %d-session backlog of %d events to "
           "trim):\n", big, big * (each - 10));
    report("janitor idle", &a);
    retain_config_t cfg = {0};
    retain_t *j;
    retain_new(s, &cfg, &j);
    struct jan x = {j, (uint64_t)big * (uint64_t)(each - 10), 0, 0};
    struct lat b = {s, bench_now() + 600, &x.done, malloc(1000000 * sizeof(double)), 0, 1000000};
    pthread_t tj;
    pthread_create(&tj, NULL, janitor, &x);
    pthread_create(&t, NULL, appender, &b);
    pthread_join(t, NULL);
    pthread_join(tj, NULL);
    retain_stats_t st;
    retain_get_stats(j, &st);
    report("janitor trimming", &b);
    struct lat c = {s, bench_now() + secs, NULL, malloc(1000000 * sizeof(double)), 0, 1000000};
    pthread_create(&t, NULL, appender, &c);
    pthread_join(t, NULL);
    report("janitor idle again", &c);
    free(c.v);
    printf("  (the janitor trimmed %llu events in %.2f s meanwhile, %.0f events/s, in "
           "batches of %d)\n", (unsigned long long)st.events_trimmed, x.took,
           (double)st.events_trimmed / x.took, STORE_TRIM_MAX);
    retain_free(j);
    free(a.v);
    free(b.v);
    store_close(s);
}

int main(int argc, char **argv)
{
    const char *dir = "/tmp/reel-bench-retention";
    int st = bench_args(argc, argv, "bench_retention", &quick, &dir);
    if (st >= 0)
        return st;
    mixed(dir);
    churn(dir);
    latency(dir);
    fresh(dir);
    rmdir(dir);
    return 0;
}
