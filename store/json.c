/* json.c -- streaming JSON <-> msgpack transcoding (contract in json.h).
 *
 * Containers and strings are written with a 5-byte placeholder header whose final,
 * minimal form is written once the element count or length is known (fix_header), so the
 * encoding is canonical: equal JSON values always give equal bytes, which the hash chain
 * relies on.
 */
#include "store/json.h"

#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "store/err.h"

/* ---- msgpack writing ---- */

static int buf_write(void *data, const char *p, size_t n)
{
    store_buf_put(data, p, n);
    return store_buf_failed(data) ? -1 : 0;
}

#define PACKER(out)                                                                       \
    msgpack_packer pk;                                                                    \
    msgpack_packer_init(&pk, (out), buf_write)

void store_mp_str(store_buf_t *out, const char *s, size_t len)
{
    PACKER(out);
    msgpack_pack_str_with_body(&pk, s, len);
}

void store_mp_nil(store_buf_t *out)
{
    PACKER(out);
    msgpack_pack_nil(&pk);
}

void store_mp_bool(store_buf_t *out, int v)
{
    PACKER(out);
    if (v)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
}

void store_mp_uint(store_buf_t *out, uint64_t v)
{
    PACKER(out);
    msgpack_pack_uint64(&pk, v);
}

void store_mp_int(store_buf_t *out, int64_t v)
{
    PACKER(out);
    msgpack_pack_int64(&pk, v);
}

void store_mp_array(store_buf_t *out, uint32_t n)
{
    PACKER(out);
    msgpack_pack_array(&pk, n);
}

void store_mp_map(store_buf_t *out, uint32_t n)
{
    PACKER(out);
    msgpack_pack_map(&pk, n);
}

void store_mp_bin(store_buf_t *out, const void *p, size_t len)
{
    PACKER(out);
    msgpack_pack_bin_with_body(&pk, p, len);
}

static void mp_ext_number(store_buf_t *out, const char *text, size_t len)
{
    PACKER(out);
    msgpack_pack_ext_with_body(&pk, text, len, STORE_MP_EXT_NUMBER);
}

enum hdr_kind { HDR_STR, HDR_ARRAY, HDR_MAP };

/* Replaces the 5-byte placeholder at 'at' with the minimal header for 'n' and moves the
 * body that follows it into place. */
static void fix_header(store_buf_t *out, size_t at, int kind, uint32_t n)
{
    uint8_t h[5];
    size_t hl;
    if (kind == HDR_STR && n < 32) {
        h[0] = (uint8_t)(0xa0 | n), hl = 1;
    } else if (kind != HDR_STR && n < 16) {
        h[0] = (uint8_t)((kind == HDR_ARRAY ? 0x90 : 0x80) | n), hl = 1;
    } else if (kind == HDR_STR && n < 256) {
        h[0] = 0xd9, h[1] = (uint8_t)n, hl = 2;
    } else if (n < 65536) {
        h[0] = kind == HDR_STR ? 0xda : kind == HDR_ARRAY ? 0xdc : 0xde;
        h[1] = (uint8_t)(n >> 8), h[2] = (uint8_t)n, hl = 3;
    } else {
        h[0] = kind == HDR_STR ? 0xdb : kind == HDR_ARRAY ? 0xdd : 0xdf;
        h[1] = (uint8_t)(n >> 24), h[2] = (uint8_t)(n >> 16), h[3] = (uint8_t)(n >> 8);
        h[4] = (uint8_t)n, hl = 5;
    }
    if (store_buf_failed(out))
        return;
    uint8_t *p = out->data + at;
    if (hl < 5) {
        memmove(p + hl, p + 5, out->len - at - 5);
        out->len -= 5 - hl;
    }
    memcpy(p, h, hl);
}

static size_t placeholder(store_buf_t *out)
{
    size_t at = out->len;
    store_buf_put(out, "\0\0\0\0\0", 5);
    return at;
}

/* ---- word-at-a-time scanning ---- */

/* Strings are mostly long runs of plain bytes; both directions look at 8 bytes at a time
 * and fall back to the byte loop only for a word holding a byte that needs attention. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static inline uint64_t load8(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Non-zero if a byte of 'v' is '"', '\\', 0xed (the lead byte of a WTF-8 surrogate) or
 * below 0x20 ('high' also flags every byte >= 0x80). */
static inline uint64_t special8(uint64_t v, int high)
{
    uint64_t q = v ^ (ONES * '"'), b = v ^ (ONES * '\\'), e = v ^ (ONES * 0xed);
    uint64_t hit = ((q - ONES) & ~q) | ((b - ONES) & ~b) | ((e - ONES) & ~e) |
                   ((v - ONES * 0x20) & ~v);
    return (hit | (high ? v : 0)) & HIGHS;
}

/* Length of the leading run of bytes that need no attention. Strings are most of the
 * bytes of every event read and written, so on x86-64 (SSE2 is part of the base ISA) 16
 * bytes are checked per step, then 8 at a time in a register, then one by one. */
static inline size_t plain_run(const unsigned char *p, const unsigned char *end, int high)
{
    const unsigned char *q = p;
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  ctl = _mm_set1_epi8(0x1f), ed = _mm_set1_epi8((char)0xed);
    for (; end - q >= 16; q += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash));
        hit = _mm_or_si128(hit, _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v)); /* v <= 0x1f */
        hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, ed));
        unsigned mask = (unsigned)_mm_movemask_epi8(hit);
        if (high)
            mask |= (unsigned)_mm_movemask_epi8(v); /* bytes >= 0x80 */
        if (mask)
            return (size_t)(q - p) + (size_t)__builtin_ctz(mask);
    }
#endif
    for (; end - q >= 8; q += 8) {
        /* The lowest flagged byte is exact (a borrow only flags bytes above a hit), so the
         * run ends there: little-endian byte order makes it the lowest set bit. */
        uint64_t hit = special8(load8(q), high);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (hit)
            return (size_t)(q - p) + (size_t)(__builtin_ctzll(hit) >> 3);
#else
        if (hit) /* big-endian: find it byte by byte below */
            break;
#endif
    }
    while (q < end && *q >= 0x20 && *q != '"' && *q != '\\' && *q != 0xed &&
           (!high || *q < 0x80))
        q++;
    return (size_t)(q - p);
}

/* ---- JSON parsing ---- */

void store_json_init(store_json_t *j, const char *text, size_t len, int max_depth,
                     store_json_error_t *err)
{
    if (!text) /* an empty body: NULL + 0 is undefined */
        text = "", len = 0;
    j->start = j->p = text;
    j->end = text + len;
    j->max_depth = max_depth > STORE_JSON_MAX_DEPTH ? STORE_JSON_MAX_DEPTH : max_depth;
    j->err = err;
    if (err)
        memset(err, 0, sizeof *err);
}

int store_json_fail(store_json_t *j, int code, const char *fmt, ...)
{
    store_json_error_t *e = j->err;
    if (!e || e->text[0]) /* keep the first, innermost error */
        return code;
    e->offset = (size_t)(j->p - j->start);
    e->line = 1;
    e->column = 1;
    for (const char *q = j->start; q < j->p; q++) {
        if (*q == '\n')
            e->line++, e->column = 1;
        else
            e->column++;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
    return code;
}

int store_json_peek(store_json_t *j)
{
    while (j->p < j->end &&
           (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
    return j->p < j->end ? (unsigned char)*j->p : -1;
}

static const char *show(int c, char tmp[8])
{
    if (c < 0)
        return "end of input";
    if (c >= 0x20 && c < 0x7f)
        snprintf(tmp, 8, "'%c'", c);
    else
        snprintf(tmp, 8, "0x%02x", (unsigned)c & 0xff);
    return tmp;
}

int store_json_expect(store_json_t *j, char c)
{
    int got = store_json_peek(j);
    if (got != (unsigned char)c) {
        char tmp[8];
        return store_json_fail(j, REEL_EINVALID_JSON, "expected '%c' but found %s", c,
                               show(got, tmp));
    }
    j->p++;
    return REEL_OK;
}

int store_json_end(store_json_t *j)
{
    int c = store_json_peek(j);
    if (c >= 0) {
        char tmp[8];
        return store_json_fail(j, REEL_EINVALID_JSON, "unexpected %s after the JSON value",
                               show(c, tmp));
    }
    return REEL_OK;
}

/* The 4 hex digits at p as a number in '*out'; -1 if they are not there. */
static int hex4_at(const char *p, const char *end, unsigned *out)
{
    unsigned v = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int hex4(store_json_t *j, const char *p, unsigned *out)
{
    if (!hex4_at(p, j->end, out))
        return REEL_OK;
    if (j->end - p < 4)
        return store_json_fail(j, REEL_EINVALID_JSON, "truncated \\u escape");
    return store_json_fail(j, REEL_EINVALID_JSON, "bad hex digit in \\u escape");
}

static void put_utf8(store_buf_t *out, unsigned cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80)
        b[0] = (uint8_t)cp, n = 1;
    else if (cp < 0x800)
        b[0] = (uint8_t)(0xc0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        b[0] = (uint8_t)(0xe0 | cp >> 12), b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)),
        b[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
    else
        b[0] = (uint8_t)(0xf0 | cp >> 18), b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f)),
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), b[3] = (uint8_t)(0x80 | (cp & 0x3f)),
        n = 4;
    store_buf_put(out, b, n);
}

/* Length of the valid UTF-8 sequence at p (p < end, *p >= 0x80), or 0 if invalid:
 * no overlongs, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

static int escape(store_json_t *j, store_buf_t *out)
{
    const char *p = j->p + 1; /* after the backslash */
    if (p >= j->end)
        return store_json_fail(j, REEL_EINVALID_JSON, "truncated escape");
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = *p ? strchr(from, *p) : NULL;
    if (k) {
        store_buf_putc(out, to[k - from]);
        j->p = p + 1;
        return REEL_OK;
    }
    if (*p != 'u')
        return store_json_fail(j, REEL_EINVALID_JSON, "invalid escape '\\%c'", *p);
    unsigned cp, lo;
    int rc = hex4(j, p + 1, &cp);
    if (rc)
        return rc;
    p += 5;
    /* A high surrogate escape directly followed by a low one is one code point; any other
     * surrogate is a lone UTF-16 code unit, kept as its 3-byte WTF-8 form (ED A0..BF xx),
     * which the JSON writers turn back into the same escape. */
    if (cp >= 0xd800 && cp <= 0xdbff && j->end - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
        !hex4_at(p + 2, j->end, &lo) && lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        p += 6;
    }
    put_utf8(out, cp);
    j->p = p;
    return REEL_OK;
}

/* Appends the decoded string at the cursor (which is at the opening quote) to 'out'. */
static int string_body(store_json_t *j, store_buf_t *out)
{
    const unsigned char *end = (const unsigned char *)j->end;
    j->p++;
    for (;;) {
        const unsigned char *run = (const unsigned char *)j->p;
        const unsigned char *p = run + plain_run(run, end, 1);
        store_buf_put(out, run, (size_t)(p - run));
        j->p = (const char *)p;
        if (p >= end)
            return store_json_fail(j, REEL_EINVALID_JSON, "unterminated string");
        if (*p == '"') {
            j->p++;
            return store_buf_failed(out) ? REEL_ENOMEM : REEL_OK;
        }
        if (*p == '\\') {
            int rc = escape(j, out);
            if (rc)
                return rc;
        } else if (*p < 0x20) {
            return store_json_fail(j, REEL_EINVALID_JSON,
                                   "control character 0x%02x in a string", *p);
        } else {
            size_t n = utf8_len(p, end);
            if (!n)
                return store_json_fail(j, REEL_EINVALID_JSON,
                                       "invalid UTF-8 byte 0x%02x at offset %zu", *p,
                                       (size_t)(j->p - j->start));
            store_buf_put(out, p, n);
            j->p += n;
        }
    }
}

int store_json_string(store_json_t *j, store_buf_t *out)
{
    int c = store_json_peek(j);
    if (c != '"') {
        char tmp[8];
        return store_json_fail(j, REEL_EINVALID_JSON, "expected a string but found %s",
                               show(c, tmp));
    }
    return string_body(j, out);
}

static int mp_string(store_json_t *j, store_buf_t *out)
{
    size_t at = placeholder(out);
    int rc = string_body(j, out);
    if (rc)
        return rc;
    size_t n = out->len - at - 5;
    if (n > UINT32_MAX)
        return store_json_fail(j, REEL_ETOO_LARGE, "string longer than 4 GiB");
    fix_header(out, at, HDR_STR, (uint32_t)n);
    return REEL_OK;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static int number(store_json_t *j, store_buf_t *out)
{
    const char *s = j->p, *p = s, *e = j->end;
    int neg = 0, integral = 1;
    if (p < e && *p == '-')
        neg = 1, p++;
    if (p < e && *p == '0')
        p++;
    else if (p < e && *p >= '1' && *p <= '9')
        while (p < e && is_digit(*p))
            p++;
    else
        return store_json_fail(j, REEL_EINVALID_JSON, "invalid number");
    if (p < e && *p == '.') {
        integral = 0;
        if (++p >= e || !is_digit(*p))
            return store_json_fail(j, REEL_EINVALID_JSON, "invalid number: digit after '.'");
        while (p < e && is_digit(*p))
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        integral = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || !is_digit(*p))
            return store_json_fail(j, REEL_EINVALID_JSON, "invalid number: bad exponent");
        while (p < e && is_digit(*p))
            p++;
    }
    j->p = p;
    if (integral && !(neg && p - s == 2 && s[1] == '0')) { /* "-0" keeps its text */
        uint64_t v = 0;
        int overflow = 0;
        for (const char *q = s + neg; q < p; q++) {
            unsigned d = (unsigned)(*q - '0');
            if (v > (UINT64_MAX - d) / 10)
                overflow = 1;
            v = v * 10 + d;
        }
        if (!overflow && !neg) {
            store_mp_uint(out, v);
            return REEL_OK;
        }
        if (!overflow && v <= (uint64_t)INT64_MAX + 1) {
            store_mp_int(out, v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v);
            return REEL_OK;
        }
    }
    mp_ext_number(out, s, (size_t)(p - s));
    return REEL_OK;
}

static int literal(store_json_t *j, const char *word, store_buf_t *out, int kind)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n))
        return store_json_fail(j, REEL_EINVALID_JSON, "invalid literal (expected '%s')", word);
    j->p += n;
    if (kind < 0)
        store_mp_nil(out);
    else
        store_mp_bool(out, kind);
    return REEL_OK;
}

/* One scalar value at the cursor ('c' is its first byte). */
static int scalar(store_json_t *j, store_buf_t *out, int c)
{
    char tmp[8];
    switch (c) {
    case '"': return mp_string(j, out);
    case 't': return literal(j, "true", out, 1);
    case 'f': return literal(j, "false", out, 0);
    case 'n': return literal(j, "null", out, -1);
    default:
        if (c == '-' || is_digit(c))
            return number(j, out);
        return store_json_fail(j, REEL_EINVALID_JSON, "unexpected %s", show(c, tmp));
    }
}

/* An open container while transcoding: where its placeholder header is, how many
 * elements it has so far. */
struct open_container {
    size_t at;
    uint32_t n;
    int is_map;
};

int store_json_value(store_json_t *j, store_buf_t *out, int depth)
{
    int c = store_json_peek(j);
    if (c != '{' && c != '[')
        return scalar(j, out, c);
    /* Containers are walked with an explicit stack, not by recursion. */
    struct open_container local[32], *st = local, *top = NULL;
    size_t cap = 32, used = 0;
    int rc = REEL_OK;
    for (;;) {
        if (c == '{' || c == '[') { /* open one */
            if (depth + (int)used + 1 > j->max_depth) {
                rc = store_json_fail(j, REEL_ETOO_DEEP, "nesting deeper than %d levels at offset %zu",
                                     j->max_depth, (size_t)(j->p - j->start));
                break;
            }
            if (store_stack_room((void **)&st, &cap, used, local, sizeof *st)) {
                rc = REEL_ENOMEM;
                break;
            }
            top = &st[used++];
            top->is_map = c == '{';
            top->n = 0;
            top->at = placeholder(out);
            j->p++;
            c = store_json_peek(j);
            if (c == (top->is_map ? '}' : ']')) {
                j->p++;
                goto closed;
            }
        } else {
            if ((rc = scalar(j, out, c)))
                break;
            goto next;
        }
    element: /* at the start of an element of 'top' */
        if (top->is_map) {
            if (store_json_peek(j) != '"') {
                rc = store_json_fail(j, REEL_EINVALID_JSON, "expected a key string");
                break;
            }
            if ((rc = mp_string(j, out)) || (rc = store_json_expect(j, ':')))
                break;
        }
        c = store_json_peek(j);
        continue;
    next: /* after an element of 'top' */
        if (top->n == UINT32_MAX) {
            rc = store_json_fail(j, REEL_ETOO_LARGE, "too many elements");
            break;
        }
        top->n++;
        c = store_json_peek(j);
        if (c == ',') {
            j->p++;
            goto element;
        }
        if (c != (top->is_map ? '}' : ']')) {
            rc = store_json_fail(j, REEL_EINVALID_JSON, "expected ',' or '%c'",
                                 top->is_map ? '}' : ']');
            break;
        }
        j->p++;
    closed:
        fix_header(out, top->at, top->is_map ? HDR_MAP : HDR_ARRAY, top->n);
        if (--used == 0)
            break;
        top = &st[used - 1];
        goto next;
    }
    store_stack_free(st, local);
    if (!rc && store_buf_failed(out))
        rc = REEL_ENOMEM;
    return rc;
}

int store_json_to_msgpack(const char *text, size_t len, int max_depth, store_buf_t *out,
                          store_json_error_t *err)
{
    store_json_t j;
    store_json_init(&j, text, len, max_depth, err);
    size_t mark = out->len;
    int rc = store_json_value(&j, out, 0);
    if (!rc)
        rc = store_json_end(&j);
    if (!rc && store_buf_failed(out))
        rc = REEL_ENOMEM;
    if (rc)
        out->len = mark;
    return rc;
}

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
