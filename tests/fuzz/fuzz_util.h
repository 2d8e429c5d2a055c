/* fuzz_util.h -- helpers shared by the libFuzzer harnesses (docs/RELIABILITY.md §2): a
 * strict, independent JSON validator used as the oracle for
 * "the output is valid JSON", and a check macro that aborts with a message so libFuzzer
 * records the input as a crash.
 *
 * The validator is written here on purpose instead of reusing store/json.c: the code
 * under test must not be its own oracle. It follows RFC 8259 exactly (no trailing commas,
 * no leading zeros, no control characters in strings, escapes as listed) and checks that
 * strings are valid UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). A \u
 * escape may name a lone surrogate, as the grammar allows (issue 15).
 */
#ifndef REEL_FUZZ_UTIL_H
#define REEL_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_CHECK(cond, ...)                                                                \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "FUZZ CHECK FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

typedef struct fz_json {
    const unsigned char *p, *end;
    int depth;
} fz_json_t;

static void fz_ws(fz_json_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int fz_hex4(const unsigned char *p, const unsigned char *end, unsigned *v)
{
    if (end - p < 4)
        return 0;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

static int fz_string(fz_json_t *j)
{
    if (j->p >= j->end || *j->p != '"')
        return 0;
    j->p++;
    while (j->p < j->end) {
        unsigned c = *j->p;
        if (c == '"') {
            j->p++;
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            if (j->end - j->p < 2)
                return 0;
            unsigned e = j->p[1];
            if (strchr("\"\\/bfnrt", (int)e) && e) {
                j->p += 2;
                continue;
            }
            if (e != 'u')
                return 0;
            /* RFC 8259's grammar takes any \u escape, a lone surrogate's too: JSON.stringify
             * writes one for half a pair, and reel keeps it (docs/FORMAT.md, WTF-8). */
            unsigned v;
            if (!fz_hex4(j->p + 2, j->end, &v))
                return 0;
            j->p += 6;
            continue;
        }
        if (c < 0x80) {
            j->p++;
            continue;
        }
        size_t n;
        unsigned lo2 = 0x80, hi2 = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) n = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            if (c == 0xe0) lo2 = 0xa0;
            if (c == 0xed) hi2 = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            if (c == 0xf0) lo2 = 0x90;
            if (c == 0xf4) hi2 = 0x8f;
        } else
            return 0;
        if ((size_t)(j->end - j->p) < n || j->p[1] < lo2 || j->p[1] > hi2)
            return 0;
        for (size_t i = 2; i < n; i++)
            if ((j->p[i] & 0xc0) != 0x80)
                return 0;
        j->p += n;
    }
    return 0;
}

static int fz_digits(fz_json_t *j)
{
    const unsigned char *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s;
}

static int fz_number(fz_json_t *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!(j->p < j->end && *j->p >= '1' && *j->p <= '9') || !fz_digits(j))
        return 0;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!fz_digits(j))
            return 0;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!fz_digits(j))
            return 0;
    }
    return 1;
}

static int fz_value(fz_json_t *j);

static int fz_container(fz_json_t *j, int map)
{
    unsigned char close = map ? '}' : ']';
    if (++j->depth > 10000)
        return 0;
    j->p++;
    fz_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        fz_ws(j);
        if (map) {
            if (!fz_string(j))
                return 0;
            fz_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return 0;
            j->p++;
        }
        if (!fz_value(j))
            return 0;
        fz_ws(j);
        if (j->p >= j->end)
            return 0;
        if (*j->p == close) {
            j->p++;
            j->depth--;
            return 1;
        }
        if (*j->p != ',')
            return 0;
        j->p++;
    }
}

static int fz_lit(fz_json_t *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n))
        return 0;
    j->p += n;
    return 1;
}

static int fz_value(fz_json_t *j)
{
    fz_ws(j);
    if (j->p >= j->end)
        return 0;
    switch (*j->p) {
    case '{': return fz_container(j, 1);
    case '[': return fz_container(j, 0);
    case '"': return fz_string(j);
    case 't': return fz_lit(j, "true");
    case 'f': return fz_lit(j, "false");
    case 'n': return fz_lit(j, "null");
    default: return fz_number(j);
    }
}

/* 1 if [p, p+n) is exactly one valid JSON text (RFC 8259, UTF-8). */
static inline int fz_json_valid(const void *p, size_t n)
{
    fz_json_t j = {(const unsigned char *)p, (const unsigned char *)p + n, 0};
    if (!fz_value(&j))
        return 0;
    fz_ws(&j);
    return j.p == j.end;
}

/* Prints at most 200 bytes of 'p' escaped, for check messages. */
static inline const char *fz_show(const void *p, size_t n)
{
    static char out[1024];
    size_t o = 0;
    const unsigned char *s = p;
    for (size_t i = 0; i < n && i < 200 && o + 5 < sizeof out; i++)
        o += (size_t)snprintf(out + o, sizeof out - o, s[i] >= 0x20 && s[i] < 0x7f ? "%c" : "\\x%02x",
                              s[i]);
    out[o] = 0;
    return out;
}

/* ---- the store's value layout (store.h), in one place so the harnesses follow format
 * changes: only these two helpers know the header's fields. ---- */
#ifdef REEL_STORE_INT_H
/* Fills the STORE_HEADER_LEN - 1 header bytes after the flags byte with plausible values
 * (session number 1, sequence 7, a 2026 time, a zero chain hash). */
static inline void fz_header(uint8_t *h)
{
    memset(h, 0, STORE_HEADER_LEN - 1);
    store__put_u64(h, 1);
    store__put_u64(h + 8, 7);
    store__put_u64(h + 16, 1795000000000ull);
}

/* Decodes a stored event value the way reads do. */
static inline int fz_value_decode(const uint8_t *p, size_t n, store_buf_t *scratch,
                                  store_event_view_t *v)
{
    uint64_t num = 0;
    return store__value_decode(NULL, NULL, 42, p, n, scratch, v, &num);
}
#endif

#endif
