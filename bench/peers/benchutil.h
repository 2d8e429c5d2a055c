/* benchutil.h -- helpers shared by the C programs of `make bench-peers` that drive a peer
 * and reel side by side (pg_bench.c, sqlite_bench.c) or stand in for a server (the
 * floors, http_floor.c and mhd_floor.c). Each program is one file built on its own; define
 * PROG (its name, for messages) before including this, and declare its struct opts (an
 * incomplete 'struct opts;' will do for a program without bench_threads()). */
#ifndef REEL_PEERS_BENCHUTIL_H
#define REEL_PEERS_BENCHUTIL_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Prints "PROG: what: detail" (detail NULL: strerror(errno)) and exits 1. */
static inline void die(const char *what, const char *detail)
{
    fprintf(stderr, PROG ": %s: %s\n", what, detail ? detail : strerror(errno));
    exit(1);
}

/* Set by SIGINT or SIGTERM once bench_stop_on_signals() ran (a server's main loop polls
 * it); SIGPIPE is ignored, so that a client that went away is a failed write. */
static volatile sig_atomic_t bench_stop;

static inline void bench_on_signal(int sig)
{
    (void)sig;
    bench_stop = 1;
}

static inline void bench_stop_on_signals(void)
{
    signal(SIGINT, bench_on_signal);
    signal(SIGTERM, bench_on_signal);
    signal(SIGPIPE, SIG_IGN);
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("malloc", "out of memory");
    return p;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of n sorted values (nearest rank). */
static inline double quantile(const double *v, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* xorshift64*: the same pseudo-random offsets for every system. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One load thread; 'o' is the program's own options (struct opts). A worker counts its
 * events until *stop is set. */
typedef struct worker {
    pthread_t th;
    int id;
    const struct opts *o;
    pthread_barrier_t *start;
    atomic_int *stop;
    uint64_t events;
} worker_t;

/* Runs 'fn' on 'n' threads, all released together, for 'secs'; returns events/s. */
static inline double bench_threads(const struct opts *o, int n, double secs,
                                   void *(*fn)(void *))
{
    worker_t *w = xmalloc((size_t)n * sizeof *w);
    pthread_barrier_t start;
    atomic_int stop = 0;
    pthread_barrier_init(&start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        w[i] = (worker_t){.id = i, .o = o, .start = &start, .stop = &stop};
        if (pthread_create(&w[i].th, NULL, fn, &w[i]))
            die("pthread_create", NULL);
    }
    pthread_barrier_wait(&start);
    double t0 = now_s();
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    uint64_t events = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(w[i].th, NULL);
        events += w[i].events;
    }
    double el = now_s() - t0;
    pthread_barrier_destroy(&start);
    free(w);
    return (double)events / el;
}

#endif
