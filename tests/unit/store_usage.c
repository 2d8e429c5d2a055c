/* store_usage.c -- the session record's usage summary (docs/FORMAT.md section 16): its
 * optional keys, written only when non-zero, and the deltas ingest hands the committer. */
#include <string.h>

#include "store/json.h"
#include "store/store_int.h"
#include "tests/unit/testutil.h"

TestSuite(store_usage, .init = tu_store_setup, .fini = tu_store_teardown);

/* The number of entries of the record map 'rec' encodes to. */
static uint64_t map_entries(const store_session_t *rec, store_buf_t *out)
{
    store_buf_clear(out);
    store__session_encode(rec, out);
    store_mp_t m = {out->data, out->data + out->len};
    store_mp_obj_t o;
    TU_OK(store_mp_next(&m, &o));
    cr_assert_eq(o.type, STORE_MP_MAP);
    return o.u;
}

Test(store_usage, a_record_without_usage_encodes_as_before_and_one_with_it_round_trips)
{
    store_session_t rec, back;
    memset(&rec, 0, sizeof rec);
    memcpy(rec.id, "s", 2);
    rec.id_len = 1;
    rec.num = 7;
    rec.version = 1;
    rec.first_sequence = 1;
    store_buf_t out;
    store_buf_init(&out);
    cr_assert_eq(map_entries(&rec, &out), 14, "no summary: the 14 keys of format 3");
    memcpy(rec.model, "m-1", 4);
    rec.model_len = 3;
    rec.input_tokens = 1200;
    rec.output_tokens = 30;
    rec.cost_nusd = 12300000;
    rec.turns = 2;
    cr_assert_eq(map_entries(&rec, &out), 19);
    TU_OK(store__session_decode(out.data, out.len, "s", 1, &back));
    cr_assert_str_eq(back.model, "m-1");
    cr_assert_eq(back.model_len, 3);
    cr_assert_eq(back.input_tokens, 1200);
    cr_assert_eq(back.output_tokens, 30);
    cr_assert_eq(back.cost_nusd, 12300000);
    cr_assert_eq(back.turns, 2);
    rec.input_tokens = rec.cost_nusd = 0; /* each key only when non-zero */
    cr_assert_eq(map_entries(&rec, &out), 17);
    store_buf_release(&out);
}

static void append(const char *session, const char *ndjson)
{
    ingest_batch_t ib;
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    ingest_error_t e;
    TU_OK(ingest_batch_init(&ib, session, strlen(session)));
    int rc = ingest_parse(&ib, ndjson, strlen(ndjson), INGEST_NDJSON, &lim, &e);
    cr_assert_eq(rc, 0, "ingest_parse: %s", e.text);
    TU_OK(ingest_append(tu_store, &ib));
    ingest_batch_release(&ib);
}

Test(store_usage, appends_sum_usage_keep_the_latest_model_and_skip_duplicates)
{
    const char *batch =
        "{\"type\":\"session.started\",\"data\":{\"model\":\"m-1\"}}\n"
        "{\"event_id\":\"u1\",\"type\":\"usage\",\"data\":{\"turn_end\":true,"
        "\"input_tokens\":100,\"output_tokens\":20,\"cost_usd\":0.0125}}\n";
    append("s", batch);
    append("s", "{\"event_id\":\"u1\",\"type\":\"usage\",\"data\":{\"turn_end\":true,"
                "\"input_tokens\":100,\"output_tokens\":20,\"cost_usd\":0.0125}}\n");
    append("s", "{\"type\":\"session.started\",\"data\":{\"model\":\"m-2\"}}\n"
                "{\"type\":\"usage\",\"data\":{\"input_tokens\":1.5e3,\"output_tokens\":\"x\"}}\n"
                "{\"type\":\"note\",\"data\":{\"input_tokens\":999,\"model\":\"not-a-start\"}}\n");
    store_session_t rec;
    TU_OK(tu_session(tu_store, "s", &rec));
    cr_assert_str_eq(rec.model, "m-2");
    cr_assert_eq(rec.turns, 1, "the duplicate usage adds no turn");
    cr_assert_eq(rec.input_tokens, 1600);
    cr_assert_eq(rec.output_tokens, 20);
    cr_assert_eq(rec.cost_nusd, 12500000, "0.0125 USD in nano-USD: %llu",
                 (unsigned long long)rec.cost_nusd);
    cr_assert_eq(rec.runs, 2);
}
