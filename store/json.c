/* json.c -- JSON text to msgpack, streaming (contract in json.h; the other direction and
 * msgpack reading are in mp.c).
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

#include "store/err.h"
#include "store/json_int.h"

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

