/* store_visible.c -- the visible bound of reads (store.h "Visible bound", serve --ack
 * replica): walks, records, the tail and the change log stop at it; a read that lifts it,
 * the committer's checks and verify see everything; a batch says where the feed stands
 * after it. */
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testutil.h"

TestSuite(store_visible, .init = tu_store_setup, .fini = tu_store_teardown);

static void append(const char *id, int n, tu_result_t *res)
{
    char text[512] = "[";
    for (int i = 0; i < n; i++)
        strcat(text, i ? ",{\"type\":\"t\"}" : "{\"type\":\"t\"}");
    strcat(text, "]");
    TU_OK(tu_append(tu_store, id, text, INGEST_JSON, -1, res, NULL));
}

static int count_cb(void *arg, const store_event_view_t *ev)
{
    (void)ev;
    ++*(size_t *)arg;
    return 0;
}

static int change_cb(void *arg, const store_change_view_t *ch)
{
    ++*(size_t *)arg;
    return 0;
}

Test(store_visible, reads_stop_at_the_bound_and_a_batch_says_its_cursor)
{
    tu_result_t r1, r2;
    append("a", 3, &r1); /* positions 1..3 */
    append("b", 2, &r2); /* 4, 5 */
    append("a", 2, NULL); /* 6, 7 */
    store_set_visible(tu_store, 4, 0);
    store_session_t rec;
    TU_OK(tu_session(tu_store, "a", &rec));
    cr_assert_eq(rec.last_sequence, 3);
    cr_assert_eq(rec.event_count, 3);
    TU_OK(tu_session(tu_store, "b", &rec));
    cr_assert_eq(rec.last_sequence, 1);
    tu_events_t a = {0}, f = {0};
    tu_read_session(tu_store, "a", &a);
    cr_assert_eq(a.n, 3);
    tu_read_feed(tu_store, &f);
    cr_assert_eq(f.n, 4);
    cr_assert_eq(f.v[3].position, 4);
    tu_events_free(&a);
    tu_events_free(&f);
    store_read_t r;
    uint64_t tail;
    size_t n = 0;
    int more = 1;
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_tail_position(&r, &tail));
    cr_assert_eq(tail, 4);
    TU_OK(store_events_newest(&r, "a", 1, 2, count_cb, &n));
    cr_assert_eq(n, 2); /* sequences 2 and 3: the newest visible */
    n = 0;
    TU_OK(store_events_after(&r, "a", 1, 2, 10, count_cb, &n, &more));
    cr_assert_eq(n, 1);
    cr_assert_eq(more, 0); /* what lies above the bound is not "more" */
    store_read_see_all(&r);
    TU_OK(store_tail_position(&r, &tail));
    cr_assert_eq(tail, 7);
    n = 0;
    TU_OK(store_feed_after(&r, 0, 100, count_cb, &n, NULL));
    cr_assert_eq(n, 7);
    store_read_end(&r);
    /* verify sees everything and finds nothing wrong */
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "%s", rep.problem);
    cr_assert_eq(rep.events, 7);
    /* the cursor of a batch: after its last event */
    cr_assert_eq(r1.position, 3);
    store_set_visible(tu_store, STORE_VISIBLE_ALL, UINT32_MAX);
    TU_OK(tu_session(tu_store, "a", &rec));
    cr_assert_eq(rec.last_sequence, 5);
}

Test(store_visible, changes_and_records_of_sessions_above_the_bound)
{
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_PUT, "p", 1);
    b.agent = "x";
    b.agent_len = 1;
    TU_OK(store_append(tu_store, &b));
    cr_assert_eq(b.cursor_position, 0);
    cr_assert_eq(b.cursor_index, 1); /* the change (0, 1) */
    append("p", 1, NULL); /* position 1 */
    store_batch_init(&b, STORE_OP_SESSION_PUT, "p", 1);
    b.agent = "y";
    b.agent_len = 1;
    TU_OK(store_append(tu_store, &b));
    cr_assert_eq(b.cursor_position, 1);
    cr_assert_eq(b.cursor_index, 1); /* the change (1, 1) */
    store_read_t r;
    uint64_t tp;
    uint32_t ti;
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_feed_tail(&r, &tp, &ti));
    store_read_end(&r);
    cr_assert(tp == 1 && ti == 1, "the feed ends at the change (1, 1), not %llu.%u",
              (unsigned long long)tp, ti);
    store_set_visible(tu_store, 1, 0); /* the event, not the change after it */
    size_t ev = 0; /* events and changes, one counter */
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_feed_tail(&r, &tp, &ti));
    cr_assert(tp == 1 && ti == 0);
    TU_OK(store_feed_changes_after(&r, 0, 0, 100, count_cb, change_cb, &ev, NULL));
    store_read_end(&r);
    cr_assert_eq(ev, 2); /* (0, 1) and position 1; not (1, 1) */
    store_set_visible(tu_store, 1, 1);
    ev = 0;
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_feed_changes_after(&r, 0, 0, 100, count_cb, change_cb, &ev, NULL));
    store_read_end(&r);
    cr_assert_eq(ev, 3);
    /* a session whose only events lie above the bound reads as empty, not as damaged */
    append("q", 2, NULL); /* 2, 3 */
    store_set_visible(tu_store, 1, 1);
    store_session_t rec;
    TU_OK(tu_session(tu_store, "q", &rec));
    cr_assert_eq(rec.last_sequence, 0);
    cr_assert_eq(rec.event_count, 0);
    tu_events_t q = {0};
    tu_read_session(tu_store, "q", &q);
    cr_assert_eq(q.n, 0);
    tu_events_free(&q);
    /* appends still see everything: a duplicate above the bound is found */
    tu_result_t res;
    TU_OK(tu_append(tu_store, "q", "[{\"type\":\"t\",\"event_id\":\"z\"}]", INGEST_JSON, 2,
                    &res, NULL));
    cr_assert_eq(res.last_sequence, 3);
    TU_OK(tu_append(tu_store, "q", "[{\"type\":\"t\",\"event_id\":\"z\"}]", INGEST_JSON, -1,
                    &res, NULL));
    cr_assert_eq(res.duplicates, 1);
    store_set_visible(tu_store, STORE_VISIBLE_ALL, UINT32_MAX);
}
