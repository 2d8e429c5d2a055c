/* benchutil.h -- helpers shared by the C programs of `make bench-peers` that drive a peer
 * and reel side by side (pg_bench.c, sqlite_bench.c). Each program is one file built on its
 * own; define PROG (its name, for messages) before including this. */
#ifndef REEL_PEERS_BENCHUTIL_H
#define REEL_PEERS_BENCHUTIL_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prints "PROG: what: detail" (detail NULL: strerror(errno)) and exits 1. */
static inline void die(const char *what, const char *detail)
{
    fprintf(stderr, PROG ": %s: %s\n", what, detail ? detail : strerror(errno));
    exit(1);
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

#endif
