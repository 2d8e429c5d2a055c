/* store_verify.c -- reel verify finds tampering, gaps and index damage, and passes a sound store. */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/ingest.h"

static char dir[64];

static void append_n(store_t *s, const char *session, int n)
{
    ingest_batch_t ib;
    store_buf_t text = STORE_BUF_INIT;
    for (int i = 0; i < n; i++)
        store_buf_printf(&text, "{\"type\":\"item.delta\",\"data\":{\"i\":%d,\"text\":\"%0*d\"}}\n",
                         i, 100 + (i % 7) * 700, i); /* some bodies large enough to compress */
    cr_assert_eq(ingest_batch_init(&ib, session, strlen(session)), 0);
    cr_assert_eq(ingest_parse(&ib, (char *)text.data, text.len, INGEST_NDJSON, NULL, NULL), 0);
    cr_assert_eq(ingest_append(s, &ib), 0);
    ingest_batch_release(&ib);
    store_buf_release(&text);
}

static void setup(void)
{
    strcpy(dir, "/tmp/reel-verify-XXXXXX");
    cr_assert(mkdtemp(dir));
    store_t *s;
    cr_assert_eq(store_open(dir, NULL, &s), 0);
    append_n(s, "alpha", 40);
    append_n(s, "beta", 25);
    append_n(s, "alpha", 10);
    store_close(s);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)system(cmd);
}

/* Flips a bit in, or deletes, the event value at position 'pos' with raw LMDB. */
static void tamper(uint64_t pos, int del)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "events", 0, &dbi), 0);
    uint8_t key[8];
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(pos >> (56 - 8 * i));
    MDB_val k = {8, key}, v;
    cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
    if (del) {
        cr_assert_eq(mdb_del(txn, dbi, &k, NULL), 0);
    } else {
        uint8_t *copy = malloc(v.mv_size);
        memcpy(copy, v.mv_data, v.mv_size);
        copy[v.mv_size - 2] ^= 0x01; /* one bit inside the body */
        MDB_val nv = {v.mv_size, copy};
        cr_assert_eq(mdb_put(txn, dbi, &k, &nv, 0), 0);
        free(copy);
    }
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static store_verify_report_t run_verify(void)
{
    store_t *s;
    store_verify_report_t rep;
    cr_assert_eq(store_open(dir, NULL, &s), 0);
    cr_assert_eq(store_verify(s, NULL, 0, &rep, NULL, NULL), 0);
    store_close(s);
    return rep;
}

TestSuite(store_verify, .init = setup, .fini = teardown);

Test(store_verify, sound_store_passes_and_counts_everything)
{
    store_verify_report_t rep = run_verify();
    cr_assert(rep.ok, "verify failed: %s", rep.problem);
    cr_assert_eq(rep.sessions, 2);
    cr_assert_eq(rep.events, 75);
    cr_assert_eq(rep.log_entries, 75);
}

Test(store_verify, flipped_bit_in_a_body_names_that_event)
{
    tamper(17, 0); /* alpha's events are positions 1-40 and 66-75 */
    store_verify_report_t rep = run_verify();
    cr_assert_not(rep.ok);
    cr_assert_str_eq(rep.session, "alpha");
    cr_assert_eq(rep.sequence, 17, "reported sequence %llu", (unsigned long long)rep.sequence);
    cr_assert_eq(rep.ok_up_to, 16);
    cr_assert(strstr(rep.problem, "hash chain") || strstr(rep.problem, "decoded") ||
                  strstr(rep.problem, "msgpack"), "problem: %s", rep.problem);
}

Test(store_verify, missing_event_is_a_gap)
{
    tamper(45, 1); /* beta's sequence 5 (beta holds positions 41-65) */
    store_verify_report_t rep = run_verify();
    cr_assert_not(rep.ok);
    cr_assert_str_eq(rep.session, "beta");
    cr_assert_eq(rep.sequence, 5);
    cr_assert(strstr(rep.problem, "missing"), "problem: %s", rep.problem);
}

Test(store_verify, one_session_is_checked_alone)
{
    tamper(43, 0);
    store_t *s;
    store_verify_report_t rep;
    cr_assert_eq(store_open(dir, NULL, &s), 0);
    cr_assert_eq(store_verify(s, "alpha", 5, &rep, NULL, NULL), 0);
    cr_assert(rep.ok, "alpha is sound: %s", rep.problem);
    cr_assert_eq(store_verify(s, "beta", 4, &rep, NULL, NULL), 0);
    cr_assert_not(rep.ok);
    cr_assert_eq(rep.sequence, 3);
    cr_assert_eq(store_verify(s, "nope", 4, &rep, NULL, NULL), REEL_ESESSION_NOT_FOUND);
    store_close(s);
}

Test(store_verify, backup_is_a_sound_store_with_the_same_events)
{
    store_t *s, *b;
    char dest[80];
    snprintf(dest, sizeof dest, "%s/backup", dir);
    cr_assert_eq(store_open(dir, NULL, &s), 0);
    cr_assert_eq(store_backup(s, dest), 0);
    append_n(s, "alpha", 3); /* the copy is not affected by later appends */
    store_close(s);
    cr_assert_eq(store_open(dest, NULL, &b), 0);
    store_verify_report_t rep;
    cr_assert_eq(store_verify(b, NULL, 0, &rep, NULL, NULL), 0);
    cr_assert(rep.ok, "%s", rep.problem);
    cr_assert_eq(rep.events, 75);
    store_close(b);
}
