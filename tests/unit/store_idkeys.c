/* store_idkeys.c -- compact event_ids keys and the format record's parts (docs/FORMAT.md
 * section 18): a new store names the part in an 8-byte format record; UUID event ids are
 * keyed by their 16 bytes, every other id by its text behind a tag; deduplication, verify
 * and trims work the same; a store created before the part keeps text keys; a record
 * naming a part this build does not know is refused. */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testutil.h"

TestSuite(store_idkeys, .init = tu_store_setup, .fini = tu_store_teardown);

/* Writes 'len' bytes as the format record of 'd'. */
static void put_record(const char *d, const uint8_t *rec, size_t len)
{
    tu_put_raw(d, "meta", "format", 6, rec, len);
}

/* The sizes of every event_ids key of 'd', in key order, into 'sizes' (at most 'max'). */
static size_t id_key_sizes(const char *d, size_t *sizes, size_t max)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    size_t n = 0;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 16), 0);
    cr_assert_eq(mdb_env_open(env, d, MDB_RDONLY, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "event_ids", 0, &dbi), 0);
    cr_assert_eq(mdb_cursor_open(txn, dbi, &c), 0);
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !rc && n < max;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        sizes[n++] = k.mv_size;
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return n;
}

static const char ids_text[] =
    "{\"type\":\"a\",\"event_id\":\"01a245c6-fec9-7179-8696-4c76593a6424\"}\n"
    "{\"type\":\"b\",\"event_id\":\"01A245C6-FEC9-7179-8696-4C76593A6424\"}\n" /* upper: text */
    "{\"type\":\"c\",\"event_id\":\"msg_01\"}\n"
    "{\"type\":\"d\",\"event_id\":\"01a245c6-fec9-7179-8696-4c76593a642g\"}\n"; /* not hex */

static void verify_ok(void)
{
    store_verify_report_t rep;
    TU_OK(store_verify(tu_store, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "verify found damage");
}

/* A store with part 0x1 alone: the layout session 7's builds made (part 0x4, the
 * per-session trees, keeps UUID ids elsewhere: tests/unit/store_ixdup.c). */
static void reopen_idkeys_only(void)
{
    store_close(tu_store);
    tu_rmrf(tu_dir);
    tu_store = tu_open_parts(tu_dir, 8u << 20, 0, STORE_PART_IXDUP | STORE_PART_SHORTHEAD);
}

Test(store_idkeys, new_store_names_the_part_and_keys_uuids_in_16_bytes)
{
    uint8_t rec[16];
    cr_assert_eq(tu_format_record(tu_dir, rec), 8, "the format record of a new store is 8 bytes");
    cr_assert_eq(rec[3], STORE_FORMAT_VERSION);
    cr_assert(rec[7] & 0x1, "part 0x1 (compact event_ids keys)");
    reopen_idkeys_only();
    cr_assert_eq(tu_format_record(tu_dir, rec), 8);
    cr_assert_eq(rec[7], 0x1, "part 0x1 alone");
    tu_result_t res;
    TU_OK(tu_append(tu_store, "s", ids_text, INGEST_NDJSON, -1, &res, NULL));
    cr_assert_eq(res.n, 4);
    /* The same ids again: all four are duplicates, none is appended. */
    TU_OK(tu_append(tu_store, "s", ids_text, INGEST_NDJSON, -1, &res, NULL));
    cr_assert_eq(res.duplicates, 4);
    store_close(tu_store);
    tu_store = NULL;
    size_t sizes[8];
    cr_assert_eq(id_key_sizes(tu_dir, sizes, 8), 4);
    size_t want[] = {8 + 1 + 16, 8 + 1 + 36, 8 + 1 + 36, 8 + 1 + 6}; /* 0x00 tag sorts first */
    for (int i = 0; i < 4; i++)
        cr_assert_eq(sizes[i], want[i], "key %d: %zu bytes, want %zu", i, sizes[i], want[i]);
    tu_store = tu_open(tu_dir, 0, 1);
    TU_OK(tu_append(tu_store, "s", ids_text, INGEST_NDJSON, -1, &res, NULL));
    cr_assert_eq(res.duplicates, 4, "after a reopen too");
    verify_ok();
}

Test(store_idkeys, store_without_the_part_keeps_text_keys)
{
    /* A store made by a build before section 18: its 4-byte format record. */
    store_close(tu_store);
    tu_rmrf(tu_dir);
    tu_store = tu_open_parts(tu_dir, 8u << 20, 0, ~0u);
    store_close(tu_store);
    uint8_t old[4] = {0, 0, 0, STORE_FORMAT_VERSION};
    put_record(tu_dir, old, sizeof old);
    tu_store = tu_open(tu_dir, 0, 1);
    tu_result_t res;
    TU_OK(tu_append(tu_store, "s", ids_text, INGEST_NDJSON, -1, &res, NULL));
    TU_OK(tu_append(tu_store, "s", ids_text, INGEST_NDJSON, -1, &res, NULL));
    cr_assert_eq(res.duplicates, 4);
    verify_ok();
    store_close(tu_store);
    tu_store = NULL;
    uint8_t rec[16];
    cr_assert_eq(tu_format_record(tu_dir, rec), 4, "an open does not add the part");
    size_t sizes[8];
    cr_assert_eq(id_key_sizes(tu_dir, sizes, 8), 4);
    for (int i = 0; i < 4; i++)
        cr_assert(sizes[i] == 8 + 36 || sizes[i] == 8 + 6, "key %d: %zu bytes", i, sizes[i]);
    tu_store = tu_open(tu_dir, 0, 1);
}

Test(store_idkeys, unknown_parts_and_versions_are_refused)
{
    store_close(tu_store);
    tu_store = NULL;
    uint8_t was[16];
    size_t was_len = tu_format_record(tu_dir, was);
    store_options_t o = {.no_sync = 1};
    store_t *s = NULL;
    uint8_t unknown[8] = {0, 0, 0, STORE_FORMAT_VERSION, 0x80, 0, 0, 0x1};
    put_record(tu_dir, unknown, sizeof unknown);
    cr_assert_eq(store_open(tu_dir, &o, &s), REEL_EFORMAT);
    cr_assert(strstr(store_last_error(), "optional parts 0x80000001"), "%s", store_last_error());
    uint8_t v3[8] = {0, 0, 0, 3, 0, 0, 0, 0x1}; /* parts exist only with version 4 */
    put_record(tu_dir, v3, sizeof v3);
    cr_assert_eq(store_open(tu_dir, &o, &s), REEL_EFORMAT);
    put_record(tu_dir, was, was_len); /* the refused opens changed nothing */
    tu_store = tu_open(tu_dir, 0, 1);
}

Test(store_idkeys, trimmed_uuid_ids_leave_the_index)
{
    char text[4096];
    size_t n = 0;
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "{\"type\":\"t\",\"event_id\":\"01a245c6-fec9-7179-8696-%012d\"}\n",
                              i);
    TU_OK(tu_append(tu_store, "s", text, INGEST_NDJSON, -1, NULL, NULL));
    store_batch_t b;
    store_batch_init(&b, STORE_OP_TRIM, "s", 1);
    b.trim_before = 11;
    TU_OK(store_append(tu_store, &b));
    verify_ok(); /* a trimmed session's index names no trimmed id (FORMAT.md 10.4) */
    tu_result_t res;
    TU_OK(tu_append(tu_store, "s", text, INGEST_NDJSON, -1, &res, NULL));
    cr_assert_eq(res.duplicates, 10, "the kept ten are duplicates");
    cr_assert_eq(res.n, 20);
}
