/* store_mapgrow.c -- the LMDB map grows by itself (README.md "Guarantees"): a 1 MiB map takes ~200 MiB
 * of events, and everything reads back after a reopen. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

#define BATCHES 200
#define PER_BATCH 1000
#define HEX_WORDS 62 /* 62 x 16 hex digits: ~1 KiB of JSON per event */

static char dir[TU_PATH_MAX];
static store_t *st;

static void setup(void)
{
    tu_watchdog(180);
    tu_tmpdir(dir);
    st = NULL;
}

static void teardown(void)
{
    store_close(st);
    st = NULL;
    tu_rmrf(dir);
}

TestSuite(store_mapgrow, .init = setup, .fini = teardown);

/* The data of event 'n' (1-based, the sequence it gets): random hex, so zstd cannot
 * shrink it much, and regenerable from 'n' to check what is read back. */
static void event_data(store_buf_t *b, uint64_t n)
{
    uint64_t seed = n * 0x9e3779b97f4a7c15ull;
    store_buf_printf(b, "{\"n\":%llu,\"h\":\"", (unsigned long long)n);
    for (int i = 0; i < HEX_WORDS; i++)
        store_buf_printf(b, "%016llx", (unsigned long long)tu_rand(&seed));
    store_buf_puts(b, "\"}");
}

static void append_batches(uint64_t first_batch, uint64_t n_batches)
{
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    store_buf_t text = STORE_BUF_INIT;
    for (uint64_t bno = first_batch; bno < first_batch + n_batches; bno++) {
        store_buf_clear(&text);
        for (uint64_t i = 0; i < PER_BATCH; i++) {
            uint64_t n = bno * PER_BATCH + i + 1;
            store_buf_printf(&text, "{\"event_id\":\"m%llu\",\"type\":\"bulk\",\"data\":",
                             (unsigned long long)n);
            event_data(&text, n);
            store_buf_puts(&text, "}\n");
        }
        cr_assert(!store_buf_failed(&text));
        ingest_batch_t ib;
        ingest_error_t e;
        TU_OK(ingest_batch_init(&ib, "big", 3));
        int rc = ingest_parse(&ib, (const char *)text.data, text.len, INGEST_NDJSON, &lim, &e);
        cr_assert_eq(rc, 0, "batch %llu: %s (%s)", (unsigned long long)bno, reel_strerror(rc),
                     e.text);
        rc = ingest_append(st, &ib);
        cr_assert_eq(rc, 0, "batch %llu: append: %s: %s", (unsigned long long)bno,
                     reel_strerror(rc), store_last_error());
        cr_assert_eq(ib.b.first_sequence, bno * PER_BATCH + 1);
        cr_assert_eq(ib.b.last_sequence, (bno + 1) * PER_BATCH);
        ingest_batch_release(&ib);
    }
    store_buf_release(&text);
}

typedef struct check {
    uint64_t next; /* sequence expected next */
    uint64_t last_pos;
    uint64_t stored_bytes;
    store_buf_t out, want;
    char why[200];
} check_t;

static int check_cb(void *arg, const store_event_view_t *ev)
{
    check_t *c = arg;
    if (ev->sequence != c->next) {
        snprintf(c->why, sizeof c->why, "sequence %llu where %llu was expected",
                 (unsigned long long)ev->sequence, (unsigned long long)c->next);
        return REEL_EINTERNAL;
    }
    if (ev->position <= c->last_pos) {
        snprintf(c->why, sizeof c->why, "sequence %llu: position %llu not increasing",
                 (unsigned long long)ev->sequence, (unsigned long long)ev->position);
        return REEL_EINTERNAL;
    }
    c->last_pos = ev->position;
    c->stored_bytes += ev->stored_len;
    store_buf_clear(&c->out);
    store_buf_clear(&c->want);
    int rc = replay_write_event(&c->out, ev, 0);
    if (rc) {
        snprintf(c->why, sizeof c->why, "sequence %llu: replay_write_event: %s",
                 (unsigned long long)ev->sequence, reel_strerror(rc));
        return rc;
    }
    event_data(&c->want, ev->sequence);
    size_t dl = 0;
    const char *d = tu_json_member((const char *)c->out.data, c->out.len, "data", &dl);
    if (!d || dl != c->want.len || memcmp(d, c->want.data, dl)) {
        snprintf(c->why, sizeof c->why, "sequence %llu: data differs: %.120s",
                 (unsigned long long)ev->sequence, d ? d : "(none)");
        return REEL_EINTERNAL;
    }
    c->next++;
    return 0;
}

static void check_all(uint64_t count)
{
    check_t c = {.next = 1, .out = STORE_BUF_INIT, .want = STORE_BUF_INIT};
    for (;;) {
        store_read_t r;
        int more = 0;
        TU_OK(store_read_begin(st, &r));
        int rc = store_events_after(&r, "big", 3, c.next - 1, 5000, check_cb, &c, &more);
        store_read_end(&r);
        cr_assert_eq(rc, 0, "%s: %s", reel_strerror(rc), c.why);
        if (!more)
            break;
    }
    cr_assert_eq(c.next - 1, count, "read %llu events, want %llu",
                 (unsigned long long)(c.next - 1), (unsigned long long)count);
    store_session_t rec;
    TU_OK(tu_session(st, "big", &rec));
    cr_assert_eq(rec.last_sequence, count);
    cr_assert_eq(rec.event_count, count);
    cr_assert_eq(rec.bytes, c.stored_bytes, "session bytes %llu, sum of stored_len %llu",
                 (unsigned long long)rec.bytes, (unsigned long long)c.stored_bytes);
    store_buf_release(&c.out);
    store_buf_release(&c.want);
}

Test(store_mapgrow, one_mebibyte_map_grows_to_hold_200_mebibytes)
{
    st = tu_open(dir, 1u << 20, 0);
    append_batches(0, BATCHES);
    store_stats_t s;
    store_get_stats(st, &s);
    cr_assert_gt(s.map_grows, 0, "the map never grew");
    cr_assert_gt(s.map_size, 64u << 20, "map size %llu after ~200 MiB of events",
                 (unsigned long long)s.map_size);
    cr_assert_geq(s.map_size, s.used_bytes);
    cr_assert_eq(s.events, (uint64_t)BATCHES * PER_BATCH);
    cr_assert_eq(s.failed, 0);
    check_all((uint64_t)BATCHES * PER_BATCH);
    store_close(st);

    /* reopen with the same small map size: the existing file decides */
    st = tu_open(dir, 1u << 20, 0);
    check_all((uint64_t)BATCHES * PER_BATCH);
    append_batches(BATCHES, 5);
    check_all((uint64_t)(BATCHES + 5) * PER_BATCH);
}

/* A read open on another thread while the committer must grow the map: the append
 * completes once the read ends (it neither fails nor deadlocks). */
typedef struct holder {
    atomic_int started, release;
    int err;
} holder_t;

static void *hold_read(void *arg)
{
    holder_t *h = arg;
    store_read_t r;
    h->err = store_read_begin(st, &r);
    atomic_store(&h->started, 1);
    if (h->err)
        return NULL;
    while (!atomic_load(&h->release))
        usleep(1000);
    store_read_end(&r);
    return NULL;
}

typedef struct grower {
    atomic_int done;
    int err;
} grower_t;

static void *grow(void *arg)
{
    grower_t *g = arg;
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    store_buf_t text = STORE_BUF_INIT;
    for (uint64_t n = 1; n <= 8000; n++) { /* ~8 MiB: more than the 1 MiB map */
        store_buf_puts(&text, "{\"type\":\"bulk\",\"data\":");
        event_data(&text, n);
        store_buf_puts(&text, "}\n");
    }
    ingest_batch_t ib;
    g->err = ingest_batch_init(&ib, "big", 3);
    if (!g->err)
        g->err = ingest_parse(&ib, (const char *)text.data, text.len, INGEST_NDJSON, &lim, NULL);
    if (!g->err)
        g->err = ingest_append(st, &ib);
    ingest_batch_release(&ib);
    store_buf_release(&text);
    atomic_store(&g->done, 1);
    return NULL;
}

Test(store_mapgrow, growth_waits_for_reads_open_on_other_threads)
{
    tu_watchdog(60);
    st = tu_open(dir, 1u << 20, 0);
    TU_OK(tu_append(st, "big", "{\"type\":\"first\"}", INGEST_JSON, -1, NULL, NULL));
    holder_t h = {0};
    grower_t g = {0};
    pthread_t ht, gt;
    cr_assert_eq(pthread_create(&ht, NULL, hold_read, &h), 0);
    while (!atomic_load(&h.started))
        usleep(1000);
    cr_assert_eq(h.err, 0);
    cr_assert_eq(pthread_create(&gt, NULL, grow, &g), 0);
    usleep(300000);
    atomic_store(&h.release, 1);
    pthread_join(ht, NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        usleep(2000);
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while (!atomic_load(&g.done) && t1.tv_sec - t0.tv_sec < 20);
    cr_assert(atomic_load(&g.done), "the append did not complete within 20 s of the read ending");
    pthread_join(gt, NULL);
    cr_assert_eq(g.err, 0, "append while a read was open: %s", reel_strerror(g.err));
    store_session_t rec;
    TU_OK(tu_session(st, "big", &rec));
    cr_assert_eq(rec.last_sequence, 8001);
}

/* store_last_txn() and store_get_stats() (the server's watcher and /metrics) while the map
 * grows again and again: before they took the resize lock, mdb_env_info() could read the
 * meta pages through a map being remapped (a SIGSEGV seen under load). */
typedef struct poller {
    atomic_int stop;
    uint64_t calls;
} poller_t;

static void *poll_info(void *arg)
{
    poller_t *p = arg;
    while (!atomic_load(&p->stop)) {
        store_stats_t s;
        (void)store_last_txn(st);
        store_get_stats(st, &s);
        p->calls++;
    }
    return NULL;
}

Test(store_mapgrow, env_info_while_the_map_grows)
{
    st = tu_open(dir, 1u << 20, 0);
    poller_t p[2] = {0};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, poll_info, &p[i]), 0);
    append_batches(0, 40); /* ~40 MiB from a 1 MiB map: several growths */
    for (int i = 0; i < 2; i++) {
        atomic_store(&p[i].stop, 1);
        pthread_join(t[i], NULL);
        cr_assert_gt(p[i].calls, 0);
    }
    store_stats_t s;
    store_get_stats(st, &s);
    cr_assert_gt(s.map_grows, 2, "the map grew %llu times", (unsigned long long)s.map_grows);
    check_all(40ull * PER_BATCH);
}
