/* store_consumers.c -- durable consumers in the store (store.h "Durable consumers",
 * docs/FORMAT.md section 12): create, leases with fencing tokens, acknowledgements that
 * only move forward and never past the end, the raw records' compare-and-swap, the
 * database made by the first change, and the records surviving a reopen. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

TestSuite(store_consumers, .init = tu_store_setup, .fini = tu_store_teardown);

static store_consumer_req_t req(int op, const char *name)
{
    store_consumer_req_t q;
    memset(&q, 0, sizeof q);
    q.op = op;
    q.rec.name_len = strlen(name);
    memcpy(q.rec.name, name, q.rec.name_len);
    return q;
}

static int run(store_consumer_req_t *q)
{
    store_batch_t b;
    store_batch_init(&b, STORE_OP_CONSUMER, NULL, 0);
    b.consumer = q;
    return store_append(tu_store, &b);
}

static int create_session(const char *name, const char *session, const char *types)
{
    store_consumer_req_t q = req(STORE_CONSUMER_CREATE, name);
    q.rec.feed = session == NULL;
    if (session) {
        q.rec.session_len = strlen(session);
        memcpy(q.rec.session, session, q.rec.session_len);
    }
    snprintf(q.rec.types, sizeof q.rec.types, "%s", types ? types : "");
    return run(&q);
}

static int lease(const char *name, const char *owner, uint64_t ttl, uint64_t token,
                 uint64_t *got)
{
    store_consumer_req_t q = req(STORE_CONSUMER_LEASE, name);
    q.rec.owner_len = strlen(owner);
    memcpy(q.rec.owner, owner, q.rec.owner_len);
    q.ttl_ms = ttl;
    q.token = token;
    int rc = run(&q);
    if (got)
        *got = q.rec.token;
    return rc;
}

static int ack(const char *name, uint64_t token, uint64_t pos)
{
    store_consumer_req_t q = req(STORE_CONSUMER_ACK, name);
    q.token = token;
    q.position = pos;
    return run(&q);
}

static store_consumer_t get(const char *name)
{
    store_read_t r;
    store_consumer_t c;
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_consumer_get(&r, name, strlen(name), &c));
    store_read_end(&r);
    return c;
}

static void append_n(const char *session, int n)
{
    for (int i = 0; i < n; i++)
        TU_OK(tu_append(tu_store, session, "{\"type\":\"t\"}", INGEST_JSON, -1, NULL, NULL));
}

struct names {
    char names[4][STORE_CONSUMER_NAME_MAX + 1];
    int n;
};

static int collect_name(void *arg, const store_consumer_t *x)
{
    struct names *s = arg;
    if (s->n < 4)
        memcpy(s->names[s->n++], x->name, x->name_len + 1);
    return 0;
}

Test(store_consumers, a_store_without_consumers_reads_as_none)
{
    store_read_t r;
    store_consumer_t c;
    TU_OK(store_read_begin(tu_store, &r));
    TU_ERR(store_consumer_get(&r, "x", 1, &c), REEL_ENOT_FOUND);
    store_read_end(&r);
    store_consumer_req_t q = req(STORE_CONSUMER_DELETE, "x");
    TU_ERR(run(&q), REEL_ENOT_FOUND);
}

Test(store_consumers, create_is_idempotent_and_refuses_another_definition)
{
    TU_OK(create_session("c", "s", NULL));
    store_consumer_req_t q = req(STORE_CONSUMER_CREATE, "c");
    q.rec.session_len = 1;
    q.rec.session[0] = 's';
    TU_OK(run(&q));
    cr_assert_eq(q.created, 0);
    TU_ERR(create_session("c", "other", NULL), REEL_ECONFLICT);
    TU_ERR(create_session("c", NULL, NULL), REEL_ECONFLICT);
    TU_ERR(create_session("bad/name", "s", NULL), REEL_EINVALID_PARAMETER);
    store_consumer_t c = get("c");
    cr_assert_eq(c.feed, 0);
    cr_assert_eq(c.acked, 0);
    cr_assert_eq(c.token, 0);
}

Test(store_consumers, leases_fence_earlier_owners)
{
    append_n("s", 5);
    TU_OK(create_session("c", "s", NULL));
    uint64_t t1, t2, t3;
    TU_OK(lease("c", "w1", 60000, 0, &t1));
    cr_assert_eq(t1, 1);
    TU_ERR(lease("c", "w2", 60000, 0, NULL), REEL_ELEASE_HELD);
    TU_OK(lease("c", "w1", 60000, t1, &t2)); /* a renewal keeps the token */
    cr_assert_eq(t2, t1);
    TU_OK(lease("c", "w1", 60000, 0, &t3)); /* a restarted w1: a new token */
    cr_assert_eq(t3, t1 + 1);
    TU_ERR(ack("c", t1, 2), REEL_ESTALE_TOKEN);
    TU_OK(ack("c", t3, 2));
    cr_assert_eq(get("c").acked, 2);
    TU_ERR(ack("c", t3, 1), REEL_ECONFLICT);        /* never backwards */
    TU_ERR(ack("c", t3, 6), REEL_EINVALID_PARAMETER); /* never past the session's end */
    TU_OK(ack("c", t3, 2));                         /* the same position: no change */
    cr_assert_eq(get("c").acks, 1);
    store_consumer_req_t q = req(STORE_CONSUMER_RELEASE, "c");
    q.token = t3;
    TU_OK(run(&q));
    TU_ERR(ack("c", t3, 3), REEL_ESTALE_TOKEN); /* released */
    uint64_t t4;
    TU_OK(lease("c", "w2", 60000, 0, &t4));
    cr_assert_gt(t4, t3);
}

Test(store_consumers, an_expired_lease_goes_to_the_next_owner)
{
    append_n("s", 3);
    TU_OK(create_session("c", "s", NULL));
    uint64_t t1, t2;
    TU_OK(lease("c", "w1", 50, 0, &t1));
    TU_OK(ack("c", t1, 1));
    usleep(80 * 1000);
    TU_ERR(ack("c", t1, 2), REEL_ESTALE_TOKEN);
    TU_OK(lease("c", "w2", 1000, 0, &t2));
    cr_assert_eq(t2, t1 + 1);
    store_consumer_t c = get("c");
    cr_assert_eq(c.takeovers, 1);
    cr_assert_eq(c.acked, 1); /* the new owner reads from here */
    cr_assert_str_eq(c.owner, "w2");
}

Test(store_consumers, feed_consumers_ack_up_to_the_log_and_survive_a_reopen)
{
    append_n("a", 2);
    append_n("b", 2);
    TU_OK(create_session("f", NULL, "t,u"));
    uint64_t t;
    TU_OK(lease("f", "w", 60000, 0, &t));
    TU_ERR(ack("f", t, 5), REEL_EINVALID_PARAMETER);
    TU_OK(ack("f", t, 4));
    store_close(tu_store);
    tu_store = tu_open(tu_dir, 0, 0);
    store_consumer_t c = get("f");
    cr_assert_eq(c.feed, 1);
    cr_assert_str_eq(c.types, "t,u");
    cr_assert_eq(c.acked, 4);
    cr_assert_eq(c.token, t);
    /* listing, in name order */
    TU_OK(create_session("e", "a", NULL));
    store_read_t r;
    struct names seen = {.n = 0};
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_consumer_list(&r, collect_name, &seen));
    store_read_end(&r);
    cr_assert_eq(seen.n, 2);
    cr_assert_str_eq(seen.names[0], "e");
    cr_assert_str_eq(seen.names[1], "f");
}

Test(store_consumers, raw_records_compare_and_swap)
{
    store_consumer_req_t q = req(STORE_CONSUMER_PUT_RAW, "sub:x");
    q.value = (const uint8_t *)"v1";
    q.value_len = 2;
    q.check = 1;
    TU_OK(run(&q));
    q.value = (const uint8_t *)"v2";
    TU_ERR(run(&q), REEL_ECONFLICT); /* expected absent, but it exists */
    q.expected = (const uint8_t *)"v1";
    q.expected_len = 2;
    TU_OK(run(&q));
    store_read_t r;
    const uint8_t *v;
    size_t n;
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_consumer_raw_get(&r, "sub:x", 5, &v, &n));
    cr_assert(n == 2 && !memcmp(v, "v2", 2));
    store_consumer_t c;
    TU_ERR(store_consumer_get(&r, "sub:x", 5, &c), REEL_ENOT_FOUND); /* kinds do not mix */
    store_read_end(&r);
    q.value_len = 0; /* delete */
    q.check = 0;
    TU_OK(run(&q));
    TU_OK(store_read_begin(tu_store, &r));
    TU_ERR(store_consumer_raw_get(&r, "sub:x", 5, &v, &n), REEL_ENOT_FOUND);
    store_read_end(&r);
}

Test(store_consumers, sync_changes_nothing)
{
    store_consumer_req_t q = req(STORE_CONSUMER_SYNC, "");
    TU_OK(run(&q));
    store_read_t r;
    store_consumer_t c;
    TU_OK(store_read_begin(tu_store, &r));
    TU_ERR(store_consumer_get(&r, "x", 1, &c), REEL_ENOT_FOUND);
    store_read_end(&r);
    store_close(tu_store);
    tu_store = tu_open(tu_dir, 0, 0);
    TU_OK(store_read_begin(tu_store, &r));
    TU_ERR(store_consumer_get(&r, "x", 1, &c), REEL_ENOT_FOUND);
    store_read_end(&r);
}
