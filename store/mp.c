/* mp.c -- msgpack reading, and msgpack to JSON text (contract in json.h): the read path's
 * side of the codec, which never trusts its input (every length is checked against the end)
 * and walks nested values with an explicit stack.
 */
#include "store/json.h"

#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/err.h"
#include "store/json_int.h"

/* ---- msgpack reading ---- */

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int need(store_mp_t *m, size_t n)
{
    return (size_t)(m->end - m->p) >= n ? REEL_OK : REEL_ECORRUPT;
}

/* Reads a payload of 'n' bytes (length-prefixed types). */
static int payload(store_mp_t *m, store_mp_obj_t *o, uint64_t n)
{
    if ((uint64_t)(m->end - m->p) < n)
        return REEL_ECORRUPT;
    o->ptr = m->p;
    o->len = (uint32_t)n;
    m->p += n;
    return REEL_OK;
}

static int count(store_mp_t *m, store_mp_obj_t *o, int type, uint64_t n)
{
    /* Every element takes at least one byte: a count beyond the remaining bytes is a lie
     * (msgpack-c's array32 lacks this guard). */
    uint64_t min = type == STORE_MP_MAP ? 2 * n : n;
    if (min > (uint64_t)(m->end - m->p))
        return REEL_ECORRUPT;
    o->type = type;
    o->u = n;
    return REEL_OK;
}

int store_mp_next(store_mp_t *m, store_mp_obj_t *o)
{
    memset(o, 0, sizeof *o);
    if (need(m, 1))
        return REEL_ECORRUPT;
    uint8_t c = *m->p++;
    if (c <= 0x7f) {
        o->type = STORE_MP_UINT, o->u = c;
        return REEL_OK;
    }
    if (c >= 0xe0) {
        o->type = STORE_MP_INT, o->i = (int8_t)c;
        return REEL_OK;
    }
    if (c >= 0x80 && c <= 0x8f)
        return count(m, o, STORE_MP_MAP, c & 0x0f);
    if (c >= 0x90 && c <= 0x9f)
        return count(m, o, STORE_MP_ARRAY, c & 0x0f);
    if (c >= 0xa0 && c <= 0xbf) {
        o->type = STORE_MP_STR;
        return payload(m, o, c & 0x1f);
    }
    static const uint8_t width[] = {
        /* c0 */ 0, 0, 0, 0, 1, 2, 4, 1, 2, 4, 4, 8, 1, 2, 4, 8,
        /* d0 */ 1, 2, 4, 8, 0, 0, 0, 0, 0, 1, 2, 4, 2, 4, 2, 4};
    int w = width[c - 0xc0];
    if (need(m, (size_t)w))
        return REEL_ECORRUPT;
    uint64_t v = be(m->p, w);
    m->p += w;
    switch (c) {
    case 0xc0: o->type = STORE_MP_NIL; return REEL_OK;
    case 0xc2: case 0xc3: o->type = STORE_MP_BOOL, o->u = c == 0xc3; return REEL_OK;
    case 0xc4: case 0xc5: case 0xc6: o->type = STORE_MP_BIN; return payload(m, o, v);
    case 0xc7: case 0xc8: case 0xc9:
        if (need(m, 1))
            return REEL_ECORRUPT;
        o->type = STORE_MP_EXT, o->ext = (int8_t)*m->p++;
        return payload(m, o, v);
    case 0xca: {
        uint32_t bits = (uint32_t)v;
        float f;
        memcpy(&f, &bits, 4);
        o->type = STORE_MP_FLOAT, o->f = f;
        return REEL_OK;
    }
    case 0xcb: o->type = STORE_MP_FLOAT, memcpy(&o->f, &v, 8); return REEL_OK;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: o->type = STORE_MP_UINT, o->u = v; return 0;
    case 0xd0: o->type = STORE_MP_INT, o->i = (int8_t)v; return REEL_OK;
    case 0xd1: o->type = STORE_MP_INT, o->i = (int16_t)v; return REEL_OK;
    case 0xd2: o->type = STORE_MP_INT, o->i = (int32_t)v; return REEL_OK;
    case 0xd3: o->type = STORE_MP_INT, o->i = (int64_t)v; return REEL_OK;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        if (need(m, 1))
            return REEL_ECORRUPT;
        o->type = STORE_MP_EXT, o->ext = (int8_t)*m->p++;
        return payload(m, o, 1u << (c - 0xd4));
    case 0xd9: case 0xda: case 0xdb: o->type = STORE_MP_STR; return payload(m, o, v);
    case 0xdc: case 0xdd: return count(m, o, STORE_MP_ARRAY, v);
    case 0xde: case 0xdf: return count(m, o, STORE_MP_MAP, v);
    default: return REEL_ECORRUPT; /* 0xc1 is never used */
    }
}

int store_mp_skip(store_mp_t *m, int max_depth)
{
    /* Iterative, with one pending count per open container: no recursion, and input nested
     * deeper than 'max_depth' is refused like store_mp_to_json() refuses it. */
    uint64_t local[32], *pending = local;
    size_t cap = 32, depth = 0;
    int rc = REEL_OK;
    pending[0] = 1;
    while (depth > 0 || pending[0] > 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        pending[depth]--;
        store_mp_obj_t o;
        if ((rc = store_mp_next(m, &o)))
            break;
        if (o.type == STORE_MP_ARRAY || o.type == STORE_MP_MAP) {
            if (depth >= (size_t)(max_depth > 0 ? max_depth : 0)) {
                rc = REEL_ECORRUPT;
                break;
            }
            if (store_stack_room((void **)&pending, &cap, depth + 1, local, sizeof *pending)) {
                rc = REEL_ENOMEM;
                break;
            }
            pending[++depth] = o.type == STORE_MP_MAP ? 2 * o.u : o.u;
        }
    }
    store_stack_free(pending, local);
    return rc;
}

/* ---- JSON writing ---- */

/* Escapes 'n' bytes of 'p' into 'w' (room for 6 per byte); returns the end. Plain runs are
 * found 8 bytes at a time; the escapes are written in place, without a call per escape,
 * because JSON held in a string (the restore text) escapes every other token. */
static uint8_t *escape_into(uint8_t *w, const unsigned char *p, const unsigned char *end)
{
    static const char hex[] = "0123456789abcdef";
    static const char short_esc[32] = {['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f',
                                       ['\r'] = 'r'};
    while (p < end) {
        size_t run = plain_run(p, end, 0);
        memcpy(w, p, run);
        w += run, p += run;
        if (p >= end)
            break;
        unsigned char c = *p++;
        if (c == 0xed) {
            if (end - p >= 2 && p[0] >= 0xa0) { /* WTF-8 lone surrogate: as JSON.stringify */
                unsigned cp = 0xd000 | (unsigned)(p[0] & 0x3f) << 6 | (p[1] & 0x3f);
                memcpy(w, "\\u", 2), w[2] = (uint8_t)hex[cp >> 12],
                    w[3] = (uint8_t)hex[(cp >> 8) & 15], w[4] = (uint8_t)hex[(cp >> 4) & 15],
                    w[5] = (uint8_t)hex[cp & 15], w += 6, p += 2;
            } else {
                *w++ = c; /* U+D000..U+D7FF */
            }
            continue;
        }
        *w++ = '\\';
        if (c == '"' || c == '\\')
            *w++ = c;
        else if (short_esc[c])
            *w++ = (uint8_t)short_esc[c];
        else
            memcpy(w, "u00", 3), w[3] = (uint8_t)hex[c >> 4], w[4] = (uint8_t)hex[c & 15], w += 5;
    }
    return w;
}

void store_json_write_string(store_buf_t *out, const char *s, size_t len)
{
    enum { CHUNK = 4096 }; /* bounds the worst-case reservation (6 bytes per byte) */
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    store_buf_putc(out, '"');
    while (p < end) {
        size_t n = (size_t)(end - p) < CHUNK ? (size_t)(end - p) : CHUNK;
        while (n < (size_t)(end - p) && n > CHUNK - 3 && (p[n] & 0xc0) == 0x80)
            n--; /* a chunk ends between characters: a WTF-8 surrogate is seen whole */
        if (store_buf_reserve(out, 6 * n + 1))
            return;
        out->len = (size_t)(escape_into(out->data + out->len, p, p + n) - out->data);
        p += n;
    }
    store_buf_putc(out, '"');
}

static void write_base64(store_buf_t *out, const uint8_t *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    store_buf_putc(out, '"');
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        store_buf_put(out, q, 4);
    }
    store_buf_putc(out, '"');
}

/* A stored number's text: any length the parser accepted, number characters only. */
static int number_text_ok(const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789+-.eE", p[i]) || p[i] == 0)
            return 0;
    return 1;
}

/* One scalar msgpack value 'o' as JSON. */
static int scalar_to_json(const store_mp_obj_t *o, store_buf_t *out)
{
    switch (o->type) {
    case STORE_MP_NIL: store_buf_put(out, "null", 4); break;
    case STORE_MP_BOOL: store_buf_puts(out, o->u ? "true" : "false"); break;
    case STORE_MP_UINT: store_buf_put_u64(out, o->u); break;
    case STORE_MP_INT: store_buf_put_i64(out, o->i); break;
    case STORE_MP_FLOAT:
        if (isfinite(o->f))
            store_buf_printf(out, "%.17g", o->f);
        else
            store_buf_put(out, "null", 4);
        break;
    case STORE_MP_STR: store_json_write_string(out, (const char *)o->ptr, o->len); break;
    case STORE_MP_BIN: write_base64(out, o->ptr, o->len); break;
    case STORE_MP_EXT:
        if (o->ext != STORE_MP_EXT_NUMBER || !number_text_ok(o->ptr, o->len))
            return REEL_ECORRUPT;
        store_buf_put(out, o->ptr, o->len);
        break;
    default: return REEL_ECORRUPT;
    }
    return REEL_OK;
}

/* An open container while writing: elements left, map or array, any written yet. */
struct open_mp {
    uint64_t left;
    int is_map, any;
};

int store_mp_to_json(store_mp_t *m, store_buf_t *out, int max_depth)
{
    struct open_mp local[32], *st = local;
    size_t cap = 32, used = 0;
    int rc = REEL_OK;
    for (;;) {
        if (used) { /* the next element of the innermost open container */
            struct open_mp *top = &st[used - 1];
            if (!top->left) {
                store_buf_putc(out, top->is_map ? '}' : ']');
                if (--used == 0)
                    break;
                continue;
            }
            top->left--;
            if (top->any)
                store_buf_putc(out, ',');
            top->any = 1;
            if (top->is_map) {
                store_mp_obj_t k;
                if ((rc = store_mp_next(m, &k)))
                    break;
                if (k.type != STORE_MP_STR) {
                    rc = REEL_ECORRUPT;
                    break;
                }
                store_json_write_string(out, (const char *)k.ptr, k.len);
                store_buf_putc(out, ':');
            }
        }
        store_mp_obj_t o;
        if ((rc = store_mp_next(m, &o)))
            break;
        if (o.type == STORE_MP_ARRAY || o.type == STORE_MP_MAP) {
            if (used >= (size_t)(max_depth > 0 ? max_depth : 0)) {
                rc = REEL_ECORRUPT;
                break;
            }
            if (store_stack_room((void **)&st, &cap, used, local, sizeof *st)) {
                rc = REEL_ENOMEM;
                break;
            }
            st[used++] = (struct open_mp){o.u, o.type == STORE_MP_MAP, 0};
            store_buf_putc(out, o.type == STORE_MP_MAP ? '{' : '[');
            continue;
        }
        if ((rc = scalar_to_json(&o, out)) || !used)
            break;
    }
    store_stack_free(st, local);
    if (!rc && store_buf_failed(out))
        rc = REEL_ENOMEM;
    return rc;
}
