/* epoch.c -- the cluster epoch kept in the meta database (store.h; docs/FORMAT.md 14).
 *
 * A cell records the highest cluster map epoch it has accepted, durably, before it acts
 * on the map, so a restarted or reloaded cell never goes back to an older map (the
 * fencing basis of moving shards: docs/CLUSTER.md). The write is its own small
 * transaction, outside the committer: it happens once per map load, and LMDB's writer
 * lock orders it with the committer's groups. */
#include <string.h>

#include "store/store_int.h"

#define EPOCH_KEY "cluster_epoch"

static int read_epoch(store_t *s, MDB_txn *txn, uint64_t *epoch)
{
    MDB_val v;
    int rc = store__meta_get(s, txn, EPOCH_KEY, 8, &v);
    if (!rc && v.mv_size > 8) {
        store__set_error("meta record '%s' is %zu bytes, not 8", EPOCH_KEY, v.mv_size);
        rc = REEL_ECORRUPT;
    }
    *epoch = !rc && v.mv_size ? store__get_u64(v.mv_data) : 0;
    return rc;
}

int store_epoch_get(store_t *s, uint64_t *epoch)
{
    store_read_t r;
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    rc = read_epoch(s, (MDB_txn *)r.txn_, epoch);
    store_read_end(&r);
    return rc;
}

/* One attempt with the resize lock held shared, like a read: the committer must not
 * move the map while this transaction is open. MDB_MAP_RESIZED comes back to the caller,
 * which adopts the new size with the lock released. */
static int raise_once(store_t *s, uint64_t epoch, uint64_t *stored)
{
    pthread_rwlock_rdlock(&s->resize_lock);
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc) {
        pthread_rwlock_unlock(&s->resize_lock);
        return rc == MDB_MAP_RESIZED ? -1 : store__err_from_mdb(rc);
    }
    rc = read_epoch(s, txn, stored);
    if (rc == REEL_OK && epoch < *stored)
        rc = REEL_ECONFLICT;
    if (rc == REEL_OK && epoch > *stored) {
        uint8_t be[8];
        store__put_u64(be, epoch);
        MDB_val k = {sizeof EPOCH_KEY - 1, (void *)EPOCH_KEY}, v = {8, be};
        int mrc = mdb_put(txn, s->db_meta, &k, &v, 0);
        if (mrc)
            mdb_txn_abort(txn);
        else
            mrc = mdb_txn_commit(txn); /* ends the transaction either way */
        txn = NULL;
        if (!mrc && s->no_sync) /* --sync=none: the epoch is durable all the same */
            mrc = mdb_env_sync(s->env, 1);
        rc = mrc ? store__err_from_mdb(mrc) : REEL_OK;
        if (!rc && s->jr) { /* journaled: a checkpoint covers it, or recovery reverts it */
            pthread_rwlock_unlock(&s->resize_lock);
            rc = store__journal_checkpoint_wait(s);
            pthread_rwlock_rdlock(&s->resize_lock);
        }
        if (!rc)
            *stored = epoch;
    }
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->resize_lock);
    return rc;
}

int store_epoch_raise(store_t *s, uint64_t epoch, uint64_t *stored)
{
    if (s->read_only)
        return REEL_EUNAVAILABLE;
    for (int tries = 0;; tries++) {
        int rc = raise_once(s, epoch, stored);
        if (rc != -1)
            return rc;
        if (tries > 8 || (rc = store__grow(s, 1, 0)))
            return rc ? rc : REEL_EIO;
    }
}
