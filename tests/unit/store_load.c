/* store_load.c -- STORE_OP_LOAD (store.h "Loading a copy", issue 18 item 4): events copied
 * from another store with their sequences, times and chain hashes; positions kept (restore)
 * or given anew (move); a chain that does not follow is refused, naming the session and
 * sequence, and changes nothing; records (deleted, trimmed) and the change log come back;
 * `reel verify` passes on the copy. */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/testutil.h"

static char dir_a[TU_PATH_MAX], dir_b[TU_PATH_MAX];
static store_t *sa, *sb;

static void setup(void)
{
    tu_watchdog(60);
    tu_tmpdir(dir_a);
    tu_tmpdir(dir_b);
    sa = tu_open(dir_a, 8u << 20, 1);
    sb = tu_open(dir_b, 8u << 20, 1);
}

static void teardown(void)
{
    store_close(sa);
    store_close(sb);
    sa = sb = NULL;
    tu_rmrf(dir_a);
    tu_rmrf(dir_b);
}

TestSuite(store_load, .init = setup, .fini = teardown);

/* One event of the source as a loader sees it (owned copies). */
typedef struct src_event {
    char session[64];
    char id[STORE_EVENT_ID_MAX + 1];
    store_load_event_t le;
    store_buf_t value; /* flags byte, [kept hash], body */
} src_event_t;

typedef struct src {
    src_event_t *v;
    size_t n;
} src_t;

static int take(void *arg, const store_event_view_t *ev)
{
    src_t *s = arg;
    s->v = realloc(s->v, (s->n + 1) * sizeof *s->v);
    src_event_t *e = &s->v[s->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->session, sizeof e->session, "%.*s", (int)ev->session_len, ev->session);
    store_mp_t m = {ev->body, ev->body + ev->body_len};
    store_mp_obj_t arr, id;
    cr_assert(!store_mp_next(&m, &arr) && !store_mp_next(&m, &id) && id.type == STORE_MP_STR);
    memcpy(e->id, id.ptr, id.len);
    e->le.event_id = e->id;
    e->le.event_id_len = id.len;
    e->le.sequence = ev->sequence;
    e->le.position = ev->position;
    e->le.time_ms = ev->time_ms;
    memcpy(e->le.hash, ev->hash, STORE_HASH_LEN);
    uint8_t h[STORE_HASH_LEN];
    store_buf_t enc = STORE_BUF_INIT;
    TU_OK(store_body_encode(ev->body, ev->body_len, &enc, h));
    if (ev->redacted) { /* the chain commits to the original body's hash, kept */
        memcpy(e->le.body_hash, ev->kept_hash_, STORE_HASH_LEN);
        store_buf_putc(&e->value, (char)(enc.data[0] | STORE_FLAG_REDACTED));
        store_buf_put(&e->value, ev->kept_hash_, STORE_HASH_LEN);
    } else {
        memcpy(e->le.body_hash, h, STORE_HASH_LEN);
        store_buf_putc(&e->value, (char)enc.data[0]);
    }
    store_buf_put(&e->value, enc.data + 1, enc.len - 1);
    store_buf_release(&enc);
    return 0;
}

static void read_source(store_t *s, src_t *out)
{
    store_read_t r;
    uint64_t after = 0;
    int more = 1;
    while (more) {
        size_t n0 = out->n;
        TU_OK(store_read_begin(s, &r));
        TU_OK(store_feed_after(&r, after, 100, take, out, &more));
        store_read_end(&r);
        if (out->n == n0)
            break;
        after = out->v[out->n - 1].le.position;
    }
    for (size_t i = 0; i < out->n; i++) { /* realloc moved them: point again */
        out->v[i].le.event_id = out->v[i].id;
        out->v[i].le.body = out->v[i].value.data;
        out->v[i].le.body_len = out->v[i].value.len;
    }
}

static void src_free(src_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        store_buf_release(&s->v[i].value);
    free(s->v);
}

/* Loads events [from, to) of 'src' that belong to 'session' as one batch. */
static int load(store_t *s, const src_t *src, const char *session, size_t from, size_t to,
                int keep, const uint8_t *prev, const store_session_t *rec, store_load_t *l)
{
    memset(l, 0, sizeof *l);
    l->keep_positions = keep;
    l->events = calloc(to - from + 1, sizeof *l->events);
    for (size_t i = from; i < to; i++)
        if (!strcmp(src->v[i].session, session))
            l->events[l->n_events++] = src->v[i].le;
    if (prev)
        memcpy(l->src_prev, prev, STORE_HASH_LEN);
    l->record = rec;
    store_batch_t b;
    store_batch_init(&b, STORE_OP_LOAD, session, strlen(session));
    b.load = l;
    int rc = store_append(s, &b);
    free(l->events);
    l->events = NULL;
    return rc;
}

static void verify_ok(store_t *s)
{
    store_verify_report_t rep;
    TU_OK(store_verify(s, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "verify: %s at %s/%llu", rep.problem, rep.session,
              (unsigned long long)rep.sequence);
}

static char *feed_text(store_t *s)
{
    tu_events_t ev = {0};
    tu_read_feed(s, &ev);
    store_buf_t b = STORE_BUF_INIT;
    for (size_t i = 0; i < ev.n; i++)
        store_buf_printf(&b, "%s\n", ev.v[i].json);
    tu_events_free(&ev);
    char *t = strdup(store_buf_cstr(&b));
    store_buf_release(&b);
    return t;
}

static void append(store_t *s, const char *session, const char *ndjson)
{
    TU_OK(tu_append(s, session, ndjson, INGEST_NDJSON, -1, NULL, NULL));
}

/* Two interleaved sessions, one event redacted after the fact. */
static void fill_source(void)
{
    append(sa, "a", "{\"type\":\"session.started\",\"data\":{\"model\":\"m1\"}}\n"
                    "{\"type\":\"message\",\"data\":{\"text\":\"secret=hunter2\"}}\n");
    append(sa, "b", "{\"type\":\"message\",\"data\":{\"text\":\"b1\\u0000x\"}}\n");
    append(sa, "a", "{\"type\":\"message\",\"data\":{\"text\":\"a3\"}}\n");
    append(sa, "b", "{\"type\":\"session.ended\"}\n");
    const char *paths[] = {"data.text"};
    ingest_redact_req_t q = {"a", 1, 2, 2, paths, 1, NULL, 0, "unit"};
    ingest_redact_result_t res;
    ingest_error_t e;
    TU_OK(ingest_redact_after(sa, &q, &res, &e));
    ingest_redact_result_release(&res);
}

Test(store_load, restore_keeps_positions_hashes_and_verifies)
{
    fill_source();
    src_t src = {0};
    read_source(sa, &src);
    cr_assert_eq(src.n, 6); /* a: 3 + the reel.redacted record, b: 2 */
    /* In position order, one batch per run of one session, as the loader does. */
    store_load_t l;
    size_t i = 0;
    uint8_t prev_a[STORE_HASH_LEN] = {0}, prev_b[STORE_HASH_LEN] = {0};
    while (i < src.n) {
        size_t j = i;
        while (j < src.n && !strcmp(src.v[j].session, src.v[i].session))
            j++;
        uint8_t *prev = !strcmp(src.v[i].session, "a") ? prev_a : prev_b;
        TU_OK(load(sb, &src, src.v[i].session, i, j, 1, prev, NULL, &l));
        memcpy(prev, src.v[j - 1].le.hash, STORE_HASH_LEN);
        i = j;
    }
    /* The records as the source has them. */
    store_read_t r;
    store_session_t ra, rb;
    TU_OK(store_read_begin(sa, &r));
    TU_OK(store_session_get(&r, "a", 1, &ra));
    TU_OK(store_session_get(&r, "b", 1, &rb));
    TU_OK(load(sb, &src, "a", 0, 0, 1, ra.last_hash, &ra, &l));
    TU_OK(load(sb, &src, "b", 0, 0, 1, rb.last_hash, &rb, &l));
    store_read_end(&r);

    char *fa = feed_text(sa), *fb = feed_text(sb);
    cr_assert_str_eq(fb, fa, "the copy's feed differs");
    free(fa), free(fb);
    store_session_t ca, cb;
    TU_OK(tu_session(sb, "a", &ca));
    TU_OK(tu_session(sb, "b", &cb));
    cr_assert_eq(ca.last_sequence, ra.last_sequence);
    cr_assert_eq(ca.runs, ra.runs);
    cr_assert_eq(ca.version, ra.version);
    cr_assert_eq(ca.updated_ms, ra.updated_ms);
    cr_assert_eq(cb.status, STORE_ENDED);
    cr_assert_eq(memcmp(ca.last_hash, ra.last_hash, STORE_HASH_LEN), 0);
    cr_assert_eq(ca.model_len, ra.model_len);
    verify_ok(sb);
    src_free(&src);
}

Test(store_load, a_chain_that_does_not_follow_is_refused_and_changes_nothing)
{
    fill_source();
    src_t src = {0};
    read_source(sa, &src);
    store_load_t l;
    /* Session "a" is src[0], src[1], src[3] and the record; damage the second's hash. */
    src.v[1].le.hash[5] ^= 1;
    TU_ERR(load(sb, &src, "a", 0, src.n, 1, NULL, NULL, &l), REEL_EDAMAGED);
    cr_assert_eq(l.bad_sequence, 2);
    cr_assert(strstr(l.why, "session 'a'") && strstr(l.why, "sequence 2"), "%s", l.why);
    src.v[1].le.hash[5] ^= 1;
    /* A body hash that is not the one the chain committed to. */
    src.v[3].le.body_hash[0] ^= 1;
    TU_ERR(load(sb, &src, "a", 0, src.n, 1, NULL, NULL, &l), REEL_EDAMAGED);
    cr_assert_eq(l.bad_sequence, 3, "%s", l.why);
    src.v[3].le.body_hash[0] ^= 1;
    /* Sequence 1 chained from something else than zeros. */
    uint8_t junk[STORE_HASH_LEN] = {1};
    TU_ERR(load(sb, &src, "a", 0, src.n, 1, junk, NULL, &l), REEL_EDAMAGED);
    store_read_t r;
    uint64_t tail = 1;
    store_session_t rec;
    TU_OK(store_read_begin(sb, &r));
    TU_OK(store_tail_position(&r, &tail));
    TU_ERR(store_session_get(&r, "a", 1, &rec), REEL_ESESSION_NOT_FOUND);
    store_read_end(&r);
    cr_assert_eq(tail, 0, "a refused load wrote something");
    /* Now the right chain goes in; loading it again is refused (positions, then ids). */
    TU_OK(load(sb, &src, "a", 0, 2, 1, NULL, NULL, &l));
    TU_ERR(load(sb, &src, "a", 0, 2, 1, NULL, NULL, &l), REEL_ECONFLICT);
    verify_ok(sb);
    src_free(&src);
}

Test(store_load, positions_kept_with_gaps_and_the_next_append_continues_after_the_highest)
{
    fill_source();
    src_t src = {0};
    read_source(sa, &src);
    store_load_t l;
    /* Only session "b" (positions 3 and 5): gaps before and between. */
    uint8_t zero[STORE_HASH_LEN] = {0};
    memset(&l, 0, sizeof l);
    TU_OK(load(sb, &src, "b", 0, src.n, 1, zero, NULL, &l));
    tu_events_t ev = {0};
    tu_read_session(sb, "b", &ev);
    cr_assert_eq(ev.n, 2);
    cr_assert_eq(ev.v[0].position, src.v[2].le.position);
    cr_assert_eq(ev.v[1].position, src.v[4].le.position);
    cr_assert_eq(memcmp(ev.v[1].hash, src.v[4].le.hash, STORE_HASH_LEN), 0);
    tu_events_free(&ev);
    /* A position not above the last one is refused. */
    TU_ERR(load(sb, &src, "a", 0, 2, 1, zero, NULL, &l), REEL_EDAMAGED);
    cr_assert(strstr(l.why, "position"), "%s", l.why);
    /* min_last_position (the sink's checkpoint) moves the tail: appends go on after it. */
    store_load_t only = {.keep_positions = 1, .min_last_position = 100};
    store_batch_t b;
    store_batch_init(&b, STORE_OP_LOAD, "x", 1);
    b.load = &only;
    TU_OK(store_append(sb, &b));
    tu_result_t res;
    TU_OK(tu_append(sb, "c", "{\"type\":\"message\"}\n", INGEST_NDJSON, -1, &res, NULL));
    cr_assert_eq(res.position, 101);
    verify_ok(sb);
    src_free(&src);
}

Test(store_load, move_gives_new_positions_and_rechains)
{
    fill_source();
    append(sb, "other", "{\"type\":\"message\"}\n{\"type\":\"message\"}\n");
    src_t src = {0};
    read_source(sa, &src);
    store_load_t l;
    TU_OK(load(sb, &src, "a", 0, src.n, 0, NULL, NULL, &l));
    tu_events_t ev = {0};
    tu_read_session(sb, "a", &ev);
    cr_assert_eq(ev.n, 4);
    cr_assert_eq(ev.v[0].position, 3); /* after "other"'s two */
    cr_assert_eq(ev.v[3].position, 6);
    cr_assert_eq(ev.v[1].time_ms, src.v[1].le.time_ms);
    cr_assert_neq(memcmp(ev.v[0].hash, src.v[0].le.hash, STORE_HASH_LEN), 0);
    tu_events_free(&ev);
    /* The copies are marked copied in their own transaction (FORMAT.md section 20). */
    store_read_t rd;
    uint64_t ranges, spans;
    TU_OK(store_read_begin(sb, &rd));
    TU_OK(store_copied_count(&rd, &ranges, &spans));
    store_read_end(&rd);
    cr_assert_eq(ranges, 1);
    cr_assert_eq(spans, 4);
    /* The source chain is still checked in move mode. */
    src.v[2].le.hash[0] ^= 1;
    TU_ERR(load(sb, &src, "b", 0, src.n, 0, NULL, NULL, &l), REEL_EDAMAGED);
    cr_assert_eq(l.bad_sequence, 1);
    src.v[2].le.hash[0] ^= 1;
    /* Catching up: the rest of "b" after its first event, chained from the source's. */
    TU_OK(load(sb, &src, "b", 0, 3, 0, NULL, NULL, &l));
    TU_OK(load(sb, &src, "b", 3, src.n, 0, src.v[2].le.hash, NULL, &l));
    store_session_t rec;
    TU_OK(tu_session(sb, "b", &rec));
    cr_assert_eq(rec.last_sequence, 2);
    verify_ok(sb);
    src_free(&src);
}

Test(store_load, deleted_and_trimmed_records_and_the_change_log_come_back)
{
    append(sa, "t", "{\"type\":\"m\"}\n{\"type\":\"m\"}\n{\"type\":\"m\"}\n");
    append(sa, "d", "{\"type\":\"m\"}\n");
    store_batch_t b;
    store_batch_init(&b, STORE_OP_TRIM, "t", 1);
    b.trim_before = 3;
    TU_OK(store_append(sa, &b));
    store_batch_init(&b, STORE_OP_SESSION_DELETE, "d", 1);
    TU_OK(store_append(sa, &b));
    src_t src = {0};
    read_source(sa, &src);
    cr_assert_eq(src.n, 1); /* t's sequence 3; d's event is gone */
    store_read_t r;
    store_session_t rt, rd;
    TU_OK(store_read_begin(sa, &r));
    TU_OK(store_session_get(&r, "t", 1, &rt));
    TU_OK(store_session_get(&r, "d", 1, &rd));
    store_read_end(&r);
    cr_assert_eq(rt.first_sequence, 3);
    store_load_t l;
    TU_OK(load(sb, &src, "t", 0, src.n, 1, rt.first_prev_hash, &rt, &l));
    TU_OK(load(sb, &src, "d", 0, 0, 1, NULL, &rd, &l));
    /* The change log: the trim and the delete, under their keys. */
    store_session_t ct = rt, cd = rd;
    store_load_change_t ch[2] = {{src.v[0].le.position, 1, STORE_CHANGE_TRIM, 7, &ct},
                                 {src.v[0].le.position + 1, 1, STORE_CHANGE_DELETE, 8, &cd}};
    store_load_t lc = {.keep_positions = 1, .changes = ch, .n_changes = 2};
    store_batch_init(&b, STORE_OP_LOAD, "x", 1);
    b.load = &lc;
    TU_OK(store_append(sb, &b));
    /* Out of order after what is there: refused. */
    store_batch_init(&b, STORE_OP_LOAD, "x", 1);
    b.load = &lc;
    lc.n_changes = 1;
    TU_ERR(store_append(sb, &b), REEL_EDAMAGED);
    store_session_t ct2, cd2;
    TU_OK(tu_session(sb, "t", &ct2));
    TU_OK(tu_session(sb, "d", &cd2));
    cr_assert_eq(cd2.status, STORE_DELETED);
    cr_assert_eq(cd2.last_sequence, 1);
    cr_assert_eq(cd2.version, rd.version);
    TU_OK(store_read_begin(sb, &r));
    TU_ERR(store_events_after(&r, "d", 1, 0, 10, take, &src, NULL), REEL_EGONE);
    store_read_end(&r);
    cr_assert_eq(ct2.first_sequence, 3);
    cr_assert_eq(memcmp(ct2.first_prev_hash, rt.first_prev_hash, STORE_HASH_LEN), 0);
    cr_assert_eq(ct2.event_count, 1);
    verify_ok(sb);
    src_free(&src);
}
