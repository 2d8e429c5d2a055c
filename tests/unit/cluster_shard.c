/* cluster_shard.c -- the shard rule (cluster/cluster.h, docs/CLUSTER.md "Shards"), the
 * cluster map's checks, and the cluster epoch kept in the store (store_epoch_*). The
 * routing against a real nginx is tests/cluster/; these pin the numbers the document's
 * worked example shows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "tests/unit/testutil.h"

/* docs/CLUSTER.md's worked example: the key "s-00042", and the empty string. */
Test(cluster_shard, murmur2_matches_the_documented_values)
{
    cr_assert_eq(cluster_murmur2("", 0), 0u);
    cr_assert_eq(cluster_murmur2("hello", 5), 3848350155u);
    /* every tail length (len % 4 = 0..3) */
    cr_assert_neq(cluster_murmur2("abcd", 4), cluster_murmur2("abc", 3));
    cr_assert_neq(cluster_murmur2("abcde", 5), cluster_murmur2("abcd", 4));
}

Test(cluster_shard, bounds_are_split_clients_sums)
{
    static uint64_t b[CLUSTER_V_DEFAULT];
    cluster_bounds(CLUSTER_V_DEFAULT, b);
    /* shard 0 has 2 hundredths of a percent: floor(2 * 0xffffffff / 10000) */
    cr_assert_eq(b[0], 858993u);
    cr_assert_eq(b[CLUSTER_V_DEFAULT - 1], 1ull << 32);
    for (unsigned i = 1; i < CLUSTER_V_DEFAULT; i++)
        cr_assert_gt(b[i], b[i - 1]);
    cr_assert_eq(cluster_shard_of(b, CLUSTER_V_DEFAULT, 0), 0u);
    cr_assert_eq(cluster_shard_of(b, CLUSTER_V_DEFAULT, 858992u), 0u);
    cr_assert_eq(cluster_shard_of(b, CLUSTER_V_DEFAULT, 858993u), 1u);
    cr_assert_eq(cluster_shard_of(b, CLUSTER_V_DEFAULT, 0xffffffffu), CLUSTER_V_DEFAULT - 1);
    cr_assert_eq(cluster_shard_of(b, CLUSTER_V_DEFAULT, 3848350155u), 3670u);
    uint64_t one;
    cluster_bounds(1, &one);
    cr_assert_eq(cluster_shard_of(&one, 1, 123), 0u);
}

static const char *key_s(const char *id)
{
    static char k[CLUSTER_KEY_MAX + 1];
    cluster_key_session(id, strlen(id), k);
    return k;
}

Test(cluster_shard, keys_are_canonical_percent_encoding)
{
    cr_assert_str_eq(key_s("s-00042"), "s-00042");
    cr_assert_str_eq(key_s("team/a b:~"), "team%2Fa%20b%3A~");
    cr_assert_str_eq(key_s("\xc3\xa9"), "%C3%A9");
    /* a stream's session has its stream's key: the path, '/' kept */
    cr_assert_str_eq(key_s("ds:chat~2F1"), "chat/1");
    cr_assert_str_eq(key_s("ds:chat~2F1:7"), "chat/1");
    cr_assert_str_eq(key_s("ds:a~7Eb"), "a~b");
    char k[CLUSTER_KEY_MAX + 1];
    cluster_key_stream("chat/1", 6, k);
    cr_assert_str_eq(k, "chat/1");
    /* not a stream's form: the id itself */
    cr_assert_str_eq(key_s("ds:"), "ds%3A");
    cr_assert_str_eq(key_s("ds:a:b"), "ds%3Aa%3Ab");
    cr_assert_str_eq(key_s("ds:a~2"), "ds%3Aa~2");
    cr_assert_str_eq(key_s("ds:a b"), "ds%3Aa%20b");
}

static int parse(const char *json, cluster_map_t **m, char *msg)
{
    return cluster_map_parse(json, strlen(json), "t.json", m, msg, 512);
}

Test(cluster_shard, map_gives_every_shard_one_owner)
{
    cluster_map_t *m;
    char msg[512];
    TU_OK(parse("{\"version\":1,\"shards\":8,\"epoch\":3,\"cells\":["
                "{\"id\":\"a\",\"address\":\"127.0.0.1:1\",\"shards\":[[0,3]]},"
                "{\"id\":\"b\",\"address\":\"127.0.0.1:2\",\"shards\":[[4,6],[7,7]]},"
                "{\"id\":\"spare\",\"address\":\"127.0.0.1:3\",\"shards\":[]}]}", &m, msg));
    cr_assert_eq(m->v, 8u);
    cr_assert_eq(m->epoch, 3u);
    cr_assert_eq(m->owner[3], 0);
    cr_assert_eq(m->owner[7], 1);
    cr_assert_eq(m->cells[2].n_shards, 0u);
    cr_assert_eq(cluster_map_cell(m, "b"), 1);
    cr_assert_eq(cluster_map_cell(m, "c"), -1);
    cluster_map_free(m);
    static const struct {
        const char *json, *why;
    } bad[] = {
        {"{\"version\":1,\"shards\":4,\"epoch\":1,\"cells\":[{\"id\":\"a\",\"address\":\"h:1\","
         "\"shards\":[[0,2]]}]}", "shard 3 has no cell"},
        {"{\"version\":1,\"shards\":4,\"epoch\":1,\"cells\":[{\"id\":\"a\",\"address\":\"h:1\","
         "\"shards\":[[0,3]]},{\"id\":\"b\",\"address\":\"h:2\",\"shards\":[[3,3]]}]}",
         "shard 3 is given to both 'a' and 'b'"},
        {"{\"version\":1,\"shards\":4,\"epoch\":0,\"cells\":[]}", "\"epoch\""},
        {"{\"version\":1,\"shards\":10001,\"epoch\":1,\"cells\":[]}", "\"shards\""},
        {"{\"version\":1,\"shards\":4,\"epoch\":1,\"cells\":[{\"id\":\"a b\",\"address\":\"h:1\","
         "\"shards\":[[0,3]]}]}", "\"id\""},
        {"{\"version\":1,\"shards\":4,\"epoch\":1,\"cells\":[{\"id\":\"a\",\"address\":\"h;1\","
         "\"shards\":[[0,3]]}]}", "\"address\""},
        {"{\"version\":1,\"shards\":4,\"epoch\":1,\"cells\":[{\"id\":\"a\",\"address\":\"h:1\","
         "\"shards\":[[2,1]]}]}", "not [first, last]"},
        {"{\"version\":2,\"shards\":4,\"epoch\":1,\"cells\":[]}", "\"version\""},
        {"[", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msg[0] = 0;
        cr_assert_eq(parse(bad[i].json, &m, msg), REEL_EINVALID_PARAMETER, "%zu", i);
        cr_assert_null(m);
        cr_assert(strstr(msg, bad[i].why) && strstr(msg, "t.json"), "%zu: %s", i, msg);
    }
}

Test(cluster_shard, nginx_conf_has_one_split_line_per_shard)
{
    cluster_map_t *m;
    char msg[512];
    TU_OK(parse("{\"version\":1,\"shards\":3,\"epoch\":1,\"cells\":["
                "{\"id\":\"a\",\"address\":\"127.0.0.1:1\",\"shards\":[[0,1]]},"
                "{\"id\":\"b\",\"address\":\"127.0.0.1:2\",\"shards\":[[2,2]]}]}", &m, msg));
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cluster_nginx_opt_t o = {.listen = "127.0.0.1:8080", .keepalive = 8, .read_timeout_s = 60};
    TU_OK(cluster_nginx_conf(m, &o, f));
    fclose(f);
    cr_assert(strstr(text, "    33.33%  reel_cell_a;  # shard 0\n"), "%s", text);
    cr_assert(strstr(text, "    33.33%  reel_cell_a;  # shard 1\n"), "%s", text);
    cr_assert(strstr(text, "    *      reel_cell_b;  # shard 2\n"), "%s", text);
    cr_assert(strstr(text, "server 127.0.0.1:2 max_fails=0;"));
    cr_assert(strstr(text, "proxy_next_upstream off;"));
    cr_assert(strstr(text, "proxy_buffering off;"));
    cr_assert(strstr(text, "listen 127.0.0.1:8080;"));
    free(text);
    cluster_map_free(m);
}

/* ---- the epoch in the store ---- */

Test(cluster_shard, store_epoch_only_grows_and_appends_go_on)
{
    char dir[TU_PATH_MAX];
    tu_watchdog(60);
    tu_tmpdir(dir);
    for (int no_sync = 0; no_sync < 2; no_sync++) {
        tu_rmrf(dir);
        tu_tmpdir(dir);
        store_t *s = tu_open(dir, 8u << 20, no_sync); /* a new store: issue 18's first bug */
        uint64_t e = 9, stored = 0;
        TU_OK(store_epoch_get(s, &e));
        cr_assert_eq(e, 0u);
        TU_OK(store_epoch_raise(s, 2, &stored));
        cr_assert_eq(stored, 2u);
        TU_OK(store_epoch_raise(s, 2, &stored)); /* the same: nothing written */
        cr_assert_eq(store_epoch_raise(s, 1, &stored), REEL_ECONFLICT);
        cr_assert_eq(stored, 2u);
        tu_result_t res;
        TU_OK(tu_append(s, "x", "{\"type\":\"t\"}\n", INGEST_NDJSON, -1, &res, NULL));
        store_close(s);
        s = tu_open(dir, 8u << 20, no_sync);
        TU_OK(store_epoch_get(s, &e));
        cr_assert_eq(e, 2u);
        TU_OK(store_epoch_raise(s, 5, &stored));
        TU_OK(tu_append(s, "x", "{\"type\":\"t\"}\n", INGEST_NDJSON, -1, &res, NULL));
        cr_assert_eq(res.last_sequence, 2u);
        store_close(s);
    }
    tu_rmrf(dir);
}
