/* commit.c -- the submission queue and the committer thread that drains it: group commit
 * of every pending batch.
 *
 * One pass ("group"): take the pending batches, apply each inside one LMDB write
 * transaction, commit once (one fdatasync plus the synchronous meta write), complete
 * every batch, fire the commit hook. A batch that fails its own checks (conflict, deleted
 * session, bad input) is rejected in phase 1 before it writes anything, so it fails
 * alone; only LMDB errors fail the whole group. Everything the group needs (positions,
 * session records, the next session number) is read inside the transaction, so several
 * processes may append to one data directory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "store/json.h"
#include "store/jfile.h"

#define GROW_TRIES 24

struct sess {
    store_session_t rec; /* rec.metadata: 'meta' below or a PUT batch's memory */
    uint8_t *meta;       /* heap copy of the stored metadata */
    int exists;          /* the record was in the database before this group */
    int64_t stored_ms;   /* its updated_ms as stored: its 'recent' key (when 'exists') */
    int dirty;
    int purged;          /* removed for good by a STORE_OP_PURGE of this group */
    struct sess *hnext;
};

struct group {
    store__jgroup_t j; /* first: the journal hands it back (store__group_complete) */
    store_t *s;
    store__wg_t w;      /* the write transaction (w.txn) and its log (journal.c) */
    uint64_t position; /* last position assigned */
    store__chlog_t chlog; /* the change log's last key, once read (changes.c) */
    uint64_t first_position; /* the last position before this group */
    uint64_t txn_id;         /* the LMDB write transaction's id (store_commit_t.txn_id) */
    uint64_t next_num; /* next internal session number */
    int next_num_dirty;
    uint64_t now_ms;
    struct sess *table[256];
    struct sess **list; /* touched sessions in order of first touch */
    size_t n_list, cap_list;
    size_t n_events, n_dups;
    size_t n_trimmed; /* events removed by STORE_OP_TRIM batches */
    size_t n_purged;  /* sessions removed by STORE_OP_PURGE batches */
    size_t need_bytes; /* estimate of what the group writes, for map growth */
    int mdb_rc;        /* first LMDB error that fails the whole group */
    int made_consumers; /* this transaction made the 'consumers' database */
};

uint64_t store_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned hash_name(const char *p, size_t n)
{
    unsigned h = 2166136261u;
    while (n--)
        h = (h ^ (unsigned char)*p++) * 16777619u;
    return h & 255;
}

static void group_release(struct group *g)
{
    for (size_t i = 0; i < g->n_list; i++) {
        free(g->list[i]->meta);
        free(g->list[i]);
    }
    free(g->list);
    store_buf_release(&g->w.log);
    memset(g->table, 0, sizeof g->table);
    g->list = NULL;
    g->n_list = g->cap_list = 0;
}

/* ---- session records within the group ---- */

static struct sess *sess_add(struct group *g, const char *id, size_t len)
{
    if (g->n_list == g->cap_list) {
        size_t cap = g->cap_list ? g->cap_list * 2 : 16;
        struct sess **l = realloc(g->list, cap * sizeof *l);
        if (!l)
            return NULL;
        g->list = l, g->cap_list = cap;
    }
    struct sess *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    memcpy(x->rec.id, id, len);
    x->rec.id_len = len;
    unsigned h = hash_name(id, len);
    x->hnext = g->table[h];
    g->table[h] = x;
    g->list[g->n_list++] = x;
    return x;
}

/* Finds the session in the group or loads it; '*out' = NULL when it does not exist. */
static int sess_get(struct group *g, const char *id, size_t len, struct sess **out)
{
    for (struct sess *x = g->table[hash_name(id, len)]; x; x = x->hnext)
        if (x->rec.id_len == len && !memcmp(x->rec.id, id, len))
            return *out = x->purged ? NULL : x, REEL_OK; /* a re-creation is added in front */
    *out = NULL;
    uint8_t key[STORE__SESSION_KEY_MAX];
    MDB_val k = {store__session_key(id, len, key), key}, v;
    if (!k.mv_size)
        return REEL_ENOMEM;
    int rc = mdb_get(g->w.txn, g->s->db_sessions, &k, &v);
    if (rc == MDB_NOTFOUND)
        return REEL_OK;
    if (rc)
        return g->mdb_rc = rc, REEL_EIO;
    store_session_t rec;
    if ((rc = store__session_decode(v.mv_data, v.mv_size, (const char *)key, k.mv_size, &rec)))
        return rc;
    if (rec.id_len != len || memcmp(rec.id, id, len))
        return REEL_ECORRUPT;
    struct sess *x = sess_add(g, id, len);
    if (!x)
        return REEL_ENOMEM;
    x->rec = rec;
    x->exists = 1;
    x->stored_ms = rec.updated_ms;
    if (rec.metadata) { /* copy: the map page may move on our next write */
        if (!(x->meta = malloc(rec.metadata_len)))
            return REEL_ENOMEM;
        memcpy(x->meta, rec.metadata, rec.metadata_len);
        x->rec.metadata = x->meta;
    }
    return *out = x, REEL_OK;
}

static int sess_create(struct group *g, const char *id, size_t len, struct sess **out)
{
    struct sess *x = sess_add(g, id, len);
    if (!x)
        return REEL_ENOMEM;
    x->rec.num = g->next_num++;
    g->next_num_dirty = 1;
    x->rec.created_ms = x->rec.updated_ms = (int64_t)g->now_ms;
    x->rec.version = 1;
    x->rec.first_sequence = 1;
    x->dirty = 1;
    return *out = x, REEL_OK;
}

/* Copies 'len' bytes (NUL included, if any: issue 14, finding 8) and keeps the length. */
static void set_name(char *dst, size_t *dst_len, const char *src, size_t len)
{
    if (len > STORE_NAME_MAX)
        len = STORE_NAME_MAX;
    memcpy(dst, src, len);
    dst[len] = 0;
    *dst_len = len;
}

/* Logs change 'kind' of 'x' after the last position assigned, in the group's transaction
 * (docs/FORMAT.md section 13): a reader of the feed with changes sees it between the
 * events committed before and after it. */
static int log_change(struct group *g, const struct sess *x, int kind)
{
    if (!g->s->has_changes)
        return REEL_OK;
    int rc = store__change_put(&g->w, &g->chlog, g->position, kind, g->now_ms, &x->rec);
    if (rc)
        return g->mdb_rc = rc, rc == ENOMEM ? REEL_ENOMEM : REEL_EIO;
    g->need_bytes += 256 + x->rec.id_len + x->rec.metadata_len;
    return REEL_OK;
}

/* ---- appending ---- */

static int validate(const store_batch_t *b)
{
    if (b->n_events == 0)
        return REEL_EINVALID_EVENT;
    for (size_t i = 0; i < b->n_events; i++) {
        const store_event_t *ev = &b->events[i];
        if (ev->event_id_len == 0 || ev->event_id_len > STORE_EVENT_ID_MAX ||
            ev->body_len < 2 || (ev->body[0] & ~(STORE_FLAG_ZSTD | STORE_FLAG_REDACTED)) ||
            ((ev->body[0] & STORE_FLAG_REDACTED) && ev->body_len < 2 + STORE_HASH_LEN) ||
            ev->native_session_id_len > STORE_NAME_MAX)
            return REEL_EINVALID_EVENT;
    }
    return REEL_OK;
}

/* Phase 1: marks events whose event_id exists already; returns how many. */
static int find_duplicates(struct group *g, struct sess *x, store_batch_t *b, size_t *dups)
{
    *dups = 0;
    for (size_t i = 0; i < b->n_events; i++) {
        store_event_t *ev = &b->events[i];
        ev->duplicate = 0;
        if (!x || ev->new_id)
            continue;
        uint64_t seq, pos;
        int rc = store__id_get(g->s, g->w.txn, x->rec.num, ev->event_id, ev->event_id_len, &seq);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc || !seq)
            return rc ? (g->mdb_rc = rc, REEL_EIO) : REEL_ECORRUPT;
        ev->duplicate = 1;
        ev->sequence = seq;
        uint8_t pkey[8];
        MDB_val pv;
        if ((rc = store__seq_get(g->s, g->w.txn, x->rec.num, seq, &pos)) == ENOMEM)
            return g->mdb_rc = rc, REEL_EIO; /* fails the group as out of memory */
        if (rc == 0 && pos) {
            ev->position = pos;
            store__put_u64(pkey, pos);
            MDB_val pk = {8, pkey};
            store__head_t h;
            if (mdb_get(g->w.txn, g->s->db_events, &pk, &pv) == 0 &&
                !store__head_parse(pv.mv_data, pv.mv_size, &h))
                ev->time_ms = h.time_ms;
        }
        (*dups)++;
    }
    return REEL_OK;
}

/* Adds one appended event's usage delta to the record's summary (docs/FORMAT.md section
 * 16). Sums saturate instead of wrapping: a counter is never smaller than what it held. */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void add_usage(store_session_t *r, const store_usage_t *u)
{
    if (u->model && u->model_len && u->model_len <= STORE_NAME_MAX) {
        memcpy(r->model, u->model, u->model_len);
        r->model[u->model_len] = 0;
        r->model_len = u->model_len;
    }
    r->input_tokens = sat_add(r->input_tokens, u->input_tokens);
    r->output_tokens = sat_add(r->output_tokens, u->output_tokens);
    r->cost_nusd = sat_add(r->cost_nusd, u->cost_nusd);
    r->turns = sat_add(r->turns, u->turns);
}

/* Phase 2 for one event: event_id index, value, position index, session record. */
static int put_event(struct group *g, struct sess *x, store_event_t *ev, uint64_t first_seq,
                     uint64_t first_pos, int keep_time, const uint8_t *zbody, size_t zlen,
                     int zplain)
{
    store_t *s = g->s;
    uint64_t seq = x->rec.last_sequence + 1, pos = g->position + 1;
    uint64_t had;
    int rc = store__ix_append(&g->w, x->rec.num, seq, pos, ev->event_id, ev->event_id_len,
                              ev->new_id, &had);
    if (rc == MDB_KEYEXIST) { /* the same event_id earlier in this batch */
        ev->duplicate = 1;
        ev->sequence = had;
        ev->position = first_pos + (ev->sequence - first_seq);
        if (!keep_time)
            ev->time_ms = g->now_ms;
        g->n_dups++;
        return REEL_OK;
    }
    if (rc)
        return g->mdb_rc = rc, REEL_EIO;

    g->position = pos;
    uint64_t t = keep_time ? ev->time_ms : g->now_ms;
    uint8_t hash[STORE_HASH_LEN], pkey[8];
    if (store__chain(x->rec.last_hash, seq, pos, t, ev->body_hash, hash))
        return g->mdb_rc = ENOMEM, REEL_ENOMEM; /* events before it are written: fail the group */
    store__put_u64(pkey, pos);
    /* Positions only grow, so every value goes at the end of the tree: MDB_APPEND fills
     * pages completely instead of splitting them in half. */
    /* The body as store_submit() compressed it, if it did: with the dictionary (FORMAT.md
     * section 15), or in a plain frame (zplain); the body hash, and so the chain, stay
     * those of the body itself. */
    const uint8_t *body = ev->body + 1;
    size_t blen = ev->body_len - 1;
    uint8_t flags = (uint8_t)((ev->body[0] & ~STORE_FLAG_SHORT) | STORE__HEAD_FLAG(s));
    if (zlen) {
        body = zbody;
        blen = zlen;
        flags = (uint8_t)(STORE_FLAG_ZSTD | (zplain ? 0 : STORE_FLAG_ZDICT) | STORE__HEAD_FLAG(s));
    }
    size_t head = store__head_size(flags, x->rec.num, seq, t), vlen = head + blen;
    MDB_val pk = {8, pkey}, val = {vlen, NULL};
    if ((rc = store__put(&g->w, s->db_events, &pk, &val, MDB_APPEND | MDB_RESERVE)))
        return g->mdb_rc = rc, REEL_EIO;
    uint8_t *p = val.mv_data;
    store__head_write(p, flags, x->rec.num, seq, t, hash);
    memcpy(p + head, body, blen);
    store__reserved(&g->w, p, vlen);

    ev->sequence = seq;
    ev->position = pos;
    ev->time_ms = t;
    store_session_t *r = &x->rec;
    r->last_sequence = seq;
    r->event_count++;
    r->bytes += vlen;
    r->updated_ms = (int64_t)t;
    if (!r->first_event_ms)
        r->first_event_ms = (int64_t)t;
    memcpy(r->last_hash, hash, STORE_HASH_LEN);
    /* A session that runs again is active again; ended_at stays the latest end. Deleted
     * sessions never get here (apply_append refuses them). */
    if (ev->ends_session) {
        r->status = STORE_ENDED;
        r->ended_ms = (int64_t)t;
    } else {
        r->status = STORE_ACTIVE;
    }
    if (ev->starts_session)
        r->runs++;
    add_usage(r, &ev->usage);
    if (ev->native_session_id && ev->native_session_id_len)
        set_name(r->native_session_id, &r->native_session_id_len, ev->native_session_id,
                 ev->native_session_id_len);
    x->dirty = 1;
    g->n_events++;
    g->need_bytes += vlen + 128;
    return REEL_OK;
}

static void summarize(store_batch_t *b)
{
    b->first_sequence = UINT64_MAX;
    b->last_sequence = b->position = 0;
    b->duplicates = 0;
    for (size_t i = 0; i < b->n_events; i++) {
        const store_event_t *ev = &b->events[i];
        if (ev->sequence < b->first_sequence)
            b->first_sequence = ev->sequence;
        if (ev->sequence > b->last_sequence)
            b->last_sequence = ev->sequence;
        if (ev->position > b->position)
            b->position = ev->position;
        b->duplicates += ev->duplicate;
    }
}

/* REEL_OK unless 'b' has a version condition that 'x' (NULL: no session) fails:
 * REEL_EPRECONDITION then. Sets b->version to the current version (0: none). */
static int version_matches(const struct sess *x, store_batch_t *b)
{
    b->version = x ? x->rec.version : 0;
    if ((b->if_version & STORE_IF_ABSENT) && x)
        return REEL_EPRECONDITION;
    if ((b->if_version & (STORE_IF_EXISTS | STORE_IF_VERSION)) && !x)
        return REEL_EPRECONDITION;
    if (!(b->if_version & STORE_IF_VERSION))
        return REEL_OK;
    for (size_t i = 0; i < b->n_if_match; i++)
        if (b->if_match[i] == x->rec.version)
            return REEL_OK;
    return REEL_EPRECONDITION;
}

/* 1 unless 'b' asks for a metadata compare-and-swap that 'x' (NULL: no session) fails. */
static int metadata_matches(const struct sess *x, const store_batch_t *b)
{
    if (!b->check_metadata)
        return 1;
    size_t len = x && x->rec.metadata ? x->rec.metadata_len : 0;
    return len == b->expected_metadata_len &&
           (len == 0 || !memcmp(x->rec.metadata, b->expected_metadata, len));
}

static int apply_append(struct group *g, store_batch_t *b)
{
    struct sess *x;
    size_t dups;
    int rc;
    if ((rc = validate(b)) || (rc = sess_get(g, b->session, b->session_len, &x)) ||
        (rc = find_duplicates(g, x, b, &dups)))
        return rc;
    if (x && x->rec.status == STORE_DELETED)
        return REEL_EGONE;
    uint64_t last = x ? x->rec.last_sequence : 0;
    if ((dups < b->n_events && b->expected_sequence >= 0 &&
         (uint64_t)b->expected_sequence != last) || !metadata_matches(x, b)) {
        b->last_sequence = last;
        return REEL_ECONFLICT;
    }
    int created = !x;
    if (created && (rc = sess_create(g, b->session, b->session_len, &x)))
        return rc;
    /* The version counts changes of what a PUT sets, so that a read-modify-write of those
     * fields notices them; the events themselves (status, counters, runs) do not count. */
    char native[STORE_NAME_MAX];
    size_t native_len = x->rec.native_session_id_len;
    memcpy(native, x->rec.native_session_id, native_len);
    uint64_t first_seq = x->rec.last_sequence + 1, first_pos = g->position + 1;
    for (size_t i = 0; i < b->n_events; i++) {
        size_t zlen = b->zoff_ ? b->zoff_[2 * i + 1] : 0;
        const uint8_t *z = zlen ? b->zbodies_ + b->zoff_[2 * i] : NULL;
        if (!b->events[i].duplicate &&
            (rc = put_event(g, x, &b->events[i], first_seq, first_pos, b->keep_times, z, zlen,
                            b->zplain_)))
            return rc;
    }
    int changed = native_len != x->rec.native_session_id_len ||
                  memcmp(native, x->rec.native_session_id, native_len);
    if (b->metadata) {
        /* State kept beside the events (a Durable Stream's producer state, closed flag):
         * written in the same transaction, so it can never disagree with them. */
        size_t old = x->rec.metadata ? x->rec.metadata_len : 0;
        changed |= old != b->metadata_len || (old && memcmp(x->rec.metadata, b->metadata, old));
        x->rec.metadata = b->metadata; /* lives until the batch completes, after commit */
        x->rec.metadata_len = b->metadata_len;
        x->dirty = 1;
    }
    if (changed && !created)
        x->rec.version++;
    /* The events carry what they change; what the batch changed beside them is logged. */
    if ((changed || (created && b->metadata)) && (rc = log_change(g, x, STORE_CHANGE_APPEND)))
        return rc;
    b->version = x->rec.version;
    g->n_dups += dups;
    summarize(b);
    return REEL_OK;
}

/* ---- session operations ---- */

/* 1 when the byte strings are equal. */
static int same(const void *a, size_t a_len, const void *b, size_t b_len)
{
    return a_len == b_len && (!a_len || !memcmp(a, b, a_len));
}

static int apply_put(struct group *g, store_batch_t *b)
{
    struct sess *x;
    if (b->agent_len > STORE_NAME_MAX || b->native_session_id_len > STORE_NAME_MAX)
        return REEL_EINVALID_PARAMETER;
    int rc = sess_get(g, b->session, b->session_len, &x);
    if (!rc && !metadata_matches(x, b))
        return REEL_ECONFLICT;
    if (!rc && x && x->rec.status == STORE_DELETED)
        return REEL_EGONE;
    if (!rc)
        rc = version_matches(x, b);
    int created = !rc && !x;
    if (created)
        rc = sess_create(g, b->session, b->session_len, &x);
    if (rc)
        return rc;
    /* The version counts changes of what a PUT sets (like an ETag, it names the record's
     * content): a PUT that changes nothing keeps it, so retrying a PUT, or an import,
     * does not move it. */
    int changed = 0;
    if (b->agent) {
        changed |= !same(x->rec.agent, x->rec.agent_len, b->agent, b->agent_len);
        set_name(x->rec.agent, &x->rec.agent_len, b->agent, b->agent_len);
    }
    if (b->native_session_id) {
        changed |= !same(x->rec.native_session_id, x->rec.native_session_id_len,
                         b->native_session_id, b->native_session_id_len);
        set_name(x->rec.native_session_id, &x->rec.native_session_id_len, b->native_session_id,
                 b->native_session_id_len);
    }
    if (b->metadata) {
        changed |= !x->rec.metadata ||
                   !same(x->rec.metadata, x->rec.metadata_len, b->metadata, b->metadata_len);
        x->rec.metadata = b->metadata; /* lives until the batch completes, after commit */
        x->rec.metadata_len = b->metadata_len;
    }
    if (b->retention) {
        const store_retention_t *p = b->retention, *o = &x->rec.retention;
        changed |= p->set != o->set || p->max_age_ms != o->max_age_ms ||
                   p->max_age_ended_ms != o->max_age_ended_ms ||
                   p->max_events != o->max_events || p->no_archive != o->no_archive;
        x->rec.retention = *p;
        if (!p->set)
            memset(&x->rec.retention, 0, sizeof x->rec.retention);
    }
    x->rec.updated_ms = (int64_t)g->now_ms;
    if (b->times) { /* import: the exported record's own times */
        x->rec.created_ms = b->times->created_ms;
        x->rec.updated_ms = b->times->updated_ms;
        x->rec.ended_ms = b->times->ended_ms;
        x->rec.first_event_ms = b->times->first_event_ms;
        /* The exported status, which the events replayed may not give: a record written
         * before sessions could run again stayed ended after later events. */
        if (b->times->status != STORE_DELETED)
            x->rec.status = b->times->status;
    }
    if (changed && !created)
        x->rec.version++;
    /* import: the exported version, unless this store's is past it (a version never goes
     * back, so an ETag is never given again to another content) */
    if (b->times && b->times->version > x->rec.version)
        x->rec.version = b->times->version;
    x->dirty = 1;
    if ((rc = log_change(g, x, STORE_CHANGE_PUT)))
        return rc;
    b->last_sequence = x->rec.last_sequence;
    b->version = x->rec.version;
    return REEL_OK;
}

/* Deletes session 'num''s entries of both indexes ('seqs', the event_id index). */
static int drop_indexes(struct group *g, uint64_t num)
{
    int rc = store__seq_drop(&g->w, num);
    if (!rc)
        rc = store__ids_drop(&g->w, num);
    return rc ? (g->mdb_rc = rc, REEL_EIO) : REEL_OK;
}

/* Deletes the event values of session 'num', found through its 'seqs' entries. */
static int delete_events(struct group *g, uint64_t num)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(g->w.txn, g->s->db_seqs, &c);
    if (rc)
        return g->mdb_rc = rc, REEL_EIO;
    store__seqc_t w;
    uint64_t seq, pos;
    uint8_t pkey[8];
    store__seqc_init(&w, g->s, c, num);
    for (rc = store__seqc_seek(&w, 0, &seq, &pos); rc == 0; rc = store__seqc_next(&w, &seq, &pos)) {
        store__put_u64(pkey, pos);
        MDB_val pk = {8, pkey};
        int d = pos ? store__del(&g->w, g->s->db_events, &pk, NULL) : MDB_NOTFOUND;
        if (d && d != MDB_NOTFOUND) {
            rc = d;
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return g->mdb_rc = rc, REEL_EIO;
    return REEL_OK;
}

/* The batch's session, which must exist, into '*x'; with 'versioned', the batch's
 * If-Match / If-None-Match conditions are checked too (version_matches()). */
static int sess_existing(struct group *g, store_batch_t *b, struct sess **x, int versioned)
{
    int rc = sess_get(g, b->session, b->session_len, x);
    if (rc)
        return rc;
    if (!*x)
        return REEL_ESESSION_NOT_FOUND;
    return versioned ? version_matches(*x, b) : REEL_OK;
}

static int apply_delete(struct group *g, store_batch_t *b)
{
    struct sess *x;
    int rc = sess_existing(g, b, &x, 1);
    if (rc)
        return rc;
    if (x->rec.status != STORE_DELETED) {
        if ((rc = delete_events(g, x->rec.num)) || (rc = drop_indexes(g, x->rec.num)))
            return rc;
        x->rec.status = STORE_DELETED;
        x->rec.event_count = 0;
        x->rec.bytes = 0;
        x->rec.updated_ms = (int64_t)g->now_ms;
        x->rec.version++;
        x->dirty = 1;
        if ((rc = log_change(g, x, STORE_CHANGE_DELETE)))
            return rc;
    }
    b->last_sequence = x->rec.last_sequence;
    b->version = x->rec.version;
    return REEL_OK;
}

/* ---- retention: trim and purge (docs/FORMAT.md section 10) ---- */

/* Removes one trimmed event's index entries and value: walk 'c' stands on its 'seqs' entry.
 * Sets '*vlen' to its value's size and 'hash' to its chain hash. */
static int trim_one(struct group *g, struct sess *x, store__seqc_t *c, uint64_t pos,
                    uint64_t seq, size_t *vlen, uint8_t hash[STORE_HASH_LEN])
{
    store_t *s = g->s;
    uint8_t pkey[8];
    store__put_u64(pkey, pos);
    MDB_val pk = {8, pkey}, val;
    int rc = pos ? mdb_get(g->w.txn, s->db_events, &pk, &val) : MDB_NOTFOUND;
    if (rc)
        return rc == MDB_NOTFOUND ? REEL_ECORRUPT : (g->mdb_rc = rc, REEL_EIO);
    /* The event_id is the body's first element: decode the value (it may be compressed). */
    store_event_view_t ev = {0};
    uint64_t num;
    store_buf_t z = STORE_BUF_INIT;
    rc = store__value_decode(s, g->w.txn, pos, val.mv_data, val.mv_size, &z, &ev, &num);
    store_mp_t m = {ev.body, ev.body + ev.body_len};
    store_mp_obj_t arr, id;
    if (!rc && (num != x->rec.num || ev.sequence != seq || store_mp_next(&m, &arr) ||
                arr.type != STORE_MP_ARRAY || store_mp_next(&m, &id) ||
                id.type != STORE_MP_STR || !id.len || id.len > STORE_EVENT_ID_MAX))
        rc = REEL_ECORRUPT;
    if (rc) {
        store_buf_release(&z);
        return rc;
    }
    *vlen = val.mv_size;
    memcpy(hash, ev.hash, STORE_HASH_LEN); /* the header store__value_decode() read */
    rc = store__id_del(&g->w, x->rec.num, (const char *)id.ptr, id.len);
    store_buf_release(&z);
    if (rc && rc != MDB_NOTFOUND)
        return g->mdb_rc = rc, REEL_EIO;
    if ((rc = store__del(&g->w, s->db_events, &pk, NULL)) || (rc = store__seqc_del(&g->w, c)))
        return g->mdb_rc = rc, REEL_EIO;
    return REEL_OK;
}

/* STORE_OP_TRIM: removes up to STORE_TRIM_MAX of the oldest events, below b->trim_before.
 * The record keeps the chain hash of the last removed event ('first_hash'), where the
 * chain of the kept ones now starts. Not an activity: updated_at and the version stay. */
static int apply_trim(struct group *g, store_batch_t *b)
{
    struct sess *x;
    int rc = sess_existing(g, b, &x, 1);
    if (rc)
        return rc;
    if (x->rec.status == STORE_DELETED)
        return REEL_EGONE;
    store_session_t *r = &x->rec;
    uint64_t first = r->first_sequence;
    uint64_t stop = b->trim_before < r->last_sequence + 1 ? b->trim_before : r->last_sequence + 1;
    if (stop > r->first_sequence + STORE_TRIM_MAX)
        stop = r->first_sequence + STORE_TRIM_MAX;
    MDB_cursor *c = NULL;
    if (r->first_sequence < stop && (rc = mdb_cursor_open(g->w.txn, g->s->db_seqs, &c)))
        return g->mdb_rc = rc, REEL_EIO;
    store__seqc_t w;
    store__seqc_init(&w, g->s, c, r->num);
    while (r->first_sequence < stop) {
        uint64_t got, pos;
        size_t vlen = 0;
        rc = store__seqc_seek(&w, r->first_sequence, &got, &pos);
        if (rc || got != r->first_sequence)
            rc = rc && rc != MDB_NOTFOUND ? (g->mdb_rc = rc, REEL_EIO) : REEL_ECORRUPT;
        else
            rc = trim_one(g, x, &w, pos, r->first_sequence, &vlen, r->first_prev_hash);
        if (rc)
            break; /* what was removed so far is consistent with the record */
        r->first_sequence++;
        r->event_count--;
        r->bytes -= vlen <= r->bytes ? vlen : r->bytes;
        x->dirty = 1;
        g->n_trimmed++;
    }
    if (c)
        mdb_cursor_close(c);
    /* What was removed is committed even when the batch stops on an error: log it. */
    int lc = r->first_sequence != first && !g->mdb_rc ? log_change(g, x, STORE_CHANGE_TRIM) : 0;
    if (lc)
        return lc;
    b->first_sequence = r->first_sequence;
    b->last_sequence = r->last_sequence;
    b->version = r->version;
    return rc;
}

/* STORE_OP_PURGE: removes the session for good, tombstone or not: events, seqs, event_ids,
 * its 'recent' entry, session_ids and the record, so that LMDB reuses their pages. */
static int apply_purge(struct group *g, store_batch_t *b)
{
    struct sess *x;
    int rc = sess_existing(g, b, &x, 1);
    if (rc)
        return rc;
    if (b->expected_sequence >= 0 && (uint64_t)b->expected_sequence != x->rec.last_sequence) {
        b->last_sequence = x->rec.last_sequence;
        return REEL_ECONFLICT;
    }
    store_t *s = g->s;
    if ((rc = delete_events(g, x->rec.num)) || (rc = drop_indexes(g, x->rec.num)))
        return rc;
    if (x->exists) { /* the stored record, its 'recent' entry and its number's name */
        uint8_t key[STORE__SESSION_KEY_MAX], rk[16], nk[8];
        MDB_val k = {store__session_key(x->rec.id, x->rec.id_len, key), key};
        store__put_u64(rk, (uint64_t)x->stored_ms);
        store__put_u64(rk + 8, x->rec.num);
        store__put_u64(nk, x->rec.num);
        MDB_val r = {16, rk}, n = {8, nk};
        if (!k.mv_size)
            return g->mdb_rc = ENOMEM, REEL_ENOMEM;
        if (((rc = store__del(&g->w, s->db_sessions, &k, NULL)) && rc != MDB_NOTFOUND) ||
            (s->has_recent && (rc = store__del(&g->w, s->db_recent, &r, NULL)) &&
             rc != MDB_NOTFOUND) ||
            ((rc = store__del(&g->w, s->db_session_ids, &n, NULL)) && rc != MDB_NOTFOUND))
            return g->mdb_rc = rc, REEL_EIO;
    }
    if ((rc = log_change(g, x, STORE_CHANGE_PURGE)))
        return rc;
    b->last_sequence = x->rec.last_sequence;
    b->version = 0;
    x->purged = 1;
    g->n_purged++;
    x->dirty = 1; /* for the commit hook: readers of the session learn it is gone */
    return REEL_OK;
}

/* ---- redaction after the fact (docs/FORMAT.md section 11) ---- */

static int meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t dflt, uint64_t *out);

/* The value of 'x''s event 'seq': its position and bytes (valid until the next write).
 * REEL_ECORRUPT when the index or the value is missing. */
static int event_value(struct group *g, const struct sess *x, uint64_t seq, uint64_t *pos,
                       MDB_val *val)
{
    uint8_t pkey[8];
    int rc = store__seq_get(g->s, g->w.txn, x->rec.num, seq, pos);
    if (rc == MDB_NOTFOUND || (!rc && !*pos))
        return REEL_ECORRUPT;
    if (rc)
        return g->mdb_rc = rc, REEL_EIO;
    store__put_u64(pkey, *pos);
    MDB_val pk = {8, pkey};
    rc = mdb_get(g->w.txn, g->s->db_events, &pk, val);
    if (rc == MDB_NOTFOUND)
        return REEL_ECORRUPT;
    return rc ? (g->mdb_rc = rc, REEL_EIO) : REEL_OK;
}

/* The chain hash stored in 'x''s event before 'seq' (32 zero bytes for sequence 1).
 * 1 when that event is not there (a session trimmed by retention keeps no event before
 * its first: the read that planned the rewrite checked the chain from its boundary). */
static int prev_chain(struct group *g, const struct sess *x, uint64_t seq,
                      uint8_t out[STORE_HASH_LEN])
{
    memset(out, 0, STORE_HASH_LEN);
    if (seq == 1)
        return REEL_OK;
    uint64_t pos;
    MDB_val v;
    int rc = event_value(g, x, seq - 1, &pos, &v);
    if (rc == REEL_ECORRUPT)
        return 1;
    if (rc)
        return rc;
    store__head_t h;
    if (store__head_parse(v.mv_data, v.mv_size, &h))
        return REEL_ECORRUPT;
    memcpy(out, h.hash, STORE_HASH_LEN);
    return REEL_OK;
}

/* Phase 1 for one rewrite: the event exists, its body is the one the rewrite was made from,
 * and its chain recomputes; keeps what the write needs in the rewrite's private fields. */
static int rewrite_check(struct group *g, const struct sess *x, store_rewrite_t *w,
                         store_buf_t *scratch)
{
    if (w->sequence == 0 || w->sequence > x->rec.last_sequence || w->body_len < 2 ||
        (w->body[0] & ~STORE_FLAG_ZSTD))
        return REEL_EINVALID_PARAMETER;
    uint64_t pos, num;
    MDB_val v;
    store_event_view_t ev = {0};
    uint8_t prev[STORE_HASH_LEN], now[STORE_HASH_LEN], want[STORE_HASH_LEN];
    int rc = event_value(g, x, w->sequence, &pos, &v);
    if (!rc)
        rc = store__value_decode(g->s, g->w.txn, pos, v.mv_data, v.mv_size, scratch, &ev, &num);
    if (!rc && (num != x->rec.num || ev.sequence != w->sequence))
        rc = REEL_ECORRUPT;
    if (rc)
        return rc;
    w->position = pos;
    w->time_ = ev.time_ms;
    w->old_len_ = v.mv_size;
    memcpy(w->chain_, ev.hash, STORE_HASH_LEN);
    if (store__sha256(ev.body, ev.body_len, now) || store__body_hash(&ev, w->kept_))
        return REEL_ENOMEM;
    if (memcmp(now, w->current_hash, STORE_HASH_LEN))
        return REEL_ECONFLICT;
    /* Never rewrite a value whose chain does not hold: the kept hash must be the one the
     * chain committed to, or the redaction would hide damage. */
    if ((rc = prev_chain(g, x, w->sequence, prev)))
        return rc == 1 ? REEL_OK : rc;
    if (store__chain(prev, w->sequence, pos, ev.time_ms, w->kept_, want))
        return REEL_ENOMEM;
    return memcmp(want, w->chain_, STORE_HASH_LEN) ? REEL_ECORRUPT : REEL_OK;
}

/* Phase 2 for one rewrite: the new value over the old one, under the same key. */
static int rewrite_put(struct group *g, struct sess *x, const store_rewrite_t *w)
{
    uint8_t pkey[8];
    store__put_u64(pkey, w->position);
    uint8_t flags = (uint8_t)((w->body[0] & ~STORE_FLAG_SHORT) | STORE_FLAG_REDACTED |
                              STORE__HEAD_FLAG(g->s));
    size_t head = store__head_size(flags, x->rec.num, w->sequence, w->time_);
    size_t vlen = head + STORE_HASH_LEN + w->body_len - 1;
    MDB_val pk = {8, pkey}, val = {vlen, NULL};
    int rc = store__put(&g->w, g->s->db_events, &pk, &val, MDB_RESERVE);
    if (rc)
        return g->mdb_rc = rc, REEL_EIO;
    uint8_t *p = val.mv_data;
    store__head_write(p, flags, x->rec.num, w->sequence, w->time_, w->chain_);
    memcpy(p + head, w->kept_, STORE_HASH_LEN);
    memcpy(p + head + STORE_HASH_LEN, w->body + 1, w->body_len - 1);
    store__reserved(&g->w, p, vlen);
    x->rec.bytes = x->rec.bytes - w->old_len_ + vlen;
    g->need_bytes += vlen + 128;
    return REEL_OK;
}

/* Counts one more committed redaction in the meta record "redactions" (u64 BE): how a
 * reader in another process (a server's event cache) learns that stored bodies changed. */
static int count_redaction(struct group *g)
{
    uint64_t n;
    uint8_t be[8];
    int rc = meta_u64(g->w.txn, g->s->db_meta, "redactions", 0, &n);
    if (!rc) {
        store__put_u64(be, n + 1);
        MDB_val k = {10, "redactions"}, v = {8, be};
        rc = store__put(&g->w, g->s->db_meta, &k, &v, 0);
    }
    return rc ? (g->mdb_rc = rc, REEL_EIO) : REEL_OK;
}

/* Checks every rewrite, appends the batch's events (the record of the redaction), then
 * writes the new values: a batch that fails a check writes nothing. */
static int apply_redact(struct group *g, store_batch_t *b)
{
    struct sess *x;
    int rc = sess_existing(g, b, &x, 0);
    if (rc)
        return rc;
    if (x->rec.status == STORE_DELETED)
        return REEL_EGONE;
    store_buf_t scratch = STORE_BUF_INIT;
    for (size_t i = 0; i < b->n_rewrites && !rc; i++)
        rc = rewrite_check(g, x, &b->rewrites[i], &scratch);
    store_buf_release(&scratch);
    if (rc)
        return rc;
    int status = x->rec.status;
    if (b->n_events && (rc = apply_append(g, b)))
        return rc;
    x->rec.status = status; /* the record of a redaction neither starts nor ends a run */
    for (size_t i = 0; i < b->n_rewrites; i++)
        if ((rc = rewrite_put(g, x, &b->rewrites[i])))
            return rc;
    x->dirty = 1;
    return count_redaction(g);
}

/* ---- one group ---- */

/* Reads a u64 record of 'meta' ('*out' = 'dflt' when absent). */
static int meta_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t dflt, uint64_t *out)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    *out = rc == 0 && v.mv_size == 8 ? store__get_u64(v.mv_data) : dflt;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int group_begin(struct group *g)
{
    store_t *s = g->s;
    int rc = store__txn_begin(s, 0, &g->w.txn);
    if (rc)
        return rc;
    /* The last position is a record of its own: deleting the session that holds the
     * newest events must not let positions be used again. */
    if ((rc = meta_u64(g->w.txn, s->db_meta, "last_position", 0, &g->position)) ||
        (rc = meta_u64(g->w.txn, s->db_meta, "next_session", 1, &g->next_num)) ||
        (rc = store__zdict_group(&g->w)))
        return rc;
    g->first_position = g->position;
    g->now_ms = store_wall_ms();
    return 0;
}

/* Moves the 'recent' entry of 'x' to its updated_ms (docs/FORMAT.md, format 2). */
static int put_recent(struct group *g, const struct sess *x)
{
    uint8_t key[16];
    MDB_val k = {16, key}, empty = {0, NULL};
    int rc = 0;
    if (x->exists && x->stored_ms == x->rec.updated_ms)
        return 0;
    store__put_u64(key + 8, x->rec.num);
    if (x->exists) {
        store__put_u64(key, (uint64_t)x->stored_ms);
        rc = store__del(&g->w, g->s->db_recent, &k, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return rc;
    }
    store__put_u64(key, (uint64_t)x->rec.updated_ms);
    return store__put(&g->w, g->s->db_recent, &k, &empty, 0);
}

/* Writes the touched session records and the next session number. */
static int group_finish(struct group *g)
{
    store_t *s = g->s;
    store_buf_t buf = STORE_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < g->n_list && !rc; i++) {
        struct sess *x = g->list[i];
        if (!x->dirty || x->purged)
            continue;
        store_buf_clear(&buf);
        store__session_encode(&x->rec, &buf);
        if (store_buf_failed(&buf)) {
            rc = ENOMEM;
            break;
        }
        uint8_t key[STORE__SESSION_KEY_MAX];
        MDB_val k = {store__session_key(x->rec.id, x->rec.id_len, key), key};
        MDB_val v = {buf.len, buf.data};
        if (!k.mv_size) {
            rc = ENOMEM;
            break;
        }
        rc = store__put(&g->w, s->db_sessions, &k, &v, 0);
        if (!rc)
            rc = put_recent(g, x);
        if (!rc && !x->exists) {
            uint8_t nk[8];
            store__put_u64(nk, x->rec.num);
            MDB_val ik = {8, nk}, iv = {x->rec.id_len, x->rec.id};
            rc = store__put(&g->w, s->db_session_ids, &ik, &iv, 0);
        }
    }
    if (!rc && g->next_num_dirty) {
        uint8_t be[8];
        store__put_u64(be, g->next_num);
        MDB_val k = {12, "next_session"}, v = {8, be};
        rc = store__put(&g->w, s->db_meta, &k, &v, 0);
    }
    if (!rc && g->position != g->first_position) {
        uint8_t be[8];
        store__put_u64(be, g->position);
        MDB_val k = {13, "last_position"}, v = {8, be};
        rc = store__put(&g->w, s->db_meta, &k, &v, 0);
    }
    store_buf_release(&buf);
    return rc;
}

static int group_last_seq(void *arg, const char *id, size_t len, uint64_t *seq)
{
    struct sess *x;
    int rc = sess_get(arg, id, len, &x);
    *seq = !rc && x && x->rec.status != STORE_DELETED ? x->rec.last_sequence : 0;
    return rc;
}

/* A consumer's change (consumer.c decides), in the group's transaction. */
static int apply_consumer(struct group *g, store_batch_t *b)
{
    if (!b->consumer)
        return REEL_EINVALID_PARAMETER;
    g->need_bytes += 4096;
    return store__consumer_apply(&g->w, b->consumer, g->now_ms, g->position,
                                 group_last_seq, g, &g->mdb_rc, &g->made_consumers);
}

/* ---- loading a copy (load.c) ---- */

static int load_sess(void *arg, const char *id, size_t len, int create, store_session_t **rec)
{
    struct group *g = arg;
    struct sess *x;
    int rc = sess_get(g, id, len, &x);
    if (!rc && !x && create)
        rc = sess_create(g, id, len, &x);
    if (x)
        x->dirty = 1; /* a load that passes its checks writes the record */
    *rec = x ? &x->rec : NULL;
    return rc;
}

static int apply_load(struct group *g, store_batch_t *b)
{
    store__load_ctx_t c = {.s = g->s, .w = &g->w, .position = &g->position,
                           .chlog = &g->chlog, .now_ms = g->now_ms, .sess = load_sess,
                           .arg = g};
    int rc = store__load_apply(&c, b);
    g->mdb_rc = c.mdb_rc;
    g->n_events += c.n_events;
    g->need_bytes += c.need_bytes;
    return rc;
}

static int apply(struct group *g, store_batch_t *b)
{
    switch (b->op) {
    case STORE_OP_CONSUMER: return apply_consumer(g, b);
    case STORE_OP_APPEND: return apply_append(g, b);
    case STORE_OP_SESSION_PUT: return apply_put(g, b);
    case STORE_OP_SESSION_DELETE: return apply_delete(g, b);
    case STORE_OP_TRIM: return apply_trim(g, b);
    case STORE_OP_PURGE: return apply_purge(g, b);
    case STORE_OP_REDACT: return apply_redact(g, b);
    case STORE_OP_LOAD: return apply_load(g, b);
    default: return REEL_EINVALID_PARAMETER;
    }
}

/* Runs the group once. Returns 0 (committed), or the LMDB/errno code that failed the
 * whole group (the transaction is then closed). Batch errors are left in b->err. */
static int group_run(struct group *g, store_batch_t *list)
{
    int rc = group_begin(g);
    if (rc) {
        if (g->w.txn)
            mdb_txn_abort(g->w.txn);
        return rc;
    }
    for (store_batch_t *b = list; b; b = b->next_) {
        g->mdb_rc = 0;
        b->err = apply(g, b);
        if (!g->mdb_rc) /* the index tail the batch's appends hold, once per batch (index.c) */
            g->mdb_rc = store__ix_flush(&g->w);
        /* where the feed with changes stands after it (store.h; serve --ack replica) */
        b->cursor_position = g->position;
        b->cursor_index = g->chlog.known && g->chlog.pos == g->position ? g->chlog.index : 0;
        if (g->mdb_rc) {
            mdb_txn_abort(g->w.txn);
            return g->mdb_rc;
        }
    }
    if ((rc = group_finish(g)) || (rc = store__wg_failed(&g->w) ? ENOMEM : 0)) {
        mdb_txn_abort(g->w.txn);
        return rc;
    }
    g->txn_id = mdb_txn_id(g->w.txn);
    store__cache_precommit(g->s, g->w.txn, g->txn_id, list); /* drops what redactions rewrite */
    rc = mdb_txn_commit(g->w.txn);
    store__cache_committed(g->s, g->txn_id, rc == 0);
    if (rc == 0 && g->made_consumers) /* the new handle is valid for every later read */
        atomic_store(&g->s->has_consumers, 1);
    return rc;
}

static int commit_with_growth(store_t *s, struct group *g, store_batch_t *list)
{
    for (int tries = 0;; tries++) {
        memset(g, 0, sizeof *g);
        g->s = g->w.s = s;
        g->w.logging = s->jr != NULL && s->jr->journaling;
        int rc = group_run(g, list);
        if (rc != MDB_MAP_FULL || tries == GROW_TRIES)
            return rc;
        size_t need = g->need_bytes;
        group_release(g);
        if (store__grow(s, 0, need * 2))
            return MDB_MAP_FULL;
    }
}

static void record_stats(store_t *s, store_batch_t *list, const struct group *g, int ok,
                         uint64_t ns)
{
    pthread_mutex_lock(&s->mu);
    for (store_batch_t *b = list; b; b = b->next_) {
        if (b->err)
            s->stats.batch_errors++;
        else
            s->stats.batches++;
    }
    if (ok) {
        s->stats.events += g->n_events;
        s->stats.duplicates += g->n_dups;
        s->stats.trimmed += g->n_trimmed;
        s->stats.purged += g->n_purged;
        s->stats.commits++;
        s->stats.commit_ns += ns;
        int i = 0;
        while (i < STORE_HIST_BUCKETS - 1 && ns >= (64000ull << i))
            i++;
        s->stats.commit_hist[i]++;
    }
    pthread_mutex_unlock(&s->mu);
}

static void fire_hook(store_t *s, const struct group *g, size_t n_batches)
{
    pthread_mutex_lock(&s->mu);
    store_commit_hook hook = s->hook;
    void *arg = s->hook_arg;
    pthread_mutex_unlock(&s->mu);
    if (!hook)
        return;
    store_touched_t small[64], *t = g->n_list <= 64 ? small : malloc(g->n_list * sizeof *t);
    size_t n = 0;
    for (size_t i = 0; t && i < g->n_list; i++)
        if (g->list[i]->dirty)
            t[n++] = (store_touched_t){g->list[i]->rec.id, g->list[i]->rec.id_len,
                                       g->list[i]->rec.last_sequence};
    store_commit_t c = {g->position, t, n, g->n_events, n_batches, g->txn_id};
    hook(arg, &c);
    if (t != small)
        free(t);
}

/* ---- why a group failed ---- */

/* Free space below which a write error is taken for a full disk: file systems keep a few
 * blocks back (ext4's reserved clusters, metadata reservations), so a write is cut short
 * while statvfs still counts some space as free. */
#define FULL_SLACK (1u << 20)

/* 1 when the file system holding data.mdb has less than FULL_SLACK bytes free for us.
 * LMDB turns a write cut short by a full disk into EIO ("short write, filesystem full?",
 * mdb_page_flush), so an EIO while the disk is full is taken for that short write. */
static int disk_full(store_t *s)
{
    int fd;
    struct statvfs st;
    if (mdb_env_get_fd(s->env, &fd) || fstatvfs(fd, &st))
        return 0; /* cannot tell: an I/O error, fail-stop */
    return (unsigned long long)st.f_bavail * st.f_frsize < FULL_SLACK;
}

/* 1 when the failed commit left the store as it was and usable. mdb_txn_commit fails
 * before the meta page (the only pointer to the new tree) with nothing of the group
 * reachable; a failed meta page write instead marks the environment broken, and every
 * later transaction begins with MDB_PANIC. */
static int env_intact(store_t *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        mdb_txn_abort(txn);
    return rc != MDB_PANIC;
}

/* Is 'rc', the error that failed a whole group, a full disk? ENOSPC and EDQUOT say so;
 * MDB_MAP_FULL is left after the map could not grow; EIO while the disk has no free space
 * is a short write. Any of them fails only the group if the commit changed nothing. The
 * remaining risk, an EIO from fdatasync that happens while the disk is full, is retried
 * like a short write: safe for LMDB, whose next commit rewrites every page it uses in full
 * and never points at a page of the aborted transaction (docs/FORMAT.md §7). */
static int is_full(store_t *s, int rc)
{
    if (rc != ENOSPC && rc != EDQUOT && rc != MDB_MAP_FULL && !(rc == EIO && disk_full(s)))
        return 0;
    return env_intact(s);
}

/* Maps a group-level failure onto every batch that had not failed on its own. */
static void fail_group(store_t *s, store_batch_t *list, int rc)
{
    if (rc == ENOMEM) {
        /* Out of memory is not fail-stop: LMDB allocates only before it writes a page,
         * and the committer's own allocations come before the commit, so the aborted
         * transaction left the file as it was (tests/oom retries after each failure). */
        store__set_error("commit failed: out of memory");
        for (store_batch_t *b = list; b; b = b->next_)
            if (!b->err)
                b->err = REEL_ENOMEM;
        return;
    }
    int full = is_full(s, rc);
    if (!full) { /* fail-stop: never retry after an fsync or write error */
        pthread_mutex_lock(&s->mu);
        s->failed = 1;
        pthread_mutex_unlock(&s->mu);
        store__set_error("commit failed, store stopped accepting appends: %s",
                         mdb_strerror(rc));
    } else if (rc == EIO) {
        store__set_error("commit failed: no space left on the device (a write was cut short)");
    } else {
        store__set_error("commit failed: %s", mdb_strerror(rc));
    }
    for (store_batch_t *b = list; b; b = b->next_)
        if (!b->err)
            b->err = full ? REEL_EFULL : REEL_EIO;
}

/* The durable bound once group 'g' (committed) is durable: its last position, and the
 * change log's last index there (the same position as before: the bound's index stays). */
static void group_bound(const struct group *g, const struct store__journal *jr)
{
    store__jgroup_t *j = (store__jgroup_t *)&g->j;
    j->pos = g->position;
    if (g->chlog.known && g->chlog.pos == g->position)
        j->idx = g->chlog.index;
    else
        j->idx = g->position == jr->last_pos ? jr->last_idx : 0;
}

/* With the journal: hands the group to the journal thread, which completes it once its
 * log is durable (store__group_complete). */
static void hand_over(store_t *s, struct group *g, store_batch_t *list, int rc)
{
    g->j.list = list;
    g->j.committed = rc == 0;
    g->j.txn_id = g->txn_id;
    g->j.log = g->w.log.data;
    g->j.log_len = g->w.log.len;
    if (rc == 0)
        group_bound(g, s->jr);
    store__journal_group(s, &g->j);
    if (rc == 0)
        store__journal_tick(s);
}

static void run_group(store_t *s, store_batch_t *list)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int journal = s->jr && s->jr->journaling;
    struct group local, *g = journal ? calloc(1, sizeof *g) : &local;
    if (!g) { /* nothing was written: the group fails alone, like any out of memory */
        fail_group(s, list, ENOMEM);
        for (store_batch_t *b = list, *next; b; b = next) {
            next = b->next_;
            store__zdict_batch_free(b);
            b->done(b, b->done_arg);
        }
        return;
    }
    int rc = commit_with_growth(s, g, list);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc)
        fail_group(s, list, rc);
    uint64_t ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u +
                  (uint64_t)(t1.tv_nsec - t0.tv_nsec);
    record_stats(s, list, g, rc == 0, ns);
    store__zdict_after(s, rc == 0, g->position);
    if (journal) {
        hand_over(s, g, list, rc);
        return;
    }
    size_t n = 0;
    for (store_batch_t *b = list, *next; b; b = next, n++) {
        next = b->next_; /* 'done' may free the batch */
        store__zdict_batch_free(b);
        b->done(b, b->done_arg);
    }
    if (rc == 0 && n) /* a group of no batch only stored a dictionary */
        fire_hook(s, g, n);
    group_release(g);
}

void store__group_complete(store_t *s, store__jgroup_t *j, int err)
{
    struct group *g = (struct group *)j;
    size_t n = 0;
    for (store_batch_t *b = j->list, *next; b; b = next, n++) {
        next = b->next_;
        if (err && !b->err)
            b->err = err;
        store__zdict_batch_free(b);
        b->done(b, b->done_arg);
    }
    if (!err && j->committed && n)
        fire_hook(s, g, n);
    group_release(g);
    free(g);
}

/* ---- the submission queue ----
 *
 * Writers link their batch at the tail of s->head/s->tail under s->mu and signal
 * s->work; take() below unlinks a group from the head. The queue is intrusive (next_), so
 * submitting allocates nothing and cannot fail for lack of memory. */

void store_batch_init(store_batch_t *b, int op, const char *session, size_t session_len)
{
    memset(b, 0, sizeof *b);
    b->op = op;
    b->session = session;
    b->session_len = session_len;
    b->expected_sequence = -1;
}

int store_submit(store_t *s, store_batch_t *b)
{
    if (b->op != STORE_OP_CONSUMER && !store_session_id_valid(b->session, b->session_len))
        return REEL_EINVALID_SESSION_ID;
    b->next_ = NULL;
    b->zbodies_ = NULL;
    b->zoff_ = NULL;
    b->zplain_ = 0;
    /* Here, so that compression runs on many threads. */
    int zrc = b->n_events && !s->read_only ? store__zdict_batch(s, b) : REEL_OK;
    if (zrc)
        return zrc;
    pthread_mutex_lock(&s->mu);
    int rc = s->read_only || s->stopping || s->failed ? REEL_EUNAVAILABLE : REEL_OK;
    if (!rc) {
        if (s->tail)
            s->tail->next_ = b;
        else
            s->head = b;
        s->tail = b;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc)
        store__zdict_batch_free(b);
    return rc;
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
};

static void wake(store_batch_t *b, void *arg)
{
    struct waiter *w = arg;
    (void)b;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int store_append(store_t *s, store_batch_t *b)
{
    struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    b->done = wake;
    b->done_arg = &w;
    int rc = store_submit(s, b);
    if (rc == REEL_OK) {
        pthread_mutex_lock(&w.mu);
        while (!w.done)
            pthread_cond_wait(&w.cv, &w.mu);
        pthread_mutex_unlock(&w.mu);
        rc = b->err;
    }
    b->done = NULL;
    b->done_arg = NULL;
    return rc;
}

void store_set_commit_hook(store_t *s, store_commit_hook hook, void *arg)
{
    pthread_mutex_lock(&s->mu);
    s->hook = hook;
    s->hook_arg = arg;
    pthread_mutex_unlock(&s->mu);
}

/* Takes pending batches up to STORE__GROUP_MAX_EVENTS events, and a posted dictionary
 * (s->zd_new); NULL (and no dictionary) when stopping. */
static store_batch_t *take(store_t *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->head && !s->stopping && !s->zd_pending)
        pthread_cond_wait(&s->work, &s->mu);
    if (s->zd_pending && s->failed) { /* fail-stop: nothing more is written */
        free(s->zd_pending);
        s->zd_pending = NULL;
        s->zd_done++;
        s->zd_result = REEL_EUNAVAILABLE;
        pthread_cond_broadcast(&s->zd_cv);
    }
    if (s->zd_pending && !s->zd_new) { /* a trained dictionary rides with this group */
        s->zd_new = s->zd_pending;
        s->zd_new_len = s->zd_pending_len;
        s->zd_new_at = s->zd_pending_at;
        s->zd_pending = NULL;
    }
    store_batch_t *list = s->head, *last = NULL;
    size_t events = 0;
    for (store_batch_t *b = list; b; b = b->next_) {
        if (last && events + b->n_events > STORE__GROUP_MAX_EVENTS)
            break;
        events += b->n_events;
        last = b;
    }
    if (last) {
        s->head = last->next_;
        if (!s->head)
            s->tail = NULL;
        last->next_ = NULL;
    }
    int failed = s->failed;
    pthread_mutex_unlock(&s->mu);
    if (list && failed) { /* fail-stop: complete without touching the store */
        for (store_batch_t *b = list, *next; b; b = next) {
            next = b->next_;
            b->err = REEL_EUNAVAILABLE;
            store__zdict_batch_free(b);
            b->done(b, b->done_arg);
        }
        return take(s);
    }
    return list;
}

void *store__committer_main(void *arg)
{
    store_t *s = arg;
    store_batch_t *list;
    while ((list = take(s)) || s->zd_new)
        run_group(s, list);
    return NULL;
}
