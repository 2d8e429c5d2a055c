/* guard.c -- keeps a damaged page of data.mdb from killing the process (docs/DESIGN.md,
 * "Damaged pages").
 *
 * LMDB trusts its pages. On a damaged one it either asserts (mdb_assert_fail() calls the
 * env's assert callback, then abort()) or follows a bad offset or length and faults
 * (SIGSEGV, or SIGBUS past the end of the file). Reads therefore run under a per-thread
 * guard (STORE__GUARD in store_int.h): the assert callback and a SIGSEGV/SIGBUS handler
 * for faults inside the map, siglongjmp() back to the guarded call, which returns
 * REEL_ECORRUPT. The read transaction is then only aborted: a read-only LMDB transaction
 * takes no lock and changes no shared state while it reads, so leaving a read call in
 * the middle leaks nothing but its own cursor, which the guard closes (store_read_t).
 * Unguarded threads (the committer) keep LMDB's behaviour: the assert aborts.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "store/store_int.h"

__thread store__guard_t *store__guard_top;

static struct sigaction old_segv, old_bus;
static pthread_once_t installed = PTHREAD_ONCE_INIT;

/* 1 if 'addr' is in the map of the guarded store, or within 4 GiB past its end (an LMDB
 * length is 32 bits, so a damaged one reads at most that far). A fault anywhere else is
 * a bug, not damage, and must crash as before. */
static int in_map(const store__guard_t *g, uintptr_t addr)
{
    const store_t *s = g->s;
    if (!s || !s->map_lo)
        return 1; /* map not found: no narrower test is possible */
    return addr >= s->map_lo && addr - s->map_lo < s->map_hi - s->map_lo + (1ull << 32);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    store__guard_t *g = store__guard_top;
    if (g && in_map(g, (uintptr_t)si->si_addr)) {
        g->what = sig == SIGBUS ? "a read past the end of data.mdb (SIGBUS)"
                                : "a read outside the page (SIGSEGV)";
        store__guard_top = g->prev;
        siglongjmp(g->jb, 1);
    }
    /* Not ours: put the previous handler back; the faulting instruction runs again. */
    sigaction(sig, sig == SIGBUS ? &old_bus : &old_segv, NULL);
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    /* SA_NODEFER: the signal stays unblocked after siglongjmp(), so the guard can use the
     * cheap sigsetjmp(jb, 0), which saves no signal mask (no system call per read). */
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

static void on_assert(MDB_env *env, const char *msg)
{
    store__guard_t *g = store__guard_top;
    if (g) {
        g->what = "an LMDB assertion on a damaged page";
        snprintf(g->detail, sizeof g->detail, "%s", msg);
        store__guard_top = g->prev;
        siglongjmp(g->jb, 1);
    }
    fprintf(stderr, "reel: LMDB assertion outside a guarded read: %s\n", msg);
    /* LMDB calls abort() on return. */
}

void store__guard_install(store_t *s)
{
    pthread_once(&installed, install);
    mdb_env_set_assert(s->env, on_assert);
    store__guard_map(s);
}

int store__guard_caught(store_t *s, store__guard_t *g)
{
    store__set_error("damaged page: %s%s%s", g->what, g->detail[0] ? ": " : "", g->detail);
    return REEL_ECORRUPT;
}

void store_note_corrupt(store_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->stats.corrupt_reads++;
    pthread_mutex_unlock(&s->mu);
}
