/* ztrain.c -- ZDICT_trainFromBuffer() in a child process (issue 19, docs/FORMAT.md 15).
 *
 * Why a process: libzstd 1.5.4's dictionary builder creates a ZSTD_CDict to score its
 * candidates, and ZSTD_createCDict_advanced2() dereferences a failed allocation (the
 * NULL check was added in 1.5.5). tests/fault's failing-malloc server died of it. The
 * store must never die of an allocation failure, so the builder runs in a fork()ed child
 * that writes the dictionary back over a pipe: if the child crashes, training failed,
 * and the store goes on without a new dictionary.
 *
 * Rules:
 *  - Called by one thread at a time per store (the committer or the one trainer thread),
 *    with the samples already read: the child touches neither LMDB nor any lock, only
 *    the copies of 'samples' and 'dict' fork() gave it, and leaves with _exit().
 *  - The child closes every descriptor but its end of the pipe (listening sockets, the
 *    LMDB files), so a server that restarts does not find its port still held, and it
 *    dies with the thread that forked it (PR_SET_PDEATHSIG).
 *  - Its stderr is closed too: a sanitizer report of a crash there would otherwise land in
 *    the server's log. The parent reports the crash instead (store_last_error()).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zdict.h>
#include <zstd_errors.h>

#include "store/store_int.h"

#define CHILD_FD 3
#define TIMEOUT_MS 120000 /* a trainer that takes longer is killed: no dictionary this time */

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w, n -= (size_t)w;
    }
    return 0;
}

/* The child: trains, writes the result (a size_t, a ZDICT error code or the size) and the
 * dictionary, and leaves without running anything of the parent's (no atexit, no LMDB). */
static void child(int fd, const void *samples, const size_t *sizes, unsigned n, void *dict,
                  size_t cap)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (fd != CHILD_FD && dup2(fd, CHILD_FD) != CHILD_FD)
        _exit(2);
    for (int i = 0; i < CHILD_FD; i++)
        close(i);
    if (close_range(CHILD_FD + 1, ~0u, 0))
        for (int i = CHILD_FD + 1; i < 4096; i++)
            close(i);
    size_t got = ZDICT_trainFromBuffer(dict, cap, samples, sizes, n);
    if (write_all(CHILD_FD, &got, sizeof got) ||
        (!ZDICT_isError(got) && write_all(CHILD_FD, dict, got)))
        _exit(1);
    _exit(0);
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Reads up to 'n' bytes from 'fd' before the deadline; returns the count read (short at
 * the end of the data, on an error or at the deadline: '*late'). */
static size_t read_until(int fd, void *p, size_t n, long deadline, int *late)
{
    size_t got = 0;
    while (got < n) {
        long left = deadline - now_ms();
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = left > 0 ? poll(&pf, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            *late = 1;
        if (pr <= 0)
            break;
        ssize_t r = read(fd, (uint8_t *)p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Waits for the child; kills it first when it was too slow. Returns its wait status, or
 * -1 when there is none to have (SIGCHLD ignored: the kernel reaped it). */
static int reap(pid_t pid, int kill_it)
{
    int st;
    if (kill_it)
        kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return st;
}

static int report_child(pid_t pid, int st, int late)
{
    if (late)
        store__set_error("the dictionary trainer (pid %d) took over %d s and was killed",
                         (int)pid, TIMEOUT_MS / 1000);
    else if (st != -1 && WIFSIGNALED(st))
        store__set_error("the dictionary trainer (pid %d) died of signal %d", (int)pid,
                         WTERMSIG(st));
    else
        store__set_error("the dictionary trainer (pid %d) gave no dictionary (status %d)",
                         (int)pid, st);
    /* A child that crashed most likely ran out of memory (see the top of this file). */
    return late ? REEL_EINTERNAL : REEL_ENOMEM;
}

/* The parent's side: what the child wrote, checked. */
static int collect(int fd, pid_t pid, void *dict, size_t cap, size_t *len)
{
    long deadline = now_ms() + TIMEOUT_MS;
    int late = 0;
    size_t res = 0;
    size_t got = read_until(fd, &res, sizeof res, deadline, &late);
    int whole = got == sizeof res;
    if (whole && !ZDICT_isError(res) && res <= cap)
        whole = read_until(fd, dict, res, deadline, &late) == res;
    int st = reap(pid, late);
    if (!whole || (st != -1 && (!WIFEXITED(st) || WEXITSTATUS(st))))
        return report_child(pid, st, late);
    if (ZDICT_isError(res)) {
        store__set_error("training a dictionary failed: %s", ZDICT_getErrorName(res));
        return ZSTD_getErrorCode(res) == ZSTD_error_memory_allocation ? REEL_ENOMEM
                                                                       : REEL_ENOT_FOUND;
    }
    if (res > cap || !ZDICT_getDictID(dict, res)) {
        store__set_error("training a dictionary failed: %s", "no dictionary header");
        return REEL_ENOT_FOUND;
    }
    *len = res;
    return REEL_OK;
}

int store__ztrain(const void *samples, const size_t *sizes, unsigned n, void *dict, size_t cap,
                  size_t *len)
{
    int fd[2];
    if (pipe2(fd, O_CLOEXEC)) {
        store__set_error("no pipe for the dictionary trainer: %s", strerror(errno));
        return errno == ENOMEM ? REEL_ENOMEM : REEL_EIO;
    }
    pid_t pid = fork();
    if (pid == 0)
        child(fd[1], samples, sizes, n, dict, cap);
    int err = errno;
    close(fd[1]);
    int rc;
    if (pid < 0) {
        store__set_error("cannot start the dictionary trainer: %s", strerror(err));
        rc = err == ENOMEM || err == EAGAIN ? REEL_ENOMEM : REEL_EIO;
    } else {
        rc = collect(fd[0], pid, dict, cap, len);
    }
    close(fd[0]);
    return rc;
}
