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

/* 1 if this allocation is to fail. */
static int fail_now(void)
{
    if (!atomic_load(&armed))
        return 0;
    long k = atomic_fetch_add(&numbered, 1) + 1, at = atomic_load(&fail_at_);
    if (at <= 0 || (k != at && !(atomic_load(&persistent_) && k > at)))
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
