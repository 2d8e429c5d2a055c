/* api_ds_meta.c -- the Durable Streams helpers without libmicrohttpd (api/ds/meta.c):
 * path <-> session id, offsets, base64, content types, expiry and the state record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ds/ds_int.h"
#include "tests/unit/testutil.h"

Test(api_ds_meta, path_to_session_id)
{
    char id[STORE_SESSION_ID_MAX + 1];
    size_t n;
    cr_assert_eq(ds__base_id("a/b c", 5, id, &n), 0);
    cr_assert_str_eq(id, "ds:a~2Fb~20c");
    cr_assert_eq(n, strlen(id));
    cr_assert(store_session_id_valid(id, n));
    char big[400];
    memset(big, '/', sizeof big); /* 3 bytes each once escaped: over DS_BASE_MAX */
    cr_assert_eq(ds__base_id(big, sizeof big, id, &n), -1);
    char gen[STORE_SESSION_ID_MAX + 1];
    size_t gl;
    ds__gen_id("ds:x", 4, 1, gen, &gl);
    cr_assert_str_eq(gen, "ds:x"); /* the first generation has no suffix */
    ds__gen_id("ds:x", 4, 12, gen, &gl);
    cr_assert_str_eq(gen, "ds:x:12");
    cr_assert_eq(gl, 7u);
}

Test(api_ds_meta, offsets_round_trip_and_refuse_junk)
{
    char off[DS_OFFSET_LEN + 1];
    uint64_t seq;
    ds__offset(42, off);
    cr_assert_str_eq(off, "0000000000000042_0000000000000000");
    cr_assert_eq(ds__offset_parse(off, &seq), 0);
    cr_assert_eq(seq, 42u);
    ds__offset((uint64_t)INT64_MAX, off);
    cr_assert_eq(ds__offset_parse(off, &seq), 0);
    cr_assert_eq(seq, (uint64_t)INT64_MAX);
    const char *bad[] = {"", "_", "1", "1_", "_1", "-1_0", "1_x", "1_0x", "x_0",
                         "99999999999999999999_0", "9223372036854775808_0",
                         "1_000000000000000000000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(ds__offset_parse(bad[i], &seq), -1, "'%s'", bad[i]);
}

Test(api_ds_meta, base64_round_trip)
{
    for (size_t n = 0; n < 64; n++) {
        uint8_t in[64];
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(i * 37 + n);
        store_buf_t e = STORE_BUF_INIT, d = STORE_BUF_INIT;
        ds__base64(&e, in, n);
        cr_assert_eq(e.len, (n + 2) / 3 * 4);
        cr_assert_eq(ds__unbase64(&d, e.data, e.len), 0, "n=%zu", n);
        cr_assert_eq(d.len, n);
        cr_assert(n == 0 || !memcmp(d.data, in, n));
        store_buf_release(&e);
        store_buf_release(&d);
    }
    store_buf_t d = STORE_BUF_INIT;
    const char *bad[] = {"abc", "ab!=", "a===", "ab=c"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(ds__unbase64(&d, (const uint8_t *)bad[i], strlen(bad[i])), -1, "%s",
                     bad[i]);
        cr_assert_eq(d.len, 0u, "nothing appended for '%s'", bad[i]);
    }
    store_buf_release(&d);
}

Test(api_ds_meta, content_types)
{
    char n[DS_CTYPE_MAX + 1];
    ds__ctype_norm("  Application/JSON ; charset=utf-8", n, sizeof n);
    cr_assert_str_eq(n, "application/json");
    ds__ctype_norm("", n, sizeof n);
    cr_assert_str_eq(n, "application/octet-stream");
    cr_assert(ds__is_json("application/json; charset=utf-8"));
    cr_assert(!ds__is_json("application/jsonl"));
    cr_assert(ds__is_text("text/plain"));
    cr_assert(ds__is_text("application/json"));
    cr_assert(!ds__is_text("application/octet-stream"));
}

static ds_meta_t sample(void)
{
    ds_meta_t m = DS_META_INIT;
    m.is_stream = 1;
    strcpy(m.ctype, "application/json");
    m.has_ttl = 1;
    m.ttl_s = 60;
    m.closed = 1;
    m.has_closed_by = 1;
    strcpy(m.closed_by, "p1");
    m.closed_epoch = 2;
    m.closed_seq = 9;
    m.has_seq = 1;
    strcpy(m.seq, "000123");
    m.is_fork = 1;
    strcpy(m.fork_of, "ds:src");
    m.fork_offset = m.fork_req = 5;
    m.forks = 3;
    for (int i = 0; i < 9; i++) {
        char id[16];
        snprintf(id, sizeof id, "prod-%d", i);
        ds_producer_t *p = ds__producer(&m, id, 1);
        cr_assert_not_null(p);
        p->epoch = (uint64_t)i;
        p->seq = (uint64_t)i * 10;
        p->updated_ms = 1000u + (uint64_t)i;
    }
    return m;
}

Test(api_ds_meta, state_record_round_trip)
{
    ds_meta_t m = sample(), back;
    store_buf_t b = STORE_BUF_INIT;
    ds__meta_encode(&m, "a/b", 3, &b);
    cr_assert(!store_buf_failed(&b));
    cr_assert_eq(ds__meta_parse(b.data, b.len, &back), 0);
    cr_assert_str_eq(back.path, "a/b");
    cr_assert_str_eq(back.ctype, m.ctype);
    cr_assert(back.is_stream && back.closed && back.has_closed_by && back.is_fork);
    cr_assert_eq(back.ttl_s, 60u);
    cr_assert_str_eq(back.closed_by, "p1");
    cr_assert_str_eq(back.seq, "000123");
    cr_assert_str_eq(back.fork_of, "ds:src");
    cr_assert_eq(back.fork_offset, 5u);
    cr_assert_eq(back.forks, 3u);
    cr_assert_eq(back.n_producers, 9u);
    ds_producer_t *p = ds__producer(&back, "prod-7", 0);
    cr_assert(p && p->epoch == 7 && p->seq == 70 && p->updated_ms == 1007);
    cr_assert_null(ds__producer(&back, "nobody", 0));
    ds__meta_release(&back);
    ds__meta_release(&back); /* releasing twice is safe */
    ds__meta_release(&m);
    store_buf_release(&b);
}

/* Every cut of a record, and every flipped byte, either decodes or fails cleanly: no
 * crash, no leak (LeakSanitizer in make asan), and a failed parse leaves nothing to free. */
Test(api_ds_meta, damaged_records_fail_cleanly)
{
    ds_meta_t m = sample(), back;
    store_buf_t b = STORE_BUF_INIT;
    ds__meta_encode(&m, "p", 1, &b);
    ds__meta_release(&m);
    size_t failed = 0;
    for (size_t cut = 1; cut < b.len; cut++) {
        if (ds__meta_parse(b.data, cut, &back)) {
            failed++;
            cr_assert_null(back.producers, "cut at %zu", cut);
        }
        ds__meta_release(&back);
    }
    cr_assert_gt(failed, b.len / 2);
    for (size_t i = 0; i < b.len; i++) {
        uint8_t *p = (uint8_t *)b.data + i, keep = *p;
        *p ^= 0xff;
        if (ds__meta_parse(b.data, b.len, &back))
            cr_assert_null(back.producers);
        ds__meta_release(&back);
        *p = keep;
    }
    cr_assert_eq(ds__meta_parse(NULL, 0, &back), 0); /* a plain session: no record */
    cr_assert(!back.is_stream);
    ds__meta_release(&back);
    store_buf_release(&b);
}

Test(api_ds_meta, expiry)
{
    ds_meta_t m = DS_META_INIT;
    store_session_t rec;
    memset(&rec, 0, sizeof rec);
    rec.updated_ms = 10000;
    cr_assert(!ds__expired(&m, &rec, 0, 1LL << 50)); /* no rule: never */
    m.has_ttl = 1;
    m.ttl_s = 5;
    cr_assert(!ds__expired(&m, &rec, 0, 14999));
    cr_assert(ds__expired(&m, &rec, 0, 15000));
    cr_assert(!ds__expired(&m, &rec, 12000, 15000)); /* a read refreshed it */
    cr_assert(ds__expired(&m, &rec, 12000, 17000));
    m.has_ttl = 0;
    m.has_expires = 1;
    m.expires_ms = 20000;
    cr_assert(!ds__expired(&m, &rec, 0, 19999));
    cr_assert(ds__expired(&m, &rec, 0, 20000));
}
