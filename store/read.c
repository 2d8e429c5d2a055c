/* read.c -- reads on short read-only transactions (contract in store.h).
 *
 * Each public read runs its static twin under STORE__GUARD (guard.c), so that a damaged
 * page gives REEL_ECORRUPT instead of an LMDB abort. A walk keeps its cursor in
 * r->cursor_, where store_read_end() finds it when the walk was left by the guard. */
#include <string.h>

#include "store/store_int.h"

#define TXN(r) ((MDB_txn *)(r)->txn_)

/* Ends a cursor walk: 'stop' is a callback's (or decoder's) non-zero result, returned as
 * is; 'rc' is the last LMDB result, where MDB_NOTFOUND means the walk ran off the end. */
static int walk_end(store_read_t *r, int stop, int rc)
{
    mdb_cursor_close(r->cursor_);
    r->cursor_ = NULL;
    if (stop)
        return stop;
    return rc == 0 || rc == MDB_NOTFOUND ? REEL_OK : store__err_from_mdb(rc);
}

int store_read_begin(store_t *s, store_read_t *r)
{
    memset(r, 0, sizeof *r);
    r->s = s;
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&s->resize_lock);
        MDB_txn *txn;
        int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
        if (rc == MDB_SUCCESS) {
            r->txn_ = txn;
            return REEL_OK;
        }
        pthread_rwlock_unlock(&s->resize_lock);
        if (rc != MDB_MAP_RESIZED || tries > 8) {
            store__set_error("cannot begin a read: %s", mdb_strerror(rc));
            return store__err_from_mdb(rc);
        }
        /* Another process grew the map; adopt it with no read of ours open. */
        if ((rc = store__grow(s, 1, 0)))
            return rc;
    }
}

void store_read_end(store_read_t *r)
{
    if (r->cursor_) {
        mdb_cursor_close(r->cursor_);
        r->cursor_ = NULL;
    }
    if (r->txn_) {
        mdb_txn_abort(TXN(r));
        r->txn_ = NULL;
        pthread_rwlock_unlock(&r->s->resize_lock);
    }
    store_buf_release(&r->zbuf_);
}

/* 1 if the sessions entry 'k' is sound: a valid id whose record's number maps back to it
 * through session_ids. */
static int entry_sound(store_read_t *r, const MDB_val *k, const MDB_val *v)
{
    store_session_t rec;
    uint8_t num[8];
    MDB_val nk = {8, num}, name;
    if (!store_session_id_valid(k->mv_data, k->mv_size) ||
        store__session_decode(v->mv_data, v->mv_size, k->mv_data, k->mv_size, &rec))
        return 0;
    store__put_u64(num, rec.num);
    return mdb_get(TXN(r), r->s->db_session_ids, &nk, &name) == 0 &&
           name.mv_size == k->mv_size && !memcmp(name.mv_data, k->mv_data, k->mv_size);
}

/* A session id was not found: REEL_ESESSION_NOT_FOUND if that is true, REEL_ECORRUPT if the
 * entries where it would sit are damaged (a flipped key size hides a session: the 404
 * would be a wrong answer). Only the not-found path pays for it. */
static int confirm_absent(store_read_t *r, const char *id, size_t id_len)
{
    MDB_cursor *c;
    if (mdb_cursor_open(TXN(r), r->s->db_sessions, &c))
        return REEL_ESESSION_NOT_FOUND; /* cannot check: keep the lookup's answer */
    r->cursor_ = c;
    MDB_val k = {id_len, (void *)id}, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), sound = 1;
    if (rc == 0)
        sound = entry_sound(r, &k, &v);
    rc = rc == 0 ? mdb_cursor_get(c, &k, &v, MDB_PREV) : mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (sound && rc == 0)
        sound = entry_sound(r, &k, &v);
    mdb_cursor_close(c);
    r->cursor_ = NULL;
    if (sound)
        return REEL_ESESSION_NOT_FOUND;
    store__set_error("the sessions database is damaged near '%.*s'", (int)id_len, id);
    return REEL_ECORRUPT;
}

static int session_get(store_read_t *r, const char *id, size_t id_len, store_session_t *out)
{
    if (!store_session_id_valid(id, id_len))
        return REEL_EINVALID_SESSION_ID;
    MDB_val k = {id_len, (void *)id}, v;
    int rc = mdb_get(TXN(r), r->s->db_sessions, &k, &v);
    if (rc == MDB_NOTFOUND)
        return confirm_absent(r, id, id_len);
    if (rc)
        return store__err_from_mdb(rc);
    return store__session_decode(v.mv_data, v.mv_size, id, id_len, out);
}

/* Decodes the value at position 'pos' and hands it to 'cb'. With 'want_num' non-zero the
 * value must be sequence 'want_seq' of session number 'want_num' (the index pointed at it). */
static int emit(store_read_t *r, const char *id, size_t id_len, uint64_t pos, const MDB_val *v,
                uint64_t want_num, uint64_t want_seq, store_event_cb cb, void *arg)
{
    store_event_view_t ev = {0};
    uint64_t num;
    int rc = store__value_decode(pos, v->mv_data, v->mv_size, &r->zbuf_, &ev, &num);
    if (rc)
        return rc;
    if (want_num && (num != want_num || ev.sequence != want_seq)) {
        store__set_error("session '%.*s' sequence %llu: the index points at another event",
                         (int)id_len, id, (unsigned long long)want_seq);
        return REEL_ECORRUPT;
    }
    ev.session = id;
    ev.session_len = id_len;
    return cb(arg, &ev);
}

static int index_damaged(const store_session_t *rec, uint64_t seq)
{
    store__set_error("session '%.*s': its sequence index is damaged at sequence %llu",
                     (int)rec->id_len, rec->id, (unsigned long long)seq);
    return REEL_ECORRUPT;
}

static int events_after(store_read_t *r, const char *id, size_t id_len, uint64_t after,
                        size_t limit, store_event_cb cb, void *arg, int *more)
{
    store_session_t rec;
    int rc = session_get(r, id, id_len, &rec);
    if (more)
        *more = 0;
    if (rc)
        return rc;
    if (rec.status == STORE_DELETED)
        return REEL_EGONE;
    if (after >= rec.last_sequence)
        return REEL_OK;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(TXN(r), r->s->db_seqs, &c)))
        return store__err_from_mdb(rc);
    r->cursor_ = c;
    uint8_t key[16];
    store__put_u64(key, rec.num);
    store__put_u64(key + 8, after + 1);
    MDB_val k = {16, key}, v;
    size_t n = 0;
    int stop = 0;
    /* Sequences are dense from 1 to the record's last_sequence (docs/FORMAT.md): a gap, a
     * key past the last one, or an index that ends early is damage, never a short answer
     * (a session cut short would be served with hasMore:false). */
    uint64_t want = after + 1;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size != 16 || memcmp(k.mv_data, key, 8))
            break;
        if (store__get_u64((uint8_t *)k.mv_data + 8) != want || want > rec.last_sequence) {
            stop = index_damaged(&rec, want);
            break;
        }
        if (n == limit) {
            if (more)
                *more = 1;
            break;
        }
        MDB_val pk = {8, v.mv_data}, ev;
        if (v.mv_size != 8 || mdb_get(TXN(r), r->s->db_events, &pk, &ev)) {
            stop = REEL_ECORRUPT; /* the index points at no event */
            break;
        }
        if ((stop = emit(r, rec.id, rec.id_len, store__get_u64(v.mv_data), &ev, rec.num, want,
                         cb, arg)))
            break;
        n++;
        want++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (!stop && n < limit && want != rec.last_sequence + 1 && (rc == 0 || rc == MDB_NOTFOUND))
        stop = index_damaged(&rec, want); /* the index ended before the last sequence */
    return walk_end(r, stop, rc);
}

static int events_newest(store_read_t *r, const char *id, size_t id_len, size_t n,
                         store_event_cb cb, void *arg)
{
    store_session_t rec;
    int rc = session_get(r, id, id_len, &rec);
    if (rc)
        return rc;
    /* Sequences are dense, so the newest n start at last - n + 1: one seek, no scan. */
    uint64_t after = rec.last_sequence > n ? rec.last_sequence - n : 0;
    return events_after(r, id, id_len, after, n, cb, arg, NULL);
}

/* Session id for an internal session number. */
static int session_name(store_read_t *r, const uint8_t num[8], MDB_val *name)
{
    MDB_val k = {8, (void *)num};
    return mdb_get(TXN(r), r->s->db_session_ids, &k, name);
}

static int feed_after(store_read_t *r, uint64_t after, size_t limit, store_event_cb cb,
                      void *arg, int *more)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(TXN(r), r->s->db_events, &c);
    if (more)
        *more = 0;
    if (rc)
        return store__err_from_mdb(rc);
    r->cursor_ = c;
    uint8_t key[8], last_num[8] = {0};
    store__put_u64(key, after + 1);
    MDB_val k = {8, key}, v, name = {0, NULL};
    size_t n = 0;
    int stop = 0;
    rc = after == UINT64_MAX ? MDB_NOTFOUND : mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size != 8 || v.mv_size < STORE_HEADER_LEN) {
            stop = REEL_ECORRUPT;
            break;
        }
        if (n == limit) {
            if (more)
                *more = 1;
            break;
        }
        const uint8_t *num = (const uint8_t *)v.mv_data + 1;
        if (!name.mv_data || memcmp(last_num, num, 8)) {
            memcpy(last_num, num, 8);
            if (session_name(r, last_num, &name)) {
                stop = REEL_ECORRUPT;
                break;
            }
        }
        if ((stop = emit(r, name.mv_data, name.mv_size, store__get_u64(k.mv_data), &v, 0, 0, cb,
                         arg)))
            break;
        n++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    return walk_end(r, stop, rc);
}

static int tail_position(store_read_t *r, uint64_t *pos)
{
    MDB_val k = {13, "last_position"}, v;
    int rc = mdb_get(TXN(r), r->s->db_meta, &k, &v);
    *pos = rc == 0 && v.mv_size == 8 ? store__get_u64(v.mv_data) : 0;
    return rc == 0 || rc == MDB_NOTFOUND ? REEL_OK : store__err_from_mdb(rc);
}

static int sessions_list(store_read_t *r, const char *cursor, size_t cursor_len, size_t limit,
                         store_session_cb cb, void *arg, int *more)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(TXN(r), r->s->db_sessions, &c);
    if (more)
        *more = 0;
    if (rc)
        return store__err_from_mdb(rc);
    r->cursor_ = c;
    MDB_val k = {cursor_len, (void *)cursor}, v;
    if (cursor && cursor_len) {
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == cursor_len && !memcmp(k.mv_data, cursor, cursor_len))
            rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    } else {
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    }
    size_t n = 0;
    int stop = 0;
    while (rc == 0) {
        if (n == limit) {
            if (more)
                *more = 1;
            break;
        }
        store_session_t rec;
        if ((stop = store__session_decode(v.mv_data, v.mv_size, k.mv_data, k.mv_size, &rec)) ||
            (stop = cb(arg, &rec)))
            break;
        n++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    return walk_end(r, stop, rc);
}

/* ---- the guarded entry points ---- */

int store_session_get(store_read_t *r, const char *id, size_t id_len, store_session_t *out)
{
    int rc;
    STORE__GUARD(r->s, rc, session_get(r, id, id_len, out));
    return rc;
}

int store_events_after(store_read_t *r, const char *id, size_t id_len, uint64_t after,
                       size_t limit, store_event_cb cb, void *arg, int *more)
{
    int rc;
    STORE__GUARD(r->s, rc, events_after(r, id, id_len, after, limit, cb, arg, more));
    return rc;
}

int store_events_newest(store_read_t *r, const char *id, size_t id_len, size_t n,
                        store_event_cb cb, void *arg)
{
    int rc;
    STORE__GUARD(r->s, rc, events_newest(r, id, id_len, n, cb, arg));
    return rc;
}

int store_feed_after(store_read_t *r, uint64_t after, size_t limit, store_event_cb cb,
                     void *arg, int *more)
{
    int rc;
    STORE__GUARD(r->s, rc, feed_after(r, after, limit, cb, arg, more));
    return rc;
}

int store_tail_position(store_read_t *r, uint64_t *pos)
{
    int rc;
    STORE__GUARD(r->s, rc, tail_position(r, pos));
    return rc;
}

int store_sessions_list(store_read_t *r, const char *cursor, size_t cursor_len, size_t limit,
                        store_session_cb cb, void *arg, int *more)
{
    int rc;
    STORE__GUARD(r->s, rc, sessions_list(r, cursor, cursor_len, limit, cb, arg, more));
    return rc;
}
