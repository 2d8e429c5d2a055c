/* store_idempotency.c -- event_id deduplication and expected_sequence checks (docs/HTTP.md "Append"). */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

TestSuite(store_idempotency, .init = tu_store_setup, .fini = tu_store_teardown);

/* Parses NDJSON 'text' into 'ib' for 'session' and appends it; the caller releases 'ib'. */
static int append_ib(ingest_batch_t *ib, const char *session, const char *text,
                     int64_t expected)
{
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    ingest_error_t e;
    TU_OK(ingest_batch_init(ib, session, strlen(session)));
    int rc = ingest_parse(ib, text, strlen(text), INGEST_NDJSON, &lim, &e);
    cr_assert_eq(rc, 0, "ingest_parse: %s: %s", reel_strerror(rc), e.text);
    ib->b.expected_sequence = expected;
    return ingest_append(tu_store, ib);
}

static uint64_t tail_position(void)
{
    store_read_t r;
    uint64_t pos = 0;
    TU_OK(store_read_begin(tu_store, &r));
    int rc = store_tail_position(&r, &pos);
    store_read_end(&r);
    TU_OK(rc);
    return pos;
}

static uint64_t stored_events(void)
{
    store_stats_t s;
    store_get_stats(tu_store, &s);
    return s.events;
}

static void check_session(const char *session, uint64_t last, uint64_t count)
{
    store_session_t rec;
    TU_OK(tu_session(tu_store, session, &rec));
    cr_assert_eq(rec.last_sequence, last, "%s: last_sequence %llu, want %llu", session,
                 (unsigned long long)rec.last_sequence, (unsigned long long)last);
    cr_assert_eq(rec.event_count, count, "%s: event_count %llu, want %llu", session,
                 (unsigned long long)rec.event_count, (unsigned long long)count);
    tu_events_t ev = {0};
    tu_read_session(tu_store, session, &ev);
    cr_assert_eq(ev.n, count, "%s: read %zu events, want %llu", session, ev.n,
                 (unsigned long long)count);
    for (size_t i = 0; i < ev.n; i++)
        cr_assert_eq(ev.v[i].sequence, i + 1, "%s: event %zu has sequence %llu", session, i,
                     (unsigned long long)ev.v[i].sequence);
    tu_events_free(&ev);
}

Test(store_idempotency, same_event_id_twice_is_one_event_and_reports_the_first_sequence)
{
    ingest_batch_t a, b, c;
    TU_OK(append_ib(&a, "s1", "{\"event_id\":\"e1\",\"type\":\"t\",\"data\":\"first\"}\n", -1));
    cr_assert_eq(a.b.first_sequence, 1);
    cr_assert_eq(a.events[0].duplicate, 0);
    uint64_t pos1 = a.events[0].position;
    TU_OK(append_ib(&b, "s1", "{\"event_id\":\"e2\",\"type\":\"t\",\"data\":\"second\"}\n", -1));
    cr_assert_eq(b.events[0].sequence, 2);
    uint64_t tail = tail_position();

    TU_OK(append_ib(&c, "s1", "{\"event_id\":\"e1\",\"type\":\"t\",\"data\":\"retry\"}\n", -1));
    cr_assert_eq(c.events[0].duplicate, 1, "second append of e1 not reported as duplicate");
    cr_assert_eq(c.events[0].sequence, 1, "duplicate reports sequence %llu, want 1",
                 (unsigned long long)c.events[0].sequence);
    cr_assert_eq(c.events[0].position, pos1, "duplicate reports position %llu, want %llu",
                 (unsigned long long)c.events[0].position, (unsigned long long)pos1);
    cr_assert_eq(c.b.duplicates, 1);
    cr_assert_eq(c.b.first_sequence, 1);
    cr_assert_eq(c.b.last_sequence, 1);
    cr_assert_eq(tail_position(), tail, "a duplicate moved the tail position");
    cr_assert_eq(stored_events(), 2);
    ingest_batch_release(&a);
    ingest_batch_release(&b);
    ingest_batch_release(&c);

    check_session("s1", 2, 2);
    tu_events_t ev = {0};
    tu_read_session(tu_store, "s1", &ev);
    cr_assert_str_eq(ev.v[0].data, "\"first\"", "the duplicate overwrote the original");
    cr_assert_str_eq(ev.v[0].event_id, "e1");
    tu_events_free(&ev);
}

static const char five[] = "{\"event_id\":\"a1\",\"type\":\"t\"}\n"
                           "{\"event_id\":\"a2\",\"type\":\"t\"}\n"
                           "{\"event_id\":\"a3\",\"type\":\"t\"}\n"
                           "{\"event_id\":\"a4\",\"type\":\"t\"}\n"
                           "{\"event_id\":\"a5\",\"type\":\"t\"}\n";

Test(store_idempotency, retried_batch_reports_all_duplicates_and_appends_nothing)
{
    ingest_batch_t a, b;
    TU_OK(append_ib(&a, "s1", five, -1));
    cr_assert_eq(a.b.first_sequence, 1);
    cr_assert_eq(a.b.last_sequence, 5);
    cr_assert_eq(a.b.duplicates, 0);
    uint64_t tail = tail_position();
    cr_assert_eq(a.b.position, tail, "batch position %llu is not the tail %llu",
                 (unsigned long long)a.b.position, (unsigned long long)tail);

    TU_OK(append_ib(&b, "s1", five, -1));
    cr_assert_eq(b.b.duplicates, 5, "retry reported %zu duplicates, want 5", b.b.duplicates);
    cr_assert_eq(b.b.first_sequence, 1);
    cr_assert_eq(b.b.last_sequence, 5);
    cr_assert_eq(b.b.position, a.b.position);
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(b.events[i].duplicate, 1, "event %zu not a duplicate", i);
        cr_assert_eq(b.events[i].sequence, a.events[i].sequence, "event %zu sequence", i);
        cr_assert_eq(b.events[i].position, a.events[i].position, "event %zu position", i);
    }
    cr_assert_eq(tail_position(), tail, "the retry moved the tail position");
    cr_assert_eq(stored_events(), 5);
    ingest_batch_release(&a);
    ingest_batch_release(&b);
    check_session("s1", 5, 5);
}

Test(store_idempotency, partly_retried_batch_appends_only_the_new_events)
{
    ingest_batch_t a, b;
    TU_OK(append_ib(&a, "s1", five, -1));
    TU_OK(append_ib(&b, "s1",
                    "{\"event_id\":\"a4\",\"type\":\"t\"}\n"
                    "{\"event_id\":\"a6\",\"type\":\"t\"}\n"
                    "{\"event_id\":\"a5\",\"type\":\"t\"}\n"
                    "{\"event_id\":\"a7\",\"type\":\"t\"}\n",
                    -1));
    cr_assert_eq(b.b.duplicates, 2);
    cr_assert_eq(b.events[0].duplicate, 1);
    cr_assert_eq(b.events[0].sequence, 4);
    cr_assert_eq(b.events[1].duplicate, 0);
    cr_assert_eq(b.events[1].sequence, 6);
    cr_assert_eq(b.events[2].duplicate, 1);
    cr_assert_eq(b.events[2].sequence, 5);
    cr_assert_eq(b.events[3].duplicate, 0);
    cr_assert_eq(b.events[3].sequence, 7);
    cr_assert_eq(b.b.first_sequence, 4, "first_sequence is the smallest, new or duplicate");
    cr_assert_eq(b.b.last_sequence, 7);
    cr_assert_gt(b.events[1].position, a.b.position);
    cr_assert_gt(b.events[3].position, b.events[1].position);
    ingest_batch_release(&a);
    ingest_batch_release(&b);
    check_session("s1", 7, 7);

    tu_events_t ev = {0};
    tu_read_session(tu_store, "s1", &ev);
    static const char *const want[] = {"a1", "a2", "a3", "a4", "a5", "a6", "a7"};
    for (size_t i = 0; i < 7; i++)
        cr_assert_str_eq(ev.v[i].event_id, want[i], "sequence %zu", i + 1);
    tu_events_free(&ev);
}

Test(store_idempotency, wrong_expected_sequence_conflicts_and_writes_nothing)
{
    ingest_batch_t a, b, c, d;
    TU_OK(append_ib(&a, "s1", five, -1));
    uint64_t tail = tail_position();
    static const char next[] = "{\"event_id\":\"n1\",\"type\":\"t\"}\n"
                               "{\"event_id\":\"n2\",\"type\":\"t\"}\n";

    TU_ERR(append_ib(&b, "s1", next, 3), REEL_ECONFLICT);
    cr_assert_eq(b.b.err, REEL_ECONFLICT);
    cr_assert_eq(b.b.last_sequence, 5, "a conflict reports the actual last sequence, got %llu",
                 (unsigned long long)b.b.last_sequence);
    TU_ERR(append_ib(&c, "s1", next, 6), REEL_ECONFLICT);
    cr_assert_eq(tail_position(), tail, "a conflict moved the tail position");
    cr_assert_eq(stored_events(), 5);
    check_session("s1", 5, 5);

    TU_OK(append_ib(&d, "s1", next, 5));
    cr_assert_eq(d.b.first_sequence, 6);
    cr_assert_eq(d.b.last_sequence, 7);
    cr_assert_eq(d.b.duplicates, 0);
    ingest_batch_release(&a);
    ingest_batch_release(&b);
    ingest_batch_release(&c);
    ingest_batch_release(&d);
    check_session("s1", 7, 7);

    /* the rejected ids were not recorded either: appending them now makes new events */
    tu_events_t ev = {0};
    tu_read_session(tu_store, "s1", &ev);
    cr_assert_str_eq(ev.v[5].event_id, "n1");
    cr_assert_str_eq(ev.v[6].event_id, "n2");
    tu_events_free(&ev);
}

Test(store_idempotency, expected_sequence_zero_means_new_or_empty_session)
{
    static const char one[] = "{\"event_id\":\"x\",\"type\":\"t\"}\n";
    static const char two[] = "{\"event_id\":\"y\",\"type\":\"t\"}\n";
    ingest_batch_t a, b, c;
    store_session_t rec;

    TU_ERR(append_ib(&a, "fresh", one, 4), REEL_ECONFLICT);
    cr_assert_eq(a.b.last_sequence, 0);
    TU_ERR(tu_session(tu_store, "fresh", &rec), REEL_ESESSION_NOT_FOUND);
    cr_assert_eq(tail_position(), 0, "a conflicting first append wrote to the log");

    TU_OK(append_ib(&b, "fresh", one, 0));
    cr_assert_eq(b.b.first_sequence, 1);
    TU_ERR(append_ib(&c, "fresh", two, 0), REEL_ECONFLICT);
    cr_assert_eq(c.b.last_sequence, 1);
    ingest_batch_release(&a);
    ingest_batch_release(&b);
    ingest_batch_release(&c);
    check_session("fresh", 1, 1);
}

Test(store_idempotency, stale_expected_sequence_is_ignored_when_every_event_is_a_duplicate)
{
    ingest_batch_t a, b, c;
    TU_OK(append_ib(&a, "s1", five, 0));
    /* the client retries its first request after it was committed: still expected 0 */
    TU_OK(append_ib(&b, "s1", five, 0));
    cr_assert_eq(b.b.duplicates, 5);
    cr_assert_eq(b.b.first_sequence, 1);
    cr_assert_eq(b.b.last_sequence, 5);
    /* a batch mixing a duplicate with a new event is checked */
    TU_ERR(append_ib(&c, "s1",
                     "{\"event_id\":\"a5\",\"type\":\"t\"}\n{\"event_id\":\"a6\",\"type\":\"t\"}\n",
                     0),
           REEL_ECONFLICT);
    ingest_batch_release(&a);
    ingest_batch_release(&b);
    ingest_batch_release(&c);
    check_session("s1", 5, 5);
}

Test(store_idempotency, same_event_id_in_two_sessions_is_two_events)
{
    ingest_batch_t a, b;
    TU_OK(append_ib(&a, "one", "{\"event_id\":\"same\",\"type\":\"t\"}\n", -1));
    TU_OK(append_ib(&b, "two", "{\"event_id\":\"same\",\"type\":\"t\"}\n", -1));
    cr_assert_eq(b.events[0].duplicate, 0, "event_id uniqueness leaked across sessions");
    cr_assert_eq(b.b.duplicates, 0);
    cr_assert_eq(b.events[0].sequence, 1);
    cr_assert_gt(b.events[0].position, a.events[0].position);
    ingest_batch_release(&a);
    ingest_batch_release(&b);
    check_session("one", 1, 1);
    check_session("two", 1, 1);
    cr_assert_eq(stored_events(), 2);
}

Test(store_idempotency, event_id_repeated_inside_one_batch_is_stored_once)
{
    ingest_batch_t a;
    int rc = append_ib(&a, "s1",
                       "{\"event_id\":\"r\",\"type\":\"t\",\"data\":1}\n"
                       "{\"event_id\":\"q\",\"type\":\"t\",\"data\":2}\n"
                       "{\"event_id\":\"r\",\"type\":\"t\",\"data\":3}\n",
                       -1);
    if (rc == 0) {
        /* accepted: the repeat is a duplicate of the first, no gap, no second copy */
        cr_assert_eq(a.events[2].duplicate, 1, "in-batch repeat not reported as duplicate");
        cr_assert_eq(a.events[2].sequence, a.events[0].sequence);
        ingest_batch_release(&a);
        check_session("s1", 2, 2);
        tu_events_t ev = {0};
        tu_read_session(tu_store, "s1", &ev);
        cr_assert_str_eq(ev.v[0].event_id, "r");
        cr_assert_str_eq(ev.v[0].data, "1");
        cr_assert_str_eq(ev.v[1].event_id, "q");
        tu_events_free(&ev);
    } else {
        /* or rejected as a whole: then nothing is written */
        ingest_batch_release(&a);
        cr_assert_eq(stored_events(), 0, "rejected batch (%s) wrote events", reel_strerror(rc));
        cr_assert_eq(tail_position(), 0);
    }
}

Test(store_idempotency, events_without_event_id_get_distinct_uuid7_ids)
{
    ingest_batch_t a;
    TU_OK(append_ib(&a, "s1", "{\"type\":\"t\"}\n{\"type\":\"t\"}\n{\"type\":\"t\"}\n", -1));
    cr_assert_eq(a.b.duplicates, 0);
    cr_assert_eq(a.b.last_sequence, 3);
    ingest_batch_release(&a);
    tu_events_t ev = {0};
    tu_read_session(tu_store, "s1", &ev);
    cr_assert_eq(ev.n, 3);
    for (size_t i = 0; i < 3; i++) {
        const char *id = ev.v[i].event_id;
        cr_assert_eq(strlen(id), 36, "generated id '%s' is not a UUID", id);
        cr_assert_eq(id[14], '7', "generated id '%s' is not version 7", id);
        cr_assert(strchr("89ab", id[19]) != NULL, "generated id '%s' has a bad variant", id);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(ev.v[j].event_id, id, "ids %zu and %zu are equal", j, i);
    }
    tu_events_free(&ev);

    char u[37], v[37];
    ingest_uuid7(u);
    ingest_uuid7(v);
    cr_assert_eq(strlen(u), 36);
    cr_assert_str_neq(u, v);
    cr_assert(u[8] == '-' && u[13] == '-' && u[18] == '-' && u[23] == '-', "bad uuid %s", u);
}

Test(store_idempotency, duplicate_survives_reopen)
{
    ingest_batch_t a, b;
    TU_OK(append_ib(&a, "s1", five, -1));
    ingest_batch_release(&a);
    store_close(tu_store);
    tu_store = tu_open(tu_dir, 8u << 20, 0);
    TU_OK(append_ib(&b, "s1", five, -1));
    cr_assert_eq(b.b.duplicates, 5, "event_ids were forgotten across a reopen");
    ingest_batch_release(&b);
    check_session("s1", 5, 5);
}

/* ---- batches that meet in one group commit ---- */

static atomic_int n_done;

static void done_cb(store_batch_t *b, void *arg)
{
    (void)b;
    (void)arg;
    atomic_fetch_add(&n_done, 1);
}

/* Parses each NDJSON text into ib[i] (with expected[i]) and submits them all without
 * waiting, behind a large first batch so they queue up for one commit; then waits. */
static void submit_all(ingest_batch_t *ib, const char *const *session, const char *const *text,
                       const int64_t *expected, int n)
{
    ingest_limits_t lim = INGEST_LIMITS_DEFAULT;
    ingest_batch_t slow;
    store_buf_t big = STORE_BUF_INIT;
    uint64_t seed = 5;
    for (int i = 0; i < 2000; i++) {
        store_buf_printf(&big, "{\"type\":\"slow\",\"data\":\"");
        for (int k = 0; k < 64; k++)
            store_buf_printf(&big, "%016llx", (unsigned long long)tu_rand(&seed));
        store_buf_puts(&big, "\"}\n");
    }
    TU_OK(ingest_batch_init(&slow, "slow", 4));
    TU_OK(ingest_parse(&slow, (const char *)big.data, big.len, INGEST_NDJSON, &lim, NULL));
    store_buf_release(&big);
    for (int i = 0; i < n; i++) {
        TU_OK(ingest_batch_init(&ib[i], session[i], strlen(session[i])));
        TU_OK(ingest_parse(&ib[i], text[i], strlen(text[i]), INGEST_NDJSON, &lim, NULL));
        ib[i].b.expected_sequence = expected[i];
    }
    atomic_store(&n_done, 0);
    TU_OK(ingest_submit(tu_store, &slow, done_cb, NULL));
    for (int i = 0; i < n; i++)
        TU_OK(ingest_submit(tu_store, &ib[i], done_cb, NULL));
    for (int spins = 0; atomic_load(&n_done) < n + 1 && spins < 20000; spins++)
        usleep(1000);
    cr_assert_eq(atomic_load(&n_done), n + 1, "only %d of %d batches completed",
                 atomic_load(&n_done), n + 1);
    cr_assert_eq(slow.b.err, 0);
    ingest_batch_release(&slow);
}

Test(store_idempotency, conflicting_batch_in_a_group_commit_fails_alone)
{
    static const char *const sess[] = {"g1", "g2", "g1", "g3", "g2"};
    static const char *const text[] = {
        "{\"event_id\":\"a\",\"type\":\"t\"}\n{\"event_id\":\"b\",\"type\":\"t\"}\n",
        "{\"event_id\":\"c\",\"type\":\"t\"}\n",
        "{\"event_id\":\"d\",\"type\":\"t\"}\n", /* expected 5: conflicts (g1 is at 2) */
        "{\"event_id\":\"e\",\"type\":\"t\"}\n",
        "{\"event_id\":\"f\",\"type\":\"t\"}\n",
    };
    static const int64_t expected[] = {0, -1, 5, -1, 1};
    ingest_batch_t ib[5];
    submit_all(ib, sess, text, expected, 5);
    cr_assert_eq(ib[0].b.err, 0, "%s", reel_strerror(ib[0].b.err));
    cr_assert_eq(ib[1].b.err, 0, "%s", reel_strerror(ib[1].b.err));
    cr_assert_eq(ib[2].b.err, REEL_ECONFLICT, "%s", reel_strerror(ib[2].b.err));
    cr_assert_eq(ib[2].b.last_sequence, 2, "conflict reports last_sequence %llu, want 2",
                 (unsigned long long)ib[2].b.last_sequence);
    cr_assert_eq(ib[3].b.err, 0, "%s", reel_strerror(ib[3].b.err));
    cr_assert_eq(ib[4].b.err, 0, "expected_sequence 1 after an earlier batch of the same "
                                 "commit: %s", reel_strerror(ib[4].b.err));
    cr_assert_eq(ib[4].b.first_sequence, 2);
    for (int i = 0; i < 5; i++)
        ingest_batch_release(&ib[i]);
    check_session("g1", 2, 2);
    check_session("g2", 2, 2);
    check_session("g3", 1, 1);
    cr_assert_eq(stored_events(), 2000 + 5);
    store_stats_t s;
    store_get_stats(tu_store, &s);
    cr_assert_eq(s.batch_errors, 1);
}

Test(store_idempotency, same_event_id_in_two_batches_of_one_group_commit_is_stored_once)
{
    static const char *const sess[] = {"g", "g", "g"};
    static const char *const text[] = {
        "{\"event_id\":\"x\",\"type\":\"t\",\"data\":1}\n",
        "{\"event_id\":\"y\",\"type\":\"t\",\"data\":2}\n{\"event_id\":\"x\",\"type\":\"t\","
        "\"data\":3}\n",
        "{\"event_id\":\"x\",\"type\":\"t\",\"data\":4}\n",
    };
    static const int64_t expected[] = {-1, -1, -1};
    ingest_batch_t ib[3];
    submit_all(ib, sess, text, expected, 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ib[i].b.err, 0, "batch %d: %s", i, reel_strerror(ib[i].b.err));
    cr_assert_eq(ib[0].events[0].sequence, 1);
    cr_assert_eq(ib[0].events[0].duplicate, 0);
    cr_assert_eq(ib[1].events[0].sequence, 2);
    cr_assert_eq(ib[1].events[1].duplicate, 1);
    cr_assert_eq(ib[1].events[1].sequence, 1);
    cr_assert_eq(ib[1].events[1].position, ib[0].events[0].position);
    cr_assert_eq(ib[2].events[0].duplicate, 1);
    cr_assert_eq(ib[2].events[0].sequence, 1);
    cr_assert_eq(ib[2].b.duplicates, 1);
    for (int i = 0; i < 3; i++)
        ingest_batch_release(&ib[i]);
    check_session("g", 2, 2);
    tu_events_t ev = {0};
    tu_read_session(tu_store, "g", &ev);
    cr_assert_str_eq(ev.v[0].data, "1");
    tu_events_free(&ev);
}

Test(store_idempotency, escaped_and_raw_event_ids_are_the_same_key)
{
    ingest_batch_t a, b;
    TU_OK(append_ib(&a, "s1", "{\"event_id\":\"caf\\u00e9\",\"type\":\"t\"}\n", -1));
    TU_OK(append_ib(&b, "s1", "{\"event_id\":\"caf\xc3\xa9\",\"type\":\"t\"}\n", -1));
    cr_assert_eq(b.events[0].duplicate, 1, "\\u00e9 and raw U+00E9 are different keys");
    cr_assert_eq(b.events[0].sequence, 1);
    ingest_batch_release(&a);
    ingest_batch_release(&b);
    check_session("s1", 1, 1);
}
