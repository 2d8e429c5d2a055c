/* load.c -- STORE_OP_LOAD: pre-hashed events, a whole record and change log entries from
 * another copy of a store (store.h "Loading a copy"; the values and keys are those of appends, so the format
 * (docs/FORMAT.md) sees nothing new).
 *
 * Runs inside the committer's group like every other operation (commit.c gives it the
 * group through store__load_ctx_t). Phase 1 checks everything the batch brings against
 * the transaction's view (sequences, positions, the source's chain, event ids, the record)
 * and writes nothing when a check fails, so the batch fails alone; phase 2 writes the
 * events as put_event() in commit.c writes appends (event_ids, seqs, the value with
 * MDB_APPEND), then the record and the change log entries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

static const uint8_t zero_hash[STORE_HASH_LEN];

/* Refuses the batch: REEL_EDAMAGED with 'why' naming the session and sequence. */
static int refuse(store_batch_t *b, uint64_t seq, const char *what)
{
    store_load_t *l = b->load;
    l->bad_sequence = seq;
    if (seq)
        snprintf(l->why, sizeof l->why, "session '%.*s', sequence %llu: %s",
                 (int)(b->session_len > 120 ? 120 : b->session_len), b->session,
                 (unsigned long long)seq, what);
    else
        snprintf(l->why, sizeof l->why, "session '%.*s': %s",
                 (int)(b->session_len > 120 ? 120 : b->session_len), b->session, what);
    return REEL_EDAMAGED;
}

/* The shape of one event's value as given: flags, a redacted body's kept hash. */
static const char *event_shape(const store_load_event_t *ev)
{
    if (!ev->event_id_len || ev->event_id_len > STORE_EVENT_ID_MAX)
        return "event id of a bad length";
    if (ev->body_len < 2 || (ev->body[0] & ~(STORE_FLAG_ZSTD | STORE_FLAG_REDACTED)))
        return "body without a valid flags byte";
    if (ev->body[0] & STORE_FLAG_REDACTED) {
        if (ev->body_len < 2 + STORE_HASH_LEN)
            return "redacted body shorter than its kept hash";
        if (memcmp(ev->body + 1, ev->body_hash, STORE_HASH_LEN))
            return "redacted body whose kept hash is not its body_hash";
    }
    return NULL;
}

/* 1 when an event id occurs twice among 'ev' (a copy never has that). */
static int ids_repeat(const store_load_event_t *ev, size_t n, size_t *at)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    uint32_t *slot = calloc(cap, sizeof *slot); /* index + 1 */
    if (!slot)
        return -1;
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        uint32_t h = 2166136261u;
        for (size_t k = 0; k < ev[i].event_id_len; k++)
            h = (h ^ (uint8_t)ev[i].event_id[k]) * 16777619u;
        for (size_t j = h & (cap - 1);; j = (j + 1) & (cap - 1)) {
            if (!slot[j]) {
                slot[j] = (uint32_t)i + 1;
                break;
            }
            const store_load_event_t *o = &ev[slot[j] - 1];
            if (o->event_id_len == ev[i].event_id_len &&
                !memcmp(o->event_id, ev[i].event_id, o->event_id_len)) {
                found = 1, *at = i;
                break;
            }
        }
    }
    free(slot);
    return found;
}

/* 1 when session 'num' already has event id 'ev' (0: no; -1: an LMDB error in c->mdb_rc). */
static int id_known(store__load_ctx_t *c, uint64_t num, const store_load_event_t *ev)
{
    uint64_t seq;
    int rc = store__id_get(c->s, c->w->txn, num, ev->event_id, ev->event_id_len, &seq);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc ? (c->mdb_rc = rc, -1) : 1;
}

/* Phase 1 for the events: where they start and that the source's chain follows. 'rec' is
 * the session as it is (NULL: the batch creates it). */
static int check_events(store__load_ctx_t *c, store_batch_t *b, const store_session_t *rec)
{
    store_load_t *l = b->load;
    if (!l->n_events)
        return REEL_OK;
    if (rec && rec->status == STORE_DELETED)
        return refuse(b, l->events[0].sequence, "events for a deleted session");
    uint64_t seq = rec ? rec->last_sequence + 1 : l->events[0].sequence;
    if (!seq || (seq == 1 && memcmp(l->src_prev, zero_hash, STORE_HASH_LEN)))
        return refuse(b, seq, "the chain of sequence 1 starts from a hash that is not zeros");
    if (rec && l->keep_positions && memcmp(l->src_prev, rec->last_hash, STORE_HASH_LEN))
        return b->load->bad_sequence = seq, REEL_ECONFLICT;
    const uint8_t *prev = l->src_prev;
    uint64_t pos = *c->position;
    for (size_t i = 0; i < l->n_events; i++, seq++) {
        const store_load_event_t *ev = &l->events[i];
        const char *bad = event_shape(ev);
        if (bad)
            return refuse(b, ev->sequence, bad);
        if (ev->sequence != seq)
            return refuse(b, ev->sequence, rec || i ? "sequence does not follow the last one"
                                                    : "sequence out of order");
        if (l->keep_positions && ev->position <= pos)
            return refuse(b, seq, "position not above the store's last position");
        pos = ev->position;
        uint8_t h[STORE_HASH_LEN];
        if (store__chain(prev, seq, ev->position, ev->time_ms, ev->body_hash, h))
            return REEL_ENOMEM;
        if (memcmp(h, ev->hash, STORE_HASH_LEN))
            return refuse(b, seq, "chain hash does not follow from the previous one");
        prev = ev->hash;
        int known = rec ? id_known(c, rec->num, ev) : 0;
        if (known < 0)
            return REEL_EIO;
        if (known)
            return refuse(b, seq, "event id already in the session");
    }
    size_t at = 0;
    int rep = ids_repeat(l->events, l->n_events, &at);
    if (rep < 0)
        return REEL_ENOMEM;
    return rep ? refuse(b, l->events[at].sequence, "event id given twice") : REEL_OK;
}

/* Phase 1 for the record: its last sequence is where the events leave the session. */
static int check_record(store_batch_t *b, const store_session_t *rec)
{
    const store_load_t *l = b->load;
    const store_session_t *r = l->record;
    if (!r)
        return REEL_OK;
    if (r->status < STORE_ACTIVE || r->status > STORE_DELETED ||
        r->agent_len > STORE_NAME_MAX || r->native_session_id_len > STORE_NAME_MAX ||
        r->model_len > STORE_NAME_MAX)
        return refuse(b, 0, "record with a bad status or name");
    if (r->status == STORE_DELETED)
        return l->n_events || (rec && rec->event_count)
                   ? refuse(b, 0, "deleted record of a session with events")
                   : REEL_OK;
    uint64_t last = rec ? rec->last_sequence : 0;
    if (l->n_events)
        last = l->events[l->n_events - 1].sequence;
    else if (!rec) /* a session trimmed to nothing: no event says where it is */
        last = r->first_sequence ? r->first_sequence - 1 : 0;
    if (r->last_sequence != last)
        return refuse(b, 0, "record's last_sequence is not where its events end");
    if (!rec && !l->n_events && memcmp(r->last_hash, r->first_prev_hash, STORE_HASH_LEN))
        return refuse(b, 0, "record without events whose last_hash is not its first_hash");
    return REEL_OK;
}

/* Phase 2: one event, as put_event() in commit.c writes an append. */
static int put_event(store__load_ctx_t *c, const store_load_t *l, store_session_t *r,
                     store_load_event_t *ev)
{
    store_t *s = c->s;
    uint8_t pkey[8];
    uint64_t had, pos = l->keep_positions ? ev->position : *c->position + 1;
    int rc = store__ix_append(c->w, r->num, ev->sequence, pos, ev->event_id, ev->event_id_len,
                              0, &had);
    if (rc)
        return c->mdb_rc = rc, REEL_EIO; /* phase 1 found no such id: a group failure */
    *c->position = pos;
    if (!l->keep_positions &&
        store__chain(r->last_hash, ev->sequence, pos, ev->time_ms, ev->body_hash, ev->hash))
        return c->mdb_rc = ENOMEM, REEL_ENOMEM;
    ev->position = pos;
    store__put_u64(pkey, pos);
    uint8_t flags = (uint8_t)((ev->body[0] & ~STORE_FLAG_SHORT) | STORE__HEAD_FLAG(s));
    size_t head = store__head_size(flags, r->num, ev->sequence, ev->time_ms);
    size_t blen = ev->body_len - 1, vlen = head + blen;
    MDB_val pk = {8, pkey}, val = {vlen, NULL};
    if ((rc = store__put(c->w, s->db_events, &pk, &val, MDB_APPEND | MDB_RESERVE)))
        return c->mdb_rc = rc, REEL_EIO;
    uint8_t *p = val.mv_data;
    store__head_write(p, flags, r->num, ev->sequence, ev->time_ms, ev->hash);
    memcpy(p + head, ev->body + 1, blen); /* a redacted one: kept hash, body */
    store__reserved(c->w, p, vlen);
    r->last_sequence = ev->sequence;
    r->event_count++;
    r->bytes += vlen;
    r->updated_ms = (int64_t)ev->time_ms;
    if (!r->first_event_ms)
        r->first_event_ms = (int64_t)ev->time_ms;
    memcpy(r->last_hash, ev->hash, STORE_HASH_LEN);
    c->n_events++;
    c->need_bytes += vlen + 128;
    return REEL_OK;
}

/* Phase 2: the record's own fields over the store's counters. */
static void put_record(store_session_t *r, const store_session_t *from, int created_empty)
{
    memcpy(r->agent, from->agent, from->agent_len);
    r->agent[from->agent_len] = 0;
    r->agent_len = from->agent_len;
    memcpy(r->native_session_id, from->native_session_id, from->native_session_id_len);
    r->native_session_id[from->native_session_id_len] = 0;
    r->native_session_id_len = from->native_session_id_len;
    r->status = from->status;
    r->created_ms = from->created_ms;
    r->updated_ms = from->updated_ms;
    r->ended_ms = from->ended_ms;
    r->first_event_ms = from->first_event_ms;
    r->version = from->version;
    r->runs = from->runs;
    memcpy(r->model, from->model, from->model_len);
    r->model[from->model_len] = 0;
    r->model_len = from->model_len;
    r->input_tokens = from->input_tokens, r->output_tokens = from->output_tokens;
    r->cost_nusd = from->cost_nusd, r->turns = from->turns;
    r->retention = from->retention;
    r->metadata = from->metadata; /* the batch's memory: lives until it completes */
    r->metadata_len = from->metadata ? from->metadata_len : 0;
    if (from->status == STORE_DELETED || created_empty) {
        r->last_sequence = from->last_sequence; /* no event here says it */
        memcpy(r->last_hash, from->last_hash, STORE_HASH_LEN);
        r->event_count = 0, r->bytes = 0;
    }
    if (created_empty) {
        r->first_sequence = from->first_sequence ? from->first_sequence : 1;
        memcpy(r->first_prev_hash, from->first_prev_hash, STORE_HASH_LEN);
    }
}

/* Phase 2: the source's change log entries, under their own keys. */
static int put_changes(store__load_ctx_t *c, store_batch_t *b)
{
    store_load_t *l = b->load;
    for (size_t i = 0; i < l->n_changes; i++) {
        const store_load_change_t *ch = &l->changes[i];
        store_session_t rec = *ch->record, *here = NULL;
        int rc = c->sess(c->arg, rec.id, rec.id_len, 0, &here);
        if (rc)
            return rc;
        /* A session that is not here (purged) had a number this store never gives:
         * a change's record must carry one (it is checked against the change's head). */
        rec.num = here ? here->num : UINT64_MAX;
        rc = store__change_put_at(c->w, c->chlog, ch->position, ch->index, ch->kind,
                                  ch->time_ms, &rec);
        if (rc == EINVAL) /* checked before anything was written (check_changes) */
            return c->mdb_rc = rc, REEL_EIO;
        if (rc)
            return c->mdb_rc = rc, rc == ENOMEM ? REEL_ENOMEM : REEL_EIO;
        c->need_bytes += 256 + rec.id_len + rec.metadata_len;
    }
    return REEL_OK;
}

/* Phase 1 for the change log entries: keys increasing (the log's own order is checked
 * against its last key when written: a batch after another one's entries). */
static int check_changes(store_batch_t *b)
{
    const store_load_t *l = b->load;
    if (l->n_changes && !l->keep_positions)
        return REEL_EINVALID_PARAMETER;
    for (size_t i = 0; i < l->n_changes; i++) {
        const store_load_change_t *ch = &l->changes[i];
        if (!ch->record || !ch->index || !store_session_id_valid(ch->record->id, ch->record->id_len))
            return refuse(b, 0, "change log entry without a record, index or valid id");
        if (i && (ch->position < l->changes[i - 1].position ||
                  (ch->position == l->changes[i - 1].position &&
                   ch->index <= l->changes[i - 1].index)))
            return refuse(b, 0, "change log entries out of order");
    }
    return REEL_OK;
}

int store__load_apply(store__load_ctx_t *c, store_batch_t *b)
{
    store_load_t *l = b->load;
    if (!l)
        return REEL_EINVALID_PARAMETER;
    l->bad_sequence = 0;
    l->why[0] = 0;
    int rc = check_changes(b);
    if (!rc && l->n_changes) {
        int m = store__change_last(c->s, c->w->txn, c->chlog);
        if (m)
            return c->mdb_rc = m, REEL_EIO;
        const store_load_change_t *f = &l->changes[0];
        if (f->position < c->chlog->pos ||
            (f->position == c->chlog->pos && f->index <= c->chlog->index))
            rc = refuse(b, 0, "change log entries not after the log's last one");
    }
    store_session_t *rec = NULL;
    int touches = l->n_events || l->record;
    if (!rc && touches)
        rc = c->sess(c->arg, b->session, b->session_len, 0, &rec);
    if (!rc)
        rc = check_events(c, b, rec);
    if (!rc)
        rc = check_record(b, rec);
    if (rc)
        return c->mdb_rc ? REEL_EIO : rc;
    /* Phase 2: nothing below refuses; an error fails the group. */
    int created = touches && !rec;
    if (created) {
        if ((rc = c->sess(c->arg, b->session, b->session_len, 1, &rec)))
            return rc;
        uint64_t first = l->n_events ? l->events[0].sequence : 1;
        rec->first_sequence = first;
        rec->last_sequence = first - 1;
        memcpy(rec->first_prev_hash, l->src_prev, STORE_HASH_LEN);
        memcpy(rec->last_hash, l->src_prev, STORE_HASH_LEN);
    }
    for (size_t i = 0; i < l->n_events && !rc; i++)
        rc = put_event(c, l, rec, &l->events[i]);
    if (!rc && l->record)
        put_record(rec, l->record, created && !l->n_events);
    if (!rc && l->n_events && !l->keep_positions) { /* copies: marked with them (copied.c) */
        int m = store__copied_put(c->w, l->events[0].position,
                                  l->events[l->n_events - 1].position);
        if (m)
            rc = (c->mdb_rc = m, m == ENOMEM ? REEL_ENOMEM : REEL_EIO);
    }
    if (!rc && l->record && !l->keep_positions) {
        rc = store__change_put(c->w, c->chlog, *c->position, STORE_CHANGE_PUT,
                               c->now_ms, rec);
        if (rc)
            rc = (c->mdb_rc = rc, rc == ENOMEM ? REEL_ENOMEM : REEL_EIO);
    }
    if (!rc)
        rc = put_changes(c, b);
    if (!rc && l->keep_positions && l->min_last_position > *c->position)
        *c->position = l->min_last_position;
    if (!rc && rec) {
        b->last_sequence = rec->last_sequence;
        b->first_sequence = l->n_events ? l->events[0].sequence : rec->last_sequence;
        b->position = l->n_events ? l->events[l->n_events - 1].position : 0;
        b->version = rec->version;
    }
    return rc;
}

int store_event_kept_hash(const store_event_view_t *ev, uint8_t out[STORE_HASH_LEN])
{
    if (!ev->redacted || !ev->kept_hash_)
        return REEL_ENOT_FOUND;
    memcpy(out, ev->kept_hash_, STORE_HASH_LEN);
    return REEL_OK;
}
