/* ingest_invalid.c -- bad input changes nothing and says where it is (docs/HTTP.md "Append", README.md "Guarantees"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testutil.h"

static char dir[TU_PATH_MAX];
static store_t *st;

static void setup(void)
{
    tu_watchdog(60);
    tu_tmpdir(dir);
    st = tu_open(dir, 8u << 20, 1);
}

static void teardown(void)
{
    store_close(st);
    st = NULL;
    tu_rmrf(dir);
}

TestSuite(ingest_invalid, .init = setup, .fini = teardown);

static const char *const good[] = {
    "{\"type\":\"item.started\",\"data\":{\"a\":[1,2,{\"b\":null}]}}",
    "{\"type\":\"item.delta\",\"source\":\"agent\",\"synthetic\":false,\"data\":\"x\"}",
    "{\"type\":\"t\",\"native_session_id\":\"n\",\"raw\":{\"k\":\"v\"}}",
};

/* Builds a request of 'n' events where event 'bad' is 'ev' and the others are valid. */
static char *request(int format, size_t n, size_t bad, const char *ev)
{
    store_buf_t b = STORE_BUF_INIT;
    if (format == INGEST_JSON)
        store_buf_puts(&b, "[\n");
    for (size_t i = 0; i < n; i++) {
        if (format == INGEST_JSON && i)
            store_buf_puts(&b, ",\n");
        store_buf_puts(&b, i == bad ? ev : good[i % 3]);
        if (format == INGEST_NDJSON)
            store_buf_putc(&b, '\n');
    }
    if (format == INGEST_JSON)
        store_buf_puts(&b, "\n]");
    cr_assert(!store_buf_failed(&b));
    size_t len;
    store_buf_cstr(&b);
    return (char *)store_buf_detach(&b, &len);
}

#define ANY_INDEX ((size_t)-2) /* where the error is reported is not specified */

/* Parses 'text' and requires error 'want' at event 'index' (and NDJSON 'line' if not 0),
 * nothing kept in the batch and the session still absent from the store. */
static void expect_bad(const char *what, int format, const char *text, int want, size_t index,
                       size_t line, const ingest_limits_t *limits)
{
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    ingest_batch_t ib;
    ingest_error_t e;
    memset(&e, 0, sizeof e);
    e.index = (size_t)-1;
    TU_OK(ingest_batch_init(&ib, "bad", 3));
    int rc = ingest_parse(&ib, text, strlen(text), format, limits ? limits : &lim, &e);
    size_t kept = ingest_count(&ib);
    ingest_batch_release(&ib);
    const char *fmt = format == INGEST_JSON ? "array" : "ndjson";
    cr_assert_eq(rc, want, "%s (%s): got %s (%d) \"%s\", want %s", what, fmt, reel_err_code(rc),
                 rc, e.text, reel_err_code(want));
    cr_assert_eq(e.err, want, "%s (%s): ingest_error_t.err is %d, want %d", what, fmt, e.err,
                 want);
    if (index != ANY_INDEX)
        cr_assert_eq(e.index, index, "%s (%s): error index %zu, want %zu (\"%s\")", what, fmt,
                 e.index, index, e.text);
    if (line)
        cr_assert_eq(e.line, line, "%s (%s): error line %zu, want %zu (\"%s\")", what, fmt,
                     e.line, line, e.text);
    cr_assert(e.text[0] != '\0', "%s (%s): no error text", what, fmt);
    cr_assert_eq(kept, 0, "%s (%s): %zu events kept after a failed parse", what, fmt, kept);
    store_session_t rec;
    TU_ERR(tu_session(st, "bad", &rec), REEL_ESESSION_NOT_FOUND);
}

/* The bad event at index 3 of 5, as a JSON array and as NDJSON (line 4). */
static void check_event(const char *what, const char *ev, int want)
{
    char *t = request(INGEST_JSON, 5, 3, ev);
    expect_bad(what, INGEST_JSON, t, want, 3, 0, NULL);
    free(t);
    t = request(INGEST_NDJSON, 5, 3, ev);
    expect_bad(what, INGEST_NDJSON, t, want, 3, 4, NULL);
    free(t);
    /* and alone, as the first event */
    t = request(INGEST_NDJSON, 1, 0, ev);
    expect_bad(what, INGEST_NDJSON, t, want, 0, 1, NULL);
    free(t);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

Test(ingest_invalid, valid_requests_parse_in_both_formats)
{
    char *t = request(INGEST_JSON, 5, 99, NULL);
    tu_result_t res;
    TU_OK(tu_append(st, "ok", t, INGEST_JSON, -1, &res, NULL));
    cr_assert_eq(res.n, 5);
    cr_assert_eq(res.last_sequence, 5);
    free(t);
    t = request(INGEST_NDJSON, 5, 99, NULL);
    TU_OK(tu_append(st, "ok", t, INGEST_NDJSON, -1, &res, NULL));
    cr_assert_eq(res.n, 5);
    cr_assert_eq(res.last_sequence, 10);
    free(t);
    TU_OK(tu_append(st, "ok", "  {\"type\":\"single\"}  ", INGEST_JSON, -1, &res, NULL));
    cr_assert_eq(res.n, 1);
    /* NDJSON: blank lines skipped, CRLF line ends, no final newline */
    TU_OK(tu_append(st, "ok", "\n{\"type\":\"a\"}\r\n\r\n  \n{\"type\":\"b\"}", INGEST_NDJSON, -1,
                    &res, NULL));
    cr_assert_eq(res.n, 2);
    cr_assert_eq(res.last_sequence, 13);
}

Test(ingest_invalid, missing_type_is_invalid_event)
{
    check_event("missing type", "{\"data\":1}", REEL_EINVALID_EVENT);
    check_event("empty object", "{}", REEL_EINVALID_EVENT);
}

Test(ingest_invalid, type_not_a_string_is_invalid_event)
{
    check_event("numeric type", "{\"type\":5}", REEL_EINVALID_EVENT);
    check_event("null type", "{\"type\":null}", REEL_EINVALID_EVENT);
    check_event("object type", "{\"type\":{\"a\":\"b\"}}", REEL_EINVALID_EVENT);
    check_event("array type", "{\"type\":[\"t\"]}", REEL_EINVALID_EVENT);
}

Test(ingest_invalid, type_outside_1_to_128_bytes_is_invalid_event)
{
    check_event("empty type", "{\"type\":\"\"}", REEL_EINVALID_EVENT);
    char *t = repeat('t', 129), ev[300];
    snprintf(ev, sizeof ev, "{\"type\":\"%s\"}", t);
    check_event("129-byte type", ev, REEL_EINVALID_EVENT);
    /* 128 bytes is fine */
    t[128] = '\0';
    snprintf(ev, sizeof ev, "{\"type\":\"%s\"}", t);
    TU_OK(tu_append(st, "ok", ev, INGEST_JSON, -1, NULL, NULL));
    /* bytes, not characters: 43 x U+20AC is 129 bytes */
    store_buf_t b = STORE_BUF_INIT;
    store_buf_puts(&b, "{\"type\":\"");
    for (int i = 0; i < 43; i++)
        store_buf_puts(&b, "\xe2\x82\xac");
    store_buf_puts(&b, "\"}");
    check_event("129-byte multibyte type", store_buf_cstr(&b), REEL_EINVALID_EVENT);
    store_buf_release(&b);
    free(t);
}

Test(ingest_invalid, bad_optional_fields_are_invalid_event)
{
    check_event("empty event_id", "{\"type\":\"t\",\"event_id\":\"\"}", REEL_EINVALID_EVENT);
    check_event("numeric event_id", "{\"type\":\"t\",\"event_id\":7}", REEL_EINVALID_EVENT);
    char *id = repeat('i', 129), ev[400];
    snprintf(ev, sizeof ev, "{\"type\":\"t\",\"event_id\":\"%s\"}", id);
    check_event("129-byte event_id", ev, REEL_EINVALID_EVENT);
    id[128] = '\0';
    snprintf(ev, sizeof ev, "{\"type\":\"t\",\"event_id\":\"%s\"}", id);
    TU_OK(tu_append(st, "ok", ev, INGEST_JSON, -1, NULL, NULL));
    free(id);
    check_event("numeric source", "{\"type\":\"t\",\"source\":1}", REEL_EINVALID_EVENT);
    check_event("string synthetic", "{\"type\":\"t\",\"synthetic\":\"yes\"}", REEL_EINVALID_EVENT);
    check_event("numeric synthetic", "{\"type\":\"t\",\"synthetic\":1}", REEL_EINVALID_EVENT);
    check_event("object native_session_id", "{\"type\":\"t\",\"native_session_id\":{}}",
                REEL_EINVALID_EVENT);
    char *n = repeat('n', 257), ev2[400];
    snprintf(ev2, sizeof ev2, "{\"type\":\"t\",\"native_session_id\":\"%s\"}", n);
    check_event("257-byte native_session_id", ev2, REEL_EINVALID_EVENT);
    free(n);
    /* nulls are allowed where the spec says "or null" */
    TU_OK(tu_append(st, "ok",
                    "{\"type\":\"t\",\"source\":null,\"synthetic\":null,\"native_session_id\":null}",
                    INGEST_JSON, -1, NULL, NULL));
}

Test(ingest_invalid, unknown_field_is_invalid_event_naming_the_field)
{
    check_event("unknown field", "{\"type\":\"t\",\"colour\":\"red\"}", REEL_EINVALID_EVENT);
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    ingest_batch_t ib;
    ingest_error_t e;
    TU_OK(ingest_batch_init(&ib, "bad", 3));
    TU_ERR(ingest_parse(&ib, "{\"type\":\"t\",\"colour\":\"red\"}", 27, INGEST_JSON, &lim, &e),
           REEL_EINVALID_EVENT);
    ingest_batch_release(&ib);
    cr_assert_not_null(strstr(e.text, "colour"), "error text \"%s\" does not name the field",
                       e.text);
    /* field names are case-sensitive */
    check_event("Type", "{\"Type\":\"t\"}", REEL_EINVALID_EVENT);
}

Test(ingest_invalid, store_assigned_fields_are_accepted_and_ignored)
{
    tu_result_t res;
    TU_OK(tu_append(st, "mine",
                    "{\"session_id\":\"other\",\"sequence\":99,\"position\":12345,"
                    "\"time\":\"2020-01-01T00:00:00.000Z\",\"event_id\":\"e\",\"type\":\"t\","
                    "\"data\":{\"k\":1}}",
                    INGEST_JSON, -1, &res, NULL));
    cr_assert_eq(res.first_sequence, 1);
    store_session_t rec;
    TU_ERR(tu_session(st, "other", &rec), REEL_ESESSION_NOT_FOUND);
    tu_events_t ev = {0};
    tu_read_session(st, "mine", &ev);
    cr_assert_eq(ev.n, 1);
    cr_assert_eq(ev.v[0].sequence, 1);
    cr_assert_neq(ev.v[0].position, 12345);
    cr_assert_str_eq(ev.v[0].data, "{\"k\":1}");
    tu_events_free(&ev);
}

Test(ingest_invalid, event_that_is_not_an_object_is_invalid_event)
{
    check_event("number", "42", REEL_EINVALID_EVENT);
    check_event("string", "\"t\"", REEL_EINVALID_EVENT);
    check_event("null", "null", REEL_EINVALID_EVENT);
    check_event("nested array", "[{\"type\":\"t\"}]", REEL_EINVALID_EVENT);
}

Test(ingest_invalid, request_without_events_is_invalid_event)
{
    expect_bad("empty body", INGEST_JSON, "", REEL_EINVALID_EVENT, 0, 0, NULL);
    expect_bad("empty array", INGEST_JSON, " [ ] ", REEL_EINVALID_EVENT, 0, 0, NULL);
    expect_bad("empty ndjson", INGEST_NDJSON, "", REEL_EINVALID_EVENT, 0, 0, NULL);
    expect_bad("blank ndjson", INGEST_NDJSON, "\n\n  \n", REEL_EINVALID_EVENT, 0, 0, NULL);
}

Test(ingest_invalid, malformed_json_is_invalid_json)
{
    check_event("trailing comma", "{\"type\":\"t\",}", REEL_EINVALID_JSON);
    check_event("unclosed object", "{\"type\":\"t\"", REEL_EINVALID_JSON);
    check_event("single quotes", "{\"type\":'t'}", REEL_EINVALID_JSON);
    check_event("missing colon", "{\"type\" \"t\"}", REEL_EINVALID_JSON);
    check_event("unquoted key", "{type:\"t\"}", REEL_EINVALID_JSON);
    check_event("leading zero", "{\"type\":\"t\",\"data\":01}", REEL_EINVALID_JSON);
    check_event("bare dot", "{\"type\":\"t\",\"data\":1.}", REEL_EINVALID_JSON);
    check_event("leading dot", "{\"type\":\"t\",\"data\":.5}", REEL_EINVALID_JSON);
    check_event("plus sign", "{\"type\":\"t\",\"data\":+1}", REEL_EINVALID_JSON);
    check_event("bare minus", "{\"type\":\"t\",\"data\":-}", REEL_EINVALID_JSON);
    check_event("empty exponent", "{\"type\":\"t\",\"data\":1e}", REEL_EINVALID_JSON);
    check_event("NaN", "{\"type\":\"t\",\"data\":NaN}", REEL_EINVALID_JSON);
    check_event("Infinity", "{\"type\":\"t\",\"data\":-Infinity}", REEL_EINVALID_JSON);
    check_event("short literal", "{\"type\":\"t\",\"data\":tru}", REEL_EINVALID_JSON);
    check_event("control char in string", "{\"type\":\"t\",\"data\":\"a\x01z\"}",
                REEL_EINVALID_JSON);
    check_event("tab in string", "{\"type\":\"t\",\"data\":\"a\tz\"}", REEL_EINVALID_JSON);
    check_event("bad escape", "{\"type\":\"t\",\"data\":\"\\q\"}", REEL_EINVALID_JSON);
    check_event("short \\u escape", "{\"type\":\"t\",\"data\":\"\\u12\"}", REEL_EINVALID_JSON);
    check_event("non-hex \\u escape", "{\"type\":\"t\",\"data\":\"\\u12g4\"}",
                REEL_EINVALID_JSON);
    check_event("unterminated string", "{\"type\":\"t\",\"data\":\"abc}", REEL_EINVALID_JSON);
    check_event("array missing comma", "{\"type\":\"t\",\"data\":[1 2]}", REEL_EINVALID_JSON);
    check_event("comment", "{\"type\":\"t\" /* c */}", REEL_EINVALID_JSON);
}

Test(ingest_invalid, trailing_garbage_is_invalid_json)
{
    expect_bad("garbage after object", INGEST_JSON, "{\"type\":\"t\"} x", REEL_EINVALID_JSON, 0,
               0, NULL);
    expect_bad("two objects", INGEST_JSON, "{\"type\":\"t\"}{\"type\":\"t\"}",
               REEL_EINVALID_JSON, ANY_INDEX, 0, NULL);
    expect_bad("garbage after array", INGEST_JSON, "[{\"type\":\"t\"}] ]", REEL_EINVALID_JSON,
               ANY_INDEX, 0, NULL);
    expect_bad("unclosed array", INGEST_JSON, "[{\"type\":\"t\"},{\"type\":\"t\"}",
               REEL_EINVALID_JSON, ANY_INDEX, 0, NULL);
    expect_bad("two objects on a line", INGEST_NDJSON,
               "{\"type\":\"t\"}\n{\"type\":\"t\"} {\"type\":\"t\"}\n", REEL_EINVALID_JSON, 1,
               2, NULL);
    expect_bad("object over two lines", INGEST_NDJSON, "{\"type\":\"t\"}\n{\"type\":\n\"t\"}\n",
               REEL_EINVALID_JSON, 1, 2, NULL);
}

Test(ingest_invalid, ndjson_error_counts_events_and_lines_separately)
{
    expect_bad("bad third event after blank lines", INGEST_NDJSON,
               "{\"type\":\"a\"}\n\n{\"type\":\"b\"}\n\n\n{\"type\":\"c\",}\n{\"type\":\"d\"}\n",
               REEL_EINVALID_JSON, 2, 6, NULL);
    expect_bad("missing type after blank lines", INGEST_NDJSON,
               "\n{\"type\":\"a\"}\n\n{\"data\":1}\n", REEL_EINVALID_EVENT, 1, 4, NULL);
}

Test(ingest_invalid, invalid_utf8_is_rejected)
{
    check_event("0xff byte", "{\"type\":\"t\",\"data\":\"a\xff\"}", REEL_EINVALID_JSON);
    check_event("lone continuation", "{\"type\":\"t\",\"data\":\"\x80\"}", REEL_EINVALID_JSON);
    check_event("overlong slash", "{\"type\":\"t\",\"data\":\"\xc0\xaf\"}", REEL_EINVALID_JSON);
    check_event("overlong 3-byte", "{\"type\":\"t\",\"data\":\"\xe0\x80\xaf\"}",
                REEL_EINVALID_JSON);
    check_event("truncated sequence", "{\"type\":\"t\",\"data\":\"\xe2\x82\"}",
                REEL_EINVALID_JSON);
    check_event("encoded surrogate", "{\"type\":\"t\",\"data\":\"\xed\xa0\x80\"}",
                REEL_EINVALID_JSON);
    check_event("above U+10FFFF", "{\"type\":\"t\",\"data\":\"\xf4\x90\x80\x80\"}",
                REEL_EINVALID_JSON);
    check_event("5-byte form", "{\"type\":\"t\",\"data\":\"\xf8\x88\x80\x80\x80\"}",
                REEL_EINVALID_JSON);
    check_event("invalid key", "{\"type\":\"t\",\"data\":{\"\xfe\":1}}", REEL_EINVALID_JSON);
    check_event("invalid type", "{\"type\":\"\xc3\"}", REEL_EINVALID_JSON);
    check_event("invalid event_id", "{\"type\":\"t\",\"event_id\":\"\xc3(\"}",
                REEL_EINVALID_JSON);
    check_event("invalid raw", "{\"type\":\"t\",\"raw\":[\"\xff\"]}", REEL_EINVALID_JSON);
    check_event("invalid byte outside strings", "{\"type\":\"t\",\"data\":\xff}",
                REEL_EINVALID_JSON);
}

Test(ingest_invalid, lone_surrogate_escapes_are_accepted)
{
    /* JSON.stringify's output for a string holding half a surrogate pair is valid JSON:
     * accepted (stored as WTF-8, see json_roundtrip.c); raw surrogate BYTES are not
     * (invalid_utf8_is_rejected above). */
    static const char *const ok[] = {
        "{\"type\":\"t\",\"data\":\"\\ud800\"}",
        "{\"type\":\"t\",\"data\":\"\\ud800x\"}",
        "{\"type\":\"t\",\"data\":\"\\udc00\"}",
        "{\"type\":\"t\",\"data\":\"\\ud800\\u0041\"}",
        "{\"type\":\"t\",\"data\":\"\\ud83d\\ud83d\"}",
        "{\"type\":\"t\",\"data\":\"\\ude00\\ud83d\"}",
        "{\"type\":\"t\",\"data\":{\"\\udfff\":1}}",
        "{\"type\":\"\\ud83d\",\"event_id\":\"\\udc00\",\"source\":\"\\ud800\"}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        TU_OK(tu_append(st, "lone", ok[i], INGEST_JSON, -1, NULL, NULL));
    /* still refused: a truncated or malformed escape after a high surrogate */
    check_event("high then bad escape", "{\"type\":\"t\",\"data\":\"\\ud800\\uzzzz\"}",
                REEL_EINVALID_JSON);
    check_event("high then truncated", "{\"type\":\"t\",\"data\":\"\\ud800\\u12\"}",
                REEL_EINVALID_JSON);
}

static char *nested(size_t depth, const char *inner)
{
    store_buf_t b = STORE_BUF_INIT;
    store_buf_puts(&b, "{\"type\":\"t\",\"data\":");
    for (size_t i = 0; i < depth; i++)
        store_buf_puts(&b, i % 2 ? "[" : "{\"k\":");
    store_buf_puts(&b, inner);
    for (size_t i = depth; i-- > 0;)
        store_buf_putc(&b, i % 2 ? ']' : '}');
    store_buf_putc(&b, '}');
    cr_assert(!store_buf_failed(&b));
    size_t len;
    store_buf_cstr(&b);
    return (char *)store_buf_detach(&b, &len);
}

Test(ingest_invalid, nesting_over_the_depth_limit_is_too_deep)
{
    /* the envelope is depth 1: 511 levels inside "data" make 512, the default limit */
    char *ok = nested(511, "1"), *deep = nested(512, "1");
    TU_OK(tu_append(st, "ok", ok, INGEST_JSON, -1, NULL, NULL));
    check_event("depth 513", deep, REEL_ETOO_DEEP);
    free(ok);
    free(deep);
    /* far too deep must fail cleanly too, not overflow the stack */
    char *huge = nested(200000, "1");
    check_event("depth 200001", huge, REEL_ETOO_DEEP);
    free(huge);
    /* an unclosed deep prefix: too deep is found before the end is */
    store_buf_t b = STORE_BUF_INIT;
    store_buf_puts(&b, "{\"type\":\"t\",\"data\":");
    for (int i = 0; i < 100000; i++)
        store_buf_putc(&b, '[');
    check_event("unclosed", store_buf_cstr(&b), REEL_ETOO_DEEP);
    store_buf_release(&b);
}

Test(ingest_invalid, depth_limit_is_configurable)
{
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    lim.max_depth = 4;
    char *ok = nested(3, "[]"), *deep = nested(4, "[]");
    ingest_batch_t ib;
    ingest_error_t e;
    TU_OK(ingest_batch_init(&ib, "ok", 2));
    /* 3 levels + the innermost [] + the envelope = 5 > 4 */
    int rc = ingest_parse(&ib, ok, strlen(ok), INGEST_JSON, &lim, &e);
    ingest_batch_release(&ib);
    TU_ERR(rc, REEL_ETOO_DEEP);
    free(ok);
    ok = nested(2, "[]");
    TU_OK(ingest_batch_init(&ib, "ok", 2));
    rc = ingest_parse(&ib, ok, strlen(ok), INGEST_JSON, &lim, &e);
    ingest_batch_release(&ib);
    TU_OK(rc);
    expect_bad("depth 6 with limit 4", INGEST_JSON, deep, REEL_ETOO_DEEP, 0, 0, &lim);
    free(ok);
    free(deep);
    /* raw is limited the same way */
    expect_bad("deep raw", INGEST_JSON, "{\"type\":\"t\",\"raw\":[[[[1]]]]}", REEL_ETOO_DEEP, 0, 0,
               &lim);
}

Test(ingest_invalid, too_many_events_or_too_big_an_event_is_too_large)
{
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    lim.max_batch_events = 4;
    char *t = request(INGEST_NDJSON, 5, 99, NULL);
    expect_bad("5 events, limit 4", INGEST_NDJSON, t, REEL_ETOO_LARGE, 4, 5, &lim);
    free(t);
    t = request(INGEST_JSON, 5, 99, NULL);
    expect_bad("5 events, limit 4", INGEST_JSON, t, REEL_ETOO_LARGE, 4, 0, &lim);
    free(t);
    t = request(INGEST_JSON, 4, 99, NULL);
    TU_OK(tu_append(st, "ok", t, INGEST_JSON, -1, NULL, NULL));
    free(t);

    lim = (ingest_limits_t)INGEST_LIMITS_DEFAULT;
    lim.max_event_bytes = 200;
    char *big = repeat('x', 300), ev[400];
    snprintf(ev, sizeof ev, "{\"type\":\"t\",\"data\":\"%s\"}", big);
    t = request(INGEST_NDJSON, 3, 1, ev);
    expect_bad("300-byte event, limit 200", INGEST_NDJSON, t, REEL_ETOO_LARGE, 1, 2, &lim);
    free(t);
    t = request(INGEST_JSON, 3, 1, ev);
    expect_bad("300-byte event, limit 200", INGEST_JSON, t, REEL_ETOO_LARGE, 1, 0, &lim);
    free(t);
    free(big);
}

Test(ingest_invalid, failed_parse_keeps_the_events_of_earlier_calls)
{
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    ingest_batch_t ib;
    ingest_error_t e;
    TU_OK(ingest_batch_init(&ib, "keep", 4));
    char *first = request(INGEST_NDJSON, 2, 99, NULL);
    char *bad = request(INGEST_NDJSON, 3, 2, "{\"type\":\"t\",\"oops\":1}");
    TU_OK(ingest_parse(&ib, first, strlen(first), INGEST_NDJSON, &lim, &e));
    TU_ERR(ingest_parse(&ib, bad, strlen(bad), INGEST_NDJSON, &lim, &e), REEL_EINVALID_EVENT);
    cr_assert_eq(e.index, 2);
    cr_assert_eq(ingest_count(&ib), 2, "count %zu after a failed second parse, want 2",
                 ingest_count(&ib));
    TU_OK(ingest_append(st, &ib));
    cr_assert_eq(ib.b.first_sequence, 1);
    cr_assert_eq(ib.b.last_sequence, 2);
    ingest_batch_release(&ib);
    free(first);
    free(bad);
    tu_events_t ev = {0};
    tu_read_session(st, "keep", &ev);
    cr_assert_eq(ev.n, 2);
    cr_assert_str_eq(ev.v[0].type, "item.started");
    cr_assert_str_eq(ev.v[1].type, "item.delta");
    tu_events_free(&ev);
}

Test(ingest_invalid, invalid_session_ids_are_rejected)
{
    static const struct {
        const char *what, *id;
        size_t len;
    } bad[] = {
        {"empty", "", 0},
        {"embedded NUL", "a\0b", 3},
        {"tab", "a\tb", 3},
        {"newline", "a\nb", 3},
        {"DEL", "a\x7f", 2},
        {"dot", ".", 1},
        {"dot dot", "..", 2},
        {"overlong slash", "\xc0\xaf", 2},
        {"surrogate", "\xed\xa0\x80", 3},
        {"0xFF", "a\xff", 2},
        {"truncated sequence", "caf\xc3", 4},
        {"past U+10FFFF", "\xf4\x90\x80\x80", 4},
    };
    ingest_batch_t ib;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = ingest_batch_init(&ib, bad[i].id, bad[i].len);
        if (rc == 0)
            ingest_batch_release(&ib);
        cr_assert_eq(rc, REEL_EINVALID_SESSION_ID, "session id %s accepted (%s)", bad[i].what,
                     reel_err_code(rc));
        cr_assert_eq(store_session_id_valid(bad[i].id, bad[i].len), 0,
                     "store_session_id_valid accepts %s", bad[i].what);
    }
    char *id = repeat('a', 1025);
    TU_ERR(ingest_batch_init(&ib, id, 1025), REEL_EINVALID_SESSION_ID);
    cr_assert_eq(store_session_id_valid(id, 1025), 0);
    TU_OK(ingest_batch_init(&ib, id, 1024));
    ingest_batch_release(&ib);
    cr_assert_eq(store_session_id_valid(id, 1024), 1);
    free(id);
    for (int c = 0; c < 0x20; c++) { /* every C0 control, alone and inside */
        char one[3] = {'a', (char)c, 'b'};
        cr_assert_eq(store_session_id_valid(one, 3), 0, "control 0x%02x accepted", c);
        cr_assert_eq(store_session_id_valid(one + 1, 1), 0, "control 0x%02x accepted", c);
    }
    static const char *valid_ids[] = {"a/b", "%2F", "a b", "caf\xc3\xa9", "a\\b", "a?b",
                                      "...", "\xf0\x9f\x98\x80", "\xef\xbf\xbf",
                                      "\xf4\x8f\xbf\xbf", "/home/me/project/sub"};
    for (size_t i = 0; i < sizeof valid_ids / sizeof valid_ids[0]; i++)
        cr_assert_eq(store_session_id_valid(valid_ids[i], strlen(valid_ids[i])), 1,
                     "'%s' refused", valid_ids[i]);

    static const char all[] = "ABCXYZabcxyz0189._:~-";
    cr_assert_eq(store_session_id_valid(all, strlen(all)), 1);
    TU_OK(ingest_batch_init(&ib, all, strlen(all)));
    TU_OK(ingest_parse(&ib, "{\"type\":\"t\"}", 12, INGEST_JSON,
                       &(ingest_limits_t)INGEST_LIMITS_DEFAULT, NULL));
    TU_OK(ingest_append(st, &ib));
    ingest_batch_release(&ib);
    store_session_t rec;
    TU_OK(tu_session(st, all, &rec));
    cr_assert_eq(rec.id_len, strlen(all));
    cr_assert_str_eq(rec.id, all);

    /* the store refuses a bad id even without ingest */
    store_batch_t b;
    store_batch_init(&b, STORE_OP_APPEND, "a\x01b", 3);
    TU_ERR(store_submit(st, &b), REEL_EINVALID_SESSION_ID);
}

/* "." and ".." match the character set but name path segments: a client or proxy that
 * normalises /v1/sessions/../events would reach another resource. */
Test(ingest_invalid, dot_and_dot_dot_session_ids_are_rejected)
{
    ingest_batch_t ib;
    static const char *const ids[] = {".", ".."};
    for (size_t i = 0; i < 2; i++) {
        int rc = ingest_batch_init(&ib, ids[i], strlen(ids[i]));
        if (rc == 0)
            ingest_batch_release(&ib);
        cr_assert_eq(rc, REEL_EINVALID_SESSION_ID, "session id '%s' accepted (%s)", ids[i],
                     reel_err_code(rc));
        cr_assert_eq(store_session_id_valid(ids[i], strlen(ids[i])), 0,
                     "store_session_id_valid accepts '%s'", ids[i]);
    }
    /* dots inside an id are fine */
    cr_assert_eq(store_session_id_valid("a..b", 4), 1);
}

Test(ingest_invalid, event_size_limit_is_inclusive)
{
    /* an event of exactly L bytes passes a limit of L and fails a limit of L - 1 */
    char ev[300];
    int len = snprintf(ev, sizeof ev, "{\"type\":\"t\",\"data\":\"%0200d\"}", 7);
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    ingest_batch_t ib;
    ingest_error_t e;
    lim.max_event_bytes = (size_t)len;
    TU_OK(ingest_batch_init(&ib, "ok", 2));
    int rc = ingest_parse(&ib, ev, (size_t)len, INGEST_NDJSON, &lim, &e);
    ingest_batch_release(&ib);
    cr_assert_eq(rc, 0, "a %d-byte event fails a limit of %d: %s", len, len, e.text);
    lim.max_event_bytes = (size_t)len - 1;
    expect_bad("one byte over", INGEST_NDJSON, ev, REEL_ETOO_LARGE, 0, 1, &lim);
}

Test(ingest_invalid, ingest_add_validates_and_keeps_non_json_raw_as_a_string)
{
    ingest_batch_t ib;
    ingest_error_t e;
    store_buf_t data = STORE_BUF_INIT;
    TU_OK(store_json_to_msgpack("{\"b\":2,\"a\":[1]}", 15, 8, &data, NULL));
    TU_OK(ingest_batch_init(&ib, "added", 5));
    TU_ERR(ingest_add(&ib, "", "agent", 0, NULL, NULL, data.data, data.len, NULL, 0, &e),
           REEL_EINVALID_EVENT);
    char *longtype = repeat('t', 129);
    TU_ERR(ingest_add(&ib, longtype, NULL, 0, NULL, NULL, NULL, 0, NULL, 0, &e),
           REEL_EINVALID_EVENT);
    free(longtype);
    cr_assert_eq(ingest_count(&ib), 0);
    TU_OK(ingest_add(&ib, "item.delta", "agent", 1, "th_1", "ev-1", data.data, data.len,
                     "plain text line", 15, &e));
    TU_OK(ingest_add(&ib, "item.done", NULL, -1, NULL, NULL, NULL, 0, "{\"k\":[true]}", 12, &e));
    cr_assert_eq(ingest_count(&ib), 2);
    TU_OK(ingest_append(st, &ib));
    ingest_batch_release(&ib);
    store_buf_release(&data);

    tu_events_t ev = {0};
    tu_read_session(st, "added", &ev);
    cr_assert_eq(ev.n, 2);
    cr_assert_str_eq(ev.v[0].event_id, "ev-1");
    cr_assert_str_eq(ev.v[0].type, "item.delta");
    cr_assert_str_eq(ev.v[0].data, "{\"b\":2,\"a\":[1]}");
    size_t vl;
    const char *raw = tu_json_member(ev.v[0].json, strlen(ev.v[0].json), "raw", &vl);
    cr_assert(raw && vl == 17 && !memcmp(raw, "\"plain text line\"", 17), "raw: %s",
              ev.v[0].json);
    const char *syn = tu_json_member(ev.v[0].json, strlen(ev.v[0].json), "synthetic", &vl);
    cr_assert(syn && vl == 4 && !memcmp(syn, "true", 4), "synthetic: %s", ev.v[0].json);
    raw = tu_json_member(ev.v[1].json, strlen(ev.v[1].json), "raw", &vl);
    cr_assert(raw && vl == 12 && !memcmp(raw, "{\"k\":[true]}", 12), "raw: %s", ev.v[1].json);
    cr_assert_eq(strlen(ev.v[1].event_id), 36, "no generated id: %s", ev.v[1].json);
    tu_events_free(&ev);
}
