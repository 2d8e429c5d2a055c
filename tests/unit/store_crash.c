/* store_crash.c -- kill -9 at random moments while appending (README.md "Guarantees"): every
 * acknowledged event survives, sequences stay dense, no batch is half there, and the
 * store opens without repair. Modelled on SQLite's crash tests.
 *
 * A forked child opens the store and appends batches of 1..50 events whose event_ids
 * name (round, batch, index, size); after each acknowledged batch it writes the range to
 * a pipe. The parent kills it with SIGKILL after 0..200 ms, then opens the store itself
 * and checks it. LMDB handles never cross fork(): the parent has the store closed while
 * a child runs, and the child opens its own. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

#define ROUNDS 50
#define MAX_BATCH 50
#define MAX_DELAY_MS 200
#define N_SESSIONS 2

static char dir[TU_PATH_MAX];
static store_t *st;

static void setup(void)
{
    tu_watchdog(150);
    tu_tmpdir(dir);
    st = NULL;
}

static void teardown(void)
{
    store_close(st);
    st = NULL;
    tu_rmrf(dir);
}

TestSuite(store_crash, .init = setup, .fini = teardown);

static const char *const sessions[N_SESSIONS] = {"k0", "k1"};

enum { REC_ACK = 1, REC_ERROR = 2 };

/* One record on the pipe; written with one write() (< PIPE_BUF, so never interleaved). */
typedef struct rec {
    uint32_t kind;
    uint32_t round, batch, session, n;
    int32_t err;
    uint64_t first, last;
    char msg[96];
} rec_t;

static void child_report(int fd, const rec_t *r)
{
    ssize_t w;
    do
        w = write(fd, r, sizeof *r);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)sizeof *r)
        _exit(4);
}

static void child_fail(int fd, uint32_t round, int err, const char *what)
{
    rec_t r;
    memset(&r, 0, sizeof r);
    r.kind = REC_ERROR;
    r.round = round;
    r.err = err;
    snprintf(r.msg, sizeof r.msg, "%s: %s: %s", what, reel_strerror(err), store_last_error());
    child_report(fd, &r);
    _exit(3);
}

/* Appends forever (until killed). Never returns. */
static void child_main(uint32_t round, int fd, int no_sync)
{
    store_options_t opt = {.map_size = 1u << 20, .no_sync = no_sync};
    store_t *s = NULL;
    int rc = store_open(dir, &opt, &s);
    if (rc)
        child_fail(fd, round, rc, "store_open");
    uint64_t seed = 0xc0ffee + round;
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    store_buf_t text = STORE_BUF_INIT;
    for (uint32_t b = 0;; b++) {
        uint32_t n = 1 + (uint32_t)(tu_rand(&seed) % MAX_BATCH);
        uint32_t si = (uint32_t)(tu_rand(&seed) % N_SESSIONS);
        store_buf_clear(&text);
        for (uint32_t i = 0; i < n; i++) {
            store_buf_printf(&text, "{\"event_id\":\"r%u.b%u.i%u.n%u\",\"type\":\"t\",\"data\":\"",
                             round, b, i, n);
            size_t len = tu_rand(&seed) % 600;
            for (size_t k = 0; k < len; k++)
                store_buf_putc(&text, "0123456789abcdef"[tu_rand(&seed) & 15]);
            store_buf_puts(&text, "\"}\n");
        }
        if (store_buf_failed(&text))
            child_fail(fd, round, REEL_ENOMEM, "building the batch");
        ingest_batch_t ib;
        ingest_error_t e;
        if ((rc = ingest_batch_init(&ib, sessions[si], 2)))
            child_fail(fd, round, rc, "ingest_batch_init");
        if ((rc = ingest_parse(&ib, (const char *)text.data, text.len, INGEST_NDJSON, &lim, &e)))
            child_fail(fd, round, rc, "ingest_parse");
        if ((rc = ingest_append(s, &ib)))
            child_fail(fd, round, rc, "ingest_append");
        rec_t r;
        memset(&r, 0, sizeof r);
        r.kind = REC_ACK;
        r.round = round;
        r.batch = b;
        r.session = si;
        r.n = n;
        r.first = ib.b.first_sequence;
        r.last = ib.b.last_sequence;
        ingest_batch_release(&ib);
        child_report(fd, &r);
    }
}

/* ---- the parent's view ---- */

typedef struct acks {
    rec_t *v;
    size_t n, cap;
} acks_t;

static void acks_add(acks_t *a, const rec_t *r)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        cr_assert_not_null(a->v);
    }
    a->v[a->n++] = *r;
}

typedef struct start {
    uint64_t sequence;
    uint32_t round, batch, n;
} start_t;

/* Walks one session: sequences dense from 1, every batch whole and consecutive. */
typedef struct walk {
    uint64_t next;       /* sequence expected next */
    uint32_t round, batch, n, idx; /* the batch being walked; idx = events seen of it */
    int in_batch;
    start_t *starts;
    size_t n_starts, cap;
    char why[200];
} walk_t;

static int walk_cb(void *arg, const store_event_view_t *ev)
{
    walk_t *w = arg;
    if (ev->sequence != w->next) {
        snprintf(w->why, sizeof w->why, "sequence %llu where %llu was expected (gap)",
                 (unsigned long long)ev->sequence, (unsigned long long)w->next);
        return REEL_EINTERNAL;
    }
    store_mp_t m = {ev->body, ev->body + ev->body_len};
    store_mp_obj_t o;
    char id[80];
    unsigned r, b, i, n;
    if (store_mp_next(&m, &o) || o.type != STORE_MP_ARRAY || store_mp_next(&m, &o) ||
        o.type != STORE_MP_STR || o.len >= sizeof id) {
        snprintf(w->why, sizeof w->why, "sequence %llu: body is not [event_id, ...]",
                 (unsigned long long)ev->sequence);
        return REEL_EINTERNAL;
    }
    memcpy(id, o.ptr, o.len);
    id[o.len] = '\0';
    if (sscanf(id, "r%u.b%u.i%u.n%u", &r, &b, &i, &n) != 4) {
        snprintf(w->why, sizeof w->why, "sequence %llu: unexpected event_id '%s'",
                 (unsigned long long)ev->sequence, id);
        return REEL_EINTERNAL;
    }
    if (w->in_batch) {
        if (r != w->round || b != w->batch || i != w->idx) {
            snprintf(w->why, sizeof w->why,
                     "sequence %llu: '%s' where event %u of batch r%u.b%u (of %u) belongs: "
                     "half a batch",
                     (unsigned long long)ev->sequence, id, w->idx, w->round, w->batch, w->n);
            return REEL_EINTERNAL;
        }
    } else {
        if (i != 0) {
            snprintf(w->why, sizeof w->why,
                     "sequence %llu: '%s' starts a batch: its first events are missing",
                     (unsigned long long)ev->sequence, id);
            return REEL_EINTERNAL;
        }
        w->in_batch = 1;
        w->round = r;
        w->batch = b;
        w->n = n;
        w->idx = 0;
        if (w->n_starts == w->cap) {
            w->cap = w->cap ? w->cap * 2 : 1024;
            w->starts = realloc(w->starts, w->cap * sizeof *w->starts);
            if (!w->starts)
                return REEL_ENOMEM;
        }
        w->starts[w->n_starts++] = (start_t){ev->sequence, r, b, n};
    }
    if (++w->idx == w->n)
        w->in_batch = 0;
    w->next++;
    return 0;
}

typedef struct feed {
    uint64_t prev, n;
} feed_t;

static int feed_cb(void *arg, const store_event_view_t *ev)
{
    feed_t *f = arg;
    if (ev->position <= f->prev)
        return REEL_EINTERNAL;
    f->prev = ev->position;
    f->n++;
    return 0;
}

static const start_t *find_start(const walk_t *w, uint64_t seq)
{
    size_t lo = 0, hi = w->n_starts;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (w->starts[mid].sequence < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < w->n_starts && w->starts[lo].sequence == seq ? &w->starts[lo] : NULL;
}

/* Opens the store as a restarted server would and checks it against 'acks'. */
static void verify(const acks_t *acks, unsigned round, uint64_t seed, int no_sync)
{
    TU_OK(store_open(dir, &(store_options_t){.map_size = 1u << 20, .no_sync = no_sync}, &st));
    uint64_t total = 0;
    for (int s = 0; s < N_SESSIONS; s++) {
        walk_t w = {.next = 1};
        store_session_t rec;
        store_read_t r;
        TU_OK(store_read_begin(st, &r));
        int rc = store_session_get(&r, sessions[s], 2, &rec);
        store_read_end(&r);
        if (rc == REEL_ESESSION_NOT_FOUND) {
            for (size_t k = 0; k < acks->n; k++)
                cr_assert_neq(acks->v[k].session, (uint32_t)s,
                              "round %u (seed %llu): session %s lost with acknowledged batches",
                              round, (unsigned long long)seed, sessions[s]);
            continue;
        }
        TU_OK(rc);
        for (;;) {
            int more = 0;
            TU_OK(store_read_begin(st, &r));
            rc = store_events_after(&r, sessions[s], 2, w.next - 1, 20000, walk_cb, &w, &more);
            store_read_end(&r);
            cr_assert_eq(rc, 0, "round %u (seed %llu), session %s: %s %s", round,
                         (unsigned long long)seed, sessions[s], reel_strerror(rc), w.why);
            if (!more)
                break;
        }
        uint64_t count = w.next - 1;
        cr_assert_eq(w.in_batch, 0,
                     "round %u (seed %llu), session %s: the last batch r%u.b%u has %u of %u "
                     "events",
                     round, (unsigned long long)seed, sessions[s], w.round, w.batch, w.idx, w.n);
        cr_assert_eq(rec.last_sequence, count,
                     "round %u, session %s: record says last_sequence %llu, %llu events stored",
                     round, sessions[s], (unsigned long long)rec.last_sequence,
                     (unsigned long long)count);
        cr_assert_eq(rec.event_count, count);
        for (size_t k = 0; k < acks->n; k++) {
            const rec_t *a = &acks->v[k];
            if (a->session != (uint32_t)s)
                continue;
            const start_t *b = find_start(&w, a->first);
            cr_assert(b && b->round == a->round && b->batch == a->batch && b->n == a->n &&
                          a->last == a->first + a->n - 1,
                      "round %u (seed %llu), session %s: acknowledged batch r%u.b%u "
                      "(%llu..%llu, %u events) is not in the store",
                      round, (unsigned long long)seed, sessions[s], a->round, a->batch,
                      (unsigned long long)a->first, (unsigned long long)a->last, a->n);
        }
        total += count;
        free(w.starts);
    }
    /* the all-sessions feed holds exactly the sessions' events, positions increasing */
    feed_t f = {0, 0};
    for (;;) {
        store_read_t r;
        int more = 0;
        TU_OK(store_read_begin(st, &r));
        int rc = store_feed_after(&r, f.prev, 20000, feed_cb, &f, &more);
        store_read_end(&r);
        cr_assert_eq(rc, 0, "round %u: feed: %s (positions not increasing?)", round,
                     reel_strerror(rc));
        if (!more)
            break;
    }
    cr_assert_eq(f.n, total, "round %u: the feed has %llu events, the sessions %llu", round,
                 (unsigned long long)f.n, (unsigned long long)total);
    store_read_t r;
    uint64_t tail = 0;
    TU_OK(store_read_begin(st, &r));
    int rc = store_tail_position(&r, &tail);
    store_read_end(&r);
    TU_OK(rc);
    cr_assert_eq(tail, f.prev, "round %u: tail position %llu, last feed position %llu", round,
                 (unsigned long long)tail, (unsigned long long)f.prev);
    store_close(st);
    st = NULL;
}

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Reads whole records from 'fd' into 'buf' (keeping a partial one for later). */
static int read_records(int fd, char *buf, size_t *have, acks_t *acks, rec_t *error)
{
    ssize_t got = read(fd, buf + *have, 64 * sizeof(rec_t) - *have);
    if (got <= 0)
        return (int)got;
    *have += (size_t)got;
    size_t off = 0;
    for (; *have - off >= sizeof(rec_t); off += sizeof(rec_t)) {
        rec_t r;
        memcpy(&r, buf + off, sizeof r);
        if (r.kind == REC_ACK)
            acks_add(acks, &r);
        else
            *error = r;
    }
    memmove(buf, buf + off, *have - off);
    *have -= off;
    return 1;
}

static void crash_rounds(int rounds, unsigned max_delay_ms, int no_sync)
{
    uint64_t seed = (uint64_t)time(NULL);
    uint64_t rng = seed;
    acks_t acks = {0};
    size_t acked_rounds = 0;
    for (unsigned round = 0; round < (unsigned)rounds; round++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        pid_t pid = fork();
        cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
        if (pid == 0) {
            close(p[0]);
            child_main(round, p[1], no_sync);
            _exit(5);
        }
        close(p[1]);
        uint64_t deadline = now_ms() + tu_rand(&rng) % (max_delay_ms + 1);
        char buf[64 * sizeof(rec_t)];
        size_t have = 0, before = acks.n;
        rec_t error;
        memset(&error, 0, sizeof error);
        for (;;) {
            uint64_t now = now_ms();
            if (now >= deadline)
                break;
            struct pollfd pfd = {.fd = p[0], .events = POLLIN};
            int pr = poll(&pfd, 1, (int)(deadline - now));
            if (pr > 0 && read_records(p[0], buf, &have, &acks, &error) <= 0)
                break; /* the child ended by itself */
        }
        kill(pid, SIGKILL);
        while (read_records(p[0], buf, &have, &acks, &error) > 0)
            ;
        close(p[0]);
        int status = 0;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(error.kind == 0, "round %u: child failed: %s", round, error.msg);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "round %u: child ended by itself (status 0x%x)", round, status);
        if (acks.n > before)
            acked_rounds++;
        verify(&acks, round, seed, no_sync);
    }
    cr_assert_gt(acks.n, 0, "no batch was ever acknowledged: the test tested nothing");
    cr_log_info("store_crash: %zu acknowledged batches over %d rounds (%zu rounds with acks), "
                "sync %s, seed %llu",
                acks.n, rounds, acked_rounds, no_sync ? "none" : "full",
                (unsigned long long)seed);
    free(acks.v);
}

Test(store_crash, kill_9_while_appending_loses_no_acknowledged_batch_and_tears_none)
{
    crash_rounds(ROUNDS, MAX_DELAY_MS, 0);
}

/* --sync=none only gives up power-loss durability: a killed process loses nothing that
 * was acknowledged, because committed pages are in the OS page cache. */
Test(store_crash, kill_9_with_sync_none_loses_no_acknowledged_batch)
{
    crash_rounds(25, 60, 1);
}
