/* fuzz_value.c -- libFuzzer harness: decoding what is read back from disk.
 *
 * Stored values are untrusted (a damaged file, a bug elsewhere): the readers must fail
 * with REEL_ECORRUPT and never read out of bounds, recurse without bound, allocate
 * without bound or trip UBSan. The first input byte selects the target; the rest is its
 * input:
 *   0  msgpack reader: store_mp_next over every object, store_mp_skip, store_mp_to_json.
 *      Checks: when store_mp_to_json succeeds, store_mp_skip succeeds too and both stop
 *      at the same byte; rendering is deterministic.
 *   1  an event value (store.h layout: flags, position, time, chain hash, body, the body a
 *      zstd frame when flags & 1): store__value_decode, then every reader of the body
 *      (replay_write_event with and without raw, replay_event_type, replay__body_fields).
 *      Checks: a body that renders has the 8-field (format 1: 7-field) shape; the rendered envelope is valid
 *      JSON when every string and number in the body is (i.e. when the body is one the
 *      codec could have written: re-encoding its fields' JSON must give the same bytes).
 *   2  a session record: store__session_decode, then replay_write_session.
 */
#include <string.h>

#include "replay/replay.h"
#include "replay/replay_int.h"
#include "store/json.h"
#include "store/store_int.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void msgpack_reader(const uint8_t *p, size_t n)
{
    /* Walk object headers until the end or an error. */
    store_mp_t m = {p, p + n};
    store_mp_obj_t o;
    while (m.p < m.end && store_mp_next(&m, &o) == REEL_OK)
        FZ_CHECK(m.p <= m.end, "store_mp_next ran past the end");

    /* Depths 1, 64 and 128: STORE_JSON_MAX_DEPTH is the ceiling for every caller's limit
     * (json.h); store_mp_skip() clamps to it, store_mp_to_json() trusts the caller. */
    static const int depths[] = {1, 64, STORE_JSON_MAX_DEPTH};
    for (size_t di = 0; di < sizeof depths / sizeof depths[0]; di++) {
        int depth = depths[di];
        store_mp_t a = {p, p + n}, b = {p, p + n}, c = {p, p + n};
        store_buf_t j1 = STORE_BUF_INIT, j2 = STORE_BUF_INIT;
        int ra = store_mp_to_json(&a, &j1, depth);
        int rb = store_mp_skip(&b, depth);
        FZ_CHECK(a.p <= a.end && b.p <= b.end, "reader ran past the end");
        if (ra == REEL_OK) {
            FZ_CHECK(rb == REEL_OK, "to_json accepted what skip refused (depth %d)", depth);
            FZ_CHECK(a.p == b.p, "to_json and skip disagree on the value's length");
            int rc = store_mp_to_json(&c, &j2, depth);
            FZ_CHECK(rc == REEL_OK && j1.len == j2.len && !memcmp(j1.data, j2.data, j1.len),
                     "rendering is not deterministic");
        }
        store_buf_release(&j1);
        store_buf_release(&j2);
    }
}

/* 1 when the body's fields are exactly what the codec writes for their JSON. */
static int canonical_body(const store_event_view_t *v)
{
    store_mp_t f[REPLAY_NFIELDS];
    if (replay__body_fields(v, f))
        return 0;
    int ok = 1;
    store_buf_t json = STORE_BUF_INIT, back = STORE_BUF_INIT;
    for (int i = 0; ok && i < REPLAY_NFIELDS; i++) {
        store_mp_t m = f[i];
        store_buf_clear(&json);
        store_buf_clear(&back);
        store_json_error_t je;
        size_t flen = (size_t)(f[i].end - f[i].p);
        ok = store_mp_to_json(&m, &json, STORE_JSON_MAX_DEPTH) == REEL_OK &&
             store_json_to_msgpack((const char *)json.data, json.len, STORE_JSON_MAX_DEPTH,
                                   &back, &je) == REEL_OK &&
             back.len == flen && !memcmp(back.data, f[i].p, flen);
    }
    store_buf_release(&json);
    store_buf_release(&back);
    return ok;
}

static void event_value(const uint8_t *p, size_t n)
{
    store_buf_t scratch = STORE_BUF_INIT, out = STORE_BUF_INIT;
    store_event_view_t v = {0};
    v.session = "fuzz";
    v.session_len = 4;
    v.sequence = 3;
    if (fz_value_decode(p, n, &scratch, &v) == REEL_OK) {
        FZ_CHECK(v.body_len <= n || (p[0] & 1), "plain body longer than the value");
        for (int raw = 0; raw < 2; raw++) {
            store_buf_clear(&out);
            int rc = replay_write_event(&out, &v, raw);
            if (rc == REEL_OK && raw && canonical_body(&v))
                FZ_CHECK(fz_json_valid(out.data, out.len),
                         "canonical body rendered as invalid JSON: %s",
                         fz_show(out.data, out.len));
        }
        const char *type;
        size_t tlen;
        if (replay_event_type(&v, &type, &tlen) == REEL_OK)
            FZ_CHECK(type >= (const char *)v.body && type + tlen <= (const char *)v.body + v.body_len,
                     "type points outside the body");
        store_mp_t f[REPLAY_NFIELDS];
        if (replay__body_fields(&v, f) == REEL_OK)
            for (int i = 0; i < REPLAY_NFIELDS; i++)
                FZ_CHECK(f[i].p <= f[i].end && (f[i].end <= v.body + v.body_len ||
                                                /* a 7-field body's client_time: a nil */
                                                (i == REPLAY_F_CLIENT_TIME &&
                                                 f[i].end == f[i].p + 1 && *f[i].p == 0xc0)),
                         "field bounds");
    }
    store_buf_release(&scratch);
    store_buf_release(&out);
}

static void session_record(const uint8_t *p, size_t n)
{
    store_session_t rec;
    static const char id[] = "fuzz-session";
    if (store__session_decode(p, n, id, sizeof id - 1, &rec) == REEL_OK) {
        FZ_CHECK(rec.status >= STORE_ACTIVE && rec.status <= STORE_DELETED, "status %d",
                 rec.status);
        FZ_CHECK(strlen(rec.agent) <= STORE_NAME_MAX, "agent");
        if (rec.metadata)
            FZ_CHECK(rec.metadata >= p && rec.metadata + rec.metadata_len <= p + n,
                     "metadata outside the record");
        store_buf_t out = STORE_BUF_INIT;
        replay_write_session(&out, &rec);
        store_buf_release(&out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* Copy so that reading one byte past the end is caught even when libFuzzer's buffer
     * happens to be followed by readable memory. */
    uint8_t *p = malloc(size - 1 ? size - 1 : 1);
    memcpy(p, data + 1, size - 1);
    switch (data[0] % 3) {
    case 0: msgpack_reader(p, size - 1); break;
    case 1: event_value(p, size - 1); break;
    case 2: session_record(p, size - 1); break;
    }
    free(p);
    return 0;
}
