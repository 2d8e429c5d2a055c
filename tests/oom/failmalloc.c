/* failmalloc.c -- allocation-failure injector (contract in failmalloc.h). */
#include <dlfcn.h>
#include <execinfo.h>
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/oom/failmalloc.h"

/* The same prototypes as <malloc.h>; declared here so -Wmissing-prototypes stays quiet. */
void *memalign(size_t align, size_t n);
void *valloc(size_t n);
void *pvalloc(size_t n);

static atomic_int armed;
static atomic_int persistent_;
static atomic_long fail_at_;
static atomic_long numbered;
static atomic_long n_failed;
static atomic_long live;
static atomic_long every_;        /* random mode: about one allocation in 'every_' fails */
static atomic_ulong seed_;
static int trace;

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static void *(*real_memalign)(size_t, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);

/* dlsym() may call calloc before real_calloc is known: serve it from here. */
static _Alignas(max_align_t) unsigned char boot[4096];
static size_t boot_used;

static int from_boot(const void *p)
{
    return (const unsigned char *)p >= boot && (const unsigned char *)p < boot + sizeof boot;
}

static void *boot_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (boot_used + n > sizeof boot)
        return NULL;
    void *p = boot + boot_used;
    boot_used += n;
    return p;
}

static void resolve(void)
{
    static atomic_int busy;
    if (real_free || atomic_exchange(&busy, 1))
        return;
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
    real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
}

/* Random mode: whether allocation number 'k' fails (a hash of k and the seed, so a seed
 * gives one sequence of failures for one sequence of allocations). */
static int random_pick(long k)
{
    unsigned long x = (unsigned long)k * 0x9E3779B97F4A7C15ul ^ atomic_load(&seed_);
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ul;
    x ^= x >> 29;
    return x % (unsigned long)atomic_load(&every_) == 0;
}

/* In random mode the first allocations of each thread never fail: under ASan a new
 * thread's start-up (AsanThread::Init -> pthread_getattr_np) allocates and treats NULL as
 * a fatal CHECK of the sanitizer itself, which says nothing about reel. */
#define SPARED_PER_THREAD 8
static __thread int thread_allocs __attribute__((tls_model("initial-exec")));

/* 1 if this allocation is to fail. */
static int fail_now(void)
{
    if (!atomic_load(&armed))
        return 0;
    if (atomic_load(&every_) > 0 && thread_allocs < SPARED_PER_THREAD) {
        thread_allocs++;
        return 0;
    }
    long k = atomic_fetch_add(&numbered, 1) + 1, at = atomic_load(&fail_at_);
    if (atomic_load(&every_) > 0 ? !random_pick(k)
                                 : at <= 0 || (k != at && !(atomic_load(&persistent_) && k > at)))
        return 0;
    atomic_fetch_add(&n_failed, 1);
    if (trace) { /* FAILMALLOC_TRACE=1: where the failed allocation was made */
        void *pc[24];
        backtrace_symbols_fd(pc, backtrace(pc, 24), 2);
    }
    errno = ENOMEM;
    return 1;
}

static void *counted(void *p)
{
    if (p)
        atomic_fetch_add(&live, 1);
    if (p && trace > 1 && atomic_load(&armed)) { /* FAILMALLOC_TRACE=2: every block */
        void *pc[12];
        char line[64];
        int n = snprintf(line, sizeof line, "+%p\n", p);
        if (write(2, line, (size_t)n) < 0)
            return p;
        backtrace_symbols_fd(pc, backtrace(pc, 12), 2);
    }
    return p;
}

void *malloc(size_t n)
{
    resolve();
    if (!real_malloc)
        return boot_alloc(n);
    return fail_now() ? NULL : counted(real_malloc(n));
}

void *calloc(size_t k, size_t n)
{
    resolve();
    if (!real_calloc)
        return boot_alloc(k * n); /* zeroed: 'boot' is static */
    return fail_now() ? NULL : counted(real_calloc(k, n));
}

void *realloc(void *p, size_t n)
{
    resolve();
    if (from_boot(p)) { /* never happens in practice; keep the old bytes */
        void *q = malloc(n);
        if (q)
            memcpy(q, p, n < sizeof boot ? n : sizeof boot);
        return q;
    }
    if (fail_now())
        return NULL; /* 'p' stays valid, as realloc promises */
    void *q = real_realloc(p, n);
    if (!p && q)
        atomic_fetch_add(&live, 1);
    else if (p && !q && n == 0)
        atomic_fetch_sub(&live, 1); /* glibc: realloc(p, 0) frees */
    return q;
}

void free(void *p)
{
    if (!p || from_boot(p))
        return;
    resolve();
    atomic_fetch_sub(&live, 1);
    if (trace > 1) {
        char line[64];
        int n = snprintf(line, sizeof line, "-%p\n", p);
        if (write(2, line, (size_t)n) < 0)
            return;
    }
    real_free(p);
}

void *memalign(size_t align, size_t n)
{
    resolve();
    return fail_now() ? NULL : counted(real_memalign(align, n));
}

void *aligned_alloc(size_t align, size_t n)
{
    resolve();
    return fail_now() ? NULL : counted(real_aligned_alloc(align, n));
}

int posix_memalign(void **out, size_t align, size_t n)
{
    resolve();
    if (fail_now())
        return ENOMEM;
    int rc = real_posix_memalign(out, align, n);
    if (!rc)
        atomic_fetch_add(&live, 1);
    return rc;
}

void *valloc(size_t n)
{
    return memalign(4096, n);
}

void *pvalloc(size_t n)
{
    return memalign(4096, (n + 4095) & ~(size_t)4095);
}

void fm_arm(long fail_at, int persistent)
{
    void *pc[1];
    trace = getenv("FAILMALLOC_TRACE") ? atoi(getenv("FAILMALLOC_TRACE")) : 0;
    if (trace)
        backtrace(pc, 1); /* loads libgcc_s now, not while armed */
    atomic_store(&numbered, 0);
    atomic_store(&n_failed, 0);
    atomic_store(&fail_at_, fail_at);
    atomic_store(&persistent_, persistent);
    atomic_store(&every_, 0);
    atomic_store(&armed, 1);
}

void fm_arm_random(long every, unsigned long seed)
{
    atomic_store(&every_, every > 0 ? every : 1);
    atomic_store(&seed_, seed);
    atomic_store(&armed, 1);
}

long fm_disarm(void)
{
    atomic_store(&armed, 0);
    return atomic_load(&numbered);
}

long fm_failed(void)
{
    return atomic_load(&n_failed);
}

long fm_live(void)
{
    return atomic_load(&live);
}
