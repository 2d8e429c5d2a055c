/* store_ids.c -- issue 15, items 1 and 2 in the store: any UTF-8 session id up to 1024
 * bytes (long ids keyed by prefix + 0xFF + SHA-256), filtered listings in id and recent
 * order (the 'recent' db kept by the committer), and the in-place upgrade of a format-1
 * data directory made by reel 3c25f6d (tests/fixtures/format1). */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

TestSuite(store_ids, .init = tu_store_setup, .fini = tu_store_teardown);

static void append1(const char *id, const char *type)
{
    char ev[128];
    snprintf(ev, sizeof ev, "{\"type\":\"%s\"}", type);
    TU_OK(tu_append(tu_store, id, ev, INGEST_JSON, -1, NULL, NULL));
}

/* An id of 'len' bytes: 'common' bytes of 'p', then 'x' up to the last byte, 'tail'. */
static char *long_id(size_t len, char tail)
{
    char *id = malloc(len + 1);
    memset(id, 'p', len);
    id[len - 1] = tail;
    id[len] = 0;
    return id;
}

typedef struct page {
    char *ids[64];
    size_t n;
} page_t;

static int page_cb(void *arg, const store_session_t *rec)
{
    page_t *p = arg;
    cr_assert_lt(p->n, 64u);
    cr_assert_eq(strlen(rec->id), rec->id_len);
    p->ids[p->n++] = strdup(rec->id);
    return 0;
}

static void page_free(page_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->ids[i]);
    p->n = 0;
}

/* Every record 'q' gives, 'limit' per read; the pages joined into 'all'. */
static void query_all(store_list_t *q, size_t limit, page_t *all)
{
    int more = 1, pages = 0;
    all->n = 0;
    while (more) {
        store_read_t r;
        TU_OK(store_read_begin(tu_store, &r));
        TU_OK(store_sessions_query(&r, q, limit, 0, page_cb, all, &more));
        store_read_end(&r);
        cr_assert_lt(++pages, 100);
    }
}

Test(store_ids, ids_any_utf8_round_trip_as_given)
{
    static const char *ids[] = {"my session", "team/alpha", "\xc3\xbcn\xc3\xaf", "a%2Fb", "...",
                                "\xf0\x9f\x98\x80 emoji", "quote'\"\\"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        append1(ids[i], "message");
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        store_session_t rec;
        TU_OK(tu_session(tu_store, ids[i], &rec));
        cr_assert_eq(rec.id_len, strlen(ids[i]));
        cr_assert_eq(memcmp(rec.id, ids[i], rec.id_len), 0);
        cr_assert_eq(rec.event_count, 1u);
    }
    store_session_t rec;
    TU_ERR(tu_session(tu_store, "team", &rec), REEL_ESESSION_NOT_FOUND);
    TU_ERR(tu_session(tu_store, "a\x01", &rec), REEL_EINVALID_SESSION_ID);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "%s", rep.problem);
    cr_assert_eq(rep.sessions, sizeof ids / sizeof ids[0]);
}

Test(store_ids, long_ids_sharing_a_prefix_are_distinct_sessions)
{
    /* 480 bytes is keyed by itself, 481 and up by 447 bytes + 0xFF + SHA-256: all share
     * their first 479 bytes, and the two 1024-byte ids differ only in the last byte. */
    char *a = long_id(480, 'A'), *b = long_id(481, 'B'), *c = long_id(1024, 'C'),
         *d = long_id(1024, 'D');
    char *ids[] = {a, b, c, d};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k <= i; k++) /* i + 1 events each */
            append1(ids[i], "message");
    for (int i = 0; i < 4; i++) {
        store_session_t rec;
        TU_OK(tu_session(tu_store, ids[i], &rec));
        cr_assert_eq(rec.id_len, strlen(ids[i]));
        cr_assert_eq(memcmp(rec.id, ids[i], rec.id_len), 0);
        cr_assert_eq(rec.event_count, (uint64_t)i + 1, "session %d has %llu events", i,
                     (unsigned long long)rec.event_count);
        tu_events_t evs = {0};
        tu_read_session(tu_store, ids[i], &evs);
        cr_assert_eq(evs.n, (size_t)i + 1);
        cr_assert_str_eq(evs.v[0].session, ids[i]);
        tu_events_free(&evs);
    }
    /* a 1024-byte id that shares the first 1023 bytes but was never written */
    char *e = long_id(1024, 'E');
    store_session_t rec;
    TU_ERR(tu_session(tu_store, e, &rec), REEL_ESESSION_NOT_FOUND);
    /* 1025 bytes: refused, nothing written */
    char *f = long_id(1025, 'F');
    store_batch_t bt;
    store_batch_init(&bt, STORE_OP_SESSION_PUT, f, 1025);
    TU_ERR(store_append(tu_store, &bt), REEL_EINVALID_SESSION_ID);
    /* the feed names each event's full id */
    tu_events_t feed = {0};
    tu_read_feed(tu_store, &feed);
    cr_assert_eq(feed.n, 10u);
    cr_assert_str_eq(feed.v[9].session, d);
    tu_events_free(&feed);
    /* listing by prefix: all four, paging one at a time; the old list walks them too */
    store_list_t *q = calloc(1, sizeof *q);
    q->status = -1;
    q->prefix = a;
    q->prefix_len = 470;
    page_t all;
    query_all(q, 1, &all);
    cr_assert_eq(all.n, 4u);
    cr_assert_str_eq(all.ids[0], a); /* 480 bytes sorts before the hashed keys */
    page_free(&all);
    /* a prefix longer than the 447 bytes a key keeps: only the ids that really match */
    memset(q, 0, sizeof *q);
    q->status = -1;
    q->prefix = c;
    q->prefix_len = 1024;
    query_all(q, 1, &all);
    cr_assert_eq(all.n, 1u);
    cr_assert_str_eq(all.ids[0], c);
    page_free(&all);
    q->prefix_len = 1023; /* c and d */
    q->started = 0;
    query_all(q, 1, &all);
    cr_assert_eq(all.n, 2u);
    page_free(&all);
    /* delete one 1024-byte id: the other keeps its events */
    store_batch_init(&bt, STORE_OP_SESSION_DELETE, c, 1024);
    TU_OK(store_append(tu_store, &bt));
    TU_OK(tu_session(tu_store, c, &rec));
    cr_assert_eq(rec.status, STORE_DELETED);
    TU_OK(tu_session(tu_store, d, &rec));
    cr_assert_eq(rec.status, STORE_ACTIVE);
    cr_assert_eq(rec.event_count, 4u);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "%s", rep.problem);
    TU_OK(store_verify(tu_store, d, 1024, &rep, NULL, NULL));
    cr_assert(rep.ok, "%s", rep.problem);
    free(q);
    free(a), free(b), free(c), free(d), free(e), free(f);
}

static void put_agent(const char *id, const char *agent)
{
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_PUT, id, strlen(id));
    b.agent = agent;
    b.agent_len = strlen(agent);
    TU_OK(store_append(tu_store, &b));
}

static void expect(page_t *p, const char *const *want, size_t n)
{
    cr_assert_eq(p->n, n, "%zu sessions, want %zu", p->n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(p->ids[i], want[i], "at %zu: '%s', want '%s'", i, p->ids[i], want[i]);
}

Test(store_ids, recent_order_follows_every_change)
{
    const char *names[] = {"s1", "s2", "s3", "s4", "s5"};
    for (int i = 0; i < 5; i++) {
        append1(names[i], "message");
        usleep(3000); /* distinct updated_ms */
    }
    store_list_t *q = calloc(1, sizeof *q);
    q->order = STORE_ORDER_RECENT;
    q->status = -1;
    page_t all;
    query_all(q, 2, &all);
    expect(&all, (const char *[]){"s5", "s4", "s3", "s2", "s1"}, 5);
    page_free(&all);
    append1("s2", "session.ended"); /* append: s2 to the top, ended */
    usleep(3000);
    put_agent("s4", "codex"); /* put */
    usleep(3000);
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_DELETE, "s1", 2); /* delete */
    TU_OK(store_append(tu_store, &b));
    memset(q, 0, sizeof *q);
    q->order = STORE_ORDER_RECENT;
    q->status = -1;
    query_all(q, 2, &all);
    expect(&all, (const char *[]){"s1", "s4", "s2", "s5", "s3"}, 5);
    page_free(&all);
    /* filters, alone and combined */
    memset(q, 0, sizeof *q);
    q->order = STORE_ORDER_RECENT;
    q->status = STORE_ACTIVE;
    query_all(q, 1, &all);
    expect(&all, (const char *[]){"s4", "s5", "s3"}, 3);
    page_free(&all);
    memset(q, 0, sizeof *q);
    q->order = STORE_ORDER_RECENT;
    q->status = STORE_ACTIVE;
    q->agent = "codex";
    q->agent_len = 5;
    query_all(q, 1, &all);
    expect(&all, (const char *[]){"s4"}, 1);
    page_free(&all);
    memset(q, 0, sizeof *q);
    q->status = STORE_ENDED;
    q->prefix = "s";
    q->prefix_len = 1;
    query_all(q, 1, &all);
    expect(&all, (const char *[]){"s2"}, 1);
    page_free(&all);
    /* a session changed while paging: the next page goes on below the place, so the
     * changed session is not given again (it moved above the place) */
    memset(q, 0, sizeof *q);
    q->order = STORE_ORDER_RECENT;
    q->status = -1;
    store_read_t r;
    int more;
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_sessions_query(&r, q, 2, 0, page_cb, &all, &more));
    store_read_end(&r);
    expect(&all, (const char *[]){"s1", "s4"}, 2);
    cr_assert_eq(more, 1);
    usleep(3000);
    append1("s4", "message");
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_sessions_query(&r, q, 10, 0, page_cb, &all, &more));
    store_read_end(&r);
    expect(&all, (const char *[]){"s1", "s4", "s2", "s5", "s3"}, 5);
    cr_assert_eq(more, 0);
    page_free(&all);
    /* a budget stops a filtered walk with 'more' and a place to go on from */
    memset(q, 0, sizeof *q);
    q->order = STORE_ORDER_RECENT;
    q->status = STORE_ENDED;
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_sessions_query(&r, q, 10, 1, page_cb, &all, &more));
    store_read_end(&r);
    cr_assert_eq(all.n, 0u);
    cr_assert_eq(more, 1);
    cr_assert(q->started);
    page_free(&all);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "%s", rep.problem);
    free(q);
}

/* ---- format 1 ---- */

static void unpack_fixture(const char *to)
{
    char cmd[TU_PATH_MAX + 128];
    snprintf(cmd, sizeof cmd, "tar -xzf tests/fixtures/format1/data.tar.gz -C '%s'", to);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* The "runs" key of session 'id''s stored record (-1 when absent). */
static int64_t runs_of(const char *d, const char *id)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {strlen(id), (void *)id}, v;
    int64_t runs = -1;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    cr_assert_eq(mdb_env_open(env, d, MDB_RDONLY, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "sessions", 0, &dbi), 0);
    cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
    store_mp_t m = {v.mv_data, (const uint8_t *)v.mv_data + v.mv_size};
    store_mp_obj_t o, key, val;
    cr_assert_eq(store_mp_next(&m, &o), 0);
    for (uint64_t i = 0; i < o.u; i++) {
        cr_assert_eq(store_mp_next(&m, &key), 0);
        if (key.len == 4 && !memcmp(key.ptr, "runs", 4)) {
            cr_assert_eq(store_mp_next(&m, &val), 0);
            runs = (int64_t)val.u;
        } else {
            cr_assert_eq(store_mp_skip(&m, 64), 0);
        }
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return runs;
}

static const char *const fixture_recent[] = {"beta.2", "empty-one", "del_me", "gamma:3~x",
                                             "s-alpha"};

Test(store_ids, format1_read_only_reads_without_upgrading)
{
    store_close(tu_store);
    tu_store = NULL;
    tu_rmrf(tu_dir);
    tu_tmpdir(tu_dir);
    unpack_fixture(tu_dir);
    store_options_t ro = {.read_only = 1};
    TU_OK(store_open(tu_dir, &ro, &tu_store));
    store_session_t rec;
    TU_OK(tu_session(tu_store, "s-alpha", &rec));
    cr_assert_eq(rec.event_count, 5u);
    cr_assert_eq(rec.status, STORE_ENDED);
    store_list_t *q = calloc(1, sizeof *q);
    q->order = STORE_ORDER_RECENT;
    q->status = -1;
    page_t all;
    query_all(q, 2, &all); /* sorted from the records: no 'recent' db yet */
    expect(&all, fixture_recent, 5);
    page_free(&all);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "%s", rep.problem);
    store_close(tu_store);
    tu_store = NULL;
    cr_assert_eq(tu_format_of(tu_dir), 1u, "a read-only open changed the format");
    free(q);
}

Test(store_ids, format1_upgrades_in_place_on_a_read_write_open)
{
    store_close(tu_store);
    tu_store = NULL;
    tu_rmrf(tu_dir);
    tu_tmpdir(tu_dir);
    unpack_fixture(tu_dir);
    cr_assert_eq(tu_format_of(tu_dir), 1u);
    tu_store = tu_open(tu_dir, 0, 1);
    store_close(tu_store);
    tu_store = NULL;
    cr_assert_eq(tu_format_of(tu_dir), (unsigned)STORE_FORMAT_VERSION);
    /* runs = session.started events: s-alpha ran twice, beta.2 once; del_me's events are
     * gone with its delete */
    cr_assert_eq(runs_of(tu_dir, "s-alpha"), 2);
    cr_assert_eq(runs_of(tu_dir, "beta.2"), 1);
    cr_assert_eq(runs_of(tu_dir, "gamma:3~x"), 0);
    cr_assert_eq(runs_of(tu_dir, "del_me"), 0);
    cr_assert_eq(runs_of(tu_dir, "empty-one"), 0);
    tu_store = tu_open(tu_dir, 0, 1); /* a second open finds the current format: nothing to do */
    store_session_t rec;
    TU_OK(tu_session(tu_store, "s-alpha", &rec));
    cr_assert_eq(rec.event_count, 5u);
    cr_assert_str_eq(rec.agent, "claude");
    /* format 1 left s-alpha "ended" through its second run; format 2's rule makes it
     * active again, with ended_at its end (sequence 3) kept, and version 1 */
    cr_assert_eq(rec.status, STORE_ACTIVE);
    cr_assert_gt(rec.ended_ms, 0);
    cr_assert_lt(rec.ended_ms, rec.updated_ms);
    cr_assert_eq(rec.version, 1u);
    TU_OK(tu_session(tu_store, "del_me", &rec));
    cr_assert_eq(rec.status, STORE_DELETED);
    TU_OK(tu_session(tu_store, "beta.2", &rec));
    cr_assert_eq(rec.event_count, 3u);
    tu_events_t evs = {0};
    tu_read_session(tu_store, "beta.2", &evs); /* includes a compressed body */
    cr_assert_eq(evs.n, 3u);
    tu_events_free(&evs);
    store_list_t *q = calloc(1, sizeof *q);
    q->order = STORE_ORDER_RECENT;
    q->status = -1;
    page_t all;
    query_all(q, 2, &all);
    expect(&all, fixture_recent, 5);
    page_free(&all);
    /* the upgraded store takes appends and keeps 'recent' */
    append1("gamma:3~x", "message");
    memset(q, 0, sizeof *q);
    q->order = STORE_ORDER_RECENT;
    q->status = -1;
    query_all(q, 10, &all);
    cr_assert_str_eq(all.ids[0], "gamma:3~x");
    page_free(&all);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "%s", rep.problem);
    cr_assert_eq(rep.sessions, 5u);
    free(q);
}

Test(store_ids, verify_finds_a_recent_index_that_disagrees)
{
    append1("r1", "message");
    append1("r2", "message");
    store_close(tu_store);
    tu_store = NULL;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    cr_assert_eq(mdb_env_open(env, tu_dir, 0, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "recent", 0, &dbi), 0);
    cr_assert_eq(mdb_cursor_open(txn, dbi, &c), 0);
    cr_assert_eq(mdb_cursor_get(c, &k, &v, MDB_FIRST), 0);
    cr_assert_eq(mdb_cursor_del(c, 0), 0); /* r1's entry */
    mdb_cursor_close(c);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    tu_store = tu_open(tu_dir, 0, 1);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(!rep.ok);
    cr_assert_not_null(strstr(rep.problem, "recent index"), "%s", rep.problem);
}
