/* bench_util.h -- what the C benchmarks share: a monotonic clock in seconds and a
 * deterministic xorshift generator (the same numbers in every run, so two builds measure
 * the same work). Header-only: each bench_*.c is its own program. */
#ifndef REEL_BENCH_UTIL_H
#define REEL_BENCH_UTIL_H

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

#endif
