/* cluster_pgrecord.c -- a session record as the feed renders it (replay_write_session)
 * parses back into the same record (cluster/pgrecord.c, used by `reel cluster restore`):
 * rendering the parsed record gives the same bytes, NUL, lone surrogates, numbers kept as
 * text, retention, usage and trims included; what is not a record is refused. */
#include <stdlib.h>
#include <string.h>

#include "cluster/pgload_int.h"
#include "tests/unit/testutil.h"

static char *render(const store_session_t *r)
{
    store_buf_t b = STORE_BUF_INIT;
    TU_OK(replay_write_session(&b, r));
    char *s = strdup(store_buf_cstr(&b));
    store_buf_release(&b);
    return s;
}

Test(cluster_pgrecord, a_rendered_record_parses_back_to_the_same_bytes)
{
    static const char meta_json[] =
        "{\"a\":[1,2.50,12345678901234567890123],\"nul\":\"x\\u0000y\",\"lone\":\"\\ud800\","
        "\"deep\":{\"k\":{\"k\":null}},\"e\":{}}";
    store_buf_t meta = STORE_BUF_INIT;
    TU_OK(store_json_to_msgpack(meta_json, sizeof meta_json - 1, 64, &meta, NULL));
    store_session_t r = {0};
    memcpy(r.id, "s-1", 3), r.id_len = 3;
    memcpy(r.agent, "cl\0ude", 6), r.agent_len = 6;
    memcpy(r.native_session_id, "n\xed\xa0\x80", 4), r.native_session_id_len = 4; /* WTF-8 */
    r.status = STORE_ENDED;
    r.created_ms = 1764900000123, r.updated_ms = 1764900000999;
    r.ended_ms = 1764900000998, r.first_event_ms = 1764900000124;
    r.first_sequence = 8, r.last_sequence = 10, r.event_count = 3, r.bytes = 999;
    r.runs = 2, r.version = 5;
    r.retention = (store_retention_t){.set = 1, .max_age_ms = 3600000, .max_events = 3,
                                      .no_archive = 1};
    memcpy(r.model, "m-1", 3), r.model_len = 3;
    r.input_tokens = 10, r.output_tokens = 20, r.cost_nusd = 1250000001, r.turns = 4;
    r.metadata = meta.data, r.metadata_len = meta.len;
    char *a = render(&r);
    store_session_t back;
    store_buf_t m2 = STORE_BUF_INIT;
    TU_OK(cluster__record_parse(a, strlen(a), &back, &m2));
    char *b = render(&back);
    cr_assert_str_eq(b, a);
    cr_assert_eq(back.agent_len, 6);
    cr_assert_eq(back.first_sequence, 8);
    cr_assert_eq(back.cost_nusd, 1250000001);
    cr_assert(back.metadata_len == meta.len && !memcmp(back.metadata, meta.data, meta.len));
    free(a), free(b);
    /* A record without metadata, times or names (a deleted one, nulls). */
    store_session_t d = {0};
    memcpy(d.id, "d", 1), d.id_len = 1;
    d.status = STORE_DELETED, d.first_sequence = 1, d.last_sequence = 4, d.version = 2;
    a = render(&d);
    TU_OK(cluster__record_parse(a, strlen(a), &back, &m2));
    b = render(&back);
    cr_assert_str_eq(b, a);
    cr_assert_null(back.metadata);
    free(a), free(b);
    store_buf_release(&meta);
    store_buf_release(&m2);
}

Test(cluster_pgrecord, what_is_not_a_record_is_refused)
{
    store_session_t r;
    store_buf_t m = STORE_BUF_INIT;
    static const char *bad[] = {"", "[]", "{\"id\":1}", "{\"agent\":\"a\"}",
                                "{\"id\":\"a\",\"status\":\"gone\"}",
                                "{\"id\":\"a\",\"created_at\":\"yesterday\"}",
                                "{\"id\":\"a\",\"retention\":{\"max_age\":\"x\"}}",
                                "{\"id\":\"a\",\"cost_usd\":1.0000000001}", "{\"id\":\"a\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_neq(cluster__record_parse(bad[i], strlen(bad[i]), &r, &m), REEL_OK, "%s",
                      bad[i]);
    store_buf_release(&m);
}
