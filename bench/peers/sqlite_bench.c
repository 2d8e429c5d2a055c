/* sqlite_bench.c -- SQLite beside reel's own library, in one process, same events.
 *
 * SQLite is embedded, so its fair peer is not reel's HTTP server but reel's store API
 * linked into the same kind of program. This program runs one workload against one
 * engine per invocation and prints "key<TAB>value" lines; bench/peers/sqlite.sh turns
 * them into result rows for the systems "sqlite" and "reel-lib".
 *
 *   sqlite   one file, journal_mode=WAL, synchronous=FULL (a commit returns after the
 *            WAL is fsynced), prepared statements, table
 *            events(session INT, seq INT, body BLOB, PRIMARY KEY(session, seq)) WITHOUT ROWID
 *            with 16 KiB pages (see SQLITE_PAGE_SIZE). Writers are serialised by SQLite's
 *            write lock: every thread has its own connection and runs BEGIN IMMEDIATE ...
 *            COMMIT; a process-wide mutex queues the writers in front of the lock
 *            (SQLite's own busy handler sleeps 1..100 ms between retries, which would
 *            measure the sleep, not SQLite).
 *   reel     store_open() with the default durable sync; events go through ingest_parse()
 *            (JSON validated and transcoded to msgpack, as the HTTP server does) and one
 *            store shared by all threads (group commit); reads render JSON with
 *            replay_write_event(), export uses replay_export_*() (zstd -3).
 *
 * Sessions: each ingest thread appends to its own session (per-session sequences: SQLite
 * reads max(seq) inside its write transaction, reel assigns them in its committer).
 * The read workloads use sessions loaded by 'load': 1 (1,000 events), 2 (the big one)
 * and 3 (10,000 events, polled).
 *
 * Build: see bench/peers/peers.mk (cc ... bench/peers/sqlite_bench.c build/libreel.a
 *        -lsqlite3 + reel's libraries).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zstd.h>

#define PROG "sqlite_bench"
#include "benchutil.h"

#include "ingest/ingest.h"
#include "replay/replay.h"
#include "store/store.h"

#define SQLITE_PAGE_SIZE 16384 /* a ~1 KiB row fits in a leaf; with 4 KiB pages a WITHOUT
                                  ROWID row over ~1,000 bytes spills to an overflow page
                                  (measured: 4,682 bytes per 1 KiB event vs 1,172) */
#define NEWEST_N 50
#define POLL_N 100
#define SESS_SMALL 1
#define SESS_BIG 2
#define SESS_POLL 3
#define SESS_INGEST0 100 /* ingest thread i writes session SESS_INGEST0 + i */

/* ---- Options and small helpers ---- */

typedef struct opts {
    const char *engine;   /* "sqlite" or "reel" */
    const char *dir;      /* data directory of the engine */
    const char *workload; /* ingest, load, poll, restore, export, size, first-read */
    const char *events;   /* NDJSON file of events (the payload pool) */
    double secs;          /* duration of timed runs */
    int threads;
    size_t batch;         /* events per transaction/append */
    size_t n;             /* events to load (load), reads (restore) */
    long session;         /* session for restore/export */
    double max_secs;      /* load: stop after this long (0 = no limit) */
    int fast;             /* load without fsync (data set preparation only) */
} opts_t;

static void die_reel(const char *what, int rc)
{
    fprintf(stderr, "sqlite_bench: %s: %s (%s)\n", what, reel_strerror(rc), store_last_error());
    exit(1);
}


/* ---- The payload pool: one event JSON object per line ---- */

typedef struct pool {
    char **line; /* without the newline */
    size_t *len;
    size_t n;
    size_t bytes;
} pool_t;

static pool_t pool;

static void pool_load(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0, alloc = 1024;
    ssize_t got;
    if (!f)
        die(path, NULL);
    pool.line = xmalloc(alloc * sizeof *pool.line);
    pool.len = xmalloc(alloc * sizeof *pool.len);
    while ((got = getline(&buf, &cap, f)) > 0) {
        while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
            got--;
        if (!got)
            continue;
        if (pool.n == alloc) {
            alloc *= 2;
            pool.line = realloc(pool.line, alloc * sizeof *pool.line);
            pool.len = realloc(pool.len, alloc * sizeof *pool.len);
            if (!pool.line || !pool.len)
                die("realloc", "out of memory");
        }
        pool.line[pool.n] = xmalloc((size_t)got + 1);
        memcpy(pool.line[pool.n], buf, (size_t)got);
        pool.line[pool.n][got] = 0;
        pool.len[pool.n] = (size_t)got;
        pool.bytes += (size_t)got;
        pool.n++;
    }
    free(buf);
    fclose(f);
    if (!pool.n)
        die(path, "no events");
}

/* NDJSON of 'k' pool lines from index 'start' (cycled) into 'out'. */
static void pool_ndjson(size_t start, size_t k, store_buf_t *out)
{
    store_buf_clear(out);
    for (size_t i = 0; i < k; i++) {
        size_t j = (start + i) % pool.n;
        store_buf_put(out, pool.line[j], pool.len[j]);
        store_buf_putc(out, '\n');
    }
    if (store_buf_failed(out))
        die("ndjson", "out of memory");
}

/* ---- SQLite ---- */

static pthread_mutex_t sq_write_lock = PTHREAD_MUTEX_INITIALIZER;

static void sq_check(sqlite3 *db, int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        die(what, sqlite3_errmsg(db));
}

static void sq_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        die(sql, err);
}

/* One connection with the durable settings (synchronous is per connection). 'fast'
 * drops fsync for data-set preparation only. */
static sqlite3 *sq_open(const char *dir, int fast)
{
    char path[4096];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/events.db", dir);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                       SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        die(path, sqlite3_errmsg(db));
    char pragma[64];
    sqlite3_busy_timeout(db, 10000);
    snprintf(pragma, sizeof pragma, "PRAGMA page_size=%d", SQLITE_PAGE_SIZE);
    sq_exec(db, pragma); /* takes effect when the file is created */
    sq_exec(db, "PRAGMA journal_mode=WAL");
    sq_exec(db, fast ? "PRAGMA synchronous=OFF" : "PRAGMA synchronous=FULL");
    sq_exec(db, "CREATE TABLE IF NOT EXISTS events(session INT, seq INT, body BLOB, "
                "PRIMARY KEY(session, seq)) WITHOUT ROWID");
    return db;
}

static sqlite3_stmt *sq_prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
        die(sql, sqlite3_errmsg(db));
    return st;
}

typedef struct sq_writer {
    sqlite3 *db;
    sqlite3_stmt *max, *ins, *begin, *commit;
} sq_writer_t;

static void sq_writer_open(sq_writer_t *w, const char *dir, int fast)
{
    w->db = sq_open(dir, fast);
    w->max = sq_prep(w->db, "SELECT coalesce(max(seq), 0) FROM events WHERE session = ?1");
    w->ins = sq_prep(w->db, "INSERT INTO events(session, seq, body) VALUES (?1, ?2, ?3)");
    w->begin = sq_prep(w->db, "BEGIN IMMEDIATE");
    w->commit = sq_prep(w->db, "COMMIT");
}

static void sq_writer_close(sq_writer_t *w)
{
    sqlite3_finalize(w->max);
    sqlite3_finalize(w->ins);
    sqlite3_finalize(w->begin);
    sqlite3_finalize(w->commit);
    sqlite3_close(w->db);
}

static void sq_step(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sq_check(db, rc, what);
    sqlite3_reset(st);
}

/* One transaction of 'k' events from pool index 'start' appended to 'session'. The next
 * sequence is read inside the write transaction, so concurrent writers stay dense. */
static void sq_append(sq_writer_t *w, long session, size_t start, size_t k)
{
    pthread_mutex_lock(&sq_write_lock);
    sq_step(w->db, w->begin, "BEGIN IMMEDIATE");
    sqlite3_bind_int64(w->max, 1, session);
    sq_check(w->db, sqlite3_step(w->max), "max(seq)");
    int64_t seq = sqlite3_column_int64(w->max, 0);
    sqlite3_reset(w->max);
    for (size_t i = 0; i < k; i++) {
        size_t j = (start + i) % pool.n;
        sqlite3_bind_int64(w->ins, 1, session);
        sqlite3_bind_int64(w->ins, 2, ++seq);
        sqlite3_bind_blob(w->ins, 3, pool.line[j], (int)pool.len[j], SQLITE_STATIC);
        sq_step(w->db, w->ins, "INSERT");
    }
    sq_step(w->db, w->commit, "COMMIT");
    pthread_mutex_unlock(&sq_write_lock);
}

/* ---- reel ---- */

static store_t *rl_open(const char *dir, int fast)
{
    store_t *s;
    store_options_t o = {0};
    const char *zd = getenv("REEL_ZDICT"); /* "off": no dictionaries (docs/FORMAT.md 15) */
    const char *cache = getenv("REEL_CACHE_MB"); /* the envelope cache: "0" = off */
    o.no_sync = fast;
    o.no_zdict = zd && !strcmp(zd, "off");
    o.render = replay_envelope; /* what the server and the CLI give store_open() */
    o.cache_bytes = cache ? (atol(cache) ? (size_t)atol(cache) << 20 : STORE_CACHE_OFF) : 0;
    if (mkdir(dir, 0755) && errno != EEXIST)
        die(dir, NULL);
    int rc = store_open(dir, &o, &s);
    if (rc)
        die_reel("store_open", rc);
    return s;
}

static void rl_session(char *out, size_t cap, long session)
{
    snprintf(out, cap, "s%ld", session);
}

/* Parses 'k' pool events through ingest (as an HTTP handler does) and appends them. */
static void rl_append(store_t *s, long session, size_t start, size_t k, store_buf_t *text)
{
    static const ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    ingest_batch_t ib;
    ingest_error_t e;
    char sess[32];
    int rc;
    rl_session(sess, sizeof sess, session);
    pool_ndjson(start, k, text);
    if ((rc = ingest_batch_init(&ib, sess, strlen(sess))))
        die_reel("ingest_batch_init", rc);
    if ((rc = ingest_parse(&ib, (const char *)text->data, text->len, INGEST_NDJSON, &lim, &e))) {
        fprintf(stderr, "sqlite_bench: event %zu: %s\n", e.index, e.text);
        die_reel("ingest_parse", rc);
    }
    if ((rc = ingest_append(s, &ib)))
        die_reel("ingest_append", rc);
    ingest_batch_release(&ib);
}

static int rl_render(void *arg, const store_event_view_t *ev)
{
    store_buf_t *out = arg;
    int rc = REEL_OK;
    if (ev->envelope) /* checked and rendered by the store (its envelope cache) */
        store_buf_put(out, ev->envelope, ev->envelope_len);
    else
        rc = replay_write_event(out, ev, 0);
    store_buf_putc(out, '\n');
    return rc ? rc : store_buf_failed(out) ? REEL_ENOMEM : 0;
}

/* ---- Engine handle shared by the workloads ---- */

typedef struct engine {
    int is_sqlite;
    const char *dir;
    store_t *store; /* reel: one store for every thread */
} engine_t;

static engine_t eng;

/* ---- Timed multi-threaded runs ---- */

static void *ingest_worker(void *arg)
{
    worker_t *w = arg;
    long session = SESS_INGEST0 + w->id;
    size_t i = (size_t)w->id * 977;
    sq_writer_t sw;
    store_buf_t text = STORE_BUF_INIT;
    if (eng.is_sqlite)
        sq_writer_open(&sw, eng.dir, 0);
    pthread_barrier_wait(w->start);
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        if (eng.is_sqlite)
            sq_append(&sw, session, i, w->o->batch);
        else
            rl_append(eng.store, session, i, w->o->batch, &text);
        i += w->o->batch;
        w->events += w->o->batch;
    }
    if (eng.is_sqlite)
        sq_writer_close(&sw);
    store_buf_release(&text);
    return NULL;
}

/* Reads of POLL_N events after a random sequence of the poll session, rendered as JSON
 * lines into a buffer (what a server would send). */
static void *poll_worker(void *arg)
{
    worker_t *w = arg;
    uint64_t rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)(w->id + 1) * 7919;
    store_buf_t out = STORE_BUF_INIT;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char sess[32];
    rl_session(sess, sizeof sess, SESS_POLL);
    if (eng.is_sqlite) {
        db = sq_open(eng.dir, 0);
        st = sq_prep(db, "SELECT body FROM events WHERE session = ?1 AND seq > ?2 "
                         "ORDER BY seq LIMIT 100");
    }
    pthread_barrier_wait(w->start);
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        uint64_t after = rng_next(&rng) % (10000 - POLL_N);
        store_buf_clear(&out);
        if (eng.is_sqlite) {
            sqlite3_bind_int64(st, 1, SESS_POLL);
            sqlite3_bind_int64(st, 2, (int64_t)after);
            while (sqlite3_step(st) == SQLITE_ROW) {
                store_buf_put(&out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
                store_buf_putc(&out, '\n');
                w->events++;
            }
            sqlite3_reset(st);
        } else {
            store_read_t r;
            int rc = store_read_begin(eng.store, &r);
            r.envelopes = 1;
            if (!rc)
                rc = store_events_after(&r, sess, strlen(sess), after, POLL_N, rl_render, &out,
                                        NULL);
            store_read_end(&r);
            if (rc)
                die_reel("store_events_after", rc);
            w->events += POLL_N;
        }
    }
    if (st)
        sqlite3_finalize(st);
    if (db)
        sqlite3_close(db);
    store_buf_release(&out);
    return NULL;
}

/* Runs 'fn' on o->threads threads for o->secs; returns events per second. */
static double run_threads(const opts_t *o, void *(*fn)(void *))
{
    return bench_threads(o, o->threads, o->secs, fn);
}

/* ---- Workloads ---- */

static void wl_ingest(const opts_t *o)
{
    double eps = run_threads(o, ingest_worker);
    printf("events_per_sec\t%.0f\n", eps);
    printf("json_bytes_per_event\t%.0f\n", (double)pool.bytes / (double)pool.n);
}

/* Appends o->n events to o->session in transactions of o->batch (data-set preparation),
 * stopping early after o->max_secs when that is set. */
static void wl_load(const opts_t *o)
{
    double t0 = now_s();
    size_t done = 0;
    sq_writer_t w;
    store_buf_t text = STORE_BUF_INIT;
    if (eng.is_sqlite)
        sq_writer_open(&w, eng.dir, o->fast);
    while (done < o->n && !(o->max_secs > 0 && now_s() - t0 > o->max_secs)) {
        size_t k = o->n - done < o->batch ? o->n - done : o->batch;
        if (eng.is_sqlite)
            sq_append(&w, o->session, done + (size_t)o->session * 131, k);
        else
            rl_append(eng.store, o->session, done + (size_t)o->session * 131, k, &text);
        done += k;
    }
    if (eng.is_sqlite) {
        sq_exec(w.db, "PRAGMA wal_checkpoint(TRUNCATE)");
        sq_writer_close(&w);
    }
    store_buf_release(&text);
    printf("loaded\t%zu\nload_events_per_sec\t%.0f\n", done, (double)done / (now_s() - t0));
}

/* One newest-50 read of 'session', rendered oldest first into 'out'. */
static void newest_sqlite(sqlite3_stmt *st, long session, store_buf_t *out)
{
    int len[NEWEST_N], k = 0;
    sqlite3_bind_int64(st, 1, session);
    /* Rows come newest first; their pointers stay valid only until the next step, so
     * the rows are copied, then written oldest first. */
    store_buf_t tmp = STORE_BUF_INIT;
    size_t off[NEWEST_N];
    while (k < NEWEST_N && sqlite3_step(st) == SQLITE_ROW) {
        off[k] = tmp.len;
        len[k] = sqlite3_column_bytes(st, 0);
        store_buf_put(&tmp, sqlite3_column_blob(st, 0), (size_t)len[k]);
        k++;
    }
    sqlite3_reset(st);
    for (int i = k - 1; i >= 0; i--) {
        store_buf_put(out, tmp.data + off[i], (size_t)len[i]);
        store_buf_putc(out, '\n');
    }
    store_buf_release(&tmp);
}

static void newest_reel(long session, store_buf_t *out)
{
    char sess[32];
    store_read_t r;
    rl_session(sess, sizeof sess, session);
    int rc = store_read_begin(eng.store, &r);
    r.envelopes = 1;
    if (!rc)
        rc = store_events_newest(&r, sess, strlen(sess), NEWEST_N, rl_render, out);
    store_read_end(&r);
    if (rc)
        die_reel("store_events_newest", rc);
}

static void wl_restore(const opts_t *o)
{
    double *lat = xmalloc(o->n * sizeof *lat);
    store_buf_t out = STORE_BUF_INIT;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (eng.is_sqlite) {
        db = sq_open(eng.dir, 0);
        st = sq_prep(db, "SELECT body FROM events WHERE session = ?1 ORDER BY seq DESC LIMIT 50");
    }
    for (size_t i = 0; i < o->n; i++) {
        store_buf_clear(&out);
        double t0 = now_s();
        if (eng.is_sqlite)
            newest_sqlite(st, o->session, &out);
        else
            newest_reel(o->session, &out);
        lat[i] = (now_s() - t0) * 1e6;
    }
    double first = lat[0]; /* the first read of this process: nothing cached yet */
    qsort(lat, o->n, sizeof *lat, cmp_double);
    printf("p50_us\t%.1f\np99_us\t%.1f\nfirst_us\t%.1f\nbytes\t%zu\n", quantile(lat, o->n, 0.5),
           quantile(lat, o->n, 0.99), first, out.len);
    if (!eng.is_sqlite) {
        store_cache_stats_t cs;
        store_cache_stats(eng.store, &cs);
        printf("cache_entries\t%llu\ncache_bytes\t%llu\ncache_hits\t%llu\ncache_misses\t%llu\n",
               (unsigned long long)cs.entries, (unsigned long long)cs.bytes,
               (unsigned long long)cs.hits, (unsigned long long)cs.misses);
    }
    if (st)
        sqlite3_finalize(st);
    if (db)
        sqlite3_close(db);
    store_buf_release(&out);
    free(lat);
}

/* zstd -3 of JSON lines streamed from SQLite rows, 1 MiB at a time (as reel's export). */
static void export_sqlite(long session, uint64_t *json, uint64_t *zout)
{
    sqlite3 *db = sq_open(eng.dir, 0);
    sqlite3_stmt *st = sq_prep(db, "SELECT body FROM events WHERE session = ?1 ORDER BY seq");
    ZSTD_CCtx *z = ZSTD_createCCtx();
    store_buf_t in = STORE_BUF_INIT;
    size_t zcap = ZSTD_CStreamOutSize();
    char *zbuf = xmalloc(zcap);
    int more = 1;
    ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, 3);
    sqlite3_bind_int64(st, 1, session);
    while (more) {
        store_buf_clear(&in);
        while (in.len < (1u << 20) && (more = (sqlite3_step(st) == SQLITE_ROW))) {
            store_buf_put(&in, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
            store_buf_putc(&in, '\n');
        }
        *json += in.len;
        ZSTD_inBuffer zi = {in.data, in.len, 0};
        ZSTD_EndDirective mode = more ? ZSTD_e_continue : ZSTD_e_end;
        size_t left;
        do {
            ZSTD_outBuffer zo = {zbuf, zcap, 0};
            left = ZSTD_compressStream2(z, &zo, &zi, mode);
            if (ZSTD_isError(left))
                die("zstd", ZSTD_getErrorName(left));
            *zout += zo.pos;
        } while (mode == ZSTD_e_end ? left != 0 : zi.pos < zi.size);
    }
    free(zbuf);
    store_buf_release(&in);
    ZSTD_freeCCtx(z);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* reel's own export (replay_export_*: session record + events, zstd level 3). */
static void export_reel(long session, uint64_t *json, uint64_t *zout)
{
    char sess[32];
    replay_export_opts_t eo = REPLAY_EXPORT_DEFAULT;
    replay_export_t *ex;
    store_buf_t out = STORE_BUF_INIT;
    int done = 0, rc;
    rl_session(sess, sizeof sess, session);
    eo.session = sess;
    eo.session_len = strlen(sess);
    if ((rc = replay_export_new(eng.store, &eo, &ex)))
        die_reel("replay_export_new", rc);
    while (!done) {
        store_buf_clear(&out);
        if ((rc = replay_export_next(ex, &out, &done)))
            die_reel("replay_export_next", rc);
    }
    uint64_t ev, ss;
    replay_export_counts(ex, &ev, &ss, json, zout);
    replay_export_free(ex);
    store_buf_release(&out);
}

static void wl_export(const opts_t *o)
{
    uint64_t json = 0, zout = 0;
    double t0 = now_s();
    if (eng.is_sqlite)
        export_sqlite(o->session, &json, &zout);
    else
        export_reel(o->session, &json, &zout);
    double el = now_s() - t0;
    printf("mb_per_sec\t%.1f\njson_bytes\t%llu\nzstd_bytes\t%llu\n", (double)json / el / 1e6,
           (unsigned long long)json, (unsigned long long)zout);
}

/* Events stored (all sessions), for bytes per event. */
static void wl_size(const opts_t *o)
{
    uint64_t events = 0;
    if (eng.is_sqlite) {
        sqlite3 *db = sq_open(eng.dir, 0);
        sqlite3_stmt *st = sq_prep(db, "SELECT count(*) FROM events");
        sq_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        if (sqlite3_step(st) == SQLITE_ROW)
            events = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
    } else {
        for (long s = SESS_SMALL; s <= SESS_POLL; s++) {
            char sess[32];
            store_read_t r;
            store_session_t rec;
            rl_session(sess, sizeof sess, s);
            if (store_read_begin(eng.store, &r))
                continue;
            if (!store_session_get(&r, sess, strlen(sess), &rec))
                events += rec.event_count;
            store_read_end(&r);
        }
    }
    printf("events\t%llu\n", (unsigned long long)events);
    (void)o;
}

/* Time from open to the first newest-50 answer (the process start is timed by the
 * caller, which runs this mode as a fresh process). */
static void wl_first_read(const opts_t *o)
{
    double t0 = now_s();
    store_buf_t out = STORE_BUF_INIT;
    if (eng.is_sqlite) {
        sqlite3 *db = sq_open(eng.dir, 0);
        sqlite3_stmt *st =
            sq_prep(db, "SELECT body FROM events WHERE session = ?1 ORDER BY seq DESC LIMIT 50");
        newest_sqlite(st, o->session, &out);
        printf("open_to_first_read_ms\t%.2f\nbytes\t%zu\n", (now_s() - t0) * 1e3, out.len);
        fflush(stdout);
        sqlite3_finalize(st);
        sqlite3_close(db);
    } else {
        eng.store = rl_open(eng.dir, 0);
        newest_reel(o->session, &out);
        printf("open_to_first_read_ms\t%.2f\nbytes\t%zu\n", (now_s() - t0) * 1e3, out.len);
        fflush(stdout);
    }
    store_buf_release(&out);
}

/* ---- Main ---- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: sqlite_bench --engine sqlite|reel --dir DIR --events FILE --workload W [options]\n"
        "\n"
        "One workload against SQLite (WAL, synchronous=FULL) or reel's store library, in this\n"
        "process, with the events of FILE (NDJSON, one reel event per line). Prints\n"
        "key<TAB>value lines. Workloads:\n"
        "  ingest      --threads T writers, --batch K events per transaction, --secs S\n"
        "  load        --n N events into --session S in transactions of --batch (--fast: no fsync;\n"
        "              --max-secs M: stop after M seconds)\n"
        "  poll        --threads T readers of 100 events after a random seq of session 3, --secs S\n"
        "  restore     --n N newest-50 reads of --session S, one thread: p50/p99 us, the\n"
        "              first read's us and (reel) the envelope cache's entries and bytes\n"
        "  export      --session S as JSON lines through zstd -3: MB/s of JSON\n"
        "  size        events stored (after a WAL checkpoint for SQLite)\n"
        "  first-read  open + newest-50 of --session S (run as a fresh process to time a restart)\n"
        "Options: --secs S (10) --threads T (64) --batch K (100) --n N --session S --fast\n"
        "Environment (reel): REEL_ZDICT=off (no dictionaries), REEL_CACHE_MB=N (the store's\n"
        "envelope cache budget, default 64; 0 = off: every read checks and renders)\n");
}

static void parse_args(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.secs = 10, .threads = 64, .batch = 100, .n = 1000, .session = SESS_BIG};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--fast")) {
            o->fast = 1;
            continue;
        } else if (!v) {
            usage(stderr);
            exit(2);
        }
        if (!strcmp(a, "--engine")) o->engine = v;
        else if (!strcmp(a, "--dir")) o->dir = v;
        else if (!strcmp(a, "--workload")) o->workload = v;
        else if (!strcmp(a, "--events")) o->events = v;
        else if (!strcmp(a, "--secs")) o->secs = atof(v);
        else if (!strcmp(a, "--threads")) o->threads = atoi(v);
        else if (!strcmp(a, "--batch")) o->batch = (size_t)atol(v);
        else if (!strcmp(a, "--n")) o->n = (size_t)atol(v);
        else if (!strcmp(a, "--session")) o->session = atol(v);
        else if (!strcmp(a, "--max-secs")) o->max_secs = atof(v);
        else {
            fprintf(stderr, "sqlite_bench: unknown option '%s'\n", a);
            usage(stderr);
            exit(2);
        }
        i++;
    }
    if (!o->engine || !o->dir || !o->workload || (strcmp(o->engine, "sqlite") &&
                                                  strcmp(o->engine, "reel"))) {
        usage(stderr);
        exit(2);
    }
}

int main(int argc, char **argv)
{
    opts_t o;
    parse_args(argc, argv, &o);
    eng.is_sqlite = !strcmp(o.engine, "sqlite");
    eng.dir = o.dir;
    if (mkdir(o.dir, 0755) && errno != EEXIST)
        die(o.dir, NULL);
    if (!strcmp(o.workload, "first-read")) {
        wl_first_read(&o);
        _exit(0); /* the restart time is open + first read; closing is not part of it */
    }
    if (o.events)
        pool_load(o.events);
    else if (!strcmp(o.workload, "ingest") || !strcmp(o.workload, "load"))
        die("--events", "required for ingest and load");
    if (eng.is_sqlite)
        sqlite3_close(sq_open(o.dir, 0)); /* creates the schema before threads race to */
    else
        eng.store = rl_open(o.dir, o.fast);

    if (!strcmp(o.workload, "ingest")) wl_ingest(&o);
    else if (!strcmp(o.workload, "load")) wl_load(&o);
    else if (!strcmp(o.workload, "poll")) printf("events_per_sec\t%.0f\n",
                                                 run_threads(&o, poll_worker));
    else if (!strcmp(o.workload, "restore")) wl_restore(&o);
    else if (!strcmp(o.workload, "export")) wl_export(&o);
    else if (!strcmp(o.workload, "size")) wl_size(&o);
    else {
        fprintf(stderr, "sqlite_bench: unknown workload '%s'\n", o.workload);
        return 2;
    }
    store_close(eng.store);
    return 0;
}
