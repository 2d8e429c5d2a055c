/* store_tenant.c -- what the store gives the HTTP server for tenant isolation (issue 23):
 * the feed's 'only' hook (other sessions' events passed over unread, counted, and the
 * walk continued past them by replay_scan) and the store's secret (kept across opens). */
#include <stdio.h>
#include <string.h>

#include "replay/replay.h"
#include "tests/unit/testutil.h"

TestSuite(store_tenant, .init = tu_store_setup, .fini = tu_store_teardown);

static void append(const char *session, int i)
{
    char text[96];
    snprintf(text, sizeof text, "{\"event_id\":\"e%d\",\"type\":\"t\",\"data\":%d}", i, i);
    TU_OK(tu_append(tu_store, session, text, INGEST_JSON, -1, NULL, NULL));
}

static int only_acme(void *arg, const char *id, size_t len)
{
    (*(int *)arg)++;
    return len >= 5 && !memcmp(id, "acme/", 5);
}

/* acme/a and beta/b interleaved: positions 1..2n, acme's odd. */
static void interleave(int n)
{
    for (int i = 1; i <= n; i++) {
        append("acme/a", i);
        append("beta/b", i);
    }
}

Test(store_tenant, only_hands_over_the_kept_sessions_and_counts_the_others)
{
    interleave(10);
    store_read_t r;
    TU_OK(store_read_begin(tu_store, &r));
    int asked = 0;
    r.only = only_acme;
    r.only_arg = &asked;
    tu_events_t ev = {0};
    int more = 0;
    TU_OK(store_feed_after(&r, 0, 7, tu_collect_cb, &ev, &more));
    /* 7 examined: positions 1..7, of which acme's 1, 3, 5, 7 were handed over */
    cr_assert_eq(ev.n, 4);
    for (size_t i = 0; i < ev.n; i++) {
        cr_assert_str_eq(ev.v[i].session, "acme/a");
        cr_assert_eq(ev.v[i].position, 2 * i + 1);
    }
    cr_assert_eq(r.passed, 3);
    cr_assert_eq(r.passed_up_to, 6);
    cr_assert_eq(more, 1);
    cr_assert_eq(asked, 7, "asked once per run of one session: %d", asked);
    store_read_end(&r);
    tu_events_free(&ev);
}

static int keep_all(void *arg, const store_event_view_t *ev, uint64_t key)
{
    tu_events_t *v = arg;
    return tu_collect_cb(v, ev);
}

Test(store_tenant, a_scan_continues_past_other_sessions_to_the_tail)
{
    for (int i = 1; i <= 3000; i++)
        append("beta/b", i);
    append("acme/a", 1);
    for (int i = 3001; i <= 3500; i++)
        append("beta/b", i);
    store_read_t r;
    TU_OK(store_read_begin(tu_store, &r));
    int asked = 0;
    r.only = only_acme;
    r.only_arg = &asked;
    tu_events_t ev = {0};
    replay_scan_t sc = {NULL, 0, NULL, 20000, 0, 0};
    TU_OK(replay_scan(&r, &sc, 0, keep_all, &ev));
    cr_assert_eq(ev.n, 1);
    cr_assert_eq(ev.v[0].position, 3001);
    cr_assert_eq(sc.scanned, 3501, "the scan reached the tail: %llu",
                 (unsigned long long)sc.scanned);
    cr_assert_eq(sc.more, 0);
    /* a small budget stops early, past other sessions' events, and says there is more */
    replay_scan_t small = {NULL, 0, NULL, 1000, 0, 0};
    tu_events_t none = {0};
    TU_OK(replay_scan(&r, &small, 0, keep_all, &none));
    cr_assert_eq(none.n, 0);
    cr_assert_eq(small.scanned, 1000);
    cr_assert_eq(small.more, 1);
    store_read_end(&r);
    tu_events_free(&ev);
    tu_events_free(&none);
}

Test(store_tenant, the_secret_is_made_once_and_kept)
{
    uint8_t a[STORE_SECRET_LEN], b[STORE_SECRET_LEN], zero[STORE_SECRET_LEN] = {0};
    TU_OK(store_secret(tu_store, a));
    cr_assert(memcmp(a, zero, sizeof a), "a random secret, not zeros");
    store_close(tu_store);
    store_options_t ro = {.read_only = 1};
    TU_OK(store_open(tu_dir, &ro, &tu_store));
    TU_OK(store_secret(tu_store, b));
    cr_assert(!memcmp(a, b, sizeof a), "the same secret after a reopen");
    store_close(tu_store);
    tu_store = tu_open(tu_dir, 0, 1);
    TU_OK(store_secret(tu_store, b));
    cr_assert(!memcmp(a, b, sizeof a));
}
