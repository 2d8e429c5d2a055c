/* store_basic.c -- small store behaviours: format version, empty reads, newest and
 * paging, session listing, session records, the chain hash, the error table, buffers. */
#include <lmdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

TestSuite(store_basic, .init = setup, .fini = teardown);

/* Appends 'n' events (event_ids "<prefix><i>", data i) to 'session' in one batch. */
/* The tests that write an older format record by hand start from a store with the
 * layout of those builds: no optional part (docs/FORMAT.md 18.1). */
static void reopen_without_parts(void)
{
    store_close(st);
    tu_rmrf(dir);
    st = tu_open_parts(dir, 8u << 20, 1, ~0u);
}

static void append_n(const char *session, const char *prefix, int n)
{
    store_buf_t t = STORE_BUF_INIT;
    for (int i = 1; i <= n; i++)
        store_buf_printf(&t, "{\"event_id\":\"%s%d\",\"type\":\"t\",\"data\":%d}\n", prefix, i,
                         i);
    tu_result_t res;
    TU_OK(tu_append(st, session, store_buf_cstr(&t), INGEST_NDJSON, -1, &res, NULL));
    cr_assert_eq(res.last_sequence - res.first_sequence + 1, (uint64_t)n);
    store_buf_release(&t);
}

Test(store_basic, other_format_version_is_refused_naming_both_versions)
{
    reopen_without_parts();
    append_n("s", "e", 3);
    store_close(st);
    st = NULL;
    tu_put_format(dir, 99);
    store_t *s2 = NULL;
    TU_ERR(store_open(dir, NULL, &s2), REEL_EFORMAT);
    cr_assert_null(s2, "a handle was returned with an error");
    const char *msg = store_last_error();
    cr_assert_not_null(strstr(msg, "99"), "message does not name version 99: %s", msg);
    char want[64];
    snprintf(want, sizeof want, "reads versions 1 to %d", STORE_FORMAT_VERSION);
    cr_assert_not_null(strstr(msg, want), "message does not name %s: %s", want, msg);
    store_options_t ro = {.read_only = 1};
    TU_ERR(store_open(dir, &ro, &s2), REEL_EFORMAT);
    /* the refused open changed nothing: with the version put back, the events are there */
    tu_put_format(dir, STORE_FORMAT_VERSION);
    st = tu_open(dir, 0, 1);
    tu_events_t ev = {0};
    tu_read_session(st, "s", &ev);
    cr_assert_eq(ev.n, 3);
    tu_events_free(&ev);
}

/* Formats 2 and 3 are format 4 without its optional parts: a read-write open sets the
 * version and changes nothing else; a read-only open reads them as they are. */
static void check_version_only_upgrade(unsigned from)
{
    reopen_without_parts();
    append_n("s", "e", 3);
    store_close(st);
    st = NULL;
    tu_put_format(dir, from);
    store_options_t ro = {.read_only = 1};
    store_t *s2 = NULL;
    TU_OK(store_open(dir, &ro, &s2));
    store_close(s2);
    st = tu_open(dir, 0, 1);
    tu_events_t ev = {0};
    tu_read_session(st, "s", &ev);
    cr_assert_eq(ev.n, 3);
    tu_events_free(&ev);
    store_close(st);
    st = NULL;
    s2 = NULL;
    cr_assert_eq(tu_format_of(dir), (unsigned)STORE_FORMAT_VERSION);
}

Test(store_basic, format2_is_upgraded_by_a_read_write_open_and_read_as_is_read_only)
{
    check_version_only_upgrade(2);
}

Test(store_basic, format3_is_upgraded_by_a_read_write_open_and_read_as_is_read_only)
{
    check_version_only_upgrade(3);
}

Test(store_basic, open_creates_a_missing_directory_and_reopen_keeps_everything)
{
    char sub[TU_PATH_MAX + 8];
    snprintf(sub, sizeof sub, "%s/data", dir);
    store_t *s2 = NULL;
    TU_OK(store_open(sub, NULL, &s2));
    struct stat sb;
    cr_assert_eq(stat(sub, &sb), 0);
    store_close(s2);

    append_n("a", "x", 5);
    append_n("b", "y", 2);
    store_close(st);
    st = tu_open(dir, 8u << 20, 1);
    append_n("a", "z", 1);
    tu_events_t ev = {0};
    tu_read_session(st, "a", &ev);
    cr_assert_eq(ev.n, 6);
    cr_assert_eq(ev.v[5].sequence, 6);
    cr_assert_str_eq(ev.v[5].event_id, "z1");
    tu_events_free(&ev);
    tu_read_feed(st, &ev);
    cr_assert_eq(ev.n, 8);
    for (size_t i = 1; i < ev.n; i++)
        cr_assert_gt(ev.v[i].position, ev.v[i - 1].position);
    tu_events_free(&ev);
}

static int count_cb(void *arg, const store_event_view_t *ev)
{
    (void)ev;
    ++*(int *)arg;
    return 0;
}

static int count_session_cb(void *arg, const store_session_t *rec)
{
    (void)rec;
    ++*(int *)arg;
    return 0;
}

Test(store_basic, empty_store_reads_nothing)
{
    store_read_t r;
    int n = 0, more = 7;
    uint64_t tail = 99;
    store_session_t rec;
    TU_OK(store_read_begin(st, &r));
    TU_OK(store_tail_position(&r, &tail));
    cr_assert_eq(tail, 0);
    TU_OK(store_feed_after(&r, 0, 100, count_cb, &n, &more));
    cr_assert_eq(n, 0);
    cr_assert_eq(more, 0);
    more = 7;
    TU_OK(store_sessions_list(&r, NULL, 0, 100, count_session_cb, &n, &more));
    cr_assert_eq(n, 0);
    cr_assert_eq(more, 0);
    TU_ERR(store_session_get(&r, "nope", 4, &rec), REEL_ESESSION_NOT_FOUND);
    TU_ERR(store_events_after(&r, "nope", 4, 0, 10, count_cb, &n, NULL),
           REEL_ESESSION_NOT_FOUND);
    TU_ERR(store_events_newest(&r, "nope", 4, 10, count_cb, &n), REEL_ESESSION_NOT_FOUND);
    store_read_end(&r);
    cr_assert_eq(n, 0);

    /* a session with events, read past its end */
    append_n("s", "e", 2);
    TU_OK(store_read_begin(st, &r));
    more = 7;
    TU_OK(store_events_after(&r, "s", 1, 2, 10, count_cb, &n, &more));
    cr_assert_eq(n, 0);
    cr_assert_eq(more, 0);
    TU_OK(store_events_after(&r, "s", 1, 1000, 10, count_cb, &n, &more));
    TU_OK(store_tail_position(&r, &tail));
    TU_OK(store_feed_after(&r, tail, 10, count_cb, &n, &more));
    cr_assert_eq(n, 0);
    cr_assert_eq(more, 0);
    store_read_end(&r);
}

typedef struct seqlist {
    uint64_t v[2000];
    size_t n;
    size_t stop_after; /* 0 = never stop */
} seqlist_t;

static int seq_cb(void *arg, const store_event_view_t *ev)
{
    seqlist_t *l = arg;
    if (l->n < 2000)
        l->v[l->n++] = ev->sequence;
    return l->stop_after && l->n >= l->stop_after ? 42 : 0;
}

Test(store_basic, events_newest_gives_the_last_n_oldest_first)
{
    append_n("s", "e", 1000);
    append_n("other", "o", 10);
    store_read_t r;
    seqlist_t *l = calloc(1, sizeof *l);
    TU_OK(store_read_begin(st, &r));
    TU_OK(store_events_newest(&r, "s", 1, 50, seq_cb, l));
    cr_assert_eq(l->n, 50);
    for (size_t i = 0; i < 50; i++)
        cr_assert_eq(l->v[i], 951 + i, "newest[%zu] = %llu", i, (unsigned long long)l->v[i]);
    l->n = 0;
    TU_OK(store_events_newest(&r, "s", 1, 1, seq_cb, l));
    cr_assert_eq(l->n, 1);
    cr_assert_eq(l->v[0], 1000);
    l->n = 0;
    TU_OK(store_events_newest(&r, "s", 1, 5000, seq_cb, l));
    cr_assert_eq(l->n, 1000);
    for (size_t i = 0; i < 1000; i++)
        cr_assert_eq(l->v[i], i + 1);
    l->n = 0;
    TU_OK(store_events_newest(&r, "s", 1, 0, seq_cb, l));
    cr_assert_eq(l->n, 0);
    l->n = 0;
    TU_OK(store_events_newest(&r, "other", 5, 50, seq_cb, l));
    cr_assert_eq(l->n, 10, "newest leaked into another session: %zu events", l->n);
    store_read_end(&r);
    free(l);
}

Test(store_basic, events_after_pages_and_reports_more)
{
    append_n("s", "e", 1000);
    append_n("t", "f", 3);
    store_read_t r;
    seqlist_t *l = calloc(1, sizeof *l);
    int more = -1;
    TU_OK(store_read_begin(st, &r));
    TU_OK(store_events_after(&r, "s", 1, 990, 5, seq_cb, l, &more));
    cr_assert_eq(l->n, 5);
    cr_assert_eq(l->v[0], 991);
    cr_assert_eq(l->v[4], 995);
    cr_assert_eq(more, 1);
    l->n = 0;
    TU_OK(store_events_after(&r, "s", 1, 995, 5, seq_cb, l, &more));
    cr_assert_eq(l->n, 5);
    cr_assert_eq(l->v[4], 1000);
    cr_assert_eq(more, 0, "more=1 at the exact end of the session");
    l->n = 0;
    TU_OK(store_events_after(&r, "s", 1, 0, 1000, seq_cb, l, &more));
    cr_assert_eq(l->n, 1000);
    cr_assert_eq(more, 0);
    /* the walk stops when the callback says so and returns its value */
    l->n = 0;
    l->stop_after = 3;
    TU_ERR(store_events_after(&r, "s", 1, 0, 100, seq_cb, l, NULL), 42);
    cr_assert_eq(l->n, 3);
    l->n = 0;
    TU_ERR(store_feed_after(&r, 0, 100, seq_cb, l, NULL), 42);
    cr_assert_eq(l->n, 3);
    l->n = 0;
    TU_ERR(store_events_newest(&r, "s", 1, 100, seq_cb, l), 42);
    cr_assert_eq(l->n, 3);
    cr_assert_eq(l->v[0], 901);
    store_read_end(&r);
    free(l);
}

Test(store_basic, feed_after_pages_by_position_across_sessions)
{
    for (int i = 0; i < 30; i++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "p%d-", i);
        append_n(i % 3 == 0 ? "a" : i % 3 == 1 ? "b" : "c", prefix, 1 + i % 4);
    }
    tu_events_t all = {0};
    tu_read_feed(st, &all);
    size_t want = 0;
    for (int i = 0; i < 30; i++)
        want += 1 + i % 4;
    cr_assert_eq(all.n, want);
    uint64_t after = 0;
    size_t k = 0;
    for (;;) {
        store_read_t r;
        int more = 0;
        tu_events_t page = {0};
        TU_OK(store_read_begin(st, &r));
        int rc = store_feed_after(&r, after, 7, tu_collect_cb, &page, &more);
        store_read_end(&r);
        TU_OK(rc);
        cr_assert_leq(page.n, 7);
        for (size_t i = 0; i < page.n; i++, k++) {
            cr_assert_eq(page.v[i].position, all.v[k].position);
            cr_assert_str_eq(page.v[i].session, all.v[k].session);
            cr_assert_gt(page.v[i].position, after);
        }
        if (page.n)
            after = page.v[page.n - 1].position;
        tu_events_free(&page);
        if (!more)
            break;
    }
    cr_assert_eq(k, want);
    tu_events_free(&all);
}

typedef struct idlist {
    char ids[64][16];
    int n;
} idlist_t;

static int id_cb(void *arg, const store_session_t *rec)
{
    idlist_t *l = arg;
    if (l->n < 64)
        snprintf(l->ids[l->n++], 16, "%.*s", (int)rec->id_len, rec->id);
    return 0;
}

static void list(const char *cursor, size_t limit, idlist_t *l, int *more)
{
    store_read_t r;
    memset(l, 0, sizeof *l);
    TU_OK(store_read_begin(st, &r));
    int rc = store_sessions_list(&r, cursor, cursor ? strlen(cursor) : 0, limit, id_cb, l, more);
    store_read_end(&r);
    TU_OK(rc);
}

Test(store_basic, sessions_list_pages_in_id_order_by_cursor)
{
    /* created out of order */
    for (int i = 0; i < 25; i++) {
        char id[8];
        snprintf(id, sizeof id, "s%02d", (i * 7) % 25);
        append_n(id, "e", 1);
    }
    idlist_t l;
    int more = -1;
    list(NULL, 10, &l, &more);
    cr_assert_eq(l.n, 10);
    cr_assert_str_eq(l.ids[0], "s00");
    cr_assert_str_eq(l.ids[9], "s09");
    cr_assert_eq(more, 1);
    list("s09", 10, &l, &more);
    cr_assert_eq(l.n, 10);
    cr_assert_str_eq(l.ids[0], "s10");
    cr_assert_str_eq(l.ids[9], "s19");
    cr_assert_eq(more, 1);
    list("s19", 10, &l, &more);
    cr_assert_eq(l.n, 5);
    cr_assert_str_eq(l.ids[0], "s20");
    cr_assert_str_eq(l.ids[4], "s24");
    cr_assert_eq(more, 0);
    list("", 100, &l, &more);
    cr_assert_eq(l.n, 25);
    cr_assert_eq(more, 0);
    for (int i = 1; i < 25; i++)
        cr_assert_lt(strcmp(l.ids[i - 1], l.ids[i]), 0);
    /* a cursor that is not an id starts after where it would be */
    list("s095", 3, &l, &more);
    cr_assert_eq(l.n, 3);
    cr_assert_str_eq(l.ids[0], "s10");
    list("s24", 10, &l, &more);
    cr_assert_eq(l.n, 0);
    cr_assert_eq(more, 0);
    list("zzz", 10, &l, &more);
    cr_assert_eq(l.n, 0);
    list("s19", 5, &l, &more);
    cr_assert_eq(l.n, 5);
    cr_assert_eq(more, 0, "more=1 with exactly 'limit' sessions left");
}

Test(store_basic, session_record_follows_its_events)
{
    store_session_t rec;
    TU_OK(tu_append(st, "life",
                    "{\"type\":\"session.started\",\"native_session_id\":\"thread_1\"}\n"
                    "{\"type\":\"item.delta\",\"data\":\"hi\"}\n",
                    INGEST_NDJSON, -1, NULL, NULL));
    TU_OK(tu_session(st, "life", &rec));
    cr_assert_str_eq(rec.id, "life");
    cr_assert_eq(rec.id_len, 4);
    cr_assert_eq(rec.status, STORE_ACTIVE);
    cr_assert_eq(rec.last_sequence, 2);
    cr_assert_eq(rec.event_count, 2);
    cr_assert_gt(rec.bytes, 0);
    cr_assert_gt(rec.created_ms, 1600000000000LL, "created_ms %lld", (long long)rec.created_ms);
    cr_assert_geq(rec.updated_ms, rec.created_ms);
    cr_assert_eq(rec.ended_ms, 0);
    cr_assert_gt(rec.first_event_ms, 0);
    cr_assert_str_eq(rec.native_session_id, "thread_1");

    TU_OK(tu_append(st, "life", "{\"type\":\"session.ended\"}", INGEST_JSON, -1, NULL, NULL));
    TU_OK(tu_session(st, "life", &rec));
    cr_assert_eq(rec.status, STORE_ENDED);
    cr_assert_gt(rec.ended_ms, 0);
    cr_assert_eq(rec.last_sequence, 3);
    cr_assert_str_eq(rec.native_session_id, "thread_1");

    store_buf_t out = STORE_BUF_INIT;
    TU_OK(replay_write_session(&out, &rec));
    const char *j = store_buf_cstr(&out);
    cr_assert(tu_json_valid(j, out.len), "session JSON: %s", j);
    static const char *const keys[] = {"id", "agent", "native_session_id", "status",
                                       "created_at", "updated_at", "ended_at", "last_sequence",
                                       "event_count", "bytes", "metadata"};
    size_t vl;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert_not_null(tu_json_member(j, out.len, keys[i], &vl), "%s missing: %s", keys[i],
                           j);
    const char *v = tu_json_member(j, out.len, "status", &vl);
    cr_assert(vl == 7 && !memcmp(v, "\"ended\"", 7), "status: %s", j);
    store_buf_release(&out);
}

Test(store_basic, session_put_sets_agent_and_metadata)
{
    store_buf_t meta = STORE_BUF_INIT;
    static const char mj[] = "{\"z\":1,\"repo\":\"reel\",\"tags\":[\"a\",\"b\"]}";
    TU_OK(store_json_to_msgpack(mj, strlen(mj), 16, &meta, NULL));
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_PUT, "meta", 4);
    cr_assert_eq(b.expected_sequence, -1);
    b.agent = "claude";
    b.agent_len = 6;
    b.metadata = meta.data;
    b.metadata_len = meta.len;
    TU_OK(store_append(st, &b));
    store_read_t r;
    store_session_t rec;
    TU_OK(store_read_begin(st, &r));
    TU_OK(store_session_get(&r, "meta", 4, &rec));
    cr_assert_str_eq(rec.agent, "claude");
    cr_assert_eq(rec.last_sequence, 0);
    cr_assert_eq(rec.status, STORE_ACTIVE);
    cr_assert_not_null(rec.metadata);
    store_buf_t out = STORE_BUF_INIT;
    store_mp_t m = {rec.metadata, rec.metadata + rec.metadata_len};
    TU_OK(store_mp_to_json(&m, &out, 16));
    store_read_end(&r);
    cr_assert_str_eq(store_buf_cstr(&out), mj);
    store_buf_release(&out);
    store_buf_release(&meta);

    /* NULL fields stay as they were; events keep the record */
    store_batch_init(&b, STORE_OP_SESSION_PUT, "meta", 4);
    b.native_session_id = "n9";
    b.native_session_id_len = 2;
    TU_OK(store_append(st, &b));
    append_n("meta", "e", 2);
    TU_OK(tu_session(st, "meta", &rec));
    cr_assert_str_eq(rec.agent, "claude");
    cr_assert_str_eq(rec.native_session_id, "n9");
    cr_assert_eq(rec.last_sequence, 2);
}

Test(store_basic, deleted_session_hides_its_events_and_refuses_appends)
{
    append_n("gone", "e", 5);
    append_n("kept", "k", 3);
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_DELETE, "gone", 4);
    TU_OK(store_append(st, &b));
    store_session_t rec;
    TU_OK(tu_session(st, "gone", &rec));
    cr_assert_eq(rec.status, STORE_DELETED);
    tu_events_t ev = {0};
    store_read_t r;
    TU_OK(store_read_begin(st, &r));
    int rc = store_events_after(&r, "gone", 4, 0, 100, tu_collect_cb, &ev, NULL);
    store_read_end(&r);
    cr_assert(rc == REEL_EGONE || (rc == 0 && ev.n == 0), "events of a deleted session: %s, %zu",
              reel_err_code(rc), ev.n);
    tu_events_free(&ev);
    tu_read_feed(st, &ev);
    cr_assert_eq(ev.n, 3, "the feed still has %zu events", ev.n);
    for (size_t i = 0; i < ev.n; i++)
        cr_assert_str_eq(ev.v[i].session, "kept");
    tu_events_free(&ev);
    TU_ERR(tu_append(st, "gone", "{\"type\":\"t\"}", INGEST_JSON, -1, NULL, NULL), REEL_EGONE);
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned len = 32;
    cr_assert_eq(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
}

typedef struct chain {
    uint8_t prev[32];
    uint64_t n;
    int bad;
    char why[160];
} chain_t;

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static int chain_cb(void *arg, const store_event_view_t *ev)
{
    chain_t *c = arg;
    uint8_t in[32 + 24 + 32], h[32];
    memcpy(in, c->prev, 32);
    put_be64(in + 32, ev->sequence);
    put_be64(in + 40, ev->position);
    put_be64(in + 48, ev->time_ms);
    sha256(ev->body, ev->body_len, in + 56);
    sha256(in, sizeof in, h);
    if (!c->bad && memcmp(h, ev->hash, 32)) {
        c->bad = 1;
        snprintf(c->why, sizeof c->why, "sequence %llu: chain hash does not match",
                 (unsigned long long)ev->sequence);
    }
    memcpy(c->prev, ev->hash, 32);
    c->n++;
    return 0;
}

Test(store_basic, chain_hash_links_every_event_to_the_previous_one)
{
    append_n("h", "e", 20);
    store_buf_t big = STORE_BUF_INIT;
    store_buf_puts(&big, "{\"type\":\"big\",\"data\":\"");
    for (int i = 0; i < 5000; i++)
        store_buf_puts(&big, "compressible ");
    store_buf_puts(&big, "\"}");
    TU_OK(tu_append(st, "h", store_buf_cstr(&big), INGEST_JSON, -1, NULL, NULL));
    store_buf_release(&big);
    append_n("h", "f", 5);

    chain_t c;
    memset(&c, 0, sizeof c);
    store_read_t r;
    store_session_t rec;
    TU_OK(store_read_begin(st, &r));
    TU_OK(store_events_after(&r, "h", 1, 0, 1000, chain_cb, &c, NULL));
    TU_OK(store_session_get(&r, "h", 1, &rec));
    store_read_end(&r);
    cr_assert_eq(c.n, 26);
    cr_assert_eq(c.bad, 0, "%s", c.why);
    cr_assert_arr_eq(rec.last_hash, c.prev, 32, "session last_hash is not the last event's");
}

Test(store_basic, large_bodies_are_stored_compressed_and_read_back)
{
    store_buf_t big = STORE_BUF_INIT;
    store_buf_puts(&big, "{\"type\":\"big\",\"data\":\"");
    for (int i = 0; i < 20000; i++)
        store_buf_puts(&big, "abcdefgh");
    store_buf_puts(&big, "\"}");
    TU_OK(tu_append(st, "z", store_buf_cstr(&big), INGEST_JSON, -1, NULL, NULL));
    store_buf_release(&big);
    tu_events_t ev = {0};
    tu_read_session(st, "z", &ev);
    cr_assert_eq(ev.n, 1);
    cr_assert_eq(strlen(ev.v[0].data), 160002);
    tu_events_free(&ev);
    store_session_t rec;
    TU_OK(tu_session(st, "z", &rec));
    cr_assert_lt(rec.bytes, 20000, "160 KB of repeated text stored as %llu bytes",
                 (unsigned long long)rec.bytes);
}

Test(store_basic, read_only_store_refuses_appends)
{
    append_n("s", "e", 2);
    store_close(st);
    st = NULL;
    store_options_t ro = {.read_only = 1};
    TU_OK(store_open(dir, &ro, &st));
    tu_events_t ev = {0};
    tu_read_session(st, "s", &ev);
    cr_assert_eq(ev.n, 2);
    tu_events_free(&ev);
    TU_ERR(tu_append(st, "s", "{\"type\":\"t\"}", INGEST_JSON, -1, NULL, NULL),
           REEL_EUNAVAILABLE);
}

Test(store_basic, stats_count_batches_events_and_duplicates)
{
    append_n("s", "e", 4);
    append_n("s", "e", 4);
    TU_ERR(tu_append(st, "s", "{\"type\":\"t\"}", INGEST_JSON, 1, NULL, NULL), REEL_ECONFLICT);
    store_stats_t s;
    store_get_stats(st, &s);
    cr_assert_eq(s.batches, 2);
    cr_assert_eq(s.batch_errors, 1);
    cr_assert_eq(s.events, 4);
    cr_assert_eq(s.duplicates, 4);
    cr_assert_geq(s.commits, 1);
    cr_assert_gt(s.map_size, 0);
    cr_assert_gt(s.used_bytes, 0);
    cr_assert_eq(s.failed, 0);
    uint64_t hist = 0;
    for (int i = 0; i < STORE_HIST_BUCKETS; i++)
        hist += s.commit_hist[i];
    cr_assert_eq(hist, s.commits);
}

Test(store_basic, error_table_maps_every_code)
{
    cr_assert_str_eq(reel_strerror(REEL_OK), "success");
    cr_assert_str_eq(reel_err_code(REEL_OK), "ok");
    cr_assert_eq(reel_err_status(REEL_OK), 200);
    cr_assert_eq(reel_err_status(REEL_ECONFLICT), 409);
    cr_assert_str_eq(reel_err_code(REEL_ECONFLICT), "sequence_conflict");
    cr_assert_eq(reel_err_status(REEL_EFULL), 507);
    cr_assert_eq(reel_err_status(REEL_EGONE), 410);
    cr_assert_eq(reel_err_status(REEL_ETOO_LARGE), 413);
    cr_assert_eq(reel_err_status(REEL_EINVALID_JSON), 400);
    cr_assert_str_eq(reel_err_code(REEL_EFORMAT), "format_mismatch");
    for (int e = REEL__ERR_FIRST + 1; e < REEL__ERR_LAST; e++) {
        cr_assert_lt(e, 0);
        cr_assert_str_neq(reel_strerror(e), "unknown error", "%d has no message", e);
        cr_assert_gt(strlen(reel_err_code(e)), 0);
        int st_ = reel_err_status(e);
        cr_assert(st_ >= 400 && st_ < 600, "%d -> status %d", e, st_);
        for (int f = REEL__ERR_FIRST + 1; f < e; f++)
            cr_assert_str_neq(reel_err_code(e), reel_err_code(f), "codes %d and %d equal", e, f);
    }
    static const int unknown[] = {1, -1, 1000, REEL__ERR_FIRST, REEL__ERR_LAST, -99999};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_assert_str_eq(reel_strerror(unknown[i]), "unknown error", "%d", unknown[i]);
        cr_assert_str_eq(reel_err_code(unknown[i]), "internal", "%d", unknown[i]);
        cr_assert_eq(reel_err_status(unknown[i]), 500, "%d", unknown[i]);
    }
}

Test(store_basic, buffer_grows_formats_and_detaches)
{
    store_buf_t b;
    store_buf_init(&b);
    cr_assert_str_eq(store_buf_cstr(&b), "");
    cr_assert_eq(b.len, 0);
    for (int i = 0; i < 10000; i++)
        store_buf_putc(&b, 'a' + i % 26);
    store_buf_puts(&b, "|");
    store_buf_printf(&b, "%d-%s", 42, "x");
    store_buf_put(&b, "\0z", 2);
    cr_assert(!store_buf_failed(&b));
    cr_assert_eq(b.len, 10000 + 1 + 4 + 2);
    cr_assert_leq(b.len, b.cap);
    cr_assert_eq(memcmp(b.data + 10001, "42-x", 4), 0, "%.4s", b.data + 10001);
    cr_assert_eq(b.data[b.len - 2], '\0');
    size_t len = 0;
    uint8_t *p = store_buf_detach(&b, &len);
    cr_assert_eq(len, 10007);
    cr_assert_eq(p[0], 'a');
    free(p);
    cr_assert_eq(b.len, 0);
    cr_assert_null(b.data);
    TU_OK(store_buf_reserve(&b, 1 << 20));
    cr_assert_geq(b.cap, 1u << 20);
    store_buf_clear(&b);
    store_buf_release(&b);
    store_buf_release(&b); /* twice is harmless */
}
