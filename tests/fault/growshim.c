/* growshim.c -- an LD_PRELOAD shim that holds reel inside an LMDB map growth, so that a
 * test can kill -9 it there (tests/fault/test_mapgrow_kill.py).
 *
 * GROWSHIM_INITIAL=N   the first mdb_env_set_mapsize() (store_open's) asks for N bytes
 *                      instead, so that a small store soon outgrows its map;
 * GROWSHIM_MARK=PATH   created when a later mdb_env_set_mapsize() (a growth) maps the
 *                      file again: LMDB has unmapped the old map and not yet mapped the
 *                      new one;
 * GROWSHIM_SLEEP_MS=M  how long the shim then waits before letting mmap() go on (300).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static atomic_int growing;
static atomic_int first_done;

int mdb_env_set_mapsize(MDB_env *env, size_t size)
{
    static int (*real)(MDB_env *, size_t);
    if (!real)
        real = (int (*)(MDB_env *, size_t))dlsym(RTLD_NEXT, "mdb_env_set_mapsize");
    if (!atomic_exchange(&first_done, 1)) {
        const char *e = getenv("GROWSHIM_INITIAL");
        return real(env, e ? (size_t)strtoull(e, NULL, 10) : size);
    }
    atomic_store(&growing, 1);
    int rc = real(env, size);
    atomic_store(&growing, 0);
    return rc;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    static void *(*real)(void *, size_t, int, int, int, off_t);
    if (!real)
        real = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
    if (fd >= 0 && atomic_load(&growing)) {
        const char *mark = getenv("GROWSHIM_MARK"), *ms = getenv("GROWSHIM_SLEEP_MS");
        if (mark) {
            int m = open(mark, O_WRONLY | O_CREAT, 0644);
            if (m >= 0)
                close(m);
        }
        usleep((useconds_t)(ms ? atoi(ms) : 300) * 1000);
    }
    return real(addr, len, prot, flags, fd, off);
}
