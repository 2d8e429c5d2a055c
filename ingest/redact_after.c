/* redact_after.c -- redaction after the fact: rewrite stored bodies, keep the chain
 * (contract in ingest.h, "Redaction after the fact"; format in docs/FORMAT.md section 11;
 * the user's view in docs/REDACTION.md).
 *
 * A request is planned on a short read: the events of the range are read (their chain
 * checked as on every read), each body's 'data' and 'raw' are rewritten (paths first, then
 * patterns), and every body that changed becomes a store_rewrite_t that carries the
 * SHA-256 of the body it was made from. One STORE_OP_REDACT batch then replaces those
 * bodies and appends the reel.redacted record in one write transaction; the committer
 * refuses it (REEL_ECONFLICT) when a body changed since it was read, and the plan is made
 * again (a concurrent redaction of the same events).
 */
#include "ingest/ingest.h"

#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_SEGS_MAX 32
#define PLAN_TRIES 4

enum { SEG_KEY, SEG_INDEX, SEG_ANY };

struct seg {
    int kind;
    const char *key; /* SEG_KEY: borrowed from the request's path text */
    size_t key_len;
    uint64_t index; /* SEG_INDEX */
};

struct path {
    int root; /* body field: 5 data, 6 raw */
    struct seg segs[PATH_SEGS_MAX];
    size_t n;
};

struct plan {
    const ingest_redact_req_t *q;
    struct path *paths;
    ingest_redactor_t *red; /* NULL: no patterns */
    store_buf_t a, b, c;    /* scratch: one value's rewrites, ping-pong */
    store_buf_t body;       /* the body being rebuilt */
    store_buf_t bodies;     /* encoded new bodies, referenced by offset */
    store_rewrite_t *rw;
    size_t *offs; /* per rewrite: offset of its encoded body in 'bodies' */
    size_t n_rw, cap_rw;
    uint64_t values, path_values;
    uint64_t kinds_seen; /* pattern kinds that matched, bit = kind */
    int err;
    ingest_error_t *e; /* may be NULL */
};

/* ---- paths ---- */

static int path_fail(ingest_error_t *e, const char *text, const char *why)
{
    if (e) {
        e->err = REEL_EINVALID_PARAMETER;
        snprintf(e->text, sizeof e->text, "path '%.120s': %s", text, why);
    }
    return REEL_EINVALID_PARAMETER;
}

/* Parses "data.output", "raw", "data.items[2].text", "data.*.x", "data.list[*]". */
static int path_parse(const char *text, struct path *p, ingest_error_t *e)
{
    const char *s = text;
    memset(p, 0, sizeof *p);
    if (!strncmp(s, "data", 4) && (!s[4] || s[4] == '.' || s[4] == '['))
        p->root = 5, s += 4;
    else if (!strncmp(s, "raw", 3) && (!s[3] || s[3] == '.' || s[3] == '['))
        p->root = 6, s += 3;
    else
        return path_fail(e, text, "must start with 'data' or 'raw'");
    while (*s) {
        if (p->n == PATH_SEGS_MAX)
            return path_fail(e, text, "more than 32 steps");
        struct seg *g = &p->segs[p->n++];
        if (*s == '.') {
            size_t n = strcspn(++s, ".[]");
            if (n == 0)
                return path_fail(e, text, "an empty key (after a '.')");
            if (n == 1 && *s == '*')
                g->kind = SEG_ANY;
            else
                g->kind = SEG_KEY, g->key = s, g->key_len = n;
            s += n;
        } else if (*s == '[') {
            s++;
            if (s[0] == '*' && s[1] == ']') {
                g->kind = SEG_ANY;
                s += 2;
                continue;
            }
            uint64_t v = 0;
            const char *d = s;
            while (*s >= '0' && *s <= '9' && v < UINT32_MAX)
                v = v * 10 + (uint64_t)(*s++ - '0');
            if (s == d || *s != ']')
                return path_fail(e, text, "'[' must hold an index (0, 1, ...) or '*' then ']'");
            g->kind = SEG_INDEX, g->index = v;
            s++;
        } else {
            return path_fail(e, text, "expected '.key' or '[index]'");
        }
    }
    return REEL_OK;
}

/* ---- rewriting one msgpack value ---- */

static const char path_mark[] = "[REDACTED:path]";

/* Copies the value at 'm' verbatim. */
static int copy_value(store_mp_t *m, store_buf_t *out)
{
    const uint8_t *start = m->p;
    if (store_mp_skip(m, STORE_JSON_MAX_DEPTH))
        return REEL_ECORRUPT;
    store_buf_put(out, start, (size_t)(m->p - start));
    return REEL_OK;
}

static int seg_key_matches(const struct seg *g, const store_mp_obj_t *k)
{
    return g->kind == SEG_ANY ||
           (g->kind == SEG_KEY && k->type == STORE_MP_STR && k->len == g->key_len &&
            !memcmp(k->ptr, g->key, g->key_len));
}

/* Copies the value at 'm' into 'out' with what 'p' from step 'd' on names replaced by
 * "[REDACTED:path]"; counts the replacements in '*n'. Recursion depth: the path's steps. */
static int rewrite_at(store_mp_t *m, const struct path *p, size_t d, store_buf_t *out,
                      uint64_t *n)
{
    const uint8_t *start = m->p;
    store_mp_obj_t o;
    if (d == p->n) {
        if (store_mp_next(m, &o))
            return REEL_ECORRUPT;
        m->p = start;
        if (o.type == STORE_MP_NIL || (o.type == STORE_MP_STR && o.len == sizeof path_mark - 1 &&
                                       !memcmp(o.ptr, path_mark, o.len)))
            return copy_value(m, out); /* nothing there, or redacted before: nothing new */
        if (store_mp_skip(m, STORE_JSON_MAX_DEPTH))
            return REEL_ECORRUPT;
        store_mp_str(out, path_mark, sizeof path_mark - 1);
        ++*n;
        return REEL_OK;
    }
    const struct seg *g = &p->segs[d];
    if (store_mp_next(m, &o))
        return REEL_ECORRUPT;
    if (o.type == STORE_MP_MAP && g->kind != SEG_INDEX) {
        store_mp_map(out, (uint32_t)o.u);
        for (uint64_t i = 0; i < o.u; i++) {
            const uint8_t *ks = m->p;
            store_mp_obj_t k;
            if (store_mp_next(m, &k))
                return REEL_ECORRUPT;
            m->p = ks;
            int hit = seg_key_matches(g, &k);
            int rc = copy_value(m, out);
            if (!rc)
                rc = hit ? rewrite_at(m, p, d + 1, out, n) : copy_value(m, out);
            if (rc)
                return rc;
        }
        return REEL_OK;
    }
    if (o.type == STORE_MP_ARRAY && g->kind != SEG_KEY) {
        store_mp_array(out, (uint32_t)o.u);
        for (uint64_t i = 0; i < o.u; i++) {
            int hit = g->kind == SEG_ANY || g->index == i;
            int rc = hit ? rewrite_at(m, p, d + 1, out, n) : copy_value(m, out);
            if (rc)
                return rc;
        }
        return REEL_OK;
    }
    m->p = start; /* the path does not go on here: the value stays */
    return copy_value(m, out);
}

/* Rewrites body field 'field' (5 data, 6 raw), the value v[0..len), into 'out' (cleared):
 * every path of that root, then the patterns. Returns the replacements; 0 leaves 'out'
 * unused. */
static int rewrite_field(struct plan *pl, int field, const uint8_t *v, size_t len,
                         store_buf_t **out, uint64_t *count)
{
    const uint8_t *cur = v;
    size_t cur_len = len;
    store_buf_t *bufs[2] = {&pl->a, &pl->b};
    int which = 0;
    *count = 0;
    *out = NULL;
    for (size_t i = 0; i < pl->q->n_paths; i++) {
        if (pl->paths[i].root != field)
            continue;
        store_buf_t *o = bufs[which];
        store_buf_clear(o);
        store_mp_t m = {cur, cur + cur_len};
        uint64_t k = 0;
        int rc = rewrite_at(&m, &pl->paths[i], 0, o, &k);
        if (rc || store_buf_failed(o))
            return rc ? rc : REEL_ENOMEM;
        if (!k)
            continue;
        *count += k;
        pl->path_values += k;
        cur = o->data, cur_len = o->len, *out = o;
        which ^= 1;
    }
    if (pl->red) {
        size_t k = ingest_redact_mp(pl->red, cur, cur_len, &pl->c, &pl->kinds_seen);
        if (store_buf_failed(&pl->c))
            return REEL_ENOMEM;
        if (k) {
            *count += k;
            *out = &pl->c;
        }
    }
    return REEL_OK;
}

/* Rebuilds 'body' into pl->body with 'data' and 'raw' rewritten; '*count' replacements
 * (0: the body stays as it is). */
static int rewrite_body(struct plan *pl, const uint8_t *body, size_t len, uint64_t *count)
{
    store_mp_t m = {body, body + len};
    store_mp_obj_t arr;
    *count = 0;
    if (store_mp_next(&m, &arr) || arr.type != STORE_MP_ARRAY || arr.u < 7 || arr.u > 9)
        return REEL_ECORRUPT;
    store_buf_clear(&pl->body);
    store_mp_array(&pl->body, (uint32_t)arr.u);
    for (int i = 0; i < (int)arr.u; i++) {
        const uint8_t *start = m.p;
        if (store_mp_skip(&m, STORE_JSON_MAX_DEPTH))
            return REEL_ECORRUPT;
        store_buf_t *nv = NULL;
        uint64_t k = 0;
        if (i == 5 || i == 6) {
            int rc = rewrite_field(pl, i, start, (size_t)(m.p - start), &nv, &k);
            if (rc)
                return rc;
        }
        if (nv)
            store_buf_put(&pl->body, nv->data, nv->len);
        else
            store_buf_put(&pl->body, start, (size_t)(m.p - start));
        *count += k;
    }
    return store_buf_failed(&pl->body) ? REEL_ENOMEM : REEL_OK;
}

/* ---- the plan ---- */

/* 1 when the body's type is "reel.redacted": the audit records of redactions hold no value
 * and are never rewritten, so a redaction cannot erase the trace of an earlier one. */
static int is_record(const uint8_t *body, size_t len)
{
    store_mp_t m = {body, body + len};
    store_mp_obj_t o;
    return !store_mp_next(&m, &o) && o.type == STORE_MP_ARRAY && o.u >= 2 &&
           !store_mp_skip(&m, 1) && !store_mp_next(&m, &o) && o.type == STORE_MP_STR &&
           o.len == 13 && !memcmp(o.ptr, "reel.redacted", 13);
}

static int plan_event(void *arg, const store_event_view_t *ev)
{
    struct plan *pl = arg;
    uint64_t count;
    if (is_record(ev->body, ev->body_len))
        return 0;
    int rc = rewrite_body(pl, ev->body, ev->body_len, &count);
    if (rc || !count)
        return pl->err = rc, rc != REEL_OK;
    if (pl->n_rw == pl->cap_rw) {
        size_t cap = pl->cap_rw ? pl->cap_rw * 2 : 64;
        store_rewrite_t *rw = realloc(pl->rw, cap * sizeof *rw);
        size_t *offs = rw ? realloc(pl->offs, cap * sizeof *offs) : NULL;
        if (rw)
            pl->rw = rw;
        if (!offs)
            return pl->err = REEL_ENOMEM, 1;
        pl->offs = offs, pl->cap_rw = cap;
    }
    store_rewrite_t *w = &pl->rw[pl->n_rw];
    memset(w, 0, sizeof *w);
    w->sequence = ev->sequence;
    uint8_t unused[STORE_HASH_LEN];
    size_t off = pl->bodies.len;
    if (off + pl->body.len > INGEST_REDACT_MAX_BYTES) {
        if (pl->e)
            snprintf(pl->e->text, sizeof pl->e->text,
                     "the rewritten bodies pass %u MiB at sequence %" PRIu64 ": redact a "
                     "shorter range (%" PRIu64 "..%" PRIu64 ")", INGEST_REDACT_MAX_BYTES >> 20,
                     ev->sequence, pl->q->from, ev->sequence - 1);
        return pl->err = REEL_ETOO_LARGE, 1;
    }
    if (!SHA256(ev->body, ev->body_len, w->current_hash) ||
        store_body_encode(pl->body.data, pl->body.len, &pl->bodies, unused))
        return pl->err = REEL_ENOMEM, 1;
    pl->offs[pl->n_rw] = off;
    w->body_len = pl->bodies.len - off;
    pl->n_rw++;
    pl->values += count;
    return 0;
}

/* Checks the range against the session and reads it into 'pl'. */
static int plan_read(store_t *s, struct plan *pl, ingest_error_t *e)
{
    const ingest_redact_req_t *q = pl->q;
    store_read_t r;
    store_session_t rec;
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    rc = store_session_get(&r, q->session, q->session_len, &rec);
    if (!rc && rec.status == STORE_DELETED)
        rc = REEL_EGONE;
    if (!rc && (q->from > rec.last_sequence || q->to > rec.last_sequence)) {
        rc = REEL_EINVALID_PARAMETER;
        if (e)
            snprintf(e->text, sizeof e->text,
                     "'%s' %" PRIu64 " is past the session's last sequence %" PRIu64,
                     q->to > rec.last_sequence && q->from <= rec.last_sequence ? "to" : "from",
                     q->to > rec.last_sequence && q->from <= rec.last_sequence ? q->to : q->from,
                     rec.last_sequence);
    }
    if (!rc) {
        rc = store_events_after(&r, q->session, q->session_len, q->from - 1,
                                (size_t)(q->to - q->from + 1), plan_event, pl, NULL);
        if (rc == 1)
            rc = pl->err;
    }
    store_read_end(&r);
    return rc;
}

static void plan_reset(struct plan *pl)
{
    pl->n_rw = 0;
    pl->values = pl->path_values = pl->kinds_seen = 0;
    pl->err = 0;
    store_buf_clear(&pl->bodies);
}

static void plan_release(struct plan *pl)
{
    free(pl->paths);
    ingest_redactor_free(pl->red);
    store_buf_release(&pl->a);
    store_buf_release(&pl->b);
    store_buf_release(&pl->c);
    store_buf_release(&pl->body);
    store_buf_release(&pl->bodies);
    free(pl->rw);
    free(pl->offs);
}

/* The data of the reel.redacted record: who, the range, the sequences rewritten, what was
 * asked (paths, patterns), the kinds that matched and how many values; never a value. */
static void record_data(const struct plan *pl, store_buf_t *d)
{
    const ingest_redact_req_t *q = pl->q;
    const char *by = q->by ? q->by : "";
    size_t n_kinds = (pl->path_values != 0);
    for (size_t k = 0; k < 64; k++)
        n_kinds += (pl->kinds_seen >> k) & 1;
    store_mp_map(d, 8);
    store_mp_str(d, "by", 2);
    store_mp_str(d, by, strlen(by));
    store_mp_str(d, "from", 4);
    store_mp_uint(d, q->from);
    store_mp_str(d, "to", 2);
    store_mp_uint(d, q->to);
    store_mp_str(d, "sequences", 9);
    store_mp_array(d, (uint32_t)pl->n_rw);
    for (size_t i = 0; i < pl->n_rw; i++)
        store_mp_uint(d, pl->rw[i].sequence);
    store_mp_str(d, "paths", 5);
    store_mp_array(d, (uint32_t)q->n_paths);
    for (size_t i = 0; i < q->n_paths; i++)
        store_mp_str(d, q->paths[i], strlen(q->paths[i]));
    store_mp_str(d, "patterns", 8);
    store_mp_array(d, (uint32_t)q->n_patterns);
    for (size_t i = 0; i < q->n_patterns; i++) { /* the kind name, never the regex */
        const char *t = q->patterns[i], *tab = strchr(t, '\t');
        store_mp_str(d, t, tab ? (size_t)(tab - t) : strlen(t));
    }
    store_mp_str(d, "kinds", 5);
    store_mp_array(d, (uint32_t)n_kinds);
    if (pl->path_values)
        store_mp_str(d, "path", 4);
    for (int k = 0; k < 64; k++)
        if ((pl->kinds_seen >> k) & 1) {
            const char *name = ingest_redact_kind(pl->red, k);
            store_mp_str(d, name, strlen(name));
        }
    store_mp_str(d, "values", 6);
    store_mp_uint(d, pl->values);
}

/* Submits the plan: the rewrites and the record in one batch. */
static int plan_commit(store_t *s, struct plan *pl, ingest_redact_result_t *res,
                       ingest_error_t *e)
{
    const ingest_redact_req_t *q = pl->q;
    ingest_batch_t ib;
    store_buf_t d = STORE_BUF_INIT;
    int rc = ingest_batch_init(&ib, q->session, q->session_len);
    if (rc)
        return rc;
    record_data(pl, &d);
    rc = store_buf_failed(&d) ? REEL_ENOMEM
                              : ingest_add(&ib, "reel.redacted", "reel", 1, NULL, NULL, d.data,
                                           d.len, NULL, 0, e);
    if (!rc) {
        for (size_t i = 0; i < pl->n_rw; i++)
            pl->rw[i].body = pl->bodies.data + pl->offs[i];
        ib.b.op = STORE_OP_REDACT;
        ib.b.rewrites = pl->rw;
        ib.b.n_rewrites = pl->n_rw;
        rc = ingest_append(s, &ib);
    }
    if (!rc) {
        res->record_sequence = ib.b.last_sequence;
        res->record_position = ib.b.position;
    }
    ingest_batch_release(&ib);
    store_buf_release(&d);
    return rc;
}

static int fill_result(const struct plan *pl, ingest_redact_result_t *res)
{
    res->values = pl->values;
    res->events = pl->n_rw;
    if (!pl->n_rw)
        return REEL_OK;
    res->positions = malloc(pl->n_rw * sizeof *res->positions);
    res->sequences = malloc(pl->n_rw * sizeof *res->sequences);
    if (!res->positions || !res->sequences)
        return REEL_ENOMEM;
    for (size_t i = 0; i < pl->n_rw; i++) {
        res->positions[i] = pl->rw[i].position;
        res->sequences[i] = pl->rw[i].sequence;
    }
    return REEL_OK;
}

/* Checks the request's shape before anything is read. */
static int check_request(const ingest_redact_req_t *q, struct plan *pl, ingest_error_t *e)
{
    char why[256];
    if (q->from == 0 || q->to < q->from) {
        if (e)
            snprintf(e->text, sizeof e->text,
                     q->from == 0 ? "'from' must be 1 or more, not 0"
                                  : "'to' %" PRIu64 " is before 'from' %" PRIu64,
                     q->to, q->from);
        return REEL_EINVALID_PARAMETER;
    }
    if (q->to - q->from >= INGEST_REDACT_MAX_EVENTS) {
        if (e)
            snprintf(e->text, sizeof e->text,
                     "the range %" PRIu64 "..%" PRIu64 " holds more than %d events: redact "
                     "in several requests", q->from, q->to, INGEST_REDACT_MAX_EVENTS);
        return REEL_EINVALID_PARAMETER;
    }
    if (!q->n_paths && !q->n_patterns) {
        if (e)
            snprintf(e->text, sizeof e->text, "give at least one path or pattern");
        return REEL_EINVALID_PARAMETER;
    }
    if (q->n_paths > INGEST_REDACT_MAX_PATHS || q->n_patterns > INGEST_REDACT_MAX_PATHS) {
        if (e)
            snprintf(e->text, sizeof e->text, "at most %d paths and %d patterns",
                     INGEST_REDACT_MAX_PATHS, INGEST_REDACT_MAX_PATHS);
        return REEL_EINVALID_PARAMETER;
    }
    if (q->n_paths && !(pl->paths = calloc(q->n_paths, sizeof *pl->paths)))
        return REEL_ENOMEM;
    for (size_t i = 0; i < q->n_paths; i++) {
        int rc = path_parse(q->paths[i], &pl->paths[i], e);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < q->n_patterns; i++) { /* each alone: the error names it */
        ingest_redactor_t *one;
        int rc = ingest_redactor_from_lines(&q->patterns[i], 1, &one, why, sizeof why);
        ingest_redactor_free(one);
        if (rc) {
            const char *t = q->patterns[i], *tab = strchr(t, '\t');
            if (e)
                snprintf(e->text, sizeof e->text, "pattern %zu (kind '%.*s', '%.60s'): %.120s",
                         i + 1, tab && tab - t < 40 ? (int)(tab - t) : 40, t,
                         tab ? tab + 1 : "", strchr(why, ' ') ? strchr(why, ' ') + 1 : why);
            return rc;
        }
    }
    if (q->n_patterns) {
        int rc = ingest_redactor_from_lines(q->patterns, q->n_patterns, &pl->red, why,
                                            sizeof why);
        if (rc) {
            if (e)
                snprintf(e->text, sizeof e->text, "%s", why);
            return rc;
        }
    }
    return REEL_OK;
}

int ingest_redact_after(store_t *s, const ingest_redact_req_t *q, ingest_redact_result_t *res,
                        ingest_error_t *e)
{
    struct plan pl;
    memset(&pl, 0, sizeof pl);
    memset(res, 0, sizeof *res);
    if (e)
        memset(e, 0, sizeof *e);
    pl.q = q;
    pl.e = e;
    int rc = check_request(q, &pl, e);
    /* A conflict means another redaction changed one of the bodies since the read: plan
     * again from what is stored now. */
    for (int t = 0; !rc && t < PLAN_TRIES; t++) {
        plan_reset(&pl);
        if ((rc = plan_read(s, &pl, e)) || !pl.n_rw)
            break;
        rc = plan_commit(s, &pl, res, e);
        if (rc != REEL_ECONFLICT)
            break;
        if (t + 1 < PLAN_TRIES)
            rc = REEL_OK;
    }
    if (!rc)
        rc = fill_result(&pl, res);
    if (e && rc == REEL_ECONFLICT)
        snprintf(e->text, sizeof e->text, "the events of %" PRIu64 "..%" PRIu64 " changed under "
                 "%d tries (concurrent redactions): retry", q->from, q->to, PLAN_TRIES);
    if (e && rc)
        e->err = rc;
    plan_release(&pl);
    return rc;
}

void ingest_redact_result_release(ingest_redact_result_t *res)
{
    free(res->positions);
    free(res->sequences);
    res->positions = NULL;
    res->sequences = NULL;
}
