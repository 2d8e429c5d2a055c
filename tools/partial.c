/* partial.c -- all-or-nothing outputs for long jobs (backup, export -o).
 *
 * The output is written under "<dest>.partial" beside its destination and renamed into
 * place only once complete and fsynced, so DEST is either absent (or as it was) or whole:
 * never a torn file a later import or serve would trust. SIGINT, SIGTERM and SIGHUP remove
 * the partial output before the process dies of the signal. A partial output left by a
 * SIGKILL or a power cut is removed by the next run to the same destination, so a retry
 * just works. One partial output at a time per process.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/cmds.h"

/* What the signal handler removes: precomputed paths, only async-signal-safe calls. */
static const cmd_partial_t *active;

/* A directory output holds an LMDB copy: data.mdb (and lock.mdb if anything opened it). */
static void remove_partial(const cmd_partial_t *p)
{
    if (!p->is_dir) {
        unlink(p->tmp);
        return;
    }
    unlink(p->tmp_data);
    unlink(p->tmp_lock);
    rmdir(p->tmp);
}

static void on_signal(int sig)
{
    int e = errno; /* unlink() and rmdir() may set it: keep the interrupted code's */
    if (active)
        remove_partial(active);
    signal(sig, SIG_DFL);
    errno = e;
    raise(sig);
}

static int set_path(char *dst, const char *a, const char *b)
{
    return snprintf(dst, PATH_MAX, "%s%s", a, b) < PATH_MAX ? 0 : -1;
}

int cmd_partial_begin(cmd_partial_t *p, const char *prog, const char *dest, int is_dir)
{
    memset(p, 0, sizeof *p);
    p->prog = prog;
    p->is_dir = is_dir;
    if (set_path(p->dest, dest, "") || set_path(p->tmp, dest, ".partial") ||
        set_path(p->tmp_data, p->tmp, "/data.mdb") || set_path(p->tmp_lock, p->tmp, "/lock.mdb")) {
        cmd_error(prog, "destination path too long: '%.80s...'", dest);
        return -1;
    }
    struct stat st;
    if (lstat(p->tmp, &st) == 0) {
        /* Left by an interrupted run (SIGKILL, power cut): never anything but ours. */
        remove_partial(p);
        if (lstat(p->tmp, &st) == 0) {
            cmd_error(prog, "'%s' is in the way and could not be removed (not an output of "
                            "an interrupted run?)", p->tmp);
            return -1;
        }
        fprintf(stderr, "reel %s: removed '%s', left by an interrupted run\n", prog, p->tmp);
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    active = p;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    return 0;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* The directory that holds 'path' (for the fsync that makes the rename durable). */
static void parent_of(const char *path, char *out)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, PATH_MAX, ".");
    else if (slash == path)
        snprintf(out, PATH_MAX, "/");
    else
        snprintf(out, PATH_MAX, "%.*s", (int)(slash - path), path);
}

int cmd_partial_commit(cmd_partial_t *p)
{
    char parent[PATH_MAX];
    parent_of(p->dest, parent);
    /* The data first, then the name: after a crash DEST is whole or absent. */
    if (fsync_path(p->is_dir ? p->tmp_data : p->tmp, O_RDONLY) ||
        (p->is_dir && fsync_path(p->tmp, O_RDONLY | O_DIRECTORY))) {
        cmd_error(p->prog, "cannot sync '%s': %s", p->tmp, strerror(errno));
        cmd_partial_abort(p);
        return -1;
    }
    /* An empty directory at DEST (made for the backup) is replaced; anything else in it
     * makes rename() fail with ENOTEMPTY, reported below. */
    if (p->is_dir)
        rmdir(p->dest);
    if (rename(p->tmp, p->dest)) {
        cmd_error(p->prog, "cannot rename '%s' to '%s': %s", p->tmp, p->dest, strerror(errno));
        cmd_partial_abort(p);
        return -1;
    }
    active = NULL;
    if (fsync_path(parent, O_RDONLY | O_DIRECTORY))
        fprintf(stderr, "reel %s: warning: cannot sync directory '%s': %s\n", p->prog, parent,
                strerror(errno));
    return 0;
}

void cmd_partial_abort(cmd_partial_t *p)
{
    remove_partial(p);
    active = NULL;
}
