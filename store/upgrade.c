/* upgrade.c -- older formats to the current one (4), in place, in the write transaction
 * that opens the store (docs/FORMAT.md §8). Formats 2 and 3 to 4 are the version number
 * only (store/env.c: formats 3 and 4 add optional parts a format-2 store has none of).
 * Format 1 to 4 is the work below (docs/FORMAT.md, "Format 2").
 *
 * Format 2 adds the 'recent' database (updated_ms BE | num BE, one entry per session),
 * the "runs" and "version" keys of session records, a status rule (a session that runs
 * again after "session.ended" is active again) and keys longer ids by hash (store_int.h);
 * format-1 ids are at most 128 bytes, so no key changes. The upgrade builds 'recent',
 * reads each session's events to count its runs and apply the status rule, writes the
 * records back (version 1), and sets the format record to the current version, all
 * in the caller's transaction: a crash leaves format 1 untouched. A read-only open of a
 * format-1 store does not upgrade: readers take an absent "runs" as 0, and the recent
 * listing sorts the records instead (store/read.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/json.h"
#include "store/store_int.h"

enum { EV_OTHER, EV_STARTED, EV_ENDED };

/* What the msgpack body 'b' (an event's array) is by its type: a start, an end or other. */
static int kind_of(const uint8_t *b, size_t len)
{
    store_mp_t m = {b, b + len};
    store_mp_obj_t o;
    if (store_mp_next(&m, &o) || o.type != STORE_MP_ARRAY || o.u < 2 ||
        store_mp_next(&m, &o) || o.type != STORE_MP_STR || /* event_id */
        store_mp_next(&m, &o) || o.type != STORE_MP_STR)   /* type */
        return EV_OTHER;
    if (o.len == 15 && !memcmp(o.ptr, "session.started", 15))
        return EV_STARTED;
    return o.len == 13 && !memcmp(o.ptr, "session.ended", 13) ? EV_ENDED : EV_OTHER;
}

/* Applies format 2's run rules to record 'rec' from its events (sequences 1..last): "runs"
 * counts the "session.started" events, and a session is ended only when nothing came
 * after its latest "session.ended" (format 1 kept "ended" through later events), with
 * ended_at that end's time. A deleted session keeps its status (its events are gone). */
static int apply_runs(store_t *s, MDB_txn *txn, store_session_t *rec, store_buf_t *scratch,
                      uint64_t *events)
{
    uint64_t last_end = 0, end_ms = 0;
    rec->runs = 0;
    for (uint64_t seq = 1; seq <= rec->last_sequence; seq++) {
        uint8_t key[8];
        uint64_t pos;
        MDB_val ev;
        int rc = store__seq_get(s, txn, rec->num, seq, &pos);
        if (rc == MDB_NOTFOUND)
            continue; /* a deleted session keeps last_seq, not its events */
        if (rc)
            return rc;
        store__put_u64(key, pos);
        MDB_val pk = {8, key};
        if (!pos || (rc = mdb_get(txn, s->db_events, &pk, &ev)))
            return rc ? rc : MDB_CORRUPTED;
        store_event_view_t view = {0};
        uint64_t got;
        rc = store__value_decode(s, txn, pos, ev.mv_data, ev.mv_size, scratch, &view, &got);
        if (rc == REEL_ENOMEM)
            return ENOMEM;
        if (rc || got != rec->num)
            return MDB_CORRUPTED;
        int kind = kind_of(view.body, view.body_len);
        rec->runs += kind == EV_STARTED;
        if (kind == EV_ENDED)
            last_end = seq, end_ms = view.time_ms;
        (*events)++;
    }
    if (last_end && rec->status != STORE_DELETED) {
        rec->status = last_end == rec->last_sequence ? STORE_ENDED : STORE_ACTIVE;
        rec->ended_ms = (int64_t)end_ms;
    }
    return 0;
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
        if (store__session_decode(v.mv_data, v.mv_size, k.mv_data, k.mv_size, &rec)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if ((rc = apply_runs(s, txn, &rec, &scratch, n_events)))
            break;
        store_buf_clear(&rec_buf);
        store__session_encode(&rec, &rec_buf); /* copies the metadata 'v' still holds */
        if (store_buf_failed(&rec_buf)) {
            rc = ENOMEM;
            break;
        }
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
    return store__put_format(s, txn);
}

int store__put_format(store_t *s, MDB_txn *txn)
{
    /* Without optional parts the record stays 4 bytes: older format-4 builds open it. */
    uint8_t be[8] = {0, 0, 0, STORE_FORMAT_VERSION, (uint8_t)(s->parts >> 24),
                     (uint8_t)(s->parts >> 16), (uint8_t)(s->parts >> 8), (uint8_t)s->parts};
    MDB_val fk = {6, "format"}, fv = {s->parts ? 8 : 4, be};
    return mdb_put(txn, s->db_meta, &fk, &fv, 0);
}

int store__upgrade(store_t *s, MDB_txn *txn, const char *dir)
{
    uint64_t sessions = 0, events = 0;
    int rc = upgrade(s, txn, &sessions, &events);
    if (rc) {
        s->has_recent = 0;
        s->upgrade_full = rc == MDB_MAP_FULL;
        store__set_error("cannot upgrade '%s' from format 1 to %d: %s%s", dir, STORE_FORMAT_VERSION,
                         rc == MDB_CORRUPTED ? "a session record or event is damaged"
                                             : mdb_strerror(rc),
                         rc == MDB_CORRUPTED ? " (run `reel verify` with a reel that reads "
                                               "format 1; restore from a backup)" : "");
        return rc == ENOMEM ? REEL_ENOMEM : rc == MDB_CORRUPTED ? REEL_ECORRUPT
                                                                : store__err_from_mdb(rc);
    }
    snprintf(s->upgrade_note, sizeof s->upgrade_note, "reel: upgraded '%.200s' from format 1 "
             "to %d (%llu sessions, %llu events read)", dir, STORE_FORMAT_VERSION,
             (unsigned long long)sessions,
             (unsigned long long)events);
    return REEL_OK;
}
