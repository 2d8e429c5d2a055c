/* store_multiprocess.c -- two processes appending to one data directory (docs/DESIGN.md "Write path": appends
 * by another process on the same directory): the sequences and positions stay dense and
 * unique, and both processes' map growth is adopted by the other. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

#define N_PROCS 2
#define N_BATCHES 300
#define MAX_BATCH 5

static char dir[TU_PATH_MAX];

static void setup(void)
{
    tu_watchdog(120);
    tu_tmpdir(dir);
}

static void teardown(void) { tu_rmrf(dir); }

TestSuite(store_multiprocess, .init = setup, .fini = teardown);

static const char *const sessions[] = {"m0", "m1"};

typedef struct ack {
    int32_t err; /* 0, or the child's error */
    uint32_t proc, batch, session, n;
    uint64_t first, last;
} ack_t;

static void child_main(uint32_t proc, int fd)
{
    store_options_t opt = {.map_size = 1u << 20};
    store_t *s = NULL;
    ack_t a;
    memset(&a, 0, sizeof a);
    a.proc = proc;
    if ((a.err = store_open(dir, &opt, &s))) {
        (void)!write(fd, &a, sizeof a);
        _exit(3);
    }
    uint64_t seed = 99 + proc;
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    store_buf_t text = STORE_BUF_INIT;
    for (uint32_t b = 0; b < N_BATCHES; b++) {
        uint32_t n = 1 + (uint32_t)(tu_rand(&seed) % MAX_BATCH);
        uint32_t si = (uint32_t)(tu_rand(&seed) % 2);
        store_buf_clear(&text);
        for (uint32_t i = 0; i < n; i++) {
            store_buf_printf(&text, "{\"event_id\":\"p%u.b%u.i%u\",\"type\":\"t\",\"data\":\"", proc,
                             b, i);
            size_t len = tu_rand(&seed) % 2000; /* enough to grow a 1 MiB map */
            for (size_t k = 0; k < len; k++)
                store_buf_putc(&text, "0123456789abcdef"[tu_rand(&seed) & 15]);
            store_buf_puts(&text, "\"}\n");
        }
        ingest_batch_t ib;
        a.err = ingest_batch_init(&ib, sessions[si], 2);
        if (!a.err)
            a.err = ingest_parse(&ib, (const char *)text.data, text.len, INGEST_NDJSON, &lim, NULL);
        if (!a.err)
            a.err = ingest_append(s, &ib);
        a.batch = b;
        a.session = si;
        a.n = n;
        a.first = ib.b.first_sequence;
        a.last = ib.b.last_sequence;
        ingest_batch_release(&ib);
        if (write(fd, &a, sizeof a) != (ssize_t)sizeof a || a.err)
            _exit(4);
    }
    store_close(s);
    _exit(0);
}

Test(store_multiprocess, two_processes_appending_keep_sequences_dense_and_unique)
{
    int fds[N_PROCS];
    pid_t pids[N_PROCS];
    for (uint32_t p = 0; p < N_PROCS; p++) {
        int pp[2];
        cr_assert_eq(pipe(pp), 0);
        pids[p] = fork();
        cr_assert_neq(pids[p], -1, "fork: %s", strerror(errno));
        if (pids[p] == 0) {
            close(pp[0]);
            child_main(p, pp[1]);
        }
        close(pp[1]);
        fds[p] = pp[0];
    }
    ack_t *acks = calloc(N_PROCS * N_BATCHES, sizeof *acks);
    size_t n_acks = 0;
    for (int p = 0; p < N_PROCS; p++) {
        ack_t a;
        ssize_t got;
        /* records are written whole (< PIPE_BUF) */
        while ((got = read(fds[p], &a, sizeof a)) == (ssize_t)sizeof a) {
            cr_assert_eq(a.err, 0, "process %u batch %u: %s (%s)", a.proc, a.batch,
                         reel_strerror(a.err), reel_err_code(a.err));
            acks[n_acks++] = a;
        }
        close(fds[p]);
    }
    for (int p = 0; p < N_PROCS; p++) {
        int status;
        cr_assert_eq(waitpid(pids[p], &status, 0), pids[p]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "process %d: status 0x%x", p,
                  status);
    }
    cr_assert_eq(n_acks, (size_t)N_PROCS * N_BATCHES);

    store_t *st = tu_open(dir, 0, 1);
    uint64_t total = 0;
    for (uint32_t s = 0; s < 2; s++) {
        tu_events_t ev = {0};
        tu_read_session(st, sessions[s], &ev);
        uint64_t want = 0;
        for (size_t k = 0; k < n_acks; k++) {
            if (acks[k].session != s)
                continue;
            want += acks[k].n;
            for (uint32_t i = 0; i < acks[k].n; i++) {
                uint64_t seq = acks[k].first + i;
                char id[64];
                snprintf(id, sizeof id, "p%u.b%u.i%u", acks[k].proc, acks[k].batch, i);
                cr_assert(seq >= 1 && seq <= ev.n, "%s: acknowledged sequence %llu of %zu",
                          sessions[s], (unsigned long long)seq, ev.n);
                cr_assert_str_eq(ev.v[seq - 1].event_id, id,
                                 "%s sequence %llu holds another process's event",
                                 sessions[s], (unsigned long long)seq);
            }
        }
        cr_assert_eq(ev.n, want, "%s: %zu events stored, %llu acknowledged", sessions[s], ev.n,
                     (unsigned long long)want);
        for (size_t k = 0; k < ev.n; k++)
            cr_assert_eq(ev.v[k].sequence, k + 1);
        store_session_t rec;
        TU_OK(tu_session(st, sessions[s], &rec));
        cr_assert_eq(rec.last_sequence, want);
        cr_assert_eq(rec.event_count, want);
        total += want;
        tu_events_free(&ev);
    }
    tu_events_t feed = {0};
    tu_read_feed(st, &feed);
    cr_assert_eq(feed.n, total);
    for (size_t k = 1; k < feed.n; k++)
        cr_assert_gt(feed.v[k].position, feed.v[k - 1].position);
    tu_events_free(&feed);
    store_close(st);
    free(acks);
}
