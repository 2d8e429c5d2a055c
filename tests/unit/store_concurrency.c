/* store_concurrency.c -- many writers, one committer: sequences dense and unique per
 * session, positions strictly increasing, nothing lost (docs/HTTP.md "Append", docs/DESIGN.md "Write path"). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

#define N_THREADS 8
#define N_APPENDS 500 /* per thread */
#define N_SESSIONS 4
#define MAX_PER_BATCH 3

static char dir[TU_PATH_MAX];
static store_t *st;

static void setup(void)
{
    tu_watchdog(120);
    tu_tmpdir(dir);
    st = tu_open(dir, 4u << 20, 0);
}

static void teardown(void)
{
    store_close(st);
    st = NULL;
    tu_rmrf(dir);
}

TestSuite(store_concurrency, .init = setup, .fini = teardown);

static const char *const sessions[N_SESSIONS] = {"c0", "c1", "c2", "c3"};

typedef struct ack {
    int session;
    int thread, append, index; /* the event_id is "t<thread>-<append>-<index>" */
    uint64_t sequence, position;
} ack_t;

typedef struct writer {
    pthread_t tid;
    int id;
    ack_t *acks;
    size_t n_acks;
    int err;           /* first error, 0 if none */
    char why[200];     /* what went wrong, for the report on the test thread */
} writer_t;

static struct {
    atomic_ullong events, batches, last_tail;
    atomic_int hook_bad;
} hook;

static void on_commit(void *arg, const store_commit_t *c)
{
    (void)arg;
    atomic_fetch_add(&hook.events, c->n_events);
    atomic_fetch_add(&hook.batches, c->n_batches);
    unsigned long long prev = atomic_load(&hook.last_tail);
    if (c->n_events && c->tail_position <= prev)
        atomic_store(&hook.hook_bad, 1);
    atomic_store(&hook.last_tail, c->tail_position);
}

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    uint64_t seed = 1000 + (uint64_t)w->id;
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    for (int i = 0; i < N_APPENDS && !w->err; i++) {
        int s = (int)(tu_rand(&seed) % N_SESSIONS);
        int n = 1 + (int)(tu_rand(&seed) % MAX_PER_BATCH);
        store_buf_t text = STORE_BUF_INIT;
        for (int k = 0; k < n; k++)
            store_buf_printf(&text,
                             "{\"event_id\":\"t%d-%d-%d\",\"type\":\"t\",\"data\":{\"w\":%d}}\n",
                             w->id, i, k, w->id);
        ingest_batch_t ib;
        ingest_error_t e;
        int rc = ingest_batch_init(&ib, sessions[s], strlen(sessions[s]));
        if (!rc)
            rc = ingest_parse(&ib, (const char *)text.data, text.len, INGEST_NDJSON, &lim, &e);
        if (!rc)
            rc = ingest_append(st, &ib);
        if (rc) {
            w->err = rc;
            snprintf(w->why, sizeof w->why, "thread %d append %d: %s", w->id, i,
                     reel_strerror(rc));
        } else if (ib.b.duplicates || ib.b.last_sequence != ib.b.first_sequence + (uint64_t)n - 1) {
            w->err = REEL_EINTERNAL;
            snprintf(w->why, sizeof w->why,
                     "thread %d append %d: %d events got %llu..%llu, %zu duplicates", w->id, i, n,
                     (unsigned long long)ib.b.first_sequence,
                     (unsigned long long)ib.b.last_sequence, ib.b.duplicates);
        } else {
            for (int k = 0; k < n; k++) {
                ack_t *a = &w->acks[w->n_acks++];
                a->session = s;
                a->thread = w->id;
                a->append = i;
                a->index = k;
                a->sequence = ib.events[k].sequence;
                a->position = ib.events[k].position;
                if (a->sequence != ib.b.first_sequence + (uint64_t)k) {
                    w->err = REEL_EINTERNAL;
                    snprintf(w->why, sizeof w->why,
                             "thread %d append %d: event %d has sequence %llu, batch starts "
                             "at %llu",
                             w->id, i, k, (unsigned long long)a->sequence,
                             (unsigned long long)ib.b.first_sequence);
                }
            }
        }
        ingest_batch_release(&ib);
        store_buf_release(&text);
    }
    return NULL;
}

typedef struct reader {
    pthread_t tid;
    atomic_int *stop;
    long snapshots;
    int err;
    char why[200];
} reader_t;

typedef struct seqs {
    uint64_t v[8];
    size_t n;
} seqs_t;

static int collect_seq(void *arg, const store_event_view_t *ev)
{
    seqs_t *s = arg;
    if (s->n < 8)
        s->v[s->n++] = ev->sequence;
    return 0;
}

static int collect_pos(void *arg, const store_event_view_t *ev)
{
    uint64_t *prev = arg;
    if (ev->position <= *prev)
        return REEL_EINTERNAL;
    *prev = ev->position;
    return 0;
}

/* Every snapshot taken while writers run must be consistent on its own. */
static void *reader_main(void *arg)
{
    reader_t *rd = arg;
    while (!atomic_load(rd->stop) && !rd->err) {
        store_read_t r;
        int rc = store_read_begin(st, &r);
        if (rc) {
            rd->err = rc;
            snprintf(rd->why, sizeof rd->why, "store_read_begin: %s", reel_strerror(rc));
            break;
        }
        for (int s = 0; s < N_SESSIONS && !rd->err; s++) {
            store_session_t rec;
            rc = store_session_get(&r, sessions[s], 2, &rec);
            if (rc == REEL_ESESSION_NOT_FOUND)
                continue;
            seqs_t q = {{0}, 0};
            if (!rc)
                rc = store_events_newest(&r, sessions[s], 2, 3, collect_seq, &q);
            if (rc) {
                rd->err = rc;
                snprintf(rd->why, sizeof rd->why, "%s: %s", sessions[s], reel_strerror(rc));
                break;
            }
            uint64_t last = rec.last_sequence;
            size_t want = last < 3 ? (size_t)last : 3;
            int bad = rec.event_count != last || q.n != want;
            for (size_t i = 0; !bad && i < q.n; i++)
                bad = q.v[i] != last - want + 1 + i;
            if (bad) {
                rd->err = REEL_EINTERNAL;
                snprintf(rd->why, sizeof rd->why,
                         "snapshot of %s: last_sequence %llu, event_count %llu, newest gave %zu "
                         "events ending at %llu",
                         sessions[s], (unsigned long long)last,
                         (unsigned long long)rec.event_count, q.n,
                         q.n ? (unsigned long long)q.v[q.n - 1] : 0ull);
            }
        }
        uint64_t tail = 0, prev;
        if (!rd->err && !(rc = store_tail_position(&r, &tail))) {
            prev = tail > 50 ? tail - 50 : 0;
            int more = 0;
            rc = store_feed_after(&r, prev, 100, collect_pos, &prev, &more);
            if (!rc && (prev != tail || more))
                rc = REEL_EINTERNAL;
        }
        if (!rd->err && rc) {
            rd->err = rc;
            snprintf(rd->why, sizeof rd->why, "feed snapshot up to tail %llu: %s",
                     (unsigned long long)tail, reel_strerror(rc));
        }
        store_read_end(&r);
        rd->snapshots++;
    }
    return NULL;
}

static int by_session_seq(const void *a, const void *b)
{
    const ack_t *x = a, *y = b;
    if (x->session != y->session)
        return x->session < y->session ? -1 : 1;
    return x->sequence < y->sequence ? -1 : x->sequence > y->sequence;
}

static int by_position(const void *a, const void *b)
{
    const ack_t *x = a, *y = b;
    return x->position < y->position ? -1 : x->position > y->position;
}

Test(store_concurrency, eight_writers_four_sessions_keep_sequences_dense_and_nothing_lost)
{
    store_set_commit_hook(st, on_commit, NULL);
    writer_t w[N_THREADS];
    atomic_int stop = 0;
    reader_t rd = {.stop = &stop};
    memset(w, 0, sizeof w);
    for (int t = 0; t < N_THREADS; t++) {
        w[t].id = t;
        w[t].acks = calloc(N_APPENDS * MAX_PER_BATCH, sizeof(ack_t));
        cr_assert_not_null(w[t].acks);
    }
    cr_assert_eq(pthread_create(&rd.tid, NULL, reader_main, &rd), 0);
    for (int t = 0; t < N_THREADS; t++)
        cr_assert_eq(pthread_create(&w[t].tid, NULL, writer_main, &w[t]), 0);
    for (int t = 0; t < N_THREADS; t++)
        pthread_join(w[t].tid, NULL);
    atomic_store(&stop, 1);
    pthread_join(rd.tid, NULL);

    size_t total = 0;
    for (int t = 0; t < N_THREADS; t++) {
        cr_assert_eq(w[t].err, 0, "%s", w[t].why);
        total += w[t].n_acks;
    }
    cr_assert_eq(rd.err, 0, "reader: %s", rd.why);
    cr_assert_gt(rd.snapshots, 0);

    ack_t *all = calloc(total, sizeof *all);
    size_t n = 0;
    for (int t = 0; t < N_THREADS; t++) {
        memcpy(all + n, w[t].acks, w[t].n_acks * sizeof *all);
        n += w[t].n_acks;
        free(w[t].acks);
    }

    /* acknowledged sequences: 1..N per session, each once */
    qsort(all, n, sizeof *all, by_session_seq);
    size_t per[N_SESSIONS] = {0};
    for (size_t i = 0; i < n; i++) {
        per[all[i].session]++;
        cr_assert_eq(all[i].sequence, per[all[i].session],
                     "session %s: acknowledged sequence %llu where %zu was expected (gap or "
                     "repeat)",
                     sessions[all[i].session], (unsigned long long)all[i].sequence,
                     per[all[i].session]);
    }

    /* what is stored matches what was acknowledged */
    size_t i = 0;
    for (int s = 0; s < N_SESSIONS; s++) {
        tu_events_t ev = {0};
        tu_read_session(st, sessions[s], &ev);
        cr_assert_eq(ev.n, per[s], "session %s: %zu events stored, %zu acknowledged",
                     sessions[s], ev.n, per[s]);
        store_session_t rec;
        TU_OK(tu_session(st, sessions[s], &rec));
        cr_assert_eq(rec.last_sequence, per[s]);
        cr_assert_eq(rec.event_count, per[s]);
        for (size_t k = 0; k < ev.n; k++, i++) {
            char id[64];
            snprintf(id, sizeof id, "t%d-%d-%d", all[i].thread, all[i].append, all[i].index);
            cr_assert_eq(ev.v[k].sequence, k + 1);
            cr_assert_str_eq(ev.v[k].event_id, id, "session %s sequence %zu", sessions[s], k + 1);
            cr_assert_eq(ev.v[k].position, all[i].position, "session %s sequence %zu position",
                         sessions[s], k + 1);
        }
        tu_events_free(&ev);
    }

    /* the all-sessions feed: every acknowledged event once, positions strictly increasing */
    qsort(all, n, sizeof *all, by_position);
    tu_events_t feed = {0};
    tu_read_feed(st, &feed);
    cr_assert_eq(feed.n, n, "feed has %zu events, %zu acknowledged", feed.n, n);
    for (size_t k = 0; k < n; k++) {
        if (k)
            cr_assert_gt(feed.v[k].position, feed.v[k - 1].position,
                         "feed positions not increasing at %zu", k);
        cr_assert_eq(feed.v[k].position, all[k].position);
        cr_assert_str_eq(feed.v[k].session, sessions[all[k].session]);
        cr_assert_eq(feed.v[k].sequence, all[k].sequence);
    }
    store_read_t r;
    uint64_t tail;
    TU_OK(store_read_begin(st, &r));
    int rc = store_tail_position(&r, &tail);
    store_read_end(&r);
    TU_OK(rc);
    cr_assert_eq(tail, all[n - 1].position);
    tu_events_free(&feed);

    store_stats_t stats;
    store_get_stats(st, &stats);
    cr_assert_eq(stats.events, n, "stats.events %llu, acknowledged %zu",
                 (unsigned long long)stats.events, n);
    cr_assert_eq(stats.batches, (uint64_t)N_THREADS * N_APPENDS);
    cr_assert_eq(stats.batch_errors, 0);
    cr_assert_eq(atomic_load(&hook.events), n, "commit hook saw %llu events",
                 (unsigned long long)atomic_load(&hook.events));
    cr_assert_eq(atomic_load(&hook.batches), (unsigned long long)N_THREADS * N_APPENDS);
    cr_assert_eq(atomic_load(&hook.hook_bad), 0, "commit hook tail_position went backwards");
    free(all);
}

/* Writers racing to append the same event_ids: each id is stored once and everyone is
 * told the same sequence for it. */
#define DUP_IDS 200
#define DUP_BATCH 10

typedef struct dup_writer {
    pthread_t tid;
    int id;
    uint64_t seq_of[DUP_IDS];
    int err;
    char why[200];
} dup_writer_t;

static void *dup_main(void *arg)
{
    dup_writer_t *w = arg;
    int order[DUP_IDS];
    uint64_t seed = 77 + (uint64_t)w->id;
    for (int i = 0; i < DUP_IDS; i++)
        order[i] = i;
    for (int i = DUP_IDS - 1; i > 0; i--) {
        int j = (int)(tu_rand(&seed) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    for (int i = 0; i < DUP_IDS && !w->err; i += DUP_BATCH) {
        store_buf_t text = STORE_BUF_INIT;
        for (int k = 0; k < DUP_BATCH; k++)
            store_buf_printf(&text, "{\"event_id\":\"id%d\",\"type\":\"t\",\"data\":%d}\n",
                             order[i + k], order[i + k]);
        ingest_batch_t ib;
        int rc = ingest_batch_init(&ib, "dup", 3);
        if (!rc)
            rc = ingest_parse(&ib, (const char *)text.data, text.len, INGEST_NDJSON, &lim, NULL);
        if (!rc)
            rc = ingest_append(st, &ib);
        if (rc) {
            w->err = rc;
            snprintf(w->why, sizeof w->why, "thread %d: %s", w->id, reel_strerror(rc));
        } else {
            for (int k = 0; k < DUP_BATCH; k++)
                w->seq_of[order[i + k]] = ib.events[k].sequence;
        }
        ingest_batch_release(&ib);
        store_buf_release(&text);
    }
    return NULL;
}

Test(store_concurrency, racing_writers_of_the_same_event_ids_store_each_once)
{
    dup_writer_t w[N_THREADS];
    memset(w, 0, sizeof w);
    for (int t = 0; t < N_THREADS; t++) {
        w[t].id = t;
        cr_assert_eq(pthread_create(&w[t].tid, NULL, dup_main, &w[t]), 0);
    }
    for (int t = 0; t < N_THREADS; t++)
        pthread_join(w[t].tid, NULL);
    for (int t = 0; t < N_THREADS; t++)
        cr_assert_eq(w[t].err, 0, "%s", w[t].why);

    tu_events_t ev = {0};
    tu_read_session(st, "dup", &ev);
    cr_assert_eq(ev.n, DUP_IDS, "%zu events stored for %d distinct ids", ev.n, DUP_IDS);
    for (size_t k = 0; k < ev.n; k++) {
        cr_assert_eq(ev.v[k].sequence, k + 1);
        int id = atoi(ev.v[k].event_id + 2);
        char want[16];
        snprintf(want, sizeof want, "%d", id);
        cr_assert_str_eq(ev.v[k].data, want, "event %s has the data of another", ev.v[k].event_id);
        for (int t = 0; t < N_THREADS; t++)
            cr_assert_eq(w[t].seq_of[id], ev.v[k].sequence,
                         "thread %d was told sequence %llu for %s, stored at %llu", t,
                         (unsigned long long)w[t].seq_of[id], ev.v[k].event_id,
                         (unsigned long long)ev.v[k].sequence);
    }
    tu_events_free(&ev);
    store_stats_t stats;
    store_get_stats(st, &stats);
    cr_assert_eq(stats.events, DUP_IDS);
    cr_assert_eq(stats.duplicates, (uint64_t)(N_THREADS - 1) * DUP_IDS);
}

/* Asynchronous submits from one thread complete once each and are group-committed. */
#define ASYNC_BATCHES 2000

static atomic_int async_done;
static atomic_int async_bad;

static void async_cb(store_batch_t *b, void *arg)
{
    (void)arg;
    if (b->err || b->first_sequence == 0)
        atomic_store(&async_bad, 1);
    atomic_fetch_add(&async_done, 1);
}

Test(store_concurrency, async_submits_complete_once_each_and_are_group_committed)
{
    ingest_batch_t *ib = calloc(ASYNC_BATCHES, sizeof *ib);
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    cr_assert_not_null(ib);
    for (int i = 0; i < ASYNC_BATCHES; i++) {
        char text[128];
        int len = snprintf(text, sizeof text, "{\"event_id\":\"a%d\",\"type\":\"t\",\"data\":%d}",
                           i, i);
        const char *s = sessions[i % N_SESSIONS];
        TU_OK(ingest_batch_init(&ib[i], s, strlen(s)));
        TU_OK(ingest_parse(&ib[i], text, (size_t)len, INGEST_JSON, &lim, NULL));
        TU_OK(ingest_submit(st, &ib[i], async_cb, NULL));
    }
    for (int spins = 0; atomic_load(&async_done) < ASYNC_BATCHES && spins < 30000; spins++)
        usleep(1000);
    cr_assert_eq(atomic_load(&async_done), ASYNC_BATCHES, "%d of %d completions",
                 atomic_load(&async_done), ASYNC_BATCHES);
    cr_assert_eq(atomic_load(&async_bad), 0, "a batch completed with an error");
    /* completions are not called twice: give a late extra call the chance to show */
    usleep(20000);
    cr_assert_eq(atomic_load(&async_done), ASYNC_BATCHES);

    uint64_t next[N_SESSIONS] = {0};
    for (int i = 0; i < ASYNC_BATCHES; i++) {
        int s = i % N_SESSIONS;
        /* one submitter: its batches are committed in submission order */
        cr_assert_eq(ib[i].b.first_sequence, ++next[s], "batch %d got sequence %llu", i,
                     (unsigned long long)ib[i].b.first_sequence);
        if (i)
            cr_assert_gt(ib[i].b.position, ib[i - 1].b.position);
        ingest_batch_release(&ib[i]);
    }
    free(ib);
    store_stats_t stats;
    store_get_stats(st, &stats);
    cr_assert_eq(stats.batches, ASYNC_BATCHES);
    cr_assert_lt(stats.commits, ASYNC_BATCHES, "no group commit: %llu commits for %d batches",
                 (unsigned long long)stats.commits, ASYNC_BATCHES);
}
