/* journal.c -- the committer's write wrappers and the group's physical log
 * (docs/FORMAT.md section 17).
 *
 * Each wrapper makes the LMDB call and, when the group is journaled, appends one record:
 *
 *   op u8 ('P' put, 'D' delete, 'C' create tree) | tree u8 | flags u8 | key length u16 BE |
 *   value length u32 BE | key | value
 *
 * 'tree' names the database by a fixed number (dbi handles are per process: a recovering
 * process opens the trees in another order). Replay makes the same calls in one write
 * transaction, so no question of determinism arises: apply() is not run again.
 */
#include <errno.h>
#include <string.h>

#include "store/store_int.h"

enum { OP_PUT = 'P', OP_DEL = 'D', OP_CREATE = 'C' };
enum { FLAG_APPEND = 1, FLAG_APPENDDUP = 2 };

/* The tree number of 'dbi' (FORMAT.md 17.2), -1 for a handle the journal does not know. */
static int tree_of(const store_t *s, MDB_dbi dbi)
{
    const MDB_dbi known[] = {s->db_meta,      s->db_sessions, s->db_session_ids,
                             s->db_events,    s->db_event_ids, s->db_seqs,
                             s->db_recent,    s->db_changes,   s->db_consumers,
                             s->db_event_uuids, s->db_ixtail};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i] == dbi)
            return (int)i;
    return -1;
}

/* Appends a record head, the key and 'vlen' bytes of 'val' (NULL: left for later). */
static int log_rec(store__wg_t *g, int op, int tree, int flags, const MDB_val *key,
                   const void *val, size_t vlen)
{
    if (tree < 0 || (key && key->mv_size > 0xffff) || vlen > 0xffffffffu)
        return EINVAL; /* a tree or size the format cannot name: never commit unlogged */
    size_t klen = key ? key->mv_size : 0;
    uint8_t h[9] = {(uint8_t)op, (uint8_t)tree, (uint8_t)flags, (uint8_t)(klen >> 8),
                    (uint8_t)klen, (uint8_t)(vlen >> 24), (uint8_t)(vlen >> 16),
                    (uint8_t)(vlen >> 8), (uint8_t)vlen};
    store_buf_put(&g->log, h, sizeof h);
    if (klen)
        store_buf_put(&g->log, key->mv_data, klen);
    if (val)
        store_buf_put(&g->log, val, vlen);
    return store_buf_failed(&g->log) ? ENOMEM : 0;
}

int store__put(store__wg_t *g, MDB_dbi dbi, MDB_val *key, MDB_val *val, unsigned flags)
{
    int rc = mdb_put(g->txn, dbi, key, val, flags);
    if (rc || !g->logging)
        return rc;
    /* the append flags keep a replayed page as full as the original (FORMAT.md 21.1) */
    int f = (flags & MDB_APPEND ? FLAG_APPEND : 0) | (flags & MDB_APPENDDUP ? FLAG_APPENDDUP : 0);
    if (!(flags & MDB_RESERVE))
        return log_rec(g, OP_PUT, tree_of(g->s, dbi), f, key, val->mv_data, val->mv_size);
    rc = log_rec(g, OP_PUT, tree_of(g->s, dbi), f, key, NULL, val->mv_size);
    g->reserve_at = g->log.len; /* store__reserved() fills it */
    return rc;
}

void store__reserved(store__wg_t *g, const void *ptr, size_t len)
{
    if (!g->logging)
        return;
    if (!g->reserve_at || g->reserve_at != g->log.len) {
        g->log.oom = 1; /* a reserved value logged out of turn: fail the group, loudly */
        return;
    }
    store_buf_put(&g->log, ptr, len);
    g->reserve_at = 0;
}

int store__del(store__wg_t *g, MDB_dbi dbi, MDB_val *key, MDB_val *val)
{
    int rc = mdb_del(g->txn, dbi, key, val);
    if (rc || !g->logging)
        return rc;
    return log_rec(g, OP_DEL, tree_of(g->s, dbi), 0, key, val ? val->mv_data : NULL,
                   val ? val->mv_size : 0);
}

int store__cursor_del(store__wg_t *g, MDB_cursor *c, unsigned flags)
{
    MDB_val k, v;
    unsigned tf = 0;
    int rc = 0;
    /* Logged before the delete, while the key still points at live bytes; a failed delete
     * fails the group, and its log goes with it. LMDB ignores the value of a delete in a
     * tree without duplicates: the key is enough. In a tree of sorted duplicates ('seqs'
     * and 'event_uuids' of FORMAT.md 21.1) the value names the one entry: a delete by key
     * alone would replay as the removal of every entry of the session. */
    if (g->logging &&
        ((rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT)) ||
         (rc = mdb_dbi_flags(g->txn, mdb_cursor_dbi(c), &tf)) ||
         (rc = log_rec(g, OP_DEL, tree_of(g->s, mdb_cursor_dbi(c)), 0, &k,
                       tf & MDB_DUPSORT ? v.mv_data : NULL, tf & MDB_DUPSORT ? v.mv_size : 0))))
        return rc;
    return mdb_cursor_del(c, flags);
}

int store__create(store__wg_t *g, const char *name, MDB_dbi *dbi)
{
    int rc = mdb_dbi_open(g->txn, name, MDB_CREATE, dbi);
    if (rc || !g->logging)
        return rc;
    MDB_val k = {strlen(name), (void *)name};
    return log_rec(g, OP_CREATE, tree_of(g->s, *dbi), 0, &k, NULL, 0);
}
