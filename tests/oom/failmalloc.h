/* failmalloc.h -- an allocation-failure injector linked into the test program.
 *
 * failmalloc.c defines malloc, calloc, realloc, free and the aligned allocators in the
 * executable, so every allocation of the process goes through it: reel's own code and
 * the shared libraries it uses (LMDB, msgpack-c, zstd, jansson, OpenSSL, glibc's own
 * strdup/fopen/...). Each call forwards to the next definition (glibc's, or ASan's in a
 * SANITIZER=address build). While armed, allocations are numbered from 1 and the one
 * numbered 'fail_at' returns NULL with errno ENOMEM ('persistent': that one and every
 * later one), the way SQLite's test_malloc.c and jq's inject_errors.c fail them.
 *
 * Rules:
 *  - Arm and disarm on one thread while the other threads of the process are idle or
 *    blocked in code under test; counters are atomic, so the committer thread's and
 *    zstd workers' allocations are numbered too.
 *  - Built as a shared object with preload.c (build/fault/failmalloc.so), the injector
 *    goes into a whole server by LD_PRELOAD: SIGUSR1 arms the random mode, SIGUSR2
 *    disarms it (tests/fault/test_oom_server.py).
 *  - fm_live() counts blocks allocated minus blocks freed for the whole process, armed or
 *    not: equal values before and after a balanced stretch of code mean nothing leaked.
 */
#ifndef REEL_FAILMALLOC_H
#define REEL_FAILMALLOC_H

/* Starts numbering allocations; 'fail_at' 0 fails none (counting only). */
void fm_arm(long fail_at, int persistent);
/* Random mode: from now on about one allocation in 'every' fails, picked by a hash of
 * its number and 'seed'. Only atomic stores: safe in a signal handler (preload.c). */
void fm_arm_random(long every, unsigned long seed);
/* Stops numbering; returns how many allocations were numbered since fm_arm(). */
long fm_disarm(void);
/* Allocations that were made to fail since fm_arm(). */
long fm_failed(void);
/* Blocks allocated and not yet freed (process-wide). */
long fm_live(void);

#endif
