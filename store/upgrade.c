/* upgrade.c -- format 1 to format 2, in place, in the write transaction that opens the
 * store (docs/FORMAT.md, "Format 2").
 *
 * Format 2 adds the 'recent' database (updated_ms BE | num BE, one entry per session),
 * the "runs" key of session records (how many "session.started" events the session
 * holds), and keys longer ids by hash (store_int.h); format-1 ids are at most 128 bytes,
 * so no key changes. The upgrade builds 'recent', counts each session's runs by reading
 * its events, writes the records back with "runs", and sets the format record to 2, all
 * in the caller's transaction: a crash leaves format 1 untouched. A read-only open of a
 * format-1 store does not upgrade: readers take an absent "runs" as 0, and the recent
 * listing sorts the records instead (store/read.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/json.h"
#include "store/store_int.h"

/* 1 when the msgpack body 'b' (an event's array) has type "session.started". */
static int is_started(const uint8_t *b, size_t len)
{
    store_mp_t m = {b, b + len};
    store_mp_obj_t o;
    if (store_mp_next(&m, &o) || o.type != STORE_MP_ARRAY || o.u < 2 ||
        store_mp_next(&m, &o) || o.type != STORE_MP_STR || /* event_id */
        store_mp_next(&m, &o) || o.type != STORE_MP_STR)   /* type */
        return 0;
    return o.len == 15 && !memcmp(o.ptr, "session.started", 15);
}

/* Counts the "session.started" events of session 'num' (sequences 1..last). */
static int count_runs(store_t *s, MDB_txn *txn, uint64_t num, uint64_t last,
                      store_buf_t *scratch, uint64_t *runs, uint64_t *events)
{
    *runs = 0;
    for (uint64_t seq = 1; seq <= last; seq++) {
        uint8_t key[16];
        store__put_u64(key, num);
        store__put_u64(key + 8, seq);
        MDB_val k = {16, key}, iv, ev;
        int rc = mdb_get(txn, s->db_seqs, &k, &iv);
        if (rc == MDB_NOTFOUND)
            continue; /* a deleted session keeps last_seq, not its events */
        if (rc)
            return rc;
        MDB_val pk = {8, iv.mv_data};
        if (iv.mv_size != 8 || (rc = mdb_get(txn, s->db_events, &pk, &ev)))
            return rc ? rc : MDB_CORRUPTED;
        store_event_view_t view = {0};
        uint64_t got;
        rc = store__value_decode(store__get_u64(iv.mv_data), ev.mv_data, ev.mv_size, scratch,
                                 &view, &got);
        if (rc == REEL_ENOMEM)
            return ENOMEM;
        if (rc || got != num)
            return MDB_CORRUPTED;
        *runs += is_started(view.body, view.body_len);
        (*events)++;
    }
    return 0;
}

/* The record 'v' with "runs" added: its map header counts one more pair. */
static int with_runs(const MDB_val *v, uint64_t runs, store_buf_t *out)
{
    store_mp_t m = {v->mv_data, (const uint8_t *)v->mv_data + v->mv_size};
    store_mp_obj_t o;
    if (store_mp_next(&m, &o) || o.type != STORE_MP_MAP || o.u >= UINT32_MAX)
        return MDB_CORRUPTED;
    store_buf_clear(out);
    store_mp_map(out, (uint32_t)o.u + 1);
    store_buf_put(out, m.p, (size_t)(m.end - m.p));
    store_mp_str(out, "runs", 4);
    store_mp_uint(out, runs);
    return store_buf_failed(out) ? ENOMEM : 0;
}

static int upgrade(store_t *s, MDB_txn *txn, uint64_t *n_sessions, uint64_t *n_events)
{
    int rc = mdb_dbi_open(txn, "recent", MDB_CREATE, &s->db_recent);
    if (rc)
        return rc;
    s->has_recent = 1;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(txn, s->db_sessions, &c)))
        return rc;
    store_buf_t rec_buf = STORE_BUF_INIT, scratch = STORE_BUF_INIT;
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        store_session_t rec;
        uint64_t runs;
        if (store__session_decode(v.mv_data, v.mv_size, k.mv_data, k.mv_size, &rec)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if ((rc = count_runs(s, txn, rec.num, rec.last_sequence, &scratch, &runs, n_events)) ||
            (rc = with_runs(&v, runs, &rec_buf)))
            break;
        /* The key is copied first: 'k' points into the page the put rewrites. */
        uint8_t key[STORE__SESSION_KEY_MAX];
        if (k.mv_size > sizeof key) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(key, k.mv_data, k.mv_size);
        MDB_val kc = {k.mv_size, key}, nv = {rec_buf.len, rec_buf.data};
        if ((rc = mdb_cursor_put(c, &kc, &nv, MDB_CURRENT)))
            break;
        uint8_t rk[16];
        store__put_u64(rk, (uint64_t)rec.updated_ms);
        store__put_u64(rk + 8, rec.num);
        MDB_val rkey = {16, rk}, empty = {0, NULL};
        if ((rc = mdb_put(txn, s->db_recent, &rkey, &empty, 0)))
            break;
        (*n_sessions)++;
    }
    mdb_cursor_close(c);
    store_buf_release(&rec_buf);
    store_buf_release(&scratch);
    if (rc != MDB_NOTFOUND)
        return rc ? rc : MDB_CORRUPTED;
    uint8_t be[4] = {0, 0, 0, 2};
    MDB_val fk = {6, "format"}, fv = {4, be};
    return mdb_put(txn, s->db_meta, &fk, &fv, 0);
}

int store__upgrade(store_t *s, MDB_txn *txn, const char *dir)
{
    uint64_t sessions = 0, events = 0;
    int rc = upgrade(s, txn, &sessions, &events);
    if (rc) {
        s->has_recent = 0;
        s->upgrade_full = rc == MDB_MAP_FULL;
        store__set_error("cannot upgrade '%s' from format 1 to 2: %s%s", dir,
                         rc == MDB_CORRUPTED ? "a session record or event is damaged"
                                             : mdb_strerror(rc),
                         rc == MDB_CORRUPTED ? " (run `reel verify` with a reel that reads "
                                               "format 1; restore from a backup)" : "");
        return rc == ENOMEM ? REEL_ENOMEM : rc == MDB_CORRUPTED ? REEL_ECORRUPT
                                                                : store__err_from_mdb(rc);
    }
    snprintf(s->upgrade_note, sizeof s->upgrade_note, "reel: upgraded '%.200s' from format 1 "
             "to 2 (%llu sessions, %llu events read)", dir, (unsigned long long)sessions,
             (unsigned long long)events);
    return REEL_OK;
}
