/* cread.c -- a session walk served from the envelope cache (rules in cache.c).
 *
 * The same walk as read.c's events_walk(), in batches: the sequence index is read for up
 * to STORE__WALK_HELD events, the cache is asked about all of their positions under one
 * lock, then each event is served from its entry or, on a miss, read from the map,
 * checked and rendered as events_walk() does (read.c's store__emit). The checks on the
 * index (dense sequences from 'after' + 1, none past the record's last_seq, the last
 * event's chain hash equal to the record's) are the same; a cached event's value is not
 * read (cache.c says what that leaves unchecked). An error met while reading the index is
 * reported after the events before it were served, as events_walk() does.
 */
#include <string.h>

#include "store/store_int.h"

/* Why collect() stopped early: the index is damaged at the next sequence. */
enum { PEND_NONE, PEND_GAP, PEND_PAST, PEND_NO_EVENT };

/* A batch of the walk: the positions of sequences x.seq, x.seq + 1, ... */
struct batch {
    uint64_t pos[STORE__WALK_HELD];
    store__cent_t *ent[STORE__WALK_HELD];
    size_t n;
    int pend;  /* PEND_*: what is wrong right after the batch */
    int ended; /* the walk ends after the batch */
};

/* Reads up to STORE__WALK_HELD index entries of 'rec' from walk 'w' (on (got, pos), '*rc'
 * its last result) for sequences from 'seq', of which 'done' were served so far. */
static void collect(store__seqc_t *w, const store_session_t *rec, int clipped, uint64_t seq,
                    size_t done, size_t limit, uint64_t *got, uint64_t *pos, int *rc,
                    int *more, struct batch *b)
{
    b->n = 0;
    b->pend = PEND_NONE;
    b->ended = 0;
    while (b->n < STORE__WALK_HELD) {
        if (*rc || (clipped && seq > rec->last_sequence)) {
            b->ended = 1;
            return;
        }
        if (done + b->n == limit) {
            if (more)
                *more = 1;
            b->ended = 1;
            return;
        }
        if (*got != seq || seq > rec->last_sequence)
            b->pend = seq > rec->last_sequence ? PEND_PAST : PEND_GAP;
        else if (!*pos)
            b->pend = PEND_NO_EVENT;
        if (b->pend) {
            b->ended = 1;
            return;
        }
        b->pos[b->n++] = *pos;
        seq++;
        *rc = store__seqc_next(w, got, pos);
    }
}

static int pend_error(store_read_t *r, const store_session_t *rec, uint64_t seq, int pend)
{
    return store__read_corrupt(r, rec->id, rec->id_len, seq, 0,
                   pend == PEND_PAST     ? "indexed past the session record's last sequence"
                   : pend == PEND_GAP    ? "the sequence index has no entry"
                                         : "the index points at no event");
}

/* The walk's chain hash before x->seq, when the first event served is not cached. */
static int seed_chain(store_read_t *r, const store_session_t *rec, struct store__expect *x)
{
    if (x->seq == rec->first_sequence) {
        memcpy(x->chain, rec->first_prev_hash, STORE_HASH_LEN);
        return REEL_OK;
    }
    int rc = store__prev_chain(r, rec->num, x->seq, x->chain);
    if (rc == REEL_ENOMEM)
        return rc;
    if (rc)
        return store__read_corrupt(r, rec->id, rec->id_len, x->seq - 1, 0,
                       "the sequence index has no entry");
    return REEL_OK;
}

/* Serves event i of batch 'b'. */
static int serve_one(store_read_t *r, const store_session_t *rec, struct store__expect *x,
                     int *have_chain, MDB_cursor *ec, uint64_t *at, struct batch *b, size_t i,
                     store_event_cb cb, void *arg)
{
    const store__cent_t *e = b->ent[i];
    int rc;
    if (e && e->num == x->num && e->seq == x->seq) {
        uint8_t prev[STORE_HASH_LEN];
        memcpy(prev, x->chain, STORE_HASH_LEN);
        rc = store__emit_cached(r, x, e, *have_chain ? prev : NULL, cb, arg);
    } else { /* not cached (or another event's entry: the value says what is wrong) */
        MDB_val v;
        if (!*have_chain && (rc = seed_chain(r, rec, x)))
            return rc;
        if (store__event_at(ec, b->pos[i], at, &v))
            return store__read_corrupt(r, rec->id, rec->id_len, x->seq, 0,
                           "the index points at no event");
        rc = store__emit(r, x, b->pos[i], &v, cb, arg);
    }
    *have_chain = 1;
    if (!rc && x->seq == rec->last_sequence && memcmp(x->chain, rec->last_hash, STORE_HASH_LEN))
        rc = store__read_corrupt(r, rec->id, rec->id_len, x->seq, b->pos[i],
                     "the session record's hash is not its last event's");
    return rc;
}

/* Looks the batch up (one lock) and serves it; its generation is pinned meanwhile. */
static int serve(store_read_t *r, const store_session_t *rec, struct store__expect *x,
                 int *have_chain, MDB_cursor *ec, uint64_t *at, struct batch *b, size_t *n,
                 store_event_cb cb, void *arg)
{
    int stop = 0, g = store__cache_get(r, b->pos, b->n, b->ent);
    for (size_t i = 0; i < b->n && !stop; i++)
        if (!(stop = serve_one(r, rec, x, have_chain, ec, at, b, i, cb, arg))) {
            (*n)++;
            x->seq++;
        }
    store__cache_unpin(r, g);
    return stop;
}

int store__events_walk_cached(store_read_t *r, const store_session_t *rec, uint64_t after,
                              size_t limit, store_event_cb cb, void *arg, int *more)
{
    struct store__expect x = {rec->id, rec->id_len, rec->num, after + 1, {0}};
    MDB_cursor *ec;
    store__seqc_t w;
    int rc = store__walk_open(r, rec, &w, &ec);
    if (rc)
        return rc;
    MDB_cursor *c = w.c;
    /* a record clipped by the visible bound: entries past its last_seq are not to be read */
    int clipped = r->visible != STORE_VISIBLE_ALL, have_chain = 0, stop = 0;
    uint64_t at = 0;
    size_t n = 0;
    struct batch b;
    uint64_t got = 0, pos = 0;
    rc = store__seqc_seek(&w, after + 1, &got, &pos);
    do {
        collect(&w, rec, clipped, x.seq, n, limit, &got, &pos, &rc, more, &b);
        stop = serve(r, rec, &x, &have_chain, ec, &at, &b, &n, cb, arg);
        if (!stop && b.pend)
            stop = pend_error(r, rec, x.seq, b.pend);
    } while (!stop && !b.ended);
    /* The walk ended before the limit and before last_seq: the index lost entries. */
    if (!stop && (rc == 0 || rc == MDB_NOTFOUND) && n < limit && x.seq <= rec->last_sequence)
        stop = store__read_corrupt(r, rec->id, rec->id_len, x.seq, 0, "the sequence index has no entry");
    store__cursor_close(r, ec);
    return store__walk_end(r, c, stop, rc);
}
