/* store_append_meta.c -- STORE_OP_APPEND with 'metadata': the session's metadata is written
 * in the same transaction as the events (api/ds/ keeps Durable Streams producer state
 * there), and a refused batch (expected_sequence) changes neither. */
#include <string.h>

#include "tests/unit/testutil.h"

TestSuite(store_append_meta, .init = tu_store_setup, .fini = tu_store_teardown);

/* Appends one event with metadata {"v": v} and expected_sequence 'expected'. */
static int append_meta(const char *session, unsigned v, int64_t expected)
{
    ingest_batch_t ib;
    ingest_error_t e;
    store_buf_t meta = STORE_BUF_INIT;
    static const uint8_t nil = 0xc0;
    TU_OK(ingest_batch_init(&ib, session, strlen(session)));
    TU_OK(ingest_add(&ib, "stream.message", NULL, -1, NULL, NULL, &nil, 1, NULL, 0, &e));
    store_mp_map(&meta, 1);
    store_mp_str(&meta, "v", 1);
    store_mp_uint(&meta, v);
    ib.b.metadata = meta.data;
    ib.b.metadata_len = meta.len;
    ib.b.expected_sequence = expected;
    int rc = ingest_append(tu_store, &ib);
    ingest_batch_release(&ib);
    store_buf_release(&meta);
    return rc;
}

/* The session's metadata value "v" (msgpack {"v": uint}). */
static unsigned meta_v(const char *session)
{
    store_read_t r;
    store_session_t rec;
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_session_get(&r, session, strlen(session), &rec));
    cr_assert(rec.metadata != NULL);
    store_mp_t m = {rec.metadata, rec.metadata + rec.metadata_len};
    store_mp_obj_t o;
    TU_OK(store_mp_next(&m, &o));
    TU_OK(store_mp_next(&m, &o));
    TU_OK(store_mp_next(&m, &o));
    unsigned v = (unsigned)o.u;
    store_read_end(&r);
    return v;
}

Test(store_append_meta, metadata_is_written_with_the_events)
{
    TU_OK(append_meta("s", 1, 0));
    cr_assert_eq(meta_v("s"), 1);
    TU_OK(append_meta("s", 2, 1));
    cr_assert_eq(meta_v("s"), 2);
}

Test(store_append_meta, a_refused_batch_changes_no_metadata)
{
    TU_OK(append_meta("s", 1, 0));
    cr_assert_eq(append_meta("s", 9, 0), REEL_ECONFLICT);
    cr_assert_eq(meta_v("s"), 1);
    store_session_t rec;
    TU_OK(tu_session(tu_store, "s", &rec));
    cr_assert_eq(rec.last_sequence, 1);
}

/* Appends one event that applies only if the metadata is still {"v": 'seen'} (seen 0:
 * none), and sets {"v": 'v'}. */
static int append_cas(const char *session, unsigned seen, unsigned v)
{
    ingest_batch_t ib;
    ingest_error_t e;
    store_buf_t meta = STORE_BUF_INIT, old = STORE_BUF_INIT;
    static const uint8_t nil = 0xc0;
    TU_OK(ingest_batch_init(&ib, session, strlen(session)));
    TU_OK(ingest_add(&ib, "stream.message", NULL, -1, NULL, NULL, &nil, 1, NULL, 0, &e));
    store_mp_map(&meta, 1);
    store_mp_str(&meta, "v", 1);
    store_mp_uint(&meta, v);
    if (seen) {
        store_mp_map(&old, 1);
        store_mp_str(&old, "v", 1);
        store_mp_uint(&old, seen);
    }
    ib.b.metadata = meta.data;
    ib.b.metadata_len = meta.len;
    ib.b.check_metadata = 1;
    ib.b.expected_metadata = old.data;
    ib.b.expected_metadata_len = old.len;
    int rc = ingest_append(tu_store, &ib);
    ingest_batch_release(&ib);
    store_buf_release(&meta);
    store_buf_release(&old);
    return rc;
}

Test(store_append_meta, metadata_compare_and_swap)
{
    TU_OK(append_cas("s", 0, 1));                       /* new session: no metadata yet */
    cr_assert_eq(append_cas("s", 0, 5), REEL_ECONFLICT); /* it has some now */
    cr_assert_eq(append_cas("s", 2, 5), REEL_ECONFLICT);
    TU_OK(append_cas("s", 1, 2));
    cr_assert_eq(meta_v("s"), 2);
    store_session_t rec;
    TU_OK(tu_session(tu_store, "s", &rec));
    cr_assert_eq(rec.last_sequence, 2);
    store_batch_t b; /* a session put with a stale expectation changes nothing */
    store_buf_t m = STORE_BUF_INIT;
    store_mp_map(&m, 0);
    store_batch_init(&b, STORE_OP_SESSION_PUT, "s", 1);
    b.metadata = m.data;
    b.metadata_len = m.len;
    b.check_metadata = 1;
    cr_assert_eq(store_append(tu_store, &b), REEL_ECONFLICT);
    store_buf_release(&m);
    cr_assert_eq(meta_v("s"), 2);
}
