/* store_ixdup.c -- the per-session index trees (docs/FORMAT.md section 21.1, optional
 * part 0x4): a new store keeps 'seqs' and UUID event ids as fixed-size duplicates of the
 * session number; appends (ids in and out of order, duplicates in and across batches),
 * reads, trims, deletes, purges and verify work on them; a store made without the part
 * keeps the older trees; a format record that disagrees with the trees is refused; verify
 * finds a trimmed id left in 'event_uuids'. With part 0x10 (22) a session's newest
 * entries wait in its 'ixtail' value before they move into the trees. */
#include <criterion/criterion.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testutil.h"

TestSuite(store_ixdup, .init = tu_store_setup, .fini = tu_store_teardown);

/* The LMDB flags of database 'name' in 'd' (0 when it is missing, with '*found' 0). */
static unsigned db_flags(const char *d, const char *name, int *found)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    unsigned f = 0;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    cr_assert_eq(mdb_env_open(env, d, MDB_RDONLY, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    *found = mdb_dbi_open(txn, name, 0, &dbi) == 0;
    if (*found)
        cr_assert_eq(mdb_dbi_flags(txn, dbi, &f), 0);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return f;
}

/* Puts value 'val' ('len' bytes) under the 8-byte key 'num' (a session number, or an
 * event's position in 'events') of tree 'name' in 'd', bypassing the store. */
static void put_raw(const char *d, const char *name, uint64_t num, const void *val, size_t len)
{
    uint8_t key[8];
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(num >> (56 - 8 * i));
    tu_put_raw(d, name, key, sizeof key, val, len);
}

static void verify_ok(void)
{
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "verify: %s/%llu: %s", rep.session, (unsigned long long)rep.sequence,
              rep.problem);
}

/* NDJSON of 'n' events with ids i = from..from+n-1: UUIDs whose last digits are a
 * permutation (out of order), every fifth a text id. */
static char *events(int from, int n)
{
    store_buf_t b = STORE_BUF_INIT;
    for (int i = from; i < from + n; i++) {
        int j = (i * 7919) % 100003; /* not increasing */
        if (i % 5 == 4)
            store_buf_printf(&b, "{\"type\":\"t\",\"event_id\":\"msg_%d\",\"data\":%d}\n", i, i);
        else
            store_buf_printf(&b, "{\"type\":\"t\",\"event_id\":\"01a245c6-fec9-7179-8696-%012d\","
                                 "\"data\":%d}\n", j, i);
    }
    char *s = strdup(store_buf_cstr(&b));
    store_buf_release(&b);
    return s;
}

static void append(const char *session, int from, int n, tu_result_t *res)
{
    char *t = events(from, n);
    TU_OK(tu_append(tu_store, session, t, INGEST_NDJSON, -1, res, NULL));
    free(t);
}

static void read_all(const char *session, size_t want, uint64_t first)
{
    tu_events_t ev = {0};
    tu_read_session(tu_store, session, &ev);
    cr_assert_eq(ev.n, want);
    for (size_t i = 0; i < ev.n; i++)
        cr_assert_eq(ev.v[i].sequence, first + i);
    tu_events_free(&ev);
}

/* Replaces the suite's store by a new one made without the optional parts 'parts_off'. */
static void fresh_store(unsigned parts_off)
{
    store_close(tu_store);
    tu_rmrf(tu_dir);
    tu_store = tu_open_parts(tu_dir, 8u << 20, 1, parts_off);
}

Test(store_ixdup, new_store_uses_the_trees_and_reads_dedups_trims_and_verifies)
{
    if (getenv("REEL_TEST_PARTS_OFF"))
        return; /* the run of the older layouts: this store has none of the trees */
    uint8_t rec[16];
    cr_assert_eq(tu_format_record(tu_dir, rec), 8);
    cr_assert_eq(rec[7], 0x1d, "parts 0x1, 0x4, 0x8 and 0x10");
    tu_result_t res;
    append("s", 0, 600, &res);
    cr_assert_eq(res.n, 600);
    append("other", 0, 40, NULL);
    append("s", 300, 600, &res); /* half of them again: duplicates across batches */
    cr_assert_eq(res.duplicates, 300);
    char *t = events(2000, 3), *two = malloc(2 * strlen(t) + 1);
    strcpy(two, t);
    strcat(two, t); /* the same three ids twice in one batch */
    TU_OK(tu_append(tu_store, "s", two, INGEST_NDJSON, -1, &res, NULL));
    cr_assert_eq(res.duplicates, 3);
    free(t);
    free(two);
    read_all("s", 903, 1);
    verify_ok();
    store_close(tu_store);
    tu_store = tu_open(tu_dir, 0, 1);
    append("s", 0, 10, &res);
    cr_assert_eq(res.duplicates, 10, "after a reopen too");
    int found;
    cr_assert_eq(db_flags(tu_dir, "seqs", &found) & (MDB_DUPSORT | MDB_DUPFIXED),
                 MDB_DUPSORT | MDB_DUPFIXED);
    cr_assert_eq(db_flags(tu_dir, "event_uuids", &found) & (MDB_DUPSORT | MDB_DUPFIXED),
                 MDB_DUPSORT | MDB_DUPFIXED);

    store_batch_t b;
    store_batch_init(&b, STORE_OP_TRIM, "s", 1);
    b.trim_before = 101;
    TU_OK(store_append(tu_store, &b));
    cr_assert_eq(b.first_sequence, 101);
    read_all("s", 803, 101);
    verify_ok(); /* no trimmed id left in either tree (FORMAT.md 10.4) */
    append("s", 0, 100, &res);
    cr_assert_eq(res.duplicates, 0, "trimmed ids are gone: they append again");
    read_all("s", 903, 101);
    verify_ok();

    store_batch_init(&b, STORE_OP_SESSION_DELETE, "other", 5);
    TU_OK(store_append(tu_store, &b));
    store_batch_init(&b, STORE_OP_PURGE, "s", 1);
    TU_OK(store_append(tu_store, &b));
    verify_ok();
    append("s", 0, 20, &res);
    cr_assert_eq(res.n, 20);
    cr_assert_eq(res.duplicates, 0, "a purged session's ids are gone");
    read_all("s", 20, 1);
    verify_ok();
}

Test(store_ixdup, a_store_without_the_part_keeps_the_older_trees)
{
    fresh_store(STORE_PART_IXDUP);
    tu_result_t res;
    append("s", 0, 200, &res);
    append("s", 100, 200, &res);
    cr_assert_eq(res.duplicates, 100);
    store_batch_t b;
    store_batch_init(&b, STORE_OP_TRIM, "s", 1);
    b.trim_before = 51;
    TU_OK(store_append(tu_store, &b));
    read_all("s", 250, 51);
    verify_ok();
    store_close(tu_store);
    tu_store = tu_open(tu_dir, 0, 1); /* this build opens it as it is */
    append("s", 0, 10, &res);
    cr_assert_eq(res.n, 10);
    read_all("s", 260, 51);
    verify_ok();
    store_close(tu_store);
    tu_store = NULL;
    uint8_t rec[16];
    cr_assert_eq(tu_format_record(tu_dir, rec), 8);
    cr_assert_eq(rec[7], 0x9, "an open never adds a part");
    int found;
    cr_assert_eq(db_flags(tu_dir, "seqs", &found) & MDB_DUPSORT, 0u);
    db_flags(tu_dir, "event_uuids", &found);
    cr_assert_eq(found, 0);
    tu_store = tu_open(tu_dir, 0, 1);
}

/* Writes 'len' bytes as the format record of 'd'. */
static void put_record(const char *d, const uint8_t *rec, size_t len)
{
    tu_put_raw(d, "meta", "format", 6, rec, len);
}

static void refused(const char *why)
{
    store_options_t o = {.no_sync = 1};
    store_t *s = NULL;
    cr_assert_eq(store_open(tu_dir, &o, &s), REEL_ECORRUPT, "%s", why);
    cr_assert_null(s);
    cr_assert(strstr(store_last_error(), "0x4"), "%s", store_last_error());
    o.read_only = 1;
    cr_assert_eq(store_open(tu_dir, &o, &s), REEL_ECORRUPT, "%s, read-only", why);
}

Test(store_ixdup, a_format_record_that_disagrees_with_the_trees_is_refused)
{
    /* An older layout whose record claims the part: 'event_uuids' is missing. */
    fresh_store(STORE_PART_IXDUP);
    append("s", 0, 5, NULL);
    store_close(tu_store);
    tu_store = NULL;
    uint8_t was[16];
    size_t was_len = tu_format_record(tu_dir, was);
    uint8_t claims[8] = {0, 0, 0, STORE_FORMAT_VERSION, 0, 0, 0, (uint8_t)(was[7] | 0x4)};
    put_record(tu_dir, claims, sizeof claims);
    refused("the record names trees the store does not have");
    put_record(tu_dir, was, was_len);
    tu_store = tu_open(tu_dir, 0, 1);
    read_all("s", 5, 1);

    /* The new layout whose record does not name it (a hand-edited record, or one an
     * older build wrote back): never read with the older keys. */
    fresh_store(0);
    append("s", 0, 5, NULL);
    store_close(tu_store);
    tu_store = NULL;
    was_len = tu_format_record(tu_dir, was);
    uint8_t plain[8] = {0, 0, 0, STORE_FORMAT_VERSION, 0, 0, 0, (uint8_t)(was[7] & ~0x4)};
    put_record(tu_dir, plain, sizeof plain);
    refused("the trees are not the ones the record names");
    uint8_t four[4] = {0, 0, 0, STORE_FORMAT_VERSION};
    put_record(tu_dir, four, sizeof four);
    refused("a 4-byte record");
    put_record(tu_dir, was, was_len);
    tu_store = tu_open(tu_dir, 0, 1);
    read_all("s", 5, 1);
}

Test(store_ixdup, verify_finds_a_trimmed_id_left_in_event_uuids)
{
    fresh_store(0);
    append("s", 0, 30, NULL);
    store_batch_t b;
    store_batch_init(&b, STORE_OP_TRIM, "s", 1);
    b.trim_before = 11;
    TU_OK(store_append(tu_store, &b));
    verify_ok();
    store_session_t rec;
    TU_OK(tu_session(tu_store, "s", &rec));
    store_close(tu_store);
    tu_store = NULL;
    uint8_t val[24] = {0xff, 0xee}; /* an id no event has, naming trimmed sequence 3 */
    val[23] = 3;
    put_raw(tu_dir, "event_uuids", rec.num, val, sizeof val);
    tu_store = tu_open(tu_dir, 0, 1);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(!rep.ok, "verify missed the stale id");
    cr_assert(strstr(rep.problem, "still names sequence 3"), "%s", rep.problem);
}

Test(store_ixdup, verify_finds_a_sequence_entry_that_points_elsewhere)
{
    fresh_store(STORE_PART_IXTAIL); /* every entry in the tree (tails: store_ixtail.c) */
    append("s", 0, 30, NULL);
    store_session_t rec;
    TU_OK(tu_session(tu_store, "s", &rec));
    store_close(tu_store);
    tu_store = NULL;
    uint8_t val[16] = {0};
    val[7] = 31; /* sequence 31, past the record's last */
    val[15] = 2;
    put_raw(tu_dir, "seqs", rec.num, val, sizeof val);
    tu_store = tu_open(tu_dir, 0, 1);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(!rep.ok, "verify missed the extra entry");
    cr_assert(strstr(rep.problem, "past the session's last sequence"), "%s", rep.problem);
}

/* The value of 8-byte key 'num' in tree 'tree' of 'd' into 'out' (at most 'cap' bytes);
 * its length, 0 when there is none. */
static size_t raw_get(const char *d, const char *tree, uint64_t num, uint8_t *out, size_t cap)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    uint8_t key[8];
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(num >> (56 - 8 * i));
    MDB_val k = {8, key}, v = {0, NULL};
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    cr_assert_eq(mdb_env_open(env, d, MDB_RDONLY, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, tree, 0, &dbi), 0);
    int rc = mdb_get(txn, dbi, &k, &v);
    cr_assert(rc == 0 || rc == MDB_NOTFOUND);
    cr_assert_leq(v.mv_size, cap);
    if (v.mv_size)
        memcpy(out, v.mv_data, v.mv_size);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return v.mv_size;
}

/* The value at position 'pos' of 'd' into 'out' (at most 'cap' bytes); its length. */
static size_t raw_value(const char *d, uint64_t pos, uint8_t *out, size_t cap)
{
    size_t n = raw_get(d, "events", pos, out, cap);
    cr_assert(n > 0, "no value at position %llu", (unsigned long long)pos);
    return n;
}

/* Session 'name''s tail (FORMAT.md 22): its entries and first sequence; the store is
 * closed and opened again around the raw read. */
static unsigned tail_of(const char *name, uint64_t *first)
{
    store_session_t rec;
    TU_OK(tu_session(tu_store, name, &rec));
    store_close(tu_store);
    uint8_t v[512];
    size_t n = raw_get(tu_dir, "ixtail", rec.num, v, sizeof v);
    tu_store = tu_open(tu_dir, 0, 1);
    if (!n)
        return 0;
    cr_assert_eq(n, 9 + (size_t)v[0] * 25, "a tail of %u entries is %zu bytes", v[0], n);
    *first = 0;
    for (int i = 1; i <= 8; i++)
        *first = *first << 8 | v[i];
    return v[0];
}

/* Session 'name''s tail has 'n' entries from sequence 'first' (none: n 0). */
static void expect_tail(const char *name, unsigned n, uint64_t first, const char *why)
{
    uint64_t got = 0;
    unsigned has = tail_of(name, &got);
    cr_assert_eq(has, n, "%s: a tail of %u entries, not %u", why, has, n);
    cr_assert(!n || got == first, "%s: the tail starts at %llu, not %llu", why,
              (unsigned long long)got, (unsigned long long)first);
}

/* Appends events from..from+n-1 of 'session' one per batch (as single-event requests). */
static void append_singly(const char *session, int from, int n)
{
    for (int i = from; i < from + n; i++)
        append(session, i, 1, NULL);
}

/* Part 0x10 (FORMAT.md 22): a session's newest entries wait in its tail and move into the
 * trees sixteen at a time; reads, duplicates, trims into the tail, purges and verify see
 * both, one event per batch or many. */
Test(store_ixdup, tails_keep_the_newest_entries_and_move_them_in_sixteens)
{
    if (getenv("REEL_TEST_PARTS_OFF"))
        return;
    tu_result_t res;
    append_singly("s", 0, 40);
    expect_tail("s", 8, 33, "40 appends: two moves of 16, 8 waiting");
    append("b", 0, 40, NULL);
    expect_tail("b", 8, 33, "one batch of 40");
    read_all("s", 40, 1);
    verify_ok();
    append("s", 0, 40, &res);
    cr_assert_eq(res.duplicates, 40, "ids in the trees and in the tail are found");
    append("s", 30, 20, &res); /* 30..39 again (some in the tail), 40..49 new */
    cr_assert_eq(res.duplicates, 10);
    cr_assert_eq(res.n, 20);
    expect_tail("s", 2, 49, "50 events: 48 in the trees");
    read_all("s", 50, 1);

    store_batch_t b;
    store_batch_init(&b, STORE_OP_TRIM, "s", 1);
    b.trim_before = 50; /* past the trees, into the tail */
    TU_OK(store_append(tu_store, &b));
    cr_assert_eq(b.first_sequence, 50);
    expect_tail("s", 1, 50, "trimmed into the tail");
    read_all("s", 1, 50);
    verify_ok();
    append("s", 48, 2, &res);
    cr_assert_eq(res.duplicates, 1, "49 stays; 48 was trimmed and appends again");
    read_all("s", 2, 50);
    store_batch_init(&b, STORE_OP_TRIM, "s", 1);
    b.trim_before = 100; /* everything: the tail goes */
    TU_OK(store_append(tu_store, &b));
    expect_tail("s", 0, 0, "everything trimmed");
    verify_ok();
    append("s", 49, 1, &res);
    cr_assert_eq(res.duplicates, 0);
    read_all("s", 1, 52);

    store_batch_init(&b, STORE_OP_PURGE, "b", 1);
    TU_OK(store_append(tu_store, &b));
    store_session_t gone;
    TU_ERR(tu_session(tu_store, "b", &gone), REEL_ESESSION_NOT_FOUND);
    append("b", 0, 3, &res);
    cr_assert_eq(res.duplicates, 0, "a purged session's tail is gone");
    expect_tail("b", 3, 1, "a purged session appended again");
    verify_ok();
}

Test(store_ixdup, verify_and_reads_report_a_damaged_tail)
{
    if (getenv("REEL_TEST_PARTS_OFF"))
        return;
    append_singly("s", 0, 20);
    store_session_t rec;
    TU_OK(tu_session(tu_store, "s", &rec));
    store_close(tu_store);
    tu_store = NULL;
    uint8_t bad[9 + 25] = {2}; /* claims two entries, holds one */
    put_raw(tu_dir, "ixtail", rec.num, bad, sizeof bad);
    tu_store = tu_open(tu_dir, 0, 1);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(!rep.ok, "verify missed the damaged tail");
    tu_events_t ev = {0};
    store_read_t r;
    TU_OK(store_read_begin(tu_store, &r));
    int more = 0, rc = store_events_after(&r, "s", 1, 0, 100, tu_collect_cb, &ev, &more);
    store_read_end(&r);
    cr_assert(rc == REEL_ECORRUPT || rc == REEL_EIO, "a read over a damaged tail: %d", rc);
    tu_events_free(&ev);
}

static const char one_event[] = "{\"type\":\"t\",\"event_id\":\"e1\",\"data\":\"hello\"}\n";

/* The size of the one event's value in a new store made with 'parts_off'. */
static size_t one_value(unsigned parts_off, uint8_t *val, size_t cap)
{
    fresh_store(parts_off);
    TU_OK(tu_append(tu_store, "s", one_event, INGEST_NDJSON, -1, NULL, NULL));
    store_close(tu_store);
    tu_store = NULL;
    size_t n = raw_value(tu_dir, 1, val, cap);
    tu_store = tu_open(tu_dir, 0, 1);
    return n;
}

Test(store_ixdup, short_headers_are_16_bytes_shorter_and_read_like_long_ones)
{
    uint8_t l[512], sh[512];
    size_t ln = one_value(STORE_PART_SHORTHEAD, l, sizeof l);
    tu_events_t a = {0}, b = {0};
    tu_read_session(tu_store, "s", &a);
    size_t sn = one_value(0, sh, sizeof sh);
    tu_read_session(tu_store, "s", &b);
    cr_assert_eq(l[0] & STORE_FLAG_SHORT, 0u);
    cr_assert_eq(sh[0] & STORE_FLAG_SHORT, STORE_FLAG_SHORT);
    /* number 1 and sequence 1 in a byte each, the time (Unix ms, 41 bits) in 6: 41 bytes */
    cr_assert_eq(ln - sn, (size_t)(STORE_HEADER_LEN - 41), "%zu vs %zu", ln, sn);
    cr_assert_eq(memcmp(l + STORE_HEADER_LEN, sh + 41, sn - 41), 0, "the same body");
    cr_assert_eq(a.n, 1);
    cr_assert_eq(b.n, 1);
    cr_assert_str_eq(a.v[0].event_id, b.v[0].event_id);
    cr_assert_eq(b.v[0].sequence, 1);
    tu_events_free(&a);
    tu_events_free(&b);
    verify_ok();
}

Test(store_ixdup, a_damaged_short_header_is_found)
{
    uint8_t v[512];
    size_t n = one_value(0, v, sizeof v);
    store_close(tu_store);
    tu_store = NULL;
    /* The time's varint made to run on past 64 bits: a cut, malformed header. */
    uint8_t bad[600];
    memcpy(bad, v, 3);
    memset(bad + 3, 0xff, 12);
    memcpy(bad + 15, v + 9, n - 9);
    put_raw(tu_dir, "events", 1, bad, n - 9 + 15);
    tu_store = tu_open(tu_dir, 0, 1);
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(!rep.ok, "verify missed the damaged header");
    store_read_t r;
    tu_events_t ev = {0};
    TU_OK(store_read_begin(tu_store, &r));
    int rc = store_events_after(&r, "s", 1, 0, 10, tu_collect_cb, &ev, NULL);
    store_read_end(&r);
    cr_assert_eq(rc, REEL_ECORRUPT, "a read refuses it: %d", rc);
    cr_assert_eq(ev.n, 0);
    tu_events_free(&ev);
}
