/* list.c -- session listings on short read-only transactions (contract in store.h):
 * by id (a prefix, a cursor), and most recently updated first through the 'recent' index
 * (or a scan of every record in a format-1 store opened read-only). Split from read.c,
 * whose checks it shares (store_int.h, "reads"): every sessions entry is checked as
 * read.c's session lookups check it, and a damaged one gives REEL_ECORRUPT naming it.
 * Each public listing runs its static twin under STORE__GUARD (guard.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define TXN(r) ((MDB_txn *)(r)->txn_)

/* Positions 'c' on the first sessions key after the one of id 'cursor' (the first key
 * when none) and at or after 'from' (may be empty). */
static int list_seek(MDB_cursor *c, const char *cursor, size_t cursor_len, const uint8_t *from,
                     size_t from_len, MDB_val *k, MDB_val *v)
{
    uint8_t key[STORE__SESSION_KEY_MAX];
    size_t klen = 0;
    if (cursor && cursor_len && !(klen = store__session_key(cursor, cursor_len, key)))
        return ENOMEM;
    int after = klen > 0;
    if (from_len && (!klen || memcmp(from, key, from_len < klen ? from_len : klen) > 0 ||
                     (from_len > klen && !memcmp(from, key, klen)))) {
        memcpy(key, from, from_len); /* 'from' sorts after the cursor: start there */
        klen = from_len;
        after = 0;
    }
    if (!klen)
        return mdb_cursor_get(c, k, v, MDB_FIRST);
    k->mv_size = klen, k->mv_data = key;
    int rc = mdb_cursor_get(c, k, v, MDB_SET_RANGE);
    if (rc == 0 && after && k->mv_size == klen && !memcmp(k->mv_data, key, klen))
        rc = mdb_cursor_get(c, k, v, MDB_NEXT);
    return rc;
}

static int sessions_list(store_read_t *r, const char *cursor, size_t cursor_len, size_t limit,
                         store_session_cb cb, void *arg, int *more)
{
    MDB_cursor *c;
    if (more)
        *more = 0;
    int rc = store__cursor_open(r, r->s->db_sessions, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = list_seek(c, cursor, cursor_len, NULL, 0, &k, &v);
    size_t n = 0;
    int stop = 0;
    while (rc == 0) {
        if (n == limit) {
            if (more)
                *more = 1;
            break;
        }
        store_session_t rec;
        if ((stop = store__list_decode(r, &k, &v, &rec)) || (stop = cb(arg, &rec)))
            break;
        n++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    return store__walk_end(r, c, stop, rc);
}

/* ---- filtered listings ---- */

static int list_match(const store_list_t *q, const store_session_t *rec)
{
    return (!q->prefix || (rec->id_len >= q->prefix_len &&
                           !memcmp(rec->id, q->prefix, q->prefix_len))) &&
           (!q->agent || (rec->agent_len == q->agent_len &&
                          !memcmp(rec->agent, q->agent, q->agent_len))) &&
           (q->status < 0 || rec->status == q->status);
}

/* One examined record: gives it to 'cb' when it matches and moves the place. Returns 1 to
 * stop the walk (limit or budget reached; '*more' set), a callback's result, or 0. */
static int list_step(store_list_t *q, const store_session_t *rec, size_t limit, size_t budget,
                     size_t *n, size_t *seen, store_session_cb cb, void *arg, int *more)
{
    int match = list_match(q, rec);
    if ((match && *n == limit) || (budget && *seen == budget)) {
        *more = 1;
        return 1;
    }
    (*seen)++;
    q->started = 1;
    memcpy(q->last_id, rec->id, rec->id_len);
    q->last_id[rec->id_len] = 0;
    q->last_id_len = rec->id_len;
    q->last_ms = rec->updated_ms;
    q->last_num = rec->num;
    if (!match)
        return 0;
    (*n)++;
    return cb(arg, rec);
}

static int query_by_id(store_read_t *r, store_list_t *q, size_t limit, size_t budget,
                       store_session_cb cb, void *arg, int *more)
{
    MDB_cursor *c;
    int rc = store__cursor_open(r, r->s->db_sessions, &c);
    if (rc)
        return rc;
    /* Keys of ids with the prefix start with its first STORE__SESSION_KEY_CUT bytes. */
    size_t plen = q->prefix ? q->prefix_len : 0;
    if (plen > STORE__SESSION_KEY_CUT)
        plen = STORE__SESSION_KEY_CUT;
    MDB_val k, v;
    rc = list_seek(c, q->started ? q->last_id : NULL, q->started ? q->last_id_len : 0,
                   (const uint8_t *)q->prefix, plen, &k, &v);
    size_t n = 0, seen = 0;
    int stop = 0;
    while (rc == 0) {
        if (plen && (k.mv_size < plen || memcmp(k.mv_data, q->prefix, plen)))
            break; /* past the prefix's keys */
        store_session_t rec;
        if ((stop = store__list_decode(r, &k, &v, &rec)))
            break;
        if ((stop = list_step(q, &rec, limit, budget, &n, &seen, cb, arg, more)))
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (stop == 1 && *more)
        stop = 0;
    return store__walk_end(r, c, stop, rc);
}

/* Reads the record of session number 'num' into 'rec' (its 'recent' entry says
 * 'updated_ms'); REEL_ECORRUPT, recorded, when the indexes disagree. */
static int record_by_num(store_read_t *r, uint64_t num, int64_t updated_ms,
                         store_session_t *rec)
{
    uint8_t nk[8];
    store__put_u64(nk, num);
    MDB_val name;
    int rc = store__session_name(r, nk, &name);
    if (rc == MDB_NOTFOUND)
        return store__read_corrupt(r, "?", 1, 0, 0, "the recent index names session number %llu, which "
                       "does not exist", (unsigned long long)num);
    if (rc)
        return store__err_from_mdb(rc);
    rc = store__session_get(r, name.mv_data, name.mv_size, rec);
    if (rc == REEL_OK && (rec->num != num || rec->updated_ms != updated_ms))
        return store__read_corrupt(r, rec->id, rec->id_len, 0, 0,
                       "the recent index does not match the session record");
    return rc == REEL_ESESSION_NOT_FOUND || rc == REEL_EINVALID_SESSION_ID
               ? store__read_corrupt(r, name.mv_data, name.mv_size, 0, 0, "session number %llu has no "
                         "record", (unsigned long long)num)
               : rc;
}

static int query_recent(store_read_t *r, store_list_t *q, size_t limit, size_t budget,
                        store_session_cb cb, void *arg, int *more)
{
    MDB_cursor *c;
    int rc = store__cursor_open(r, r->s->db_recent, &c);
    if (rc)
        return rc;
    uint8_t key[16];
    MDB_val k = {16, key}, v;
    if (q->started) { /* the greatest key below the place */
        store__put_u64(key, (uint64_t)q->last_ms);
        store__put_u64(key + 8, q->last_num);
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        rc = rc == 0 ? mdb_cursor_get(c, &k, &v, MDB_PREV)
                     : rc == MDB_NOTFOUND ? mdb_cursor_get(c, &k, &v, MDB_LAST) : rc;
    } else {
        rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    }
    size_t n = 0, seen = 0;
    int stop = 0;
    while (rc == 0) {
        store_session_t rec;
        if (k.mv_size != 16) {
            stop = store__read_corrupt(r, "?", 1, 0, 0, "a recent index key is malformed");
            break;
        }
        const uint8_t *kp = k.mv_data;
        if ((stop = record_by_num(r, store__get_u64(kp + 8), (int64_t)store__get_u64(kp), &rec)))
            break;
        if ((stop = list_step(q, &rec, limit, budget, &n, &seen, cb, arg, more)))
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    }
    if (stop == 1 && *more)
        stop = 0;
    return store__walk_end(r, c, stop, rc);
}

/* Format 1, read-only: no 'recent' db. Sorts the (updated_ms, num) of every record below
 * the place, newest first, then reads them as query_recent() does. */
struct recent_key {
    uint64_t ms, num;
};

static int recent_cmp(const void *a, const void *b)
{
    const struct recent_key *x = a, *y = b;
    if (x->ms != y->ms)
        return x->ms < y->ms ? 1 : -1;
    return x->num < y->num ? 1 : x->num > y->num ? -1 : 0;
}

static int query_recent_scan(store_read_t *r, store_list_t *q, size_t limit, size_t budget,
                             store_session_cb cb, void *arg, int *more)
{
    MDB_cursor *c;
    int rc = store__cursor_open(r, r->s->db_sessions, &c);
    if (rc)
        return rc;
    struct recent_key *keys = NULL;
    size_t nk = 0, cap = 0;
    MDB_val k, v;
    int stop = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        store_session_t rec;
        if ((stop = store__list_decode(r, &k, &v, &rec)))
            break;
        struct recent_key x = {(uint64_t)rec.updated_ms, rec.num};
        struct recent_key at = {(uint64_t)q->last_ms, q->last_num};
        if (q->started && recent_cmp(&x, &at) <= 0)
            continue; /* at or above the place */
        if (nk == cap) {
            size_t ncap = cap ? cap * 2 : 256;
            struct recent_key *nkeys = realloc(keys, ncap * sizeof *keys);
            if (!nkeys) {
                stop = REEL_ENOMEM;
                break;
            }
            keys = nkeys, cap = ncap;
        }
        keys[nk++] = x;
    }
    store__cursor_close(r, c);
    if (!stop && rc != 0 && rc != MDB_NOTFOUND)
        stop = store__err_from_mdb(rc);
    if (!stop && nk)
        qsort(keys, nk, sizeof *keys, recent_cmp);
    size_t n = 0, seen = 0;
    for (size_t i = 0; !stop && i < nk; i++) {
        store_session_t rec;
        if ((stop = record_by_num(r, keys[i].num, (int64_t)keys[i].ms, &rec)))
            break;
        stop = list_step(q, &rec, limit, budget, &n, &seen, cb, arg, more);
    }
    free(keys);
    return stop == 1 && *more ? REEL_OK : stop;
}

static int sessions_query(store_read_t *r, store_list_t *q, size_t limit, size_t budget,
                          store_session_cb cb, void *arg, int *more)
{
    *more = 0;
    if (q->order == STORE_ORDER_RECENT)
        return r->s->has_recent ? query_recent(r, q, limit, budget, cb, arg, more)
                                : query_recent_scan(r, q, limit, budget, cb, arg, more);
    return query_by_id(r, q, limit, budget, cb, arg, more);
}

/* ---- the guarded entry points ---- */

int store_sessions_list(store_read_t *r, const char *cursor, size_t cursor_len, size_t limit,
                        store_session_cb cb, void *arg, int *more)
{
    int rc;
    STORE__GUARD(r->s, rc, sessions_list(r, cursor, cursor_len, limit, cb, arg, more));
    return rc;
}

int store_sessions_query(store_read_t *r, store_list_t *q, size_t limit, size_t budget,
                         store_session_cb cb, void *arg, int *more)
{
    int rc, dummy;
    int *volatile m = more ? more : &dummy; /* kept across the guard's longjmp */
    STORE__GUARD(r->s, rc, sessions_query(r, q, limit, budget, cb, arg, m));
    return rc;
}
