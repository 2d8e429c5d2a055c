/* testutil.h -- helpers shared by the unit tests (all linked into one Criterion binary).
 *
 * Each test gets a fresh data directory under /tmp (tu_tmpdir) and removes it in its
 * .fini fixture (tu_rmrf), so tests can run in parallel and in any order.
 *
 * Rules:
 *  - Criterion assertions abort the test by jumping back into the test's own thread: never
 *    call cr_assert*, TU_OK or TU_ERR from a thread the test started; record the failure
 *    and assert on the test's thread.
 *  - tu_events_t owns copies of everything it collects (free with tu_events_free()).
 */
#ifndef REEL_TESTUTIL_H
#define REEL_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "ingest/ingest.h"
#include "replay/replay.h"
#include "store/buf.h"
#include "store/err.h"
#include "store/json.h"
#include "store/store.h"

#define TU_PATH_MAX 256

/* LMDB's E(expr) model: fails the test naming the place, the expression and the error. */
#define TU_OK(expr)                                                                       \
    do {                                                                                  \
        int tu_rc_ = (expr);                                                              \
        cr_assert_eq(tu_rc_, 0, "%s:%d: %s: %s (%d) %s", __FILE__, __LINE__, #expr,       \
                     reel_strerror(tu_rc_), tu_rc_, tu_rc_ ? store_last_error() : "");    \
    } while (0)

#define TU_ERR(expr, want)                                                                \
    do {                                                                                  \
        int tu_rc_ = (expr), tu_want_ = (want);                                           \
        cr_assert_eq(tu_rc_, tu_want_, "%s:%d: %s: got %s (%d: %s), want %s (%d)",        \
                     __FILE__, __LINE__, #expr, reel_err_code(tu_rc_), tu_rc_,            \
                     reel_strerror(tu_rc_), reel_err_code(tu_want_), tu_want_);           \
    } while (0)

/* Kills the test process with SIGALRM after 'seconds' (Criterion reports a crash), so a
 * hang fails one test instead of the run. Used instead of Criterion's .timeout, whose
 * runner (2.4.1) leaks memory when timed tests overlap, failing the ASan build's exit
 * status. A fork()ed child does not inherit the alarm. */
void tu_watchdog(unsigned seconds);

/* Creates a new empty directory /tmp/reel-unit-XXXXXX into 'out' (asserts on failure). */
void tu_tmpdir(char out[TU_PATH_MAX]);
/* Removes 'dir' and everything below it; no-op for NULL or "". */
void tu_rmrf(const char *dir);
/* Opens the store in 'dir' with 'map_size' (0 = default) and sync as given; asserts OK. */
store_t *tu_open(const char *dir, size_t map_size, int no_sync);
/* tu_open() of a store that, when this open creates it, does not get the optional parts
 * 'parts_off' (store_options_t.parts_off: the layout of an older build). */
store_t *tu_open_parts(const char *dir, size_t map_size, int no_sync, unsigned parts_off);

/* The fixture most store suites share: tu_store is a fresh 8 MiB store in tu_dir, opened
 * by tu_store_setup (.init) and closed and removed by tu_store_teardown (.fini). */
extern char tu_dir[TU_PATH_MAX];
extern store_t *tu_store;
void tu_store_setup(void);
void tu_store_teardown(void);

/* Results of one append, copied from the batch. */
typedef struct tu_result {
    int err;
    size_t n;
    uint64_t first_sequence, last_sequence, position;
    size_t duplicates;
} tu_result_t;

/* Parses 'text' (INGEST_JSON or INGEST_NDJSON, default limits) for 'session' and appends
 * it with 'expected_sequence' (-1 = no check). Returns the parse error, or the append's
 * result. 'res' and 'e' may be NULL. */
int tu_append(store_t *s, const char *session, const char *text, int format,
              int64_t expected_sequence, tu_result_t *res, ingest_error_t *e);

/* One event as read back, rendered by replay_write_event() (include_raw = 1). */
typedef struct tu_event {
    char session[STORE_SESSION_ID_MAX + 1];
    uint64_t sequence, position, time_ms;
    uint8_t hash[STORE_HASH_LEN];
    char *json;     /* the whole rendered envelope, NUL-terminated */
    char *data;     /* the "data" member's JSON text, NUL-terminated ("" if missing) */
    char *event_id; /* the "event_id" member's string content (test ids are ASCII) */
    char *type;     /* the "type" member's string content */
} tu_event_t;

typedef struct tu_events {
    tu_event_t *v;
    size_t n, cap;
    int err; /* first error while rendering, 0 if none */
} tu_events_t;

/* store_event_cb that appends a rendered copy of the event to a tu_events_t ('arg'). */
int tu_collect_cb(void *arg, const store_event_view_t *ev);
void tu_events_free(tu_events_t *v);

/* Reads every event of 'session' (paging with store_events_after) into 'out'; asserts. */
void tu_read_session(store_t *s, const char *session, tu_events_t *out);
/* Reads the whole all-sessions feed (paging with store_feed_after) into 'out'; asserts. */
void tu_read_feed(store_t *s, tu_events_t *out);
/* Reads the record of 'session'; returns store_session_get()'s result. */
int tu_session(store_t *s, const char *session, store_session_t *out);

/* Finds top-level member 'key' of the JSON object text 'obj' and returns a pointer to
 * its value text with the value's length in '*vlen', or NULL when missing or malformed. */
const char *tu_json_member(const char *obj, size_t len, const char *key, size_t *vlen);
/* 1 if 'text' is exactly one well-formed JSON value (structure check, not UTF-8). */
int tu_json_valid(const char *text, size_t len);

/* Small deterministic PRNG (splitmix64) so failures can be reproduced from the seed. */
uint64_t tu_rand(uint64_t *state);

/* The meta record "format" of data directory 'd', read or overwritten with LMDB directly
 * (the store closed), for the format-version tests. */
uint32_t tu_format_of(const char *d);
/* The format record of 'd' (its first 16 bytes into 'out'); returns its size */
size_t tu_format_record(const char *d, uint8_t out[16]);
/* Puts key -> value into tree 'tree' of the store in 'd' (closed), bypassing the store: a
 * value put into a tree of sorted duplicates is added beside the key's others. */
void tu_put_raw(const char *d, const char *tree, const void *key, size_t klen, const void *val,
                size_t vlen);
void tu_put_format(const char *d, uint32_t version);

#endif
