/* store_cache.c -- the store's envelope cache (store/cache.c): a cached read gives the
 * bytes an uncached one renders; no envelope is served after its event was redacted (by
 * this handle or by another process), deleted, trimmed or purged, or past the visible
 * bound; a reopened store starts empty; the budget bounds it; readers on many threads
 * while redactions commit never see a redacted body once the redaction returned. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/testutil.h"

static char dir[TU_PATH_MAX];
static store_t *st;

static void setup(void)
{
    tu_watchdog(120);
    tu_tmpdir(dir);
}

static void teardown(void)
{
    store_close(st);
    st = NULL;
    tu_rmrf(dir);
}

TestSuite(store_cache, .init = setup, .fini = teardown);

static store_t *open_cached(size_t bytes)
{
    store_options_t o = {.map_size = 64u << 20, .no_sync = 1, .render = replay_envelope,
                         .cache_bytes = bytes};
    store_t *s = NULL;
    TU_OK(store_open(dir, &o, &s));
    return s;
}

/* What a read gave: the envelopes, one per line, and how many came from the cache. */
typedef struct got {
    store_buf_t text;
    size_t n, cached, plain; /* plain: rendered by the test (no envelope given) */
    uint64_t last_seq;
} got_t;

static int take(void *arg, const store_event_view_t *ev)
{
    got_t *g = arg;
    if (ev->envelope) {
        store_buf_put(&g->text, ev->envelope, ev->envelope_len);
        g->cached += ev->unchecked;
    } else {
        int rc = replay_write_event(&g->text, ev, 0);
        if (rc)
            return rc;
        g->plain++;
    }
    store_buf_putc(&g->text, '\n');
    g->n++;
    g->last_seq = ev->sequence;
    return 0;
}

enum how { AFTER, NEWEST, FEED };

/* One read of 'session' (all of it, the newest 'lim', or the feed), with envelopes or not. */
static int read_as(store_t *s, enum how how, const char *session, size_t lim, int envelopes,
                  got_t *g)
{
    store_read_t r;
    memset(g, 0, sizeof *g);
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    r.envelopes = envelopes;
    if (how == AFTER)
        rc = store_events_after(&r, session, strlen(session), 0, lim, take, g, NULL);
    else if (how == NEWEST)
        rc = store_events_newest(&r, session, strlen(session), lim, take, g);
    else
        rc = store_feed_after(&r, 0, lim, take, g, NULL);
    store_read_end(&r);
    return rc;
}

static void append_n(const char *session, int n, const char *word)
{
    store_buf_t b = STORE_BUF_INIT;
    for (int i = 0; i < n; i++)
        store_buf_printf(&b, "{\"type\":\"t\",\"data\":{\"i\":%d,\"text\":\"%s-%03d caf\\u00e9\","
                             "\"n\":1.50}}\n", i, word, i);
    TU_OK(tu_append(st, session, store_buf_cstr(&b), INGEST_NDJSON, -1, NULL, NULL));
    store_buf_release(&b);
}

/* The same read with envelopes and rendered by the test: byte for byte the same. */
static void same_as_plain(enum how how, const char *session, size_t lim, size_t *cached)
{
    got_t a, b;
    TU_OK(read_as(st, how, session, lim, 1, &a));
    TU_OK(read_as(st, how, session, lim, 0, &b));
    cr_assert_eq(a.n, b.n);
    cr_assert_eq(a.plain, 0, "every event came with its envelope");
    cr_assert_eq(a.text.len, b.text.len);
    cr_assert(!memcmp(a.text.data, b.text.data, a.text.len), "envelopes differ from renderings");
    if (cached)
        *cached = a.cached;
    store_buf_release(&a.text);
    store_buf_release(&b.text);
}

static int has(enum how how, const char *session, size_t lim, const char *needle)
{
    got_t g;
    TU_OK(read_as(st, how, session, lim, 1, &g));
    int found = g.text.len && memmem(g.text.data, g.text.len, needle, strlen(needle)) != NULL;
    store_buf_release(&g.text);
    return found;
}

Test(store_cache, envelopes_are_the_renderings_and_the_second_read_is_served_from_the_cache)
{
    st = open_cached(0);
    append_n("a", 150, "alpha");
    append_n("b", 70, "beta");
    size_t cached;
    same_as_plain(AFTER, "a", 1000, &cached);
    cr_assert_eq(cached, 0, "nothing is cached before the first read");
    same_as_plain(AFTER, "a", 1000, &cached);
    cr_assert_eq(cached, 150);
    same_as_plain(NEWEST, "a", 50, &cached);
    cr_assert_eq(cached, 50);
    same_as_plain(NEWEST, "b", 50, &cached);
    cr_assert_eq(cached, 0);
    same_as_plain(FEED, NULL, 1000, &cached);
    cr_assert_eq(cached, 200, "the feed finds what the session reads kept (150 + 50)");
    /* a walk that starts on a cached event after an uncached one, and the reverse */
    same_as_plain(AFTER, "b", 1000, &cached);
    cr_assert_eq(cached, 70);
    store_cache_stats_t cs;
    store_cache_stats(st, &cs);
    cr_assert_eq(cs.entries, 220);
    cr_assert(cs.hits >= 470 && cs.misses >= 220 && cs.bytes > 0 && cs.bytes <= cs.max_bytes);
    cr_assert_eq(cs.max_bytes, STORE_CACHE_DEFAULT_BYTES);
}

/* A caller that uses a cached view's body checks it first (store.h's contract). */
static int checked_render(void *arg, const store_event_view_t *ev)
{
    got_t *g = arg;
    g->cached += ev->unchecked && !ev->body;
    int rc = store_event_check(ev);
    if (rc)
        return rc;
    if (ev->unchecked || !ev->body)
        return REEL_EINTERNAL;
    rc = replay_write_event(&g->text, ev, 0);
    store_buf_putc(&g->text, '\n');
    g->n++;
    return rc;
}

Test(store_cache, a_cached_view_can_still_be_checked_and_gives_its_body)
{
    st = open_cached(0);
    append_n("a", 5, "alpha");
    got_t g, c = {0};
    TU_OK(read_as(st, AFTER, "a", 10, 1, &g)); /* cache them */
    store_read_t r;
    TU_OK(store_read_begin(st, &r));
    r.envelopes = 1;
    TU_OK(store_events_newest(&r, "a", 1, 3, checked_render, &c)); /* prev hash not known */
    TU_OK(store_events_after(&r, "a", 1, 0, 10, checked_render, &c, NULL));
    store_read_end(&r);
    cr_assert_eq(c.n, 8);
    cr_assert_eq(c.cached, 8, "served from the cache, checked on demand");
    /* the newest 3 then all 5, byte for byte as the first read's envelopes */
    const char *all = store_buf_cstr(&g.text), *last3 = strchr(strchr(all, '\n') + 1, '\n') + 1;
    store_buf_t want = STORE_BUF_INIT;
    store_buf_puts(&want, last3);
    store_buf_puts(&want, all);
    cr_assert_str_eq(store_buf_cstr(&c.text), store_buf_cstr(&want));
    store_buf_release(&want);
    cr_assert(strstr(store_buf_cstr(&c.text), "alpha-004"));
    store_buf_release(&g.text);
    store_buf_release(&c.text);
}

static int redact_seq(store_t *s, const char *session, uint64_t from, uint64_t to,
                      const char *pattern)
{
    const char *pats[] = {pattern};
    ingest_redact_req_t q = {session, strlen(session), from, to, NULL, 0, pats, 1, "unit"};
    ingest_redact_result_t res;
    ingest_error_t e;
    int rc = ingest_redact_after(s, &q, &res, &e);
    if (rc == REEL_OK)
        ingest_redact_result_release(&res);
    return rc;
}

Test(store_cache, a_redaction_drops_the_envelopes_it_rewrites)
{
    st = open_cached(0);
    append_n("a", 60, "hunter2hunter2");
    cr_assert(has(AFTER, "a", 100, "hunter2hunter2-010"));
    cr_assert(has(NEWEST, "a", 100, "hunter2hunter2-059"));
    cr_assert(has(FEED, NULL, 100, "hunter2hunter2-030"));
    TU_OK(redact_seq(st, "a", 1, 60, "pw\thunter2hunter2"));
    cr_assert(!has(AFTER, "a", 100, "hunter2hunter2"), "a cached envelope outlived its redaction");
    cr_assert(!has(NEWEST, "a", 100, "hunter2hunter2"));
    cr_assert(!has(FEED, NULL, 100, "hunter2hunter2"));
    same_as_plain(AFTER, "a", 100, NULL);
    same_as_plain(FEED, NULL, 100, NULL);
}

Test(store_cache, a_redaction_by_another_process_empties_the_cache)
{
    int go[2], done[2];
    cr_assert(!pipe(go) && !pipe(done));
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) { /* forked before the parent opens the store: its own LMDB env */
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        store_t *s = NULL;
        store_options_t o = {.map_size = 64u << 20, .no_sync = 1};
        if (store_open(dir, &o, &s) || redact_seq(s, "a", 1, 20, "pw\thunter2hunter2"))
            _exit(3);
        store_close(s);
        _exit((int)write(done[1], "x", 1) != 1);
    }
    close(go[0]);
    close(done[1]);
    st = open_cached(0);
    append_n("a", 20, "hunter2hunter2");
    cr_assert(has(AFTER, "a", 100, "hunter2hunter2-005"));
    cr_assert(has(NEWEST, "a", 100, "hunter2hunter2-019")); /* now cached */
    cr_assert_eq(write(go[1], "g", 1), 1);
    char c;
    cr_assert_eq(read(done[0], &c, 1), 1, "the other process redacted");
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert(!has(NEWEST, "a", 100, "hunter2hunter2"), "served an envelope another process redacted");
    cr_assert(!has(AFTER, "a", 100, "hunter2hunter2"));
    store_cache_stats_t cs;
    store_cache_stats(st, &cs);
    cr_assert(cs.clears >= 1);
    /* and this handle's commits after it keep the cache right */
    append_n("a", 3, "later");
    same_as_plain(AFTER, "a", 100, NULL);
}

static int submit(int op, const char *session, uint64_t trim_before)
{
    store_batch_t b;
    store_batch_init(&b, op, session, strlen(session));
    b.trim_before = trim_before;
    return store_append(st, &b);
}

Test(store_cache, delete_trim_purge_and_recreation_never_serve_a_cached_envelope)
{
    st = open_cached(0);
    append_n("d", 10, "gone");
    append_n("t", 20, "trim");
    append_n("p", 5, "purged");
    cr_assert(has(AFTER, "d", 100, "gone-009") && has(AFTER, "t", 100, "trim-000") &&
              has(FEED, NULL, 100, "purged-004"));
    got_t g;
    TU_OK(submit(STORE_OP_SESSION_DELETE, "d", 0));
    TU_ERR(read_as(st, AFTER, "d", 100, 1, &g), REEL_EGONE);
    store_buf_release(&g.text);
    TU_ERR(read_as(st, NEWEST, "d", 100, 1, &g), REEL_EGONE);
    store_buf_release(&g.text);
    cr_assert(!has(FEED, NULL, 100, "gone-"));

    TU_OK(submit(STORE_OP_TRIM, "t", 11));
    TU_OK(read_as(st, AFTER, "t", 100, 1, &g));
    cr_assert_eq(g.n, 10);
    store_buf_release(&g.text);
    cr_assert(!has(AFTER, "t", 100, "trim-009") && has(AFTER, "t", 100, "trim-010"));
    cr_assert(!has(FEED, NULL, 100, "trim-000"));

    TU_OK(submit(STORE_OP_PURGE, "p", 0));
    TU_ERR(read_as(st, AFTER, "p", 100, 1, &g), REEL_ESESSION_NOT_FOUND);
    store_buf_release(&g.text);
    cr_assert(!has(FEED, NULL, 100, "purged-"));
    append_n("p", 5, "reborn"); /* the same id again: a new number, new positions */
    cr_assert(!has(AFTER, "p", 100, "purged-") && has(AFTER, "p", 100, "reborn-004"));
    same_as_plain(AFTER, "p", 100, NULL);
    same_as_plain(FEED, NULL, 100, NULL);
}

Test(store_cache, the_visible_bound_clips_cached_reads)
{
    st = open_cached(0);
    append_n("v", 20, "vis");
    size_t cached;
    same_as_plain(AFTER, "v", 100, NULL);
    same_as_plain(AFTER, "v", 100, &cached);
    cr_assert_eq(cached, 20);
    got_t g;
    TU_OK(read_as(st, AFTER, "v", 100, 1, &g));
    uint64_t pos10 = 0;
    { /* the position of sequence 10 */
        store_read_t r;
        tu_events_t ev = {0};
        TU_OK(store_read_begin(st, &r));
        TU_OK(store_events_after(&r, "v", 1, 9, 1, tu_collect_cb, &ev, NULL));
        store_read_end(&r);
        pos10 = ev.v[0].position;
        tu_events_free(&ev);
    }
    store_buf_release(&g.text);
    store_set_visible(st, pos10, 0);
    for (int how = AFTER; how <= FEED; how++) {
        TU_OK(read_as(st, how, "v", 100, 1, &g));
        cr_assert_eq(g.n, 10, "read %d gave %zu events past the visible bound", how, g.n);
        cr_assert_eq(g.last_seq, 10);
        store_buf_release(&g.text);
    }
    store_set_visible(st, STORE_VISIBLE_ALL, UINT32_MAX);
    TU_OK(read_as(st, NEWEST, "v", 100, 1, &g));
    cr_assert_eq(g.n, 20);
    store_buf_release(&g.text);
}

Test(store_cache, a_reopened_store_starts_empty)
{
    st = open_cached(0);
    append_n("a", 30, "x");
    same_as_plain(AFTER, "a", 100, NULL);
    store_cache_stats_t cs;
    store_cache_stats(st, &cs);
    cr_assert_eq(cs.entries, 30);
    store_close(st);
    st = open_cached(0);
    store_cache_stats(st, &cs);
    cr_assert_eq(cs.entries, 0);
    cr_assert_eq(cs.hits, 0);
    size_t cached;
    same_as_plain(AFTER, "a", 100, &cached);
    cr_assert_eq(cached, 0);
}

Test(store_cache, the_budget_bounds_it_and_off_still_gives_envelopes)
{
    st = open_cached(128u << 10);
    store_buf_t b = STORE_BUF_INIT;
    for (int i = 0; i < 400; i++)
        store_buf_printf(&b, "{\"type\":\"t\",\"data\":\"%0900d\"}\n", i);
    TU_OK(tu_append(st, "big", store_buf_cstr(&b), INGEST_NDJSON, -1, NULL, NULL));
    store_buf_release(&b);
    for (int i = 0; i < 2; i++)
        same_as_plain(AFTER, "big", 1000, NULL);
    store_cache_stats_t cs;
    store_cache_stats(st, &cs);
    cr_assert(cs.bytes > 0 && cs.bytes <= 128u << 10, "%llu bytes", (unsigned long long)cs.bytes);
    cr_assert(cs.evictions > 0 && cs.entries < 400);
    store_close(st);
    st = open_cached(STORE_CACHE_OFF);
    size_t cached;
    same_as_plain(AFTER, "big", 1000, &cached); /* envelopes rendered, none kept */
    cr_assert_eq(cached, 0);
    store_cache_stats(st, &cs);
    cr_assert_eq(cs.entries, 0);
}

/* ---- readers on many threads while redactions commit ---- */

#define CN 120 /* events; event i carries SECRET-i until the redactor reaches it */

static atomic_uint redacted_upto; /* sequences <= this were redacted (the call returned) */
static atomic_int stop_readers;
static atomic_ulong violations, reads_done;

static void *reader(void *arg)
{
    uint64_t seed = (uintptr_t)arg;
    while (!atomic_load(&stop_readers)) {
        unsigned upto = atomic_load(&redacted_upto); /* before the read begins */
        got_t g;
        int how = (int)(tu_rand(&seed) % 3);
        if (read_as(st, how, "c", how == NEWEST ? 50 : 1000, 1, &g)) {
            atomic_fetch_add(&violations, 1000000);
            break;
        }
        /* every line is one envelope; none of a redacted sequence may hold its secret */
        const char *p = (const char *)g.text.data, *end = p + g.text.len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *sq = memmem(p, (size_t)(nl - p), "\"sequence\":", 11);
            unsigned long seq = sq ? strtoul(sq + 11, NULL, 10) : 0;
            if (seq && seq <= upto && memmem(p, (size_t)(nl - p), "SECRET-", 7))
                atomic_fetch_add(&violations, 1);
            p = nl + 1;
        }
        store_buf_release(&g.text);
        atomic_fetch_add(&reads_done, 1);
    }
    return NULL;
}

Test(store_cache, readers_on_threads_never_see_a_body_after_its_redaction_returned)
{
    st = open_cached(0);
    store_buf_t b = STORE_BUF_INIT;
    for (int i = 1; i <= CN; i++)
        store_buf_printf(&b, "{\"type\":\"t\",\"data\":{\"text\":\"SECRET-%03d\"}}\n", i);
    TU_OK(tu_append(st, "c", store_buf_cstr(&b), INGEST_NDJSON, -1, NULL, NULL));
    store_buf_release(&b);
    atomic_store(&redacted_upto, 0);
    atomic_store(&stop_readers, 0);
    atomic_store(&violations, 0);
    atomic_store(&reads_done, 0);
    pthread_t th[4];
    for (uintptr_t i = 0; i < 4; i++)
        cr_assert(!pthread_create(&th[i], NULL, reader, (void *)(i + 1)));
    int failed = 0;
    for (unsigned seq = 1; seq <= CN && !failed; seq += 3) {
        unsigned to = seq + 2 > CN ? CN : seq + 2;
        failed = redact_seq(st, "c", seq, to, "secret\tSECRET-[0-9]{3}");
        if (!failed)
            atomic_store(&redacted_upto, to);
    }
    /* let the readers see the end state too (unless one already failed) */
    while (atomic_load(&reads_done) < 200 && !atomic_load(&violations))
        usleep(1000);
    atomic_store(&stop_readers, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    TU_OK(failed);
    cr_assert_eq(atomic_load(&violations), 0, "%lu envelopes served after their redaction",
                 atomic_load(&violations));
    store_cache_stats_t cs;
    store_cache_stats(st, &cs);
    cr_assert(cs.hits > 0, "the readers were served from the cache");
    cr_assert(!has(AFTER, "c", 1000, "SECRET-"));
    same_as_plain(AFTER, "c", 1000, NULL);
}
