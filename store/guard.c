/* guard.c -- keeps a damaged page of data.mdb from killing the process (docs/DESIGN.md,
 * "Read path", damaged pages).
 *
 * LMDB trusts its pages. On a damaged one it either asserts (mdb_assert_fail() calls the
 * env's assert callback, then abort()) or follows a bad offset or length and faults
 * (SIGSEGV, or SIGBUS past the end of the file). Reads therefore run under a per-thread
 * guard (STORE__GUARD in store_int.h): the assert callback and a SIGSEGV/SIGBUS handler
 * for faults inside the map or inside LMDB's code siglongjmp() back to the guarded call,
 * which returns REEL_ECORRUPT. The read transaction is then only aborted: a read-only LMDB transaction
 * takes no lock and changes no shared state while it reads, so leaving a read call in
 * the middle leaks nothing but its own cursor, which the guard closes (store_read_t).
 * Unguarded threads (the committer) keep LMDB's behaviour: the assert aborts.
 */
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

#include "store/store_int.h"

__thread store__guard_t *store__guard_top;

static struct sigaction old_segv, old_bus;
static pthread_once_t installed = PTHREAD_ONCE_INIT;

static uintptr_t lmdb_lo, lmdb_hi; /* liblmdb's code, found once by install() */

/* 1 if 'addr' is in the map of the guarded store, or within 4 GiB past its end (an LMDB
 * length is 32 bits, so a damaged one reads at most that far). */
static int in_map(const store__guard_t *g, uintptr_t addr)
{
    const store_t *s = g->s;
    if (!s || !s->map_lo)
        return 1; /* map not found: no narrower test is possible */
    return addr >= s->map_lo && addr - s->map_lo < s->map_hi - s->map_lo + (1ull << 32);
}

/* The faulting instruction's address, or 0 where this build does not know the layout. */
static uintptr_t fault_pc(void *uc)
{
    const ucontext_t *u = uc;
#if defined(__x86_64__)
    return (uintptr_t)u->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)u->uc_mcontext.pc;
#else
    (void)u;
    return 0;
#endif
}

/* A fault under a guard is damage when it reads the map, or when LMDB's own code faults
 * (a damaged node's flags send it through a NULL cursor, seen with F_DUPDATA set on a
 * plain database). A fault anywhere else is a bug in reel and must crash as before. */
static int is_damage(const store__guard_t *g, const siginfo_t *si, void *uc)
{
    uintptr_t pc = fault_pc(uc);
    return in_map(g, (uintptr_t)si->si_addr) || (pc >= lmdb_lo && pc < lmdb_hi);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    store__guard_t *g = store__guard_top;
    if (g && is_damage(g, si, uc)) {
        g->what = sig == SIGBUS ? "a read past the end of data.mdb (SIGBUS)"
                                : "a fault in LMDB or outside a page (SIGSEGV)";
        store__guard_top = g->prev;
        siglongjmp(g->jb, 1);
    }
    /* Not ours: put the previous handler back; the faulting instruction runs again. */
    sigaction(sig, sig == SIGBUS ? &old_bus : &old_segv, NULL);
}

/* dl_iterate_phdr() callback: the executable segment of the object holding mdb_get(). */
static int find_lmdb(struct dl_phdr_info *info, size_t size, void *arg)
{
    uintptr_t fn = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && fn >= lo && fn < hi) {
            lmdb_lo = lo, lmdb_hi = hi;
            return 1;
        }
    }
    return 0;
}

static void install(void)
{
    dl_iterate_phdr(find_lmdb, (void *)(uintptr_t)&mdb_get);
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
