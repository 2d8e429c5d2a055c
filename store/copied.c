/* copied.c -- positions holding events copied in from another store (store.h; docs/FORMAT.md
 * section 20).
 *
 * When sessions move between stores (`reel cluster move` loads them from PostgreSQL with
 * new positions), the events copied in are events the source store's feed served already.
 * A reader of every store's feed (a cluster-wide reader) would read them twice: the meta
 * record "copied" lists the position ranges that hold such copies, and a read with
 * 'skip_copied' passes them over like the 'only' hook's sessions. The value is a sorted
 * array of disjoint, non-adjacent [first, last] pairs, u64 BE each: a read searches it
 * where it lies in the map, without copying. The write is its own small transaction
 * outside the committer (as the cluster epoch's, epoch.c): it follows a load, once per
 * moved batch of sessions. A move's loads (STORE_OP_LOAD with new positions, load.c)
 * mark their events in their own transaction instead (store__copied_put), so a copy is
 * never in the log unmarked, whatever stops the load.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define COPIED_KEY "copied"

static int read_ranges(store_t *s, MDB_txn *txn, const uint8_t **p, size_t *n)
{
    MDB_val v;
    int rc = store__meta_get(s, txn, COPIED_KEY, 16, &v);
    *p = rc ? NULL : v.mv_data;
    *n = rc ? 0 : v.mv_size / 16;
    return rc;
}

static int cmp_range(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Sorts and merges 'n' ranges in place (overlapping or adjacent ones become one);
 * returns how many are left. */
static size_t merge(uint64_t *r, size_t n)
{
    qsort(r, n, 16, cmp_range);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && r[2 * i] <= r[2 * (m - 1) + 1] + 1) {
            if (r[2 * i + 1] > r[2 * (m - 1) + 1])
                r[2 * (m - 1) + 1] = r[2 * i + 1];
            continue;
        }
        r[2 * m] = r[2 * i], r[2 * m + 1] = r[2 * i + 1];
        m++;
    }
    return m;
}

/* Merges the 'n' ranges into the record inside write transaction 'w'. An LMDB error
 * code (MDB_MAP_FULL: grow and retry), ENOMEM, or 0. */
static int merge_put(store__wg_t *w, const uint64_t *ranges, size_t n)
{
    store_t *s = w->s;
    MDB_txn *txn = w->txn;
    const uint8_t *old;
    size_t n_old;
    if (read_ranges(s, txn, &old, &n_old))
        return MDB_CORRUPTED;
    uint64_t *all = malloc((n_old + n) * 16);
    if (!all)
        return ENOMEM;
    for (size_t i = 0; i < 2 * n_old; i++)
        all[i] = store__get_u64(old + 8 * i);
    memcpy(all + 2 * n_old, ranges, n * 16);
    size_t m = merge(all, n_old + n);
    for (size_t i = 0; i < 2 * m; i++)
        store__put_u64((uint8_t *)&all[i], all[i]);
    MDB_val k = {sizeof COPIED_KEY - 1, (void *)COPIED_KEY}, v = {m * 16, all};
    int rc = store__put(w, s->db_meta, &k, &v, 0);
    free(all);
    return rc;
}

int store__copied_put(store__wg_t *w, uint64_t first, uint64_t last)
{
    uint64_t r[2] = {first, last};
    return merge_put(w, r, 1);
}

static int add_once(store_t *s, const uint64_t *ranges, size_t n)
{
    pthread_rwlock_rdlock(&s->resize_lock);
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) {
        pthread_rwlock_unlock(&s->resize_lock);
        return rc == MDB_MAP_RESIZED ? -1 : store__err_from_mdb(rc);
    }
    store__wg_t w = {.s = s, .txn = txn}; /* not journaled: synced below (store.h) */
    int mrc = merge_put(&w, ranges, n);
    if (mrc)
        mdb_txn_abort(txn);
    else
        mrc = mdb_txn_commit(txn);
    if (!mrc && s->no_sync) /* a reader must never see a copy as new after a crash */
        mrc = mdb_env_sync(s->env, 1);
    rc = mrc == MDB_MAP_FULL ? -2 : mrc == ENOMEM ? REEL_ENOMEM
         : mrc ? store__err_from_mdb(mrc) : REEL_OK;
    pthread_rwlock_unlock(&s->resize_lock);
    if (rc == REEL_OK && s->jr) /* journaled: a checkpoint covers it, or recovery reverts it */
        rc = store__journal_checkpoint_wait(s);
    return rc;
}

int store_copied_add(store_t *s, const uint64_t *ranges, size_t n)
{
    if (s->read_only)
        return REEL_EUNAVAILABLE;
    for (size_t i = 0; i < n; i++)
        if (!ranges[2 * i] || ranges[2 * i + 1] < ranges[2 * i])
            return REEL_EINVALID_PARAMETER;
    if (!n)
        return REEL_OK;
    for (int tries = 0;; tries++) {
        int rc = add_once(s, ranges, n);
        if (rc >= 0)
            return rc;
        if (tries > 8 || (rc = store__grow(s, rc == -1, 0))) /* -1: adopt, -2: full */
            return rc ? rc : REEL_EIO;
    }
}

/* 1 when 'pos' is in a copied range. The record is read once per read transaction. */
int store__copied(store_read_t *r, uint64_t pos)
{
    if (!r->copied_read_) {
        r->copied_read_ = 1;
        if (read_ranges(r->s, (MDB_txn *)r->txn_, &r->copied_, &r->n_copied_))
            r->n_copied_ = 0; /* unreadable: serve the copies rather than fail the feed */
    }
    size_t lo = 0, hi = r->n_copied_;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const uint8_t *e = r->copied_ + 16 * mid;
        if (pos < store__get_u64(e))
            hi = mid;
        else if (pos > store__get_u64(e + 8))
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

int store_copied_count(store_read_t *r, uint64_t *ranges, uint64_t *positions)
{
    const uint8_t *p;
    size_t n;
    int rc = read_ranges(r->s, (MDB_txn *)r->txn_, &p, &n);
    *ranges = n, *positions = 0;
    for (size_t i = 0; !rc && i < n; i++)
        *positions += store__get_u64(p + 16 * i + 8) - store__get_u64(p + 16 * i) + 1;
    return rc;
}
