/* archive.c -- "archive before delete": the export of what retention is about to remove,
 * into a directory or through a command (docs/RETENTION.md). A failure is an error, and
 * the janitor then removes nothing. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "replay/replay.h"
#include "retain/retain.h"

extern char **environ;

/* Calls 'sink' with each chunk of the export of 'id' up to 'until'. */
static int export_to(store_t *s, const char *id, size_t id_len, uint64_t until,
                     int (*sink)(void *arg, const uint8_t *p, size_t n), void *arg, char *why,
                     size_t cap)
{
    replay_export_opts_t opt = REPLAY_EXPORT_DEFAULT;
    opt.session = id;
    opt.session_len = id_len;
    opt.until_sequence = until;
    replay_export_t *ex;
    int rc = replay_export_new(s, &opt, &ex), done = 0;
    if (rc) {
        snprintf(why, cap, "export: %s", reel_strerror(rc));
        return rc;
    }
    store_buf_t out = STORE_BUF_INIT;
    while (!rc && !done) {
        store_buf_clear(&out);
        if ((rc = replay_export_next(ex, &out, &done)))
            snprintf(why, cap, "export: %s", reel_strerror(rc));
        else if (out.len && (rc = sink(arg, out.data, out.len)))
            snprintf(why, cap, "writing the archive: %s", strerror(errno));
    }
    store_buf_release(&out);
    replay_export_free(ex);
    return rc;
}

static int write_all(void *arg, const uint8_t *p, size_t n)
{
    int fd = *(int *)arg;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return REEL_EIO;
        p += w, n -= (size_t)w;
    }
    return REEL_OK;
}

/* The session id as a file name: bytes outside [A-Za-z0-9._-] as %XX (ids may hold '/'). */
static void file_name(char *dst, size_t cap, const char *id, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < cap; i++) {
        unsigned char c = (unsigned char)id[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || (c == '.' && i > 0))
            dst[n++] = (char)c;
        else
            n += (size_t)snprintf(dst + n, cap - n, "%%%02X", c);
    }
    dst[n] = 0;
}

static int to_dir(store_t *s, const char *id, size_t id_len, uint64_t first, uint64_t until,
                  const char *dir, char *why, size_t cap)
{
    char name[3 * 200 + 1], path[4096], tmp[4200];
    file_name(name, sizeof name, id, id_len > 200 ? 200 : id_len);
    snprintf(path, sizeof path, "%s/%s.%llu-%llu.%llu.ndjson.zst", dir, name,
             (unsigned long long)first, (unsigned long long)until,
             (unsigned long long)store_wall_ms());
    snprintf(tmp, sizeof tmp, "%s.partial", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, cap, "cannot create '%s': %s", tmp, strerror(errno));
        return REEL_EIO;
    }
    int rc = export_to(s, id, id_len, until, write_all, &fd, why, cap);
    /* Durable before anything is removed: the data, then the name. */
    if (!rc && fsync(fd)) {
        snprintf(why, cap, "fsync '%s': %s", tmp, strerror(errno));
        rc = REEL_EIO;
    }
    close(fd);
    if (!rc && rename(tmp, path)) {
        snprintf(why, cap, "rename to '%s': %s", path, strerror(errno));
        rc = REEL_EIO;
    }
    int dfd = rc ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd)) {
            snprintf(why, cap, "fsync '%s': %s", dir, strerror(errno));
            rc = REEL_EIO;
        }
        close(dfd);
    }
    if (rc)
        unlink(tmp);
    return rc;
}

/* environ plus the archive's four variables; NULL when out of memory. */
static char **command_env(const char *id, size_t id_len, uint64_t first, uint64_t until,
                          const char *reason, char vars[4][1200])
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 5, sizeof *env);
    if (!env)
        return NULL;
    memcpy(env, environ, n * sizeof *env);
    snprintf(vars[0], 1200, "REEL_SESSION_ID=%.*s", (int)id_len, id);
    snprintf(vars[1], 1200, "REEL_FIRST_SEQUENCE=%llu", (unsigned long long)first);
    snprintf(vars[2], 1200, "REEL_LAST_SEQUENCE=%llu", (unsigned long long)until);
    snprintf(vars[3], 1200, "REEL_ARCHIVE_REASON=%s", reason);
    for (int i = 0; i < 4; i++)
        env[n + (size_t)i] = vars[i];
    return env;
}

static int to_command(store_t *s, const char *id, size_t id_len, uint64_t first, uint64_t until,
                      const char *reason, const char *command, char *why, size_t cap)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC)) {
        snprintf(why, cap, "pipe: %s", strerror(errno));
        return REEL_EIO;
    }
    char vars[4][1200];
    char **env = command_env(id, id_len, first, until, reason, vars);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    /* The server blocks SIGTERM and friends in every thread and ignores SIGPIPE; both would
     * be inherited: the command gets an empty mask and default dispositions instead (so
     * `timeout 60 ...` and a broken pipe work as in a shell). */
    posix_spawnattr_t at;
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGTERM);
    sigaddset(&dflt, SIGINT);
    sigaddset(&dflt, SIGHUP);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    pid_t pid;
    int rc = env ? posix_spawn(&pid, "/bin/sh", &fa, &at, argv, env) : ENOMEM;
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(fds[0]);
    if (rc) {
        close(fds[1]);
        snprintf(why, cap, "cannot run the archive command: %s", strerror(rc));
        return REEL_EIO;
    }
    /* SIGPIPE is ignored by the server: a command that stops reading gives EPIPE here. */
    rc = export_to(s, id, id_len, until, write_all, &fds[1], why, cap);
    close(fds[1]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!rc && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        if (WIFEXITED(st))
            snprintf(why, cap, "the archive command exited with status %d", WEXITSTATUS(st));
        else
            snprintf(why, cap, "the archive command ended by signal %d", WTERMSIG(st));
        rc = REEL_EIO;
    }
    return rc;
}

int retain_archive(store_t *s, const char *id, size_t id_len, uint64_t first, uint64_t until,
                   const char *reason, const char *dir, const char *command, char *why,
                   size_t cap)
{
    int rc = REEL_OK;
    why[0] = 0;
    if (dir)
        rc = to_dir(s, id, id_len, first, until, dir, why, cap);
    if (!rc && command)
        rc = to_command(s, id, id_len, first, until, reason, command, why, cap);
    return rc;
}
