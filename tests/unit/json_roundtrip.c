/* json_roundtrip.c -- "data" and "raw" come back exactly as sent (docs/HTTP.md "Append"): key order,
 * strings, integers and number text, through ingest -> store -> replay_write_event, and
 * through store_json_to_msgpack / store_mp_to_json directly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testutil.h"

static char dir[TU_PATH_MAX];
static store_t *st;

static void setup(void)
{
    tu_watchdog(120);
    tu_tmpdir(dir);
    st = tu_open(dir, 64u << 20, 1);
}

static void teardown(void)
{
    store_close(st);
    st = NULL;
    tu_rmrf(dir);
}

TestSuite(json_roundtrip, .init = setup, .fini = teardown);

/* JSON -> msgpack -> JSON without the store. */
static void direct(const char *what, const char *in, size_t in_len, const char *want,
                   size_t want_len)
{
    store_buf_t mp = STORE_BUF_INIT, out = STORE_BUF_INIT;
    store_json_error_t e;
    memset(&e, 0, sizeof e);
    int rc = store_json_to_msgpack(in, in_len, 64, &mp, &e);
    cr_assert_eq(rc, 0, "%s: store_json_to_msgpack: %s (%s)", what, reel_err_code(rc), e.text);
    store_mp_t m = {mp.data, mp.data + mp.len};
    TU_OK(store_mp_to_json(&m, &out, 64));
    cr_assert(m.p == m.end, "%s: store_mp_to_json left %zu bytes", what, (size_t)(m.end - m.p));
    cr_assert(!store_buf_failed(&out));
    cr_assert(out.len == want_len && !memcmp(out.data, want, want_len),
              "%s: direct round trip gave\n  %.*s\nwant\n  %.*s", what,
              (int)(out.len > 300 ? 300 : out.len), (const char *)out.data,
              (int)(want_len > 300 ? 300 : want_len), want);
    store_buf_release(&mp);
    store_buf_release(&out);
}

/* Appends {"type":"t","data":<in>,"raw":<in>} and requires both to read back as 'want'. */
static void through_store(const char *what, const char *in, const char *want)
{
    store_buf_t ev = STORE_BUF_INIT;
    store_buf_printf(&ev, "{\"type\":\"t\",\"data\":%s,\"raw\":%s}", in, in);
    ingest_error_t e;
    memset(&e, 0, sizeof e);
    tu_result_t res;
    int rc = tu_append(st, "rt", store_buf_cstr(&ev), INGEST_JSON, -1, &res, &e);
    store_buf_release(&ev);
    cr_assert_eq(rc, 0, "%s: append: %s (%s)", what, reel_err_code(rc), e.text);

    store_read_t r;
    tu_events_t got = {0};
    TU_OK(store_read_begin(st, &r));
    rc = store_events_after(&r, "rt", 2, res.last_sequence - 1, 1, tu_collect_cb, &got, NULL);
    store_read_end(&r);
    TU_OK(rc);
    cr_assert_eq(got.n, 1, "%s: event not read back", what);
    const char *json = got.v[0].json;
    cr_assert(tu_json_valid(json, strlen(json)), "%s: rendered event is not JSON: %.300s", what,
              json);
    size_t wl = strlen(want), dl = strlen(got.v[0].data);
    cr_assert(dl == wl && !memcmp(got.v[0].data, want, wl),
              "%s: data came back as\n  %.300s\nwant\n  %.300s", what, got.v[0].data, want);
    size_t rl = 0;
    const char *raw = tu_json_member(json, strlen(json), "raw", &rl);
    cr_assert_not_null(raw, "%s: no raw with include_raw=1", what);
    cr_assert(rl == wl && !memcmp(raw, want, wl), "%s: raw came back as\n  %.*s\nwant\n  %.300s",
              what, (int)(rl > 300 ? 300 : rl), raw, want);
    tu_events_free(&got);
}

static void roundtrip(const char *what, const char *in, const char *want)
{
    direct(what, in, strlen(in), want, strlen(want));
    through_store(what, in, want);
}

static void same(const char *in) { roundtrip(in, in, in); }

Test(json_roundtrip, escapes_come_back_in_canonical_form)
{
    same("\"plain text\"");
    same("\"q\\\"uote b\\\\ackslash\"");
    same("\"nl\\n tab\\t cr\\r\"");
    same("\"ctl \\u0001 nul \\u0000 us \\u001f\"");
    same("\"\"");
    roundtrip("escaped slash", "\"a\\/b\"", "\"a/b\"");
    roundtrip("escaped letter", "\"\\u0041\\u0062\"", "\"Ab\"");
    roundtrip("escaped e-acute", "\"caf\\u00e9\"", "\"caf\xc3\xa9\"");
    roundtrip("upper-case hex", "\"caf\\u00E9\"", "\"caf\xc3\xa9\"");
    roundtrip("escaped euro", "\"\\u20ac\"", "\"\xe2\x82\xac\"");
    roundtrip("escaped 0x7f", "\"\\u007f\"", "\"\x7f\"");
    roundtrip("escaped U+FFFF", "\"\\uffff\"", "\"\xef\xbf\xbf\"");
    roundtrip("escaped control as short form", "\"\\u000a\"", "\"\\n\"");
    roundtrip("escapes in keys", "{\"k\\u00e9\\n\":1}", "{\"k\xc3\xa9\\n\":1}");
}

Test(json_roundtrip, surrogate_pairs_become_utf8)
{
    roundtrip("emoji", "\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"");
    roundtrip("upper-case pair", "\"\\uD83D\\uDE00\"", "\"\xf0\x9f\x98\x80\"");
    roundtrip("U+10000", "\"\\ud800\\udc00\"", "\"\xf0\x90\x80\x80\"");
    roundtrip("U+10FFFF", "\"\\udbff\\udfff\"", "\"\xf4\x8f\xbf\xbf\"");
    roundtrip("pair between text", "\"a\\ud83d\\ude00b\"", "\"a\xf0\x9f\x98\x80" "b\"");
    same("\"raw emoji \xf0\x9f\x98\x80 and \xe2\x82\xac\"");
}

/* The msgpack string stored for JSON string 'in' must be the bytes 'want'. */
static void stored_as(const char *in, const char *want, size_t want_len)
{
    store_buf_t mp = STORE_BUF_INIT;
    store_json_error_t e;
    TU_OK(store_json_to_msgpack(in, strlen(in), 8, &mp, &e));
    store_mp_t m = {mp.data, mp.data + mp.len};
    store_mp_obj_t o;
    TU_OK(store_mp_next(&m, &o));
    cr_assert_eq(o.type, STORE_MP_STR);
    cr_assert(o.len == want_len && !memcmp(o.ptr, want, want_len), "%s: stored %u bytes", in,
              o.len);
    store_buf_release(&mp);
}

Test(json_roundtrip, lone_surrogates_are_kept_as_wtf8)
{
    /* a lone surrogate escape is one UTF-16 code unit: stored as its 3-byte WTF-8 form and
     * written back as the same escape, lowercase, as JSON.stringify writes it */
    stored_as("\"\\ud83d\"", "\xed\xa0\xbd", 3);
    stored_as("\"\\uDE00\"", "\xed\xb8\x80", 3);
    stored_as("\"\\ude00\\ud83d\"", "\xed\xb8\x80\xed\xa0\xbd", 6); /* low, high: two lone */
    stored_as("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4);           /* a pair: joined */
    stored_as("\"\\ud83d\\ud83d\\ude00\"", "\xed\xa0\xbd\xf0\x9f\x98\x80", 7);
    stored_as("\"\\ud83dx\"", "\xed\xa0\xbdx", 4);
    same("\"\\ud83d\"");
    same("\"\\udc00\"");
    roundtrip("lone high then A", "\"\\ud800\\u0041\"", "\"\\ud800A\"");
    same("\"\\ude00\\ud83d\"");
    same("\"\\ud83d\\ud83d\"");
    same("\"a\\udfffb\\ud800\"");
    roundtrip("upper-case lone", "\"\\uD83D\"", "\"\\ud83d\"");
    roundtrip("high then pair", "\"\\ud83d\\ud83d\\ude00\"", "\"\\ud83d\xf0\x9f\x98\x80\"");
    same("{\"\\ud83d\":\"\\udc00\",\"k\\udfff\":[\"\\ud800\"]}");
    /* U+D000..U+D7FF also start with 0xED and stay raw UTF-8 */
    same("\"\xed\x80\x80 \xed\x9f\xbf\"");
    /* long strings: the escape is found at every offset of the word-at-a-time scans */
    for (int at = 0; at < 40; at++) {
        store_buf_t in = STORE_BUF_INIT, want = STORE_BUF_INIT;
        store_buf_putc(&in, '"');
        store_buf_putc(&want, '"');
        for (int i = 0; i < 40; i++) {
            store_buf_puts(&in, i == at ? "\\udbff" : i == at + 1 ? "\xed\x9f\xbf" : "x");
            store_buf_puts(&want, i == at ? "\\udbff" : i == at + 1 ? "\xed\x9f\xbf" : "x");
        }
        store_buf_putc(&in, '"');
        store_buf_putc(&want, '"');
        direct("long", (const char *)in.data, in.len, (const char *)want.data, want.len);
        store_buf_release(&in);
        store_buf_release(&want);
    }
    /* the writer works in 4096-byte chunks: a surrogate across a chunk boundary */
    for (size_t at = 4090; at < 4100; at++) {
        store_buf_t in = STORE_BUF_INIT, w = STORE_BUF_INIT, want = STORE_BUF_INIT;
        for (size_t i = 0; i < at; i++)
            store_buf_putc(&in, 'a');
        store_buf_put(&in, "\xed\xa0\xbd\xf0\x9f\x98\x80\xed\xb8\x80", 10);
        store_json_write_string(&w, (const char *)in.data, in.len);
        store_buf_putc(&want, '"');
        store_buf_put(&want, in.data, at);
        store_buf_puts(&want, "\\ud83d\xf0\x9f\x98\x80\\ude00\"");
        cr_assert(w.len == want.len && !memcmp(w.data, want.data, w.len), "at %zu", at);
        store_buf_release(&in);
        store_buf_release(&w);
        store_buf_release(&want);
    }
    /* a WTF-8 string cut in the middle of a surrogate is copied, not read past its end */
    store_buf_t out = STORE_BUF_INIT;
    store_json_write_string(&out, "a\xed\xa0", 3);
    cr_assert(out.len == 5 && !memcmp(out.data, "\"a\xed\xa0\"", 5));
    store_buf_release(&out);
}

Test(json_roundtrip, raw_surrogate_bytes_and_bad_utf8_are_refused)
{
    static const char *const bad[] = {"\"\xed\xa0\x80\"", "\"\xed\xbf\xbf\"", "\"\xc0\xaf\"",
                                      "\"\xe2\x82\"", "\"\xf0\x9f\x98\"", "\"\xe0\x80\xaf\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        store_buf_t mp = STORE_BUF_INIT;
        store_json_error_t e;
        TU_ERR(store_json_to_msgpack(bad[i], strlen(bad[i]), 8, &mp, &e), REEL_EINVALID_JSON);
        cr_assert_eq(e.offset, 1, "bad[%zu]: offset %zu", i, e.offset);
        cr_assert(strstr(e.text, "invalid UTF-8"), "bad[%zu]: %s", i, e.text);
        store_buf_release(&mp);
    }
}

Test(json_roundtrip, depth_limit_is_exact_and_named)
{
    for (int limit = 2; limit <= 1024; limit = limit * 2 + 1) {
        store_buf_t ok = STORE_BUF_INIT, deep = STORE_BUF_INIT, mp = STORE_BUF_INIT;
        for (int i = 0; i < limit; i++)
            store_buf_puts(&ok, i % 2 ? "[" : "{\"k\":");
        store_buf_putc(&ok, '1');
        for (int i = limit; i-- > 0;)
            store_buf_putc(&ok, i % 2 ? ']' : '}');
        store_buf_puts(&deep, "[");
        store_buf_put(&deep, ok.data, ok.len);
        store_buf_puts(&deep, "]");
        store_json_error_t e;
        TU_OK(store_json_to_msgpack((const char *)ok.data, ok.len, limit, &mp, &e));
        store_buf_t out = STORE_BUF_INIT;
        store_mp_t m = {mp.data, mp.data + mp.len};
        TU_OK(store_mp_to_json(&m, &out, limit));
        cr_assert(out.len == ok.len && !memcmp(out.data, ok.data, ok.len));
        m = (store_mp_t){mp.data, mp.data + mp.len};
        TU_OK(store_mp_skip(&m, limit));
        cr_assert(m.p == m.end);
        m = (store_mp_t){mp.data, mp.data + mp.len};
        cr_assert_neq(store_mp_skip(&m, limit - 1), 0);
        store_buf_clear(&mp);
        TU_ERR(store_json_to_msgpack((const char *)deep.data, deep.len, limit, &mp, &e),
               REEL_ETOO_DEEP);
        size_t at = 0; /* where the (limit + 1)-th container opens */
        for (int opened = 0; at < deep.len; at++)
            if ((deep.data[at] == '[' || deep.data[at] == '{') && ++opened == limit + 1)
                break;
        char want[80];
        snprintf(want, sizeof want, "nesting deeper than %d levels at offset %zu", limit, at);
        cr_assert_str_eq(e.text, want);
        store_buf_release(&ok);
        store_buf_release(&deep);
        store_buf_release(&mp);
        store_buf_release(&out);
    }
}

static void put_utf8(store_buf_t *b, uint32_t c)
{
    uint8_t u[4];
    size_t n;
    if (c < 0x80)
        u[0] = (uint8_t)c, n = 1;
    else if (c < 0x800)
        u[0] = (uint8_t)(0xc0 | c >> 6), u[1] = (uint8_t)(0x80 | (c & 63)), n = 2;
    else if (c < 0x10000)
        u[0] = (uint8_t)(0xe0 | c >> 12), u[1] = (uint8_t)(0x80 | (c >> 6 & 63)),
        u[2] = (uint8_t)(0x80 | (c & 63)), n = 3;
    else
        u[0] = (uint8_t)(0xf0 | c >> 18), u[1] = (uint8_t)(0x80 | (c >> 12 & 63)),
        u[2] = (uint8_t)(0x80 | (c >> 6 & 63)), u[3] = (uint8_t)(0x80 | (c & 63)), n = 4;
    store_buf_put(b, u, n);
}

/* Decodes the JSON string literal at 'p' (reel's output) into UTF-16 code units; -1 if
 * it holds the UTF-8 form of a surrogate (JSON text must be UTF-8). */
static size_t units_of(const uint8_t *p, size_t n, uint16_t *u)
{
    size_t k = 0, i = 1; /* after the opening quote */
    while (i < n - 1) {
        uint8_t c = p[i];
        if (c == '\\') {
            char e = (char)p[i + 1];
            if (e == 'u') {
                char h[5] = {(char)p[i + 2], (char)p[i + 3], (char)p[i + 4], (char)p[i + 5], 0};
                u[k++] = (uint16_t)strtoul(h, NULL, 16);
                i += 6;
                continue;
            }
            const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
            u[k++] = (uint16_t)to[strchr(from, e) - from];
            i += 2;
            continue;
        }
        uint32_t cp;
        size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
        for (size_t j = 1; j < len; j++)
            cp = cp << 6 | (p[i + j] & 0x3f);
        if (cp >= 0xd800 && cp < 0xe000)
            return (size_t)-1; /* raw surrogate bytes: the output is not UTF-8 */
        if (cp >= 0x10000)
            u[k++] = (uint16_t)(0xd800 + ((cp - 0x10000) >> 10)),
            u[k++] = (uint16_t)(0xdc00 + ((cp - 0x10000) & 0x3ff));
        else
            u[k++] = (uint16_t)cp;
        i += len;
    }
    return k;
}

Test(json_roundtrip, random_utf16_strings_come_back_as_the_same_code_units)
{
    /* Random JavaScript strings (UTF-16 code units: ASCII, controls, BMP, lone and paired
     * surrogates), written as JSON with each unit escaped or raw at random (raw only where
     * UTF-8 can hold it), must read back as the same code units. */
    uint64_t seed = 15;
    static const uint16_t pick[] = {'a', '"', '\\', '/', 0, 0x1f, 0x7f, 0xe9, 0x2028, 0x4e2d,
                                    0xd55c, 0xd7ff, 0xe000, 0xffff, 0xd800, 0xdbff, 0xdc00,
                                    0xdfff, 0xd83d, 0xde00};
    for (int round = 0; round < 3000; round++) {
        uint16_t in[64], got[128];
        size_t n = (size_t)(tu_rand(&seed) % 64);
        for (size_t i = 0; i < n; i++)
            in[i] = pick[tu_rand(&seed) % (sizeof pick / sizeof pick[0])];
        store_buf_t text = STORE_BUF_INIT, mp = STORE_BUF_INIT, out = STORE_BUF_INIT;
        store_buf_putc(&text, '"');
        for (size_t i = 0; i < n; i++) {
            uint16_t c = in[i];
            int pair = c >= 0xd800 && c < 0xdc00 && i + 1 < n && in[i + 1] >= 0xdc00 &&
                       in[i + 1] < 0xe000;
            int lone = !pair && c >= 0xd800 && c < 0xe000;
            if (lone || c < 0x20 || c == '"' || c == '\\' || tu_rand(&seed) % 2) {
                store_buf_printf(&text, "\\u%04X", c); /* escaped */
                if (pair)
                    store_buf_printf(&text, "\\u%04x", in[++i]);
            } else if (pair) {
                uint32_t cp = 0x10000 + ((uint32_t)(c - 0xd800) << 10) + (in[++i] - 0xdc00);
                put_utf8(&text, cp);
            } else {
                put_utf8(&text, c);
            }
        }
        store_buf_putc(&text, '"');
        store_json_error_t e;
        TU_OK(store_json_to_msgpack((const char *)text.data, text.len, 8, &mp, &e));
        store_mp_t m = {mp.data, mp.data + mp.len};
        TU_OK(store_mp_to_json(&m, &out, 8));
        size_t k = units_of(out.data, out.len, got);
        cr_assert(k == n && !memcmp(got, in, n * sizeof in[0]), "round %d: %zu units of %zu",
                  round, k, n);
        store_buf_release(&text);
        store_buf_release(&mp);
        store_buf_release(&out);
    }
}

/* Every scalar value from U+0020 up (minus '"' and '\\'), 64K code points per event,
 * once as raw UTF-8 and once as \u escapes (surrogate pairs for the astral planes). */
Test(json_roundtrip, all_of_unicode_round_trips)
{
    for (uint32_t lo = 0; lo < 0x110000; lo += 0x10000) {
        store_buf_t raw = STORE_BUF_INIT, esc = STORE_BUF_INIT;
        store_buf_putc(&raw, '"');
        store_buf_putc(&esc, '"');
        for (uint32_t c = lo < 0x20 ? 0x20 : lo; c < lo + 0x10000; c++) {
            if (c == '"' || c == '\\' || (c >= 0xd800 && c <= 0xdfff))
                continue;
            put_utf8(&raw, c);
            if (c < 0x10000) {
                store_buf_printf(&esc, "\\u%04x", c);
            } else {
                uint32_t v = c - 0x10000;
                store_buf_printf(&esc, "\\u%04X\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            }
        }
        store_buf_putc(&raw, '"');
        store_buf_putc(&esc, '"');
        char what[64];
        snprintf(what, sizeof what, "plane %u raw", lo >> 16);
        const char *r = store_buf_cstr(&raw);
        roundtrip(what, r, r);
        snprintf(what, sizeof what, "plane %u escaped", lo >> 16);
        roundtrip(what, store_buf_cstr(&esc), r);
        store_buf_release(&raw);
        store_buf_release(&esc);
    }
}

Test(json_roundtrip, object_key_order_and_duplicates_are_kept)
{
    same("{\"z\":1,\"a\":2}");
    same("{\"b\":{\"d\":[],\"c\":{}},\"a\":[{\"y\":null,\"x\":true},false]}");
    same("{\"a\":1,\"a\":2,\"a\":{\"a\":3}}");
    same("{\"\":\"empty key\"}");
    same("{}");
    same("[]");
    same("[[],{},[[]],\"\",0]");
    same("true");
    same("false");
    same("null");
    roundtrip("white space is dropped", " { \"a\" :\t[ 1 ,\n2 ] , \"b\" : { } } ",
              "{\"a\":[1,2],\"b\":{}}");
}

Test(json_roundtrip, integers_round_trip_exactly)
{
    static const char *const ints[] = {
        "0", "1", "-1", "127", "128", "-31", "-32", "-33", "255", "256", "-128", "-129",
        "65535", "65536", "-32768", "-32769", "4294967295", "4294967296", "-2147483648",
        "-2147483649", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "18446744073709551615",
        /* outside [-2^63, 2^64): kept as text */
        "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890",
        "-123456789012345678901234567890", "100000000000000000000000000000000000000000000001",
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        same(ints[i]);
    same("[-9223372036854775808,9223372036854775807,18446744073709551615,0]");
}

Test(json_roundtrip, negative_zero_integer_keeps_its_sign)
{
    same("-0");
}

Test(json_roundtrip, non_integer_numbers_keep_their_exact_text)
{
    static const char *const nums[] = {
        "0.1", "1e400", "-0.0", "1.5E-7", "1E+2", "1e-2", "0.0", "1.0", "100e0", "-1.5e+300",
        "5e-324", "1.7976931348623157e308", "3.14159265358979323846264338327950288419716939",
        "0.30000000000000004", "1e-400", "-1E-0", "12345678901234567890.5",
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        same(nums[i]);
    same("{\"f\":[0.1,1e400,-0.0,1.5E-7]}");
}

static char *nest(int levels, const char *inner)
{
    store_buf_t b = STORE_BUF_INIT;
    for (int i = 0; i < levels; i++)
        store_buf_puts(&b, i % 3 == 2 ? "{\"k\":" : "[");
    store_buf_puts(&b, inner);
    for (int i = levels; i-- > 0;)
        store_buf_puts(&b, i % 3 == 2 ? "}" : "]");
    size_t len;
    store_buf_cstr(&b);
    return (char *)store_buf_detach(&b, &len);
}

Test(json_roundtrip, nesting_up_to_the_limit_round_trips)
{
    /* default limit 512 counts the envelope: 511 levels inside "data" */
    char *ok = nest(511, "\"deep\"");
    through_store("511 levels", ok, ok);
    char *deep = nest(512, "1");
    store_buf_t ev = STORE_BUF_INIT;
    store_buf_printf(&ev, "{\"type\":\"t\",\"data\":%s}", deep);
    ingest_error_t e;
    TU_ERR(tu_append(st, "rt", store_buf_cstr(&ev), INGEST_JSON, -1, NULL, &e), REEL_ETOO_DEEP);
    store_buf_release(&ev);
    free(ok);
    free(deep);

    /* direct: N levels need max_depth >= N */
    store_buf_t mp = STORE_BUF_INIT;
    store_json_error_t je;
    char *ten = nest(10, "1");
    TU_OK(store_json_to_msgpack(ten, strlen(ten), 10, &mp, &je));
    store_buf_t out = STORE_BUF_INIT;
    store_mp_t m = {mp.data, mp.data + mp.len};
    TU_OK(store_mp_to_json(&m, &out, 10));
    cr_assert(out.len == strlen(ten) && !memcmp(out.data, ten, out.len));
    m = (store_mp_t){mp.data, mp.data + mp.len};
    store_buf_clear(&out);
    cr_assert_neq(store_mp_to_json(&m, &out, 9), 0, "store_mp_to_json ignored max_depth");
    store_buf_clear(&mp);
    TU_ERR(store_json_to_msgpack(ten, strlen(ten), 9, &mp, &je), REEL_ETOO_DEEP);
    store_buf_release(&mp);
    store_buf_release(&out);
    free(ten);
}

Test(json_roundtrip, one_mebibyte_string_round_trips)
{
    size_t n = 1u << 20;
    store_buf_t s = STORE_BUF_INIT;
    uint64_t seed = 42;
    store_buf_putc(&s, '"');
    for (size_t i = 0; i < n; i++) {
        uint64_t r = tu_rand(&seed);
        char c = (char)(0x20 + r % 95);
        if (c == '"' || c == '\\')
            c = 'x';
        store_buf_putc(&s, c);
    }
    store_buf_putc(&s, '"');
    cr_assert(!store_buf_failed(&s));
    const char *t = store_buf_cstr(&s);
    roundtrip("1 MiB string", t, t);
    store_buf_release(&s);
}

Test(json_roundtrip, envelope_strings_round_trip)
{
    tu_result_t res;
    TU_OK(tu_append(st, "env",
                    "{\"event_id\":\"id\\u00e9\\\"\",\"type\":\"t\\u00e9\\n\",\"source\":"
                    "\"s\\ud83d\\ude00\",\"native_session_id\":\"n\\\\1\",\"synthetic\":true}",
                    INGEST_JSON, -1, &res, NULL));
    tu_events_t ev = {0};
    tu_read_session(st, "env", &ev);
    cr_assert_eq(ev.n, 1);
    const char *j = ev.v[0].json;
    size_t jl = strlen(j), vl;
    const char *v;
    v = tu_json_member(j, jl, "event_id", &vl);
    cr_assert(v && vl == 8 && !memcmp(v, "\"id\xc3\xa9\\\"\"", vl), "event_id: %s", j);
    v = tu_json_member(j, jl, "type", &vl);
    cr_assert(v && vl == 7 && !memcmp(v, "\"t\xc3\xa9\\n\"", vl), "type: %s", j);
    v = tu_json_member(j, jl, "source", &vl);
    cr_assert(v && vl == 7 && !memcmp(v, "\"s\xf0\x9f\x98\x80\"", vl), "source: %s", j);
    v = tu_json_member(j, jl, "native_session_id", &vl);
    cr_assert(v && vl == 6 && !memcmp(v, "\"n\\\\1\"", vl), "native_session_id: %s", j);
    v = tu_json_member(j, jl, "synthetic", &vl);
    cr_assert(v && vl == 4 && !memcmp(v, "true", 4), "synthetic: %s", j);
    tu_events_free(&ev);
}

static int render_no_raw(void *arg, const store_event_view_t *ev)
{
    return replay_write_event(arg, ev, 0);
}

Test(json_roundtrip, envelope_has_the_spec_fields_in_order)
{
    TU_OK(tu_append(st, "env", "{\"type\":\"a\"}", INGEST_JSON, -1, NULL, NULL));
    TU_OK(tu_append(st, "env",
                    "{\"event_id\":\"e2\",\"type\":\"b\",\"source\":\"agent\",\"synthetic\":false,"
                    "\"native_session_id\":\"th\",\"data\":{\"x\":1},\"raw\":[2]}",
                    INGEST_JSON, -1, NULL, NULL));
    tu_events_t ev = {0};
    tu_read_session(st, "env", &ev);
    cr_assert_eq(ev.n, 2);
    static const char *const keys[] = {"session_id", "sequence", "position", "event_id",
                                       "time",       "type",     "source",   "synthetic",
                                       "native_session_id",      "data",     "raw"};
    const char *j = ev.v[1].json;
    size_t jl = strlen(j), vl;
    const char *prev = j;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = tu_json_member(j, jl, keys[i], &vl);
        cr_assert_not_null(v, "member %s missing in %s", keys[i], j);
        cr_assert_gt(v, prev, "member %s out of order in %s", keys[i], j);
        prev = v;
    }
    const char *v = tu_json_member(j, jl, "session_id", &vl);
    cr_assert(vl == 5 && !memcmp(v, "\"env\"", 5), "%s", j);
    v = tu_json_member(j, jl, "sequence", &vl);
    cr_assert(vl == 1 && *v == '2', "%s", j);
    v = tu_json_member(j, jl, "position", &vl);
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)ev.v[1].position);
    cr_assert(vl == strlen(want) && !memcmp(v, want, vl), "%s", j);
    v = tu_json_member(j, jl, "time", &vl);
    cr_assert(vl == 26 && v[0] == '"' && v[11] == 'T' && v[20] == '.' && v[24] == 'Z',
              "time not RFC 3339 UTC ms: %s", j);
    store_buf_t t = STORE_BUF_INIT;
    replay_write_time(&t, (int64_t)ev.v[1].time_ms);
    cr_assert(t.len == vl && !memcmp(t.data, v, vl), "time member differs from time_ms");
    store_buf_release(&t);
    cr_assert_str_eq(ev.v[1].data, "{\"x\":1}");

    /* absent optional fields are still present in the envelope; raw only on request */
    j = ev.v[0].json;
    jl = strlen(j);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert_not_null(tu_json_member(j, jl, keys[i], &vl), "member %s missing in %s",
                           keys[i], j);
    store_buf_t out = STORE_BUF_INIT;
    store_read_t r;
    TU_OK(store_read_begin(st, &r));
    int rc = store_events_after(&r, "env", 3, 0, 10, render_no_raw, &out, NULL);
    store_read_end(&r);
    TU_OK(rc);
    cr_assert_null(strstr(store_buf_cstr(&out), "\"raw\""), "raw without include_raw: %s",
                   store_buf_cstr(&out));
    store_buf_release(&out);
    tu_events_free(&ev);
}

Test(json_roundtrip, replay_write_time_is_rfc3339_utc_with_milliseconds)
{
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {0, "\"1970-01-01T00:00:00.000Z\""},
        {1795352400123, "\"2026-11-22T13:00:00.123Z\""},
        {951868799999, "\"2000-02-29T23:59:59.999Z\""},
        {946598400001, "\"1999-12-31T00:00:00.001Z\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        store_buf_t b = STORE_BUF_INIT;
        replay_write_time(&b, cases[i].ms);
        cr_assert_str_eq(store_buf_cstr(&b), cases[i].want, "%lld", (long long)cases[i].ms);
        store_buf_release(&b);
    }
}

Test(json_roundtrip, msgpack_encoding_of_numbers)
{
    static const struct {
        const char *json;
        int type;
        uint64_t u;
        int64_t i;
    } cases[] = {
        {"0", STORE_MP_UINT, 0, 0},
        {"18446744073709551615", STORE_MP_UINT, UINT64_MAX, 0},
        {"9223372036854775807", STORE_MP_UINT, INT64_MAX, 0},
        {"-1", STORE_MP_INT, 0, -1},
        {"-9223372036854775808", STORE_MP_INT, 0, INT64_MIN},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        store_buf_t mp = STORE_BUF_INIT;
        TU_OK(store_json_to_msgpack(cases[k].json, strlen(cases[k].json), 4, &mp, NULL));
        store_mp_t m = {mp.data, mp.data + mp.len};
        store_mp_obj_t o;
        TU_OK(store_mp_next(&m, &o));
        cr_assert_eq(o.type, cases[k].type, "%s: type %d", cases[k].json, o.type);
        if (o.type == STORE_MP_UINT)
            cr_assert_eq(o.u, cases[k].u, "%s", cases[k].json);
        else
            cr_assert_eq(o.i, cases[k].i, "%s", cases[k].json);
        cr_assert(m.p == m.end);
        store_buf_release(&mp);
    }
    static const char *const text[] = {"0.1", "1e400", "-0.0", "18446744073709551616",
                                       "-9223372036854775809"};
    for (size_t k = 0; k < sizeof text / sizeof text[0]; k++) {
        store_buf_t mp = STORE_BUF_INIT;
        TU_OK(store_json_to_msgpack(text[k], strlen(text[k]), 4, &mp, NULL));
        store_mp_t m = {mp.data, mp.data + mp.len};
        store_mp_obj_t o;
        TU_OK(store_mp_next(&m, &o));
        cr_assert_eq(o.type, STORE_MP_EXT, "%s: type %d", text[k], o.type);
        cr_assert_eq(o.ext, STORE_MP_EXT_NUMBER, "%s: ext %d", text[k], o.ext);
        cr_assert(o.len == strlen(text[k]) && !memcmp(o.ptr, text[k], o.len), "%s", text[k]);
        store_buf_release(&mp);
    }
}

Test(json_roundtrip, msgpack_written_by_hand_converts_to_json)
{
    store_buf_t mp = STORE_BUF_INIT, out = STORE_BUF_INIT;
    store_mp_map(&mp, 7);
    store_mp_str(&mp, "n", 1), store_mp_nil(&mp);
    store_mp_str(&mp, "b", 1), store_mp_bool(&mp, 1);
    store_mp_str(&mp, "u", 1), store_mp_uint(&mp, 300);
    store_mp_str(&mp, "i", 1), store_mp_int(&mp, -70000);
    store_mp_str(&mp, "s", 1), store_mp_str(&mp, "x\"\n\xc3\xa9", 5);
    store_mp_str(&mp, "a", 1), store_mp_array(&mp, 2), store_mp_bool(&mp, 0), store_mp_uint(&mp, 0);
    store_mp_str(&mp, "e", 1), store_mp_map(&mp, 0);
    cr_assert(!store_buf_failed(&mp));
    store_mp_t m = {mp.data, mp.data + mp.len};
    TU_OK(store_mp_to_json(&m, &out, 8));
    cr_assert_str_eq(store_buf_cstr(&out),
                     "{\"n\":null,\"b\":true,\"u\":300,\"i\":-70000,\"s\":\"x\\\"\\n\xc3\xa9\","
                     "\"a\":[false,0],\"e\":{}}");
    m = (store_mp_t){mp.data, mp.data + mp.len};
    TU_OK(store_mp_skip(&m, 8));
    cr_assert(m.p == m.end, "store_mp_skip did not skip the whole map");
    store_buf_release(&mp);
    store_buf_release(&out);
}

Test(json_roundtrip, json_write_string_escapes_what_json_requires)
{
    store_buf_t b = STORE_BUF_INIT;
    store_json_write_string(&b, "a\"b\\c\nd\te\x01" "f\xc3\xa9/\x7f", 15);
    cr_assert_str_eq(store_buf_cstr(&b), "\"a\\\"b\\\\c\\nd\\te\\u0001f\xc3\xa9/\x7f\"");
    store_buf_clear(&b);
    store_json_write_string(&b, "a\0b", 3);
    cr_assert_str_eq(store_buf_cstr(&b), "\"a\\u0000b\"");
    store_buf_release(&b);
}

Test(json_roundtrip, truncated_msgpack_is_corrupt_not_a_crash)
{
    static const char doc[] = "{\"k\":[1,-2,\"str\",0.5,{\"x\":null},18446744073709551615,true]}";
    store_buf_t mp = STORE_BUF_INIT, out = STORE_BUF_INIT;
    TU_OK(store_json_to_msgpack(doc, strlen(doc), 8, &mp, NULL));
    for (size_t n = 0; n < mp.len; n++) {
        /* a copy of exactly n bytes so ASan sees any read past the end */
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, mp.data, n);
        store_mp_t m = {p, p + n};
        store_buf_clear(&out);
        int rc = store_mp_to_json(&m, &out, 8);
        cr_assert_eq(rc, REEL_ECORRUPT, "prefix of %zu/%zu bytes: %s", n, mp.len,
                     reel_err_code(rc));
        m = (store_mp_t){p, p + n};
        cr_assert_neq(store_mp_skip(&m, 8), 0, "store_mp_skip accepted a %zu-byte prefix", n);
        free(p);
    }
    /* random bytes: any answer but no crash */
    uint64_t seed = 7;
    for (int round = 0; round < 2000; round++) {
        size_t n = 1 + tu_rand(&seed) % 40;
        uint8_t *p = malloc(n);
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)tu_rand(&seed);
        store_mp_t m = {p, p + n};
        store_buf_clear(&out);
        (void)store_mp_to_json(&m, &out, 8);
        cr_assert(m.p <= p + n, "reader ran past the end");
        free(p);
    }
    /* 100k nested arrays: refused at max_depth, without recursing further */
    store_buf_t deep = STORE_BUF_INIT;
    for (int i = 0; i < 100000; i++)
        store_mp_array(&deep, 1);
    store_mp_nil(&deep);
    store_mp_t m = {deep.data, deep.data + deep.len};
    store_buf_clear(&out);
    cr_assert_neq(store_mp_to_json(&m, &out, 64), 0);
    m = (store_mp_t){deep.data, deep.data + deep.len};
    cr_assert_neq(store_mp_skip(&m, 64), 0);
    store_buf_release(&deep);
    store_buf_release(&mp);
    store_buf_release(&out);
}

Test(json_roundtrip, json_errors_report_line_and_column)
{
    store_buf_t mp = STORE_BUF_INIT;
    store_json_error_t e;
    memset(&e, 0, sizeof e);
    static const char text[] = "[1,\n 2,\n x]";
    TU_ERR(store_json_to_msgpack(text, strlen(text), 8, &mp, &e), REEL_EINVALID_JSON);
    cr_assert_eq(e.line, 3, "line %d", e.line);
    cr_assert_eq(e.column, 2, "column %d", e.column);
    cr_assert_eq(e.offset, 9, "offset %zu", e.offset);
    cr_assert(e.text[0], "no error text");
    /* a too-deep text fails without recursing: 1M '[' */
    size_t n = 1u << 20;
    char *deep = malloc(n);
    memset(deep, '[', n);
    store_buf_clear(&mp);
    TU_ERR(store_json_to_msgpack(deep, n, STORE_JSON_MAX_DEPTH, &mp, &e), REEL_ETOO_DEEP);
    /* a limit above the hard ceiling is capped */
    store_buf_clear(&mp);
    TU_ERR(store_json_to_msgpack(deep, n, 1 << 30, &mp, &e), REEL_ETOO_DEEP);
    free(deep);
    store_buf_release(&mp);
}
