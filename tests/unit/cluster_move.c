/* cluster_move.c -- what `reel cluster move` builds on (docs/CLUSTER.md "Moving shards"):
 * maps with loading shards, written and read back; shard lists as typed; and the store's
 * copied positions (store_copied_add, read.skip_copied, docs/FORMAT.md section 20). The
 * move itself, against real cells, nginx and PostgreSQL, is tests/cluster/test_move.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "tests/unit/testutil.h"

static const char map_text[] =
    "{\"version\": 1, \"shards\": 8, \"epoch\": 4, \"cells\": [\n"
    " {\"id\": \"a\", \"address\": \"127.0.0.1:1\", \"shards\": [[0, 3]]},\n"
    " {\"id\": \"b\", \"address\": \"127.0.0.1:2\", \"shards\": [[4, 5], [7, 7]],"
    "  \"loading\": [[5, 5], [7, 7]]},\n"
    " {\"id\": \"c\", \"address\": \"127.0.0.1:3\", \"shards\": [[6, 6]]}]}\n";

Test(cluster_move, loading_shards_read_and_write_back)
{
    cluster_map_t *m, *back;
    char msg[512];
    TU_OK(cluster_map_parse(map_text, strlen(map_text), "t", &m, msg, sizeof msg));
    cr_assert_eq(m->loading[5], 1);
    cr_assert_eq(m->loading[7], 1);
    cr_assert_eq(m->loading[4], 0);
    cr_assert_eq(m->cells[1].n_shards, 3u);
    store_buf_t b = STORE_BUF_INIT;
    cluster_map_write(m, &b);
    TU_OK(cluster_map_parse((const char *)b.data, b.len, "back", &back, msg, sizeof msg));
    cr_assert_eq(back->epoch, 4u);
    cr_assert_eq(memcmp(back->owner, m->owner, 8 * sizeof *m->owner), 0);
    cr_assert_eq(memcmp(back->loading, m->loading, 8), 0);
    /* a changed copy: shard 0 to c, loading; counts follow */
    cluster_map_t *d = cluster_map_dup(m);
    cr_assert_not_null(d);
    d->owner[0] = 2, d->loading[0] = 1, d->epoch = 5;
    cluster_map_recount(d);
    cr_assert_eq(d->cells[0].n_shards, 3u);
    cr_assert_eq(d->cells[2].n_shards, 2u);
    store_buf_clear(&b);
    cluster_map_write(d, &b);
    cr_assert_not_null(strstr(store_buf_cstr(&b), "\"loading\": [[0, 0]]"), "%s",
                       store_buf_cstr(&b));
    store_buf_release(&b);
    cluster_map_free(d);
    cluster_map_free(back);
    cluster_map_free(m);
}

Test(cluster_move, loading_a_shard_of_another_cell_is_refused)
{
    const char *bad = "{\"version\": 1, \"shards\": 2, \"epoch\": 1, \"cells\": ["
                      "{\"id\": \"a\", \"address\": \"h:1\", \"shards\": [[0, 0]], "
                      "\"loading\": [[1, 1]]},"
                      "{\"id\": \"b\", \"address\": \"h:2\", \"shards\": [[1, 1]]}]}";
    cluster_map_t *m;
    char msg[512];
    cr_assert_eq(cluster_map_parse(bad, strlen(bad), "t", &m, msg, sizeof msg),
                 REEL_EINVALID_PARAMETER);
    cr_assert_not_null(strstr(msg, "cell 'a' is loading shard 1, which it does not own"), "%s",
                       msg);
}

Test(cluster_move, shard_lists)
{
    uint8_t set[16] = {0};
    char msg[256];
    TU_OK(cluster_shards_parse("0-2,5,9-9", 16, set, msg, sizeof msg));
    cr_assert(set[0] && set[1] && set[2] && !set[3] && set[5] && set[9] && !set[10]);
    const char *bad[] = {"", "3-1", "16", "1,,2", "1,", "a", "-1", "2-x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(set, 0, sizeof set);
        cr_assert_eq(cluster_shards_parse(bad[i], 16, set, msg, sizeof msg),
                     REEL_EINVALID_PARAMETER, "'%s' was taken", bad[i]);
    }
}

static size_t feed_count(store_t *s, int skip, uint64_t *passed)
{
    tu_events_t v = {0};
    store_read_t r;
    int more = 0;
    TU_OK(store_read_begin(s, &r));
    r.skip_copied = skip;
    TU_OK(store_feed_after(&r, 0, 1000, tu_collect_cb, &v, &more));
    *passed = r.passed;
    store_read_end(&r);
    size_t n = v.n;
    tu_events_free(&v);
    return n;
}

Test(cluster_move, copied_positions_are_passed_over_by_a_feed_that_asks)
{
    char dir[TU_PATH_MAX];
    tu_watchdog(60);
    tu_tmpdir(dir);
    store_t *s = tu_open(dir, 8u << 20, 1);
    tu_result_t res;
    for (int i = 0; i < 10; i++)
        TU_OK(tu_append(s, i % 2 ? "x" : "y", "{\"type\":\"t\"}\n", INGEST_NDJSON, -1, &res,
                        NULL));
    uint64_t ranges[] = {5, 6, 2, 3, 4, 4, 9, 9}; /* out of order, adjacent: merged */
    TU_OK(store_copied_add(s, ranges, 4));
    uint64_t passed, n_ranges, spans;
    cr_assert_eq(feed_count(s, 0, &passed), 10u);
    cr_assert_eq(feed_count(s, 1, &passed), 4u);
    cr_assert_eq(passed, 6u);
    store_read_t r;
    TU_OK(store_read_begin(s, &r));
    TU_OK(store_copied_count(&r, &n_ranges, &spans));
    store_read_end(&r);
    cr_assert_eq(n_ranges, 2u); /* [2, 6] and [9, 9] */
    cr_assert_eq(spans, 6u);
    uint64_t zero[] = {0, 3};
    cr_assert_eq(store_copied_add(s, zero, 1), REEL_EINVALID_PARAMETER);
    store_close(s);
    s = tu_open(dir, 8u << 20, 1); /* durable */
    cr_assert_eq(feed_count(s, 1, &passed), 4u);
    store_close(s);
    tu_rmrf(dir);
}
