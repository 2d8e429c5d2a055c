/* store_zdict.c -- zstd dictionaries trained on the store's own events (issue 19, docs/FORMAT.md
 * section 15): values written before a dictionary stay readable after it appears and after a
 * reopen; new values are compressed with it (flags 0x05) and read back the same; verify
 * passes; redaction after the fact works on them; too few events train nothing; the store
 * trains by itself; a damaged dictionary record is reported as corruption, not a crash;
 * kill -9 during training leaves a store that opens and verifies. */
#include <errno.h>
#include <pthread.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

static char dir[TU_PATH_MAX];
static store_t *st;

static void setup(void)
{
    tu_watchdog(120);
    tu_tmpdir(dir);
    /* Default options: tests stay under STORE_ZDICT_FIRST events unless they want the
     * store to train by itself. */
    store_options_t o = {.map_size = 64u << 20, .no_sync = 1};
    TU_OK(store_open(dir, &o, &st));
}

static void teardown(void)
{
    store_close(st);
    st = NULL;
    tu_rmrf(dir);
}

TestSuite(store_zdict, .init = setup, .fini = teardown);

static void reopen(int no_zdict)
{
    store_close(st);
    store_options_t o = {.map_size = 64u << 20, .no_sync = 1, .no_zdict = no_zdict};
    TU_OK(store_open(dir, &o, &st));
}

/* 'n' events from 'first' on, shaped like a transcript: short deltas with the text repeated
 * in raw, and now and then a long tool result (over STORE_COMPRESS_MIN bytes). */
static void append_n(const char *session, int first, int n)
{
    static const char *words[] = {"alpha", "commit", "buffer", "session", "reader", "page",
                                  "value", "index", "dictionary", "transcript", "tool"};
    store_buf_t b = STORE_BUF_INIT;
    uint64_t seed = (uint64_t)first * 7919u + 1;
    for (int i = first; i < first + n; i++) {
        store_buf_t text = STORE_BUF_INIT;
        int words_n = i % 10 == 0 ? 400 : 3 + (int)(tu_rand(&seed) % 20);
        for (int w = 0; w < words_n; w++)
            store_buf_printf(&text, "%s%s %d", w ? " " : "", words[tu_rand(&seed) % 11], i);
        store_buf_putc(&text, 0);
        store_buf_printf(&b, "{\"type\":\"item.delta\",\"source\":\"agent\",\"data\":{\"item_id\":"
                         "\"itm_%d\",\"delta\":\"%s\"},\"raw\":{\"type\":\"stream_event\","
                         "\"text\":\"%s\"}}\n", i / 7, text.data, text.data);
        store_buf_release(&text);
    }
    store_buf_putc(&b, 0);
    TU_OK(tu_append(st, session, (const char *)b.data, INGEST_NDJSON, -1, NULL, NULL));
    store_buf_release(&b);
}

/* The session rendered, one envelope per line. */
static char *session_text(const char *session)
{
    tu_events_t ev = {0};
    tu_read_session(st, session, &ev);
    store_buf_t b = STORE_BUF_INIT;
    for (size_t i = 0; i < ev.n; i++)
        store_buf_printf(&b, "%s\n", ev.v[i].json);
    tu_events_free(&ev);
    store_buf_putc(&b, 0);
    return (char *)b.data;
}

static void verify_ok(void)
{
    store_verify_report_t rep;
    TU_OK(store_verify(st, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "verify: %s at %s/%llu", rep.problem, rep.session,
              (unsigned long long)rep.sequence);
}

/* Counts the stored values by flags byte (the store closed), with raw LMDB. */
static void count_flags(const char *d, size_t counts[8])
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    memset(counts, 0, 8 * sizeof counts[0]);
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, d, MDB_RDONLY, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "events", 0, &dbi), 0);
    cr_assert_eq(mdb_cursor_open(txn, dbi, &c), 0);
    MDB_val k, v;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        counts[((const uint8_t *)v.mv_data)[0] & 7]++;
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

Test(store_zdict, a_store_without_one_reads_and_writes_as_before)
{
    append_n("s", 0, 400);
    store_zdict_info_t zi;
    TU_OK(store_zdict_info(st, &zi));
    cr_assert_eq(zi.count, 0);
    store_close(st);
    st = NULL;
    size_t f[8];
    count_flags(dir, f);
    cr_assert_eq(f[STORE_FLAG_ZSTD | STORE_FLAG_ZDICT], 0);
    /* Every tenth event is a long one (STORE_COMPRESS_MIN bytes or more): ingest leaves it
     * raw (store_body_encode_raw) and store_submit() compresses it in a plain frame. */
    cr_assert_eq(f[STORE_FLAG_ZSTD], 40, "plain frames: %zu", f[STORE_FLAG_ZSTD]);
    cr_assert_eq(f[0], 360);
    reopen(0);
    verify_ok();
}

Test(store_zdict, too_few_events_train_nothing)
{
    TU_ERR(store_zdict_train(st), REEL_ENOT_FOUND);
    append_n("s", 0, 20);
    TU_ERR(store_zdict_train(st), REEL_ENOT_FOUND);
    store_zdict_info_t zi;
    TU_OK(store_zdict_info(st, &zi));
    cr_assert_eq(zi.count, 0);
    verify_ok();
}

Test(store_zdict, old_values_stay_readable_new_ones_use_it)
{
    append_n("s", 0, 600);
    char *before = session_text("s");
    TU_OK(store_zdict_train(st));
    store_zdict_info_t zi;
    TU_OK(store_zdict_info(st, &zi));
    cr_assert_eq(zi.count, 1);
    cr_assert_eq(zi.id, 1);
    cr_assert_eq(zi.damaged, 0);
    cr_assert_eq(zi.trained_at, 600);
    cr_assert(zi.bytes > 1000);

    char *now = session_text("s"); /* the old values, unchanged, read as before */
    cr_assert_str_eq(now, before);
    free(now);
    append_n("s", 600, 300);
    append_n("t", 0, 50);
    char *all = session_text("s");
    cr_assert(!strncmp(all, before, strlen(before)));
    verify_ok();

    reopen(0); /* a new handle loads the dictionary from the store */
    char *again = session_text("s");
    cr_assert_str_eq(again, all);
    verify_ok();
    store_close(st);
    st = NULL;
    size_t f[8];
    count_flags(dir, f);
    /* A value the dictionary does not make smaller is kept as it was. */
    cr_assert_geq(f[STORE_FLAG_ZSTD | STORE_FLAG_ZDICT], 340, "dictionary values: %zu",
                  f[STORE_FLAG_ZSTD | STORE_FLAG_ZDICT]);
    cr_assert_eq(f[0] + f[STORE_FLAG_ZSTD] + f[STORE_FLAG_ZSTD | STORE_FLAG_ZDICT], 950);
    reopen(0);
    free(again);
    free(all);
    free(before);
}

Test(store_zdict, the_first_batch_after_a_reopen_uses_it)
{
    append_n("s", 0, 400);
    TU_OK(store_zdict_train(st));
    reopen(0);
    append_n("s", 400, 50); /* the first batch of this handle */
    store_close(st);
    st = NULL;
    size_t f[8];
    count_flags(dir, f);
    cr_assert_geq(f[STORE_FLAG_ZSTD | STORE_FLAG_ZDICT], 45, "dictionary values: %zu",
                  f[STORE_FLAG_ZSTD | STORE_FLAG_ZDICT]);
    reopen(0);
    verify_ok();
}

Test(store_zdict, a_second_dictionary_keeps_the_first_readable)
{
    append_n("s", 0, 400);
    TU_OK(store_zdict_train(st));
    append_n("s", 400, 400);
    char *before = session_text("s");
    TU_OK(store_zdict_train(st));
    append_n("s", 800, 100);
    store_zdict_info_t zi;
    TU_OK(store_zdict_info(st, &zi));
    cr_assert_eq(zi.count, 2);
    cr_assert_eq(zi.id, 2);
    reopen(0);
    char *all = session_text("s");
    cr_assert(!strncmp(all, before, strlen(before)));
    verify_ok();
    free(all);
    free(before);
}

Test(store_zdict, redaction_after_the_fact_on_dictionary_values)
{
    append_n("s", 0, 400);
    TU_OK(store_zdict_train(st));
    append_n("s", 400, 20);
    const char *paths[] = {"data.delta"};
    ingest_redact_req_t q = {"s", 1, 401, 410, paths, 1, NULL, 0, "unit"};
    ingest_redact_result_t res;
    TU_OK(ingest_redact_after(st, &q, &res, NULL));
    cr_assert_eq(res.events, 10);
    ingest_redact_result_release(&res);
    verify_ok();
    char *all = session_text("s");
    cr_assert(strstr(all, "[REDACTED]") || strstr(all, "redact"));
    free(all);
    reopen(0);
    verify_ok();
}

Test(store_zdict, no_zdict_writes_as_before_and_reads_what_is_there)
{
    append_n("s", 0, 400);
    TU_OK(store_zdict_train(st));
    append_n("s", 400, 100);
    char *before = session_text("s");
    reopen(1);
    TU_ERR(store_zdict_train(st), REEL_EUNAVAILABLE);
    append_n("s", 500, 100);
    char *all = session_text("s");
    cr_assert(!strncmp(all, before, strlen(before)));
    verify_ok();
    store_close(st);
    st = NULL;
    size_t f[8];
    count_flags(dir, f);
    cr_assert_leq(f[STORE_FLAG_ZSTD | STORE_FLAG_ZDICT], 100); /* only those before */
    cr_assert_eq(f[0] + f[STORE_FLAG_ZSTD], 500 + 100 - f[STORE_FLAG_ZSTD | STORE_FLAG_ZDICT]);
    cr_assert_geq(f[STORE_FLAG_ZSTD], 10, "the long events after --zdict off: plain frames");
    reopen(0);
    free(all);
    free(before);
}

Test(store_zdict, the_store_trains_by_itself)
{
    reopen(0);
    append_n("s", 0, STORE_ZDICT_FIRST + 100);
    store_zdict_info_t zi = {0};
    /* The committer trains right after the commit that passed STORE_ZDICT_FIRST and
     * stores the dictionary with the next group (an empty one if nothing else comes). */
    for (int i = 0; i < 200 && !zi.count; i++) {
        TU_OK(store_zdict_info(st, &zi));
        if (!zi.count)
            usleep(20000);
    }
    cr_assert_eq(zi.count, 1);
    /* The record is visible once its group committed; submitters take the dictionary up
     * after that group, so one more append (whatever it gets) makes sure the next ones
     * are compressed with it. */
    append_n("s", STORE_ZDICT_FIRST + 100, 1);
    append_n("s", STORE_ZDICT_FIRST + 101, 50);
    verify_ok();
    store_close(st);
    st = NULL;
    size_t f[8];
    count_flags(dir, f);
    cr_assert_geq(f[STORE_FLAG_ZSTD | STORE_FLAG_ZDICT], 45);
    reopen(0);
}

struct writer {
    int id, err;
};

/* One thread's appends: 40 batches of 50 events to a session of its own. No Criterion
 * assertion here (testutil.h): the first error is kept for the test's thread. */
static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char session[16];
    snprintf(session, sizeof session, "w%d", w->id);
    for (int b = 0; b < 40 && !w->err; b++) {
        store_buf_t text = STORE_BUF_INIT;
        for (int i = 0; i < 50; i++)
            store_buf_printf(&text, "{\"type\":\"item.delta\",\"data\":{\"delta\":\"thread %d "
                             "batch %d event %d of the reply\"}}\n", w->id, b, i);
        store_buf_putc(&text, 0);
        w->err = tu_append(st, session, (const char *)text.data, INGEST_NDJSON, -1, NULL, NULL);
        store_buf_release(&text);
    }
    return NULL;
}

/* Submitters compress on their own threads with the shared dictionary while the committer
 * trains and installs it (FORMAT.md 15.4). */
Test(store_zdict, appends_from_many_threads_while_it_trains)
{
    pthread_t t[4];
    struct writer w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct writer){i, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        TU_OK(w[i].err);
    }
    store_zdict_info_t zi = {0};
    for (int i = 0; i < 200 && !zi.count; i++) {
        TU_OK(store_zdict_info(st, &zi));
        if (!zi.count)
            usleep(20000);
    }
    cr_assert_geq(zi.count, 1);
    verify_ok();
    for (int i = 0; i < 4; i++) {
        char session[16];
        snprintf(session, sizeof session, "w%d", i);
        tu_events_t ev = {0};
        tu_read_session(st, session, &ev);
        cr_assert_eq(ev.n, 2000);
        tu_events_free(&ev);
    }
}

/* Flips a byte inside the dictionary of record 'zdict' 'id' (the store closed). */
static void damage_dictionary(uint32_t id)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t key[9] = {'z', 'd', 'i', 'c', 't', 0, 0, 0, (uint8_t)id};
    MDB_val k = {9, key}, v;
    cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size - 100] ^= 0x5a;
    MDB_val nv = {v.mv_size, copy};
    cr_assert_eq(mdb_put(txn, dbi, &k, &nv, 0), 0);
    free(copy);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static int count_cb(void *arg, const store_event_view_t *ev)
{
    (void)ev;
    ++*(size_t *)arg;
    return 0;
}

Test(store_zdict, a_damaged_dictionary_is_corruption_not_a_crash)
{
    append_n("s", 0, 400);
    TU_OK(store_zdict_train(st));
    append_n("s", 400, 100);
    store_close(st);
    st = NULL;
    damage_dictionary(1);
    reopen(0);

    store_zdict_info_t zi;
    TU_OK(store_zdict_info(st, &zi));
    cr_assert_eq(zi.damaged, 1);
    cr_assert_eq(zi.first_damaged, 1);
    store_verify_report_t rep;
    TU_OK(store_verify(st, NULL, 0, &rep, NULL, NULL));
    cr_assert(!rep.ok);
    cr_assert(strstr(rep.problem, "zdict 1"), "%s", rep.problem);

    /* The values before the dictionary read; the first one compressed with it does not. */
    store_read_t r;
    size_t n = 0;
    TU_OK(store_read_begin(st, &r));
    TU_OK(store_events_after(&r, "s", 1, 0, 400, count_cb, &n, NULL));
    cr_assert_eq(n, 400);
    n = 0;
    TU_ERR(store_events_after(&r, "s", 1, 400, 10, count_cb, &n, NULL), REEL_ECORRUPT);
    store_read_end(&r);

    /* Appends go on, without the damaged dictionary. */
    append_n("t", 0, 10);
    tu_events_t ev = {0};
    tu_read_session(st, "t", &ev);
    cr_assert_eq(ev.n, 10);
    tu_events_free(&ev);
}

/* kill -9 while the store trains (on the committer or a trainer thread), many times: the
 * store opens, verifies, and has a whole dictionary or none. */
Test(store_zdict, kill_during_training_leaves_a_store_that_verifies)
{
    reopen(0);
    append_n("s", 0, 1000);
    store_close(st);
    st = NULL;
    uint64_t seed = (uint64_t)time(NULL);
    int rounds = 12, with_dict = 0;
    for (int round = 0; round < rounds; round++) {
        fflush(NULL);
        pid_t pid = fork();
        cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
        if (pid == 0) {
            store_t *c;
            store_options_t o = {.map_size = 64u << 20, .no_sync = 0};
            if (store_open(dir, &o, &c))
                _exit(3);
            for (int i = 0;; i++) { /* pass STORE_ZDICT_FIRST, then train by hand, again */
                st = c;
                append_n("s", 1000 + 200 * (i + round * 1000), 200);
                store_zdict_train(c);
            }
        }
        usleep((useconds_t)(tu_rand(&seed) % 400000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d",
                  status);
        reopen(0);
        verify_ok();
        store_zdict_info_t zi;
        TU_OK(store_zdict_info(st, &zi));
        cr_assert_eq(zi.damaged, 0);
        with_dict += zi.count > 0;
        store_close(st);
        st = NULL;
    }
    reopen(0);
    cr_log_info("store_zdict: %d of %d rounds ended with a dictionary", with_dict, rounds);
}
