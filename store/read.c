/* read.c -- reads on short read-only transactions (contract in store.h).
 *
 * Every event value is checked before a caller sees it (issue 14, finding 6): its header
 * must name the session and sequence it was reached by, and its chain hash must recompute
 * from the previous event's stored chain hash and the SHA-256 of its body (docs/FORMAT.md
 * section 4). A walk of one session must also see its sequences dense up to the record's
 * last_seq, the last one carrying the record's hash. So a flipped byte in a value, an
 * index entry or a session record's last_seq/hash gives REEL_ECORRUPT naming the session
 * and sequence (store_read_corruption(), which the server puts in its problem, its log
 * line and its counter: store_note_corrupt()), never altered or missing events.
 *
 * Session listings (by id, most recent first) are in list.c, which shares the checks.
 *
 * A read with store_read_t.envelopes set gets each event with its envelope: deliver()
 * renders a checked view and keeps it in the envelope cache (cache.c, which says what a
 * cached read does not check again); a session walk is then served by cread.c in batches,
 * the feed by from_cache() one event at a time.
 *
 * Each public read runs its static twin under STORE__GUARD (guard.c), so that a damaged
 * page gives REEL_ECORRUPT instead of an LMDB abort. A walk keeps its cursor in the read
 * (store__cursor_push), where store_read_end() finds it when the walk was left by the
 * guard. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define TXN(r) ((MDB_txn *)(r)->txn_)

static __thread char corrupt_text[320];

const char *store_read_corruption(void) { return corrupt_text; }

int store__read_corrupt(store_read_t *r, const char *id, size_t id_len, uint64_t seq,
                        uint64_t pos, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(corrupt_text, sizeof corrupt_text,
             "session '%.*s' sequence %llu (position %llu): %s", (int)(id_len > 96 ? 96 : id_len), id,
             (unsigned long long)seq, (unsigned long long)pos, why);
    for (char *c = corrupt_text; *c; c++) /* damaged names must not put bytes in the log */
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
    return REEL_ECORRUPT;
}

/* Ends a cursor walk: 'stop' is a callback's (or decoder's) non-zero result, returned as
 * is; 'rc' is the last LMDB result, where MDB_NOTFOUND means the walk ran off the end. */
int store__walk_end(store_read_t *r, MDB_cursor *c, int stop, int rc)
{
    store__cursor_close(r, c);
    if (stop)
        return stop;
    return rc == 0 || rc == MDB_NOTFOUND ? REEL_OK : store__err_from_mdb(rc);
}

int store_read_begin(store_t *s, store_read_t *r)
{
    memset(r, 0, sizeof *r);
    r->s = s;
    corrupt_text[0] = 0;
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&s->resize_lock);
        MDB_txn *txn;
        int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
        if (rc == MDB_SUCCESS) {
            r->txn_ = txn;
            store__read_bound(s, &r->visible, &r->visible_index);
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
    while (r->n_cursors_) /* left open by a walk a guard left */
        mdb_cursor_close(r->cursors_[--r->n_cursors_]);
    for (int g = 0; g < 2; g++) /* cache generations pinned by a walk a guard left */
        while (r->pins_[g])
            store__cache_unpin(r, g);
    while (r->n_priv_)
        free(r->priv_[--r->n_priv_]);
    store_buf_release(&r->envbuf_);
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
    if (store__session_decode(v->mv_data, v->mv_size, k->mv_data, k->mv_size, &rec) ||
        !store_session_id_valid(rec.id, rec.id_len))
        return 0;
    store__put_u64(num, rec.num);
    return mdb_get(TXN(r), r->s->db_session_ids, &nk, &name) == 0 &&
           name.mv_size == rec.id_len && !memcmp(name.mv_data, rec.id, rec.id_len);
}

/* A session id was not found: REEL_ESESSION_NOT_FOUND if that is true, REEL_ECORRUPT if the
 * entries where it would sit are damaged (a flipped key size hides a session: the 404
 * would be a wrong answer). Only the not-found path pays for it. */
static int confirm_absent(store_read_t *r, const char *id, size_t id_len, const MDB_val *key)
{
    MDB_cursor *c;
    if (mdb_cursor_open(TXN(r), r->s->db_sessions, &c))
        return REEL_ESESSION_NOT_FOUND; /* cannot check: keep the lookup's answer */
    store__cursor_push(r, c);
    MDB_val k = *key, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), sound = 1;
    if (rc == 0)
        sound = entry_sound(r, &k, &v);
    rc = rc == 0 ? mdb_cursor_get(c, &k, &v, MDB_PREV) : mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (sound && rc == 0)
        sound = entry_sound(r, &k, &v);
    store__cursor_close(r, c);
    if (sound)
        return REEL_ESESSION_NOT_FOUND;
    store__set_error("the sessions database is damaged near '%.*s'",
                     (int)(id_len > 128 ? 128 : id_len), id);
    return REEL_ECORRUPT;
}

int store__session_get(store_read_t *r, const char *id, size_t id_len, store_session_t *out)
{
    if (!store_session_id_valid(id, id_len))
        return REEL_EINVALID_SESSION_ID;
    uint8_t key[STORE__SESSION_KEY_MAX];
    MDB_val k = {store__session_key(id, id_len, key), key}, v;
    if (!k.mv_size)
        return REEL_ENOMEM;
    int rc = mdb_get(TXN(r), r->s->db_sessions, &k, &v);
    if (rc == MDB_NOTFOUND)
        return confirm_absent(r, id, id_len, &k);
    if (rc)
        return store__err_from_mdb(rc);
    rc = store__session_decode(v.mv_data, v.mv_size, (const char *)key, k.mv_size, out);
    if (rc == REEL_OK && (out->id_len != id_len || memcmp(out->id, id, id_len)))
        rc = REEL_ECORRUPT; /* a long id whose record holds another id */
    if (rc == REEL_OK)
        rc = store__clip_record(r, out); /* the visible bound (visible.c) */
    if (rc == REEL_ECORRUPT) /* name the session (and the last sequence it claims) */
        return store__read_corrupt(r, id, id_len, out->last_sequence, 0,
                       "the session record fails its checks (count, last sequence, number)");
    return rc;
}

/* The chain hash kept for a trimmed session's first event (docs/FORMAT.md section 10):
 * 0 and 'out' set when session 'num' has first_sequence 'seq', else 1. */
static int trimmed_prev(store_read_t *r, uint64_t num, uint64_t seq, uint8_t out[STORE_HASH_LEN])
{
    uint8_t nk[8];
    MDB_val name;
    store_session_t rec;
    store__put_u64(nk, num);
    if (store__session_name(r, nk, &name) ||
        store__session_get(r, name.mv_data, name.mv_size, &rec) || rec.num != num ||
        rec.first_sequence != seq)
        return 1;
    memcpy(out, rec.first_prev_hash, STORE_HASH_LEN);
    return 0;
}

/* The chain hash stored in the event before (num, seq) into 'out': 32 zero bytes for
 * sequence 1, the record's 'first_hash' for the first kept event of a trimmed session.
 * 1 when that event cannot be found (then the index is damaged). */
int store__prev_chain(store_read_t *r, uint64_t num, uint64_t seq, uint8_t out[STORE_HASH_LEN])
{
    memset(out, 0, STORE_HASH_LEN);
    if (seq <= 1)
        return 0;
    uint8_t key[8];
    uint64_t pos;
    int rc = store__seq_get(r->s, TXN(r), num, seq - 1, &pos);
    if (rc == ENOMEM) /* the per-session tree's cursor (FORMAT.md 21.1): no verdict */
        return REEL_ENOMEM;
    if (rc || !pos)
        return trimmed_prev(r, num, seq, out); /* only the miss pays for the lookup */
    store__put_u64(key, pos);
    MDB_val pk = {8, key}, v;
    store__head_t h;
    if (mdb_get(TXN(r), r->s->db_events, &pk, &v) || store__head_parse(v.mv_data, v.mv_size, &h))
        return 1;
    memcpy(out, h.hash, STORE_HASH_LEN);
    return 0;
}

/* Makes 'ev' a view of session 'id' read by 'r' whose previous chain hash is 'prev' (kept
 * by the caller while 'ev' lives), and recomputes its chain hash from that and its body. */
static int check_chain(store_read_t *r, store_event_view_t *ev, const char *id, size_t id_len,
                       const uint8_t *prev)
{
    ev->session = id;
    ev->session_len = id_len;
    ev->prev_hash_ = prev;
    ev->read_ = r;
    uint8_t body_hash[STORE_HASH_LEN], want[STORE_HASH_LEN];
    if (store__body_hash(ev, body_hash) ||
        store__chain(ev->prev_hash_, ev->sequence, ev->position, ev->time_ms, body_hash, want))
        return REEL_ENOMEM;
    if (memcmp(want, ev->hash, STORE_HASH_LEN))
        return store__read_corrupt(ev->read_, ev->session, ev->session_len, ev->sequence, ev->position,
                       "hash chain mismatch: the stored event was altered");
    return REEL_OK;
}

/* Hands checked view 'ev' (session 'num') to 'cb', with its envelope when the read asks
 * for them: rendered here and kept in the envelope cache (store__cache_put), which is the
 * only way into it, so nothing unchecked is ever kept. */
static int deliver(store_read_t *r, uint64_t num, store_event_view_t *ev, store_event_cb cb,
                   void *arg)
{
    if (!r->envelopes || !r->s->render)
        return cb(arg, ev);
    store_buf_clear(&r->envbuf_);
    int rc = r->s->render(&r->envbuf_, ev);
    if (rc == REEL_OK && store_buf_failed(&r->envbuf_))
        rc = REEL_ENOMEM;
    if (rc == REEL_ECORRUPT)
        return store__read_corrupt(r, ev->session, ev->session_len, ev->sequence, ev->position,
                       "the body does not decode");
    if (rc)
        return rc;
    int g;
    store__cent_t *e = store__cache_put(r, ev, num, r->envbuf_.data, r->envbuf_.len, &g);
    if (!e)
        return REEL_ENOMEM;
    unsigned priv = r->n_priv_; /* freed by store_read_end() if the guard leaves cb */
    if (g < 0 && priv < sizeof r->priv_ / sizeof r->priv_[0])
        r->priv_[r->n_priv_++] = e;
    ev->envelope = e->env;
    ev->envelope_len = e->len;
    rc = cb(arg, ev);
    r->n_priv_ = priv;
    store__cache_done(r, e, g);
    return rc;
}

/* Serves the value at 'pos' from the envelope cache when it holds it for (x->num,
 * x->seq): 1 and '*rc' set then, else 0. */
static int from_cache(store_read_t *r, struct store__expect *x, uint64_t pos,
                      store_event_cb cb, void *arg, int *rc)
{
    store__cent_t *e;
    if (!r->envelopes || !r->s->cache || !store__cache_usable(r))
        return 0;
    int g = store__cache_get(r, &pos, 1, &e);
    /* another event's entry: the value will say what is wrong */
    int hit = e && e->num == x->num && e->seq == x->seq;
    if (hit) {
        uint8_t prev[STORE_HASH_LEN];
        memcpy(prev, x->chain, STORE_HASH_LEN);
        *rc = store__emit_cached(r, x, e, prev, cb, arg);
    }
    store__cache_unpin(r, g);
    return hit;
}

int store__emit_cached(store_read_t *r, struct store__expect *x, const store__cent_t *e,
                       const uint8_t *prev, store_event_cb cb, void *arg)
{
    store_event_view_t ev = {0};
    ev.session = x->id;
    ev.session_len = x->id_len;
    ev.sequence = e->seq;
    ev.position = e->position;
    ev.time_ms = e->time_ms;
    ev.hash = e->hash;
    ev.stored_len = e->stored_len;
    ev.redacted = e->redacted;
    ev.unchecked = 1;
    ev.prev_hash_ = prev;
    ev.read_ = r;
    ev.envelope = e->env;
    ev.envelope_len = e->len;
    memcpy(x->chain, e->hash, STORE_HASH_LEN);
    return cb(arg, &ev);
}

/* Decodes the value at position 'pos', checks it against 'x' (header and chain hash), and
 * hands it to 'cb'. On success 'x->chain' becomes this event's chain hash. With 'look',
 * a value whose envelope the cache holds is served from there (store/cache.c). */
static int emit(store_read_t *r, struct store__expect *x, uint64_t pos, const MDB_val *v,
                store_event_cb cb, void *arg, int look)
{
    store_event_view_t ev = {0};
    uint64_t num;
    int rc = REEL_OK;
    if (look && from_cache(r, x, pos, cb, arg, &rc))
        return rc;
    rc = store__value_head(pos, v->mv_data, v->mv_size, &ev, &num);
    if (!rc)
        rc = store__value_body(r->s, TXN(r), &r->zbuf_, &ev);
    if (rc == REEL_ECORRUPT)
        return store__read_corrupt(r, x->id, x->id_len, x->seq, pos, "the value does not decode");
    if (rc)
        return rc;
    if (num != x->num || ev.sequence != x->seq)
        return store__read_corrupt(r, x->id, x->id_len, x->seq, pos,
                       "the value's header names another event");
    uint8_t prev[STORE_HASH_LEN];
    memcpy(prev, x->chain, STORE_HASH_LEN);
    if ((rc = check_chain(r, &ev, x->id, x->id_len, prev)))
        return rc;
    memcpy(x->chain, ev.hash, STORE_HASH_LEN);
    return deliver(r, num, &ev, cb, arg);
}

int store__emit(store_read_t *r, struct store__expect *x, uint64_t pos, const MDB_val *v,
                store_event_cb cb, void *arg)
{
    return emit(r, x, pos, v, cb, arg, 0);
}

uint64_t store_event_snapshot(const store_event_view_t *ev)
{
    return ev->read_ && ev->read_->txn_ ? (uint64_t)mdb_txn_id(TXN(ev->read_)) : 0;
}

/* store_event_check() of a view served from the envelope cache: its value is read from
 * the map now and checked as a walk checks it; the caller's view gets its body. */
static int check_cached(store_event_view_t *w)
{
    store_read_t *r = w->read_;
    uint8_t key[8], prev[STORE_HASH_LEN];
    store__put_u64(key, w->position);
    MDB_val k = {8, key}, v;
    store_event_view_t ev = {0};
    uint64_t num;
    int rc = mdb_get(TXN(r), r->s->db_events, &k, &v);
    if (rc)
        return rc == MDB_NOTFOUND ? store__read_corrupt(r, w->session, w->session_len, w->sequence,
                                        w->position, "the index points at no event")
                                  : store__err_from_mdb(rc);
    rc = store__value_decode(r->s, TXN(r), w->position, v.mv_data, v.mv_size, &r->zbuf_, &ev, &num);
    if (rc == REEL_ECORRUPT || (!rc && (ev.sequence != w->sequence ||
                                        memcmp(ev.hash, w->hash, STORE_HASH_LEN))))
        return store__read_corrupt(r, w->session, w->session_len, w->sequence, w->position,
                       "the value does not decode, or names another event");
    if (rc)
        return rc;
    if (w->prev_hash_)
        memcpy(prev, w->prev_hash_, STORE_HASH_LEN);
    else if ((rc = store__prev_chain(r, num, w->sequence, prev)) == REEL_ENOMEM)
        return rc;
    else if (rc)
        return store__read_corrupt(r, w->session, w->session_len, w->sequence - 1, 0,
                       "the sequence index has no entry");
    if ((rc = check_chain(r, &ev, w->session, w->session_len, prev)))
        return rc;
    w->body = ev.body;
    w->body_len = ev.body_len;
    w->kept_hash_ = ev.kept_hash_;
    w->unchecked = 0;
    return REEL_OK;
}

int store_event_check(const store_event_view_t *ev)
{
    if (!ev->unchecked)
        return REEL_OK;
    /* The view is the walk's own (not const there): its body is filled in now. */
    return check_cached((store_event_view_t *)ev);
}

/* The value at position 'pos' through the walk's cursor 'ec' on the events tree. Positions
 * of one session grow, mostly by one (sessions written in batches), so the next is
 * usually the cursor's next entry, and otherwise on the same leaf page, where LMDB's
 * MDB_SET_KEY looks first: a walk does not descend from the root per event, as mdb_get()
 * does (27 % of a newest-50 read's CPU in the server, docs/BENCHMARKS.md). */
int store__event_at(MDB_cursor *ec, uint64_t pos, uint64_t *at, MDB_val *v)
{
    uint8_t pk[8];
    MDB_val k = {8, pk};
    if (*at && pos == *at + 1 && !mdb_cursor_get(ec, &k, v, MDB_NEXT) && k.mv_size == 8 &&
        store__get_u64(k.mv_data) == pos) {
        *at = pos;
        return 0;
    }
    store__put_u64(pk, pos);
    k.mv_data = pk;
    k.mv_size = 8;
    int rc = mdb_cursor_get(ec, &k, v, MDB_SET_KEY);
    *at = rc ? 0 : pos;
    return rc;
}

/* The chain hash before sequence 'seq' of 'rec' into x->chain, through the walk's cursors
 * when that event is indexed: the seqs cursor 'c' is left on (num, seq - 1), 'ec' on its
 * value. 1 when it cannot be found (then the index is damaged). */
static int walk_prev(store_read_t *r, const store_session_t *rec, uint64_t seq,
                     store__seqc_t *c, MDB_cursor *ec, uint64_t *at, struct store__expect *x)
{
    if (seq == rec->first_sequence) {
        memcpy(x->chain, rec->first_prev_hash, STORE_HASH_LEN);
        return 0;
    }
    uint64_t got, pos;
    MDB_val ev;
    store__head_t h;
    if (seq > 1 && !store__seqc_seek(c, seq - 1, &got, &pos) && got == seq - 1 && pos &&
        !store__event_at(ec, pos, at, &ev) && !store__head_parse(ev.mv_data, ev.mv_size, &h)) {
        memcpy(x->chain, h.hash, STORE_HASH_LEN);
        return 0;
    }
    return store__prev_chain(r, rec->num, seq, x->chain); /* sequence 1, or a trimmed session */
}

int store__walk_open(store_read_t *r, const store_session_t *rec, store__seqc_t *w,
                     MDB_cursor **ec)
{
    MDB_cursor *c;
    int rc = store__cursor_open(r, r->s->db_seqs, &c);
    if (rc)
        return rc;
    store__seqc_init(w, r->s, c, rec->num);
    if (w->rc) /* its index tail could not be read (FORMAT.md 22): LMDB failed the read */
        return store__walk_end(r, c, store__read_corrupt(r, rec->id, rec->id_len,
                                                          rec->first_sequence, 0,
                                                          "the index tail cannot be read"), 0);
    if ((rc = store__cursor_open(r, r->s->db_events, ec)))
        return store__walk_end(r, c, rc, 0);
    return REEL_OK;
}

/* Events of 'rec' after 'after' (which is below its last sequence), at most 'limit'. */
static int events_walk(store_read_t *r, const store_session_t *rec, uint64_t after,
                       size_t limit, store_event_cb cb, void *arg, int *more)
{
    struct store__expect x = {rec->id, rec->id_len, rec->num, after + 1, {0}};
    MDB_cursor *ec;
    store__seqc_t w;
    int rc = store__walk_open(r, rec, &w, &ec);
    if (rc)
        return rc;
    MDB_cursor *c = w.c;
    uint64_t at = 0; /* the position 'ec' is on (0: none yet) */
    /* A record clipped by the visible bound has entries past its last_seq: they are not
     * damage, they are not to be read. */
    int clipped = r->visible != STORE_VISIBLE_ALL;
    size_t n = 0;
    int stop = 0;
    if ((rc = walk_prev(r, rec, after + 1, &w, ec, &at, &x)) == REEL_ENOMEM) {
        store__cursor_close(r, ec);
        return store__walk_end(r, c, rc, 0);
    }
    if (rc) {
        store__cursor_close(r, ec);
        return store__walk_end(r, c, store__read_corrupt(r, rec->id, rec->id_len, after, 0,
                                      "the sequence index has no entry"), 0);
    }
    uint64_t got, pos;
    rc = store__seqc_seek(&w, after + 1, &got, &pos);
    while (rc == 0) {
        if (clipped && x.seq > rec->last_sequence)
            break;
        if (n == limit) {
            if (more)
                *more = 1;
            break;
        }
        if (got != x.seq || x.seq > rec->last_sequence) {
            stop = store__read_corrupt(r, rec->id, rec->id_len, x.seq, 0,
                           x.seq > rec->last_sequence
                               ? "indexed past the session record's last sequence"
                               : "the sequence index has no entry");
            break;
        }
        MDB_val ev;
        if (!pos || store__event_at(ec, pos, &at, &ev)) {
            stop = store__read_corrupt(r, rec->id, rec->id_len, x.seq, 0, "the index points at no event");
            break;
        }
        if ((stop = emit(r, &x, pos, &ev, cb, arg, 1)))
            break;
        if (x.seq == rec->last_sequence && memcmp(x.chain, rec->last_hash, STORE_HASH_LEN)) {
            stop = store__read_corrupt(r, rec->id, rec->id_len, x.seq, pos,
                           "the session record's hash is not its last event's");
            break;
        }
        n++;
        x.seq++;
        rc = store__seqc_next(&w, &got, &pos);
    }
    /* The walk ended before the limit and before last_seq: the index lost entries. */
    if (!stop && (rc == 0 || rc == MDB_NOTFOUND) && n < limit && x.seq <= rec->last_sequence)
        stop = store__read_corrupt(r, rec->id, rec->id_len, x.seq, 0, "the sequence index has no entry");
    store__cursor_close(r, ec);
    return store__walk_end(r, c, stop, rc);
}

/* Events of the session whose record is 'rec' with sequence > 'after'. */
static int events_of(store_read_t *r, const store_session_t *rec, uint64_t after,
                     size_t limit, store_event_cb cb, void *arg, int *more)
{
    if (more)
        *more = 0;
    if (rec->status == STORE_DELETED)
        return REEL_EGONE;
    /* Events before first_sequence were trimmed: they are gone, not missing. */
    if (after + 1 < rec->first_sequence)
        after = rec->first_sequence - 1;
    if (after < rec->last_sequence)
        return r->envelopes && r->s->cache && store__cache_usable(r)
                   ? store__events_walk_cached(r, rec, after, limit, cb, arg, more)
                   : events_walk(r, rec, after, limit, cb, arg, more);
    if (r->visible != STORE_VISIBLE_ALL)
        return REEL_OK; /* clipped (see events_walk): entries past last_seq are not damage */
    /* Nothing new, if the record is right: no index entry past its last_seq. */
    uint64_t pos;
    int rc = store__seq_get(r->s, TXN(r), rec->num, rec->last_sequence + 1, &pos);
    if (rc == 0)
        return store__read_corrupt(r, rec->id, rec->id_len, rec->last_sequence + 1, 0,
                       "indexed past the session record's last sequence");
    return rc == MDB_NOTFOUND ? REEL_OK : store__err_from_mdb(rc);
}

static int events_after(store_read_t *r, const char *id, size_t id_len, uint64_t after,
                        size_t limit, store_event_cb cb, void *arg, int *more)
{
    store_session_t rec;
    int rc = store__session_get(r, id, id_len, &rec);
    if (more)
        *more = 0;
    return rc ? rc : events_of(r, &rec, after, limit, cb, arg, more);
}

static int events_newest(store_read_t *r, const char *id, size_t id_len, size_t n,
                         store_event_cb cb, void *arg)
{
    store_session_t rec;
    int rc = store__session_get(r, id, id_len, &rec);
    if (rc)
        return rc;
    /* Sequences are dense, so the newest n start at last - n + 1: one seek, no scan. */
    uint64_t after = rec.last_sequence > n ? rec.last_sequence - n : 0;
    return events_of(r, &rec, after, n, cb, arg, NULL);
}

/* Session id for an internal session number. */
int store__session_name(store_read_t *r, const uint8_t num[8], MDB_val *name)
{
    MDB_val k = {8, (void *)num};
    return mdb_get(TXN(r), r->s->db_session_ids, &k, name);
}

/* Decodes the sessions entry (k, v) of a listing into 'rec' and checks it as entry_sound()
 * does: a valid id whose number maps back to it through session_ids. A flipped byte in a
 * key would otherwise list a session under another id. REEL_ECORRUPT, recorded. */
int store__list_decode(store_read_t *r, const MDB_val *k, const MDB_val *v, store_session_t *rec)
{
    int rc = store__session_decode(v->mv_data, v->mv_size, k->mv_data, k->mv_size, rec);
    if (rc && rc != REEL_ECORRUPT)
        return rc;
    uint8_t num[8];
    MDB_val name;
    store__put_u64(num, rec->num);
    if (rc || !store_session_id_valid(rec->id, rec->id_len) || store__session_name(r, num, &name) ||
        name.mv_size != rec->id_len || memcmp(name.mv_data, rec->id, rec->id_len))
        return store__read_corrupt(r, rec->id_len ? rec->id : "?", rec->id_len ? rec->id_len : 1,
                       rec->last_sequence, 0, "the sessions entry fails its checks (key, "
                       "record, number)");
    return store__clip_record(r, rec); /* the visible bound (visible.c) */
}

/* Sets 'x' for the feed's value 'v' at 'pos': its session (from the header's number,
 * whose name is looked up when it changes), its sequence, and the previous chain hash
 * (carried over when 'x' holds the session's previous event, else read). The sequence
 * index must point back at 'pos', so a damaged header cannot borrow another event's
 * place. REEL_ECORRUPT (recorded) when any of it fails. */
static int feed_expect(store_read_t *r, struct store__expect *x, MDB_val *name, uint64_t pos,
                       const MDB_val *v)
{
    store__head_t h;
    if (!pos || store__head_parse(v->mv_data, v->mv_size, &h))
        return store__read_corrupt(r, "?", 1, 0, pos, "a log entry is malformed");
    uint64_t num = h.num, seq = h.seq;
    uint8_t nb[8];
    store__put_u64(nb, num);
    int carry = name->mv_data && num == x->num && seq == x->seq + 1;
    if (!name->mv_data || num != x->num) {
        store_session_t rec;
        if (store__session_name(r, nb, name)) {
            name->mv_data = NULL;
            return store__read_corrupt(r, "?", 1, seq, pos, "the value names session number %llu, which "
                           "does not exist", (unsigned long long)num);
        }
        /* The name must lead back to the number: a damaged session_ids entry would
         * otherwise serve the events under another session's id. */
        if (store__session_get(r, name->mv_data, name->mv_size, &rec) != REEL_OK ||
            rec.num != num) {
            MDB_val bad = *name;
            name->mv_data = NULL;
            return store__read_corrupt(r, bad.mv_data, bad.mv_size > 128 ? 128 : bad.mv_size, seq, pos,
                           "session number %llu is named so, but that record has no such "
                           "number", (unsigned long long)num);
        }
        x->id = name->mv_data;
        x->id_len = name->mv_size;
        x->num = num;
    }
    x->seq = seq;
    uint64_t at;
    int rc = store__seq_get(r->s, TXN(r), num, seq, &at);
    if (rc == ENOMEM)
        return REEL_ENOMEM;
    if (rc || at != pos)
        return store__read_corrupt(r, x->id, x->id_len, seq, pos,
                       "the sequence index does not point at this position");
    if (!carry && (rc = store__prev_chain(r, num, seq, x->chain)) == REEL_ENOMEM)
        return rc;
    if (rc)
        return store__read_corrupt(r, x->id, x->id_len, seq - 1, 0, "the sequence index has no entry");
    return REEL_OK;
}

/* The 'only' hook's verdict on the session of log value 'v', kept for runs of one session
 * in '*num'/'*keep'. A value whose session cannot be named is kept: feed_expect() then
 * reports it as damage. */
static int feed_keep(store_read_t *r, const MDB_val *v, uint64_t *num, int *keep)
{
    store__head_t h;
    if (!r->only || store__head_parse(v->mv_data, v->mv_size, &h))
        return 1;
    if (h.num != *num) {
        MDB_val name;
        uint8_t nb[8];
        store__put_u64(nb, h.num);
        *num = h.num;
        *keep = store__session_name(r, nb, &name) || r->only(r->only_arg, name.mv_data, name.mv_size);
    }
    return *keep;
}

/* Events with position in (after, until], at most 'limit' (the change log's merged walk,
 * changes.c, bounds each stretch of events by the next change). */
int store__feed_range(store_read_t *r, uint64_t after, uint64_t until, size_t limit,
                      store_event_cb cb, void *arg, int *more)
{
    MDB_cursor *c;
    if (more)
        *more = 0;
    int rc = store__cursor_open(r, r->s->db_events, &c);
    if (rc)
        return rc;
    if (until > r->visible) /* the visible bound (visible.c) */
        until = r->visible;
    uint8_t key[8];
    store__put_u64(key, after + 1);
    MDB_val k = {8, key}, v, name = {0, NULL};
    struct store__expect x = {0};
    size_t n = 0;
    int stop = 0, keep = 1;
    uint64_t keep_num = UINT64_MAX; /* no session number is this */
    rc = after == UINT64_MAX ? MDB_NOTFOUND : mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        uint64_t pos = k.mv_size == 8 ? store__get_u64(k.mv_data) : 0;
        if (pos > until)
            break;
        if (n == limit) {
            if (more)
                *more = 1;
            break;
        }
        if (!feed_keep(r, &v, &keep_num, &keep) || (r->skip_copied && store__copied(r, pos))) {
            r->passed++;
            r->passed_up_to = pos;
        } else if ((stop = feed_expect(r, &x, &name, pos, &v)) ||
                   (stop = emit(r, &x, pos, &v, cb, arg, 1)))
            break;
        n++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    return store__walk_end(r, c, stop, rc);
}

static int tail_position(store_read_t *r, uint64_t *pos)
{
    MDB_val k = {13, "last_position"}, v;
    int rc = mdb_get(TXN(r), r->s->db_meta, &k, &v);
    *pos = rc == 0 && v.mv_size == 8 ? store__get_u64(v.mv_data) : 0;
    if (*pos > r->visible)
        *pos = r->visible;
    return rc == 0 || rc == MDB_NOTFOUND ? REEL_OK : store__err_from_mdb(rc);
}

uint64_t store_last_txn(store_t *s)
{
    /* mdb_env_info() reads the meta pages through the map: store__grow() must not remap
     * it meanwhile (a SIGSEGV under load on a fresh store, while the map grew). */
    MDB_envinfo info;
    pthread_rwlock_rdlock(&s->resize_lock);
    int rc = mdb_env_info(s->env, &info);
    pthread_rwlock_unlock(&s->resize_lock);
    return rc == 0 ? (uint64_t)info.me_last_txnid : 0;
}

/* ---- the guarded entry points ---- */

int store_session_get(store_read_t *r, const char *id, size_t id_len, store_session_t *out)
{
    int rc;
    STORE__GUARD(r->s, rc, store__session_get(r, id, id_len, out));
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
    STORE__GUARD(r->s, rc, store__feed_range(r, after, UINT64_MAX, limit, cb, arg, more));
    return rc;
}

static int redaction_count(store_read_t *r, uint64_t *n)
{
    MDB_val k = {10, "redactions"}, v;
    int rc = mdb_get(TXN(r), r->s->db_meta, &k, &v);
    *n = rc == 0 && v.mv_size == 8 ? store__get_u64(v.mv_data) : 0;
    return rc == 0 || rc == MDB_NOTFOUND ? REEL_OK : store__err_from_mdb(rc);
}

int store_redaction_count(store_read_t *r, uint64_t *n)
{
    int rc;
    STORE__GUARD(r->s, rc, redaction_count(r, n));
    return rc;
}

int store_tail_position(store_read_t *r, uint64_t *pos)
{
    int rc;
    STORE__GUARD(r->s, rc, tail_position(r, pos));
    return rc;
}
