/* store_ztrain.c -- the dictionary trainer's child side (store/ztrain.c), driven by hand:
 * this very test program started with REEL_ZTRAIN_PARENT, as the store starts it. The
 * training through the store is in store_zdict.c. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zdict.h>

#include "tests/unit/testutil.h"

extern char **environ;

static void setup(void)
{
    tu_watchdog(60);
}

TestSuite(store_ztrain, .init = setup);

/* Starts /proc/self/exe with REEL_ZTRAIN_PARENT=<parent> and socket 'fd' as its stdin and
 * stdout, stderr into 'err' (a file). Returns its pid. */
static pid_t start(const char *parent, int fd, const char *err)
{
    char var[64];
    snprintf(var, sizeof var, "REEL_ZTRAIN_PARENT=%s", parent);
    char *env[] = {var, NULL}, *argv[] = {"reel-ztrain-test", NULL};
    posix_spawn_file_actions_t fa;
    cr_assert_eq(posix_spawn_file_actions_init(&fa), 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 0);
    posix_spawn_file_actions_adddup2(&fa, fd, 1);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(e, 0, "posix_spawn: %s", strerror(e));
    return pid;
}

static int finish(pid_t pid)
{
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "status %d", st);
    return WEXITSTATUS(st);
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        cr_assert_gt(w, 0, "send: %s", strerror(errno));
        b += w, n -= (size_t)w;
    }
}

static size_t recv_all(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (char *)p + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void be64(uint8_t *p, uint64_t v)
{
    be32(p, (uint32_t)(v >> 32));
    be32(p + 4, (uint32_t)v);
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    return buf;
}

/* Starts a trainer as the store does (this process named as its parent, stderr into
 * 'err' in 'dir') and checks its greeting; returns the socket to it, its pid in '*pid'. */
static int greeted(const char *err, pid_t *pid)
{
    char me[32];
    snprintf(me, sizeof me, "%d", (int)getpid());
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    *pid = start(me, sv[1], err);
    close(sv[1]);
    char hello[8];
    cr_assert_eq(recv_all(sv[0], hello, 8), 8);
    cr_assert_eq(memcmp(hello, "REELZT01", 8), 0);
    return sv[0];
}

/* A process that finds the variable but was not started by the pid it names refuses, says
 * why, and does nothing else (the test program's own tests do not run). */
Test(store_ztrain, a_stray_variable_is_refused)
{
    char err[TU_PATH_MAX + 8], dir[TU_PATH_MAX];
    tu_tmpdir(dir);
    snprintf(err, sizeof err, "%s/err", dir);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pid_t pid = start("1", sv[1], err);
    close(sv[1]);
    cr_assert_eq(finish(pid), 3);
    char b[8];
    cr_assert_eq(recv_all(sv[0], b, sizeof b), 0, "it wrote to its stdout");
    cr_assert(strstr(slurp(err), "REEL_ZTRAIN_PARENT=1 is set"), "stderr: %s", slurp(err));
    close(sv[0]);
    tu_rmrf(dir);
}

/* Greets, then refuses a request that announces more than it sends or nothing at all. */
Test(store_ztrain, a_bad_request_is_refused)
{
    char err[TU_PATH_MAX + 8], dir[TU_PATH_MAX];
    tu_tmpdir(dir);
    snprintf(err, sizeof err, "%s/err", dir);
    for (int round = 0; round < 2; round++) {
        pid_t pid;
        int sock = greeted(err, &pid);
        uint8_t h[16 + 4];
        be32(h, round ? 1 : 0);  /* round 0: no samples */
        be32(h + 4, 1024);       /* cap */
        be64(h + 8, 100);        /* total */
        be32(h + 16, 99);        /* round 1: one sample of 99 bytes, not 100 */
        send_all(sock, h, round ? sizeof h : 16);
        shutdown(sock, SHUT_WR);
        cr_assert_eq(finish(pid), 2, "round %d", round);
        close(sock);
    }
    tu_rmrf(dir);
}

/* A whole training over the protocol gives what ZDICT_trainFromBuffer() gives here. */
Test(store_ztrain, it_trains_what_the_library_trains)
{
    enum { N = 600 };
    size_t sizes[N], total = 0;
    static char samples[N * 64];
    uint64_t seed = 7;
    for (int i = 0; i < N; i++) {
        int n = snprintf(samples + total, 64, "{\"type\":\"item.delta\",\"delta\":\"w%u %u\"}",
                         (unsigned)(tu_rand(&seed) % 50), (unsigned)(tu_rand(&seed) % 9));
        sizes[i] = (size_t)n;
        total += (size_t)n;
    }
    static char want[4096], got[4096];
    size_t wn = ZDICT_trainFromBuffer(want, sizeof want, samples, sizes, N);
    cr_assert(!ZDICT_isError(wn), "%s", ZDICT_getErrorName(wn));

    char err[TU_PATH_MAX + 8], dir[TU_PATH_MAX];
    tu_tmpdir(dir);
    snprintf(err, sizeof err, "%s/err", dir);
    pid_t pid;
    int sock = greeted(err, &pid);
    static uint8_t req[16 + 4 * N];
    be32(req, N);
    be32(req + 4, sizeof got);
    be64(req + 8, total);
    for (int i = 0; i < N; i++)
        be32(req + 16 + 4 * i, (uint32_t)sizes[i]);
    send_all(sock, req, sizeof req);
    send_all(sock, samples, total);
    uint8_t res[8];
    cr_assert_eq(recv_all(sock, res, 8), 8);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n = n << 8 | res[i];
    cr_assert_eq(n, wn);
    cr_assert_eq(recv_all(sock, got, (size_t)n), n);
    cr_assert_eq(memcmp(got, want, wn), 0);
    cr_assert_eq(finish(pid), 0);
    close(sock);
    tu_rmrf(dir);
}
