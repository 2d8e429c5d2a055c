/* store_changes.c -- the change log (docs/FORMAT.md section 13): record changes are logged
 * in the same transaction, keyed (position of the event before, index), events keep their
 * positions, and store_feed_changes_after() walks both in commit order from any cursor. */
#include <string.h>

#include "tests/unit/testutil.h"

TestSuite(store_changes, .init = tu_store_setup, .fini = tu_store_teardown);

/* One item of the merged walk: an event (index 0) or a change. */
struct item {
    uint64_t pos;
    uint32_t index;
    int kind; /* 0 for an event */
    char session[16];
};

struct walk {
    struct item v[64];
    size_t n;
};

static int on_event(void *arg, const store_event_view_t *ev)
{
    struct walk *w = arg;
    struct item *it = &w->v[w->n++];
    memset(it, 0, sizeof *it);
    it->pos = ev->position;
    memcpy(it->session, ev->session, ev->session_len < 15 ? ev->session_len : 15);
    return 0;
}

static int on_change(void *arg, const store_change_view_t *ch)
{
    struct walk *w = arg;
    struct item *it = &w->v[w->n++];
    memset(it, 0, sizeof *it);
    it->pos = ch->position;
    it->index = ch->index;
    it->kind = ch->kind;
    memcpy(it->session, ch->record->id, ch->record->id_len < 15 ? ch->record->id_len : 15);
    return 0;
}

static void walk(uint64_t after, uint32_t index, size_t limit, struct walk *w, int *more)
{
    store_read_t r;
    w->n = 0;
    TU_OK(store_read_begin(tu_store, &r));
    TU_OK(store_feed_changes_after(&r, after, index, limit, on_event, on_change, w, more));
    store_read_end(&r);
}

static void put(const char *id, const char *agent)
{
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_PUT, id, strlen(id));
    b.agent = agent;
    b.agent_len = strlen(agent);
    TU_OK(store_append(tu_store, &b));
}

static void del(const char *id)
{
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_DELETE, id, strlen(id));
    TU_OK(store_append(tu_store, &b));
}

static void append(const char *id, int n)
{
    char text[256] = "[";
    for (int i = 0; i < n; i++)
        strcat(text, i ? ",{\"type\":\"t\"}" : "{\"type\":\"t\"}");
    strcat(text, "]");
    TU_OK(tu_append(tu_store, id, text, INGEST_JSON, -1, NULL, NULL));
}

Test(store_changes, changes_sit_between_events_which_keep_their_positions)
{
    put("a", "claude");     /* (0, 1) */
    append("a", 2);         /* 1, 2 */
    put("b", "codex");      /* (2, 1) */
    del("a");               /* (2, 2): a's events 1 and 2 are gone */
    append("b", 1);         /* 3 */
    del("a");               /* nothing: already deleted */
    struct walk w;
    int more;
    walk(0, 0, 100, &w, &more);
    struct item want[] = {{0, 1, STORE_CHANGE_PUT, "a"}, {2, 1, STORE_CHANGE_PUT, "b"},
                          {2, 2, STORE_CHANGE_DELETE, "a"}, {3, 0, 0, "b"}};
    cr_assert_eq(w.n, 4);
    cr_assert_eq(more, 0);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(w.v[i].pos, want[i].pos, "item %zu", i);
        cr_assert_eq(w.v[i].index, want[i].index, "item %zu", i);
        cr_assert_eq(w.v[i].kind, want[i].kind, "item %zu", i);
        cr_assert_str_eq(w.v[i].session, want[i].session, "item %zu", i);
    }
    /* the plain feed is what it always was: b's event at position 3 */
    tu_events_t f = {0};
    tu_read_feed(tu_store, &f);
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.v[0].position, 3);
    tu_events_free(&f);
}

Test(store_changes, every_cursor_resumes_exactly_after_itself)
{
    put("a", "x");
    append("a", 3);
    put("a", "y");
    put("a", "z");
    append("b", 2);
    struct walk all;
    int more;
    walk(0, 0, 100, &all, &more);
    cr_assert_eq(all.n, 8);
    for (size_t i = 0; i < all.n; i++) {
        struct walk rest;
        walk(all.v[i].pos, all.v[i].index, 100, &rest, &more);
        cr_assert_eq(rest.n, all.n - i - 1, "after item %zu", i);
        for (size_t j = 0; j < rest.n; j++)
            cr_assert(rest.v[j].pos == all.v[i + 1 + j].pos &&
                      rest.v[j].index == all.v[i + 1 + j].index, "after item %zu", i);
    }
    /* pages of one item each go through all of them, 'more' until the last */
    uint64_t p = 0;
    uint32_t x = 0;
    for (size_t i = 0; i < all.n; i++) {
        struct walk one;
        walk(p, x, 1, &one, &more);
        cr_assert_eq(one.n, 1);
        cr_assert_eq(more, i + 1 < all.n, "page %zu", i);
        p = one.v[0].pos, x = one.v[0].index;
    }
}

Test(store_changes, an_append_that_changes_the_record_is_logged)
{
    TU_OK(tu_append(tu_store, "s", "{\"type\":\"t\",\"native_session_id\":\"n1\"}", INGEST_JSON,
                    -1, NULL, NULL));
    TU_OK(tu_append(tu_store, "s", "{\"type\":\"t\",\"native_session_id\":\"n2\"}", INGEST_JSON,
                    -1, NULL, NULL));
    TU_OK(tu_append(tu_store, "s", "{\"type\":\"t\"}", INGEST_JSON, -1, NULL, NULL));
    struct walk w;
    int more;
    walk(0, 0, 100, &w, &more);
    /* each of the first two set native_session_id (a field a PUT sets): logged after its
     * event; the third changed nothing the events do not carry */
    cr_assert_eq(w.n, 5);
    cr_assert_eq(w.v[1].kind, STORE_CHANGE_APPEND);
    cr_assert(w.v[1].pos == 1 && w.v[1].index == 1);
    cr_assert_eq(w.v[3].kind, STORE_CHANGE_APPEND);
    cr_assert(w.v[3].pos == 2 && w.v[3].index == 1);
    cr_assert(w.v[4].pos == 3 && w.v[4].kind == 0);
}
