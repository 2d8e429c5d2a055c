/* ztrain.c -- ZDICT_trainFromBuffer() in a child process (issue 19, docs/FORMAT.md 15.3).
 *
 * Why a process: libzstd 1.5.4's dictionary builder creates a ZSTD_CDict to score its
 * candidates, and ZSTD_createCDict_advanced2() dereferences a failed allocation (the
 * NULL check was added in 1.5.5). tests/fault's failing-malloc server died of it. The
 * store must never die of an allocation failure, so the builder runs in a child process
 * that sends the dictionary back: if the child crashes, training failed, and the store
 * goes on without a new dictionary.
 *
 * Why posix_spawn() and not fork(): the store is multi-threaded (committer, writers,
 * HTTP workers), and a fork()ed child holds a copy of every lock as some other thread
 * held it at that instant. glibc's malloc resets its own locks in the child, but other
 * allocators do not: under AddressSanitizer (GCC 12's libasan has no fork handler) the
 * child blocked forever in the sanitizer allocator's mutex while the committer waited
 * for it (docs/RELIABILITY.md section 8). An exec()ed child
 * starts with a fresh process image instead: no inherited lock, no LMDB, no threads.
 *
 * Which program: the running executable itself (/proc/self/exe, the same inode even if
 * the file was replaced since), started with REEL_ZTRAIN_PARENT=<our pid> in its
 * environment. Any program that links libreel.a carries the constructor below, which
 * runs before main(): it sees the variable, serves one training on stdin/stdout and
 * leaves with _exit(). So reel, the unit tests, the benchmarks and an embedding program
 * all train the same way, with the code of their own build, and need no path option.
 * The child first writes a greeting: a program without the constructor (libreel loaded
 * some other way) does not, and the training fails with a message saying so.
 *
 * Rules:
 *  - store__ztrain() is called by one thread at a time per store (the committer or the
 *    one trainer thread), with the samples already read: the child gets a copy over the
 *    socket and touches neither LMDB nor the store.
 *  - The child keeps only stdin/stdout (one socket) and stderr on /dev/null (a sanitizer
 *    report of a crash there would otherwise land in the server's log: the parent reports
 *    the crash instead, store_last_error()); every other descriptor is closed before exec.
 *  - It dies with the thread that started it (PR_SET_PDEATHSIG, then a check that the
 *    parent is still the one that started it), and is killed after 120 s.
 *  - The parent writes with MSG_NOSIGNAL: a child that dies never raises SIGPIPE in it.
 *
 * Protocol on the socket (integers big-endian):
 *   child:  "REELZT01" (greeting)
 *   parent: u32 n, u32 cap, u64 total, n x u32 sample sizes (summing to total), samples
 *   child:  u64 ZDICT_trainFromBuffer()'s result (a size, or a ZDICT error code), then
 *           that many bytes of dictionary unless it is an error
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zdict.h>
#include <zstd_errors.h>

#include "store/store_int.h"

#define ENV_PARENT "REEL_ZTRAIN_PARENT"
#define GREETING "REELZT01"
#define GREETING_LEN 8
#define TIMEOUT_MS 120000 /* a trainer that takes longer is killed: no dictionary this time */
/* What a child accepts (the store sends at most 16,384 samples, 8 MiB, 256 KiB of
 * dictionary: store/zdict.c); anything larger is a bad request, not a training. */
#define CHILD_MAX_SAMPLES (1u << 20)
#define CHILD_MAX_CAP (16u << 20)
#define CHILD_MAX_TOTAL (1ull << 30)

extern char **environ;

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the child ---- */

/* Blocking I/O on the child's stdin/stdout: the parent bounds the time. */
static int read_full(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r, n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *p, size_t n)
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

/* Reads the sizes and the samples the header announced; 0, 1 (I/O), 2 (bad request). */
static int child_read(int in, uint32_t n, uint64_t total, size_t *sizes, uint8_t *samples)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t b[4];
        if (read_full(in, b, 4))
            return 1;
        sizes[i] = get_u32(b);
        sum += sizes[i];
    }
    if (sum != total)
        return 2;
    return read_full(in, samples, (size_t)total) ? 1 : 0;
}

/* One training: greeting, request, result. Returns the child's exit status: 0 (answered,
 * the result may be a ZDICT error), 1 (I/O), 2 (bad request), 4 (out of memory). */
static int child_serve(int in, int out)
{
    uint8_t h[16];
    if (write_full(out, GREETING, GREETING_LEN) || read_full(in, h, sizeof h))
        return 1;
    uint32_t n = get_u32(h), cap = get_u32(h + 4);
    uint64_t total = store__get_u64(h + 8);
    if (!n || n > CHILD_MAX_SAMPLES || !cap || cap > CHILD_MAX_CAP || total > CHILD_MAX_TOTAL)
        return 2;
    size_t *sizes = malloc(n * sizeof *sizes);
    uint8_t *samples = malloc(total ? (size_t)total : 1), *dict = malloc(cap);
    int st = sizes && samples && dict ? child_read(in, n, total, sizes, samples) : 4;
    if (!st) {
        size_t got = ZDICT_trainFromBuffer(dict, cap, samples, sizes, n);
        uint8_t res[8];
        store__put_u64(res, (uint64_t)got);
        st = write_full(out, res, 8) || (!ZDICT_isError(got) && write_full(out, dict, got));
    }
    free(dict), free(samples), free(sizes);
    return st;
}

/* Runs before main() in every program linked with the store (see the top of the file).
 * Not started by store__ztrain(): returns at once, and the program runs as usual. */
__attribute__((constructor)) static void ztrain_child_entry(void)
{
    const char *v = getenv(ENV_PARENT);
    if (!v)
        return;
    char *end;
    long parent = strtol(v, &end, 10);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_NAME, "reel-ztrain"); /* in ps and top, instead of "exe" */
    if (*end || parent <= 0 || getppid() != (pid_t)parent) {
        /* Started some other way, or the parent is gone already. */
        fprintf(stderr, "%s=%s is set, but this is not a dictionary trainer its parent "
                        "started (parent %d): unset it\n", ENV_PARENT, v, (int)getppid());
        _exit(3);
    }
    _exit(child_serve(0, 1));
}

/* ---- the parent ---- */

/* Polls 'fd' for 'ev' until the deadline: 1 ready, 0 late ('*late' set), -1 error. */
static int wait_fd(int fd, short ev, long deadline, int *late)
{
    for (;;) {
        long left = deadline - now_ms();
        struct pollfd pf = {fd, ev, 0};
        int pr = left > 0 ? poll(&pf, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            *late = 1;
        return pr > 0 ? 1 : pr;
    }
}

/* Reads up to 'n' bytes from 'fd' before the deadline; returns the count read (short at
 * the end of the data, on an error or at the deadline: '*late'). */
static size_t read_until(int fd, void *p, size_t n, long deadline, int *late)
{
    size_t got = 0;
    while (got < n && wait_fd(fd, POLLIN, deadline, late) > 0) {
        ssize_t r = recv(fd, (uint8_t *)p + got, n - got, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Sends all 'n' bytes before the deadline; 0, or -1 (the child is gone, or late). */
static int send_until(int fd, const void *p, size_t n, long deadline, int *late)
{
    const uint8_t *b = p;
    while (n) {
        if (wait_fd(fd, POLLOUT, deadline, late) <= 0)
            return -1;
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            return -1;
        b += w, n -= (size_t)w;
    }
    return 0;
}

/* The request: header, sizes (in slices from the stack: nothing to allocate), samples. */
static int send_request(int fd, const void *samples, const size_t *sizes, unsigned n,
                        size_t cap, long deadline, int *late)
{
    uint8_t h[16], b[1024];
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += sizes[i];
    put_u32(h, n);
    put_u32(h + 4, (uint32_t)cap);
    store__put_u64(h + 8, total);
    if (send_until(fd, h, sizeof h, deadline, late))
        return -1;
    for (unsigned i = 0; i < n;) {
        size_t k = 0;
        for (; i < n && k < sizeof b; i++, k += 4)
            put_u32(b + k, (uint32_t)sizes[i]);
        if (send_until(fd, b, k, deadline, late))
            return -1;
    }
    return send_until(fd, samples, (size_t)total, deadline, late);
}

/* Waits for the child; kills it first when 'kill_it'. Returns its
 * wait status, or -1 when there is none to have (SIGCHLD ignored: the kernel reaped it). */
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

static int report_child(pid_t pid, int st, int late, int greeted)
{
    if (late)
        store__set_error("the dictionary trainer (pid %d) took over %d s and was killed",
                         (int)pid, TIMEOUT_MS / 1000);
    else if (st != -1 && WIFSIGNALED(st))
        store__set_error("the dictionary trainer (pid %d) died of signal %d", (int)pid,
                         WTERMSIG(st));
    else if (!greeted)
        store__set_error("the dictionary trainer (pid %d, /proc/self/exe) did not answer as "
                         "one: is the store linked into the executable? (status %d)",
                         (int)pid, st);
    else
        store__set_error("the dictionary trainer (pid %d) gave no dictionary (status %d)",
                         (int)pid, st);
    /* A child that crashed most likely ran out of memory (see the top of this file). */
    return late ? REEL_EINTERNAL : REEL_ENOMEM;
}

/* The parent's side of the protocol: greeting, request, the child's result, checked. */
static int talk(int fd, pid_t pid, const void *samples, const size_t *sizes, unsigned n,
                void *dict, size_t cap, size_t *len)
{
    long deadline = now_ms() + TIMEOUT_MS;
    int late = 0, whole = 0;
    char hello[GREETING_LEN];
    uint8_t rb[8];
    uint64_t res = 0;
    int greeted = read_until(fd, hello, GREETING_LEN, deadline, &late) == GREETING_LEN &&
                  !memcmp(hello, GREETING, GREETING_LEN);
    if (greeted && !send_request(fd, samples, sizes, n, cap, deadline, &late)) {
        shutdown(fd, SHUT_WR);
        whole = read_until(fd, rb, 8, deadline, &late) == 8;
        res = whole ? store__get_u64(rb) : 0;
        if (whole && !ZDICT_isError((size_t)res) && res <= cap)
            whole = read_until(fd, dict, (size_t)res, deadline, &late) == res;
    }
    /* Killed unless it answered in full: a child that did not greet may not be a trainer
     * at all (it could wait on its stdin for ever), and one that announced more than it
     * may send could block writing it. One that crashed has its status already. */
    int st = reap(pid, late || !greeted || !whole || (!ZDICT_isError((size_t)res) && res > cap));
    if (!whole || (st != -1 && (!WIFEXITED(st) || WEXITSTATUS(st))))
        return report_child(pid, st, late, greeted);
    if (ZDICT_isError((size_t)res)) {
        store__set_error("training a dictionary failed: %s", ZDICT_getErrorName((size_t)res));
        return ZSTD_getErrorCode((size_t)res) == ZSTD_error_memory_allocation ? REEL_ENOMEM
                                                                              : REEL_ENOT_FOUND;
    }
    if (res > cap || !ZDICT_getDictID(dict, (size_t)res)) {
        store__set_error("training a dictionary failed: %s", "no dictionary header");
        return REEL_ENOT_FOUND;
    }
    *len = (size_t)res;
    return REEL_OK;
}

/* The child's environment: ours without any ENV_PARENT, plus ENV_PARENT=<our pid>.
 * 'var' holds that entry. NULL when out of memory (free() the result). */
static char **child_env(char var[64])
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0, plen = strlen(ENV_PARENT);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], ENV_PARENT, plen) || environ[i][plen] != '=')
            env[k++] = environ[i];
    snprintf(var, 64, "%s=%d", ENV_PARENT, (int)getpid());
    env[k++] = var;
    env[k] = NULL;
    return env;
}

/* Starts the running executable as a trainer on socket 'fd' (its stdin and stdout).
 * 0 or an errno value. */
static int spawn(int fd, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    char var[64], *argv[] = {"reel-ztrain", NULL};
    char **env = child_env(var);
    int e = env ? posix_spawn_file_actions_init(&fa) : ENOMEM;
    if (e) {
        free(env);
        return e;
    }
    if (!(e = posix_spawnattr_init(&at))) {
        /* No signal blocked or caught as the spawning thread had them (an ignored
         * SIGPIPE included): the child's signals are the defaults. */
        sigemptyset(&none);
        sigfillset(&all);
        if (!(e = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) &&
            !(e = posix_spawnattr_setsigmask(&at, &none)) &&
            !(e = posix_spawnattr_setsigdefault(&at, &all)) &&
            !(e = posix_spawn_file_actions_adddup2(&fa, fd, 0)) &&
            !(e = posix_spawn_file_actions_adddup2(&fa, fd, 1)) &&
            !(e = posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0)) &&
            !(e = posix_spawn_file_actions_addclosefrom_np(&fa, 3)))
            e = posix_spawn(pid, "/proc/self/exe", &fa, &at, argv, env);
        posix_spawnattr_destroy(&at);
    }
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    return e;
}

int store__ztrain(const void *samples, const size_t *sizes, unsigned n, void *dict, size_t cap,
                  size_t *len)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        store__set_error("no socket for the dictionary trainer: %s", strerror(errno));
        return errno == ENOMEM || errno == ENOBUFS ? REEL_ENOMEM : REEL_EIO;
    }
    pid_t pid = -1;
    int e = spawn(sv[1], &pid);
    close(sv[1]);
    int rc;
    if (e) {
        store__set_error("cannot start the dictionary trainer (/proc/self/exe): %s",
                         strerror(e));
        rc = e == ENOMEM || e == EAGAIN ? REEL_ENOMEM : REEL_EIO;
    } else {
        rc = talk(sv[0], pid, samples, sizes, n, dict, cap, len);
    }
    close(sv[0]);
    return rc;
}
