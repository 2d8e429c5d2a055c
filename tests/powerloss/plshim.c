/* plshim.c -- LD_PRELOAD shim: loses power at a random point of a running process.
 *
 * It interposes the calls liblmdb makes on its files (open, pwrite, write, writev,
 * ftruncate, fdatasync, fsync, close, mmap; `nm -D liblmdb.so.0`) and watches the regular
 * files under PLSHIM_DIR (lock.mdb excepted: LMDB rebuilds it after a crash). For each
 * watched file it keeps an undo log of every write made since that file's last completed
 * fsync/fdatasync: the bytes each write replaced. At the crash point it takes the lock every
 * watched call takes, puts back what the disk could hold if power failed there, and
 * SIGKILLs the process: nothing can write between the power loss and the kill (a thread
 * that faults on a page put back meanwhile waits for the kill).
 *
 * What "the disk could hold" means (PLSHIM_MODE):
 *   all   (default) every write not covered by a completed sync is gone: each file is as of
 *         its last completed sync, plus the writes made through an O_DSYNC/O_SYNC
 *         descriptor (LMDB's meta page), which were durable when they returned.
 *   some  the page cache may have written back any page at any time before the crash, in
 *         any order: each 4 KiB page written since the last sync comes back as one of its
 *         versions since then (the synced one, or the one after any of the later writes,
 *         chosen at random, never older than a durable write), and the size as of the last
 *         sync or as now (chosen at random).
 * Directory entries are not modelled (ext4 commits a new file's entry with the file's
 * first fsync; LMDB's files are made once, when the store is created): a removed file
 * (unlink) leaves the model, a renamed one (rename) is put back under its new name.
 *
 * Environment:
 *   PLSHIM_DIR=DIR        watch regular files under DIR (required; nothing is watched without)
 *   PLSHIM_CRASH_AT=N     lose power at the N-th watched call (write, pwrite, writev,
 *                         ftruncate, fsync, fdatasync), before it runs
 *   PLSHIM_CRASH_MS=T     or T ms after the first watched open, whichever comes first
 *   PLSHIM_MODE=all|some  see above
 *   PLSHIM_SEED=S         random seed of "some" (default 1)
 *   PLSHIM_SYNC=noop      negative control: fsync/fdatasync return 0 without syncing and
 *                         O_DSYNC writes are not durable (a disk that lies about flushes);
 *                         a power loss must then lose acknowledged writes
 *   PLSHIM_LOG=FILE       at the crash, one line: "crash call=N at=KIND discarded=BYTES
 *                         pages=P files=F"
 *   PLSHIM_STATS=FILE     at exit or at the crash, per call kind: calls, bytes, total and
 *                         max microseconds spent in the real call (the write path's profile;
 *                         without a crash point nothing is recorded for undo, so the shim
 *                         costs only the clock reads and the lock)
 *
 * Test-only code. The process sees the real results of every call it makes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 4096
#define PG 4096

/* ---- real calls ---- */

static int (*real_open)(const char *, int, ...);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_unlink)(const char *);
static int (*real_rename)(const char *, const char *);
static int (*real_ftruncate)(int, off_t);
static int (*real_fdatasync)(int);
static int (*real_fsync)(int);
static int (*real_close)(int);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);

/* ---- state (all under 'mu') ---- */

struct undo {           /* one write since the file's last sync */
    off_t off;
    size_t len;
    uint8_t *old;       /* the 'len' bytes it replaced (zeros past the old end) */
    off_t old_size;     /* the file's size before it */
    int durable;        /* made through an O_DSYNC/O_SYNC descriptor */
};

struct file {
    dev_t dev;
    ino_t ino;
    char *path;
    int rfd;            /* our own read descriptor (LMDB opens the meta fd write-only) */
    off_t size;         /* as the process sees it now */
    off_t synced_size;  /* as of the last completed sync (or durable write) */
    struct undo *log;
    size_t n, cap;
    struct file *next;
};

struct fdinfo {
    struct file *f;
    int dsync;
};

enum { K_PWRITE, K_WRITE, K_WRITEV, K_DSYNC_WRITE, K_FTRUNCATE, K_FDATASYNC, K_FSYNC, K_N };
static const char *kind_name[K_N] = {"pwrite", "write", "writev", "dsync-write", "ftruncate",
                                     "fdatasync", "fsync"};

static struct {
    int inited, enabled, undo, some, sync_noop;
    char dir[PATH_MAX], dir_raw[PATH_MAX];
    size_t dir_len;                         /* 0 until dir_raw exists and is resolved */
    long crash_at, crash_ms, calls;
    unsigned seed;
    const char *log, *stats;
    uint64_t n[K_N], bytes[K_N], ns[K_N], max_ns[K_N];
} cfg;

static uint64_t rnd_state; /* of "some" (rnd(), below) */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct fdinfo fds[MAX_FD];
static struct file *files;
static int timer_started;

static void die(const char *what)
{
    fprintf(stderr, "plshim: %s\n", what);
    abort();
}

static void init(void)
{
    real_open = dlsym(RTLD_NEXT, "open");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_write = dlsym(RTLD_NEXT, "write");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_pwritev = dlsym(RTLD_NEXT, "pwritev");
    real_unlink = dlsym(RTLD_NEXT, "unlink");
    real_rename = dlsym(RTLD_NEXT, "rename");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_close = dlsym(RTLD_NEXT, "close");
    real_mmap = dlsym(RTLD_NEXT, "mmap");
}

/* The settings, from the environment. An ASan build's runtime calls interposed functions
 * before libc's getenv() sees the environment: they are read at the first call that sees
 * it (LD_PRELOAD, which loaded this shim, is in it), once. */
static pthread_mutex_t env_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile int env_read;

static void read_env(void)
{
    if (env_read || !getenv("LD_PRELOAD"))
        return;
    pthread_mutex_lock(&env_mu);
    if (env_read) {
        pthread_mutex_unlock(&env_mu);
        return;
    }
    /* The directory may not exist yet: the first interposed call can come from a
     * library's constructor (an ASan build's run before main), before reel creates it.
     * It is resolved when a file is opened (watched_path). */
    const char *d = getenv("PLSHIM_DIR");
    if (d && *d && strlen(d) < sizeof cfg.dir_raw) {
        strcpy(cfg.dir_raw, d);
        cfg.enabled = 1;
    }
    const char *v;
    cfg.crash_at = (v = getenv("PLSHIM_CRASH_AT")) ? atol(v) : 0;
    cfg.crash_ms = (v = getenv("PLSHIM_CRASH_MS")) ? atol(v) : 0;
    cfg.undo = cfg.crash_at > 0 || cfg.crash_ms > 0;
    cfg.some = (v = getenv("PLSHIM_MODE")) && !strcmp(v, "some");
    cfg.seed = (v = getenv("PLSHIM_SEED")) ? (unsigned)atol(v) : 1;
    rnd_state = cfg.seed;
    cfg.sync_noop = (v = getenv("PLSHIM_SYNC")) && !strcmp(v, "noop");
    cfg.log = getenv("PLSHIM_LOG");
    cfg.stats = getenv("PLSHIM_STATS");
    cfg.inited = 1;
    env_read = 1;
    pthread_mutex_unlock(&env_mu);
}

/* fork() while another thread holds 'mu' would leave the child's copy locked for ever:
 * fork waits for the lock, and the child stops watching anything (its power is not the
 * one this run cuts). reel's dictionary trainer is exec()ed instead (store/ztrain.c): it
 * loads this shim anew but opens no file of the store, so nothing of it is watched. */
static void fork_prepare(void) { pthread_mutex_lock(&mu); }
static void fork_parent(void) { pthread_mutex_unlock(&mu); }
static void fork_child(void)
{
    cfg.enabled = 0;
    cfg.crash_at = 0;
    cfg.stats = NULL;
    memset(fds, 0, sizeof fds);
    pthread_mutex_unlock(&mu);
}

static void init_all(void)
{
    init();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void ensure(void)
{
    pthread_once(&once, init_all);
    read_env();
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void count(int k, size_t bytes, uint64_t ns)
{
    cfg.n[k]++;
    cfg.bytes[k] += bytes;
    cfg.ns[k] += ns;
    if (ns > cfg.max_ns[k])
        cfg.max_ns[k] = ns;
}

static void write_stats(void)
{
    if (!cfg.stats)
        return;
    FILE *f = fopen(cfg.stats, "w");
    if (!f)
        return;
    fprintf(f, "kind calls bytes total_us max_us\n");
    for (int k = 0; k < K_N; k++)
        fprintf(f, "%s %llu %llu %llu %llu\n", kind_name[k], (unsigned long long)cfg.n[k],
                (unsigned long long)cfg.bytes[k], (unsigned long long)(cfg.ns[k] / 1000),
                (unsigned long long)(cfg.max_ns[k] / 1000));
    fclose(f);
}

__attribute__((destructor)) static void at_exit(void)
{
    if (cfg.inited && cfg.enabled) {
        pthread_mutex_lock(&mu);
        write_stats();
        pthread_mutex_unlock(&mu);
    }
}

/* ---- the power loss ---- */

static unsigned rnd(void) /* splitmix64: every bit is usable, unlike an LCG's low ones */
{
    uint64_t z = (rnd_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (unsigned)((z ^ (z >> 31)) >> 32);
}

/* Per-page bookkeeping of "some": how many logged writes touch the page ('n'), how many of
 * them to keep ('keep', the oldest ones) and a countdown used by the reverse pass. */
struct page {
    off_t pg;
    size_t n, keep, left;
    int used;
};

static struct page *page_slot(struct page *t, size_t cap, off_t pg)
{
    size_t h = ((uint64_t)pg * 11400714819323198485ull) % cap;
    while (t[h].used && t[h].pg != pg)
        h = (h + 1) % cap;
    if (!t[h].used) {
        t[h].used = 1;
        t[h].pg = pg;
    }
    return &t[h];
}

/* Puts back, in file 'f' opened as 'fd', the pages the disk holds after the power loss;
 * adds the bytes and pages taken back to '*bytes' / '*pages'. */
static void lose_file(struct file *f, int fd, uint64_t *bytes, uint64_t *pages)
{
    size_t cap = 16;
    for (size_t i = 0; i < f->n; i++)
        cap += 2 * (f->log[i].len / PG + 2);
    struct page *t = calloc(cap, sizeof *t);
    if (!t)
        die("out of memory at the crash");
    for (size_t i = 0; i < f->n; i++) { /* count, and the rank of the newest durable write */
        struct undo *u = &f->log[i];
        for (off_t p = u->off / PG; u->len && p <= (off_t)((u->off + u->len - 1) / PG); p++) {
            struct page *s = page_slot(t, cap, p);
            s->n++;
            if (u->durable)
                s->keep = s->n;
        }
    }
    for (size_t h = 0; h < cap; h++)
        if (t[h].used) {
            if (cfg.some) {
                size_t k = rnd() % (t[h].n + 1);
                if (k > t[h].keep)
                    t[h].keep = k;
            }
            t[h].left = t[h].n;
            if (t[h].keep < t[h].n)
                (*pages)++;
        }
    for (size_t i = f->n; i-- > 0;) { /* newest first: each revert restores an older version */
        struct undo *u = &f->log[i];
        for (off_t p = u->off / PG; u->len && p <= (off_t)((u->off + u->len - 1) / PG); p++) {
            struct page *s = page_slot(t, cap, p);
            size_t rank = s->left--;
            if (rank <= s->keep)
                continue;
            off_t a = p * PG > u->off ? p * PG : u->off;
            off_t b = (p + 1) * PG < u->off + (off_t)u->len ? (p + 1) * PG : u->off + (off_t)u->len;
            if (real_pwrite(fd, u->old + (a - u->off), (size_t)(b - a), a) != b - a)
                die("could not put a page back");
            *bytes += (uint64_t)(b - a);
        }
    }
    free(t);
}

/* The size 'f' has after the power loss. */
static off_t lost_size(const struct file *f)
{
    return cfg.some && rnd() % 2 ? f->size : f->synced_size;
}

/* Called with 'mu' held: the power fails now. Never returns. The pages go back first, then
 * the log line, then the sizes: a thread of the process that reads the map past a cut end
 * dies of SIGBUS, which is as dead as the SIGKILL that follows (no watched call can run
 * meanwhile: they all wait for 'mu'). */
/* A thread that faults on the map while the power fails (it read a page the loss is
 * putting back: with --journal, data.mdb holds every page written since the last
 * checkpoint unflushed), or that LMDB aborts for what it read there (an assertion on a
 * freelist page put back), waits for the SIGKILL: it is part of the power loss, which
 * stops the process at once in reality. No thread can write meanwhile (every watched
 * call waits for the shim's lock) or acknowledge anything (an acknowledgement follows a
 * flush, a watched call). */
static void park(int sig)
{
    (void)sig;
    for (;;)
        pause();
}

static void lose_power(const char *at)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = park;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
    uint64_t bytes = 0, pages = 0;
    int nfiles = 0, fd[64];
    struct file *f = files;
    for (; f && nfiles < 64; f = f->next, nfiles++) {
        fd[nfiles] = real_open(f->path, O_RDWR | O_CLOEXEC);
        if (fd[nfiles] >= 0) /* a removed file: nothing of it survives in this model either */
            lose_file(f, fd[nfiles], &bytes, &pages);
    }
    if (f)
        die("more than 64 watched files");
    if (cfg.log) {
        int lfd = real_open(cfg.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (lfd >= 0) {
            char line[256];
            int n = snprintf(line, sizeof line,
                             "crash call=%ld at=%s discarded=%llu pages=%llu files=%d\n",
                             cfg.calls, at, (unsigned long long)bytes,
                             (unsigned long long)pages, nfiles);
            if (real_write(lfd, line, (size_t)n) < 0)
                (void)0;
            real_close(lfd);
        }
    }
    write_stats();
    f = files;
    for (int i = 0; i < nfiles; i++, f = f->next)
        if (fd[i] >= 0 && real_ftruncate(fd[i], lost_size(f)))
            die("could not put the size back");
    kill(getpid(), SIGKILL);
    for (;;)
        pause();
}

static void *timer_main(void *arg)
{
    (void)arg;
    struct timespec t = {cfg.crash_ms / 1000, (cfg.crash_ms % 1000) * 1000000};
    while (nanosleep(&t, &t) && errno == EINTR)
        ;
    pthread_mutex_lock(&mu);
    lose_power("timer");
    return NULL;
}

/* A watched call is about to run (with 'mu' held): the crash point may be now. */
static void step(const char *kind)
{
    cfg.calls++;
    if (cfg.crash_at && cfg.calls == cfg.crash_at)
        lose_power(kind);
}

/* ---- files ---- */

static struct file *file_of(int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode))
        return NULL;
    for (struct file *f = files; f; f = f->next)
        if (f->dev == st.st_dev && f->ino == st.st_ino)
            return f;
    struct file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path)))
        die("out of memory");
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    if ((f->rfd = real_open(path, O_RDONLY | O_CLOEXEC)) < 0)
        die("could not open a watched file for reading");
    f->size = f->synced_size = st.st_size; /* what exists at open is taken as durable */
    f->next = files;
    files = f;
    return f;
}

static int watched_path(const char *abs)
{
    if (!cfg.dir_len) {
        if (!realpath(cfg.dir_raw, cfg.dir))
            return 0;
        cfg.dir_len = strlen(cfg.dir);
    }
    size_t n = strlen(abs);
    if (n <= cfg.dir_len || strncmp(abs, cfg.dir, cfg.dir_len) || abs[cfg.dir_len] != '/')
        return 0;
    return strcmp(strrchr(abs, '/'), "/lock.mdb") != 0;
}

static void track(int fd, const char *path, int flags)
{
    char abs[PATH_MAX];
    if (fd < 0 || fd >= MAX_FD || !cfg.enabled || !realpath(path, abs))
        return;
    pthread_mutex_lock(&mu); /* watched_path() may resolve cfg.dir */
    struct file *f = watched_path(abs) ? file_of(fd, abs) : NULL;
    if (f) {
        fds[fd].f = f;
        fds[fd].dsync = (flags & O_DSYNC) == O_DSYNC || (flags & O_SYNC) == O_SYNC;
        if (cfg.crash_ms && !timer_started) {
            pthread_t th;
            timer_started = 1;
            if (pthread_create(&th, NULL, timer_main, NULL) == 0)
                pthread_detach(th);
        }
    }
    pthread_mutex_unlock(&mu);
}

static struct file *watched(int fd)
{
    ensure();
    return fd >= 0 && fd < MAX_FD ? fds[fd].f : NULL;
}

/* Records what [off, off+len) of 'f' holds before a write (with 'mu' held). */
static void log_write(struct file *f, off_t off, size_t len, int durable)
{
    if (!cfg.undo || !len)
        return;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        struct undo *l = realloc(f->log, cap * sizeof *l);
        if (!l)
            die("out of memory");
        f->log = l, f->cap = cap;
    }
    struct undo *u = &f->log[f->n++];
    u->off = off;
    u->len = len;
    u->old_size = f->size;
    u->durable = durable;
    if (!(u->old = calloc(1, len)))
        die("out of memory");
    if (off < f->size) {
        size_t want = (size_t)(f->size - off) < len ? (size_t)(f->size - off) : len;
        if (pread(f->rfd, u->old, want, off) < 0)
            die("could not read what a write replaces");
    }
}

/* A sync completed: the first 'covered' logged writes and size 'size' are durable. */
static void clear_log(struct file *f, size_t covered, off_t size)
{
    for (size_t i = 0; i < covered; i++)
        free(f->log[i].old);
    memmove(f->log, f->log + covered, (f->n - covered) * sizeof *f->log);
    f->n -= covered;
    if (size > f->synced_size)
        f->synced_size = size;
}

static void wrote(struct file *f, int durable, off_t off, ssize_t r)
{
    if (r > 0 && off + r > f->size)
        f->size = off + r;
    if (r > 0 && durable && !cfg.sync_noop && off + r > f->synced_size)
        f->synced_size = off + r;
}

/* ---- interposed calls ---- */

int open(const char *path, int flags, ...)
{
    ensure();
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    int fd = real_open(path, flags, mode);
    if (fd >= 0 && cfg.enabled)
        track(fd, path, flags);
    return fd;
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int close(int fd)
{
    ensure();
    if (fd >= 0 && fd < MAX_FD && fds[fd].f) {
        pthread_mutex_lock(&mu);
        fds[fd].f = NULL;
        pthread_mutex_unlock(&mu);
    }
    return real_close(fd);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (watched(fd) && (prot & PROT_WRITE) && (flags & MAP_SHARED))
        die("a writable shared map of a watched file: writes through it are not modelled");
    return real_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));

static int write_begin(int fd, struct file *f, int kind, off_t *off, size_t n, uint64_t *t0);
static void write_end(int fd, struct file *f, int k, off_t off, ssize_t r, uint64_t t0);

ssize_t pwrite(int fd, const void *p, size_t n, off_t off)
{
    struct file *f = watched(fd);
    if (!f)
        return real_pwrite(fd, p, n, off);
    uint64_t t0;
    int k = write_begin(fd, f, K_PWRITE, &off, n, &t0);
    ssize_t r = real_pwrite(fd, p, n, off);
    write_end(fd, f, k, off, r, t0);
    return r;
}

ssize_t pwrite64(int fd, const void *p, size_t n, off_t off) __attribute__((alias("pwrite")));

static off_t position(int fd, struct file *f)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_APPEND))
        return f->size;
    return lseek(fd, 0, SEEK_CUR);
}

static size_t iov_bytes(const struct iovec *iov, int cnt)
{
    size_t n = 0;
    for (int i = 0; i < cnt; i++)
        n += iov[i].iov_len;
    return n;
}

/* Every write to a watched file: takes 'mu' (held until write_end), counts the step (the
 * power may fail here), resolves '*off' (-1: the descriptor's own position) and keeps the
 * bytes the write of 'n' bytes replaces; returns the kind counted ('kind', or a dsync
 * write on an O_DSYNC descriptor) and the start time in '*t0'. */
static int write_begin(int fd, struct file *f, int kind, off_t *off, size_t n, uint64_t *t0)
{
    pthread_mutex_lock(&mu);
    int k = fds[fd].dsync ? K_DSYNC_WRITE : kind;
    step(kind_name[k]);
    if (*off < 0)
        *off = position(fd, f);
    log_write(f, *off, n, fds[fd].dsync && !cfg.sync_noop);
    *t0 = now_ns();
    return k;
}

/* After the real write: its count and time, what it wrote into the model; releases 'mu'. */
static void write_end(int fd, struct file *f, int k, off_t off, ssize_t r, uint64_t t0)
{
    count(k, r > 0 ? (size_t)r : 0, now_ns() - t0);
    wrote(f, fds[fd].dsync, off, r);
    pthread_mutex_unlock(&mu);
}

ssize_t write(int fd, const void *p, size_t n)
{
    struct file *f = watched(fd);
    if (!f)
        return real_write(fd, p, n);
    uint64_t t0;
    off_t off = -1;
    int k = write_begin(fd, f, K_WRITE, &off, n, &t0);
    ssize_t r = real_write(fd, p, n);
    write_end(fd, f, k, off, r, t0);
    return r;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    struct file *f = watched(fd);
    if (!f)
        return real_writev(fd, iov, cnt);
    uint64_t t0;
    off_t off = -1;
    int k = write_begin(fd, f, K_WRITEV, &off, iov_bytes(iov, cnt), &t0);
    ssize_t r = real_writev(fd, iov, cnt);
    write_end(fd, f, k, off, r, t0);
    return r;
}

/* The journal's write (store/jfile.c). */
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    struct file *f = watched(fd);
    if (!f)
        return real_pwritev(fd, iov, cnt, off);
    uint64_t t0;
    int k = write_begin(fd, f, K_WRITEV, &off, iov_bytes(iov, cnt), &t0);
    ssize_t r = real_pwritev(fd, iov, cnt, off);
    write_end(fd, f, k, off, r, t0);
    return r;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
    __attribute__((alias("pwritev")));

/* A removed watched file leaves the model (the journal removes old files; a removal that
 * did not reach the disk only brings back a file recovery skips): its undo log goes. */
int unlink(const char *path)
{
    ensure();
    struct stat st;
    int have = cfg.enabled && stat(path, &st) == 0;
    int r = real_unlink(path);
    if (r == 0 && have) {
        pthread_mutex_lock(&mu);
        for (struct file **pp = &files; *pp; pp = &(*pp)->next) {
            struct file *f = *pp;
            if (f->dev != st.st_dev || f->ino != st.st_ino)
                continue;
            for (int i = 0; i < MAX_FD; i++)
                if (fds[i].f == f)
                    fds[i].f = NULL;
            *pp = f->next;
            real_close(f->rfd);
            for (size_t i = 0; i < f->n; i++)
                free(f->log[i].old);
            free(f->log);
            free(f->path);
            free(f);
            break;
        }
        pthread_mutex_unlock(&mu);
    }
    return r;
}

/* A renamed watched file (the journal recycles its files) is put back under its new name. */
int rename(const char *from, const char *to)
{
    ensure();
    int r = real_rename(from, to);
    struct stat st;
    if (r == 0 && cfg.enabled && stat(to, &st) == 0) {
        pthread_mutex_lock(&mu);
        for (struct file *f = files; f; f = f->next)
            if (f->dev == st.st_dev && f->ino == st.st_ino) {
                char *p = strdup(to);
                if (!p)
                    die("out of memory");
                free(f->path);
                f->path = p;
            }
        pthread_mutex_unlock(&mu);
    }
    return r;
}

int ftruncate(int fd, off_t len)
{
    struct file *f = watched(fd);
    if (!f)
        return real_ftruncate(fd, len);
    pthread_mutex_lock(&mu);
    step("ftruncate");
    if (len < f->size) /* what the cut takes away comes back if the cut is lost */
        log_write(f, len, (size_t)(f->size - len), 0);
    uint64_t t0 = now_ns();
    int r = real_ftruncate(fd, len);
    count(K_FTRUNCATE, 0, now_ns() - t0);
    if (r == 0)
        f->size = len;
    pthread_mutex_unlock(&mu);
    return r;
}

int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));

/* The real sync runs without 'mu', so that the timer can cut the power while a sync is in
 * flight (then nothing it would have covered is durable). What it covers when it completes:
 * the writes logged before it started. */
static int sync_call(int fd, int k, int (*real)(int))
{
    struct file *f = watched(fd);
    if (!f)
        return real(fd);
    pthread_mutex_lock(&mu);
    step(kind_name[k]);
    size_t covered = f->n;
    off_t size = f->size;
    pthread_mutex_unlock(&mu);
    int r = 0;
    uint64_t t0 = now_ns();
    if (!cfg.sync_noop)
        r = real(fd);
    uint64_t ns = now_ns() - t0;
    pthread_mutex_lock(&mu);
    count(k, 0, ns);
    if (r == 0 && !cfg.sync_noop)
        clear_log(f, covered, size);
    pthread_mutex_unlock(&mu);
    return r;
}

int fdatasync(int fd) { return sync_call(fd, K_FDATASYNC, real_fdatasync); }

int fsync(int fd) { return sync_call(fd, K_FSYNC, real_fsync); }
