/* store_parse.c -- the one u64 parser and the one time parser (store/parse.h): what they
 * accept is the union of what the parsers they replaced accepted (replay_parse_time's
 * sscanf and api's ds__parse_rfc3339), and nothing looser. */
#include <stdint.h>
#include <string.h>

#include "store/parse.h"
#include "tests/unit/testutil.h"

static int u64(const char *s, uint64_t *v)
{
    return store_parse_u64(s, strlen(s), v);
}

static int64_t rfc(const char *s)
{
    return store_parse_rfc3339(s, strlen(s));
}

static int64_t tm(const char *s)
{
    return store_parse_time(s, strlen(s));
}

/* 2026-11-22T13:00:00Z in Unix ms. */
#define T0 1795352400000LL

Test(store_parse, u64_accepts_plain_digits)
{
    uint64_t v = 7;
    TU_OK(u64("0", &v));
    cr_assert_eq(v, 0);
    TU_OK(u64("42", &v));
    cr_assert_eq(v, 42);
    TU_OK(u64("007", &v));
    cr_assert_eq(v, 7);
    TU_OK(u64("18446744073709551615", &v));
    cr_assert_eq(v, UINT64_MAX);
    TU_OK(store_parse_u64("12345", 2, &v)); /* only 'n' bytes are read */
    cr_assert_eq(v, 12);
}

Test(store_parse, u64_refuses_everything_else)
{
    static const char *bad[] = {"", "-1", "+1", " 1", "1 ", "1a", "0x10", "1.0", "1e3",
                                "18446744073709551616", "99999999999999999999", "--1",
                                "١", "1,000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 99;
        TU_ERR(u64(bad[i], &v), REEL_EINVALID_PARAMETER);
        cr_assert_eq(v, 99, "'%s' changed the output", bad[i]);
    }
    uint64_t v = 99;
    TU_ERR(store_parse_u64("1\0002", 3, &v), REEL_EINVALID_PARAMETER);
    TU_ERR(store_parse_u64(NULL, 0, &v), REEL_EINVALID_PARAMETER);
}

Test(store_parse, rfc3339_forms_of_the_old_replay_parser)
{
    cr_assert_eq(rfc("2026-11-22T13:00:00Z"), T0);
    cr_assert_eq(rfc("2026-11-22T13:00:00.123Z"), T0 + 123);
    cr_assert_eq(rfc("2026-11-22T13:00:00.1Z"), T0 + 100);
    cr_assert_eq(rfc("2026-11-22T13:00:00.12345678Z"), T0 + 123);
    cr_assert_eq(rfc("2026-11-22T13:00:00.Z"), T0); /* sscanf accepted an empty fraction */
    cr_assert_eq(rfc("2026-11-22T13:0:0Z"), T0);    /* and one-digit fields */
    cr_assert_eq(rfc("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(rfc("1970-01-01T00:00:00.001Z"), 1);
    cr_assert_eq(rfc("2026-11-22T13:00:60Z"), T0 + 60000); /* leap second: the next one */
}

Test(store_parse, rfc3339_forms_of_the_old_durable_streams_parser)
{
    cr_assert_eq(rfc("2026-11-22t13:00:00z"), T0);
    cr_assert_eq(rfc("2026-11-22 13:00:00Z"), T0);
    cr_assert_eq(rfc("2026-11-22T15:00:00+02:00"), T0);
    cr_assert_eq(rfc("2026-11-22T07:30:00-05:30"), T0);
    cr_assert_eq(rfc("2026-11-22T13:00:00.5+00:00"), T0 + 500);
    cr_assert_eq(rfc("2026-11-22T13:00:00-00:00"), T0);
    cr_assert_eq(rfc("2026-11-23T12:59:00+23:59"), T0);
}

Test(store_parse, rfc3339_refusals)
{
    static const char *bad[] = {
        "", "2026-11-22", "2026-11-22T13:00:00", "2026-11-22T13:00Z", "2026-13-22T13:00:00Z",
        "2026-00-22T13:00:00Z", "2026-11-00T13:00:00Z", "2026-11-32T13:00:00Z",
        "2026-11-22T24:00:00Z", "2026-11-22T13:60:00Z", "2026-11-22T13:00:61Z",
        "2026-11-22T13:00:00ZZ", "2026-11-22T13:00:00Z ", " 2026-11-22T13:00:00Z",
        "2026-11-22X13:00:00Z", "2026-11-22T13:00:00+0200", "2026-11-22T13:00:00+02",
        "2026-11-22T13:00:00+24:00", "2026-11-22T13:00:00+02:60", "2026-11-22T13:00:00+2:000",
        "2026-11-22T13:00:00+02:00Z", "20261-11-22T13:00:00Z", "2026-111-22T13:00:00Z",
        "+2026-11-22T13:00:00Z", "2026-+1-22T13:00:00Z", "2026-11-22T13:00:00.-1Z",
        "1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00", "0000-01-01T00:00:00Z",
        "1795352400000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(rfc(bad[i]), -1, "'%s' was accepted", bad[i]);
    cr_assert_eq(store_parse_rfc3339("2026-11-22T13:00:00Z\0", 21), -1);
}

Test(store_parse, time_takes_unix_ms_or_rfc3339)
{
    cr_assert_eq(tm("0"), 0);
    cr_assert_eq(tm("1795352400123"), T0 + 123);
    cr_assert_eq(tm("999999999999999"), 999999999999999LL);
    cr_assert_eq(tm("1000000000000000"), -1); /* 16 digits: more than the old parser took */
    cr_assert_eq(tm("2026-11-22T15:00:00.123+02:00"), T0 + 123);
    cr_assert_eq(tm("-1"), -1);
    cr_assert_eq(tm("+1"), -1);
    cr_assert_eq(tm(""), -1);
    cr_assert_eq(tm("12 "), -1);
}

/* Every time replay_write_time() renders parses back to itself. */
Test(store_parse, time_round_trips_through_replay_write_time)
{
    uint64_t seed = 13;
    for (int i = 0; i < 20000; i++) {
        int64_t ms = i < 3 ? (int64_t[]){0, 1, 253402300799999LL}[i]
                           : (int64_t)(tu_rand(&seed) % 253402300800000ULL);
        store_buf_t b = STORE_BUF_INIT;
        replay_write_time(&b, ms);
        cr_assert(!store_buf_failed(&b) && b.len == 26, "ms %lld", (long long)ms);
        cr_assert_eq(store_parse_time((const char *)b.data + 1, b.len - 2), ms, "%.*s",
                     (int)b.len, b.data);
        store_buf_release(&b);
    }
}

static int64_t js(const char *s)
{
    return store_parse_rfc3339_js(s, strlen(s));
}

/* The expected values are node 20's Date.parse of the same text. */
Test(store_parse, rfc3339_js_reads_what_date_parse_reads)
{
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {
        {"2026-01-02T03:04:05Z", 1767323045000LL},
        {"2026-01-02t03:04:05.1z", 1767323045100LL},
        {"2026-01-02 03:04:05.123456789+05:30", 1767303245123LL},
        {"2026-01-02T03:04:05.012-00:00", 1767323045012LL},
        {"2026-01-02T03:04:05.9999+01:00", 1767319445999LL},
        {"1970-01-01T00:00:00Z", 0},
        {"1970-01-01T05:30:00+05:30", 0},
        {"2024-02-29T23:59:59.999-23:59", 1709337539999LL},
        {"9999-12-31T23:59:59.999+00:00", 253402300799999LL},
        {"2000-03-01T00:00:00Z", 951868800000LL},
        {"2100-02-28T12:00:00Z", 4107499200000LL},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_assert_eq(js(ok[i].s), ok[i].ms, "%s: %lld", ok[i].s, (long long)js(ok[i].s));
}

/* What Date.parse refuses (NaN), reads otherwise than RFC 3339 means (February 30, hour
 * 24, ten fraction digits), or what RFC 3339 does not allow; and instants before 1970. */
Test(store_parse, rfc3339_js_refusals)
{
    static const char *bad[] = {
        "2026-02-30T00:00:00Z", "2026-04-31T00:00:00Z", "2100-02-29T00:00:00Z",
        "2026-01-02T24:00:00Z", "2016-12-31T23:59:60Z", "2026-13-01T00:00:00Z",
        "2026-00-01T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-02T03:60:00Z",
        "2026-01-02T03:04:05.0123456789Z", "2026-01-02T03:04:05.Z", "2026-01-02T03:04:05",
        "2026-01-02T03:04:05+24:00", "2026-01-02T03:04:05+05:60", "2026-01-02T03:04:05+0530",
        "2026-01-02T03:04Z", "2026-1-2T3:04:05Z", "26-01-02T03:04:05Z", "+2026-01-02T03:04:05Z",
        "2026-01-02_03:04:05Z", "2026-01-02T03:04:05ZZ", " 2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05Z ", "1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00+00:01",
        "0000-01-01T00:00:00Z", "", "1700000000000", "2026-01-02T03:04:05.1x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(js(bad[i]), -1, "'%s' read as %lld", bad[i], (long long)js(bad[i]));
    cr_assert_eq(store_parse_rfc3339_js("2026-01-02T03:04:05Z\0", 21), -1);
}
