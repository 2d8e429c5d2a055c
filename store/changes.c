/* changes.c -- the change log: session record changes between the events, and the feed
 * that interleaves them with events (docs/FORMAT.md section 13, store.h).
 *
 * Key of a 'changes' entry (12 bytes): position u64 BE | index u32 BE. The position is
 * the last one assigned when the change committed (the event it follows; 0 before the
 * first), the index counts the changes after that position from 1. So (position, index)
 * orders changes among themselves, and a change sorts after the event at its position and
 * before the next one: events keep exactly the positions they had before the log.
 *
 * Value:
 *   off 0  u8      kind (enum store_change_kind)
 *   off 1  u64 BE  time, Unix ms (the commit time of the change)
 *   off 9  u64 BE  session number
 *   off 17 u16 BE  id length n (1..1024)
 *   off 19 n       session id bytes
 *   off 19+n       the session record after the change, encoded as in 'sessions'
 * The id is in the value because the record carries it only for a long id.
 */
#include <errno.h>
#include <string.h>

#include "store/store_int.h"

#define CHANGE_HEAD 19

#define CHANGE_KEY 12

static void change_key(uint8_t key[CHANGE_KEY], uint64_t pos, uint32_t index)
{
    store__put_u64(key, pos);
    key[8] = (uint8_t)(index >> 24);
    key[9] = (uint8_t)(index >> 16);
    key[10] = (uint8_t)(index >> 8);
    key[11] = (uint8_t)index;
}

static uint32_t key_index(const uint8_t *k)
{
    return (uint32_t)k[8] << 24 | (uint32_t)k[9] << 16 | (uint32_t)k[10] << 8 | k[11];
}

/* Reads the log's last key into 'cl' (none: position 0, index 0). */
static int last_key(store_t *s, MDB_txn *txn, store__chlog_t *cl)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->db_changes, &c);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) {
        cl->pos = 0, cl->index = 0;
    } else if (rc) {
        return rc;
    } else if (k.mv_size == CHANGE_KEY) {
        cl->pos = store__get_u64(k.mv_data);
        cl->index = key_index(k.mv_data);
    } else {
        return MDB_CORRUPTED;
    }
    cl->known = 1;
    return 0;
}

int store__change_put(store__wg_t *w, store__chlog_t *cl, uint64_t pos, int kind,
                      uint64_t time_ms, const store_session_t *rec)
{
    int rc = cl->known ? 0 : last_key(w->s, w->txn, cl);
    if (rc)
        return rc;
    if (cl->pos == pos && cl->index == UINT32_MAX)
        return EOVERFLOW; /* 4 billion changes after one event: refuse, never wrap */
    return store__change_put_at(w, cl, pos, cl->pos == pos ? cl->index + 1 : 1, kind,
                                time_ms, rec);
}

int store__change_last(store_t *s, MDB_txn *txn, store__chlog_t *cl)
{
    return cl->known ? 0 : last_key(s, txn, cl);
}

int store__change_put_at(store__wg_t *w, store__chlog_t *cl, uint64_t pos, uint32_t index,
                         int kind, uint64_t time_ms, const store_session_t *rec)
{
    int rc = cl->known ? 0 : last_key(w->s, w->txn, cl);
    if (rc)
        return rc;
    if (!index || pos < cl->pos || (pos == cl->pos && index <= cl->index))
        return EINVAL; /* keys only grow (MDB_APPEND below) */
    store_buf_t buf = STORE_BUF_INIT;
    uint8_t head[CHANGE_HEAD];
    head[0] = (uint8_t)kind;
    store__put_u64(head + 1, time_ms);
    store__put_u64(head + 9, rec->num);
    head[17] = (uint8_t)(rec->id_len >> 8);
    head[18] = (uint8_t)rec->id_len;
    store_buf_put(&buf, head, sizeof head);
    store_buf_put(&buf, rec->id, rec->id_len);
    store__session_encode(rec, &buf);
    if (store_buf_failed(&buf)) {
        store_buf_release(&buf);
        return ENOMEM;
    }
    uint8_t key[CHANGE_KEY];
    change_key(key, pos, index);
    MDB_val k = {CHANGE_KEY, key}, v = {buf.len, buf.data};
    /* Keys only grow: the entry goes at the end of the tree. */
    rc = store__put(w, w->s->db_changes, &k, &v, MDB_APPEND);
    store_buf_release(&buf);
    if (!rc)
        cl->pos = pos, cl->index = index;
    return rc;
}

const char *store_change_name(int kind)
{
    switch (kind) {
    case STORE_CHANGE_PUT: return "put";
    case STORE_CHANGE_DELETE: return "delete";
    case STORE_CHANGE_APPEND: return "append";
    case STORE_CHANGE_TRIM: return "trim";
    case STORE_CHANGE_PURGE: return "purge";
    default: return NULL;
    }
}

/* Decodes entry (k, v) into 'ch' and 'rec'; REEL_ECORRUPT when malformed. */
static int change_decode(const MDB_val *k, const MDB_val *v, store_change_view_t *ch,
                         store_session_t *rec)
{
    const uint8_t *p = v->mv_data;
    if (k->mv_size != CHANGE_KEY || v->mv_size < CHANGE_HEAD + 1)
        return REEL_ECORRUPT;
    size_t n = (size_t)p[17] << 8 | p[18];
    if (!n || n > STORE_SESSION_ID_MAX || v->mv_size < CHANGE_HEAD + n + 1 ||
        !store_session_id_valid((const char *)p + CHANGE_HEAD, n))
        return REEL_ECORRUPT;
    uint8_t key[STORE__SESSION_KEY_MAX];
    size_t klen = store__session_key((const char *)p + CHANGE_HEAD, n, key);
    if (!klen)
        return REEL_ENOMEM;
    int rc = store__session_decode(p + CHANGE_HEAD + n, v->mv_size - CHANGE_HEAD - n,
                                   (const char *)key, klen, rec);
    if (rc)
        return rc;
    if (rec->num != store__get_u64(p + 9) || rec->id_len != n ||
        memcmp(rec->id, p + CHANGE_HEAD, n))
        return REEL_ECORRUPT;
    ch->position = store__get_u64(k->mv_data);
    ch->index = key_index(k->mv_data);
    ch->kind = p[0];
    ch->time_ms = store__get_u64(p + 1);
    ch->record = rec;
    return REEL_OK;
}

/* Counts what a stretch of events gave, for the limit (below). */
struct stretch {
    store_event_cb cb;
    void *arg;
    size_t n;
};

static int count_event(void *arg, const store_event_view_t *ev)
{
    struct stretch *st = arg;
    int rc = st->cb(st->arg, ev);
    if (!rc)
        st->n++;
    return rc;
}

/* The merged walk: the next change after the cursor bounds a stretch of events read by
 * store__feed_range() (the events up to its position come before it), then the change
 * itself; on until the limit. */
static int feed_changes(store_read_t *r, uint64_t after, uint32_t index, size_t limit,
                        store_event_cb cb, store_change_cb ccb, void *arg, int *more)
{
    MDB_cursor *c;
    int rc = store__cursor_open(r, r->s->db_changes, &c);
    if (rc)
        return rc;
    size_t n = 0;
    int stop = 0;
    for (;;) {
        uint8_t key[CHANGE_KEY];
        if (index == UINT32_MAX) /* past every change after 'after' */
            change_key(key, after + 1, 0);
        else
            change_key(key, after, index + 1);
        MDB_val k = {CHANGE_KEY, key}, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc && rc != MDB_NOTFOUND)
            break;
        int found = rc == 0;
        if (found && k.mv_size != CHANGE_KEY) {
            stop = REEL_ECORRUPT;
            break;
        }
        if (found && !store__change_visible(r, store__get_u64(k.mv_data), key_index(k.mv_data)))
            found = 0; /* above the visible bound (visible.c): as if not there yet */
        uint64_t next = found ? store__get_u64(k.mv_data) : UINT64_MAX;
        struct stretch st = {cb, arg, 0};
        int ev_more = 0;
        if ((stop = store__feed_range(r, after, next, limit - n, count_event, &st, &ev_more)))
            break;
        n += st.n;
        if (ev_more || !found) {
            if (ev_more)
                *more = 1;
            rc = MDB_NOTFOUND;
            break;
        }
        if (n == limit) {
            *more = 1;
            break;
        }
        store_change_view_t ch;
        store_session_t rec;
        if ((stop = change_decode(&k, &v, &ch, &rec)) || (stop = ccb(arg, &ch)))
            break;
        n++;
        after = ch.position;
        index = ch.index;
    }
    store__cursor_close(r, c);
    if (stop)
        return stop;
    return rc == 0 || rc == MDB_NOTFOUND ? REEL_OK : store__err_from_mdb(rc);
}

int store_feed_changes_after(store_read_t *r, uint64_t after, uint32_t index, size_t limit,
                             store_event_cb cb, store_change_cb ccb, void *arg, int *more)
{
    int rc, dummy;
    int *volatile m = more ? more : &dummy; /* kept across the guard's longjmp */
    *m = 0;
    if (!r->s->has_changes)
        return store_feed_after(r, after, limit, cb, arg, more);
    STORE__GUARD(r->s, rc, feed_changes(r, after, index, limit, cb, ccb, arg, m));
    return rc;
}

static int feed_tail(store_read_t *r, uint64_t *pos, uint32_t *index)
{
    *index = 0;
    int rc = store_tail_position(r, pos);
    if (rc || !r->s->has_changes)
        return rc;
    MDB_cursor *c;
    if ((rc = store__cursor_open(r, r->s->db_changes, &c)))
        return rc;
    MDB_val k, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    /* The last visible change: step back over those above the bound. */
    while (mrc == 0 && k.mv_size == CHANGE_KEY &&
           !store__change_visible(r, store__get_u64(k.mv_data), key_index(k.mv_data)))
        mrc = mdb_cursor_get(c, &k, &v, MDB_PREV);
    if (mrc == 0 && k.mv_size == CHANGE_KEY && store__get_u64(k.mv_data) >= *pos) {
        *pos = store__get_u64(k.mv_data);
        *index = key_index(k.mv_data);
    }
    store__cursor_close(r, c);
    return mrc == 0 || mrc == MDB_NOTFOUND ? REEL_OK : store__err_from_mdb(mrc);
}

int store_feed_tail(store_read_t *r, uint64_t *pos, uint32_t *index)
{
    int rc;
    STORE__GUARD(r->s, rc, feed_tail(r, pos, index));
    return rc;
}
