/* index.c -- the two per-session indexes ('seqs', the event_id index) in either layout
 * (docs/FORMAT.md 2.5, 2.6 and 21.1). Every reader and writer of those trees goes through
 * here, so the layout is decided in one place: a store made before optional part
 * STORE__PART_IXDUP keeps one LMDB entry per event and index (keys num|seq, num|id); a
 * store with it keeps each session's entries as sorted fixed-size duplicates of one key,
 * the session number, so an entry costs its 16 or 24 bytes and no node header or key.
 * With STORE__PART_IXTAIL too, a session's newest entries of both are kept in its value of
 * 'ixtail' (22) until STORE__TAIL_MAX of them move into the trees at once; every
 * function here looks in both, so no caller knows where an entry is.
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

/* ---- the tail (FORMAT.md 22) ----
 * Value: n u8 (1..STORE__TAIL_MAX) | first seq u64 BE | n entries of TAIL_ENTRY bytes:
 * pos u64 BE | kind u8 (0: no UUID entry, 1: a UUID entry) | uuid 16 bytes (zeros for 0).
 * Entry i is sequence first + i; every sequence in the tree comes before 'first'. */
#define TAIL_ENTRY STORE__TAIL_ENTRY
#define TAIL_HEAD 9

typedef store__tail_t tail_t;

static int tails(const store_t *s)
{
    return (s->parts & STORE__PART_IXTAIL) != 0;
}

/* Session 'num''s tail into 't' (n 0 when it has none); 0 or an LMDB code. */
static int tail_get(const store_t *s, MDB_txn *txn, uint64_t num, tail_t *t)
{
    uint8_t key[8];
    store__put_u64(key, num);
    MDB_val k = {8, key}, v;
    t->n = 0;
    int rc = mdb_get(txn, s->db_ixtail, &k, &v);
    if (rc)
        return rc == MDB_NOTFOUND ? 0 : rc;
    const uint8_t *p = v.mv_data;
    if (v.mv_size < TAIL_HEAD || !p[0] || p[0] > STORE__TAIL_MAX ||
        v.mv_size != TAIL_HEAD + (size_t)p[0] * TAIL_ENTRY)
        return MDB_CORRUPTED;
    t->n = p[0];
    t->first = store__get_u64(p + 1);
    memcpy(t->e, p + TAIL_HEAD, t->n * TAIL_ENTRY);
    return 0;
}

/* Writes 't' as session 'num''s tail (deletes it when empty). */
static int tail_put(store__wg_t *w, uint64_t num, const tail_t *t)
{
    uint8_t key[8], val[TAIL_HEAD + STORE__TAIL_MAX * TAIL_ENTRY];
    store__put_u64(key, num);
    MDB_val k = {8, key};
    if (!t->n) {
        int rc = store__del(w, w->s->db_ixtail, &k, NULL);
        return rc == MDB_NOTFOUND ? 0 : rc;
    }
    val[0] = (uint8_t)t->n;
    store__put_u64(val + 1, t->first);
    memcpy(val + TAIL_HEAD, t->e, t->n * TAIL_ENTRY);
    MDB_val v = {TAIL_HEAD + t->n * TAIL_ENTRY, val};
    return store__put(w, w->s->db_ixtail, &k, &v, 0);
}

static int tail_has(const tail_t *t, uint64_t seq)
{
    return t->n && seq >= t->first && seq - t->first < t->n;
}

int store__ix_flush(store__wg_t *w)
{
    int rc = w->tail_state == 2 ? tail_put(w, w->tail_num, &w->tail) : 0;
    w->tail_state = 0;
    return rc;
}

/* The tail of session 'num' that the writer holds, read first if it holds another. */
static int held(store__wg_t *w, uint64_t num, tail_t **t)
{
    int rc;
    if (w->tail_state && w->tail_num == num) {
        *t = &w->tail;
        return 0;
    }
    if ((rc = store__ix_flush(w)) || (rc = tail_get(w->s, w->txn, num, &w->tail)))
        return rc;
    w->tail_num = num;
    w->tail_state = 1;
    *t = &w->tail;
    return 0;
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
    int rc;
    if (tails(s)) {
        tail_t t;
        if ((rc = tail_get(s, txn, num, &t)))
            return rc;
        if (tail_has(&t, seq)) {
            *pos = store__get_u64(t.e[seq - t.first]);
            return 0;
        }
    }
    if ((rc = mdb_cursor_open(txn, s->db_seqs, &c)))
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

static int seq_put(store__wg_t *w, uint64_t num, uint64_t seq, uint64_t pos)
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

/* Deletes session 'num''s tail, if the store keeps tails. */
static int drop_tail(store__wg_t *w, uint64_t num)
{
    tail_t t = {.n = 0};
    int rc = store__ix_flush(w);
    return rc || !tails(w->s) ? rc : tail_put(w, num, &t);
}

int store__seq_drop(store__wg_t *w, uint64_t num)
{
    MDB_dbi dbi = w->s->db_seqs;
    int rc = ixdup(w->s) ? drop_dups(w, dbi, num) : drop_prefix(w, dbi, num);
    return rc ? rc : drop_tail(w, num);
}

/* Copies the tail of the walk's session into the walk. */
static void seqc_load(store__seqc_t *w)
{
    tail_t t;
    w->tn = w->ti = 0;
    w->in_tail = 0;
    if (!tails(w->s) || !w->c)
        return;
    if ((w->rc = tail_get(w->s, mdb_cursor_txn(w->c), w->num, &t)))
        return;
    w->tn = t.n;
    w->tfirst = t.first;
    for (unsigned i = 0; i < t.n; i++)
        w->tpos[i] = store__get_u64(t.e[i]);
}

void store__seqc_init(store__seqc_t *w, const store_t *s, MDB_cursor *c, uint64_t num)
{
    w->c = c;
    w->s = s;
    w->num = num;
    w->dup = ixdup(s);
    w->rc = 0;
    seqc_load(w);
}

/* Entry 'i' of the tail, or MDB_NOTFOUND past it. */
static int seqc_tail(store__seqc_t *w, unsigned i, uint64_t *got, uint64_t *pos)
{
    *got = *pos = 0;
    w->in_tail = 1;
    w->ti = i;
    if (i >= w->tn)
        return MDB_NOTFOUND;
    *got = w->tfirst + i;
    *pos = w->tpos[i];
    return 0;
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
    if (w->rc)
        return w->rc;
    w->in_tail = 0;
    if (w->tn && seq >= w->tfirst)
        return seqc_tail(w, (unsigned)(seq - w->tfirst < w->tn ? seq - w->tfirst : w->tn), got,
                         pos);
    store__put_u64(key, w->num);
    store__put_u64(w->dup ? val : key + 8, seq);
    MDB_val k = {w->dup ? 8 : 16, key}, v = {SEQ_VAL, val};
    int rc = mdb_cursor_get(w->c, &k, &v, w->dup ? MDB_GET_BOTH_RANGE : MDB_SET_RANGE);
    rc = seqc_here(w, rc, &k, &v, got, pos);
    return rc == MDB_NOTFOUND && w->tn ? seqc_tail(w, 0, got, pos) : rc;
}

int store__seqc_next(store__seqc_t *w, uint64_t *got, uint64_t *pos)
{
    MDB_val k, v;
    if (w->rc)
        return w->rc;
    if (w->in_tail)
        return seqc_tail(w, w->ti + 1, got, pos);
    int rc = mdb_cursor_get(w->c, &k, &v, w->dup ? MDB_NEXT_DUP : MDB_NEXT);
    rc = seqc_here(w, rc, &k, &v, got, pos);
    return rc == MDB_NOTFOUND && w->tn ? seqc_tail(w, 0, got, pos) : rc;
}

int store__seqc_del(store__wg_t *g, store__seqc_t *w)
{
    int rc = store__ix_flush(g);
    if (rc || !w->in_tail)
        return rc ? rc : store__cursor_del(g, w->c, 0);
    tail_t t;
    if ((rc = tail_get(w->s, g->txn, w->num, &t)))
        return rc;
    if (w->ti != 0 || !t.n || t.first != w->tfirst)
        return EINVAL; /* only the oldest entry of a tail is ever deleted (a trim) */
    memmove(t.e[0], t.e[1], (t.n - 1) * TAIL_ENTRY);
    t.n--;
    t.first++;
    if ((rc = tail_put(g, w->num, &t)))
        return rc;
    seqc_load(w);
    return w->rc;
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

/* The entry of uuid 'val' (its first 16 bytes) in tail 't': its index, or -1. */
static int tail_uuid(const tail_t *t, const uint8_t val[UUID_VAL])
{
    for (unsigned i = 0; i < t->n; i++)
        if (t->e[i][8] == 1 && !memcmp(t->e[i] + 9, val, 16))
            return (int)i;
    return -1;
}

/* The tree entry of uuid 'val' in session 'num': 0 with '*seq' set, or MDB_NOTFOUND. */
static int uuid_get(const store_t *s, MDB_txn *txn, uint64_t num, const uint8_t val[UUID_VAL],
                    uint64_t *seq)
{
    uint8_t key[8];
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db_event_uuids, &c);
    if (rc)
        return rc;
    store__put_u64(key, num);
    rc = uuid_find(c, key, val, seq);
    mdb_cursor_close(c);
    return rc;
}

int store__id_get(const store_t *s, MDB_txn *txn, uint64_t num, const char *id, size_t len,
                  uint64_t *seq)
{
    uint8_t val[UUID_VAL], key[STORE__ID_KEY_MAX];
    *seq = 0;
    if (in_uuids(s, id, len, val)) { /* in the session's tail, else in 'event_uuids' */
        tail_t t;
        int rc, i;
        if (tails(s) && (rc = tail_get(s, txn, num, &t)))
            return rc;
        if (tails(s) && (i = tail_uuid(&t, val)) >= 0) {
            *seq = t.first + (uint64_t)i;
            return 0;
        }
        return uuid_get(s, txn, num, val, seq);
    }
    MDB_val k = {store__id_key(s, key, num, id, len), key}, v;
    int rc = mdb_get(txn, s->db_event_ids, &k, &v);
    if (!rc && v.mv_size == 8)
        *seq = store__get_u64(v.mv_data);
    return rc;
}

/* Puts the tree entry of uuid 'val' (its first 16 bytes) for 'seq' in session 'num'. */
static int uuid_put(store__wg_t *w, uint64_t num, uint8_t val[UUID_VAL], uint64_t seq)
{
    uint8_t key[8];
    store__put_u64(key, num);
    store__put_u64(val + 16, seq);
    MDB_val k = {8, key}, v = {UUID_VAL, val};
    /* UUIDv7 ids (reel's own, most SDKs') grow with time: append when they do. */
    int rc = store__put(w, w->s->db_event_uuids, &k, &v, MDB_APPENDDUP);
    return rc == MDB_KEYEXIST ? store__put(w, w->s->db_event_uuids, &k, &v, 0) : rc;
}

/* Moves every entry of tail 't' of session 'num' into 'seqs' and 'event_uuids'. */
static int tail_flush(store__wg_t *w, uint64_t num, const tail_t *t)
{
    int rc = 0;
    for (unsigned i = 0; i < t->n && !rc; i++) {
        uint64_t seq = t->first + i;
        rc = seq_put(w, num, seq, store__get_u64(t->e[i]));
        if (!rc && t->e[i][8] == 1) {
            uint8_t val[UUID_VAL];
            memcpy(val, t->e[i] + 9, 16);
            rc = uuid_put(w, num, val, seq);
        }
    }
    return rc;
}

/* Adds entry seq -> pos (with uuid 'val' when 'uuid') at the end of tail 't', which the
 * writer holds for session 'num' (store__ix_flush() writes it); a full tail (or one this
 * sequence does not follow) moves into the trees first. */
static int tail_append(store__wg_t *w, uint64_t num, tail_t *t, uint64_t seq,
                       uint64_t pos, int uuid, const uint8_t val[UUID_VAL])
{
    int rc;
    if (t->n == STORE__TAIL_MAX || (t->n && seq != t->first + t->n)) {
        if ((rc = tail_flush(w, num, t)))
            return rc;
        t->n = 0;
    }
    if (!t->n)
        t->first = seq;
    uint8_t *e = t->e[t->n++];
    store__put_u64(e, pos);
    e[8] = (uint8_t)(uuid != 0);
    if (uuid)
        memcpy(e + 9, val, 16);
    else
        memset(e + 9, 0, 16);
    w->tail_state = 2;
    return 0;
}

int store__ix_append(store__wg_t *w, uint64_t num, uint64_t seq, uint64_t pos, const char *id,
                     size_t len, int new_id, uint64_t *had)
{
    const store_t *s = w->s;
    uint8_t val[UUID_VAL], key[STORE__ID_KEY_MAX];
    tail_t *t = NULL;
    int rc, i, uuid = in_uuids(s, id, len, val);
    *had = 0;
    if (tails(s) && (rc = held(w, num, &t)))
        return rc;
    if (uuid && !new_id) { /* in the tail this writer holds, else in 'event_uuids' */
        if (t && (i = tail_uuid(t, val)) >= 0) {
            *had = t->first + (uint64_t)i;
            return MDB_KEYEXIST;
        }
        rc = uuid_get(s, w->txn, num, val, had);
        if (rc != MDB_NOTFOUND)
            return rc ? rc : MDB_KEYEXIST;
    } else if (!uuid) {
        uint8_t seqbe[8];
        store__put_u64(seqbe, seq);
        MDB_val k = {store__id_key(s, key, num, id, len), key}, v = {8, seqbe};
        rc = store__put(w, s->db_event_ids, &k, &v, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST && v.mv_size == 8)
            *had = store__get_u64(v.mv_data);
        if (rc)
            return rc;
    }
    if (t)
        return tail_append(w, num, t, seq, pos, uuid, val);
    if (uuid && (rc = uuid_put(w, num, val, seq)))
        return rc;
    return seq_put(w, num, seq, pos);
}

int store__id_del(store__wg_t *w, uint64_t num, const char *id, size_t len)
{
    const store_t *s = w->s;
    uint8_t val[UUID_VAL], key[STORE__ID_KEY_MAX];
    if (in_uuids(s, id, len, val)) {
        MDB_cursor *c;
        uint64_t seq;
        int rc = store__ix_flush(w), i;
        if (rc)
            return rc;
        if (tails(s)) {
            tail_t t;
            if ((rc = tail_get(s, w->txn, num, &t)))
                return rc;
            if ((i = tail_uuid(&t, val)) >= 0) { /* the entry stays: its sequence's position */
                t.e[i][8] = 0;
                memset(t.e[i] + 9, 0, 16);
                return tail_put(w, num, &t);
            }
        }
        if ((rc = mdb_cursor_open(w->txn, s->db_event_uuids, &c)))
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
    if (!rc && ixdup(w->s))
        rc = drop_dups(w, w->s->db_event_uuids, num);
    return rc ? rc : drop_tail(w, num);
}
