/* retain_policy.c -- retention policies (docs/RETENTION.md): durations and the --retention
 * text, and one janitor pass over policies of each kind on a real store. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "retain/retain.h"
#include "tests/unit/testutil.h"

Test(retain_policy, durations_take_units_and_refuse_the_rest)
{
    uint64_t ms;
    TU_OK(retain_duration_parse("30d", 3, &ms));
    cr_assert_eq(ms, 30ull * 86400000);
    TU_OK(retain_duration_parse("90", 2, &ms));
    cr_assert_eq(ms, 90000);
    TU_OK(retain_duration_parse("2w", 2, &ms));
    cr_assert_eq(ms, 14ull * 86400000);
    TU_OK(retain_duration_parse("15m", 3, &ms));
    cr_assert_eq(ms, 900000);
    const char *bad[] = {"", "d", "0", "0d", "3y", "-1d", "1.5h", "99999999999999999999",
                         "40000d", "5 d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        TU_ERR(retain_duration_parse(bad[i], strlen(bad[i]), &ms), REEL_EINVALID_PARAMETER);
}

Test(retain_policy, the_option_text_parses_and_names_a_bad_value)
{
    store_retention_t p;
    char why[256];
    TU_OK(retain_policy_parse("max_age=30d,max_age_after_end=7d,max_events=1000,archive=off",
                              &p, why, sizeof why));
    cr_assert(p.set);
    cr_assert_eq(p.max_age_ms, 30ull * 86400000);
    cr_assert_eq(p.max_age_ended_ms, 7ull * 86400000);
    cr_assert_eq(p.max_events, 1000);
    cr_assert_eq(p.no_archive, 1);
    TU_OK(retain_policy_parse("none", &p, why, sizeof why));
    cr_assert(p.set && !p.max_age_ms && !p.max_events);
    TU_ERR(retain_policy_parse("max_events=0", &p, why, sizeof why), REEL_EINVALID_PARAMETER);
    cr_assert(strstr(why, "max_events=0"), "%s", why);
    TU_ERR(retain_policy_parse("max_age=soon", &p, why, sizeof why), REEL_EINVALID_PARAMETER);
    cr_assert(strstr(why, "max_age=soon"), "%s", why);
    TU_ERR(retain_policy_parse("colour=red", &p, why, sizeof why), REEL_EINVALID_PARAMETER);
    cr_assert(strstr(why, "colour"), "%s", why);
    TU_ERR(retain_policy_parse("max_age", &p, why, sizeof why), REEL_EINVALID_PARAMETER);
    TU_ERR(retain_policy_parse("archive=maybe", &p, why, sizeof why), REEL_EINVALID_PARAMETER);
}

TestSuite(retain_janitor, .init = tu_store_setup, .fini = tu_store_teardown);

static void put_policy(const char *id, const store_retention_t *p)
{
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_PUT, id, strlen(id));
    b.retention = p;
    TU_OK(store_append(tu_store, &b));
}

static void append_n(const char *id, int n, int end)
{
    store_buf_t t = STORE_BUF_INIT;
    for (int i = 0; i < n; i++)
        store_buf_printf(&t, "{\"type\":\"item.delta\",\"data\":{\"i\":%d}}\n", i);
    if (end)
        store_buf_puts(&t, "{\"type\":\"session.ended\"}\n");
    TU_OK(tu_append(tu_store, id, store_buf_cstr(&t), INGEST_NDJSON, -1, NULL, NULL));
    store_buf_release(&t);
}

Test(retain_janitor, one_pass_applies_each_kind_of_policy)
{
    store_retention_t keep3 = {1, 0, 0, 3, 0}, idle = {1, 1, 0, 0, 0}, ended = {1, 0, 1, 0, 0},
                      forever = {1, 0, 0, 0, 0};
    append_n("trim", 10, 0);
    put_policy("trim", &keep3);
    append_n("idle", 4, 0);
    put_policy("idle", &idle);
    append_n("ended", 4, 1);
    put_policy("ended", &ended);
    append_n("running", 4, 0);
    put_policy("running", &ended); /* not ended: kept */
    append_n("forever", 20, 1);
    put_policy("forever", &forever); /* overrides the default below */
    append_n("default", 20, 0);
    append_n("tomb", 3, 0);
    put_policy("tomb", &idle);
    store_batch_t del;
    store_batch_init(&del, STORE_OP_SESSION_DELETE, "tomb", 4);
    TU_OK(store_append(tu_store, &del)); /* a tombstone expires (is purged) too */
    usleep(20000);
    retain_config_t cfg = {0};
    cfg.dflt = (store_retention_t){1, 0, 0, 5, 0};
    retain_t *j;
    TU_OK(retain_new(tu_store, &cfg, &j));
    TU_OK(retain_run_once(j));
    retain_stats_t st;
    retain_get_stats(j, &st);
    retain_free(j);
    store_session_t rec;
    TU_OK(tu_session(tu_store, "trim", &rec));
    cr_assert_eq(rec.first_sequence, 8);
    TU_ERR(tu_session(tu_store, "idle", &rec), REEL_ESESSION_NOT_FOUND);
    TU_ERR(tu_session(tu_store, "ended", &rec), REEL_ESESSION_NOT_FOUND);
    TU_ERR(tu_session(tu_store, "tomb", &rec), REEL_ESESSION_NOT_FOUND);
    TU_OK(tu_session(tu_store, "running", &rec));
    cr_assert_eq(rec.event_count, 4);
    TU_OK(tu_session(tu_store, "forever", &rec));
    cr_assert_eq(rec.event_count, 21);
    TU_OK(tu_session(tu_store, "default", &rec));
    cr_assert_eq(rec.first_sequence, 16);
    cr_assert_eq(st.events_trimmed, 7 + 15);
    cr_assert_eq(st.sessions_expired, 3);
    cr_assert_eq(st.runs, 1);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "%s", rep.problem);
}
