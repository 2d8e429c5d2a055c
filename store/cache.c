/* cache.c -- the envelope cache: rendered envelopes of checked events, kept by position.
 *
 * Why: a checked read of one event recomputes its chain hash (two SHA-256), decompresses
 * its body (zstd with the store's dictionary) and renders it (msgpack to JSON): about
 * 2 us per event, where SQLite copies a stored row. Readers ask for the same newest
 * events over and over (pollers, every SSE subscriber, restores), and a committed event
 * changes only by a redaction, while its position is never used again (not even after
 * its session is deleted or purged: FORMAT.md "last_position"). So the envelope made for
 * one reader is kept for the next, in the store, where every library reader (the server,
 * the CLI, a program linking libreel) finds it.
 *
 * What is kept: an entry per position with the envelope the store's renderer made
 * (store_options_t.render, the JSON envelope without 'raw') and the value's header (its
 * session number, sequence, time, chain hash). It enters only through store__cache_put(),
 * called by read.c once the value passed every check of a read (header, decompression,
 * recomputed chain hash): nothing unchecked is ever kept (docs/FORMAT.md 9.1).
 *
 * What a read served from it does not check again (docs/FORMAT.md 9.1): the value's bytes
 * (its chain hash is not recomputed, its body not decompressed). What it still checks:
 * the session record, the sequence index walked in its own snapshot (dense sequences up
 * to the record's last_seq, each entry's position), that the entry at that position is
 * the expected (session number, sequence), and the last event's chain hash against the
 * record's last_hash. `reel verify` reads every value from the disk and never uses it.
 *
 * Invalidation, and why each case is correct:
 *  - delete, trim, purge, session re-creation: a read asks only about positions its own
 *    snapshot's index gives, and positions are never reused; an entry of a removed event
 *    is unreachable and leaves by LRU. (A re-created session has a new number and new
 *    positions.)
 *  - the visible bound (--ack replica) and the durable bound clip the walk before the
 *    cache is asked (read.c).
 *  - redaction by this store handle: the committer, right before committing transaction
 *    T (store__cache_precommit), drops the rewritten positions and raises 'floor' to T
 *    under the lock; an entry is kept only from a snapshot >= floor, so a read that began
 *    before the redaction cannot put the old body back, and no read of a snapshot >= T
 *    finds it. A read that began before T may still be served an entry made after it (the
 *    redacted envelope): it is newer than its snapshot, never older.
 *  - redaction by another process (reel redact --data) or another handle: every
 *    redaction counts one more in the meta record "redactions". 'checked' is the newest
 *    snapshot known to hold no redaction the cache has not seen, with 'redactions' the
 *    count there. A read of a newer snapshot reads the count once (store__cache_usable);
 *    a different count empties the cache and raises the floor to that snapshot. The
 *    committer does the same check in its own transaction before each commit, and moves
 *    'checked' to each of its commits, so a server whose store only it writes never reads
 *    the count on a read.
 *  - a session record's changes (PUT, its version, metadata, status): an envelope holds
 *    nothing of the record but the session id, which a position keeps for good (the record
 *    is read and checked by every walk, before the cache is asked).
 *  - a store reopened, a new build (another renderer, another format version): the cache
 *    lives in the store_t, in memory only, and is made empty by store_open().
 *
 * Rules:
 *  - One mutex around the table, the LRU list and the counters; lookups take it once for
 *    a whole batch of positions (cread.c asks for up to STORE__WALK_HELD at a time), not
 *    per event. Rendering and the callbacks run outside it (a callback may run under a
 *    guard's siglongjmp, store.h).
 *  - A reader never writes to an entry it is served (a hot entry's cache line is shared by
 *    the cores, not passed between them: a reference count per event was 13 % of a
 *    server's poll CPU). Instead it pins a generation, once per batch (a counter on a
 *    line of its own): an entry taken out of the table (eviction, a redaction, a clear)
 *    goes to the current generation's limbo and is freed once no reader pins that
 *    generation or the one before (advance()). The read counts its pins (pins_), which
 *    store_read_end() drops if a guard left the walk. A hit moves its entry to the LRU
 *    head only when it fell back more than an eighth of the entries (its 'stamp'), so hot
 *    entries are not relinked on every read.
 *  - Bounded by bytes (entries included), least recently used out first; an envelope larger
 *    than 1/64 of the budget is not kept.
 */
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

struct store__cache {
    pthread_mutex_t mu;
    store__cent_t **buckets;
    size_t mask;
    store__cent_t *head, *tail; /* LRU list, most recent at head */
    uint64_t tick;              /* moves to the head so far (store__cent_t.stamp) */
    unsigned gen;               /* the generation readers pin now (advance() below) */
    store__cent_t *limbo[2];    /* entries taken out, freed once their readers are gone */
    size_t bytes, max_bytes, entries;
    uint64_t hits, misses, clears, evictions;
    uint64_t floor;             /* entries from snapshots older than this are not kept */
    _Atomic uint64_t checked;   /* snapshots up to this hold no redaction unseen */
    uint64_t redactions;        /* the meta count as of 'checked' */
    uint64_t pending;           /* the committer's: the count in the transaction it commits */
    /* readers pinning each generation (their own cache line: taken per batch, not per
     * event, and never under the lock) */
    _Alignas(64) atomic_uint pins[2];
};

/* The meta record "redactions" in 'txn' (0 when absent). */
static int redaction_count(store_t *s, MDB_txn *txn, uint64_t *n)
{
    MDB_val k = {10, "redactions"}, v;
    int rc = mdb_get(txn, s->db_meta, &k, &v);
    *n = rc == 0 && v.mv_size == 8 ? store__get_u64(v.mv_data) : 0;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int store__cache_open(store_t *s, const store_options_t *opt)
{
    s->render = opt->render;
    if (!opt->render || opt->cache_bytes == STORE_CACHE_OFF)
        return REEL_OK;
    size_t max = opt->cache_bytes ? opt->cache_bytes : STORE_CACHE_DEFAULT_BYTES;
    struct store__cache *c = calloc(1, sizeof *c);
    size_t n = 1024;
    while (n < max / 1024 && n < ((size_t)1 << 24)) /* ~one bucket per 1 KiB envelope */
        n *= 2;
    if (!c || !(c->buckets = calloc(n, sizeof *c->buckets))) {
        free(c); /* an optimisation: without memory, reads render every event */
        return REEL_OK;
    }
    c->mask = n - 1;
    c->max_bytes = max;
    MDB_txn *txn;
    int rc = store__txn_begin(s, MDB_RDONLY, &txn);
    if (rc == 0) {
        atomic_store(&c->checked, (uint64_t)mdb_txn_id(txn));
        rc = redaction_count(s, txn, &c->redactions);
        mdb_txn_abort(txn);
    }
    if (rc) {
        free(c->buckets);
        free(c);
        store__set_error("cannot read the store's redaction count: %s", mdb_strerror(rc));
        return store__err_from_mdb(rc);
    }
    pthread_mutex_init(&c->mu, NULL);
    s->cache = c;
    return REEL_OK;
}

/* Positions are unique and dense, so the position itself spreads them evenly, and the
 * events a read asks for (a session's, mostly consecutive) share a few lines of the
 * bucket array: a multiplicative hash scattered them over its pages, and the first read
 * after an open paid a page fault per event (about 250 us for newest-50). */
static store__cent_t **slot(struct store__cache *c, uint64_t position)
{
    return &c->buckets[position & c->mask];
}

static void lru_unlink(struct store__cache *c, store__cent_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
}

static void lru_push(struct store__cache *c, store__cent_t *e)
{
    e->stamp = ++c->tick;
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static void free_list(store__cent_t *e)
{
    while (e) {
        store__cent_t *next = e->next;
        free(e);
        e = next;
    }
}

/* Frees what was taken out two generations ago once no reader pins the generation before
 * this one, and moves to the next (under mu). A reader pins the generation current when it
 * looked entries up, so an entry taken out in generation g (after every reader that found
 * it had pinned g or earlier) is freed when g and g - 1 have no readers left. */
static void advance(struct store__cache *c)
{
    unsigned old = (c->gen + 1) & 1;
    if (!c->limbo[0] && !c->limbo[1])
        return;
    if (atomic_load_explicit(&c->pins[old], memory_order_acquire))
        return;
    free_list(c->limbo[old]);
    c->limbo[old] = NULL;
    c->gen++;
}

/* Takes 'e' out of the table and the list; it is freed when no reader can hold it (under
 * mu). */
static void unlink_entry(struct store__cache *c, store__cent_t *e)
{
    store__cent_t **p = slot(c, e->position);
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
    lru_unlink(c, e);
    c->bytes -= sizeof *e + e->len;
    c->entries--;
    e->next = c->limbo[c->gen & 1];
    c->limbo[c->gen & 1] = e;
}

static store__cent_t *find(struct store__cache *c, uint64_t position)
{
    for (store__cent_t *e = *slot(c, position); e; e = e->hnext)
        if (e->position == position)
            return e;
    return NULL;
}

static void clear_locked(struct store__cache *c)
{
    while (c->tail)
        unlink_entry(c, c->tail);
    c->clears++;
    advance(c);
}

void store__cache_free(store_t *s)
{
    struct store__cache *c = s->cache;
    if (!c)
        return;
    while (c->tail)
        unlink_entry(c, c->tail);
    free_list(c->limbo[0]); /* no read is open: store_close()'s rule */
    free_list(c->limbo[1]);
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
    s->cache = NULL;
}

int store__cache_usable(store_read_t *r)
{
    if (r->cache_state_)
        return r->cache_state_ > 0;
    struct store__cache *c = r->s->cache;
    r->cache_state_ = -1;
    if (!c)
        return 0;
    MDB_txn *txn = r->txn_;
    uint64_t snap = (uint64_t)mdb_txn_id(txn), n;
    if (snap > atomic_load_explicit(&c->checked, memory_order_acquire)) {
        /* Commits this handle did not make: did one of them redact? */
        if (redaction_count(r->s, txn, &n))
            return 0;
        pthread_mutex_lock(&c->mu);
        if (snap > atomic_load_explicit(&c->checked, memory_order_relaxed)) {
            if (n != c->redactions) {
                clear_locked(c);
                c->redactions = n;
                if (snap > c->floor)
                    c->floor = snap;
            }
            atomic_store_explicit(&c->checked, snap, memory_order_release);
        }
        pthread_mutex_unlock(&c->mu);
    }
    r->cache_state_ = 1;
    return 1;
}

/* Pins the current generation for read 'r' (under mu); returns its index. */
static int pin(struct store__cache *c, store_read_t *r)
{
    int g = (int)(c->gen & 1);
    atomic_fetch_add_explicit(&c->pins[g], 1, memory_order_relaxed);
    r->pins_[g]++;
    return g;
}

void store__cache_unpin(store_read_t *r, int g)
{
    r->pins_[g]--;
    atomic_fetch_sub_explicit(&r->s->cache->pins[g], 1, memory_order_release);
}

int store__cache_get(store_read_t *r, const uint64_t *pos, size_t n, store__cent_t **ents)
{
    struct store__cache *c = r->s->cache;
    uint64_t hits = 0;
    pthread_mutex_lock(&c->mu);
    int g = pin(c, r);
    /* The entries are scattered over the heap: ask for all of their first lines at once
     * (one memory round trip for the batch instead of one per event). */
    for (size_t i = 0; i < n; i++) {
        ents[i] = *slot(c, pos[i]);
        __builtin_prefetch(ents[i]);
    }
    for (size_t i = 0; i < n; i++) {
        store__cent_t *e = ents[i];
        while (e && e->position != pos[i])
            e = e->hnext;
        /* Only an entry that fell back a good way moves to the head: hot entries are then
         * read, not written, by every reader (no cache line bounces between cores). */
        if (e && c->tick - e->stamp > c->entries / 8) {
            lru_unlink(c, e);
            lru_push(c, e);
        }
        hits += e != NULL;
        ents[i] = e;
    }
    c->hits += hits;
    c->misses += n - hits;
    advance(c); /* what was taken out leaves once its readers are gone, eviction or not */
    pthread_mutex_unlock(&c->mu);
    return g;
}

store__cent_t *store__cache_put(store_read_t *r, const store_event_view_t *ev, uint64_t num,
                                const uint8_t *env, size_t len, int *g)
{
    struct store__cache *c = r->s->cache;
    store__cent_t *e = malloc(sizeof *e + len);
    *g = -1;
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    e->position = ev->position;
    e->num = num;
    e->seq = ev->sequence;
    e->time_ms = ev->time_ms;
    memcpy(e->hash, ev->hash, STORE_HASH_LEN);
    e->stored_len = ev->stored_len;
    e->redacted = ev->redacted;
    e->len = len;
    memcpy(e->env, env, len);
    if (!c || len > c->max_bytes / 64 || !store__cache_usable(r))
        return e;
    uint64_t snap = store_event_snapshot(ev);
    pthread_mutex_lock(&c->mu);
    if (snap >= c->floor && !find(c, e->position)) {
        store__cent_t **s = slot(c, e->position);
        e->hnext = *s;
        *s = e;
        lru_push(c, e);
        c->bytes += sizeof *e + len;
        c->entries++;
        *g = pin(c, r); /* the cache's now: the caller must not free it */
        while (c->bytes > c->max_bytes && c->tail != e) {
            unlink_entry(c, c->tail);
            c->evictions++;
        }
        advance(c);
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

void store__cache_done(store_read_t *r, store__cent_t *e, int g)
{
    if (g >= 0)
        store__cache_unpin(r, g);
    else
        free(e);
}

void store__cache_precommit(store_t *s, MDB_txn *txn, uint64_t txn_id, store_batch_t *list)
{
    struct store__cache *c = s->cache;
    uint64_t own = 0, n;
    if (!c)
        return;
    for (store_batch_t *b = list; b; b = b->next_)
        own += b->op == STORE_OP_REDACT && b->err == REEL_OK;
    int rc = redaction_count(s, txn, &n);
    pthread_mutex_lock(&c->mu);
    if (rc || c->redactions + own != n) {
        clear_locked(c); /* another process redacted, unseen yet (or the count is unreadable) */
        if (txn_id > c->floor)
            c->floor = txn_id;
    } else if (own) {
        for (store_batch_t *b = list; b; b = b->next_)
            for (size_t i = 0; b->op == STORE_OP_REDACT && !b->err && i < b->n_rewrites; i++) {
                store__cent_t *e = find(c, b->rewrites[i].position);
                if (e)
                    unlink_entry(c, e);
            }
        if (txn_id > c->floor)
            c->floor = txn_id;
        advance(c);
    }
    c->pending = rc ? UINT64_MAX : n;
    pthread_mutex_unlock(&c->mu);
}

void store__cache_committed(store_t *s, uint64_t txn_id, int ok)
{
    struct store__cache *c = s->cache;
    if (!c || !ok)
        return;
    pthread_mutex_lock(&c->mu);
    /* Everything up to txn_id is seen: the check above covered the commits before it. A
     * read may have got further meanwhile (another process committed after): keep that. */
    if (c->pending != UINT64_MAX && atomic_load_explicit(&c->checked, memory_order_relaxed) < txn_id) {
        c->redactions = c->pending;
        atomic_store_explicit(&c->checked, txn_id, memory_order_release);
    }
    pthread_mutex_unlock(&c->mu);
}

void store_cache_stats(store_t *s, store_cache_stats_t *out)
{
    struct store__cache *c = s->cache;
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    *out = (store_cache_stats_t){c->hits, c->misses, c->entries, c->bytes, c->max_bytes,
                                 c->clears, c->evictions};
    pthread_mutex_unlock(&c->mu);
}
