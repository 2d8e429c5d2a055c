/* replay_event.c -- the pure renderers of replay/event.c and the msgpack getters of
 * replay/mpget.c and jsjson.c, on hand-made msgpack (no store). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay_int.h"
#include "tests/unit/testutil.h"

/* Transcodes JSON text to msgpack into 'mp' (asserts). */
static void mp_of(const char *json, store_buf_t *mp)
{
    store_json_error_t e;
    memset(&e, 0, sizeof e);
    store_buf_init(mp);
    int rc = store_json_to_msgpack(json, strlen(json), 64, mp, &e);
    cr_assert_eq(rc, 0, "%s: %s", json, e.text);
}

static void assert_buf(store_buf_t *b, const char *want)
{
    cr_assert(!store_buf_failed(b));
    cr_assert_str_eq(store_buf_cstr(b), want);
}

static void time_is(int64_t ms, const char *want)
{
    store_buf_t b = STORE_BUF_INIT;
    replay_write_time(&b, ms);
    assert_buf(&b, want);
    store_buf_release(&b);
}

Test(replay_event, write_time_renders_rfc3339_with_milliseconds)
{
    time_is(0, "\"1970-01-01T00:00:00.000Z\"");
    time_is(1795352400123LL, "\"2026-11-22T13:00:00.123Z\"");
    time_is(951782400007LL, "\"2000-02-29T00:00:00.007Z\""); /* a leap day */
    time_is(253402300799999LL, "\"9999-12-31T23:59:59.999Z\"");
    time_is(-86400000LL, "\"1969-12-31T00:00:00.000Z\""); /* gmtime_r path */
    time_is(253402300800000LL, "\"253402300800000\""); /* past 9999: kept as a number */
}

/* An event view over a body made from a JSON array of the seven body fields. */
static void view(store_event_view_t *ev, store_buf_t *mp, const char *fields)
{
    mp_of(fields, mp);
    memset(ev, 0, sizeof *ev);
    ev->session = "s1";
    ev->session_len = 2;
    ev->sequence = 3;
    ev->position = 17;
    ev->time_ms = 1795352400123ULL;
    ev->body = mp->data;
    ev->body_len = mp->len;
}

Test(replay_event, write_event_renders_the_envelope_in_order)
{
    store_buf_t mp, out = STORE_BUF_INIT;
    store_event_view_t ev;
    view(&ev, &mp, "[\"e1\",\"item.delta\",\"agent\",false,null,{\"z\":1,\"a\":[0.10]},\"r\"]");
    TU_OK(replay_write_event(&out, &ev, 0));
    assert_buf(&out, "{\"session_id\":\"s1\",\"sequence\":3,\"position\":17,\"event_id\":\"e1\","
                     "\"time\":\"2026-11-22T13:00:00.123Z\",\"type\":\"item.delta\","
                     "\"source\":\"agent\",\"synthetic\":false,\"native_session_id\":null,"
                     "\"data\":{\"z\":1,\"a\":[0.10]}}");
    store_buf_clear(&out);
    TU_OK(replay_write_event(&out, &ev, 1));
    cr_assert(strstr(store_buf_cstr(&out), ",\"raw\":\"r\"}"));
    store_buf_release(&out);
    store_buf_release(&mp);
}

/* A tenant's copy of a kept envelope: replay_drop_position() cuts exactly what
 * REPLAY_NO_POSITION leaves out, whatever the id and the data hold. */
Test(replay_event, drop_position_equals_rendering_without_it)
{
    static const char *ids[] = {"s1", "a\"b", "x\\\",\"sequence\":1,\"position\":2", "\u00e9/\"q"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        store_buf_t mp, kept = STORE_BUF_INIT, plain = STORE_BUF_INIT;
        store_event_view_t ev;
        view(&ev, &mp, "[\"e1\",\"t\",\"agent\",false,null,{\"sequence\":1,\"position\":9},null]");
        ev.session = ids[i];
        ev.session_len = strlen(ids[i]);
        store_buf_puts(&kept, "[x,");
        size_t mark = kept.len;
        TU_OK(replay_write_event(&kept, &ev, 0));
        cr_assert(strstr(store_buf_cstr(&kept), ",\"position\":17,"));
        replay_drop_position(&kept, mark);
        store_buf_puts(&plain, "[x,");
        TU_OK(replay_write_event(&plain, &ev, REPLAY_NO_POSITION));
        assert_buf(&kept, store_buf_cstr(&plain));
        cr_assert(!strstr(store_buf_cstr(&plain), "\"position\":17"));
        cr_assert(strstr(store_buf_cstr(&plain), "\"position\":9}"), "the data keeps its own");
        store_buf_release(&kept);
        store_buf_release(&plain);
        store_buf_release(&mp);
    }
}

Test(replay_event, client_time_follows_time_as_given_and_is_absent_when_nil)
{
    static const struct {
        const char *body, *want;
    } cases[] = {
        {"[\"e1\",\"t\",null,null,null,null,null,1700000000123]",
         ",\"client_time\":1700000000123,\"type\""},
        {"[\"e1\",\"t\",null,null,null,null,null,\"2026-01-02 03:04:05.1+05:30\"]",
         ",\"client_time\":\"2026-01-02 03:04:05.1+05:30\",\"type\""},
        {"[\"e1\",\"t\",null,null,null,null,null,null]", ",\"type\""},
        {"[\"e1\",\"t\",null,null,null,null,null]", ",\"type\""}, /* format 1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        store_buf_t mp, out = STORE_BUF_INIT;
        store_event_view_t ev;
        view(&ev, &mp, cases[i].body);
        TU_OK(replay_write_event(&out, &ev, 1));
        const char *j = store_buf_cstr(&out), *t = strstr(j, "\"time\":\"2026-11-22T13:00:00.123Z\"");
        cr_assert(t, "%s", j);
        t += strlen("\"time\":\"2026-11-22T13:00:00.123Z\"");
        cr_assert(!strncmp(t, cases[i].want, strlen(cases[i].want)), "%s", j);
        cr_assert_eq(strstr(j, "client_time") != NULL, i < 2, "%s", j);
        store_mp_t f[REPLAY_NFIELDS];
        TU_OK(replay__body_fields(&ev, f));
        cr_assert_eq(*f[REPLAY_F_CLIENT_TIME].p, i < 2 ? *f[REPLAY_F_CLIENT_TIME].p : 0xc0);
        cr_assert_eq(f[REPLAY_F_CLIENT_TIME].end, i == 3 ? f[REPLAY_F_CLIENT_TIME].p + 1
                                                         : mp.data + mp.len);
        store_buf_release(&out);
        store_buf_release(&mp);
    }
}

Test(replay_event, write_event_refuses_a_malformed_body_and_writes_nothing)
{
    static const char *bodies[] = {"[\"e1\",\"t\"]", "{\"a\":1}", "\"x\"",
                                   "[1,2,3,4,5,6]", "[1,2,3,4,5,6,7,8,9]",
                                   "[1,2,3,4,5,6,7,8,{},10]"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        store_buf_t mp, out = STORE_BUF_INIT;
        store_event_view_t ev;
        view(&ev, &mp, bodies[i]);
        store_buf_puts(&out, "x");
        TU_ERR(replay_write_event(&out, &ev, 1), REEL_ECORRUPT);
        cr_assert_eq(out.len, 1, "%s", bodies[i]);
        store_buf_release(&out);
        store_buf_release(&mp);
    }
    /* A body cut in the middle of a field. */
    store_buf_t mp, out = STORE_BUF_INIT;
    store_event_view_t ev;
    view(&ev, &mp, "[\"e1\",\"t\",null,null,null,{\"k\":\"long value\"},null]");
    ev.body_len -= 8;
    TU_ERR(replay_write_event(&out, &ev, 1), REEL_ECORRUPT);
    cr_assert_eq(out.len, 0);
    store_buf_release(&out);
    store_buf_release(&mp);
}

Test(replay_event, event_type_and_type_listed)
{
    store_buf_t mp;
    store_event_view_t ev;
    view(&ev, &mp, "[\"e1\",\"item.delta\",null,null,null,null,null]");
    const char *t;
    size_t n;
    TU_OK(replay_event_type(&ev, &t, &n));
    cr_assert_eq(n, 10);
    cr_assert(!memcmp(t, "item.delta", n));
    cr_assert(replay_type_listed(&ev, "item.delta"));
    cr_assert(replay_type_listed(&ev, "usage,item.delta"));
    cr_assert(replay_type_listed(&ev, "item.delta,usage"));
    cr_assert(!replay_type_listed(&ev, "item"));
    cr_assert(!replay_type_listed(&ev, "item.delta2,item.delt"));
    cr_assert(!replay_type_listed(&ev, ""));
    store_buf_release(&mp);
    view(&ev, &mp, "[\"e1\",7,null,null,null,null,null]");
    TU_ERR(replay_event_type(&ev, &t, &n), REEL_ECORRUPT);
    cr_assert(!replay_type_listed(&ev, "7"));
    store_buf_release(&mp);
}

Test(replay_event, write_session_renders_nulls_and_metadata)
{
    store_session_t rec;
    memset(&rec, 0, sizeof rec);
    strcpy(rec.id, "s1");
    rec.id_len = 2;
    strcpy(rec.agent, "claude");
    rec.agent_len = 6;
    rec.status = STORE_ENDED;
    rec.created_ms = 1795352400123LL;
    rec.last_sequence = rec.event_count = 2;
    rec.bytes = 99;
    store_buf_t out = STORE_BUF_INIT, mp;
    TU_OK(replay_write_session(&out, &rec));
    assert_buf(&out, "{\"id\":\"s1\",\"agent\":\"claude\",\"native_session_id\":null,"
                     "\"status\":\"ended\",\"created_at\":\"2026-11-22T13:00:00.123Z\","
                     "\"updated_at\":null,\"ended_at\":null,\"first_event_at\":null,"
                     "\"last_sequence\":2,\"event_count\":2,\"bytes\":99,\"runs\":0,"
                     "\"version\":0,\"metadata\":{}}");
    mp_of("{\"k\":[1,\"v\"]}", &mp);
    rec.metadata = mp.data;
    rec.metadata_len = mp.len;
    store_buf_clear(&out);
    TU_OK(replay_write_session(&out, &rec));
    cr_assert(strstr(store_buf_cstr(&out), "\"metadata\":{\"k\":[1,\"v\"]}}"));
    store_buf_release(&out);
    store_buf_release(&mp);
}

Test(replay_event, write_verify_reports_the_first_error)
{
    store_verify_report_t rep;
    memset(&rep, 0, sizeof rep);
    rep.ok = 1, rep.sessions = 2, rep.events = 5, rep.log_entries = 5;
    store_buf_t out = STORE_BUF_INIT;
    TU_OK(replay_write_verify(&out, &rep, 0));
    assert_buf(&out, "{\"ok\":true,\"sessions\":2,\"events\":5,\"log_entries\":5}");
    rep.ok = 0, rep.sequence = 4, rep.position = 9, rep.ok_up_to = 3;
    strcpy(rep.session, "s\"1");
    strcpy(rep.problem, "hash chain broken");
    store_buf_clear(&out);
    TU_OK(replay_write_verify(&out, &rep, 0));
    assert_buf(&out, "{\"ok\":false,\"sessions\":2,\"events\":5,\"log_entries\":5,"
                     "\"first_error\":{\"session\":\"s\\\"1\",\"sequence\":4,\"position\":9,"
                     "\"ok_up_to\":3,\"problem\":\"hash chain broken\"}}");
    store_buf_release(&out);
}

Test(replay_mpget, get_str_and_path)
{
    store_buf_t mp;
    mp_of("{\"a\":{\"b\":{\"c\":\"deep\"}},\"n\":1,\"s\":\"top\",\"a2\":[{\"x\":1}]}", &mp);
    store_mp_t m = {mp.data, mp.data + mp.len}, v;
    const char *s;
    size_t n;
    cr_assert(replay__mp_get(m, "s", &v));
    cr_assert(replay__mp_str(v, &s, &n) && n == 3 && !memcmp(s, "top", 3));
    cr_assert(replay__mp_get(m, "n", &v));
    cr_assert(!replay__mp_str(v, &s, &n)); /* not a string */
    cr_assert(!replay__mp_get(m, "missing", &v));
    cr_assert(!replay__mp_get(m, "", &v));
    static const char *const path[] = {"a", "b", "c", NULL};
    cr_assert(replay__mp_path_str(m, path, &s, &n) && n == 4 && !memcmp(s, "deep", 4));
    static const char *const bad[] = {"a", "x", "c", NULL};
    cr_assert(!replay__mp_path_str(m, bad, &s, &n));
    static const char *const short_path[] = {"a", "b", NULL}; /* ends on a map */
    cr_assert(!replay__mp_path_str(m, short_path, &s, &n));
    /* Not a map, and a map cut short: no match, no overread. */
    store_mp_t arr = {mp.data, mp.data + mp.len};
    cr_assert(replay__mp_get(arr, "a2", &v));
    cr_assert(!replay__mp_get(v, "x", &v));
    store_mp_t cut = {mp.data, mp.data + 6};
    cr_assert(!replay__mp_get(cut, "s", &v));
    store_buf_release(&mp);
}

Test(replay_mpget, utf16_len_counts_as_javascript)
{
    cr_assert_eq(replay__utf16_len((const uint8_t *)"", 0), 0);
    cr_assert_eq(replay__utf16_len((const uint8_t *)"abc", 3), 3);
    cr_assert_eq(replay__utf16_len((const uint8_t *)"\xc3\xa9", 2), 1);         /* é */
    cr_assert_eq(replay__utf16_len((const uint8_t *)"\xe2\x82\xac", 3), 1);     /* € */
    cr_assert_eq(replay__utf16_len((const uint8_t *)"\xf0\x9f\x98\x80", 4), 2); /* 😀 */
}

/* JSON.stringify(JSON.parse(x)): numbers canonical, integer-like keys first. */
static void js_is(const char *json, const char *want)
{
    store_buf_t mp, out = STORE_BUF_INIT;
    mp_of(json, &mp);
    store_mp_t m = {mp.data, mp.data + mp.len};
    TU_OK(replay__js_json(&m, &out));
    assert_buf(&out, want);
    store_buf_release(&out);
    store_buf_release(&mp);
}

Test(replay_mpget, js_json_matches_javascript)
{
    js_is("{\"b\":1,\"2\":2,\"a\":3,\"1\":4}", "{\"1\":4,\"2\":2,\"b\":1,\"a\":3}");
    js_is("[1.50,1e2,-0,0.1]", "[1.5,100,0,0.1]");
    js_is("\"\\u00e9\\n\"", "\"\xc3\xa9\\n\"");
    js_is("{\"a\":{\"a\":null}}", "{\"a\":{\"a\":null}}");
}

/* ---- replay__json_write(): jansson's layout, reel's strings, no recursion ---- */

static void same_as_jansson(const char *json, size_t flags)
{
    json_error_t je;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &je);
    cr_assert_not_null(v, "%s: %s", json, je.text);
    char *want = json_dumps(v, flags);
    store_buf_t b = STORE_BUF_INIT;
    TU_OK(replay__json_write(&b, v, flags));
    cr_assert_str_eq(store_buf_cstr(&b), want, "%s (flags %zx)", json, flags);
    free(want);
    store_buf_release(&b);
    json_decref(v);
}

Test(replay_event, json_write_lays_out_as_jansson_does)
{
    static const char *const texts[] = {
        "{}", "[]", "null", "true", "false", "0", "-12", "\"s\"",
        "{\"a\":1,\"b\":[1,2,{\"c\":null,\"d\":[]}],\"e\":{},\"f\":\"x\\\"y\\\\z\\n\\t\"}",
        "[0.1,1e20,1e-7,-2.5,1e300,3.0,123456789.0,5e-324,1.7976931348623157e308,0.30000000000000004]",
        "[[[[[1]]]],{\"k\":{\"k\":{\"k\":[true,false]}}}]",
        "{\"caf\\u00e9\":\"\\u4e2d\\u6587 \\ud83d\\ude00 \\u2028\"}",
    };
    static const size_t flags[] = {JSON_COMPACT | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY,
                                   JSON_INDENT(2) | JSON_ENCODE_ANY,
                                   JSON_COMPACT | JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY,
                                   JSON_ENCODE_ANY};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (size_t f = 0; f < sizeof flags / sizeof flags[0]; f++)
            same_as_jansson(texts[i], flags[f]);
}

Test(replay_event, json_write_keeps_wtf8_and_nul_and_deep_trees)
{
    /* what jansson's dumper refuses: a lone surrogate (WTF-8) in a string and a key, NUL */
    json_t *o = json_object();
    json_object_setn_new_nocheck(o, "k\xed\xa0\xbd", 4, json_stringn_nocheck("\xed\xb8\x80x", 4));
    json_object_setn_new_nocheck(o, "a\0b", 3, json_stringn_nocheck("n\0", 2));
    store_buf_t b = STORE_BUF_INIT;
    TU_OK(replay__json_write(&b, o, JSON_COMPACT));
    cr_assert_str_eq(store_buf_cstr(&b), "{\"k\\ud83d\":\"\\ude00x\",\"a\\u0000b\":\"n\\u0000\"}");
    json_decref(o);
    /* 100000 levels: written without recursing (jansson's own json_dumps would recurse) */
    enum { N = 100000 };
    json_t **level = malloc((N + 1) * sizeof *level);
    level[0] = json_array();
    for (int i = 1; i <= N; i++) {
        level[i] = json_array();
        json_array_append_new(level[i - 1], level[i]);
    }
    json_t *root = level[0];
    store_buf_clear(&b);
    TU_OK(replay__json_write(&b, root, JSON_COMPACT));
    cr_assert_eq(b.len, 2 * (N + 1));
    cr_assert(b.data[0] == '[' && b.data[N] == '[' && b.data[N + 1] == ']');
    /* freed from the inside out: json_decref() of the root would recurse */
    for (int i = N; i > 0; i--)
        json_array_clear(level[i - 1]);
    free(level);
    json_decref(root);
    store_buf_release(&b);
}

Test(replay_event, js_json_walks_deep_values_and_writes_lone_surrogates)
{
    enum { N = 49999 }; /* 2 levels each: 99999, within STORE_JSON_MAX_DEPTH */
    store_buf_t mp = STORE_BUF_INIT, out = STORE_BUF_INIT, want = STORE_BUF_INIT;
    for (int i = 0; i < N; i++) { /* {"1":0,"\ud83d":[{"1":0,"\ud83d":[ ... "x" ... ]}]} */
        store_mp_map(&mp, 2);
        store_mp_str(&mp, "\xed\xa0\xbd", 3);
        store_mp_array(&mp, 1);
        store_buf_puts(&want, "{\"1\":0,\"\\ud83d\":[");
    }
    store_mp_str(&mp, "x\xed\xb8\x80", 4);
    store_buf_puts(&want, "\"x\\ude00\"");
    for (int i = 0; i < N; i++)
        store_buf_puts(&want, "]}");
    /* the "1" keys come after in msgpack but first in JavaScript's order: patch them in */
    store_buf_t mp2 = STORE_BUF_INIT;
    const uint8_t *p = mp.data, *end = mp.data + mp.len;
    for (int i = 0; i < N; i++) { /* map header, key, array header; then append "1":0 */
        store_buf_put(&mp2, p, 1 + 4 + 1); /* 0x82, a3 ed a0 bd, 0x91 */
        p += 6;
    }
    store_buf_put(&mp2, p, (size_t)(end - p));
    for (int i = 0; i < N; i++) {
        store_mp_str(&mp2, "1", 1);
        store_mp_uint(&mp2, 0);
    }
    cr_assert(!store_buf_failed(&mp2));
    store_mp_t m = {mp2.data, mp2.data + mp2.len};
    TU_OK(replay__js_json(&m, &out));
    cr_assert(m.p == m.end);
    cr_assert_eq(out.len, want.len);
    cr_assert(!memcmp(out.data, want.data, want.len));
    store_buf_release(&mp);
    store_buf_release(&mp2);
    store_buf_release(&out);
    store_buf_release(&want);
}
