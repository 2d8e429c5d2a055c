/* store_retention.c -- STORE_OP_TRIM and STORE_OP_PURGE (docs/FORMAT.md section 10): a
 * trimmed session reads from its first kept event with the chain checked from the kept
 * boundary hash, verify passes, a trim is bounded per batch, a purge frees everything. */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

TestSuite(store_retention, .init = tu_store_setup, .fini = tu_store_teardown);

/* Appends 'n' events to 'session', some large enough to be compressed. */
static void append_n(const char *session, int n)
{
    store_buf_t text = STORE_BUF_INIT;
    for (int i = 0; i < n; i++)
        store_buf_printf(&text, "{\"type\":\"item.delta\",\"data\":{\"i\":%d,\"t\":\"%0*d\"}}\n",
                         i, 10 + (i % 5) * 600, i);
    TU_OK(tu_append(tu_store, session, store_buf_cstr(&text), INGEST_NDJSON, -1, NULL, NULL));
    store_buf_release(&text);
}

static int trim(const char *session, uint64_t before, store_batch_t *b)
{
    store_batch_init(b, STORE_OP_TRIM, session, strlen(session));
    b->trim_before = before;
    return store_append(tu_store, b);
}

static void verify_ok(const char *session)
{
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, session, session ? strlen(session) : 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "verify: %s at %s/%llu: %s", rep.ok ? "" : "finding", rep.session,
              (unsigned long long)rep.sequence, rep.problem);
}

Test(store_retention, trim_reads_from_first_kept_and_verifies)
{
    append_n("a", 30);
    append_n("b", 5);
    store_session_t before;
    TU_OK(tu_session(tu_store, "a", &before));
    store_batch_t b;
    TU_OK(trim("a", 11, &b));
    cr_assert_eq(b.first_sequence, 11);
    store_session_t rec;
    TU_OK(tu_session(tu_store, "a", &rec));
    cr_assert_eq(rec.first_sequence, 11);
    cr_assert_eq(rec.event_count, 20);
    cr_assert_eq(rec.last_sequence, 30);
    cr_assert(rec.bytes < before.bytes);
    cr_assert_eq(rec.version, before.version, "a trim is not a change of what a PUT sets");
    cr_assert_eq(rec.updated_ms, before.updated_ms, "a trim is not an activity");
    /* A read from before the boundary answers from the first kept event. */
    tu_events_t ev = {0};
    tu_read_session(tu_store, "a", &ev);
    cr_assert_eq(ev.n, 20);
    cr_assert_eq(ev.v[0].sequence, 11);
    cr_assert_eq(ev.v[19].sequence, 30);
    tu_events_free(&ev);
    /* The newest-N read and the feed see only kept events, chain checked. */
    store_read_t r;
    tu_events_t nw = {0};
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_events_newest(&r, "a", 1, 100, tu_collect_cb, &nw));
    TU_OK(store_events_after(&r, "a", 1, 10, 1, tu_collect_cb, &nw, NULL));
    store_read_end(&r);
    cr_assert_eq(nw.n, 21);
    cr_assert_eq(nw.v[0].sequence, 11);
    cr_assert_eq(nw.v[20].sequence, 11);
    tu_events_free(&nw);
    tu_events_t feed = {0};
    tu_read_feed(tu_store, &feed);
    cr_assert_eq(feed.n, 25);
    tu_events_free(&feed);
    verify_ok(NULL);
    verify_ok("a");
    /* Appends go on after a trim and the chain continues. */
    append_n("a", 3);
    TU_OK(tu_session(tu_store, "a", &rec));
    cr_assert_eq(rec.last_sequence, 33);
    cr_assert_eq(rec.event_count, 23);
    verify_ok(NULL);
    /* The event_ids of trimmed events are gone with them. */
    TU_OK(tu_append(tu_store, "a", "{\"event_id\":\"x1\",\"type\":\"t\"}", INGEST_JSON, -1, NULL,
                    NULL));
    verify_ok(NULL);
}

Test(store_retention, trim_is_bounded_per_batch_and_keeps_the_boundary_across_reopen)
{
    append_n("big", 1300);
    store_batch_t b;
    TU_OK(trim("big", 1201, &b));
    cr_assert_eq(b.first_sequence, 1 + STORE_TRIM_MAX, "one batch removes at most the max");
    while (b.first_sequence < 1201)
        TU_OK(trim("big", 1201, &b));
    cr_assert_eq(b.first_sequence, 1201);
    store_close(tu_store);
    tu_store = tu_open(tu_dir, 0, 0);
    store_session_t rec;
    TU_OK(tu_session(tu_store, "big", &rec));
    cr_assert_eq(rec.first_sequence, 1201);
    cr_assert_eq(rec.event_count, 100);
    verify_ok(NULL);
    /* Trimming past the end keeps nothing and still verifies; capped at last + 1. */
    TU_OK(trim("big", 99999, &b));
    cr_assert_eq(b.first_sequence, 1301);
    TU_OK(tu_session(tu_store, "big", &rec));
    cr_assert_eq(rec.event_count, 0);
    cr_assert_eq(rec.bytes, 0);
    tu_events_t ev = {0};
    tu_read_session(tu_store, "big", &ev);
    cr_assert_eq(ev.n, 0);
    tu_events_free(&ev);
    verify_ok(NULL);
    append_n("big", 2);
    TU_OK(tu_session(tu_store, "big", &rec));
    cr_assert_eq(rec.first_sequence, 1301);
    cr_assert_eq(rec.last_sequence, 1302);
    verify_ok(NULL);
}

/* Flips one byte of the kept boundary hash in session 'id''s record, with raw LMDB. */
static void tamper_boundary(const char *id)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    mdb_env_set_mapsize(env, 8u << 20);
    cr_assert_eq(mdb_env_open(env, tu_dir, 0, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "sessions", 0, &dbi), 0);
    MDB_val k = {strlen(id), (void *)id}, v;
    cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
    uint8_t copy[4096];
    cr_assert(v.mv_size < sizeof copy);
    memcpy(copy, v.mv_data, v.mv_size);
    uint8_t *at = memmem(copy, v.mv_size, "first_hash", 10);
    cr_assert(at, "the record keeps the boundary hash");
    at[10 + 2 + 5] ^= 0x40; /* after the key and the bin 8 header */
    MDB_val nv = {v.mv_size, copy};
    cr_assert_eq(mdb_put(txn, dbi, &k, &nv, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

Test(store_retention, a_changed_boundary_hash_is_found_by_reads_and_verify)
{
    append_n("a", 12);
    store_batch_t b;
    TU_OK(trim("a", 5, &b));
    verify_ok(NULL);
    store_close(tu_store);
    tamper_boundary("a");
    tu_store = tu_open(tu_dir, 0, 0);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(!rep.ok);
    cr_assert_eq(rep.sequence, 5, "found at the first kept event: %s", rep.problem);
    cr_assert(strstr(rep.problem, "hash chain"), "%s", rep.problem);
    store_read_t r;
    tu_events_t ev = {0};
    TU_OK(store_read_begin(tu_store, &r));
    TU_ERR(store_events_after(&r, "a", 1, 0, 100, tu_collect_cb, &ev, NULL), REEL_ECORRUPT);
    store_read_end(&r);
    tu_events_free(&ev);
}

Test(store_retention, purge_removes_everything_and_the_id_can_start_again)
{
    append_n("gone", 20);
    append_n("kept", 3);
    store_batch_t b;
    store_batch_init(&b, STORE_OP_PURGE, "gone", 4);
    b.expected_sequence = 19;
    TU_ERR(store_append(tu_store, &b), REEL_ECONFLICT); /* not what was archived */
    store_batch_init(&b, STORE_OP_PURGE, "gone", 4);
    b.expected_sequence = 20;
    TU_OK(store_append(tu_store, &b));
    store_session_t rec;
    TU_ERR(tu_session(tu_store, "gone", &rec), REEL_ESESSION_NOT_FOUND);
    tu_events_t feed = {0};
    tu_read_feed(tu_store, &feed);
    cr_assert_eq(feed.n, 3);
    tu_events_free(&feed);
    verify_ok(NULL);
    /* A tombstone can be purged too. */
    store_batch_init(&b, STORE_OP_SESSION_DELETE, "kept", 4);
    TU_OK(store_append(tu_store, &b));
    store_batch_init(&b, STORE_OP_PURGE, "kept", 4);
    TU_OK(store_append(tu_store, &b));
    TU_ERR(tu_session(tu_store, "kept", &rec), REEL_ESESSION_NOT_FOUND);
    store_batch_init(&b, STORE_OP_PURGE, "kept", 4);
    TU_ERR(store_append(tu_store, &b), REEL_ESESSION_NOT_FOUND);
    /* The id starts again from sequence 1, under a new number. */
    append_n("gone", 2);
    TU_OK(tu_session(tu_store, "gone", &rec));
    cr_assert_eq(rec.last_sequence, 2);
    cr_assert_eq(rec.first_sequence, 1);
    verify_ok(NULL);
    store_stats_t st;
    store_get_stats(tu_store, &st);
    cr_assert_eq(st.purged, 2);
}

Test(store_retention, policy_is_kept_in_the_record)
{
    append_n("p", 1);
    store_retention_t pol = {1, 3600000, 60000, 10, 1};
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_PUT, "p", 1);
    b.retention = &pol;
    TU_OK(store_append(tu_store, &b));
    store_session_t rec;
    TU_OK(tu_session(tu_store, "p", &rec));
    cr_assert(rec.retention.set);
    cr_assert_eq(rec.retention.max_age_ms, 3600000);
    cr_assert_eq(rec.retention.max_age_ended_ms, 60000);
    cr_assert_eq(rec.retention.max_events, 10);
    cr_assert_eq(rec.retention.no_archive, 1);
    cr_assert_eq(rec.version, 2);
    store_retention_t none = {0};
    store_batch_init(&b, STORE_OP_SESSION_PUT, "p", 1);
    b.retention = &none;
    TU_OK(store_append(tu_store, &b));
    TU_OK(tu_session(tu_store, "p", &rec));
    cr_assert(!rec.retention.set);
    cr_assert_eq(rec.version, 3);
    verify_ok(NULL);
}

static void count_done(store_batch_t *b, void *arg)
{
    (void)b;
    __atomic_add_fetch((int *)arg, 1, __ATOMIC_SEQ_CST);
}

Test(store_retention, purge_and_append_in_one_group)
{
    /* A purge then an append of the same id, submitted back to back (usually one group):
     * the append makes a new session, never the purged record. */
    append_n("g", 4);
    store_batch_t p;
    store_batch_init(&p, STORE_OP_PURGE, "g", 1);
    ingest_batch_t ib;
    TU_OK(ingest_batch_init(&ib, "g", 1));
    TU_OK(ingest_parse(&ib, "{\"type\":\"t\"}", 12, INGEST_JSON, NULL, NULL));
    int done = 0;
    p.done = count_done;
    p.done_arg = &done;
    TU_OK(store_submit(tu_store, &p));
    TU_OK(ingest_submit(tu_store, &ib, count_done, &done));
    while (__atomic_load_n(&done, __ATOMIC_SEQ_CST) < 2)
        usleep(1000);
    TU_OK(p.err);
    TU_OK(ib.b.err);
    ingest_batch_release(&ib);
    store_session_t rec;
    TU_OK(tu_session(tu_store, "g", &rec));
    cr_assert_eq(rec.last_sequence, 1);
    cr_assert_eq(rec.first_sequence, 1);
    verify_ok(NULL);
}

Test(store_retention, verify_finds_an_event_id_left_from_a_trimmed_event)
{
    append_n("a", 12);
    store_batch_t b;
    TU_OK(trim("a", 6, &b));
    store_session_t rec;
    TU_OK(tu_session(tu_store, "a", &rec));
    verify_ok(NULL);
    store_close(tu_store);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    mdb_env_set_mapsize(env, 8u << 20);
    cr_assert_eq(mdb_env_open(env, tu_dir, 0, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "event_ids", 0, &dbi), 0);
    uint8_t key[13], seq[8] = {0, 0, 0, 0, 0, 0, 0, 2};
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(rec.num >> (56 - 8 * i));
    memcpy(key + 8, "ghost", 5);
    MDB_val k = {13, key}, v = {8, seq};
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    tu_store = tu_open(tu_dir, 0, 0);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(!rep.ok);
    cr_assert(strstr(rep.problem, "still names sequence 2"), "%s", rep.problem);
}
