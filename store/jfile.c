/* jfile.c -- the write-ahead journal of a running store (docs/FORMAT.md section 17,
 * docs/DESIGN.md "The journal").
 *
 * LMDB runs with MDB_NOSYNC. The committer commits a group (no flush) and queues it here;
 * the journal thread appends the logs of every queued group with one write and one
 * fdatasync, raises the durable bound (reads never pass it), then completes the groups in
 * order. A checkpoint pins a snapshot with a read transaction (LMDB never reuses a page a
 * reader may see), flushes data.mdb on the checkpoint thread, and starts a new journal
 * file headed by that snapshot's meta page; the file before the previous one is then
 * removed. Recovery (jrecover.c) writes that meta page back and replays the groups after
 * it. Any failure to write or flush the journal is fail-stop: nothing later is acked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "store/jfile.h"

/* A checkpoint is taken when one of these is reached (docs/BENCHMARKS.md measures them):
 * the file data.mdb grows by the pages written between two checkpoints. */
#define CK_GROUPS 2000
#define CK_BYTES (64u << 20)
#define CK_MS 200
#define MAX_IOV 512 /* groups per write (two parts each, under IOV_MAX) */

void store__jr_head(uint8_t head[JR_HEAD], int type, uint64_t txnid, const struct iovec *iov,
                    int n)
{
    size_t len = 9;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    head[8] = (uint8_t)type;
    store__put_u64(head + 9, txnid);
    uint32_t crc = store__crc32c(0, head + 8, 9);
    for (int i = 0; i < n; i++)
        crc = store__crc32c(crc, iov[i].iov_base, iov[i].iov_len);
    for (int i = 0; i < 4; i++) {
        head[i] = (uint8_t)(len >> (24 - 8 * i));
        head[4 + i] = (uint8_t)(crc >> (24 - 8 * i));
    }
}

int store__jr_pwrite(int fd, const void *p, size_t len, uint64_t off)
{
    const uint8_t *b = p;
    while (len) {
        ssize_t n = pwrite(fd, b, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        b += n, len -= (size_t)n, off += (uint64_t)n;
    }
    return 0;
}

/* Writes 'iov' at jr->off whole; 0 or an errno. */
static int write_iov(struct store__journal *jr, struct iovec *iov, int n)
{
    while (n) {
        ssize_t w = pwritev(jr->fd, iov, n, (off_t)jr->off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        jr->off += (uint64_t)w;
        while (n && (size_t)w >= iov->iov_len)
            w -= (ssize_t)iov->iov_len, iov++, n--;
        if (n)
            iov->iov_base = (uint8_t *)iov->iov_base + w, iov->iov_len -= (size_t)w;
    }
    return 0;
}

/* ---- the journal thread ---- */

/* The failure every later batch gets; logs once. */
static void fail_stop(store_t *s, int err, const char *what)
{
    struct store__journal *jr = s->jr;
    pthread_mutex_lock(&jr->mu);
    int first = !jr->failed;
    jr->failed = 1;
    pthread_cond_broadcast(&jr->room);
    pthread_mutex_unlock(&jr->mu);
    pthread_mutex_lock(&s->mu);
    s->failed = 1;
    pthread_mutex_unlock(&s->mu);
    if (first) {
        store__set_error("journal %s failed, store stopped accepting appends: %s", what,
                         strerror(err));
        fprintf(stderr, "reel: journal %s failed in '%s': %s; nothing more is acknowledged\n",
                what, jr->dir, strerror(err));
    }
}

/* Writes the logs of 'list' (up to MAX_IOV groups from it) and flushes them; sets '*end'
 * to the first group not written. 0 or an errno. */
static int write_groups(struct store__journal *jr, store__jgroup_t *list, store__jgroup_t **end)
{
    struct iovec iov[2 * MAX_IOV];
    uint8_t heads[MAX_IOV][JR_HEAD];
    int n = 0, g = 0;
    store__jgroup_t *j = list;
    for (; j && g < MAX_IOV; j = j->next) {
        if (!j->committed)
            continue;
        struct iovec body = {(void *)j->log, j->log_len};
        store__jr_head(heads[g], JR_GROUP, j->txn_id, &body, 1);
        iov[n++] = (struct iovec){heads[g], JR_HEAD};
        if (j->log_len)
            iov[n++] = body;
        g++;
    }
    *end = j;
    if (!n)
        return 0;
    int rc = write_iov(jr, iov, n);
    if (!rc && fdatasync(jr->fd))
        rc = errno;
    return rc;
}

/* Starts journal file 'file_no + 1' headed by the synced checkpoint, makes it durable
 * (the file, then its name in the directory), then removes the file before the current
 * one: its groups are all in the checkpoint's snapshot. 0 or an errno. */
static int switch_file(store_t *s)
{
    struct store__journal *jr = s->jr;
    char path[4096], old[4096];
    uint64_t no = jr->file_no + 1;
    store__jr_path(jr->dir, no, path, sizeof path);
    /* The file before the current one is recycled: its groups are all in the checkpoint's
     * snapshot, and writing over allocated blocks lets each fdatasync flush data only (an
     * appended file makes every flush wait for a file system journal commit). Its header
     * is rewritten in place first, then it is renamed (FORMAT.md 17.1). */
    int fd = -1;
    if (jr->file_no) {
        store__jr_path(jr->dir, jr->file_no - 1, old, sizeof old);
        fd = open(old, O_WRONLY | O_CLOEXEC);
    }
    int recycled = fd >= 0;
    if (!recycled && (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        return errno;
    uint8_t ps[4] = {(uint8_t)(jr->psize >> 24), (uint8_t)(jr->psize >> 16),
                     (uint8_t)(jr->psize >> 8), (uint8_t)jr->psize};
    struct iovec body[2] = {{ps, 4}, {jr->ck_meta, jr->psize}};
    uint8_t head[JR_HEAD];
    store__jr_head(head, JR_CHECKPOINT, jr->ck_id, body, 2);
    struct iovec iov[4] = {{JR_MAGIC, 8}, {head, JR_HEAD}, body[0], body[1]};
    int old_fd = jr->fd;
    uint64_t old_off = jr->off;
    jr->fd = fd, jr->off = 0;
    int rc = write_iov(jr, iov, 4);
    if (!rc && fdatasync(fd))
        rc = errno;
    if (!rc && recycled && rename(old, path))
        rc = errno;
    if (!rc && fsync(jr->dir_fd))
        rc = errno;
    if (rc) { /* fail-stop follows; a file left as it is holds nothing recovery misreads */
        close(fd);
        if (!recycled)
            unlink(path);
        jr->fd = old_fd, jr->off = old_off;
        return rc;
    }
    if (old_fd >= 0)
        close(old_fd);
    jr->file_no = no;
    return 0;
}

/* The checkpoint is flushed: the new file, then the new pin replaces the old one. */
static void finish_checkpoint(store_t *s)
{
    struct store__journal *jr = s->jr;
    int rc = jr->ck_rc ? jr->ck_rc : switch_file(s);
    pthread_mutex_lock(&jr->mu);
    MDB_txn *old = rc ? jr->ck_txn : jr->pin;
    if (!rc) {
        jr->pin = jr->ck_txn;
        jr->ck_durable = jr->ck_id;
    }
    jr->ck_txn = NULL;
    jr->ck_synced = jr->ck_busy = 0;
    jr->ck_count++;
    jr->ck_rc = rc;
    pthread_cond_broadcast(&jr->ck_cv);
    pthread_mutex_unlock(&jr->mu);
    if (old)
        mdb_txn_abort(old);
    if (rc) /* without a checkpoint the journal only grows; a failed flush is fail-stop */
        fail_stop(s, rc, "checkpoint");
}

static void *journal_main(void *arg)
{
    store_t *s = arg;
    struct store__journal *jr = s->jr;
    for (;;) {
        pthread_mutex_lock(&jr->mu);
        while (!jr->head && !jr->ck_synced && !jr->stop)
            pthread_cond_wait(&jr->cv, &jr->mu);
        int ck = jr->ck_synced;
        store__jgroup_t *list = ck ? NULL : jr->head;
        if (list)
            jr->head = jr->tail = NULL;
        int stop = jr->stop && !jr->head && !ck && !list;
        int failed = jr->failed;
        pthread_mutex_unlock(&jr->mu);
        if (stop)
            break;
        if (ck) {
            if (!failed)
                finish_checkpoint(s);
            else
                jr->ck_rc = EIO, finish_checkpoint(s);
            continue;
        }
        while (list) {
            store__jgroup_t *end = list;
            int rc = failed ? EIO : write_groups(jr, list, &end);
            if (rc && !failed)
                fail_stop(s, rc, "write");
            failed = failed || rc;
            if (failed)
                end = NULL;
            int n = 0;
            for (store__jgroup_t *j = list, *next; j != end; j = next, n++) {
                next = j->next;
                if (!failed && j->committed)
                    store__set_durable(s, j->pos, j->idx);
                store__group_complete(s, j, failed ? REEL_EIO : 0);
            }
            pthread_mutex_lock(&jr->mu);
            jr->pending -= n;
            pthread_cond_signal(&jr->room);
            pthread_mutex_unlock(&jr->mu);
            list = end;
        }
    }
    return NULL;
}

void store__journal_group(store_t *s, store__jgroup_t *j)
{
    struct store__journal *jr = s->jr;
    j->next = NULL;
    /* Counted before it is queued: once queued, the journal thread may complete and free
     * it at any moment. */
    if (j->committed) {
        jr->groups_since++;
        jr->bytes_since += j->log_len + JR_HEAD;
        jr->last_pos = j->pos, jr->last_idx = j->idx;
    }
    pthread_mutex_lock(&jr->mu);
    if (jr->tail)
        jr->tail->next = j;
    else
        jr->head = j;
    jr->tail = j;
    jr->pending++;
    pthread_cond_signal(&jr->cv);
    while (jr->pending >= JR_DEPTH && !jr->failed) /* see JR_DEPTH */
        pthread_cond_wait(&jr->room, &jr->mu);
    pthread_mutex_unlock(&jr->mu);
}

/* ---- checkpoints ---- */

/* Pins the newest snapshot and reads its meta page. A write transaction is held
 * meanwhile, so that no commit (of this process or another) moves the meta slot between
 * the read transaction's begin and the pread. Called with no transaction of this thread. */
static int capture(store_t *s)
{
    struct store__journal *jr = s->jr;
    MDB_txn *w, *r = NULL;
    int rc = store__txn_begin(s, 0, &w);
    if (rc)
        return rc;
    if (!(rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r))) {
        uint64_t id = (uint64_t)mdb_txn_id(r);
        ssize_t n = pread(jr->data_fd, jr->ck_meta, jr->psize, (off_t)((id & 1) * jr->psize));
        uint64_t got = 0;
        uint32_t magic = 0;
        if (n == (ssize_t)jr->psize) {
            memcpy(&got, jr->ck_meta + JR_META_TXNID, 8);
            memcpy(&magic, jr->ck_meta + JR_META_MAGIC, 4);
        }
        if (n != (ssize_t)jr->psize)
            rc = n < 0 ? errno : EIO;
        else if (got != id || magic != JR_LMDB_MAGIC) /* an LMDB whose meta page we misread */
            rc = MDB_CORRUPTED;
        jr->ck_id = id;
    }
    mdb_txn_abort(w);
    if (rc) {
        if (r)
            mdb_txn_abort(r);
        return rc;
    }
    jr->ck_txn = r;
    return 0;
}

/* Captures and posts a checkpoint; the caller set ck_busy. 0 or an error (ck_busy reset). */
static int post_checkpoint(store_t *s)
{
    struct store__journal *jr = s->jr;
    pthread_rwlock_rdlock(&s->resize_lock); /* like a read: the map must not move */
    int rc = capture(s);
    pthread_rwlock_unlock(&s->resize_lock);
    pthread_mutex_lock(&jr->mu);
    if (rc)
        jr->ck_busy = 0;
    else
        jr->ck_captured = 1;
    pthread_cond_broadcast(&jr->ck_cv);
    pthread_mutex_unlock(&jr->mu);
    return rc;
}

void store__journal_tick(store_t *s)
{
    struct store__journal *jr = s->jr;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (now.tv_sec - jr->ck_at.tv_sec) * 1000 + (now.tv_nsec - jr->ck_at.tv_nsec) / 1000000;
    if (jr->groups_since < CK_GROUPS && jr->bytes_since < CK_BYTES && ms < jr->ck_ms)
        return;
    pthread_mutex_lock(&jr->mu);
    int busy = jr->ck_busy || jr->failed;
    jr->ck_busy = 1;
    pthread_mutex_unlock(&jr->mu);
    if (busy)
        return; /* busy: checked again after the next group */
    jr->groups_since = jr->bytes_since = 0;
    jr->ck_at = now;
    post_checkpoint(s);
}

int store__journal_checkpoint_wait(store_t *s)
{
    struct store__journal *jr = s->jr;
    if (!jr || !jr->journaling)
        return REEL_OK;
    pthread_mutex_lock(&jr->mu);
    while (jr->ck_busy && !jr->failed) /* one in flight may predate our commit */
        pthread_cond_wait(&jr->ck_cv, &jr->mu);
    int failed = jr->failed;
    jr->ck_busy = !failed;
    uint64_t count = jr->ck_count;
    pthread_mutex_unlock(&jr->mu);
    if (failed || post_checkpoint(s))
        return REEL_EIO;
    pthread_mutex_lock(&jr->mu);
    while (jr->ck_count == count)
        pthread_cond_wait(&jr->ck_cv, &jr->mu);
    int rc = jr->ck_rc;
    pthread_mutex_unlock(&jr->mu);
    return rc ? REEL_EIO : REEL_OK;
}

static void *checkpoint_main(void *arg)
{
    store_t *s = arg;
    struct store__journal *jr = s->jr;
    for (;;) {
        pthread_mutex_lock(&jr->mu);
        while (!jr->ck_captured && !jr->ck_stop)
            pthread_cond_wait(&jr->ck_cv, &jr->mu);
        if (!jr->ck_captured) {
            pthread_mutex_unlock(&jr->mu);
            break;
        }
        jr->ck_captured = 0;
        pthread_mutex_unlock(&jr->mu);
        /* Every page of the pinned snapshot was written before its commit returned. */
        int rc = mdb_env_sync(s->env, 1);
        pthread_mutex_lock(&jr->mu);
        jr->ck_rc = rc;
        jr->ck_synced = 1;
        pthread_cond_signal(&jr->cv);
        pthread_mutex_unlock(&jr->mu);
    }
    return NULL;
}

/* ---- start and close ---- */

/* Writes the format record with 'parts' and flushes everything (a synced commit). */
static int put_parts(store_t *s, uint32_t parts)
{
    MDB_txn *txn;
    int rc = store__txn_begin(s, 0, &txn);
    if (rc)
        return rc;
    uint32_t was = s->parts;
    s->parts = parts;
    if ((rc = store__put_format(s, txn))) {
        s->parts = was;
        mdb_txn_abort(txn);
        return rc;
    }
    if (!(rc = mdb_txn_commit(txn)))
        rc = mdb_env_sync(s->env, 1);
    return rc;
}

int store__journal_clear(store_t *s)
{
    int rc = put_parts(s, s->parts & ~STORE__PART_JOURNAL);
    if (rc)
        store__set_error("cannot clear the journal's format part: %s", mdb_strerror(rc));
    return rc ? store__err_from_mdb(rc) : REEL_OK;
}

/* The durable bound at start: the last position and the change log's last index there. */
static int start_bound(store_t *s)
{
    MDB_txn *txn;
    int rc = store__txn_begin(s, MDB_RDONLY, &txn);
    if (rc)
        return rc;
    MDB_val k = {13, "last_position"}, v;
    uint64_t pos = 0;
    rc = mdb_get(txn, s->db_meta, &k, &v);
    if (!rc && v.mv_size == 8)
        pos = store__get_u64(v.mv_data);
    store__chlog_t cl = {0};
    rc = rc == MDB_NOTFOUND ? 0 : rc;
    if (!rc)
        rc = store__change_last(s, txn, &cl);
    mdb_txn_abort(txn);
    if (rc)
        return rc;
    s->jr->last_pos = pos;
    s->jr->last_idx = cl.known && cl.pos == pos ? cl.index : 0;
    store__set_durable(s, pos, s->jr->last_idx);
    return 0;
}

int store__journal_start(store_t *s, const char *dir)
{
    struct store__journal *jr = s->jr;
    MDB_stat st;
    int rc;
    if ((rc = mdb_env_get_fd(s->env, &jr->data_fd)) || (rc = mdb_env_stat(s->env, &st)))
        goto fail;
    jr->psize = st.ms_psize;
    if (!(jr->ck_meta = malloc(jr->psize)))
        return REEL_ENOMEM;
    /* Part 0x2 is durable before the first unsynced commit: an older build refuses. */
    if ((rc = put_parts(s, s->parts | STORE__PART_JOURNAL)) || (rc = start_bound(s)))
        goto fail;
    uint64_t *nos = NULL;
    size_t n = 0;
    if ((rc = store__jr_list(dir, &nos, &n)))
        goto fail;
    jr->file_no = n ? nos[n - 1] : 0; /* recovery left none; numbers only grow */
    free(nos);
    jr->ck_busy = 1;
    if ((rc = post_checkpoint(s)))
        goto fail;
    pthread_mutex_lock(&jr->mu);
    jr->ck_captured = 0;
    pthread_mutex_unlock(&jr->mu);
    if ((rc = mdb_env_sync(s->env, 1)))
        goto fail;
    jr->ck_synced = 1;
    finish_checkpoint(s);
    if (jr->ck_rc) {
        rc = jr->ck_rc;
        goto fail;
    }
    /* From here on the journal makes groups durable: LMDB commits without flushing. */
    if ((rc = mdb_env_set_flags(s->env, MDB_NOSYNC, 1)))
        goto fail;
    clock_gettime(CLOCK_MONOTONIC, &jr->ck_at);
    /* REEL_JOURNAL_CHECKPOINT_MS: another interval (the benchmarks measure the file's
     * growth with it; tests make it long, so that groups stay after the checkpoint) */
    const char *ms = getenv("REEL_JOURNAL_CHECKPOINT_MS");
    jr->ck_ms = ms && atol(ms) > 0 ? atol(ms) : CK_MS;
    if (pthread_create(&jr->jthread, NULL, journal_main, s))
        return store__set_error("cannot start the journal thread"), REEL_ENOMEM;
    if (pthread_create(&jr->cthread, NULL, checkpoint_main, s)) {
        pthread_mutex_lock(&jr->mu);
        jr->stop = 1;
        pthread_cond_signal(&jr->cv);
        pthread_mutex_unlock(&jr->mu);
        pthread_join(jr->jthread, NULL);
        return store__set_error("cannot start the checkpoint thread"), REEL_ENOMEM;
    }
    jr->threads = 1;
    return REEL_OK;
fail:
    store__set_error("cannot start the journal in '%s': %s", dir, mdb_strerror(rc));
    return store__err_from_mdb(rc);
}

/* The clean end of a journaling process: data.mdb flushed, the journal removed, then part
 * 0x2 cleared (in that order: a crash between them leaves part 0x2 and no journal, which
 * opens as it is). */
static void close_clean(store_t *s)
{
    struct store__journal *jr = s->jr;
    int rc = mdb_env_sync(s->env, 1);
    if (!rc && !(rc = store__jr_done(jr->dir, jr->dir_fd, 1)) &&
        !(rc = store__jr_remove(jr->dir, jr->dir_fd)))
        rc = put_parts(s, s->parts & ~STORE__PART_JOURNAL);
    if (rc)
        fprintf(stderr, "reel: closing the journal of '%s': %s (the next open recovers)\n",
                jr->dir, mdb_strerror(rc));
}

void store__journal_close(store_t *s)
{
    struct store__journal *jr = s->jr;
    if (!jr)
        return;
    if (jr->threads) {
        pthread_mutex_lock(&jr->mu);
        while (jr->ck_busy && !jr->failed) /* the one in flight finishes first */
            pthread_cond_wait(&jr->ck_cv, &jr->mu);
        jr->ck_stop = 1;
        pthread_cond_broadcast(&jr->ck_cv);
        pthread_mutex_unlock(&jr->mu);
        pthread_join(jr->cthread, NULL);
        pthread_mutex_lock(&jr->mu);
        jr->stop = 1;
        pthread_cond_signal(&jr->cv);
        pthread_mutex_unlock(&jr->mu);
        pthread_join(jr->jthread, NULL);
    }
    if (jr->ck_txn)
        mdb_txn_abort(jr->ck_txn);
    if (jr->pin)
        mdb_txn_abort(jr->pin);
    if (jr->journaling && jr->threads && !jr->failed)
        close_clean(s);
    if (jr->fd >= 0)
        close(jr->fd);
    if (jr->dir_fd >= 0)
        close(jr->dir_fd);
    if (jr->lock_fd >= 0)
        close(jr->lock_fd); /* releases the flock */
    pthread_cond_destroy(&jr->ck_cv);
    pthread_cond_destroy(&jr->room);
    pthread_cond_destroy(&jr->cv);
    pthread_mutex_destroy(&jr->mu);
    free(jr->ck_meta);
    free(jr);
    s->jr = NULL;
}
