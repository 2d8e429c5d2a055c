/* ingest.c -- JSON events -> validated, encoded store events (contract in ingest.h). */
#include "ingest/ingest.h"
#include "store/parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* 'client_time' as the client gave it: absent, Unix ms, or RFC 3339 text. */
struct client_time {
    int kind; /* CT_NONE, CT_MS, CT_TEXT */
    uint64_t ms;
    const char *text; /* CT_TEXT, while parsing: an offset into ib->str (see parse_event) */
    size_t off, len;
};
enum { CT_NONE, CT_MS, CT_TEXT };

enum { OFF_ID, OFF_ID_LEN, OFF_BODY, OFF_BODY_LEN, OFF_NSID, OFF_NSID_LEN, OFF_MODEL,
       OFF_MODEL_LEN, OFF_N };

/* The fields of one event while it is parsed; strings are offsets into ib->str. */
struct fields {
    size_t type, type_len, id, id_len, source, source_len, nsid, nsid_len;
    int has_type, has_id, has_source, has_nsid, has_synthetic, has_data, has_raw, has_red;
    int has_redacted, redacted; /* 'redacted': true (an export of a redacted event) */
    int synthetic; /* -1 = null */
    struct client_time ct;
    int has_ct;
};

int ingest_batch_init(ingest_batch_t *ib, const char *session, size_t session_len)
{
    memset(ib, 0, sizeof *ib);
    if (!store_session_id_valid(session, session_len))
        return REEL_EINVALID_SESSION_ID;
    memcpy(ib->session, session, session_len);
    store_batch_init(&ib->b, STORE_OP_APPEND, ib->session, session_len);
    return REEL_OK;
}

void ingest_batch_release(ingest_batch_t *ib)
{
    free(ib->events);
    free(ib->offsets);
    store_buf_release(&ib->arena);
    store_buf_release(&ib->body);
    store_buf_release(&ib->data);
    store_buf_release(&ib->raw);
    store_buf_release(&ib->str);
    store_buf_release(&ib->rdata);
    store_buf_release(&ib->rraw);
    store_buf_release(&ib->rprior);
    ib->events = NULL;
    ib->offsets = NULL;
    ib->b.n_events = 0;
}

static int fail(ingest_error_t *e, int err, size_t index, size_t line, size_t col,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int fail(ingest_error_t *e, int err, size_t index, size_t line, size_t col,
                const char *fmt, ...)
{
    if (!e)
        return err;
    e->err = err;
    e->index = index;
    e->line = line;
    e->column = col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    return err;
}

/* ---- event ids ---- */

static uint64_t next_random(void)
{
    static __thread uint64_t state;
    static __thread int seeded;
    if (!seeded) {
        if (getrandom(&state, sizeof state, 0) != sizeof state)
            state = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&state;
        seeded = 1;
    }
    uint64_t z = (state += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Monotonic within a thread (RFC 9562 section 6.2, method 2): in the same millisecond the
 * 74 random bits of the previous id plus one, so the ids one thread makes sort in the order
 * it made them. Their 'event_ids' keys then go at the end of the tree and fill its pages
 * (random ids split pages in half: 40 % more index bytes, issue 19). */
void ingest_uuid7(char out[37])
{
    static __thread uint64_t last_ms, last_a, last_b;
    uint64_t ms = store_wall_ms();
    uint64_t a, b;
    if (ms <= last_ms) {
        ms = last_ms;
        a = last_a, b = (last_b + 1) & 0x3fffffffffffffffull;
        if (!b && !(a = (a + 1) & 0xfff))
            ms++; /* 2^74 ids in one millisecond: borrow the next one */
    } else {
        a = next_random() & 0xfff, b = next_random() & 0x3fffffffffffffffull;
        b >>= 1; /* room to count up before the random bits overflow */
    }
    last_ms = ms, last_a = a, last_b = b;
    uint8_t u[16];
    for (int i = 0; i < 6; i++)
        u[i] = (uint8_t)(ms >> (40 - 8 * i));
    u[6] = (uint8_t)(0x70 | (a >> 8));
    u[7] = (uint8_t)a;
    u[8] = (uint8_t)(0x80 | (b >> 56));
    for (int i = 9; i < 16; i++)
        u[i] = (uint8_t)(b >> (8 * (15 - i)));
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[u[i] >> 4];
        *p++ = hex[u[i] & 15];
    }
    *p = 0;
}

/* ---- adding one encoded event ---- */

static int grow_events(ingest_batch_t *ib)
{
    if (ib->b.n_events < ib->cap)
        return REEL_OK;
    size_t cap = ib->cap ? ib->cap * 2 : 16;
    store_event_t *ev = realloc(ib->events, cap * sizeof *ev);
    if (!ev)
        return REEL_ENOMEM;
    ib->events = ev;
    size_t *off = realloc(ib->offsets, cap * OFF_N * sizeof *off);
    if (!off)
        return REEL_ENOMEM;
    ib->offsets = off;
    ib->cap = cap;
    return REEL_OK;
}

static size_t arena_put(ingest_batch_t *ib, const void *p, size_t n)
{
    size_t at = ib->arena.len;
    store_buf_put(&ib->arena, p, n);
    return at;
}

/* The record of an event's redactions, the body's 9th field: {"count":N,"kinds":[...]},
 * the kinds of 'prior' (an imported event's record, msgpack, may be NULL) first, then
 * those of 'seen' not in it. */
static void redactions_record(store_buf_t *b, const ingest_redactor_t *r, size_t count,
                              uint64_t seen, const store_buf_t *prior)
{
    const char *names[128];
    size_t lens[128], n = 0;
    uint64_t prior_count = 0;
    if (prior && prior->len) { /* validated by redactions_field() */
        store_mp_t m = {prior->data, prior->data + prior->len};
        store_mp_obj_t o, k, v;
        store_mp_next(&m, &o);
        for (uint64_t i = 0; i < o.u; i++) {
            store_mp_next(&m, &k);
            if (k.len == 5 && !memcmp(k.ptr, "count", 5)) {
                store_mp_next(&m, &v);
                prior_count = v.u;
            } else {
                store_mp_next(&m, &v);
                for (uint64_t j = 0; j < v.u; j++) {
                    store_mp_obj_t s;
                    store_mp_next(&m, &s);
                    if (n < 128)
                        names[n] = (const char *)s.ptr, lens[n++] = s.len;
                }
            }
        }
    }
    for (int kind = 0; kind < 64 && n < 128; kind++) {
        if (!(seen >> kind & 1))
            continue;
        const char *name = ingest_redact_kind(r, kind);
        size_t len = strlen(name), j = 0;
        while (j < n && !(lens[j] == len && !memcmp(names[j], name, len)))
            j++;
        if (j == n)
            names[n] = name, lens[n++] = len;
    }
    store_mp_map(b, 2);
    store_mp_str(b, "count", 5);
    store_mp_uint(b, prior_count + count);
    store_mp_str(b, "kinds", 5);
    store_mp_array(b, (uint32_t)n);
    for (size_t j = 0; j < n; j++)
        store_mp_str(b, names[j], lens[j]);
}

/* Marks the body just encoded at 'off' as redacted with 'hash', its own, as the kept hash
 * (an import re-chains on the redacted body: docs/FORMAT.md section 11). */
static int mark_redacted(ingest_batch_t *ib, size_t off, const uint8_t hash[STORE_HASH_LEN])
{
    store_buf_t *a = &ib->arena;
    size_t n = a->len - off;
    if (store_buf_reserve(a, STORE_HASH_LEN))
        return REEL_ENOMEM;
    memmove(a->data + off + 1 + STORE_HASH_LEN, a->data + off + 1, n - 1);
    memcpy(a->data + off + 1, hash, STORE_HASH_LEN);
    a->data[off] |= STORE_FLAG_REDACTED;
    a->len += STORE_HASH_LEN;
    return REEL_OK;
}

/* ---- the usage summary (docs/FORMAT.md section 16) ---- */

/* A JSON number's value as a double: msgpack ints, floats, or the text of a number kept
 * exactly (STORE_MP_EXT_NUMBER). 0 when it is not a number. */
static double mp_number(const store_mp_obj_t *v)
{
    if (v->type == STORE_MP_UINT)
        return (double)v->u;
    if (v->type == STORE_MP_INT)
        return (double)v->i;
    if (v->type == STORE_MP_FLOAT)
        return v->f;
    if (v->type == STORE_MP_EXT && v->ext == STORE_MP_EXT_NUMBER && v->len < 64) {
        char num[64];
        memcpy(num, v->ptr, v->len);
        num[v->len] = 0;
        return strtod(num, NULL);
    }
    return 0;
}

/* A count (tokens): a whole non-negative number below 2^63, else 0. */
static uint64_t mp_count(const store_mp_obj_t *v)
{
    double x = mp_number(v);
    return x > 0 && x < 9.2e18 ? (uint64_t)x : 0;
}

#define KEY_IS(k, name) ((k).len == sizeof name - 1 && !memcmp((k).ptr, name, sizeof name - 1))

/* Reads what a "usage" event adds (input_tokens, output_tokens, cost_usd, turn_end) or
 * the model a "session.started" names, from the top level of its 'data' map, into 'u'
 * and, for the model, 'model'/'model_len' (borrowed from 'data'). The same fields
 * replay/project.c sums for the transcript (docs/AGENTS.md, the usage event); anything
 * else, or a malformed map, adds nothing. */
static void usage_of(const char *type, size_t type_len, const store_buf_t *data,
                     store_usage_t *u, const char **model, size_t *model_len)
{
    int usage = type_len == 5 && !memcmp(type, "usage", 5);
    int started = type_len == 15 && !memcmp(type, "session.started", 15);
    store_mp_t m = {data ? data->data : NULL, data ? data->data + data->len : NULL};
    store_mp_obj_t o, k, v;
    if ((!usage && !started) || !data || !data->len || store_mp_next(&m, &o) ||
        o.type != STORE_MP_MAP)
        return;
    for (uint64_t i = 0; i < o.u; i++) {
        if (store_mp_next(&m, &k) || k.type != STORE_MP_STR)
            return;
        const uint8_t *start = m.p;
        if (store_mp_next(&m, &v))
            return;
        if (v.type == STORE_MP_ARRAY || v.type == STORE_MP_MAP) {
            m.p = start;
            if (store_mp_skip(&m, STORE_JSON_MAX_DEPTH))
                return;
            continue;
        }
        if (started && KEY_IS(k, "model") && v.type == STORE_MP_STR && v.len &&
            v.len <= STORE_NAME_MAX)
            *model = (const char *)v.ptr, *model_len = v.len;
        else if (usage && KEY_IS(k, "input_tokens"))
            u->input_tokens = mp_count(&v);
        else if (usage && KEY_IS(k, "output_tokens"))
            u->output_tokens = mp_count(&v);
        else if (usage && KEY_IS(k, "cost_usd")) {
            double c = mp_number(&v) * 1e9; /* nano-USD, rounded */
            u->cost_nusd = c > 0 && c < 9.2e18 ? (uint64_t)(c + 0.5) : 0;
        } else if (usage && KEY_IS(k, "turn_end"))
            u->turns = v.type == STORE_MP_BOOL && v.u;
    }
}

/* Builds the body array from the parts, redacts 'data' and 'raw' (ingest_redact_current),
 * encodes the body, and appends the event. 'prior': the redactions record the event came
 * with (an import), or NULL. */
static int add_encoded(ingest_batch_t *ib, const char *id, size_t id_len, const char *type,
                       size_t type_len, const char *source, size_t source_len, int synthetic,
                       const char *nsid, size_t nsid_len, const store_buf_t *data,
                       const store_buf_t *raw, const struct client_time *ct,
                       const store_buf_t *prior, int redacted)
{
    char gen[37];
    const ingest_redactor_t *r = ingest_redact_current();
    uint64_t seen = 0;
    size_t count = 0;
    if (r && data && data->len) {
        size_t k = ingest_redact_mp(r, data->data, data->len, &ib->rdata, &seen);
        if (store_buf_failed(&ib->rdata))
            return REEL_ENOMEM;
        if (k)
            count += k, data = &ib->rdata;
    }
    if (r && raw && raw->len) {
        size_t k = ingest_redact_mp(r, raw->data, raw->len, &ib->rraw, &seen);
        if (store_buf_failed(&ib->rraw))
            return REEL_ENOMEM;
        if (k)
            count += k, raw = &ib->rraw;
    }
    int record = count || (prior && prior->len);
    if (!id) {
        ingest_uuid7(gen);
        id = gen, id_len = 36;
    }
    store_buf_t *b = &ib->body;
    store_buf_clear(b);
    store_mp_array(b, record ? 9 : 8);
    store_mp_str(b, id, id_len);
    store_mp_str(b, type, type_len);
    if (source)
        store_mp_str(b, source, source_len);
    else
        store_mp_nil(b);
    if (synthetic < 0)
        store_mp_nil(b);
    else
        store_mp_bool(b, synthetic);
    if (nsid)
        store_mp_str(b, nsid, nsid_len);
    else
        store_mp_nil(b);
    if (data && data->len)
        store_buf_put(b, data->data, data->len);
    else
        store_mp_nil(b);
    if (raw && raw->len)
        store_buf_put(b, raw->data, raw->len);
    else
        store_mp_nil(b);
    if (ct && ct->kind == CT_MS)
        store_mp_uint(b, ct->ms);
    else if (ct && ct->kind == CT_TEXT)
        store_mp_str(b, ct->text, ct->len);
    else
        store_mp_nil(b);
    if (record)
        redactions_record(b, r, count, seen, prior);
    if (store_buf_failed(b) || grow_events(ib))
        return REEL_ENOMEM;

    store_event_t *ev = &ib->events[ib->b.n_events];
    size_t *off = &ib->offsets[ib->b.n_events * OFF_N];
    memset(ev, 0, sizeof *ev);
    ev->new_id = id == gen;
    off[OFF_ID] = arena_put(ib, id, id_len);
    off[OFF_ID_LEN] = id_len;
    off[OFF_NSID] = arena_put(ib, nsid, nsid ? nsid_len : 0);
    off[OFF_NSID_LEN] = nsid ? nsid_len : 0;
    off[OFF_BODY] = ib->arena.len;
    /* store_submit() compresses the body (once, with the store's dictionary if it has
     * one). A redacted body keeps its hash after the flags byte, which store_submit()
     * leaves as it is: that one is compressed here. */
    int rc = redacted ? store_body_encode(b->data, b->len, &ib->arena, ev->body_hash)
                      : store_body_encode_raw(b->data, b->len, &ib->arena, ev->body_hash);
    if (rc || store_buf_failed(&ib->arena))
        return REEL_ENOMEM;
    if (redacted && (rc = mark_redacted(ib, off[OFF_BODY], ev->body_hash)))
        return rc;
    off[OFF_BODY_LEN] = ib->arena.len - off[OFF_BODY];
    ev->ends_session = type_len == 13 && !memcmp(type, "session.ended", 13);
    ev->starts_session = type_len == 15 && !memcmp(type, "session.started", 15);
    const char *model = NULL;
    size_t model_len = 0;
    usage_of(type, type_len, data, &ev->usage, &model, &model_len);
    off[OFF_MODEL] = arena_put(ib, model, model_len); /* 'data' is reused: keep a copy */
    off[OFF_MODEL_LEN] = model_len;
    if (store_buf_failed(&ib->arena))
        return REEL_ENOMEM;
    ib->b.n_events++;
    return REEL_OK;
}

/* Points the events at the arena, which no longer moves once parsing is done. */
static void finalize(ingest_batch_t *ib)
{
    for (size_t i = 0; i < ib->b.n_events; i++) {
        store_event_t *ev = &ib->events[i];
        const size_t *off = &ib->offsets[i * OFF_N];
        const uint8_t *base = ib->arena.data;
        ev->event_id = (const char *)base + off[OFF_ID];
        ev->event_id_len = off[OFF_ID_LEN];
        ev->body = base + off[OFF_BODY];
        ev->body_len = off[OFF_BODY_LEN];
        ev->native_session_id = off[OFF_NSID_LEN] ? (const char *)base + off[OFF_NSID] : NULL;
        ev->native_session_id_len = off[OFF_NSID_LEN];
        ev->usage.model = off[OFF_MODEL_LEN] ? (const char *)base + off[OFF_MODEL] : NULL;
        ev->usage.model_len = off[OFF_MODEL_LEN];
    }
    ib->b.events = ib->events;
}

/* ---- parsing one event object ---- */

/* 1 if 'c' can start a JSON value. */
static int value_start(int c)
{
    return c == '"' || c == '{' || c == '[' || c == 't' || c == 'f' || c == 'n' || c == '-' ||
           (c >= '0' && c <= '9');
}

static const char *kind_of(int c)
{
    switch (c) {
    case '"': return "a string";
    case '{': return "an object";
    case '[': return "an array";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    default: return "a number";
    }
}

struct ctx {
    ingest_batch_t *ib;
    store_json_t *j;
    const ingest_limits_t *lim;
    ingest_error_t *e;
    size_t index;
    size_t line_base; /* NDJSON: the line of this event, else 0 */
};

static int jfail(struct ctx *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int jfail(struct ctx *c, int err, const char *fmt, ...)
{
    store_json_error_t je;
    store_json_error_t *saved = c->j->err;
    c->j->err = &je;
    memset(&je, 0, sizeof je);
    store_json_fail(c->j, err, "x");
    c->j->err = saved;
    char text[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return fail(c->e, err, c->index, c->line_base ? c->line_base : (size_t)je.line,
                (size_t)je.column, "event %zu: %s", c->index, text);
}

/* Converts a store_json error (already recorded in 'je') into the ingest error. */
static int from_json(struct ctx *c, int rc, const store_json_error_t *je)
{
    return fail(c->e, rc, c->index, c->line_base ? c->line_base : (size_t)je->line,
                (size_t)je->column, "event %zu: %s", c->index, je->text);
}

/* A string field or null; 'off'/'len' index ib->str. */
static int str_field(struct ctx *c, const char *name, int nullable, size_t *off, size_t *len,
                     int *present)
{
    int ch = store_json_peek(c->j);
    if (ch == 'n' && nullable) {
        store_buf_t sink = STORE_BUF_INIT;
        int rc = store_json_value(c->j, &sink, 1);
        store_buf_release(&sink);
        return rc;
    }
    if (ch != '"')
        return jfail(c, REEL_EINVALID_EVENT, "field '%s' must be a string%s, not %s", name,
                     nullable ? " or null" : "", kind_of(ch));
    *off = c->ib->str.len;
    int rc = store_json_string(c->j, &c->ib->str);
    if (rc)
        return rc;
    *len = c->ib->str.len - *off;
    *present = 1;
    return REEL_OK;
}

/* A boolean or null field into '*out' (1, 0, or -1 for null). */
static int bool_field(struct ctx *c, const char *name, int *out)
{
    int ch = store_json_peek(c->j);
    if (ch != 't' && ch != 'f' && ch != 'n')
        return jfail(c, REEL_EINVALID_EVENT, "field '%s' must be a boolean, not %s", name,
                     kind_of(ch));
    store_buf_t sink = STORE_BUF_INIT;
    int rc = store_json_value(c->j, &sink, 1);
    *out = ch == 'n' ? -1 : ch == 't';
    store_buf_release(&sink);
    return rc;
}

/* Largest client_time in Unix ms: JavaScript's Date ends there (8.64e15 ms, 275760 AD). */
#define CLIENT_TIME_MAX 8640000000000000ull
#define CT_RULE "Unix ms (an integer 0..8640000000000000) or an RFC 3339 string from 1970"

/* 'client_time': an integer of Unix ms, an RFC 3339 string (store_parse_rfc3339_js), or
 * null (absent). Anything else fails naming the value. */
static int client_time_field(struct ctx *c, struct client_time *ct)
{
    store_json_t *j = c->j;
    int ch = store_json_peek(j);
    if (ch == '"') {
        ct->off = c->ib->str.len;
        int rc = store_json_string(j, &c->ib->str);
        if (rc)
            return rc;
        ct->len = c->ib->str.len - ct->off;
        if (store_buf_failed(&c->ib->str))
            return REEL_ENOMEM;
        /* An empty first string leaves the buffer unallocated (data NULL). */
        const char *t = ct->len ? (const char *)c->ib->str.data + ct->off : "";
        if (store_parse_rfc3339_js(t, ct->len) < 0)
            return jfail(c, REEL_EINVALID_EVENT, "field 'client_time' must be %s, not \"%.*s\"",
                         CT_RULE, (int)(ct->len > 64 ? 64 : ct->len), t);
        ct->kind = CT_TEXT;
        return REEL_OK;
    }
    const char *start = j->p;
    store_buf_t sink = STORE_BUF_INIT;
    int rc = store_json_value(j, &sink, 1);
    store_buf_release(&sink);
    if (rc)
        return rc;
    size_t n = (size_t)(j->p - start);
    if (ch == 'n')
        return REEL_OK; /* null: absent */
    uint64_t v;
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        if (store_parse_u64(start, n, &v) == REEL_OK && v <= CLIENT_TIME_MAX) {
            ct->kind = CT_MS;
            ct->ms = v;
            return REEL_OK;
        }
        return jfail(c, REEL_EINVALID_EVENT, "field 'client_time' must be %s, not %.*s",
                     CT_RULE, (int)(n > 64 ? 64 : n), start);
    }
    return jfail(c, REEL_EINVALID_EVENT, "field 'client_time' must be %s, not %s", CT_RULE,
                 kind_of(ch));
}

/* 'redactions' (an event read back from reel, an import): {"count":N,"kinds":[str...]},
 * kept and added to; null is absent. */
static int redactions_field(struct ctx *c)
{
    store_buf_t *out = &c->ib->rprior;
    store_buf_clear(out);
    int rc = store_json_value(c->j, out, 1);
    if (rc)
        return rc;
    if (store_buf_failed(out))
        return REEL_ENOMEM;
    store_mp_t m = {out->data, out->data + out->len};
    store_mp_obj_t o, k, v;
    if (out->len == 1 && out->data[0] == 0xc0) {
        store_buf_clear(out);
        return REEL_OK;
    }
    int ok = !store_mp_next(&m, &o) && o.type == STORE_MP_MAP && o.u == 2;
    int have_count = 0, have_kinds = 0;
    for (uint64_t i = 0; ok && i < o.u; i++) {
        ok = !store_mp_next(&m, &k) && k.type == STORE_MP_STR && !store_mp_next(&m, &v);
        if (ok && k.len == 5 && !memcmp(k.ptr, "count", 5))
            ok = v.type == STORE_MP_UINT && !have_count++;
        else if (ok && k.len == 5 && !memcmp(k.ptr, "kinds", 5)) {
            ok = v.type == STORE_MP_ARRAY && v.u <= 64 && !have_kinds++;
            for (uint64_t j = 0; ok && j < v.u; j++) {
                store_mp_obj_t sk;
                ok = !store_mp_next(&m, &sk) && sk.type == STORE_MP_STR && sk.len >= 1 &&
                     sk.len <= 64;
            }
        } else
            ok = 0;
    }
    if (!ok)
        return jfail(c, REEL_EINVALID_EVENT,
                     "field 'redactions' must be {\"count\":N,\"kinds\":[up to 64 strings "
                     "of 1..64 bytes]} or null");
    return REEL_OK;
}

static int value_field(struct ctx *c, store_buf_t *out)
{
    store_buf_clear(out);
    return store_json_value(c->j, out, 1);
}

static int field(struct ctx *c, struct fields *f, const char *k, size_t klen)
{
    int *seen = NULL;
    if (!value_start(store_json_peek(c->j))) { /* not JSON at all: let the parser say why */
        store_buf_t sink = STORE_BUF_INIT;
        int rc = store_json_value(c->j, &sink, 1);
        store_buf_release(&sink);
        return rc;
    }
#define KEY(s) (klen == sizeof(s) - 1 && !memcmp(k, s, klen))
    if (KEY("type")) seen = &f->has_type;
    else if (KEY("event_id")) seen = &f->has_id;
    else if (KEY("source")) seen = &f->has_source;
    else if (KEY("native_session_id")) seen = &f->has_nsid;
    else if (KEY("synthetic")) seen = &f->has_synthetic;
    else if (KEY("data")) seen = &f->has_data;
    else if (KEY("raw")) seen = &f->has_raw;
    else if (KEY("client_time")) seen = &f->has_ct;
    else if (KEY("redactions")) seen = &f->has_red;
    else if (KEY("redacted")) seen = &f->has_redacted;
    if (seen && *seen)
        return jfail(c, REEL_EINVALID_EVENT, "duplicate field '%.*s'", (int)klen, k);
    if (KEY("type")) {
        int rc = str_field(c, "type", 0, &f->type, &f->type_len, &f->has_type);
        if (!rc && (f->type_len == 0 || f->type_len > STORE_TYPE_MAX))
            return jfail(c, REEL_EINVALID_EVENT, "field 'type' must be 1..%d bytes, not %zu",
                         STORE_TYPE_MAX, f->type_len);
        return rc;
    }
    if (KEY("event_id")) {
        int rc = str_field(c, "event_id", 0, &f->id, &f->id_len, &f->has_id);
        if (!rc && (f->id_len == 0 || f->id_len > STORE_EVENT_ID_MAX))
            return jfail(c, REEL_EINVALID_EVENT,
                         "field 'event_id' must be 1..%d bytes, not %zu", STORE_EVENT_ID_MAX,
                         f->id_len);
        return rc;
    }
    if (KEY("source")) {
        int dummy = 0, rc = str_field(c, "source", 1, &f->source, &f->source_len, &dummy);
        f->has_source = 1 + dummy; /* 1 = null, 2 = string */
        return rc;
    }
    if (KEY("native_session_id")) {
        int dummy = 0, rc = str_field(c, "native_session_id", 1, &f->nsid, &f->nsid_len, &dummy);
        f->has_nsid = 1 + dummy;
        if (!rc && f->nsid_len > STORE_NAME_MAX)
            return jfail(c, REEL_EINVALID_EVENT,
                         "field 'native_session_id' must be at most %d bytes, not %zu",
                         STORE_NAME_MAX, f->nsid_len);
        return rc;
    }
    if (KEY("synthetic")) {
        f->has_synthetic = 1;
        return bool_field(c, "synthetic", &f->synthetic);
    }
    if (KEY("data")) {
        f->has_data = 1;
        return value_field(c, &c->ib->data);
    }
    if (KEY("raw")) {
        f->has_raw = 1;
        return value_field(c, &c->ib->raw);
    }
    if (KEY("client_time")) {
        f->has_ct = 1;
        return client_time_field(c, &f->ct);
    }
    if (KEY("redactions")) {
        f->has_red = 1;
        return redactions_field(c);
    }
    if (KEY("redacted")) {
        f->has_redacted = 1;
        return bool_field(c, "redacted", &f->redacted);
    }
    if (KEY("session_id") || KEY("sequence") || KEY("position") || KEY("time")) {
        store_buf_t sink = STORE_BUF_INIT; /* assigned by the store: accepted, ignored */
        int rc = store_json_value(c->j, &sink, 1);
        store_buf_release(&sink);
        return rc;
    }
#undef KEY
    return jfail(c, REEL_EINVALID_EVENT, "unknown field '%.*s'", (int)(klen > 64 ? 64 : klen),
                 k);
}

static int parse_fields(struct ctx *c, struct fields *f)
{
    store_json_t *j = c->j;
    store_buf_t key = STORE_BUF_INIT;
    int rc = REEL_OK;
    int first = store_json_peek(j);
    if (first != '{')
        return jfail(c, value_start(first) ? REEL_EINVALID_EVENT : REEL_EINVALID_JSON,
                     "an event must be a JSON object, not %s",
                     first < 0 ? "end of input" : value_start(first) ? kind_of(first)
                                                                     : "invalid JSON");
    j->p++;
    if (store_json_peek(j) == '}') {
        j->p++;
        return REEL_OK;
    }
    for (;;) {
        store_buf_clear(&key);
        if ((rc = store_json_string(j, &key)) || (rc = store_json_expect(j, ':')) ||
            (rc = field(c, f, (const char *)key.data, key.len)))
            break;
        int ch = store_json_peek(j);
        if (ch == '}') {
            j->p++;
            break;
        }
        if ((rc = store_json_expect(j, ',')))
            break;
    }
    store_buf_release(&key);
    return rc;
}

/* Parses one event object at the cursor and adds it. */
static int parse_event(struct ctx *c)
{
    ingest_batch_t *ib = c->ib;
    if (ib->b.n_events >= c->lim->max_batch_events)
        return jfail(c, REEL_ETOO_LARGE, "more than %zu events in one request",
                     c->lim->max_batch_events);
    struct fields f;
    memset(&f, 0, sizeof f);
    f.synthetic = -1;
    store_buf_clear(&ib->str);
    store_buf_clear(&ib->data);
    store_buf_clear(&ib->raw);
    store_buf_clear(&ib->rprior);
    store_json_error_t je;
    store_json_error_t *saved = c->j->err;
    c->j->err = &je;
    memset(&je, 0, sizeof je);
    store_json_peek(c->j);
    const char *start = c->j->p;
    int rc = parse_fields(c, &f);
    c->j->err = saved;
    if (rc)
        return c->e && c->e->err == rc && c->e->text[0] ? rc : from_json(c, rc, &je);
    size_t span = (size_t)(c->j->p - start);
    if (span > c->lim->max_event_bytes)
        return fail(c->e, REEL_ETOO_LARGE, c->index, c->line_base, 0,
                    "event %zu: %zu bytes, more than the limit of %zu", c->index, span,
                    c->lim->max_event_bytes);
    if (!f.has_type)
        return fail(c->e, REEL_EINVALID_EVENT, c->index, c->line_base, 0,
                    "event %zu: field 'type' is required", c->index);
    const char *s = (const char *)ib->str.data;
    f.ct.text = f.ct.kind == CT_TEXT ? s + f.ct.off : NULL;
    return add_encoded(ib, f.has_id ? s + f.id : NULL, f.id_len, s + f.type, f.type_len,
                       f.has_source == 2 ? s + f.source : NULL, f.source_len, f.synthetic,
                       f.has_nsid == 2 ? s + f.nsid : NULL, f.nsid_len,
                       f.has_data ? &ib->data : NULL, f.has_raw ? &ib->raw : NULL, &f.ct,
                       &ib->rprior, f.redacted > 0);
}

static int parse_json(struct ctx *c)
{
    store_json_t *j = c->j;
    int ch = store_json_peek(j);
    if (ch == '{') {
        int rc = parse_event(c);
        return rc ? rc : store_json_end(j) ? jfail(c, REEL_EINVALID_JSON,
                                                   "unexpected data after the event") : 0;
    }
    if (ch < 0)
        return jfail(c, REEL_EINVALID_EVENT, "the request holds no event");
    if (ch != '[')
        return jfail(c, value_start(ch) ? REEL_EINVALID_EVENT : REEL_EINVALID_JSON,
                     "expected an event object or an array of events");
    j->p++;
    if (store_json_peek(j) == ']')
        return jfail(c, REEL_EINVALID_EVENT, "the array holds no event");
    for (;;) {
        int rc = parse_event(c);
        if (rc)
            return rc;
        c->index++;
        ch = store_json_peek(j);
        if (ch == ']') {
            j->p++;
            break;
        }
        if (ch != ',')
            return jfail(c, REEL_EINVALID_JSON, "expected ',' or ']' after an event");
        j->p++;
    }
    return store_json_end(j) ? jfail(c, REEL_EINVALID_JSON, "unexpected data after the array")
                             : REEL_OK;
}

static int parse_ndjson(struct ctx *c, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    size_t line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        line++;
        store_json_t j;
        store_json_init(&j, p, (size_t)(eol - p), c->lim->max_depth, NULL);
        c->j = &j;
        c->line_base = line;
        if (store_json_peek(&j) >= 0) {
            int rc = parse_event(c);
            if (rc)
                return rc;
            if (store_json_end(&j))
                return jfail(c, REEL_EINVALID_JSON, "line %zu: unexpected data after the event",
                             line);
            c->index++;
        }
        p = nl ? nl + 1 : end;
    }
    return REEL_OK;
}

int ingest_parse(ingest_batch_t *ib, const char *text, size_t len, int format,
                 const ingest_limits_t *lim, ingest_error_t *e)
{
    static const ingest_limits_t defaults = INGEST_LIMITS_DEFAULT;
    if (!lim)
        lim = &defaults;
    if (e)
        memset(e, 0, sizeof *e);
    if (!text) /* an empty body: NULL + 0 is undefined */
        text = "", len = 0;
    size_t mark_n = ib->b.n_events, mark_arena = ib->arena.len;
    /* Encoded bodies are about as long as their JSON: reserve once, not by doubling. */
    store_buf_reserve(&ib->arena, len + len / 4 + 64);
    store_json_t j;
    store_json_init(&j, text, len, lim->max_depth, NULL);
    struct ctx c = {ib, &j, lim, e, 0, 0};
    int rc = format == INGEST_NDJSON ? parse_ndjson(&c, text, len) : parse_json(&c);
    if (!rc && ib->b.n_events == mark_n)
        rc = fail(e, REEL_EINVALID_EVENT, 0, 0, 0, "the request holds no event");
    if (!rc && (store_buf_failed(&ib->arena) || store_buf_failed(&ib->str)))
        rc = fail(e, REEL_ENOMEM, c.index, 0, 0, "out of memory");
    if (rc) {
        ib->b.n_events = mark_n;
        ib->arena.len = mark_arena;
        return rc;
    }
    finalize(ib);
    return REEL_OK;
}

int ingest_add(ingest_batch_t *ib, const char *type, const char *source, int synthetic,
               const char *native_session_id, const char *event_id,
               const uint8_t *data_mp, size_t data_len, const char *raw_json, size_t raw_len,
               ingest_error_t *e)
{
    size_t tlen = type ? strlen(type) : 0;
    if (tlen == 0 || tlen > STORE_TYPE_MAX)
        return fail(e, REEL_EINVALID_EVENT, ib->b.n_events, 0, 0,
                    "type must be 1..%d bytes", STORE_TYPE_MAX);
    size_t idlen = event_id ? strlen(event_id) : 0;
    if (event_id && (idlen == 0 || idlen > STORE_EVENT_ID_MAX))
        return fail(e, REEL_EINVALID_EVENT, ib->b.n_events, 0, 0,
                    "event_id must be 1..%d bytes", STORE_EVENT_ID_MAX);
    store_buf_t data = {(uint8_t *)data_mp, data_len, data_len, 0};
    store_buf_clear(&ib->raw);
    if (raw_json) {
        store_json_error_t je;
        int rc = store_json_to_msgpack(raw_json, raw_len, STORE_JSON_MAX_DEPTH, &ib->raw, &je);
        if (rc) /* not JSON: keep the native line as a string */
            store_mp_str(&ib->raw, raw_json, raw_len);
    }
    int rc = add_encoded(ib, event_id, idlen, type, tlen, source, source ? strlen(source) : 0,
                         synthetic, native_session_id,
                         native_session_id ? strlen(native_session_id) : 0,
                         data_mp ? &data : NULL, raw_json ? &ib->raw : NULL, NULL, NULL, 0);
    if (!rc)
        finalize(ib);
    return rc;
}

int ingest_submit(store_t *s, ingest_batch_t *ib, store_done_cb done, void *arg)
{
    finalize(ib);
    ib->b.done = done;
    ib->b.done_arg = arg;
    return store_submit(s, &ib->b);
}

int ingest_append(store_t *s, ingest_batch_t *ib)
{
    finalize(ib);
    return store_append(s, &ib->b);
}

void ingest_usage_of_body(const uint8_t *body, size_t len, store_usage_t *u)
{
    memset(u, 0, sizeof *u);
    store_mp_t m = {body, body + len};
    store_mp_obj_t arr, type;
    if (store_mp_next(&m, &arr) || arr.type != STORE_MP_ARRAY || arr.u < 6 ||
        store_mp_skip(&m, STORE_JSON_MAX_DEPTH) || store_mp_next(&m, &type) ||
        type.type != STORE_MP_STR)
        return;
    for (int i = 2; i < 5; i++) /* source, synthetic, native_session_id */
        if (store_mp_skip(&m, STORE_JSON_MAX_DEPTH))
            return;
    const uint8_t *start = m.p;
    if (store_mp_skip(&m, STORE_JSON_MAX_DEPTH))
        return;
    store_buf_t data = {.data = (uint8_t *)start, .len = (size_t)(m.p - start)};
    const char *model = NULL;
    size_t model_len = 0;
    usage_of((const char *)type.ptr, type.len, &data, u, &model, &model_len);
    u->model = model;
    u->model_len = model_len;
}
