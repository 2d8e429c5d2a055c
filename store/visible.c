/* visible.c -- the visible bound of reads (store.h "Visible bound"): what a reader of this
 * process may see, for `reel serve --ack replica` (docs/CLUSTER.md "Acknowledged by a
 * replica"), where only what a replica holds may be read.
 *
 * The bound is a feed cursor (position, index): events with a position above it, and
 * changes whose (position, index) is above it, are not given by any walk, and a session
 * record is read as of its last visible event. It is set by the layer above (the server,
 * when its replica reports) and copied into every read by store_read_begin(), so every
 * reader of the process is clipped without knowing of it; a read that must see everything
 * (the replica's own copy, a lag) raises its copy to STORE_VISIBLE_ALL.
 *
 * Threads: the bound is set from any thread under 'vis_mu'; 'clipping' lets a store that
 * never had a bound (the default) skip the lock in store_read_begin().
 */
#include <errno.h>
#include <string.h>

#include "store/store_int.h"

void store_set_visible(store_t *s, uint64_t position, uint32_t index)
{
    pthread_mutex_lock(&s->vis_mu);
    s->vis_pos = position;
    s->vis_idx = index;
    atomic_store(&s->clipping, position != STORE_VISIBLE_ALL || s->durable_on);
    pthread_mutex_unlock(&s->vis_mu);
}

void store__set_durable(store_t *s, uint64_t position, uint32_t index)
{
    pthread_mutex_lock(&s->vis_mu);
    s->dur_pos = position;
    s->dur_idx = index;
    if (!s->durable_on) {
        s->durable_on = 1;
        atomic_store(&s->clipping, 1);
    }
    pthread_mutex_unlock(&s->vis_mu);
}

/* 1 when cursor (p1, i1) comes before (p2, i2). */
static int before(uint64_t p1, uint32_t i1, uint64_t p2, uint32_t i2)
{
    return p1 < p2 || (p1 == p2 && i1 < i2);
}

void store__read_bound(store_t *s, uint64_t *position, uint32_t *index)
{
    if (!atomic_load(&s->clipping)) {
        *position = STORE_VISIBLE_ALL;
        *index = UINT32_MAX;
        return;
    }
    pthread_mutex_lock(&s->vis_mu);
    *position = s->vis_pos;
    *index = s->vis_idx;
    /* the journal: nothing a power loss can take away is ever read (docs/DESIGN.md) */
    if (s->durable_on && before(s->dur_pos, s->dur_idx, *position, *index))
        *position = s->dur_pos, *index = s->dur_idx;
    pthread_mutex_unlock(&s->vis_mu);
}

void store_get_visible(store_t *s, uint64_t *position, uint32_t *index)
{
    if (!atomic_load(&s->clipping)) {
        *position = STORE_VISIBLE_ALL;
        *index = UINT32_MAX;
        return;
    }
    pthread_mutex_lock(&s->vis_mu);
    *position = s->vis_pos;
    *index = s->vis_idx;
    pthread_mutex_unlock(&s->vis_mu);
}

void store_read_see_all(store_read_t *r)
{
    r->visible = STORE_VISIBLE_ALL;
    r->visible_index = UINT32_MAX;
    store_t *s = r->s;
    pthread_mutex_lock(&s->vis_mu); /* the replica bound goes, never the durable one */
    if (s->durable_on)
        r->visible = s->dur_pos, r->visible_index = s->dur_idx;
    pthread_mutex_unlock(&s->vis_mu);
}

int store__change_visible(const store_read_t *r, uint64_t pos, uint32_t index)
{
    return pos < r->visible || (pos == r->visible && index <= r->visible_index);
}

/* The position of sequence 'seq' of session 'num' in 'seqs' into '*pos': REEL_OK,
 * REEL_ECORRUPT when it has none, REEL_ENOMEM when the per-session tree's cursor could
 * not be made (no verdict). */
static int seq_position(store_read_t *r, uint64_t num, uint64_t seq, uint64_t *pos)
{
    int rc = store__seq_get(r->s, (MDB_txn *)r->txn_, num, seq, pos);
    if (rc == ENOMEM)
        return REEL_ENOMEM;
    return rc || !*pos ? REEL_ECORRUPT : REEL_OK;
}

/* The chain hash of the event at 'pos' into 'out'; REEL_ECORRUPT when it has none. */
static int chain_at(store_read_t *r, uint64_t pos, uint8_t out[STORE_HASH_LEN])
{
    uint8_t key[8];
    store__put_u64(key, pos);
    MDB_val k = {8, key}, v;
    store__head_t h;
    if (mdb_get((MDB_txn *)r->txn_, r->s->db_events, &k, &v) ||
        store__head_parse(v.mv_data, v.mv_size, &h))
        return REEL_ECORRUPT;
    memcpy(out, h.hash, STORE_HASH_LEN);
    return REEL_OK;
}

/* Makes 'rec' the record as of its last event at or below r->visible: last_sequence,
 * event_count and last_hash step back over the events above the bound (positions grow
 * with sequences, so a binary search finds the last visible one). The other fields stay
 * (a record change takes no position; the bytes count what is stored). */
int store__clip_record(store_read_t *r, store_session_t *rec)
{
    if (r->visible == STORE_VISIBLE_ALL || rec->status == STORE_DELETED ||
        !rec->last_sequence)
        return REEL_OK;
    uint64_t first = rec->first_sequence ? rec->first_sequence : 1;
    uint64_t lo = first - 1, hi = rec->last_sequence; /* lo visible (or none), hi not */
    uint64_t pos;
    int rc = hi >= first ? seq_position(r, rec->num, hi, &pos) : REEL_OK;
    if (rc)
        return rc;
    if (hi < first || pos <= r->visible)
        return REEL_OK;
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if ((rc = seq_position(r, rec->num, mid, &pos)))
            return rc;
        if (pos <= r->visible)
            lo = mid;
        else
            hi = mid;
    }
    rec->last_sequence = lo;
    rec->event_count = lo >= first ? lo - first + 1 : 0;
    if (lo < first) {
        memcpy(rec->last_hash, rec->first_prev_hash, STORE_HASH_LEN);
        if (lo == 0)
            rec->first_event_ms = 0;
        return REEL_OK;
    }
    if ((rc = seq_position(r, rec->num, lo, &pos)))
        return rc;
    return chain_at(r, pos, rec->last_hash);
}
