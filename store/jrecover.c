/* jrecover.c -- journal.lock, and recovery of a journal left by a crash
 * (docs/FORMAT.md section 17.4).
 *
 * A journaling process holds journal.lock exclusively (flock) for its life, with its pid
 * written in it; a process that writes without the journal holds it shared, a reader only
 * while it opens. So an exclusive lock taken at open means no process journals, and any
 * journal file left is the journal of a process that ended without closing: recovery
 * writes its newest checkpoint's meta page over both meta slots of data.mdb (the pages of
 * that snapshot were flushed and pinned), then replays every complete group after it, each
 * in one write transaction, flushes, clears part 0x2 and removes the journal. A record cut
 * short or failing its CRC ends the replay: it was never acknowledged.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/jfile.h"

/* ---- CRC-32C (Castagnoli), bytewise ---- */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc_soft(uint32_t crc, const uint8_t *b, size_t n)
{
    pthread_once(&crc_once, crc_init);
    while (n--)
        crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
/* SSE 4.2's crc32 instruction computes the same CRC-32C, 8 bytes at a time: the journal
 * checks every byte it writes, and the bytewise table cost ~2 us per KiB. */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *b,
                                                        size_t n)
{
    uint64_t c = crc;
    for (; n >= 8; n -= 8, b += 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    crc = (uint32_t)c;
    while (n--)
        crc = __builtin_ia32_crc32qi(crc, *b++);
    return crc;
}
#endif

uint32_t store__crc32c(uint32_t crc, const void *p, size_t n)
{
    crc = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        return ~crc_hw(crc, p, n);
#endif
    return ~crc_soft(crc, p, n);
}

int store__jr_fault(const char *what)
{
    const char *f = getenv("REEL_JOURNAL_FAULT");
    return f && !strcmp(f, what);
}

/* ---- files ---- */

void store__jr_path(const char *dir, uint64_t no, char *out, size_t cap)
{
    snprintf(out, cap, "%s/journal-%016" PRIx64, dir, no);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int store__jr_list(const char *dir, uint64_t **nos, size_t *n)
{
    *nos = NULL, *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : errno;
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        char *end;
        if (strlen(e->d_name) != JR_NAME_LEN || strncmp(e->d_name, "journal-", 8))
            continue;
        uint64_t no = strtoull(e->d_name + 8, &end, 16);
        if (*end)
            continue;
        if (*n == cap) {
            uint64_t *m = realloc(*nos, (cap = cap ? cap * 2 : 8) * sizeof *m);
            if (!m) {
                rc = ENOMEM;
                break;
            }
            *nos = m;
        }
        (*nos)[(*n)++] = no;
    }
    closedir(d);
    if (!rc && *n)
        qsort(*nos, *n, sizeof **nos, cmp_u64);
    return rc;
}

/* The whole file into '*buf' ('*len'); 0 or an errno. */
static int slurp(const char *path, uint8_t **buf, size_t *len)
{
    *buf = NULL, *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st))
        return fd < 0 ? errno : (close(fd), errno);
    size_t want = (size_t)st.st_size, got = 0;
    uint8_t *b = malloc(want ? want : 1);
    if (!b)
        return close(fd), ENOMEM;
    while (got < want) {
        ssize_t r = read(fd, b + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    *buf = b, *len = got;
    return 0;
}

/* One record at 'p' (of 'left' bytes): its type, txnid, payload. 0 when whole and its CRC
 * holds, -1 otherwise (a torn tail ends the file). */
static int record_at(const uint8_t *p, size_t left, int *type, uint64_t *txnid,
                     const uint8_t **body, size_t *blen, size_t *used)
{
    if (left < JR_HEAD)
        return -1;
    uint32_t len = (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
    uint32_t crc = (uint32_t)p[4] << 24 | p[5] << 16 | p[6] << 8 | p[7];
    if (len < 9 || len > left - 8 || store__crc32c(0, p + 8, len) != crc)
        return -1;
    *type = p[8];
    *txnid = store__get_u64(p + 9);
    *body = p + JR_HEAD, *blen = len - 9, *used = 8 + len;
    return 0;
}

/* The checkpoint heading file 'buf': its txnid and meta page. 0 or -1. */
static int checkpoint_of(const uint8_t *buf, size_t len, uint64_t *txnid, const uint8_t **meta,
                         size_t *psize)
{
    int type;
    const uint8_t *body;
    size_t blen, used;
    if (len < 8 || memcmp(buf, JR_MAGIC, 8) ||
        record_at(buf + 8, len - 8, &type, txnid, &body, &blen, &used) || type != JR_CHECKPOINT ||
        blen < 4)
        return -1;
    *psize = (size_t)body[0] << 24 | body[1] << 16 | body[2] << 8 | body[3];
    if (*psize < 512 || *psize != blen - 4)
        return -1;
    *meta = body + 4;
    return 0;
}

/* ---- replay ---- */

static const char *const tree_names[] = {"meta", "sessions", "session_ids", "events",
                                         "event_ids", "seqs", "recent", "changes",
                                         "consumers", "event_uuids", "ixtail"};
#define N_TREES (sizeof tree_names / sizeof tree_names[0])

struct replay {
    MDB_env *env;
    MDB_dbi dbi[N_TREES];
    int have[N_TREES];
    uint64_t groups, writes;
};

/* Applies one group's log in 'txn'. 0, an LMDB code, or MDB_CORRUPTED (a log that does
 * not parse: its CRC held, so it is a bug, never a torn write). */
static int apply_log(struct replay *rp, MDB_txn *txn, const uint8_t *p, size_t n)
{
    while (n) {
        if (n < 9)
            return MDB_CORRUPTED;
        int op = p[0], tree = p[1], flags = p[2];
        size_t klen = (size_t)p[3] << 8 | p[4];
        size_t vlen = (size_t)p[5] << 24 | (size_t)p[6] << 16 | (size_t)p[7] << 8 | p[8];
        if (tree >= (int)N_TREES || 9 + klen > n || vlen > n - 9 - klen)
            return MDB_CORRUPTED;
        MDB_val k = {klen, (void *)(p + 9)}, v = {vlen, (void *)(p + 9 + klen)};
        int rc;
        if (op == 'C') {
            rc = mdb_dbi_open(txn, tree_names[tree], MDB_CREATE, &rp->dbi[tree]);
            rp->have[tree] = !rc;
        } else if (!rp->have[tree]) {
            rc = MDB_CORRUPTED;
        } else if (op == 'P') {
            rc = mdb_put(txn, rp->dbi[tree], &k, &v,
                         (flags & 1 ? MDB_APPEND : 0) | (flags & 2 ? MDB_APPENDDUP : 0));
        } else if (op == 'D') {
            rc = mdb_del(txn, rp->dbi[tree], &k, vlen ? &v : NULL);
        } else {
            rc = MDB_CORRUPTED;
        }
        if (rc)
            return rc;
        rp->writes++;
        p += 9 + klen + vlen, n -= 9 + klen + vlen;
    }
    return 0;
}

/* One group in its own write transaction, growing the map when it is full. */
static int replay_group(struct replay *rp, const uint8_t *log, size_t n)
{
    for (int tries = 0;; tries++) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(rp->env, NULL, 0, &txn);
        if (rc)
            return rc;
        if (!(rc = apply_log(rp, txn, log, n))) {
            rc = mdb_txn_commit(txn);
        } else {
            mdb_txn_abort(txn);
        }
        if (rc != MDB_MAP_FULL || tries == 24)
            return rc;
        MDB_envinfo info;
        mdb_env_info(rp->env, &info);
        if ((rc = mdb_env_set_mapsize(rp->env, info.me_mapsize * 2)))
            return rc;
    }
}

/* Opens the trees the journal names (those that exist). */
static int open_trees(struct replay *rp)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(rp->env, NULL, 0, &txn);
    if (rc)
        return rc;
    for (size_t i = 0; i < N_TREES && !rc; i++) {
        rc = mdb_dbi_open(txn, tree_names[i], 0, &rp->dbi[i]);
        rp->have[i] = !rc;
        rc = rc == MDB_NOTFOUND ? 0 : rc;
    }
    if (rc)
        mdb_txn_abort(txn);
    else
        rc = mdb_txn_commit(txn);
    return rc;
}

/* Clears part 0x2 in the format record (the store is whole without its journal). */
static int clear_part(struct replay *rp)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(rp->env, NULL, 0, &txn);
    if (rc)
        return rc;
    MDB_val k = {6, "format"}, v;
    rc = mdb_get(txn, rp->dbi[0], &k, &v);
    if (!rc && v.mv_size == 8 && (((const uint8_t *)v.mv_data)[7] & STORE__PART_JOURNAL)) {
        uint8_t be[8];
        memcpy(be, v.mv_data, 8);
        be[7] &= (uint8_t)~STORE__PART_JOURNAL;
        uint32_t parts = (uint32_t)be[4] << 24 | be[5] << 16 | be[6] << 8 | be[7];
        MDB_val nv = {parts ? 8 : 4, be};
        rc = mdb_put(txn, rp->dbi[0], &k, &nv, 0);
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }
    if (rc)
        mdb_txn_abort(txn);
    else
        rc = mdb_txn_commit(txn);
    return rc;
}

/* Writes meta page 'meta' over both meta slots of data.mdb and flushes it. */
static int restore_meta(const char *dir, const uint8_t *meta, size_t psize)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno;
    uint8_t *page = malloc(psize);
    if (!page)
        return close(fd), ENOMEM;
    int rc = 0;
    for (uint64_t slot = 0; slot < 2 && !rc; slot++) {
        memcpy(page, meta, psize);
        memcpy(page, &slot, sizeof slot); /* mp_pgno: the slot's own page number */
        rc = store__jr_pwrite(fd, page, psize, slot * psize);
    }
    if (!rc && fdatasync(fd))
        rc = errno;
    free(page);
    close(fd);
    return rc;
}

/* Replays the groups after checkpoint 'ck' from every file, in order. Groups start right
 * after the file's header, whose size is fixed ('psize'): a header torn while a file was
 * being recycled (17.3) never hides the groups behind it. A recycled file's older records
 * after its tail have txnids below its checkpoint's, and are skipped. */
static int replay_files(struct replay *rp, const char *dir, const uint64_t *nos, size_t n,
                        uint64_t ck, size_t psize)
{
    char path[4096];
    uint64_t last = ck;
    for (size_t i = 0; i < n; i++) {
        uint8_t *buf;
        size_t len;
        store__jr_path(dir, nos[i], path, sizeof path);
        int rc = slurp(path, &buf, &len);
        if (rc)
            return rc;
        size_t off = 8 + JR_HEAD + 4 + psize;
        int type;
        uint64_t txnid;
        const uint8_t *body;
        size_t blen, used;
        while (!rc && off < len &&
               !record_at(buf + off, len - off, &type, &txnid, &body, &blen, &used)) {
            off += used;
            if (type != JR_GROUP || txnid <= last)
                continue; /* a checkpoint, or a group its snapshot already holds */
            last = txnid;
            if (!(rc = replay_group(rp, body, blen)))
                rp->groups++;
        }
        free(buf);
        if (rc)
            return rc;
    }
    return 0;
}

/* The newest checkpoint: its file's index in 'nos' into '*at'. -1 when there is none. */
static int newest_checkpoint(const char *dir, const uint64_t *nos, size_t n, size_t *at,
                             uint64_t *txnid, uint8_t **meta, size_t *psize)
{
    char path[4096];
    for (size_t i = n; i-- > 0;) {
        uint8_t *buf;
        size_t len;
        const uint8_t *m;
        store__jr_path(dir, nos[i], path, sizeof path);
        if (slurp(path, &buf, &len))
            continue;
        if (!checkpoint_of(buf, len, txnid, &m, psize) && (*meta = malloc(*psize))) {
            memcpy(*meta, m, *psize);
            free(buf);
            *at = i;
            return 0;
        }
        free(buf);
    }
    return -1;
}

static int recover(const char *dir, const uint64_t *nos, size_t n)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t at = 0, psize = 0;
    uint64_t ck = 0;
    uint8_t *meta = NULL;
    struct replay rp = {0};
    MDB_txn *pin = NULL;
    int rc = 0;
    if (newest_checkpoint(dir, nos, n, &at, &ck, &meta, &psize))
        return 0; /* no durable checkpoint: no group was written after one (section 17.4) */
    if ((rc = restore_meta(dir, meta, psize)))
        goto out;
    if ((rc = mdb_env_create(&rp.env)) || (rc = mdb_env_set_maxdbs(rp.env, 16)) ||
        (rc = mdb_env_open(rp.env, dir, MDB_NOTLS | MDB_NOSYNC, 0644)) ||
        (rc = mdb_txn_begin(rp.env, NULL, MDB_RDONLY, &pin)) || (rc = open_trees(&rp)))
        goto out;
    /* 'pin' keeps the checkpoint's pages while the replay writes: a recovery cut short
     * (kill -9, power loss) is run again from the same checkpoint, which must be whole. */
    /* the file before the checkpoint's may hold groups after it (written before the
     * switch); older ones hold none, and the checkpoint's txnid skips them anyway */
    if ((rc = replay_files(&rp, dir, nos, n, ck, psize)))
        goto out;
    if (store__jr_fault("cut-recovery")) /* tests: a recovery cut short, run again */
        _exit(9);
    if ((rc = clear_part(&rp)))
        goto out;
    rc = mdb_env_sync(rp.env, 1);
out:
    if (pin)
        mdb_txn_abort(pin);
    if (rp.env)
        mdb_env_close(rp.env);
    free(meta);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!rc)
        fprintf(stderr, "reel: recovered '%s' from its journal: checkpoint of transaction %"
                PRIu64 ", %" PRIu64 " groups (%" PRIu64 " writes) replayed in %.1f ms\n", dir,
                ck, rp.groups, rp.writes,
                (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    return rc;
}

/* ---- journal.lock ---- */

/* The pid written in journal.lock (0 when unreadable). */
static long lock_pid(int fd)
{
    char b[32] = {0};
    ssize_t n = pread(fd, b, sizeof b - 1, 0);
    return n > 0 ? strtol(b, NULL, 10) : 0;
}

/* The pid of another process that has the LMDB environment open (its lock file's
 * shared lock), 0 when none. */
static long env_user(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    long pid = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK ? (long)fl.l_pid : 0;
    close(fd);
    return pid;
}

/* Recovers the journal files of 'dir' (journal.lock held exclusively), removes them. */
int store__jr_done(const char *dir, int dir_fd, int set)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/journal-done", dir);
    if (set) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return errno;
        close(fd);
    } else if (unlink(path) && errno != ENOENT) {
        return errno;
    }
    return fsync(dir_fd) ? errno : 0;
}

int store__jr_remove(const char *dir, int dir_fd)
{
    uint64_t *nos = NULL;
    size_t n = 0;
    int rc = store__jr_list(dir, &nos, &n);
    char path[4096];
    for (size_t i = 0; !rc && i < n; i++) {
        store__jr_path(dir, nos[i], path, sizeof path);
        if (unlink(path) && errno != ENOENT)
            rc = errno;
    }
    free(nos);
    if (!rc && fsync(dir_fd))
        rc = errno;
    return rc ? rc : store__jr_done(dir, dir_fd, 0);
}

/* 1 when journal-done exists: data.mdb is whole and flushed, the files only remain. */
static int done_mark(const char *dir)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/journal-done", dir);
    return stat(path, &st) == 0;
}

static int recover_dir(const char *dir, int dir_fd)
{
    uint64_t *nos = NULL;
    size_t n = 0;
    int rc = store__jr_list(dir, &nos, &n);
    if (!rc && n && done_mark(dir)) { /* a recovery or clean close cut short in its end */
        free(nos);
        if ((rc = store__jr_remove(dir, dir_fd)))
            return store__set_error("cannot remove the journal of '%s': %s", dir,
                                    strerror(rc)), REEL_EIO;
        return REEL_OK;
    }
    if (!rc && n) {
        long other = env_user(dir);
        if (other) {
            free(nos);
            store__set_error("'%s' has a journal to recover, but process %ld has the store "
                             "open; stop it first", dir, other);
            return REEL_EUNAVAILABLE;
        }
        if ((rc = recover(dir, nos, n))) {
            free(nos);
            store__set_error("cannot recover '%s' from its journal: %s", dir, mdb_strerror(rc));
            return rc == MDB_CORRUPTED ? REEL_ECORRUPT : store__err_from_mdb(rc);
        }
        /* journal-done first: removing several files is not atomic, and a recovery from
         * what a cut-short removal left would miss the removed files' groups */
        if (!(rc = store__jr_done(dir, dir_fd, 1)))
            rc = store__jr_remove(dir, dir_fd);
    }
    free(nos);
    if (rc) {
        store__set_error("cannot read the journal of '%s': %s", dir, strerror(rc));
        return REEL_EIO;
    }
    return REEL_OK;
}

static struct store__journal *jr_new(const char *dir)
{
    struct store__journal *jr = calloc(1, sizeof *jr);
    if (!jr)
        return NULL;
    snprintf(jr->dir, sizeof jr->dir, "%s", dir);
    jr->lock_fd = jr->dir_fd = jr->fd = jr->data_fd = -1;
    pthread_mutex_init(&jr->mu, NULL);
    pthread_cond_init(&jr->cv, NULL);
    pthread_cond_init(&jr->ck_cv, NULL);
    pthread_cond_init(&jr->room, NULL);
    return jr;
}

/* Takes the lock as a process that journals: exclusive, no other process in the env. */
static int lock_journaling(struct store__journal *jr)
{
    if (flock(jr->lock_fd, LOCK_EX | LOCK_NB)) {
        store__set_error("'%s/journal.lock' is held by process %ld, which journals this "
                         "store; stop it first", jr->dir, lock_pid(jr->lock_fd));
        return REEL_EUNAVAILABLE;
    }
    long other = env_user(jr->dir);
    if (other) {
        store__set_error("cannot journal '%s': process %ld has the store open (a journaling "
                         "process must be its only one); stop it first", jr->dir, other);
        return REEL_EUNAVAILABLE;
    }
    char b[32];
    int n = snprintf(b, sizeof b, "%ld\n", (long)getpid());
    if (ftruncate(jr->lock_fd, 0) || store__jr_pwrite(jr->lock_fd, b, (size_t)n, 0))
        return store__set_error("cannot write '%s/journal.lock': %s", jr->dir,
                                strerror(errno)), REEL_EIO;
    return REEL_OK;
}

/* Takes the lock as a plain writer (shared, after recovering under an exclusive lock when
 * nobody else holds it) or a reader (released after open). */
static int lock_plain(struct store__journal *jr, int read_only)
{
    if (flock(jr->lock_fd, LOCK_EX | LOCK_NB) == 0) {
        int rc = recover_dir(jr->dir, jr->dir_fd);
        if (rc)
            return rc;
        if (read_only || flock(jr->lock_fd, LOCK_SH | LOCK_NB)) {
            close(jr->lock_fd);
            jr->lock_fd = -1;
        }
        return REEL_OK;
    }
    if (flock(jr->lock_fd, LOCK_SH | LOCK_NB) == 0) { /* other plain writers: nothing left */
        if (read_only) {
            close(jr->lock_fd);
            jr->lock_fd = -1;
        }
        return REEL_OK;
    }
    if (read_only) { /* a journaling process runs: reading is fine */
        close(jr->lock_fd);
        jr->lock_fd = -1;
        return REEL_OK;
    }
    store__set_error("'%s' is journaled by process %ld ('%s/journal.lock'); write through it "
                     "or stop it first", jr->dir, lock_pid(jr->lock_fd), jr->dir);
    return REEL_EUNAVAILABLE;
}

int store__journal_open(store_t *s, const char *dir, int journal)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/journal.lock", dir);
    int fd = open(path, (s->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (journal ? O_CREAT : 0),
                  0644);
    if (fd < 0) {
        if (errno == ENOENT || (errno == EACCES && s->read_only))
            return REEL_OK; /* never journaled here */
        store__set_error("cannot open '%s': %s", path, strerror(errno));
        return REEL_EIO;
    }
    struct store__journal *jr = jr_new(dir);
    if (!jr)
        return close(fd), REEL_ENOMEM;
    s->jr = jr;
    jr->lock_fd = fd;
    jr->journaling = journal;
    if ((jr->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        store__set_error("cannot open '%s': %s", dir, strerror(errno));
        return REEL_EIO;
    }
    if (!journal)
        return lock_plain(jr, s->read_only);
    int rc = lock_journaling(jr);
    if (!rc)
        rc = recover_dir(dir, jr->dir_fd);
    return rc;
}
