/* faultfs.c -- LD_PRELOAD shim: syscall-level fault injection and a power-loss model for
 * the files of a reel store (docs/RELIABILITY.md, "Fault injection").
 *
 * It interposes the libc calls liblmdb makes (open, pwrite, write, writev, fdatasync,
 * fsync, close; checked with `nm -D liblmdb.so.0`) and statvfs/fstatvfs (reel asks them
 * whether the disk is full), and acts only on file descriptors whose path contains
 * FAULTFS_MATCH. Everything else passes straight through.
 *
 * Environment (all optional; with none set the shim only passes calls through):
 *   FAULTFS_MATCH=data.mdb     path substring that selects the files
 *   FAULTFS_OPS=fdatasync,...  calls that may fail: fdatasync fsync pwrite write writev,
 *                              or the groups "sync" (fdatasync,fsync) and "writes"
 *                              (pwrite,write,writev). Default: sync.
 *   FAULTFS_NTH=N              fail the N-th selected call (1-based)...
 *   FAULTFS_PERSIST=1          ...and every selected call after it (a disk that stays full)
 *   FAULTFS_PROB=P             or fail each selected call with probability P (0..1)
 *   FAULTFS_SEED=S             random seed for FAULTFS_PROB (default 1)
 *   FAULTFS_ERRNO=EIO          errno of a failed call: EIO, ENOSPC, EDQUOT, EFBIG or a number
 *   FAULTFS_SHORT=1            a failing write writes half its bytes and returns that count
 *                              (a short write) instead of -1
 *   FAULTFS_FULL=1             a full disk: only writes that extend the file are selected
 *                              (overwriting allocated blocks needs no space), and from the
 *                              first fault on (while FAULTFS_ARMED exists, when set)
 *                              statvfs/fstatvfs of a matched file report no free blocks
 *   FAULTFS_LIE=1              negative control: a "failing" call does nothing and reports
 *                              success (a write returns its full count, a sync returns 0), as
 *                              a program that ignored the error would see it
 *   FAULTFS_SYNC=noop          negative control: every fdatasync/fsync of a matched file
 *                              returns 0 without syncing, and O_DSYNC writes are not durable
 *                              (a disk that lies about flushes)
 *   FAULTFS_COUNTER=FILE       count calls in FILE (flock'ed) instead of in memory, so "the
 *                              N-th call" spans several processes (e.g. one `reel ingest`
 *                              per batch)
 *   FAULTFS_ARMED=FILE         faults fire only while FILE exists (remove it to "free space"
 *                              while the process runs; calls are still counted)
 *   FAULTFS_LOG=FILE           append one line per injected fault: "pid call path n errno"
 *                              (tests check that the fault really fired)
 *   FAULTFS_SHADOW=FILE        power-loss model: FILE always holds what the disk would hold
 *                              if power failed now, assuming the page cache wrote nothing back
 *                              on its own: the matched file as of its last successful sync,
 *                              plus every write made through an O_DSYNC/O_SYNC descriptor
 *                              (LMDB's meta page). It is created from the file's current
 *                              contents on first open. To "lose power": kill the process, then
 *                              copy FILE over the data file.
 *
 * The shim is test-only code. It never changes reel's behaviour except by the results the
 * calls return, which is the point.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FD 4096

enum { OP_FDATASYNC = 1, OP_FSYNC = 2, OP_PWRITE = 4, OP_WRITE = 8, OP_WRITEV = 16 };

static struct {
    int inited;
    const char *match;
    unsigned ops;
    long nth;
    int persist;
    double prob;
    unsigned seed;
    int err;
    int shortw, lie, sync_noop, full;
    int fired; /* a fault fired in this process: with 'full', the disk is full from then on */
    const char *counter, *log, *shadow, *armed;
    long count; /* in-memory counter when no FAULTFS_COUNTER */
} cfg;

static struct fdinfo {
    char *path; /* NULL when not matched */
    int dsync;
} fds[MAX_FD];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_fdatasync)(int);
static int (*real_fsync)(int);
static int (*real_statvfs)(const char *, struct statvfs *);
static int (*real_statvfs64)(const char *, struct statvfs64 *);
static int (*real_fstatvfs)(int, struct statvfs *);
static int (*real_fstatvfs64)(int, struct statvfs64 *);

static int parse_errno(const char *s)
{
    if (!s || !*s) return EIO;
    if (!strcmp(s, "EIO")) return EIO;
    if (!strcmp(s, "ENOSPC")) return ENOSPC;
    if (!strcmp(s, "EDQUOT")) return EDQUOT;
    if (!strcmp(s, "EFBIG")) return EFBIG;
    return atoi(s) > 0 ? atoi(s) : EIO;
}

static unsigned parse_ops(const char *s)
{
    unsigned ops = 0;
    if (!s || !*s)
        return OP_FDATASYNC | OP_FSYNC;
    if (strstr(s, "sync") && !strstr(s, "fdatasync") && !strstr(s, "fsync")) ops |= OP_FDATASYNC | OP_FSYNC;
    if (strstr(s, "writes")) ops |= OP_PWRITE | OP_WRITE | OP_WRITEV;
    if (strstr(s, "fdatasync")) ops |= OP_FDATASYNC;
    if (strstr(s, "fsync")) ops |= OP_FSYNC;
    if (strstr(s, "pwrite")) ops |= OP_PWRITE;
    if (strstr(s, "writev")) ops |= OP_WRITEV;
    /* "write" alone (not as part of pwrite/writev/writes) */
    for (const char *p = s; (p = strstr(p, "write")); p += 5)
        if ((p == s || p[-1] == ',') && (p[5] == 0 || p[5] == ','))
            ops |= OP_WRITE;
    return ops;
}

static void init(void)
{
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_close = dlsym(RTLD_NEXT, "close");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_write = dlsym(RTLD_NEXT, "write");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_statvfs = dlsym(RTLD_NEXT, "statvfs");
    real_statvfs64 = dlsym(RTLD_NEXT, "statvfs64");
    real_fstatvfs = dlsym(RTLD_NEXT, "fstatvfs");
    real_fstatvfs64 = dlsym(RTLD_NEXT, "fstatvfs64");
    const char *m = getenv("FAULTFS_MATCH");
    cfg.match = m && *m ? m : "data.mdb";
    cfg.ops = parse_ops(getenv("FAULTFS_OPS"));
    cfg.nth = getenv("FAULTFS_NTH") ? atol(getenv("FAULTFS_NTH")) : 0;
    cfg.persist = getenv("FAULTFS_PERSIST") && atoi(getenv("FAULTFS_PERSIST"));
    cfg.prob = getenv("FAULTFS_PROB") ? atof(getenv("FAULTFS_PROB")) : 0;
    cfg.seed = getenv("FAULTFS_SEED") ? (unsigned)atol(getenv("FAULTFS_SEED")) : 1;
    cfg.err = parse_errno(getenv("FAULTFS_ERRNO"));
    cfg.shortw = getenv("FAULTFS_SHORT") && atoi(getenv("FAULTFS_SHORT"));
    cfg.lie = getenv("FAULTFS_LIE") && atoi(getenv("FAULTFS_LIE"));
    cfg.full = getenv("FAULTFS_FULL") && atoi(getenv("FAULTFS_FULL"));
    cfg.sync_noop = getenv("FAULTFS_SYNC") && !strcmp(getenv("FAULTFS_SYNC"), "noop");
    cfg.counter = getenv("FAULTFS_COUNTER");
    cfg.log = getenv("FAULTFS_LOG");
    cfg.shadow = getenv("FAULTFS_SHADOW");
    cfg.armed = getenv("FAULTFS_ARMED");
    cfg.inited = 1;
}

static void setup(void) { pthread_once(&once, init); }

static const char *op_name(unsigned op)
{
    switch (op) {
    case OP_FDATASYNC: return "fdatasync";
    case OP_FSYNC: return "fsync";
    case OP_PWRITE: return "pwrite";
    case OP_WRITE: return "write";
    default: return "writev";
    }
}

/* ---- shadow file (power-loss model) ---- */

/* Copies 'from' to 'to' with the real calls. Called with 'mu' held. */
static void copy_file(const char *from, const char *to)
{
    int in = real_open(from, O_RDONLY | O_CLOEXEC);
    char tmp[4096 + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", to);
    int out = real_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        if (in >= 0)
            real_close(in);
        return;
    }
    if (in >= 0) {
        char buf[1 << 16];
        ssize_t n;
        while ((n = read(in, buf, sizeof buf)) > 0)
            if (real_write(out, buf, (size_t)n) != n)
                break;
        real_close(in);
    }
    real_close(out);
    rename(tmp, to);
}

static void shadow_sync(int fd)
{
    if (!cfg.shadow || fd < 0 || fd >= MAX_FD || !fds[fd].path)
        return;
    pthread_mutex_lock(&mu);
    copy_file(fds[fd].path, cfg.shadow);
    pthread_mutex_unlock(&mu);
}

/* A durable (O_DSYNC) write of 'n' bytes at 'off' reached the disk: apply it to the shadow. */
static void shadow_write(const void *p, size_t n, off_t off)
{
    pthread_mutex_lock(&mu);
    int out = real_open(cfg.shadow, O_WRONLY | O_CLOEXEC);
    if (out >= 0) {
        real_pwrite(out, p, n, off);
        real_close(out);
    }
    pthread_mutex_unlock(&mu);
}

static void track(int fd, const char *path, int flags)
{
    if (fd < 0 || fd >= MAX_FD || !path || !strstr(path, cfg.match))
        return;
    char *abs = realpath(path, NULL);
    pthread_mutex_lock(&mu);
    free(fds[fd].path);
    fds[fd].path = abs ? abs : strdup(path);
    fds[fd].dsync = (flags & O_DSYNC) == O_DSYNC || (flags & O_SYNC) == O_SYNC;
    if (cfg.shadow && access(cfg.shadow, F_OK) != 0)
        copy_file(fds[fd].path, cfg.shadow);
    pthread_mutex_unlock(&mu);
}

static int matched(int fd) { return fd >= 0 && fd < MAX_FD && fds[fd].path; }

/* ---- deciding to fail ---- */

static long next_count(void)
{
    if (!cfg.counter)
        return __atomic_add_fetch(&cfg.count, 1, __ATOMIC_SEQ_CST);
    long n = 0;
    int fd = real_open(cfg.counter, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return 0;
    flock(fd, LOCK_EX);
    char buf[32] = {0};
    if (pread(fd, buf, sizeof buf - 1, 0) > 0)
        n = atol(buf);
    n++;
    int len = snprintf(buf, sizeof buf, "%ld\n", n);
    if (ftruncate(fd, 0) == 0)
        real_pwrite(fd, buf, (size_t)len, 0);
    flock(fd, LOCK_UN);
    real_close(fd);
    return n;
}

/* Returns 1 when this call of 'op' on 'fd' must fail (and logs it). */
static int should_fail(unsigned op, int fd)
{
    if (!matched(fd) || !(cfg.ops & op) || (!cfg.nth && cfg.prob <= 0))
        return 0;
    long n = next_count();
    int fail = 0;
    if (cfg.nth)
        fail = n == cfg.nth || (cfg.persist && n > cfg.nth);
    if (cfg.armed && access(cfg.armed, F_OK) != 0)
        return 0;
    if (!fail && cfg.prob > 0) {
        /* A hash of (seed, n), not rand(): the same calls fail in every process of a
         * multi-process run that shares FAULTFS_COUNTER, and reruns are reproducible. */
        uint64_t z = (uint64_t)cfg.seed * 0x9e3779b97f4a7c15u + (uint64_t)n;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        z ^= z >> 31;
        fail = (double)(z >> 11) / (double)(1ull << 53) < cfg.prob;
    }
    if (fail)
        __atomic_store_n(&cfg.fired, 1, __ATOMIC_SEQ_CST);
    if (fail && cfg.log) {
        int lf = real_open(cfg.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (lf >= 0) {
            char line[4200];
            int len = snprintf(line, sizeof line, "%d %s %s %ld %s%s\n", (int)getpid(),
                               op_name(op), fds[fd].path, n, strerrorname_np(cfg.err),
                               cfg.lie ? " (lie)" : cfg.shortw ? " (short)" : "");
            real_write(lf, line, (size_t)len);
            real_close(lf);
        }
    }
    return fail;
}

/* ---- interposed calls ---- */

static int get_mode(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    setup();
    va_list ap;
    va_start(ap, flags);
    int mode = get_mode(flags, ap);
    va_end(ap);
    int fd = real_open(path, flags, mode);
    track(fd, path, flags);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    setup();
    va_list ap;
    va_start(ap, flags);
    int mode = get_mode(flags, ap);
    va_end(ap);
    int fd = real_open64(path, flags, mode);
    track(fd, path, flags);
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...)
{
    setup();
    va_list ap;
    va_start(ap, flags);
    int mode = get_mode(flags, ap);
    va_end(ap);
    int fd = real_openat(dirfd, path, flags, mode);
    if (dirfd == AT_FDCWD || path[0] == '/')
        track(fd, path, flags);
    return fd;
}

int close(int fd)
{
    setup();
    if (matched(fd)) {
        pthread_mutex_lock(&mu);
        free(fds[fd].path);
        fds[fd].path = NULL;
        pthread_mutex_unlock(&mu);
    }
    return real_close(fd);
}

static int do_sync(int fd, unsigned op, int (*real)(int))
{
    setup();
    if (!matched(fd))
        return real(fd);
    if (cfg.sync_noop)
        return 0;
    if (should_fail(op, fd)) {
        if (cfg.lie)
            return 0; /* reported durable, but the shadow is not updated: not durable */
        errno = cfg.err;
        return -1;
    }
    int rc = real(fd);
    if (rc == 0)
        shadow_sync(fd);
    return rc;
}

int fdatasync(int fd) { return do_sync(fd, OP_FDATASYNC, real_fdatasync); }
int fsync(int fd) { return do_sync(fd, OP_FSYNC, real_fsync); }

/* 1 when writing 'n' bytes at 'off' (-1: the file offset) makes the file longer. */
static int extends(int fd, off_t off, size_t n)
{
    struct stat st;
    if (off < 0)
        off = lseek(fd, 0, SEEK_CUR);
    return off < 0 || fstat(fd, &st) != 0 || off + (off_t)n > st.st_size;
}

/* Common path of the writes: returns -2 to let the real call run. */
static ssize_t write_fault(unsigned op, int fd, size_t n, off_t off,
                           ssize_t (*do_short)(size_t))
{
    if ((cfg.full && !extends(fd, off, n)) || !should_fail(op, fd))
        return -2;
    if (cfg.lie)
        return (ssize_t)n; /* claims success, writes nothing */
    if (cfg.shortw && n > 1)
        return do_short(n / 2);
    errno = cfg.err;
    return -1;
}

static __thread struct {
    int fd;
    const void *p;
    off_t off;
    const struct iovec *iov;
} wctx;

static ssize_t short_pwrite(size_t n) { return real_pwrite(wctx.fd, wctx.p, n, wctx.off); }
static ssize_t short_write(size_t n) { return real_write(wctx.fd, wctx.p, n); }
static ssize_t short_writev(size_t n)
{
    size_t first = wctx.iov[0].iov_len < n ? wctx.iov[0].iov_len : n;
    return real_write(wctx.fd, wctx.iov[0].iov_base, first);
}

static ssize_t pwrite_common(int fd, const void *p, size_t n, off_t off,
                             ssize_t (*real)(int, const void *, size_t, off_t))
{
    setup();
    if (!matched(fd))
        return real(fd, p, n, off);
    wctx.fd = fd, wctx.p = p, wctx.off = off;
    ssize_t r = write_fault(OP_PWRITE, fd, n, off, short_pwrite);
    if (r != -2)
        return r;
    r = real(fd, p, n, off);
    if (r > 0 && fds[fd].dsync && cfg.shadow && !cfg.sync_noop)
        shadow_write(p, (size_t)r, off);
    return r;
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t off)
{
    setup();
    return pwrite_common(fd, p, n, off, real_pwrite);
}

ssize_t pwrite64(int fd, const void *p, size_t n, off_t off)
{
    setup();
    return pwrite_common(fd, p, n, off, real_pwrite64);
}

ssize_t write(int fd, const void *p, size_t n)
{
    setup();
    if (!matched(fd))
        return real_write(fd, p, n);
    wctx.fd = fd, wctx.p = p;
    ssize_t r = write_fault(OP_WRITE, fd, n, -1, short_write);
    if (r != -2)
        return r;
    off_t off = fds[fd].dsync && cfg.shadow ? lseek(fd, 0, SEEK_CUR) : -1;
    r = real_write(fd, p, n);
    if (r > 0 && off >= 0 && !cfg.sync_noop)
        shadow_write(p, (size_t)r, off);
    return r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    setup();
    if (!matched(fd))
        return real_writev(fd, iov, cnt);
    size_t n = 0;
    for (int i = 0; i < cnt; i++)
        n += iov[i].iov_len;
    wctx.fd = fd, wctx.iov = iov;
    ssize_t r = cnt > 0 ? write_fault(OP_WRITEV, fd, n, -1, short_writev) : -2;
    if (r != -2)
        return r;
    off_t off = fds[fd].dsync && cfg.shadow ? lseek(fd, 0, SEEK_CUR) : -1;
    r = real_writev(fd, iov, cnt);
    if (r > 0 && off >= 0 && !cfg.sync_noop) {
        size_t left = (size_t)r;
        for (int i = 0; i < cnt && left > 0; i++) {
            size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
            shadow_write(iov[i].iov_base, k, off);
            off += (off_t)k;
            left -= k;
        }
    }
    return r;
}

/* ---- free space (FAULTFS_FULL) ---- */

static int full_now(void)
{
    return cfg.full && __atomic_load_n(&cfg.fired, __ATOMIC_SEQ_CST) &&
           (!cfg.armed || access(cfg.armed, F_OK) == 0);
}

#define NO_SPACE(buf) ((buf)->f_bfree = (buf)->f_bavail = 0)

int statvfs(const char *path, struct statvfs *buf)
{
    setup();
    int rc = real_statvfs(path, buf);
    if (rc == 0 && strstr(path, cfg.match) && full_now())
        NO_SPACE(buf);
    return rc;
}

int statvfs64(const char *path, struct statvfs64 *buf)
{
    setup();
    int rc = real_statvfs64(path, buf);
    if (rc == 0 && strstr(path, cfg.match) && full_now())
        NO_SPACE(buf);
    return rc;
}

int fstatvfs(int fd, struct statvfs *buf)
{
    setup();
    int rc = real_fstatvfs(fd, buf);
    if (rc == 0 && matched(fd) && full_now())
        NO_SPACE(buf);
    return rc;
}

int fstatvfs64(int fd, struct statvfs64 *buf)
{
    setup();
    int rc = real_fstatvfs64(fd, buf);
    if (rc == 0 && matched(fd) && full_now())
        NO_SPACE(buf);
    return rc;
}
