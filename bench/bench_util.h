/* bench_util.h -- what the C benchmarks share: a monotonic clock in seconds and a
 * deterministic xorshift generator (the same numbers in every run, so two builds measure
 * the same work). Header-only: each bench_*.c is its own program. */
#ifndef REEL_BENCH_UTIL_H
#define REEL_BENCH_UTIL_H

#include <stdio.h>
#include <string.h>
#include <time.h>

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long long bench_rng = 88172645463325252ull;

static inline unsigned bench_next(void)
{
    bench_rng ^= bench_rng << 13, bench_rng ^= bench_rng >> 7, bench_rng ^= bench_rng << 17;
    return (unsigned)(bench_rng >> 11);
}

/* The options of the simple benchmarks, "[--quick] [--dir DIR]": -1 to go on, else the
 * exit status (--help: 0, anything else: 2, after the usage line). */
static inline int bench_args(int argc, char **argv, const char *name, int *quick,
                             const char **dir)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            *quick = 1;
        } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
            *dir = argv[++i];
        } else {
            printf("usage: %s [--quick] [--dir DIR]\n", name);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    return -1;
}

#endif
