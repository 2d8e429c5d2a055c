/* verify.c -- integrity check and backup of a store (contracts in store.h).
 *
 * Like redis-check-aof, verify reports the first bad place and the last good sequence
 * before it, and repairs nothing. Every check reads the stored bytes, never trusting them:
 * a corrupt value is a finding, not a crash.
 */
#include <errno.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/json.h"
#include "store/store_int.h"

/* A verify read sees everything: the visible bound (visible.c) hides events from readers,
 * not from the check of what is stored. */
static int verify_begin(store_t *s, store_read_t *r)
{
    int rc = store_read_begin(s, r);
    if (rc == REEL_OK)
        store_read_see_all(r);
    return rc;
}

#define CHUNK 4096 /* events per read transaction */

struct verify {
    store_t *s;
    store_verify_report_t *rep;
    store_progress_cb progress;
    void *arg;
    uint64_t total; /* events expected, for progress */
    store_buf_t zbuf;
};

static int finding(struct verify *v, const store_session_t *rec, uint64_t seq, uint64_t pos,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Records the first problem; later ones are not kept. Returns 1 (stop walking). */
static int finding(struct verify *v, const store_session_t *rec, uint64_t seq, uint64_t pos,
                   const char *fmt, ...)
{
    store_verify_report_t *rep = v->rep;
    if (!rep->ok)
        return 1;
    rep->ok = 0;
    if (rec) {
        memcpy(rep->session, rec->id, rec->id_len);
        rep->session[rec->id_len] = 0;
    }
    rep->sequence = seq;
    rep->position = pos;
    rep->ok_up_to = seq ? seq - 1 : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->problem, sizeof rep->problem, fmt, ap);
    va_end(ap);
    return 1;
}

/* Checks the value at 'pos' against its session, sequence and chain; 1 on a finding,
 * REEL_ENOMEM when it could not check. */
static int check_event(struct verify *v, MDB_txn *txn, const store_session_t *rec, uint64_t seq,
                       uint64_t pos, const MDB_val *val, uint8_t chain[STORE_HASH_LEN])
{
    store_event_view_t ev = {0};
    uint64_t num;
    int rc = store__value_decode(v->s, txn, pos, val->mv_data, val->mv_size, &v->zbuf, &ev, &num);
    if (rc == REEL_ENOMEM) /* no verdict on this value: not a finding */
        return rc;
    if (rc)
        return finding(v, rec, seq, pos, "the stored value cannot be decoded (bad header or zstd frame)");
    if (num != rec->num || ev.sequence != seq)
        return finding(v, rec, seq, pos, "the value at this position belongs to another event");
    store_mp_t m = {ev.body, ev.body + ev.body_len};
    store_mp_obj_t arr, id;
    if (store_mp_next(&m, &arr) || arr.type != STORE_MP_ARRAY || (arr.u < 7 || arr.u > 9))
        return finding(v, rec, seq, pos, "the body is neither the 8-field array (9 with redactions) nor format 1's 7-field array");
    const uint8_t *fields = m.p;
    if (store_mp_next(&m, &id) || id.type != STORE_MP_STR || id.len == 0 ||
        id.len > STORE_EVENT_ID_MAX)
        return finding(v, rec, seq, pos, "the body has no valid event_id");
    m.p = fields;
    for (int i = 0; i < (int)arr.u; i++) {
        if (i == 8 && (m.p == m.end || !((*m.p & 0xf0) == 0x80 || *m.p == 0xde || *m.p == 0xdf)))
            return finding(v, rec, seq, pos, "body field 8 (redactions) is not a map");
        if (store_mp_skip(&m, STORE_JSON_MAX_DEPTH))
            return finding(v, rec, seq, pos, "body field %d is not valid msgpack", i);
    }
    if (m.p != m.end)
        return finding(v, rec, seq, pos, "bytes after the body");
    uint8_t body_hash[STORE_HASH_LEN], want[STORE_HASH_LEN];
    /* A redacted event (FORMAT.md section 11): the chain commits to its kept hash. */
    if (store__body_hash(&ev, body_hash) ||
        store__chain(chain, seq, pos, ev.time_ms, body_hash, want))
        return REEL_ENOMEM;
    if (memcmp(want, ev.hash, STORE_HASH_LEN))
        return finding(v, rec, seq, pos,
                       "hash chain mismatch: the event or one before it was altered");
    memcpy(chain, want, STORE_HASH_LEN);
    /* The record's first_event_at is the time of sequence 1 (store.h): the record has no
     * checksum of its own, so its fields that events can vouch for are compared here. */
    if (seq == 1 && rec->first_event_ms && (uint64_t)rec->first_event_ms != ev.time_ms)
        return finding(v, rec, seq, pos, "the session record's first_event_at is not the time "
                       "of sequence 1");

    uint64_t iseq;
    rc = store__id_get(v->s, txn, rec->num, (const char *)id.ptr, id.len, &iseq);
    if (rc == ENOMEM) /* the cursor of a per-session tree could not be made: no verdict */
        return REEL_ENOMEM;
    if (rc || iseq != seq)
        return finding(v, rec, seq, pos, "the event_id index does not point at this event");
    return 0;
}

/* Where a session's walk is; it outlives each chunk's read transaction. */
struct walk {
    uint8_t chain[STORE_HASH_LEN];
    uint64_t next, bytes, count, last_pos;
};

/* Checks up to CHUNK events of 'rec' from w->next on read 'r' (its cursor kept in
 * the read, so that store_read_end() closes it, also after a guard left). 1 on a finding. */
static int session_chunk(struct verify *v, const store_session_t *rec, store_read_t *r,
                         struct walk *w)
{
    MDB_txn *txn = r->txn_;
    MDB_cursor *c;
    int rc, stop = 0;
    if ((rc = store__cursor_open(r, v->s->db_seqs, &c)))
        return rc;
    store__seqc_t sc;
    store__seqc_init(&sc, v->s, c, rec->num);
    if (sc.rc) /* FORMAT.md 22 */
        return finding(v, rec, w->next, 0, "the session's index tail cannot be read (%s)",
                       mdb_strerror(sc.rc));
    /* A trimmed session (docs/FORMAT.md section 10): nothing may be left before its first
     * kept sequence; the first chunk starts its seek at sequence 0 to see that. */
    int trimmed_start = !w->count && w->next == rec->first_sequence && w->next > 1;
    uint64_t seq, pos;
    uint8_t pkey[8];
    MDB_val val;
    int got = store__seqc_seek(&sc, trimmed_start ? 0 : w->next, &seq, &pos);
    if (trimmed_start && !got && seq < rec->first_sequence)
        return finding(v, rec, seq, 0,
                       "sequence %llu is indexed, before the first kept sequence %llu",
                       (unsigned long long)seq, (unsigned long long)rec->first_sequence);
    for (int n = 0; n < CHUNK && w->next <= rec->last_sequence; n++) {
        uint64_t next = w->next;
        if (got || seq != next || !pos)
            return finding(v, rec, next, 0, "sequence %llu is missing (sequences must be dense)",
                           (unsigned long long)next);
        store__put_u64(pkey, pos);
        MDB_val pk = {8, pkey};
        if (pos <= w->last_pos)
            return finding(v, rec, next, pos, "positions go backwards within the session");
        if (mdb_get(txn, v->s->db_events, &pk, &val))
            return finding(v, rec, next, pos, "the event at position %llu is missing",
                           (unsigned long long)pos);
        if ((stop = check_event(v, txn, rec, next, pos, &val, w->chain)))
            return stop;
        w->last_pos = pos;
        w->bytes += val.mv_size;
        w->count++;
        w->next++;
        v->rep->events++;
        got = store__seqc_next(&sc, &seq, &pos);
    }
    if (w->next > rec->last_sequence && got == 0)
        return finding(v, rec, w->next, 0, "events past the session's last sequence %llu",
                       (unsigned long long)rec->last_sequence);
    return 0;
}

/* session_chunk() under the damaged-page guard: REEL_ECORRUPT when a page was damaged. */
static int guarded_chunk(struct verify *v, const store_session_t *rec, store_read_t *r,
                         struct walk *w)
{
    int rc;
    STORE__GUARD(v->s, rc, session_chunk(v, rec, r, w));
    return rc;
}

/* Walks one session's sequence index in short transactions. */
/* Where a walk of a trimmed session's event_id index is: the key to go on after. */
struct ids_walk {
    uint8_t key[STORE__ID_KEY_MAX];
    size_t len;
    int done;
    int uuids;       /* walking 'event_uuids' (STORE__PART_IXDUP), after 'event_ids' */
    uint8_t val[24]; /* there: the value to go on after, when 'has_val' */
    int has_val;
};

/* ids_chunk() in 'event_uuids': the session's duplicates after w->val. */
static int uuids_chunk(struct verify *v, const store_session_t *rec, store_read_t *r,
                       struct ids_walk *w)
{
    MDB_cursor *c;
    int rc = store__cursor_open(r, v->s->db_event_uuids, &c);
    if (rc)
        return rc;
    MDB_val k = {8, w->key}, val = {sizeof w->val, w->val};
    int got = mdb_cursor_get(c, &k, &val, w->has_val ? MDB_GET_BOTH_RANGE : MDB_SET_KEY);
    if (!got && w->has_val && val.mv_size == sizeof w->val && !memcmp(val.mv_data, w->val, sizeof w->val))
        got = mdb_cursor_get(c, &k, &val, MDB_NEXT_DUP); /* the last one of the previous chunk */
    for (int n = 0; n < CHUNK; n++, got = mdb_cursor_get(c, &k, &val, MDB_NEXT_DUP)) {
        if (got) {
            w->done = 1;
            return 0;
        }
        uint64_t seq = val.mv_size == sizeof w->val ? store__get_u64((uint8_t *)val.mv_data + 16) : 0;
        if (seq < rec->first_sequence)
            return finding(v, rec, seq, 0, "the event_id index still names sequence %llu, "
                           "before the first kept sequence %llu", (unsigned long long)seq,
                           (unsigned long long)rec->first_sequence);
        memcpy(w->val, val.mv_data, sizeof w->val);
        w->has_val = 1;
    }
    return 0;
}

/* Up to CHUNK event_id entries of 'rec' after w->key on read 'r': none may name a
 * sequence before first_sequence (docs/FORMAT.md 10.4). 1 on a finding. */
static int ids_chunk(struct verify *v, const store_session_t *rec, store_read_t *r,
                     struct ids_walk *w)
{
    if (w->uuids)
        return uuids_chunk(v, rec, r, w);
    MDB_cursor *c;
    int rc = store__cursor_open(r, v->s->db_event_ids, &c);
    if (rc)
        return rc;
    MDB_val k = {w->len, w->key}, val;
    int got = mdb_cursor_get(c, &k, &val, MDB_SET_RANGE);
    if (!got && w->len > 8 && k.mv_size == w->len && !memcmp(k.mv_data, w->key, w->len))
        got = mdb_cursor_get(c, &k, &val, MDB_NEXT); /* the last key of the previous chunk */
    for (int n = 0; n < CHUNK; n++, got = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
        if (got || k.mv_size < 8 || k.mv_size > sizeof w->key || memcmp(k.mv_data, w->key, 8)) {
            /* then the UUID ids, in a store that keeps them apart */
            w->uuids = (v->s->parts & STORE__PART_IXDUP) != 0;
            w->done = !w->uuids;
            return 0;
        }
        uint64_t seq = val.mv_size == 8 ? store__get_u64(val.mv_data) : 0;
        if (seq < rec->first_sequence)
            return finding(v, rec, seq, 0, "the event_id index still names sequence %llu, "
                           "before the first kept sequence %llu", (unsigned long long)seq,
                           (unsigned long long)rec->first_sequence);
        memcpy(w->key, k.mv_data, k.mv_size);
        w->len = k.mv_size;
    }
    return 0;
}

static int guarded_ids_chunk(struct verify *v, const store_session_t *rec, store_read_t *r,
                             struct ids_walk *w)
{
    int rc;
    STORE__GUARD(v->s, rc, ids_chunk(v, rec, r, w));
    return rc;
}

/* A trimmed session's event_id index holds no id of a trimmed event. */
static int verify_trimmed_ids(struct verify *v, const store_session_t *rec)
{
    struct ids_walk w = {.len = 8};
    store__put_u64(w.key, rec->num);
    int stop = 0;
    while (!stop && !w.done) {
        store_read_t r;
        int rc = verify_begin(v->s, &r);
        if (rc)
            return rc;
        stop = guarded_ids_chunk(v, rec, &r, &w);
        store_read_end(&r);
        if (stop == REEL_ECORRUPT)
            stop = finding(v, rec, 0, 0, "damaged page: the event_id index cannot be read (%s)",
                           store_last_error());
    }
    return stop < 0 ? stop : REEL_OK;
}

static int verify_session(struct verify *v, const store_session_t *rec)
{
    /* A trimmed session's chain starts from the hash kept for its first kept event. */
    struct walk w = {.next = rec->first_sequence ? rec->first_sequence : 1};
    memcpy(w.chain, rec->first_prev_hash, STORE_HASH_LEN);
    int stop = 0, rc = REEL_OK;
    v->rep->sessions++;
    if (rec->status == STORE_DELETED)
        return REEL_OK; /* its events are gone by design */
    while (!stop && w.next <= rec->last_sequence) {
        store_read_t r;
        if ((rc = verify_begin(v->s, &r)))
            return rc;
        stop = guarded_chunk(v, rec, &r, &w);
        store_read_end(&r);
        if (stop == REEL_ECORRUPT) /* a damaged page (or LMDB found one): a finding */
            stop = finding(v, rec, w.next, 0, "damaged page: sequences %llu..%llu cannot be "
                           "read (%s)", (unsigned long long)w.next,
                           (unsigned long long)rec->last_sequence, store_last_error());
        if (stop < 0) /* check_event() could not check (out of memory): no verdict */
            return stop;
        if (v->progress)
            v->progress(v->arg, v->rep->events, v->total);
    }
    if (!stop && (w.count != rec->event_count || w.bytes != rec->bytes))
        finding(v, rec, 0, 0, "the session record counts %llu events and %llu bytes, the log has "
                "%llu and %llu", (unsigned long long)rec->event_count,
                (unsigned long long)rec->bytes, (unsigned long long)w.count,
                (unsigned long long)w.bytes);
    else if (!stop && memcmp(w.chain, rec->last_hash, STORE_HASH_LEN))
        finding(v, rec, 0, 0, "the session record's last hash differs from the chain");
    if (!stop && v->rep->ok && rec->first_sequence > 1 && (rc = verify_trimmed_ids(v, rec)))
        return rc;
    if (!stop && v->rep->ok)
        v->rep->ok_up_to = rec->last_sequence;
    return REEL_OK;
}

struct list_ctx {
    struct verify *v;
    char cursor[STORE_SESSION_ID_MAX + 1];
    size_t cursor_len;
    store_session_t *recs;
    size_t n;
};

static int take_rec(void *arg, const store_session_t *rec)
{
    struct list_ctx *l = arg;
    l->recs[l->n] = *rec;
    l->recs[l->n].metadata = NULL; /* borrowed from the read; not needed here */
    l->n++;
    return 0;
}

/* Checks up to CHUNK log entries after '*after' on read 'r'; '*more' 1 when more remain. */
static int log_chunk(struct verify *v, store_read_t *r, uint64_t *after, int *more)
{
    MDB_txn *txn = r->txn_;
    MDB_cursor *c;
    uint64_t tail = 0;
    int rc;
    if ((rc = store_tail_position(r, &tail)))
        return rc;
    if ((rc = store__cursor_open(r, v->s->db_events, &c)))
        return rc;
    uint8_t key[8];
    store__put_u64(key, *after + 1);
    MDB_val k = {8, key}, val;
    int got = mdb_cursor_get(c, &k, &val, MDB_SET_RANGE), n = 0;
    for (; got == 0 && n < CHUNK; n++) {
        uint64_t pos = k.mv_size == 8 ? store__get_u64(k.mv_data) : 0;
        v->rep->log_entries++;
        store__head_t h;
        if (!pos || store__head_parse(val.mv_data, val.mv_size, &h))
            return finding(v, NULL, 0, pos, "the value at position %llu is malformed",
                           (unsigned long long)pos);
        if (pos > tail)
            return finding(v, NULL, 0, pos, "position %llu is past the last position %llu",
                           (unsigned long long)pos, (unsigned long long)tail);
        uint64_t at;
        int src = store__seq_get(v->s, txn, h.num, h.seq, &at);
        if (src == ENOMEM) /* no verdict on this entry: not a finding */
            return REEL_ENOMEM;
        if (src || at != pos)
            return finding(v, NULL, h.seq, pos,
                           "the event at position %llu is not in its session's index",
                           (unsigned long long)pos);
        *after = pos;
        got = mdb_cursor_get(c, &k, &val, MDB_NEXT);
    }
    *more = got == 0;
    return 0;
}

static int guarded_log_chunk(struct verify *v, store_read_t *r, uint64_t *after, int *more)
{
    int rc;
    STORE__GUARD(v->s, rc, log_chunk(v, r, after, more));
    return rc;
}

/* The log itself: every value is indexed by its session's sequence index, and no
 * position is above the last one recorded. */
static int verify_log(struct verify *v)
{
    uint64_t after = 0;
    for (;;) {
        store_read_t r;
        int rc = verify_begin(v->s, &r), more = 0;
        if (rc)
            return rc;
        rc = guarded_log_chunk(v, &r, &after, &more);
        store_read_end(&r);
        if (rc == REEL_ECORRUPT) {
            finding(v, NULL, 0, after + 1, "damaged page: the log after position %llu cannot "
                    "be read (%s)", (unsigned long long)after, store_last_error());
            return REEL_OK;
        }
        if (rc < 0)
            return rc;
        if (rc || !more || !v->rep->ok)
            return REEL_OK;
    }
}

/* The 'recent' index (format 2): one entry per session, each the (updated_ms, num) of a
 * record. A format-1 store opened read-only has none. */
static int recent_check(struct verify *v, store_read_t *r)
{
    MDB_txn *txn = r->txn_;
    MDB_stat st;
    MDB_cursor *c;
    int rc;
    if ((rc = mdb_stat(txn, v->s->db_recent, &st)))
        return store__err_from_mdb(rc);
    if (st.ms_entries != v->rep->sessions)
        return finding(v, NULL, 0, 0, "the recent index has %llu entries for %llu sessions",
                       (unsigned long long)st.ms_entries, (unsigned long long)v->rep->sessions);
    if ((rc = store__cursor_open(r, v->s->db_recent, &c)))
        return rc;
    MDB_val k, val;
    int got;
    for (got = mdb_cursor_get(c, &k, &val, MDB_FIRST); got == 0;
         got = mdb_cursor_get(c, &k, &val, MDB_NEXT)) {
        store_session_t rec;
        MDB_val name, nk = {8, (uint8_t *)k.mv_data + 8};
        if (k.mv_size != 16 || mdb_get(txn, v->s->db_session_ids, &nk, &name) ||
            store_session_get(r, name.mv_data, name.mv_size, &rec) ||
            rec.updated_ms != (int64_t)store__get_u64(k.mv_data))
            return finding(v, NULL, 0, 0, "the recent index has an entry that matches no "
                           "session record");
    }
    return 0;
}

static int verify_recent(struct verify *v)
{
    if (!v->s->has_recent)
        return REEL_OK;
    store_read_t r;
    int rc = verify_begin(v->s, &r);
    if (rc)
        return rc;
    STORE__GUARD(v->s, rc, recent_check(v, &r));
    store_read_end(&r);
    if (rc == REEL_ECORRUPT) {
        finding(v, NULL, 0, 0, "damaged page: the recent index cannot be read (%s)",
                store_last_error());
        return REEL_OK;
    }
    return rc < 0 ? rc : REEL_OK;
}

/* The dictionary records (FORMAT.md section 15): each whole, its hash and id its own. */
static int verify_zdicts(struct verify *v)
{
    store_zdict_info_t zi;
    int rc = store_zdict_info(v->s, &zi);
    if (rc == REEL_ECORRUPT) {
        finding(v, NULL, 0, 0, "damaged page: the dictionary records cannot be read (%s)",
                store_last_error());
        return REEL_OK;
    }
    if (!rc && zi.damaged)
        finding(v, NULL, 0, 0, "the dictionary record zdict %u is damaged (%u of %u): the "
                "values compressed with it cannot be read", (unsigned)zi.first_damaged,
                (unsigned)zi.damaged, (unsigned)zi.count);
    return rc;
}

static int count_events(store_t *s, uint64_t *total)
{
    store_read_t r;
    int rc = verify_begin(s, &r);
    if (rc)
        return rc;
    rc = store_tail_position(&r, total);
    store_read_end(&r);
    return rc;
}

int store_verify(store_t *s, const char *id, size_t id_len, store_verify_report_t *rep,
                 store_progress_cb progress, void *arg)
{
    memset(rep, 0, sizeof *rep);
    rep->ok = 1;
    struct verify v = {s, rep, progress, arg, 0, STORE_BUF_INIT};
    store_session_t one;
    int rc = REEL_OK;
    if (id) {
        store_read_t r;
        if ((rc = verify_begin(s, &r)))
            return rc;
        rc = store_session_get(&r, id, id_len, &one);
        one.metadata = NULL;
        store_read_end(&r);
        v.total = one.last_sequence;
        if (!rc)
            rc = verify_session(&v, &one);
        store_buf_release(&v.zbuf);
        return rc;
    }
    if ((rc = count_events(s, &v.total)) == REEL_ECORRUPT) {
        finding(&v, NULL, 0, 0, "damaged page: the meta database cannot be read (%s)",
                store_last_error());
        return REEL_OK;
    }
    if (!rc) /* first: a damaged dictionary explains every value that names it */
        rc = verify_zdicts(&v);
    if (rc || !rep->ok)
        return rc;
    store_session_t *recs = malloc(256 * sizeof *recs); /* 1.7 KiB each: not the stack */
    if (!recs)
        return REEL_ENOMEM;
    struct list_ctx l = {&v, "", 0, recs, 0};
    for (;;) {
        store_read_t r;
        int more = 0;
        l.n = 0;
        if ((rc = verify_begin(s, &r)))
            break;
        rc = store_sessions_list(&r, l.cursor, l.cursor_len, 256, take_rec, &l, &more);
        store_read_end(&r);
        if (rc == REEL_ECORRUPT) {
            finding(&v, NULL, 0, 0, "a session record after '%.128s' cannot be read or decoded "
                    "(%s)", l.cursor, store_last_error());
            rc = REEL_OK;
            break;
        }
        for (size_t i = 0; !rc && i < l.n && rep->ok; i++)
            rc = verify_session(&v, &recs[i]);
        if (rc || !rep->ok || !more || !l.n)
            break;
        memcpy(l.cursor, recs[l.n - 1].id, recs[l.n - 1].id_len + 1);
        l.cursor_len = recs[l.n - 1].id_len;
    }
    free(recs);
    if (!rc && rep->ok)
        rc = verify_recent(&v);
    if (!rc && rep->ok)
        rc = verify_log(&v);
    store_buf_release(&v.zbuf);
    return rc;
}

int store_backup(store_t *s, const char *dir)
{
    if (mkdir(dir, 0755) && errno != EEXIST) {
        store__set_error("cannot create '%s': %s", dir, strerror(errno));
        return errno == ENOSPC ? REEL_EFULL : REEL_EIO;
    }
    /* A read transaction, like any reader: hold the resize lock so the map cannot move. */
    pthread_rwlock_rdlock(&s->resize_lock);
    int rc = mdb_env_copy2(s->env, dir, MDB_CP_COMPACT);
    pthread_rwlock_unlock(&s->resize_lock);
    if (rc) {
        store__set_error("backup to '%s' failed: %s", dir, mdb_strerror(rc));
        return rc == EEXIST ? REEL_EINVALID_PARAMETER : store__err_from_mdb(rc);
    }
    return REEL_OK;
}
