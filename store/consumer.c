/* consumer.c -- durable consumers: the 'consumers' database (format 4, docs/FORMAT.md
 * section 12), the record codec, and the decisions of each change (leases, fencing
 * tokens, acknowledgements), made inside the committer's write transaction.
 *
 * Key: one kind byte ('c' a consumer, 's' a raw record of api/ds/'s subscriptions), then
 * the name. Value of a consumer: a msgpack map (record_encode() below lists the keys).
 * Leases use the wall clock of the transaction (store_wall_ms()): the clock that event
 * times come from, and the only one that means the same after a restart.
 */
#include <errno.h>
#include <string.h>

#include "store/json.h"
#include "store/store_int.h"

#define KIND_CONSUMER 'c'
#define KIND_RAW 's'
#define KEY_MAX (1 + STORE_CONSUMER_NAME_MAX)

int store_consumer_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > STORE_CONSUMER_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

static size_t make_key(uint8_t key[KEY_MAX], int kind, const char *name, size_t len)
{
    if (len == 0 || len > STORE_CONSUMER_NAME_MAX)
        return 0;
    key[0] = (uint8_t)kind;
    memcpy(key + 1, name, len);
    return 1 + len;
}

int store__consumers_open(store_t *s, MDB_txn *txn)
{
    int rc = mdb_dbi_open(txn, "consumers", 0, &s->db_consumers);
    atomic_store(&s->has_consumers, rc == MDB_SUCCESS);
    return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* ---- the record ---- */

static void record_encode(const store_consumer_t *c, store_buf_t *out)
{
    store_mp_map(out, 11);
    store_mp_str(out, "feed", 4);
    store_mp_bool(out, c->feed);
    store_mp_str(out, "session", 7);
    store_mp_str(out, c->session, c->session_len);
    store_mp_str(out, "types", 5);
    store_mp_str(out, c->types, strlen(c->types));
    store_mp_str(out, "acked", 5);
    store_mp_uint(out, c->acked);
    store_mp_str(out, "acks", 4);
    store_mp_uint(out, c->acks);
    store_mp_str(out, "token", 5);
    store_mp_uint(out, c->token);
    store_mp_str(out, "owner", 5);
    store_mp_str(out, c->owner, c->owner_len);
    store_mp_str(out, "lease_until", 11);
    store_mp_uint(out, c->lease_until_ms);
    store_mp_str(out, "takeovers", 9);
    store_mp_uint(out, c->takeovers);
    store_mp_str(out, "created", 7);
    store_mp_uint(out, c->created_ms);
    store_mp_str(out, "acked_at", 8);
    store_mp_uint(out, c->acked_ms);
}

static int key_is(const store_mp_obj_t *k, const char *name)
{
    return k->len == strlen(name) && !memcmp(k->ptr, name, k->len);
}

static int str_field(const store_mp_obj_t *v, char *dst, size_t cap, size_t *len)
{
    if (v->type != STORE_MP_STR || v->len > cap)
        return REEL_ECORRUPT;
    memcpy(dst, v->ptr, v->len);
    dst[v->len] = '\0';
    if (len)
        *len = v->len;
    return REEL_OK;
}

/* One key of the map; unknown keys are skipped (a later version may add some). */
static int record_field(store_consumer_t *c, const store_mp_obj_t *k, const store_mp_obj_t *v)
{
    if (key_is(k, "feed"))
        return v->type == STORE_MP_BOOL ? (c->feed = (int)v->u, REEL_OK) : REEL_ECORRUPT;
    if (key_is(k, "session"))
        return str_field(v, c->session, STORE_SESSION_ID_MAX, &c->session_len);
    if (key_is(k, "types"))
        return str_field(v, c->types, STORE_CONSUMER_TYPES_MAX, NULL);
    if (key_is(k, "owner"))
        return str_field(v, c->owner, STORE_CONSUMER_OWNER_MAX, &c->owner_len);
    uint64_t *u = key_is(k, "acked") ? &c->acked : key_is(k, "acks") ? &c->acks
                : key_is(k, "token") ? &c->token : key_is(k, "lease_until") ? &c->lease_until_ms
                : key_is(k, "takeovers") ? &c->takeovers : key_is(k, "created") ? &c->created_ms
                : key_is(k, "acked_at") ? &c->acked_ms : NULL;
    if (!u)
        return REEL_OK;
    if (v->type != STORE_MP_UINT)
        return REEL_ECORRUPT;
    *u = v->u;
    return REEL_OK;
}

static int record_decode(const uint8_t *p, size_t len, const uint8_t *key, size_t key_len,
                         store_consumer_t *c)
{
    memset(c, 0, sizeof *c);
    if (key_len < 2 || key_len > KEY_MAX)
        return REEL_ECORRUPT;
    memcpy(c->name, key + 1, key_len - 1);
    c->name_len = key_len - 1;
    store_mp_t m = {p, p + len};
    store_mp_obj_t o, k, v;
    int rc = store_mp_next(&m, &o);
    if (rc || o.type != STORE_MP_MAP)
        return REEL_ECORRUPT;
    for (uint64_t i = 0; i < o.u; i++) {
        if (store_mp_next(&m, &k) || k.type != STORE_MP_STR)
            return REEL_ECORRUPT;
        const uint8_t *at = m.p;
        if ((rc = store_mp_next(&m, &v)))
            return rc;
        if (v.type == STORE_MP_ARRAY || v.type == STORE_MP_MAP) { /* not ours: skip it */
            m.p = at;
            if ((rc = store_mp_skip(&m, 8)))
                return rc;
            continue;
        }
        if ((rc = record_field(c, &k, &v)))
            return rc;
    }
    if (!c->feed && !store_session_id_valid(c->session, c->session_len))
        return REEL_ECORRUPT;
    return REEL_OK;
}

/* ---- decisions (pure: 'c' is the stored record, changed in place) ---- */

static int same_definition(const store_consumer_t *a, const store_consumer_t *b)
{
    return a->feed == b->feed && a->session_len == b->session_len &&
           !memcmp(a->session, b->session, a->session_len) && !strcmp(a->types, b->types);
}

static int lease_live(const store_consumer_t *c, uint64_t now)
{
    return c->token && c->owner_len && now < c->lease_until_ms;
}

static int decide_lease(store_consumer_t *c, const store_consumer_req_t *q, uint64_t now)
{
    if (q->ttl_ms == 0 || q->ttl_ms > STORE_CONSUMER_TTL_MAX || q->rec.owner_len == 0 ||
        q->rec.owner_len > STORE_CONSUMER_OWNER_MAX)
        return REEL_EINVALID_PARAMETER;
    int mine = c->owner_len == q->rec.owner_len &&
               !memcmp(c->owner, q->rec.owner, c->owner_len);
    if (lease_live(c, now) && !mine)
        return REEL_ELEASE_HELD;
    if (!(lease_live(c, now) && mine && q->token == c->token)) {
        /* A new owner (or a restarted one): a larger token fences every earlier holder. */
        if (c->owner_len && c->lease_until_ms && now >= c->lease_until_ms)
            c->takeovers++;
        c->token++;
        memcpy(c->owner, q->rec.owner, q->rec.owner_len);
        c->owner[q->rec.owner_len] = '\0';
        c->owner_len = q->rec.owner_len;
    }
    c->lease_until_ms = now + q->ttl_ms;
    return REEL_OK;
}

static int decide_ack(store_consumer_t *c, const store_consumer_req_t *q, uint64_t now,
                      uint64_t tail)
{
    if (q->token != c->token || !lease_live(c, now))
        return REEL_ESTALE_TOKEN;
    if (q->position > tail)
        return REEL_EINVALID_PARAMETER;
    if (q->position < c->acked)
        return REEL_ECONFLICT;
    if (q->position > c->acked) {
        c->acked = q->position;
        c->acks++;
        c->acked_ms = now;
    }
    return REEL_OK;
}

static int decide_create(store_consumer_t *c, store_consumer_req_t *q, uint64_t now)
{
    if (!q->rec.feed && !store_session_id_valid(q->rec.session, q->rec.session_len))
        return REEL_EINVALID_SESSION_ID;
    *c = (store_consumer_t){.feed = q->rec.feed, .session_len = q->rec.session_len};
    memcpy(c->name, q->rec.name, q->rec.name_len);
    c->name_len = q->rec.name_len;
    memcpy(c->session, q->rec.session, q->rec.session_len);
    memcpy(c->types, q->rec.types, sizeof c->types);
    c->types[STORE_CONSUMER_TYPES_MAX] = '\0';
    c->created_ms = now;
    q->created = 1;
    return REEL_OK;
}

/* LEASE, ACK, RELEASE on an existing consumer; 'end' is where an ACK may go up to. */
static int decide_lease_op(store_consumer_t *c, const store_consumer_req_t *q, uint64_t now,
                           uint64_t end)
{
    switch (q->op) {
    case STORE_CONSUMER_LEASE:
        return decide_lease(c, q, now);
    case STORE_CONSUMER_ACK:
        return decide_ack(c, q, now, end);
    case STORE_CONSUMER_RELEASE:
        if (q->token != c->token || !lease_live(c, now))
            return REEL_ESTALE_TOKEN;
        c->lease_until_ms = 0;
        return REEL_OK;
    default:
        return REEL_EINVALID_PARAMETER;
    }
}

/* ---- the committer's part ---- */

static int ensure_db(store__wg_t *w, int *made)
{
    store_t *s = w->s;
    if (atomic_load(&s->has_consumers) || *made)
        return 0;
    int rc = store__create(w, "consumers", &s->db_consumers);
    if (rc == 0)
        *made = 1;
    return rc;
}

static int apply_raw(store__wg_t *w, store_consumer_req_t *q, int *mdb_rc)
{
    store_t *s = w->s;
    MDB_txn *txn = w->txn;
    uint8_t key[KEY_MAX];
    MDB_val k = {make_key(key, KIND_RAW, q->rec.name, q->rec.name_len), key}, v;
    if (!k.mv_size)
        return REEL_EINVALID_PARAMETER;
    int rc = mdb_get(txn, s->db_consumers, &k, &v);
    if (rc && rc != MDB_NOTFOUND)
        return *mdb_rc = rc, REEL_EIO;
    if (q->check) {
        size_t have = rc ? 0 : v.mv_size;
        if (have != q->expected_len || (have && memcmp(v.mv_data, q->expected, have)))
            return REEL_ECONFLICT;
    }
    if (q->value_len == 0)
        rc = rc ? 0 : store__del(w, s->db_consumers, &k, NULL);
    else
        rc = store__put(w, s->db_consumers, &k, &(MDB_val){q->value_len, (void *)q->value}, 0);
    return rc ? (*mdb_rc = rc, REEL_EIO) : REEL_OK;
}

int store__consumer_apply(store__wg_t *w, store_consumer_req_t *q, uint64_t now_ms,
                          uint64_t tail, store__last_seq_fn last_seq, void *arg, int *mdb_rc,
                          int *made)
{
    store_t *s = w->s;
    MDB_txn *txn = w->txn;
    q->now_ms = now_ms;
    if (q->op == STORE_CONSUMER_SYNC)
        return REEL_OK;
    int rc = ensure_db(w, made);
    if (rc)
        return *mdb_rc = rc, REEL_EIO;
    if (q->op == STORE_CONSUMER_PUT_RAW)
        return apply_raw(w, q, mdb_rc);
    if (!store_consumer_name_valid(q->rec.name, q->rec.name_len))
        return REEL_EINVALID_PARAMETER;
    uint8_t key[KEY_MAX];
    MDB_val k = {make_key(key, KIND_CONSUMER, q->rec.name, q->rec.name_len), key}, v;
    rc = mdb_get(txn, s->db_consumers, &k, &v);
    if (rc && rc != MDB_NOTFOUND)
        return *mdb_rc = rc, REEL_EIO;
    int exists = rc == 0;
    store_consumer_t c;
    if (exists && (rc = record_decode(v.mv_data, v.mv_size, key, k.mv_size, &c)))
        return rc;
    if (q->op == STORE_CONSUMER_CREATE) {
        if (exists) {
            int same = same_definition(&c, &q->rec);
            q->rec = c;
            return same ? REEL_OK : REEL_ECONFLICT;
        }
        if ((rc = decide_create(&c, q, now_ms)))
            return rc;
    } else if (!exists) {
        return REEL_ENOT_FOUND;
    } else if (q->op == STORE_CONSUMER_DELETE) {
        q->rec = c;
        rc = store__del(w, s->db_consumers, &k, NULL);
        return rc ? (*mdb_rc = rc, REEL_EIO) : REEL_OK;
    } else {
        uint64_t end = tail;
        if (!c.feed && q->op == STORE_CONSUMER_ACK && (rc = last_seq(arg, c.session,
                                                                     c.session_len, &end)))
            return rc;
        if ((rc = decide_lease_op(&c, q, now_ms, end))) {
            q->rec = c;
            return rc;
        }
    }
    store_buf_t buf = STORE_BUF_INIT;
    record_encode(&c, &buf);
    if (store_buf_failed(&buf)) {
        store_buf_release(&buf);
        return REEL_ENOMEM;
    }
    rc = store__put(w, s->db_consumers, &k, &(MDB_val){buf.len, buf.data}, 0);
    store_buf_release(&buf);
    if (rc)
        return *mdb_rc = rc, REEL_EIO;
    q->rec = c;
    return REEL_OK;
}

/* ---- reads ---- */

static int read_get(store_read_t *r, int kind, const char *name, size_t len, MDB_val *v,
                    uint8_t key[KEY_MAX], size_t *key_len)
{
    store_t *s = r->s;
    if (!atomic_load(&s->has_consumers))
        return REEL_ENOT_FOUND;
    MDB_val k = {make_key(key, kind, name, len), key};
    if (!k.mv_size)
        return REEL_ENOT_FOUND;
    *key_len = k.mv_size;
    int rc = mdb_get((MDB_txn *)r->txn_, s->db_consumers, &k, v);
    /* EINVAL: the database was made after this read began (its handle is newer). */
    if (rc == MDB_NOTFOUND || rc == EINVAL)
        return REEL_ENOT_FOUND;
    return rc ? store__err_from_mdb(rc) : REEL_OK;
}

int store_consumer_get(store_read_t *r, const char *name, size_t len, store_consumer_t *out)
{
    uint8_t key[KEY_MAX];
    size_t key_len = 0;
    MDB_val v;
    int rc = read_get(r, KIND_CONSUMER, name, len, &v, key, &key_len);
    return rc ? rc : record_decode(v.mv_data, v.mv_size, key, key_len, out);
}

int store_consumer_raw_get(store_read_t *r, const char *name, size_t len, const uint8_t **val,
                           size_t *val_len)
{
    uint8_t key[KEY_MAX];
    size_t key_len = 0;
    MDB_val v;
    int rc = read_get(r, KIND_RAW, name, len, &v, key, &key_len);
    if (rc == REEL_OK) {
        *val = v.mv_data;
        *val_len = v.mv_size;
    }
    return rc;
}

/* Walks the keys of one kind; 'each' gets key and value. */
static int walk(store_read_t *r, int kind, int (*each)(void *, MDB_val *, MDB_val *), void *arg)
{
    store_t *s = r->s;
    if (!atomic_load(&s->has_consumers))
        return REEL_OK;
    MDB_cursor *c;
    int rc = mdb_cursor_open((MDB_txn *)r->txn_, s->db_consumers, &c);
    if (rc == EINVAL)
        return REEL_OK;
    if (rc)
        return store__err_from_mdb(rc);
    store__cursor_push(r, c);
    uint8_t first = (uint8_t)kind;
    MDB_val k = {1, &first}, v;
    int ret = REEL_OK;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 1 || ((const uint8_t *)k.mv_data)[0] != kind)
            break;
        if ((ret = each(arg, &k, &v)))
            break;
    }
    if (!ret && rc && rc != MDB_NOTFOUND)
        ret = store__err_from_mdb(rc);
    store__cursor_close(r, c);
    return ret;
}

struct list_arg {
    store_consumer_cb cb;
    store_consumer_raw_cb raw;
    void *arg;
};

static int list_one(void *p, MDB_val *k, MDB_val *v)
{
    struct list_arg *a = p;
    store_consumer_t c;
    int rc = record_decode(v->mv_data, v->mv_size, k->mv_data, k->mv_size, &c);
    return rc ? rc : a->cb(a->arg, &c);
}

static int raw_one(void *p, MDB_val *k, MDB_val *v)
{
    struct list_arg *a = p;
    return a->raw(a->arg, (const char *)k->mv_data + 1, k->mv_size - 1, v->mv_data, v->mv_size);
}

int store_consumer_list(store_read_t *r, store_consumer_cb cb, void *arg)
{
    struct list_arg a = {cb, NULL, arg};
    return walk(r, KIND_CONSUMER, list_one, &a);
}

int store_consumer_raw_list(store_read_t *r, store_consumer_raw_cb cb, void *arg)
{
    struct list_arg a = {NULL, cb, arg};
    return walk(r, KIND_RAW, raw_one, &a);
}

uint64_t store_consumer_tail(store_read_t *r, const store_consumer_t *c)
{
    uint64_t tail = 0;
    store_session_t rec;
    if (c->feed)
        store_tail_position(r, &tail);
    else if (store_session_get(r, c->session, c->session_len, &rec) == REEL_OK &&
             rec.status != STORE_DELETED)
        tail = rec.last_sequence;
    return tail;
}
