/* jsjson.c -- msgpack -> JSON exactly as JavaScript's JSON.stringify(JSON.parse(x)) writes
 * it, for the replay text that must match the sandbox-agent SDK byte for byte.
 *
 * Three things differ from replay_write_event()'s exact JSON:
 *  - numbers are JavaScript doubles: 18446744073709551615 becomes 18446744073709552000,
 *    1.50 becomes 1.5, 1e400 becomes null, -0 becomes 0 (ECMAScript Number::toString);
 *  - object keys that are array indices ("0", "42") come first in ascending numeric order,
 *    then the other keys in insertion order (ECMAScript OrdinaryOwnPropertyKeys);
 *  - a duplicate key keeps its first position and its last value (JSON.parse).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay_int.h"
#include "store/json.h"

/* ECMAScript Number::toString for a finite double, appended to 'out'. */
static void js_double(store_buf_t *out, double x)
{
    if (!isfinite(x)) {
        store_buf_puts(out, "null");
        return;
    }
    if (x == 0) {
        store_buf_putc(out, '0');
        return;
    }
    if (x < 0) {
        store_buf_putc(out, '-');
        x = -x;
    }
    /* Shortest digit string that reads back as x: the nearest p-digit decimal. */
    char tmp[40], digits[20];
    int k = 0, e = 0;
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, x);
        if (strtod(tmp, NULL) == x || p == 17) {
            char *ep = strchr(tmp, 'e');
            e = atoi(ep + 1);
            for (char *q = tmp; q < ep; q++)
                if (*q >= '0' && *q <= '9')
                    digits[k++] = *q;
            break;
        }
    }
    while (k > 1 && digits[k - 1] == '0')
        k--;
    int n = e + 1; /* x = 0.digits * 10^n */
    if (k <= n && n <= 21) {
        store_buf_put(out, digits, (size_t)k);
        for (int i = k; i < n; i++)
            store_buf_putc(out, '0');
    } else if (0 < n && n <= 21) {
        store_buf_put(out, digits, (size_t)n);
        store_buf_putc(out, '.');
        store_buf_put(out, digits + n, (size_t)(k - n));
    } else if (-6 < n && n <= 0) {
        store_buf_puts(out, "0.");
        for (int i = n; i < 0; i++)
            store_buf_putc(out, '0');
        store_buf_put(out, digits, (size_t)k);
    } else {
        store_buf_putc(out, digits[0]);
        if (k > 1) {
            store_buf_putc(out, '.');
            store_buf_put(out, digits + 1, (size_t)(k - 1));
        }
        store_buf_printf(out, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
}

/* 1 and the index if 'k' is an ECMAScript array index (canonical, < 2^32 - 1). */
static int array_index(const uint8_t *k, uint32_t len, uint32_t *idx)
{
    if (len == 0 || len > 10 || (len > 1 && k[0] == '0'))
        return 0;
    uint64_t v = 0;
    for (uint32_t i = 0; i < len; i++) {
        if (k[i] < '0' || k[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(k[i] - '0');
    }
    if (v >= 4294967295u)
        return 0;
    *idx = (uint32_t)v;
    return 1;
}

struct entry {
    const uint8_t *key;
    uint32_t key_len;
    const uint8_t *val; /* msgpack of the value */
    const uint8_t *val_end;
    int is_index;
    uint32_t index;
    size_t order; /* first position */
};

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->is_index != y->is_index)
        return x->is_index ? -1 : 1;
    if (x->is_index && x->index != y->index)
        return x->index < y->index ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* An open container: an array's elements left, or a map's entries in output order (the
 * values are read from their spans; 'after' is where the map's msgpack ends). */
struct js_open {
    int is_map;
    uint64_t left;
    struct entry *e;
    size_t used, next;
    store_mp_t after;
};

/* Reads the 'n' entries of a map at 'm' into '*out' (new, in output order). */
/* Where each container of a value ends, in document order (their starts increase), found
 * in one pass: a map's entries are then found without walking its values again, so
 * writing a value costs O(size log size) however deep it nests (walking each value to
 * skip it would cost its size at every level above it). */
struct spans {
    const uint8_t **start, **end;
    size_t n, cap;
};

static int spans_add(struct spans *sp, const uint8_t *start)
{
    if (sp->n == sp->cap) {
        size_t cap = sp->cap ? sp->cap * 2 : 64;
        const uint8_t **s = realloc(sp->start, cap * sizeof *s);
        if (s)
            sp->start = s;
        const uint8_t **e = s ? realloc(sp->end, cap * sizeof *e) : NULL;
        if (!e)
            return REEL_ENOMEM;
        sp->end = e, sp->cap = cap;
    }
    sp->start[sp->n] = start;
    sp->end[sp->n++] = NULL;
    return REEL_OK;
}

static void spans_free(struct spans *sp)
{
    free(sp->start);
    free(sp->end);
}

/* An open container while indexing: its span and the elements (keys and values) left. */
struct span_open {
    size_t span;
    uint64_t left;
};

static int spans_build(store_mp_t m, int max_depth, struct spans *sp)
{
    struct span_open local[32], *st = local;
    size_t cap = 32, used = 0;
    int rc = REEL_OK;
    for (;;) {
        const uint8_t *start = m.p;
        store_mp_obj_t o;
        if ((rc = store_mp_next(&m, &o)))
            break;
        if (o.type == STORE_MP_ARRAY || o.type == STORE_MP_MAP) {
            uint64_t items = o.type == STORE_MP_MAP ? o.u * 2 : o.u;
            if (used >= (size_t)max_depth) {
                rc = REEL_ECORRUPT;
                break;
            }
            if ((rc = spans_add(sp, start)))
                break;
            if (items) {
                if (store_stack_room((void **)&st, &cap, used, local, sizeof *st)) {
                    rc = REEL_ENOMEM;
                    break;
                }
                st[used++] = (struct span_open){sp->n - 1, items};
                continue;
            }
            sp->end[sp->n - 1] = m.p;
        }
        /* one element done: close every container it was the last element of */
        while (used && !--st[used - 1].left)
            sp->end[st[--used].span] = m.p;
        if (!used)
            break;
    }
    store_stack_free(st, local);
    return rc;
}

/* Moves 'm' past the value at it: a container by its span, a scalar by its header. */
static int spans_skip(const struct spans *sp, store_mp_t *m)
{
    const uint8_t *start = m->p;
    store_mp_obj_t o;
    int rc = store_mp_next(m, &o);
    if (rc || (o.type != STORE_MP_ARRAY && o.type != STORE_MP_MAP))
        return rc;
    size_t lo = 0, hi = sp->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sp->start[mid] < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == sp->n || sp->start[lo] != start || !sp->end[lo])
        return REEL_ECORRUPT;
    m->p = sp->end[lo];
    return REEL_OK;
}

/* Entries by key bytes, then by position: equal keys end up side by side. */
static int cmp_key(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);
    if (c || x->key_len != y->key_len)
        return c ? c : x->key_len < y->key_len ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* The 'n' entries of the map at 'm' in JavaScript's order (JSON.parse then
 * OrdinaryOwnPropertyKeys): a duplicate key keeps its first position and its last value;
 * array-index keys first. '*out' is freed by the caller. Sorting, not pairwise
 * comparison, finds the duplicates: a map of many keys costs O(n log n). */
static int js_entries(store_mp_t *m, uint64_t n, const struct spans *sp, struct entry **out,
                      size_t *nused)
{
    struct entry *e = n ? calloc(n, sizeof *e) : NULL;
    size_t used = 0;
    int rc = n && !e ? REEL_ENOMEM : REEL_OK;
    for (uint64_t i = 0; !rc && i < n; i++) {
        store_mp_obj_t k;
        if ((rc = store_mp_next(m, &k)) || k.type != STORE_MP_STR) {
            rc = REEL_ECORRUPT;
            break;
        }
        const uint8_t *v = m->p;
        if ((rc = spans_skip(sp, m)))
            break;
        e[used] = (struct entry){k.ptr, k.len, v, m->p, 0, 0, used};
        e[used].is_index = array_index(k.ptr, k.len, &e[used].index);
        used++;
    }
    if (!rc && used > 1) {
        qsort(e, used, sizeof *e, cmp_key);
        size_t w = 0;
        for (size_t r = 0; r < used; r++) {
            if (w && e[w - 1].key_len == e[r].key_len &&
                !memcmp(e[w - 1].key, e[r].key, e[r].key_len)) {
                e[w - 1].val = e[r].val; /* a later duplicate: its value, the first place */
                e[w - 1].val_end = e[r].val_end;
                continue;
            }
            e[w++] = e[r];
        }
        used = w;
        qsort(e, used, sizeof *e, cmp_entry);
    }
    if (rc)
        free(e), e = NULL;
    *out = e;
    *nused = used;
    return rc;
}

/* One scalar as JavaScript writes it; 'start' is where its msgpack begins. */
static int js_scalar(store_mp_t *m, const uint8_t *start, const store_mp_obj_t *o,
                     store_buf_t *out)
{
    switch (o->type) {
    case STORE_MP_UINT: js_double(out, (double)o->u); break;
    case STORE_MP_INT: js_double(out, (double)o->i); break;
    case STORE_MP_FLOAT: js_double(out, o->f); break;
    case STORE_MP_EXT: {
        char num[64];
        if (o->ext != STORE_MP_EXT_NUMBER)
            return REEL_ECORRUPT;
        if (o->len >= sizeof num) {
            store_buf_t tmp = STORE_BUF_INIT; /* long literal: strtod needs a C string */
            store_buf_put(&tmp, o->ptr, o->len);
            js_double(out, strtod(store_buf_cstr(&tmp), NULL));
            store_buf_release(&tmp);
            break;
        }
        memcpy(num, o->ptr, o->len);
        num[o->len] = 0;
        js_double(out, strtod(num, NULL));
        break;
    }
    default: { /* nil, bool, str, bin: written as exact JSON writes them */
        store_mp_t one = {start, m->p};
        return store_mp_to_json(&one, out, 1);
    }
    }
    return REEL_OK;
}

/* Containers are walked with an explicit stack (heap-grown past 32 levels), not by
 * recursion: stored data may nest as deep as the server's --max-depth allowed. */
static int js_value(store_mp_t *m, store_buf_t *out, int max_depth)
{
    struct js_open local[32], *st = local;
    size_t cap = 32, used = 0;
    struct spans sp = {0};
    int rc = spans_build(*m, max_depth, &sp);
    for (; !rc;) {
        if (used) { /* the next element of the innermost open container */
            struct js_open *top = &st[used - 1];
            int done = top->is_map ? top->next == top->used : top->left == 0;
            if (done) {
                store_buf_putc(out, top->is_map ? '}' : ']');
                if (top->is_map)
                    *m = top->after, free(top->e);
                if (--used == 0)
                    break;
                continue;
            }
            if (top->is_map ? top->next : top->left != top->used)
                store_buf_putc(out, ',');
            if (top->is_map) {
                struct entry *e = &top->e[top->next++];
                store_json_write_string(out, (const char *)e->key, e->key_len);
                store_buf_putc(out, ':');
                *m = (store_mp_t){e->val, e->val_end};
            } else {
                top->left--;
            }
        }
        const uint8_t *start = m->p;
        store_mp_obj_t o;
        if ((rc = store_mp_next(m, &o)))
            break;
        if (o.type == STORE_MP_ARRAY || o.type == STORE_MP_MAP) {
            if (used >= (size_t)max_depth) {
                rc = REEL_ECORRUPT;
                break;
            }
            if (store_stack_room((void **)&st, &cap, used, local, sizeof *st)) {
                rc = REEL_ENOMEM;
                break;
            }
            struct js_open *top = &st[used];
            memset(top, 0, sizeof *top);
            top->is_map = o.type == STORE_MP_MAP;
            if (top->is_map) {
                if ((rc = js_entries(m, o.u, &sp, &top->e, &top->used)))
                    break;
                top->after = *m;
            } else {
                top->left = top->used = o.u; /* 'used' keeps the count for the commas */
            }
            used++;
            store_buf_putc(out, top->is_map ? '{' : '[');
            continue;
        }
        if ((rc = js_scalar(m, start, &o, out)) || !used)
            break;
    }
    while (used) /* after a failure: the maps still open */
        if (st[--used].is_map)
            free(st[used].e);
    store_stack_free(st, local);
    spans_free(&sp);
    if (!rc && store_buf_failed(out))
        rc = REEL_ENOMEM;
    return rc;
}

int replay__js_json(store_mp_t *m, store_buf_t *out)
{
    return js_value(m, out, STORE_JSON_MAX_DEPTH);
}

size_t replay__utf16_len(const uint8_t *p, size_t n)
{
    size_t units = 0, i = 0;
    for (; i + 8 <= n; i += 8) { /* ASCII, 8 bytes at a time: one unit each */
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ull)
            break;
        units += 8;
    }
    for (; i < n; i++) {
        uint8_t c = p[i];
        if ((c & 0xc0) != 0x80) /* a lead byte starts one code point */
            units += c >= 0xf0 ? 2 : 1;
    }
    return units;
}
