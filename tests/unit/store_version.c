/* store_version.c -- session record versions and runs (issue 15, items 6 and 7).
 *
 * The version counts changes of what a PUT sets (1 at creation, +1 per applied PUT, per
 * DELETE that deletes, per append batch that changes the native id or the metadata); the
 * conditions of a batch (STORE_IF_*) are checked by the committer inside its write
 * transaction, so a compare-and-swap holds across threads and processes. runs counts
 * session.started events; an append after session.ended makes the session active again. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store_int.h"
#include "tests/unit/testutil.h"

TestSuite(store_version, .init = tu_store_setup, .fini = tu_store_teardown);

/* A PUT of 'agent' (NULL: nothing set) under condition 'ifv' / 'want' (0: none). Returns
 * the batch's error; '*version' (may be NULL) is b->version. */
static int put_if(store_t *s, const char *sid, const char *agent, unsigned ifv, uint64_t want,
                  uint64_t *version)
{
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_PUT, sid, strlen(sid));
    if (agent) {
        b.agent = agent;
        b.agent_len = strlen(agent);
    }
    b.if_version = ifv;
    if (ifv & STORE_IF_VERSION) {
        b.if_match[0] = want;
        b.n_if_match = 1;
    }
    int rc = store_append(s, &b);
    if (version)
        *version = b.version;
    return rc;
}

static int del_if(const char *sid, unsigned ifv, uint64_t want, uint64_t *version)
{
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_DELETE, sid, strlen(sid));
    b.if_version = ifv;
    b.if_match[0] = want;
    b.n_if_match = 1;
    int rc = store_append(tu_store, &b);
    if (version)
        *version = b.version;
    return rc;
}

static store_session_t rec_of(const char *sid)
{
    store_session_t rec;
    TU_OK(tu_session(tu_store, sid, &rec));
    return rec;
}

/* Appends NDJSON 'text' to 'sid'; asserts success. */
static void append(const char *sid, const char *text, tu_result_t *res)
{
    TU_OK(tu_append(tu_store, sid, text, INGEST_NDJSON, -1, res, NULL));
}

Test(store_version, puts_and_deletes_count_appends_do_not)
{
    uint64_t v = 0;
    TU_OK(put_if(tu_store, "s", "a", 0, 0, &v));
    cr_assert_eq(v, 1, "created at version 1");
    TU_OK(put_if(tu_store, "s", NULL, 0, 0, &v));
    cr_assert_eq(v, 1, "a PUT that changes nothing keeps the version");
    TU_OK(put_if(tu_store, "s", "a", 0, 0, &v));
    cr_assert_eq(v, 1, "nor does one that sets the same agent again");
    TU_OK(put_if(tu_store, "s", "b", 0, 0, &v));
    cr_assert_eq(v, 2, "a PUT that changes a field counts");
    append("s", "{\"type\":\"session.started\"}\n{\"type\":\"x\"}\n{\"type\":\"session.ended\"}\n",
           NULL);
    cr_assert_eq(rec_of("s").version, 2, "events leave the version");
    append("s", "{\"type\":\"x\",\"native_session_id\":\"n1\"}\n"
                "{\"type\":\"y\",\"native_session_id\":\"n2\"}\n", NULL);
    cr_assert_eq(rec_of("s").version, 3, "a batch that changes the native id counts once");
    append("s", "{\"type\":\"x\",\"native_session_id\":\"n2\"}\n", NULL);
    cr_assert_eq(rec_of("s").version, 3, "the same native id changes nothing");
    TU_OK(del_if("s", 0, 0, &v));
    cr_assert_eq(v, 4);
    TU_OK(del_if("s", 0, 0, &v));
    cr_assert_eq(v, 4, "deleting a deleted session changes nothing");
    /* a session created by its first append starts at 1 */
    append("t", "{\"type\":\"x\",\"native_session_id\":\"n\"}\n", NULL);
    cr_assert_eq(rec_of("t").version, 1);
}

/* An append batch carrying metadata (Durable Streams state) counts when it changes it. */
Test(store_version, append_metadata_counts_when_it_changes)
{
    static const uint8_t nil = 0xc0;
    uint8_t m1[] = {0x81, 0xa1, 'v', 0x01}, m2[] = {0x81, 0xa1, 'v', 0x02};
    const uint8_t *metas[] = {m1, m1, m2};
    uint64_t want[] = {1, 1, 2};
    for (int i = 0; i < 3; i++) {
        ingest_batch_t ib;
        ingest_error_t e;
        TU_OK(ingest_batch_init(&ib, "m", 1));
        TU_OK(ingest_add(&ib, "stream.message", NULL, -1, NULL, NULL, &nil, 1, NULL, 0, &e));
        ib.b.metadata = metas[i];
        ib.b.metadata_len = sizeof m1;
        TU_OK(ingest_append(tu_store, &ib));
        cr_assert_eq(ib.b.version, want[i], "batch %d: version %llu", i,
                     (unsigned long long)ib.b.version);
        ingest_batch_release(&ib);
        cr_assert_eq(rec_of("m").version, want[i]);
    }
}

Test(store_version, a_failed_condition_changes_nothing)
{
    uint64_t v;
    TU_OK(put_if(tu_store, "c", "first", 0, 0, NULL));
    TU_OK(put_if(tu_store, "c", "second", STORE_IF_VERSION, 1, &v));
    cr_assert_eq(v, 2);
    TU_ERR(put_if(tu_store, "c", "third", STORE_IF_VERSION, 1, &v), REEL_EPRECONDITION);
    cr_assert_eq(v, 2, "the failure reports the current version");
    store_session_t r = rec_of("c");
    cr_assert_str_eq(r.agent, "second");
    cr_assert_eq(r.version, 2);
    cr_assert_eq(reel_err_status(REEL_EPRECONDITION), 412);

    TU_ERR(put_if(tu_store, "c", "x", STORE_IF_ABSENT, 0, &v), REEL_EPRECONDITION);
    TU_OK(put_if(tu_store, "c", "y", STORE_IF_EXISTS, 0, &v));
    cr_assert_eq(v, 3);

    TU_ERR(put_if(tu_store, "new", "x", STORE_IF_EXISTS, 0, &v), REEL_EPRECONDITION);
    cr_assert_eq(v, 0, "no session: version 0");
    TU_ERR(put_if(tu_store, "new", "x", STORE_IF_VERSION, 1, &v), REEL_EPRECONDITION);
    store_session_t none;
    TU_ERR(tu_session(tu_store, "new", &none), REEL_ESESSION_NOT_FOUND);
    TU_OK(put_if(tu_store, "new", "x", STORE_IF_ABSENT, 0, &v));
    cr_assert_eq(v, 1);

    TU_ERR(del_if("c", STORE_IF_VERSION, 1, &v), REEL_EPRECONDITION);
    cr_assert_eq(rec_of("c").status, STORE_ACTIVE);
    TU_OK(del_if("c", STORE_IF_VERSION, 3, &v));
    cr_assert_eq(v, 4);
    TU_ERR(put_if(tu_store, "c", "z", STORE_IF_VERSION, 4, &v), REEL_EGONE);
    TU_ERR(del_if("missing", STORE_IF_VERSION, 1, NULL), REEL_ESESSION_NOT_FOUND);
}

/* ---- the check is inside the transaction ---- */

#define RACERS 8

struct racer {
    pthread_barrier_t *go;
    const char *sid;
    int rc;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    pthread_barrier_wait(r->go);
    r->rc = put_if(tu_store, r->sid, "me", STORE_IF_VERSION, 1, NULL);
    return NULL;
}

/* Batches submitted together with the same expected version (often in one group): exactly
 * one applies. */
Test(store_version, concurrent_puts_expecting_one_version_apply_once)
{
    for (int round = 0; round < 20; round++) {
        char sid[16];
        snprintf(sid, sizeof sid, "race%d", round);
        TU_OK(put_if(tu_store, sid, "base", 0, 0, NULL));
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, RACERS);
        pthread_t t[RACERS];
        struct racer rs[RACERS];
        for (int i = 0; i < RACERS; i++) {
            rs[i] = (struct racer){&go, sid, -1};
            cr_assert_eq(pthread_create(&t[i], NULL, race, &rs[i]), 0);
        }
        int ok = 0, failed = 0;
        for (int i = 0; i < RACERS; i++) {
            pthread_join(t[i], NULL);
            ok += rs[i].rc == REEL_OK;
            failed += rs[i].rc == REEL_EPRECONDITION;
        }
        pthread_barrier_destroy(&go);
        cr_assert_eq(ok, 1, "round %d: %d applied", round, ok);
        cr_assert_eq(failed, RACERS - 1);
        cr_assert_eq(rec_of(sid).version, 2);
    }
}

#define PROCS 2
#define INCREMENTS 40

/* The metadata {"n": n} of 'sid' and the record's version. */
static int read_counter(store_t *s, const char *sid, uint64_t *n, uint64_t *version)
{
    store_read_t r;
    store_session_t rec;
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    rc = store_session_get(&r, sid, strlen(sid), &rec);
    *n = 0;
    if (!rc && rec.metadata && rec.metadata_len == 4)
        *n = rec.metadata[3];
    if (!rc)
        *version = rec.version;
    store_read_end(&r);
    return rc;
}

/* Increments the counter INCREMENTS times by read-modify-write under If-Match. */
static void counter_child(void)
{
    store_options_t opt = {.map_size = 1u << 20};
    store_t *s = NULL;
    if (store_open(tu_dir, &opt, &s))
        _exit(3);
    for (int i = 0; i < INCREMENTS; i++) {
        for (int tries = 0;; tries++) {
            uint64_t n, v;
            if (tries > 10000 || read_counter(s, "ctr", &n, &v))
                _exit(4);
            uint8_t meta[] = {0x81, 0xa1, 'n', (uint8_t)(n + 1)}; /* positive fixint < 128 */
            store_batch_t b;
            store_batch_init(&b, STORE_OP_SESSION_PUT, "ctr", 3);
            b.metadata = meta;
            b.metadata_len = sizeof meta;
            b.if_version = STORE_IF_VERSION;
            b.if_match[0] = v;
            b.n_if_match = 1;
            int rc = store_append(s, &b);
            if (rc == REEL_OK)
                break;
            if (rc != REEL_EPRECONDITION)
                _exit(5);
        }
    }
    store_close(s);
    _exit(0);
}

/* Two processes (two committers, one data directory) increment one counter: no increment
 * is lost, so the version check happens in the write transaction that LMDB serializes. */
Test(store_version, read_modify_write_from_two_processes_loses_nothing)
{
    tu_watchdog(120);
    uint8_t zero[] = {0x81, 0xa1, 'n', 0x00};
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_PUT, "ctr", 3);
    b.metadata = zero;
    b.metadata_len = sizeof zero;
    TU_OK(store_append(tu_store, &b));
    store_close(tu_store);
    tu_store = NULL;
    pid_t pids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        pids[p] = fork();
        cr_assert_neq(pids[p], -1, "fork: %s", strerror(errno));
        if (pids[p] == 0)
            counter_child();
    }
    for (int p = 0; p < PROCS; p++) {
        int status;
        cr_assert_eq(waitpid(pids[p], &status, 0), pids[p]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "process %d: status 0x%x", p,
                  status);
    }
    tu_store = tu_open(tu_dir, 0, 1);
    uint64_t n, v;
    TU_OK(read_counter(tu_store, "ctr", &n, &v));
    cr_assert_eq(n, PROCS * INCREMENTS, "counter %llu", (unsigned long long)n);
    cr_assert_eq(v, 1 + PROCS * INCREMENTS);
}

/* ---- runs and reactivation ---- */

Test(store_version, a_session_that_runs_again_is_active_again)
{
    append("r", "{\"type\":\"session.started\"}\n{\"type\":\"x\"}\n{\"type\":\"session.ended\"}\n",
           NULL);
    store_session_t r = rec_of("r");
    cr_assert_eq(r.status, STORE_ENDED);
    cr_assert_eq(r.runs, 1);
    int64_t end1 = r.ended_ms;
    cr_assert_gt(end1, 0);
    append("r", "{\"type\":\"session.started\"}\n", NULL);
    r = rec_of("r");
    cr_assert_eq(r.status, STORE_ACTIVE);
    cr_assert_eq(r.runs, 2);
    cr_assert_eq(r.ended_ms, end1, "ended_at keeps the latest end while running again");
    cr_assert_eq(r.version, 1);
    usleep(2000);
    append("r", "{\"type\":\"session.ended\"}\n", NULL);
    r = rec_of("r");
    cr_assert_eq(r.status, STORE_ENDED);
    cr_assert_gt(r.ended_ms, end1, "a later end moves ended_at");
    /* in one batch: the last event decides */
    append("b", "{\"type\":\"session.started\"}\n{\"type\":\"session.ended\"}\n"
                "{\"type\":\"session.started\"}\n", NULL);
    r = rec_of("b");
    cr_assert_eq(r.status, STORE_ACTIVE);
    cr_assert_eq(r.runs, 2);
    cr_assert_gt(r.ended_ms, 0);
}

Test(store_version, duplicates_do_not_count_or_reactivate)
{
    const char *run = "{\"event_id\":\"s1\",\"type\":\"session.started\"}\n"
                      "{\"event_id\":\"e1\",\"type\":\"session.ended\"}\n";
    tu_result_t res;
    append("d", run, NULL);
    append("d", run, &res);
    cr_assert_eq(res.duplicates, 2);
    append("d", "{\"event_id\":\"s1\",\"type\":\"session.started\"}\n", &res);
    cr_assert_eq(res.duplicates, 1);
    store_session_t r = rec_of("d");
    cr_assert_eq(r.runs, 1);
    cr_assert_eq(r.status, STORE_ENDED, "a re-sent event is not an append");
    /* the same event_id twice in one batch counts once */
    append("d2", "{\"event_id\":\"s\",\"type\":\"session.started\"}\n"
                 "{\"event_id\":\"s\",\"type\":\"session.started\"}\n", NULL);
    cr_assert_eq(rec_of("d2").runs, 1);
    cr_assert_eq(rec_of("d2").last_sequence, 1);
}

Test(store_version, a_deleted_session_stays_deleted)
{
    append("x", "{\"type\":\"session.started\"}\n{\"type\":\"session.ended\"}\n", NULL);
    TU_OK(del_if("x", 0, 0, NULL));
    TU_ERR(tu_append(tu_store, "x", "{\"type\":\"session.started\"}\n", INGEST_NDJSON, -1, NULL,
                     NULL),
           REEL_EGONE);
    store_session_t r = rec_of("x");
    cr_assert_eq(r.status, STORE_DELETED);
    cr_assert_eq(r.runs, 1);
}

/* Records written before version and runs existed (format 1) read as version 1, runs 0. */
Test(store_version, records_without_the_keys_read_with_defaults)
{
    store_session_t rec;
    memset(&rec, 0, sizeof rec);
    rec.num = 7;
    rec.version = 9;
    rec.runs = 3;
    store_buf_t full = STORE_BUF_INIT, old = STORE_BUF_INIT;
    store__session_encode(&rec, &full);
    store_session_t back;
    TU_OK(store__session_decode(full.data, full.len, "s", 1, &back));
    cr_assert_eq(back.version, 9);
    cr_assert_eq(back.runs, 3);
    /* the same map without "version" and "runs" */
    store_mp_t m = {full.data, full.data + full.len};
    store_mp_obj_t o, k;
    TU_OK(store_mp_next(&m, &o));
    store_mp_map(&old, (uint32_t)o.u - 2);
    for (uint64_t i = 0; i < o.u; i++) {
        const uint8_t *start = m.p;
        TU_OK(store_mp_next(&m, &k));
        TU_OK(store_mp_skip(&m, 8));
        int drop = (k.len == 7 && !memcmp(k.ptr, "version", 7)) ||
                   (k.len == 4 && !memcmp(k.ptr, "runs", 4));
        if (!drop)
            store_buf_put(&old, start, (size_t)(m.p - start));
    }
    TU_OK(store__session_decode(old.data, old.len, "s", 1, &back));
    cr_assert_eq(back.version, 1);
    cr_assert_eq(back.runs, 0);
    store_buf_release(&full);
    store_buf_release(&old);
}
