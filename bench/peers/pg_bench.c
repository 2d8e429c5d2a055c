/* pg_bench.c -- PostgreSQL client for `make bench-peers` (libpq).
 *
 *   build/peers/pg_bench --conninfo STR --workload W [options]
 *
 * Why not pgbench: its scripts cannot send a different 1 KiB JSON document per
 * transaction from a file (variables are numbers, or strings fetched from the server in
 * an extra round trip), and the payload must be the same bytes every system receives.
 * This client sends gen_events.py's events as statement parameters, as an application
 * would, over one connection per thread (the same 64 connections wrk opens to reel).
 *
 * Schema (created by bench/peers/postgres.sh):
 *   events(session_id int, seq bigint, body jsonb, PRIMARY KEY(session_id, seq))
 *   sessions(id int PRIMARY KEY, last_seq bigint)   -- per-session sequence counter
 * An append is one statement, so one transaction and one WAL flush at commit:
 *   WITH s AS (UPDATE sessions SET last_seq = last_seq + K WHERE id = $1 RETURNING last_seq)
 *   INSERT INTO events SELECT $1, s.last_seq - K + v.i, v.b::jsonb FROM s, (VALUES ...) v(i, b)
 * The UPDATE's row lock makes sequences dense and correct under any concurrency (two
 * writers of one session queue on the row; here each connection writes its own session,
 * as each agent session would).
 *
 * Workloads (prints "key<TAB>value" lines):
 *   ingest     --conns C threads, --batch K events per statement, --secs S, --events FILE
 *   poll       --conns C threads, 100 rows after a random seq of --session (10,000 events)
 *   restore    one connection, --n sequential newest-50 reads of --session: p50/p99 us
 *   export     COPY (SELECT body ... ORDER BY seq) TO STDOUT of --session, as JSON lines
 *              through libzstd level 3: MB/s of JSON
 *   fanout     --subscribers N connections LISTEN on one epoll thread; a publisher inserts
 *              --n events (--interval-ms apart) into fan_events, whose trigger NOTIFYs the
 *              row's body; latency = insert sent -> notification received (p50/p99 ms)
 *   first-read retry connecting until the server answers newest-50 of --session (restart)
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <zstd.h>

#define PROG "pg_bench"
#include "benchutil.h"

#define NEWEST_N 50
#define POLL_N 100
#define POLL_SESSION_EVENTS 10000
#define MARK "REELTS"
#define DIGITS 19

typedef struct opts {
    const char *conninfo, *workload, *events, *body;
    double secs;
    int conns, subscribers, interval_ms;
    int batch;
    long n, session;
    long server_pid; /* first-read: give up when this process has exited */
} opts_t;

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}


static PGconn *connect_or_die(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        die("connect", PQerrorMessage(c));
    return c;
}

/* Runs 'res' through the usual check and frees it. */
static void ok_or_die(PGconn *c, PGresult *res, const char *what)
{
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die(what, PQerrorMessage(c));
    PQclear(res);
}

/* ---- Payload pool: one event JSON object per line ---- */

static char **pool_line;
static int *pool_len;
static size_t pool_n;

static void pool_load(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0, alloc = 0;
    ssize_t got;
    if (!f)
        die(path, NULL);
    while ((got = getline(&buf, &cap, f)) > 0) {
        while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
            buf[--got] = 0;
        if (!got)
            continue;
        if (pool_n == alloc) {
            alloc = alloc ? alloc * 2 : 1024;
            pool_line = realloc(pool_line, alloc * sizeof *pool_line);
            pool_len = realloc(pool_len, alloc * sizeof *pool_len);
            if (!pool_line || !pool_len)
                die("realloc", "out of memory");
        }
        pool_line[pool_n] = strdup(buf);
        pool_len[pool_n++] = (int)got;
    }
    free(buf);
    fclose(f);
    if (!pool_n)
        die(path, "no events");
}

/* ---- Timed runs on C connections ---- */

/* The append statement for batches of k events (see the header). */
static char *append_sql(int k)
{
    size_t cap = 512 + (size_t)k * 32, len;
    char *sql = xmalloc(cap);
    len = (size_t)snprintf(sql, cap,
        "WITH s AS (UPDATE sessions SET last_seq = last_seq + %d WHERE id = $1 "
        "RETURNING last_seq) INSERT INTO events(session_id, seq, body) "
        "SELECT $1, s.last_seq - %d + v.i, v.b::jsonb FROM s, (VALUES ", k, k);
    for (int i = 0; i < k; i++)
        len += (size_t)snprintf(sql + len, cap - len, "%s(%d, $%d::text)", i ? ", " : "",
                                i + 1, i + 2);
    snprintf(sql + len, cap - len, ") v(i, b)");
    return sql;
}

static void *ingest_worker(void *arg)
{
    worker_t *w = arg;
    int k = w->o->batch;
    PGconn *c = connect_or_die(w->o->conninfo);
    char sess[16], *sql = append_sql(k);
    const char **params = xmalloc((size_t)(k + 1) * sizeof *params);
    size_t i = (size_t)w->id * 977;
    snprintf(sess, sizeof sess, "%d", 100 + w->id);
    params[0] = sess;
    const char *p1[1] = {sess};
    ok_or_die(c, PQexecParams(c, "INSERT INTO sessions VALUES ($1::int, 0) ON CONFLICT DO NOTHING",
                              1, NULL, p1, NULL, NULL, 0), "insert session");
    ok_or_die(c, PQprepare(c, "append", sql, 0, NULL), "prepare append");
    pthread_barrier_wait(w->start);
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        for (int j = 0; j < k; j++)
            params[j + 1] = pool_line[(i + (size_t)j) % pool_n];
        ok_or_die(c, PQexecPrepared(c, "append", k + 1, params, NULL, NULL, 0), "append");
        i += (size_t)k;
        w->events += (uint64_t)k;
    }
    free(params);
    free(sql);
    PQfinish(c);
    return NULL;
}

static void *poll_worker(void *arg)
{
    worker_t *w = arg;
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)(w->id + 1) * 7919;
    PGconn *c = connect_or_die(w->o->conninfo);
    char sess[24], after[24];
    const char *params[2] = {sess, after};
    uint64_t bytes = 0;
    snprintf(sess, sizeof sess, "%ld", w->o->session);
    ok_or_die(c, PQprepare(c, "poll", "SELECT body FROM events WHERE session_id = $1::int "
                                      "AND seq > $2::bigint ORDER BY seq LIMIT 100", 0, NULL),
              "prepare poll");
    pthread_barrier_wait(w->start);
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        snprintf(after, sizeof after, "%llu",
                 (unsigned long long)(rng_next(&rng) % (POLL_SESSION_EVENTS - POLL_N)));
        PGresult *res = PQexecPrepared(c, "poll", 2, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            die("poll", PQerrorMessage(c));
        for (int r = 0; r < PQntuples(res); r++)
            bytes += (uint64_t)PQgetlength(res, r, 0);
        w->events += (uint64_t)PQntuples(res);
        PQclear(res);
    }
    (void)bytes; /* read so the rows are touched, as a server would; not reported */
    PQfinish(c);
    return NULL;
}

static double run_threads(const opts_t *o, void *(*fn)(void *))
{
    return bench_threads(o, o->conns, o->secs, fn);
}

/* ---- Restore: newest 50, oldest first ---- */

static const char *newest_sql =
    "SELECT body FROM (SELECT seq, body FROM events WHERE session_id = $1::int "
    "ORDER BY seq DESC LIMIT 50) t ORDER BY seq";

static size_t newest_once(PGconn *c, const char *sess)
{
    const char *params[1] = {sess};
    size_t bytes = 0;
    PGresult *res = PQexecPrepared(c, "newest", 1, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        die("newest", PQerrorMessage(c));
    for (int r = 0; r < PQntuples(res); r++)
        bytes += (size_t)PQgetlength(res, r, 0) + 1;
    PQclear(res);
    return bytes;
}

static void wl_restore(const opts_t *o)
{
    PGconn *c = connect_or_die(o->conninfo);
    double *lat = xmalloc((size_t)o->n * sizeof *lat);
    char sess[24];
    size_t bytes = 0;
    snprintf(sess, sizeof sess, "%ld", o->session);
    ok_or_die(c, PQprepare(c, "newest", newest_sql, 0, NULL), "prepare newest");
    for (long i = 0; i < o->n; i++) {
        double t0 = now_s();
        bytes = newest_once(c, sess);
        lat[i] = (now_s() - t0) * 1e6;
    }
    qsort(lat, (size_t)o->n, sizeof *lat, cmp_double);
    printf("p50_us\t%.1f\np99_us\t%.1f\nbytes\t%zu\n", quantile(lat, (size_t)o->n, 0.5),
           quantile(lat, (size_t)o->n, 0.99), bytes);
    free(lat);
    PQfinish(c);
}

/* 1 while process 'pid' runs (a zombie, which the caller has not reaped yet, has exited). */
static int process_alive(long pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* "pid (comm) S ..." */
    return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

/* Restart: the clock runs in the caller from the server's exec; this retries until a
 * connection is accepted and newest-50 is answered (or the server died: fail at once). */
static void wl_first_read(const opts_t *o)
{
    char sess[24];
    PGconn *c;
    snprintf(sess, sizeof sess, "%ld", o->session);
    double t0 = now_s();
    for (;;) {
        c = PQconnectdb(o->conninfo);
        if (PQstatus(c) == CONNECTION_OK)
            break;
        if (now_s() - t0 > 900)
            die("first-read: no answer in 900 s", PQerrorMessage(c));
        if (o->server_pid > 0 && !process_alive(o->server_pid))
            die("first-read: the server exited", PQerrorMessage(c));
        PQfinish(c);
        usleep(1000);
    }
    ok_or_die(c, PQprepare(c, "newest", newest_sql, 0, NULL), "prepare newest");
    printf("bytes\t%zu\n", newest_once(c, sess));
    PQfinish(c);
}

/* ---- Export: COPY TO STDOUT -> JSON lines -> zstd -3 ---- */

/* COPY's text format escapes backslashes (and control characters, which jsonb output
 * never holds raw); undo it in place so the bytes are the JSON lines themselves. */
static size_t copy_unescape(char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n) {
            char e = p[++i];
            p[o++] = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
        } else {
            p[o++] = p[i];
        }
    }
    return o;
}

static void zfeed(ZSTD_CCtx *z, const char *p, size_t n, int end, char *zbuf, size_t zcap,
                  uint64_t *zout)
{
    ZSTD_inBuffer zi = {p, n, 0};
    size_t left;
    do {
        ZSTD_outBuffer zo = {zbuf, zcap, 0};
        left = ZSTD_compressStream2(z, &zo, &zi, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(left))
            die("zstd", ZSTD_getErrorName(left));
        *zout += zo.pos;
    } while (end ? left != 0 : zi.pos < zi.size);
}

static void wl_export(const opts_t *o)
{
    PGconn *c = connect_or_die(o->conninfo);
    char sql[256], *row;
    size_t zcap = ZSTD_CStreamOutSize(), in_len = 0, in_cap = 1u << 20;
    char *zbuf = xmalloc(zcap), *in = xmalloc(in_cap + 65536);
    uint64_t json = 0, zout = 0, rows = 0;
    int n;
    ZSTD_CCtx *z = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 3);
    snprintf(sql, sizeof sql, "COPY (SELECT body FROM events WHERE session_id = %ld ORDER BY seq) "
                              "TO STDOUT", o->session);
    double t0 = now_s();
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT)
        die("COPY", PQerrorMessage(c));
    PQclear(res);
    while ((n = PQgetCopyData(c, &row, 0)) > 0) {
        size_t m = copy_unescape(row, (size_t)n); /* each row ends with '\n' */
        if (in_len + m > in_cap + 65536) {
            zfeed(z, in, in_len, 0, zbuf, zcap, &zout);
            in_len = 0;
        }
        memcpy(in + in_len, row, m);
        in_len += m;
        json += m;
        rows++;
        PQfreemem(row);
        if (in_len >= in_cap) {
            zfeed(z, in, in_len, 0, zbuf, zcap, &zout);
            in_len = 0;
        }
    }
    if (n == -2)
        die("COPY data", PQerrorMessage(c));
    zfeed(z, in, in_len, 1, zbuf, zcap, &zout);
    ok_or_die(c, PQgetResult(c), "COPY end");
    double el = now_s() - t0;
    printf("mb_per_sec\t%.1f\njson_bytes\t%llu\nzstd_bytes\t%llu\nrows\t%llu\n",
           (double)json / el / 1e6, (unsigned long long)json, (unsigned long long)zout,
           (unsigned long long)rows);
    ZSTD_freeCCtx(z);
    free(zbuf);
    free(in);
    PQfinish(c);
}

/* ---- Fan-out: LISTEN/NOTIFY ---- */

typedef struct fan {
    PGconn **subs;
    int nsubs;
    double *lat; /* ms, one per delivery */
    size_t nlat, cap;
} fan_t;

/* Latency of every marker in a notification payload (the publisher wrote its send time). */
static void fan_record(fan_t *f, const char *payload, int64_t now)
{
    for (const char *p = strstr(payload, MARK); p; p = strstr(p + 1, MARK)) {
        int64_t t = 0;
        for (int i = 0; i < DIGITS; i++) {
            char ch = p[6 + i];
            if (ch < '0' || ch > '9')
                return;
            t = t * 10 + (ch - '0');
        }
        if (f->nlat == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 4096;
            f->lat = realloc(f->lat, f->cap * sizeof *f->lat);
            if (!f->lat)
                die("realloc", "out of memory");
        }
        f->lat[f->nlat++] = (double)(now - t) / 1e6;
    }
}

static void fan_connect(fan_t *f, const opts_t *o, int ep)
{
    f->nsubs = o->subscribers;
    f->subs = xmalloc((size_t)f->nsubs * sizeof *f->subs);
    for (int i = 0; i < f->nsubs; i++) {
        f->subs[i] = connect_or_die(o->conninfo);
        ok_or_die(f->subs[i], PQexec(f->subs[i], "LISTEN fan"), "LISTEN");
        PQsetnonblocking(f->subs[i], 1);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, PQsocket(f->subs[i]), &ev))
            die("epoll_ctl", NULL);
    }
}

typedef struct publisher {
    const opts_t *o;
    atomic_int done;
} publisher_t;

/* Inserts o->n events into fan_events, each a copy of the --body event with the marker's
 * digits set to the send time; the table's trigger NOTIFYs the row at commit. */
static void *publish_run(void *arg)
{
    publisher_t *p = arg;
    const opts_t *o = p->o;
    PGconn *c = connect_or_die(o->conninfo);
    char *body = strdup(pool_line[0]), *m = strstr(body, MARK), digits[DIGITS + 1];
    const char *params[2];
    char seq[24];
    if (!m)
        die("--body", "no REELTS marker in the event");
    ok_or_die(c, PQprepare(c, "pub", "INSERT INTO fan_events(session_id, seq, body) "
                                     "VALUES (1, $1::bigint, $2::jsonb)", 0, NULL), "prepare pub");
    for (long k = 1; k <= o->n; k++) {
        snprintf(seq, sizeof seq, "%ld", k);
        snprintf(digits, sizeof digits, "%019lld", (long long)real_ns());
        memcpy(m + 6, digits, DIGITS);
        params[0] = seq;
        params[1] = body;
        ok_or_die(c, PQexecPrepared(c, "pub", 2, params, NULL, NULL, 0), "publish");
        usleep((useconds_t)o->interval_ms * 1000);
    }
    usleep(500000); /* let the last notifications arrive */
    atomic_store(&p->done, 1);
    free(body);
    PQfinish(c);
    return NULL;
}

static void fan_drain(fan_t *f, int i)
{
    PGconn *c = f->subs[i];
    PGnotify *nt;
    if (!PQconsumeInput(c))
        die("consume", PQerrorMessage(c));
    int64_t now = real_ns();
    while ((nt = PQnotifies(c))) {
        fan_record(f, nt->extra, now);
        PQfreemem(nt);
    }
}

static void wl_fanout(const opts_t *o)
{
    fan_t f = {0};
    int ep = epoll_create1(0);
    pthread_t th;
    struct epoll_event evs[256];
    publisher_t pub = {.o = o};
    fan_connect(&f, o, ep);
    if (pthread_create(&th, NULL, publish_run, &pub))
        die("pthread_create", NULL);
    while (!atomic_load(&pub.done)) {
        int n = epoll_wait(ep, evs, 256, 50);
        for (int i = 0; i < n; i++)
            fan_drain(&f, (int)evs[i].data.u32);
    }
    pthread_join(th, NULL);
    qsort(f.lat, f.nlat, sizeof *f.lat, cmp_double);
    printf("deliveries\t%zu\nexpected\t%ld\np50_ms\t%.2f\np99_ms\t%.2f\nmax_ms\t%.2f\n", f.nlat,
           o->n * f.nsubs, f.nlat ? quantile(f.lat, f.nlat, 0.5) : 0,
           f.nlat ? quantile(f.lat, f.nlat, 0.99) : 0, f.nlat ? f.lat[f.nlat - 1] : 0);
    for (int i = 0; i < f.nsubs; i++)
        PQfinish(f.subs[i]);
    free(f.subs);
    free(f.lat);
}

/* ---- Main ---- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: pg_bench --conninfo STR --workload W [options]\n"
        "\n"
        "PostgreSQL client of make bench-peers (see the top of bench/peers/pg_bench.c).\n"
        "Workloads: ingest, poll, restore, export, fanout, first-read. Prints key<TAB>value.\n"
        "  --events FILE      NDJSON events (ingest; fanout: the --format fanout event)\n"
        "  --conns C          connections/threads (ingest, poll; default 64)\n"
        "  --batch K          events per statement (ingest; default 100)\n"
        "  --secs S           duration (ingest, poll; default 10)\n"
        "  --session S        session (poll, restore, export, first-read)\n"
        "  --n N              reads (restore) or events published (fanout)\n"
        "  --subscribers N    LISTEN connections (fanout; default 1000)\n"
        "  --interval-ms MS   pause between published events (fanout; default 20)\n"
        "  --server-pid PID   first-read: fail as soon as this process has exited\n");
}

static void parse_args(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.secs = 10, .conns = 64, .batch = 100, .n = 1000, .session = 2,
                  .subscribers = 1000, .interval_ms = 20};
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
        if (!strcmp(a, "--conninfo")) o->conninfo = v;
        else if (!strcmp(a, "--workload")) o->workload = v;
        else if (!strcmp(a, "--events")) o->events = v;
        else if (!strcmp(a, "--secs")) o->secs = atof(v);
        else if (!strcmp(a, "--conns")) o->conns = atoi(v);
        else if (!strcmp(a, "--batch")) o->batch = atoi(v);
        else if (!strcmp(a, "--n")) o->n = atol(v);
        else if (!strcmp(a, "--session")) o->session = atol(v);
        else if (!strcmp(a, "--subscribers")) o->subscribers = atoi(v);
        else if (!strcmp(a, "--interval-ms")) o->interval_ms = atoi(v);
        else if (!strcmp(a, "--server-pid")) o->server_pid = atol(v);
        else {
            fprintf(stderr, "pg_bench: unknown option '%s'\n", a);
            usage(stderr);
            exit(2);
        }
        i++;
    }
    if (!o->conninfo || !o->workload || o->batch < 1 || o->conns < 1 || o->n < 1) {
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    opts_t o;
    parse_args(argc, argv, &o);
    if (o.events)
        pool_load(o.events);
    else if (!strcmp(o.workload, "ingest") || !strcmp(o.workload, "fanout"))
        die("--events", "required for ingest and fanout");
    if (!strcmp(o.workload, "ingest"))
        printf("events_per_sec\t%.0f\n", run_threads(&o, ingest_worker));
    else if (!strcmp(o.workload, "poll"))
        printf("events_per_sec\t%.0f\n", run_threads(&o, poll_worker));
    else if (!strcmp(o.workload, "restore"))
        wl_restore(&o);
    else if (!strcmp(o.workload, "export"))
        wl_export(&o);
    else if (!strcmp(o.workload, "fanout"))
        wl_fanout(&o);
    else if (!strcmp(o.workload, "first-read"))
        wl_first_read(&o);
    else {
        fprintf(stderr, "pg_bench: unknown workload '%s'\n", o.workload);
        return 2;
    }
    return 0;
}
