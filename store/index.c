/* index.c -- the two per-session indexes ('seqs', the event_id index) in either layout
 * (docs/FORMAT.md 2.5, 2.6 and 21.1). Every reader and writer of those trees goes through
 * here, so the layout is decided in one place: a store made before optional part
 * STORE__PART_IXDUP keeps one LMDB entry per event and index (keys num|seq, num|id); a
 * store with it keeps each session's entries as sorted fixed-size duplicates of one key,
 * the session number, so an entry costs its 16 or 24 bytes and no node header or key.
 * Threads: any; writes only in the committer's group, through its wrappers (journal.c). */
#include <errno.h>
#include <string.h>

#include "store/store_int.h"

#define SEQ_VAL 16  /* seq u64 BE | pos u64 BE */
#define UUID_VAL 24 /* uuid 16 bytes | seq u64 BE */

static int ixdup(const store_t *s)
{
    return (s->parts & STORE__PART_IXDUP) != 0;
}

/* ---- seqs ---- */

int store__seq_get(const store_t *s, MDB_txn *txn, uint64_t num, uint64_t seq, uint64_t *pos)
{
    uint8_t key[16], val[SEQ_VAL] = {0};
    store__put_u64(key, num);
    *pos = 0;
    if (!ixdup(s)) {
        store__put_u64(key + 8, seq);
        MDB_val k = {16, key}, v;
        int rc = mdb_get(txn, s->db_seqs, &k, &v);
        if (!rc && v.mv_size == 8)
            *pos = store__get_u64(v.mv_data);
        return rc;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db_seqs, &c);
    if (rc)
        return rc;
    store__put_u64(val, seq);
    MDB_val k = {8, key}, v = {SEQ_VAL, val};
    rc = mdb_cursor_get(c, &k, &v, MDB_GET_BOTH_RANGE);
    if (!rc && v.mv_size == SEQ_VAL) { /* else malformed: position 0 */
        if (store__get_u64(v.mv_data) == seq)
            *pos = store__get_u64((const uint8_t *)v.mv_data + 8);
        else
            rc = MDB_NOTFOUND;
    }
    mdb_cursor_close(c);
    return rc;
}

int store__seq_put(store__wg_t *w, uint64_t num, uint64_t seq, uint64_t pos)
{
    const store_t *s = w->s;
    uint8_t key[16], val[SEQ_VAL];
    store__put_u64(key, num);
    if (!ixdup(s)) {
        store__put_u64(key + 8, seq);
        store__put_u64(val, pos);
        MDB_val k = {16, key}, v = {8, val};
        return store__put(w, s->db_seqs, &k, &v, 0);
    }
    store__put_u64(val, seq);
    store__put_u64(val + 8, pos);
    MDB_val k = {8, key}, v = {SEQ_VAL, val};
    /* A session's sequences only grow: MDB_APPENDDUP fills its pages completely instead
     * of splitting each full one in half. */
    int rc = store__put(w, s->db_seqs, &k, &v, MDB_APPENDDUP);
    return rc == MDB_KEYEXIST ? store__put(w, s->db_seqs, &k, &v, 0) : rc;
}

/* Deletes every key of 'dbi' that starts with the 8 bytes of 'num' (old layout). */
static int drop_prefix(store__wg_t *w, MDB_dbi dbi, uint64_t num)
{
    MDB_cursor *c;
    uint8_t pre[8];
    store__put_u64(pre, num);
    int rc = mdb_cursor_open(w->txn, dbi, &c);
    if (rc)
        return rc;
    MDB_val k = {8, pre}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= 8 && !memcmp(k.mv_data, pre, 8)) {
        if ((rc = store__cursor_del(w, c, 0)))
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
        if (rc == EINVAL || rc == MDB_NOTFOUND) /* deleted the last key */
            break;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND || rc == EINVAL ? 0 : rc;
}

/* Deletes the session key 'num' with all its duplicates (new layout). */
static int drop_dups(store__wg_t *w, MDB_dbi dbi, uint64_t num)
{
    uint8_t key[8];
    store__put_u64(key, num);
    MDB_val k = {8, key};
    int rc = store__del(w, dbi, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int store__seq_drop(store__wg_t *w, uint64_t num)
{
    MDB_dbi dbi = w->s->db_seqs;
    return ixdup(w->s) ? drop_dups(w, dbi, num) : drop_prefix(w, dbi, num);
}

void store__seqc_init(store__seqc_t *w, const store_t *s, MDB_cursor *c, uint64_t num)
{
    w->c = c;
    w->num = num;
    w->dup = ixdup(s);
}

/* The entry the cursor is on, if it is one of session w->num. */
static int seqc_here(store__seqc_t *w, int rc, const MDB_val *k, const MDB_val *v,
                     uint64_t *got, uint64_t *pos)
{
    *got = *pos = 0;
    if (rc)
        return rc;
    if (w->dup) {
        if (v->mv_size != SEQ_VAL)
            return 0; /* malformed: sequence and position 0 */
        *got = store__get_u64(v->mv_data);
        *pos = store__get_u64((const uint8_t *)v->mv_data + 8);
        return 0;
    }
    if (k->mv_size != 16 || store__get_u64(k->mv_data) != w->num)
        return MDB_NOTFOUND;
    *got = store__get_u64((const uint8_t *)k->mv_data + 8);
    *pos = v->mv_size == 8 ? store__get_u64(v->mv_data) : 0;
    return 0;
}

int store__seqc_seek(store__seqc_t *w, uint64_t seq, uint64_t *got, uint64_t *pos)
{
    uint8_t key[16], val[SEQ_VAL] = {0};
    store__put_u64(key, w->num);
    store__put_u64(w->dup ? val : key + 8, seq);
    MDB_val k = {w->dup ? 8 : 16, key}, v = {SEQ_VAL, val};
    int rc = mdb_cursor_get(w->c, &k, &v, w->dup ? MDB_GET_BOTH_RANGE : MDB_SET_RANGE);
    return seqc_here(w, rc, &k, &v, got, pos);
}

int store__seqc_next(store__seqc_t *w, uint64_t *got, uint64_t *pos)
{
    MDB_val k, v;
    int rc = mdb_cursor_get(w->c, &k, &v, w->dup ? MDB_NEXT_DUP : MDB_NEXT);
    return seqc_here(w, rc, &k, &v, got, pos);
}

/* ---- event ids ---- */

/* 1 and the uuid value's first 16 bytes in 'val' when 'id' goes to 'event_uuids'. */
static int in_uuids(const store_t *s, const char *id, size_t len, uint8_t val[UUID_VAL])
{
    memset(val, 0, UUID_VAL);
    return ixdup(s) && store__uuid_bytes(id, len, val);
}

/* Finds the entry of uuid 'val' in session 'key' with cursor 'c': 0 with '*seq' set. */
static int uuid_find(MDB_cursor *c, uint8_t key[8], const uint8_t val[UUID_VAL], uint64_t *seq)
{
    MDB_val k = {8, key}, v = {UUID_VAL, (void *)val};
    int rc = mdb_cursor_get(c, &k, &v, MDB_GET_BOTH_RANGE);
    if (rc)
        return rc;
    if (v.mv_size != UUID_VAL)
        return *seq = 0, 0; /* malformed: sequence 0 */
    if (memcmp(v.mv_data, val, 16))
        return MDB_NOTFOUND;
    *seq = store__get_u64((const uint8_t *)v.mv_data + 16);
    return 0;
}

int store__id_get(const store_t *s, MDB_txn *txn, uint64_t num, const char *id, size_t len,
                  uint64_t *seq)
{
    uint8_t val[UUID_VAL], key[STORE__ID_KEY_MAX];
    *seq = 0;
    if (in_uuids(s, id, len, val)) {
        MDB_cursor *c;
        int rc = mdb_cursor_open(txn, s->db_event_uuids, &c);
        if (rc)
            return rc;
        store__put_u64(key, num);
        rc = uuid_find(c, key, val, seq);
        mdb_cursor_close(c);
        return rc;
    }
    MDB_val k = {store__id_key(s, key, num, id, len), key}, v;
    int rc = mdb_get(txn, s->db_event_ids, &k, &v);
    if (!rc && v.mv_size == 8)
        *seq = store__get_u64(v.mv_data);
    return rc;
}

int store__id_put(store__wg_t *w, uint64_t num, const char *id, size_t len, uint64_t seq,
                  uint64_t *had)
{
    const store_t *s = w->s;
    uint8_t val[UUID_VAL], key[STORE__ID_KEY_MAX];
    *had = 0;
    if (in_uuids(s, id, len, val)) {
        MDB_cursor *c;
        int rc = mdb_cursor_open(w->txn, s->db_event_uuids, &c);
        if (rc)
            return rc;
        store__put_u64(key, num);
        rc = uuid_find(c, key, val, had);
        mdb_cursor_close(c);
        if (rc != MDB_NOTFOUND)
            return rc ? rc : MDB_KEYEXIST;
        store__put_u64(val + 16, seq);
        MDB_val k = {8, key}, v = {UUID_VAL, val};
        /* UUIDv7 ids (reel's own, most SDKs') grow with time: append when they do. */
        rc = store__put(w, s->db_event_uuids, &k, &v, MDB_APPENDDUP);
        return rc == MDB_KEYEXIST ? store__put(w, s->db_event_uuids, &k, &v, 0) : rc;
    }
    uint8_t seqbe[8];
    store__put_u64(seqbe, seq);
    MDB_val k = {store__id_key(s, key, num, id, len), key}, v = {8, seqbe};
    int rc = store__put(w, s->db_event_ids, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST && v.mv_size == 8)
        *had = store__get_u64(v.mv_data);
    return rc;
}

int store__id_del(store__wg_t *w, uint64_t num, const char *id, size_t len)
{
    const store_t *s = w->s;
    uint8_t val[UUID_VAL], key[STORE__ID_KEY_MAX];
    if (in_uuids(s, id, len, val)) {
        MDB_cursor *c;
        uint64_t seq;
        int rc = mdb_cursor_open(w->txn, s->db_event_uuids, &c);
        if (rc)
            return rc;
        store__put_u64(key, num);
        if (!(rc = uuid_find(c, key, val, &seq)))
            rc = store__cursor_del(w, c, 0);
        mdb_cursor_close(c);
        return rc;
    }
    MDB_val k = {store__id_key(s, key, num, id, len), key};
    return store__del(w, s->db_event_ids, &k, NULL);
}

int store__ids_drop(store__wg_t *w, uint64_t num)
{
    int rc = drop_prefix(w, w->s->db_event_ids, num);
    return rc || !ixdup(w->s) ? rc : drop_dups(w, w->s->db_event_uuids, num);
}
