/* json.h -- JSON text <-> reel's stored msgpack encoding, without a DOM.
 *
 * The store keeps event bodies as msgpack (store.h). This file converts in both
 * directions by streaming, which is what makes ingest and reads fast and exact:
 *  - objects keep their key order, duplicate keys are kept as given;
 *  - strings are validated UTF-8 text (escapes decoded, invalid bytes rejected) stored as
 *    WTF-8: a \uD800-\uDBFF escape directly followed by a \uDC00-\uDFFF one is joined into
 *    one 4-byte code point, any other surrogate escape is a lone UTF-16 code unit kept as
 *    its 3-byte form ED A0..BF xx (which raw UTF-8 input can never hold); every JSON
 *    writer here renders it back as the same escape, lowercase, as JSON.stringify does;
 *  - integers in [-2^63, 2^64) become msgpack integers; every other number (fractions,
 *    exponents, bigger integers) is kept as msgpack ext type 1 holding the number's text,
 *    so "0.1", "1e400" and 123456789012345678901234567890 come back byte for byte.
 *
 * Rules:
 *  - No allocation except through the caller's store_buf_t (sticky OOM, see buf.h) and,
 *    beyond 32 levels of nesting, the heap stack of open containers: nothing recurses.
 *  - Nesting deeper than 'max_depth' fails with REEL_ETOO_DEEP ("nesting deeper than N
 *    levels at offset O").
 *  - The msgpack reader never trusts its input: every length is checked against the end.
 */
#ifndef REEL_JSON_H
#define REEL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "store/buf.h"

#define STORE_JSON_MAX_DEPTH 100000 /* ceiling for any caller's limit (--max-depth) */
#define STORE_JSON_DEFAULT_DEPTH 512 /* the default limit of one event's nesting */
#define STORE_MP_EXT_NUMBER 1    /* msgpack ext type: a JSON number's text */

/* Where and why parsing failed (shaped like jansson's json_error_t). */
typedef struct store_json_error {
    size_t offset; /* byte offset in the text */
    int line;      /* 1-based */
    int column;    /* 1-based, in bytes */
    char text[160];
} store_json_error_t;

/* A parse cursor over caller-owned text (borrowed for the cursor's life). */
typedef struct store_json {
    const char *start, *p, *end;
    int max_depth;
    store_json_error_t *err; /* may be NULL */
} store_json_t;

void store_json_init(store_json_t *j, const char *text, size_t len, int max_depth,
                     store_json_error_t *err);
/* Skips JSON white space; returns the next byte or -1 at the end. */
int store_json_peek(store_json_t *j);
/* Consumes 'c' (after white space) or fails with REEL_EINVALID_JSON. */
int store_json_expect(store_json_t *j, char c);
/* Parses a string into 'out' as UTF-8 (not NUL-terminated). */
int store_json_string(store_json_t *j, store_buf_t *out);
/* Transcodes one value at the cursor into msgpack appended to 'out'; 'depth' is the
 * nesting level of the value's container (0 at top level). */
int store_json_value(store_json_t *j, store_buf_t *out, int depth);
/* Records an error at the cursor and returns 'code'. */
int store_json_fail(store_json_t *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fails unless only white space is left. */
int store_json_end(store_json_t *j);

/* One whole text holding one JSON value -> msgpack appended to 'out'. */
int store_json_to_msgpack(const char *text, size_t len, int max_depth, store_buf_t *out,
                          store_json_error_t *err);

/* ---- msgpack writing (thin wrappers over msgpack-c's packer) ---- */

void store_mp_str(store_buf_t *out, const char *s, size_t len);
void store_mp_nil(store_buf_t *out);
void store_mp_bool(store_buf_t *out, int v);
void store_mp_uint(store_buf_t *out, uint64_t v);
void store_mp_int(store_buf_t *out, int64_t v);
void store_mp_array(store_buf_t *out, uint32_t n);
void store_mp_map(store_buf_t *out, uint32_t n);
void store_mp_bin(store_buf_t *out, const void *p, size_t len);

/* ---- msgpack reading ---- */

enum store_mp_type {
    STORE_MP_NIL, STORE_MP_BOOL, STORE_MP_UINT, STORE_MP_INT, STORE_MP_FLOAT,
    STORE_MP_STR, STORE_MP_BIN, STORE_MP_ARRAY, STORE_MP_MAP, STORE_MP_EXT
};

typedef struct store_mp {
    const uint8_t *p, *end; /* borrowed */
} store_mp_t;

typedef struct store_mp_obj {
    int type;           /* enum store_mp_type */
    uint64_t u;         /* UINT, BOOL (0/1), ARRAY/MAP element count */
    int64_t i;          /* INT (negative values) */
    double f;           /* FLOAT */
    const uint8_t *ptr; /* STR, BIN, EXT payload (borrowed) */
    uint32_t len;       /* STR, BIN, EXT payload length */
    int8_t ext;         /* EXT type */
} store_mp_obj_t;

/* Reads one object header (containers: only the count; their elements follow).
 * REEL_ECORRUPT on truncated or invalid input. */
int store_mp_next(store_mp_t *m, store_mp_obj_t *o);
/* Skips one whole value, containers included, to at most 'max_depth' levels. */
int store_mp_skip(store_mp_t *m, int max_depth);

/* ---- JSON writing ---- */

/* Appends 's' as a JSON string literal (quotes and escapes added). */
void store_json_write_string(store_buf_t *out, const char *s, size_t len);
/* Appends one msgpack value at 'm' as JSON, advancing 'm'. REEL_ECORRUPT on bad input. */
int store_mp_to_json(store_mp_t *m, store_buf_t *out, int max_depth);

#endif
