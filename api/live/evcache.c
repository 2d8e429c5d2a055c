/* evcache.c -- the event JSON cache: rendered envelopes kept by position.
 *
 * Why: a committed event changes only by a redaction (below) and its position is never
 * used again (not even after its session is deleted, FORMAT.md "last_position"), so the
 * JSON envelope rendered for one reader can be copied for the next instead of transcoded
 * from msgpack again.
 * Readers ask for the same newest events over and over: pollers tailing a session, every
 * SSE subscriber of a session (each renders each event), restores after a restart.
 *
 * Rules:
 *  - The cache is only asked about an event that a read transaction just returned, so a
 *    deleted event is never served from it; it holds no state of its own to invalidate.
 *  - Envelopes without 'raw' only (REPLAY_RAW renders every time; it is the rare case),
 *    kept whole: a tenant's copy has its position cut (replay_drop_position()).
 *  - One mutex around lookups and inserts; rendering happens outside it. Bounded by bytes
 *    (entries included), the least recently used entries evicted first; an envelope larger
 *    than 1/64 of the budget is not kept.
 *  - Any thread may call api__render_event(); the cache lives as long as the server.
 *  - Redaction after the fact (api/handlers/redact.c) rewrites committed events: before it
 *    answers, api__evcache_forget() drops their envelopes and raises 'floor' to the
 *    store's last transaction id, and a rendering made from a read older than 'floor' is
 *    not kept (it may hold the old body: the read began before the redaction committed).
 *    Such a read still serves what its snapshot held, as any read that began before a
 *    commit; no read that begins after the answer sees the old bytes. A redaction by
 *    another process (reel redact --data) is seen by the server's watcher within
 *    API_WATCH_MS, which empties the cache (api__evcache_clear) the same way.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/live/live.h"
#include "replay/replay.h"

struct ent {
    uint64_t position;
    struct ent *hnext;       /* bucket chain */
    struct ent *prev, *next; /* LRU list, most recent at head */
    size_t len;
    uint8_t json[];
};

struct api_evcache {
    pthread_mutex_t mu;
    struct ent **buckets;
    size_t mask;
    struct ent *head, *tail;
    size_t bytes, max_bytes;
    uint64_t hits, misses;
    uint64_t floor; /* renderings from snapshots older than this txn id are not kept */
};

api_evcache_t *api__evcache_new(size_t max_bytes)
{
    if (max_bytes == 0)
        return NULL;
    api_evcache_t *c = calloc(1, sizeof *c);
    size_t n = 1024;
    while (n < max_bytes / 1024 && n < ((size_t)1 << 24)) /* ~one bucket per 1 KiB event */
        n *= 2;
    if (!c || !(c->buckets = calloc(n, sizeof *c->buckets))) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->mask = n - 1;
    c->max_bytes = max_bytes;
    return c;
}

void api__evcache_free(api_evcache_t *c)
{
    if (!c)
        return;
    for (struct ent *e = c->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static struct ent **slot(api_evcache_t *c, uint64_t position)
{
    uint64_t h = position * 0x9e3779b97f4a7c15ull; /* positions are dense: spread them */
    return &c->buckets[(h >> 32) & c->mask];
}

static void lru_unlink(api_evcache_t *c, struct ent *e)
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

static void lru_push(api_evcache_t *c, struct ent *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static struct ent *find(api_evcache_t *c, uint64_t position)
{
    for (struct ent *e = *slot(c, position); e; e = e->hnext)
        if (e->position == position)
            return e;
    return NULL;
}

static void evict_tail(api_evcache_t *c)
{
    struct ent *e = c->tail;
    struct ent **p = slot(c, e->position);
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
    lru_unlink(c, e);
    c->bytes -= sizeof *e + e->len;
    free(e);
}

/* Keeps a copy of 'json' for 'position' unless another thread was first, or the read it
 * came from ('snapshot') is older than a redaction. */
static void insert(api_evcache_t *c, uint64_t position, uint64_t snapshot, const uint8_t *json,
                   size_t len)
{
    if (len > c->max_bytes / 64)
        return;
    struct ent *e = malloc(sizeof *e + len);
    if (!e) /* the cache is an optimisation: no memory, no entry */
        return;
    e->position = position;
    e->len = len;
    memcpy(e->json, json, len);
    pthread_mutex_lock(&c->mu);
    if (snapshot < c->floor || find(c, position)) {
        pthread_mutex_unlock(&c->mu);
        free(e);
        return;
    }
    struct ent **s = slot(c, position);
    e->hnext = *s;
    *s = e;
    lru_push(c, e);
    c->bytes += sizeof *e + len;
    while (c->bytes > c->max_bytes && c->tail != e)
        evict_tail(c);
    pthread_mutex_unlock(&c->mu);
}

int api__render_event(api_server_t *srv, store_buf_t *out, const store_event_view_t *ev,
                      int flags)
{
    api_evcache_t *c = srv->evcache;
    int rc;
    if (!c || (flags & REPLAY_RAW))
        return (rc = store_event_check(ev)) ? rc : replay_write_event(out, ev, flags);
    size_t mark = out->len;
    pthread_mutex_lock(&c->mu);
    struct ent *e = find(c, ev->position);
    if (e) {
        lru_unlink(c, e);
        lru_push(c, e);
        c->hits++;
        store_buf_put(out, e->json, e->len); /* under the lock: eviction frees entries */
        pthread_mutex_unlock(&c->mu);
    } else {
        c->misses++;
        pthread_mutex_unlock(&c->mu);
        /* Not (or no longer) cached: a view the store did not hash is checked now. */
        if ((rc = store_event_check(ev)) != REEL_OK || (rc = replay_write_event(out, ev, 0)))
            return rc;
        if (!store_buf_failed(out))
            insert(c, ev->position, store_event_snapshot(ev), out->data + mark, out->len - mark);
    }
    if (store_buf_failed(out))
        return REEL_ENOMEM;
    if (flags & REPLAY_NO_POSITION) /* kept whole, served without it to tenants */
        replay_drop_position(out, mark);
    return REEL_OK;
}

int api__render_flags(const api_req_t *rq, int include_raw)
{
    return (include_raw ? REPLAY_RAW : 0) | (rq->n_prefixes ? REPLAY_NO_POSITION : 0);
}

/* Removes the entry of 'position', if any (under the lock). */
static void drop(api_evcache_t *c, uint64_t position)
{
    struct ent **p = slot(c, position);
    while (*p && (*p)->position != position)
        p = &(*p)->hnext;
    struct ent *e = *p;
    if (!e)
        return;
    *p = e->hnext;
    lru_unlink(c, e);
    c->bytes -= sizeof *e + e->len;
    free(e);
}

void api__evcache_forget(api_evcache_t *c, const uint64_t *positions, size_t n, uint64_t floor)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    if (floor > c->floor)
        c->floor = floor;
    for (size_t i = 0; i < n; i++)
        drop(c, positions[i]);
    pthread_mutex_unlock(&c->mu);
}

void api__evcache_clear(api_evcache_t *c, uint64_t floor)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    if (floor > c->floor)
        c->floor = floor;
    while (c->tail)
        evict_tail(c);
    pthread_mutex_unlock(&c->mu);
}

int api__evcache_has(void *arg, uint64_t position)
{
    api_evcache_t *c = arg;
    pthread_mutex_lock(&c->mu);
    int has = find(c, position) != NULL;
    pthread_mutex_unlock(&c->mu);
    return has;
}

/* The trampoline replay_restore() calls (replay knows nothing of the server). */
int api__render_event_cb(void *srv, store_buf_t *out, const store_event_view_t *ev,
                         int flags)
{
    return api__render_event(srv, out, ev, flags);
}

void api__evcache_stats(api_evcache_t *c, uint64_t *hits, uint64_t *misses, uint64_t *bytes)
{
    *hits = *misses = *bytes = 0;
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *misses = c->misses;
    *bytes = c->bytes;
    pthread_mutex_unlock(&c->mu);
}
