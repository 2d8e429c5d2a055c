/* store_redact_after.c -- redaction after the fact (issue 21 item 3, docs/FORMAT.md section
 * 11): bodies rewritten in place keep their key, header and chain; verify passes; bad
 * requests change nothing; a body changed since it was read is a conflict; the kept hash is
 * what the chain checks (tampering with it is found). */
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testutil.h"

static char dir[TU_PATH_MAX];
static store_t *st;

static void setup(void)
{
    tu_watchdog(60);
    tu_tmpdir(dir);
    st = tu_open(dir, 8u << 20, 1);
}

static void teardown(void)
{
    store_close(st);
    st = NULL;
    tu_rmrf(dir);
}

TestSuite(store_redact_after, .init = setup, .fini = teardown);

static void append(const char *session, const char *ndjson)
{
    TU_OK(tu_append(st, session, ndjson, INGEST_NDJSON, -1, NULL, NULL));
}

static void verify_ok(void)
{
    store_verify_report_t rep;
    TU_OK(store_verify(st, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "verify: %s at %s/%llu", rep.problem, rep.session,
              (unsigned long long)rep.sequence);
}

static int redact(const char *session, uint64_t from, uint64_t to, const char **paths,
                  size_t n_paths, const char **pats, size_t n_pats, ingest_redact_result_t *res,
                  ingest_error_t *e)
{
    ingest_redact_req_t q = {session, strlen(session), from, to, paths, n_paths, pats, n_pats,
                             "unit"};
    return ingest_redact_after(st, &q, res, e);
}

/* The whole session rendered, one envelope per line, for before/after comparisons. */
static char *session_text(const char *session)
{
    tu_events_t ev = {0};
    tu_read_session(st, session, &ev);
    store_buf_t b = STORE_BUF_INIT;
    for (size_t i = 0; i < ev.n; i++)
        store_buf_printf(&b, "%s\n", ev.v[i].json);
    tu_events_free(&ev);
    char *s = strdup(store_buf_cstr(&b));
    store_buf_release(&b);
    return s;
}

Test(store_redact_after, paths_and_patterns_rewrite_in_place_and_verify)
{
    append("s", "{\"type\":\"tool.result\",\"data\":{\"output\":\"TOKEN=hunter2hunter2\","
                "\"items\":[{\"text\":\"a\"},{\"text\":\"b\"},{\"text\":\"keep\"}]}}\n"
                "{\"type\":\"tool.result\",\"data\":{\"cmd\":\"ls\"},\"raw\":\"id TKT-123456 x\"}\n"
                "{\"type\":\"session.ended\"}\n");
    tu_events_t before = {0};
    tu_read_session(st, "s", &before);
    store_session_t rec0;
    TU_OK(tu_session(st, "s", &rec0));

    const char *paths[] = {"data.output", "data.items[1].text"};
    const char *pats[] = {"ticket\tTKT-[0-9]{6}"};
    ingest_redact_result_t res;
    ingest_error_t e;
    TU_OK(redact("s", 1, 2, paths, 2, pats, 1, &res, &e));
    cr_assert_eq(res.events, 2);
    cr_assert_eq(res.values, 3);
    cr_assert_eq(res.record_sequence, 4);
    cr_assert_eq(res.positions[0], before.v[0].position);
    ingest_redact_result_release(&res);
    verify_ok();

    tu_events_t ev = {0};
    tu_read_session(st, "s", &ev);
    cr_assert_eq(ev.n, 4);
    cr_assert_str_eq(ev.v[0].data, "{\"output\":\"[REDACTED:path]\",\"items\":[{\"text\":\"a\"},"
                                   "{\"text\":\"[REDACTED:path]\"},{\"text\":\"keep\"}]}");
    cr_assert(strstr(ev.v[1].json, "\"raw\":\"id [REDACTED:ticket] x\""), "%s", ev.v[1].json);
    for (int i = 0; i < 2; i++) { /* same place, time and chain hash; marked */
        cr_assert_eq(ev.v[i].position, before.v[i].position);
        cr_assert_eq(ev.v[i].time_ms, before.v[i].time_ms);
        cr_assert(!memcmp(ev.v[i].hash, before.v[i].hash, STORE_HASH_LEN));
        cr_assert(strstr(ev.v[i].json, ",\"redacted\":true}"), "%s", ev.v[i].json);
        cr_assert(tu_json_valid(ev.v[i].json, strlen(ev.v[i].json)));
    }
    cr_assert_null(strstr(ev.v[2].json, "redacted"), "%s", ev.v[2].json);
    cr_assert_str_eq(ev.v[3].type, "reel.redacted");
    cr_assert_str_eq(ev.v[3].data, "{\"by\":\"unit\",\"from\":1,\"to\":2,\"sequences\":[1,2],"
                                   "\"paths\":[\"data.output\",\"data.items[1].text\"],"
                                   "\"patterns\":[\"ticket\"],\"kinds\":[\"path\",\"ticket\"],"
                                   "\"values\":3}");
    cr_assert_null(strstr(ev.v[3].json, "hunter2"));
    cr_assert_null(strstr(ev.v[3].json, "TKT-"));
    store_session_t rec;
    TU_OK(tu_session(st, "s", &rec));
    cr_assert_eq(rec.status, STORE_ENDED, "the record of a redaction ended the session's end");
    cr_assert_eq(rec.last_sequence, 4);
    cr_assert_eq(rec.runs, rec0.runs);
    tu_events_free(&ev);
    tu_events_free(&before);
}

Test(store_redact_after, wildcards_and_whole_fields)
{
    append("s", "{\"type\":\"t\",\"data\":{\"env\":{\"A\":\"1\",\"B\":[2,3]},\"n\":1},"
                "\"raw\":{\"x\":1}}\n");
    const char *paths[] = {"data.env.*", "raw"};
    ingest_redact_result_t res;
    TU_OK(redact("s", 1, 1, paths, 2, NULL, 0, &res, NULL));
    cr_assert_eq(res.values, 3);
    ingest_redact_result_release(&res);
    tu_events_t ev = {0};
    tu_read_session(st, "s", &ev);
    cr_assert_str_eq(ev.v[0].data,
                     "{\"env\":{\"A\":\"[REDACTED:path]\",\"B\":\"[REDACTED:path]\"},\"n\":1}");
    cr_assert(strstr(ev.v[0].json, "\"raw\":\"[REDACTED:path]\""), "%s", ev.v[0].json);
    tu_events_free(&ev);
    /* the record of the first redaction (sequence 2) is never rewritten */
    const char *all[] = {"data", "data.*"};
    TU_OK(redact("s", 2, 2, all, 2, NULL, 0, &res, NULL));
    cr_assert_eq(res.values, 0);
    /* null holds nothing to redact */
    const char *none[] = {"data.n", "data.missing", "data.env.A[0]"};
    append("s", "{\"type\":\"t\",\"data\":{\"n\":null}}\n");
    TU_OK(redact("s", 3, 3, none, 3, NULL, 0, &res, NULL));
    cr_assert_eq(res.values, 0);
    cr_assert_eq(res.record_sequence, 0);
    /* The same again finds nothing new: nothing is written, no second record. */
    TU_OK(redact("s", 1, 1, paths, 2, NULL, 0, &res, NULL));
    cr_assert_eq(res.values, 0);
    cr_assert_eq(res.record_sequence, 0);
    store_session_t rec;
    TU_OK(tu_session(st, "s", &rec));
    cr_assert_eq(rec.last_sequence, 3);
    verify_ok();
}

Test(store_redact_after, compressed_body_and_a_second_redaction_keep_the_original_hash)
{
    store_buf_t t = STORE_BUF_INIT;
    store_buf_puts(&t, "{\"type\":\"t\",\"data\":{\"output\":\"");
    for (int i = 0; i < 400; i++) /* about 4 KB: stored as a zstd frame */
        store_buf_puts(&t, "line AKIAQWERTYUIOPASDF5 ");
    store_buf_puts(&t, "\",\"keep\":\"secret-two-SECRET2\"}}\n");
    append("big", store_buf_cstr(&t));
    store_buf_release(&t);
    const char *builtin[] = {"builtin"};
    ingest_redact_result_t res;
    /* ingest redacted the AWS ids already; the after-the-fact pattern takes the rest */
    const char *mine[] = {"mine\tSECRET[0-9]"};
    TU_OK(redact("big", 1, 1, NULL, 0, mine, 1, &res, NULL));
    cr_assert_eq(res.values, 1);
    ingest_redact_result_release(&res);
    verify_ok();
    const char *paths[] = {"data.output"};
    TU_OK(redact("big", 1, 1, paths, 1, builtin, 1, &res, NULL));
    cr_assert_eq(res.values, 1);
    ingest_redact_result_release(&res);
    verify_ok();
    tu_events_t ev = {0};
    tu_read_session(st, "big", &ev);
    cr_assert_str_eq(ev.v[0].data, "{\"output\":\"[REDACTED:path]\",\"keep\":\"secret-two-"
                                   "[REDACTED:mine]\"}");
    tu_events_free(&ev);
}

Test(store_redact_after, bad_requests_name_the_value_and_change_nothing)
{
    append("s", "{\"type\":\"t\",\"data\":{\"output\":\"x\"}}\n{\"type\":\"t\"}\n");
    char *before = session_text("s");
    const char *ok[] = {"data.output"};
    struct {
        uint64_t from, to;
        const char *path, *pattern, *session, *want;
        int err;
    } cases[] = {
        {0, 1, "data.output", NULL, "s", "'from' must be 1", REEL_EINVALID_PARAMETER},
        {2, 1, "data.output", NULL, "s", "'to' 1 is before 'from' 2", REEL_EINVALID_PARAMETER},
        {1, 3, "data.output", NULL, "s", "'to' 3 is past the session's last sequence 2",
         REEL_EINVALID_PARAMETER},
        {5, 6, "data.output", NULL, "s", "'from' 5 is past", REEL_EINVALID_PARAMETER},
        {1, 1, "type", NULL, "s", "path 'type': must start with 'data' or 'raw'",
         REEL_EINVALID_PARAMETER},
        {1, 1, "data..x", NULL, "s", "path 'data..x'", REEL_EINVALID_PARAMETER},
        {1, 1, "data[x]", NULL, "s", "path 'data[x]'", REEL_EINVALID_PARAMETER},
        {1, 1, NULL, "bad\t(", "s", "bad regex", REEL_EINVALID_PARAMETER},
        {1, 1, NULL, "b d\tx", "s", "kind 'b d'", REEL_EINVALID_PARAMETER},
        {1, 1, "data.output", NULL, "nope", "", REEL_ESESSION_NOT_FOUND},
        {1, 20000, "data.output", NULL, "s", "more than 10000", REEL_EINVALID_PARAMETER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ingest_redact_result_t res;
        ingest_error_t e;
        const char *p[] = {cases[i].path}, *r[] = {cases[i].pattern};
        int rc = redact(cases[i].session, cases[i].from, cases[i].to, p, cases[i].path ? 1 : 0,
                        r, cases[i].pattern ? 1 : 0, &res, &e);
        cr_assert_eq(rc, cases[i].err, "case %zu: %s", i, reel_err_code(rc));
        cr_assert(strstr(e.text, cases[i].want), "case %zu: '%s' lacks '%s'", i, e.text,
                  cases[i].want);
        ingest_redact_result_release(&res);
    }
    ingest_redact_result_t res;
    TU_ERR(redact("s", 1, 1, NULL, 0, NULL, 0, &res, NULL), REEL_EINVALID_PARAMETER);
    char *after = session_text("s");
    cr_assert_str_eq(after, before);
    free(after);
    free(before);
    /* a deleted session is gone */
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_DELETE, "s", 1);
    TU_OK(store_append(st, &b));
    TU_ERR(redact("s", 1, 1, ok, 1, NULL, 0, &res, NULL), REEL_EGONE);
    verify_ok();
}

/* The store's own checks: a body changed since the plan read it is a conflict, and a
 * sequence out of range is refused, both before anything is written. */
Test(store_redact_after, stale_rewrite_is_a_conflict_and_writes_nothing)
{
    append("s", "{\"type\":\"t\",\"data\":{\"output\":\"x\"}}\n");
    char *before = session_text("s");
    uint8_t body[] = {0x00, 0x98, 0xa1, 'e', 0xa1, 't', 0xc0, 0xc0, 0xc0, 0xc0, 0xc0, 0xc0};
    store_rewrite_t w = {.sequence = 1, .body = body, .body_len = sizeof body};
    memset(w.current_hash, 0xab, STORE_HASH_LEN); /* not the stored body's hash */
    store_batch_t b;
    store_batch_init(&b, STORE_OP_REDACT, "s", 1);
    b.rewrites = &w;
    b.n_rewrites = 1;
    TU_ERR(store_append(st, &b), REEL_ECONFLICT);
    w.sequence = 2;
    store_batch_init(&b, STORE_OP_REDACT, "s", 1);
    b.rewrites = &w;
    b.n_rewrites = 1;
    TU_ERR(store_append(st, &b), REEL_EINVALID_PARAMETER);
    char *after = session_text("s");
    cr_assert_str_eq(after, before);
    free(after);
    free(before);
    verify_ok();
}

/* Flips a byte of the kept hash (offset 57) of the value at position 'pos'. */
static void flip_kept_hash(uint64_t pos)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, dir, 0, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "events", 0, &dbi), 0);
    uint8_t key[8];
    for (int i = 0; i < 8; i++)
        key[i] = (uint8_t)(pos >> (56 - 8 * i));
    MDB_val k = {8, key}, v;
    cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    cr_assert(copy[0] & STORE_FLAG_REDACTED);
    copy[STORE_HEADER_LEN + 3] ^= 0x10;
    MDB_val nv = {v.mv_size, copy};
    cr_assert_eq(mdb_put(txn, dbi, &k, &nv, 0), 0);
    free(copy);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

Test(store_redact_after, verify_checks_the_kept_hash)
{
    append("s", "{\"type\":\"t\",\"data\":{\"output\":\"x\"}}\n{\"type\":\"t\"}\n");
    const char *paths[] = {"data.output"};
    ingest_redact_result_t res;
    TU_OK(redact("s", 1, 1, paths, 1, NULL, 0, &res, NULL));
    uint64_t pos = res.positions[0];
    ingest_redact_result_release(&res);
    verify_ok();
    store_close(st);
    flip_kept_hash(pos);
    st = tu_open(dir, 8u << 20, 1);
    store_verify_report_t rep;
    TU_OK(store_verify(st, NULL, 0, &rep, NULL, NULL));
    cr_assert(!rep.ok);
    cr_assert_eq(rep.sequence, 1);
    cr_assert(strstr(rep.problem, "hash chain mismatch"), "%s", rep.problem);
    tu_events_t ev = {0};
    store_read_t r;
    TU_OK(store_read_begin(st, &r));
    TU_ERR(store_events_after(&r, "s", 1, 0, 10, tu_collect_cb, &ev, NULL), REEL_ECORRUPT);
    store_read_end(&r);
    tu_events_free(&ev);
}

/* An event imported with "redacted":true (an export of a redacted session) is stored
 * redacted, re-chained on its own body, and verifies. */
Test(store_redact_after, imported_redacted_event_stays_marked_and_verifies)
{
    append("s", "{\"type\":\"t\",\"data\":{\"output\":\"[REDACTED:path]\"},\"redacted\":true}\n"
                "{\"type\":\"t\",\"redacted\":false}\n");
    verify_ok();
    tu_events_t ev = {0};
    tu_read_session(st, "s", &ev);
    cr_assert(strstr(ev.v[0].json, ",\"redacted\":true}"), "%s", ev.v[0].json);
    cr_assert_null(strstr(ev.v[1].json, "redacted"), "%s", ev.v[1].json);
    tu_events_free(&ev);
    ingest_error_t e;
    TU_ERR(tu_append(st, "s", "{\"type\":\"t\",\"redacted\":1}", INGEST_NDJSON, -1, NULL, &e),
           REEL_EINVALID_EVENT);
    cr_assert(strstr(e.text, "'redacted' must be a boolean"), "%s", e.text);
}

/* The rewritten bodies of one request are bounded (INGEST_REDACT_MAX_BYTES): past it the
 * request fails naming the sequence, and nothing is written. */
Test(store_redact_after, too_many_rewritten_bytes_is_refused_and_writes_nothing)
{
    uint64_t seed = 21;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    /* about 1 MiB of random base64 each, which zstd stores in about 3/4 of that */
    int per = 1 << 20, n = (int)(INGEST_REDACT_MAX_BYTES / (unsigned)per) * 4 / 3 + 8;
    for (int i = 0; i < n; i++) {
        store_buf_t t = STORE_BUF_INIT;
        store_buf_puts(&t, "{\"type\":\"t\",\"data\":{\"blob\":\"");
        for (int k = 0; k < per; k++)
            store_buf_putc(&t, b64[tu_rand(&seed) & 63]);
        store_buf_puts(&t, "\",\"secret\":\"ZQ1\"}}\n");
        append("big", store_buf_cstr(&t));
        store_buf_release(&t);
    }
    store_session_t rec0;
    TU_OK(tu_session(st, "big", &rec0));
    const char *paths[] = {"data.secret"};
    ingest_redact_result_t res;
    ingest_error_t e;
    TU_ERR(redact("big", 1, (uint64_t)n, paths, 1, NULL, 0, &res, &e), REEL_ETOO_LARGE);
    cr_assert(strstr(e.text, "redact a shorter range (1.."), "%s", e.text);
    ingest_redact_result_release(&res);
    store_session_t rec;
    TU_OK(tu_session(st, "big", &rec));
    cr_assert_eq(rec.last_sequence, rec0.last_sequence);
    cr_assert_eq(rec.bytes, rec0.bytes);
    TU_OK(redact("big", 1, 10, paths, 1, NULL, 0, &res, &e)); /* a shorter range goes */
    cr_assert_eq(res.values, 10);
    ingest_redact_result_release(&res);
    verify_ok();
}
