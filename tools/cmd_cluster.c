/* cmd_cluster.c -- `reel cluster init|nginx-conf|shard`: the cluster map and what follows
 * from it (cluster/cluster.h, docs/CLUSTER.md).
 *
 * init prints a new map with the shards split evenly over the cells; nginx-conf prints
 * the nginx configuration that routes by the map; shard prints a session's (or a
 * stream's) routing key, hash, shard and owner, the numbers nginx computes, so an operator
 * or a test can check a route without sending a request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "store/store.h"
#include "tools/cmds.h"

static const char about[] =
    "Cells and virtual shards behind nginx (docs/CLUSTER.md):\n"
    "  init ID=HOST:PORT... [--shards V] [--epoch E] [--spares N]\n"
    "      prints a new cluster map (JSON): V shards (default 4096, at most 10000) in\n"
    "      even contiguous ranges over the cells, the last N cells spares with none\n"
    "  nginx-conf MAP [--listen HOST:PORT]\n"
    "      prints the nginx configuration routing by MAP: an upstream per cell, the\n"
    "      shard of each request by split_clients, no fail-over, SSE unbuffered; with\n"
    "      --listen a server block too, else only the http-level blocks\n"
    "  shard ID [--map MAP | --shards V] [--stream]\n"
    "      prints the routing key, hash, shard and (with --map) owner of session ID\n"
    "      (with --stream: of the Durable Streams path ID)\n"
    "  events | sessions --map MAP\n"
    "      every event (vector cursor) or session record of every cell (reel cluster\n"
    "      events --help)\n"
    "  restore --cell ID --dsn DSN --data DIR\n"
    "      rebuilds a lost cell's data directory from PostgreSQL (see restore --help)\n"
    "  move SHARDS --to CELL --map MAP --dsn DSN [options]\n"
    "      moves shards to another cell under load, through PostgreSQL, fencing the old\n"
    "      owner (reel cluster move --help; docs/CLUSTER.md \"Moving shards\")\n"
    "A cell runs `reel serve --cluster-map MAP --cell ID`.\n";

/* init: the shards in even contiguous ranges, in cell order. */
static int init(const char *prog, char **cells, int n, unsigned long long v,
                unsigned long long epoch, unsigned long long spares)
{
    if (n < 1 || spares >= (unsigned long long)n) {
        cmd_error(prog, "init needs at least one cell that is not a spare (ID=HOST:PORT)");
        return CMD_USAGE;
    }
    unsigned owners = (unsigned)(n - (int)spares);
    if (owners > v) {
        cmd_error(prog, "%u cells cannot share %llu shards", owners, v);
        return CMD_USAGE;
    }
    store_buf_t b = STORE_BUF_INIT;
    store_buf_printf(&b, "{\"version\": %d, \"shards\": %llu, \"epoch\": %llu, \"cells\": [",
                     CLUSTER_MAP_VERSION, v, epoch);
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(cells[i], '=');
        if (!eq || eq == cells[i] || eq - cells[i] > CLUSTER_ID_MAX || strlen(eq + 1) > CLUSTER_ADDR_MAX) {
            cmd_error(prog, "a cell is ID=HOST:PORT, not '%.100s'", cells[i]);
            store_buf_release(&b);
            return CMD_USAGE;
        }
        unsigned lo = (unsigned)((uint64_t)i * v / owners), hi = (unsigned)((uint64_t)(i + 1) * v / owners);
        char range[64] = "";
        if ((unsigned)i < owners)
            snprintf(range, sizeof range, "[%u, %u]", lo, hi - 1);
        store_buf_printf(&b, "%s\n  {\"id\": \"%.*s\", \"address\": \"%s\", \"shards\": [%s]}",
                         i ? "," : "", (int)(eq - cells[i]), cells[i], eq + 1, range);
    }
    store_buf_puts(&b, "\n]}\n");
    /* Checked by the one parser, so init never prints a map serve would refuse. */
    cluster_map_t *m;
    char msg[512];
    if (cluster_map_parse((const char *)b.data, b.len, "(new)", &m, msg, sizeof msg)) {
        cmd_error(prog, "%s", msg);
        store_buf_release(&b);
        return CMD_USAGE;
    }
    cluster_map_free(m);
    fwrite(b.data, 1, b.len, stdout);
    store_buf_release(&b);
    return CMD_OK;
}

static cluster_map_t *load(const char *prog, const char *path)
{
    cluster_map_t *m;
    char msg[512];
    if (cluster_map_load(path, &m, msg, sizeof msg)) {
        cmd_error(prog, "%s", msg);
        return NULL;
    }
    return m;
}

static int nginx_conf(const char *prog, const char *path, const char *listen)
{
    cluster_map_t *m = load(prog, path);
    if (!m)
        return CMD_FAIL;
    cluster_nginx_opt_t o = {.listen = listen, .map_path = path, .keepalive = 64,
                             .read_timeout_s = 3600};
    int rc = cluster_nginx_conf(m, &o, stdout);
    cluster_map_free(m);
    if (rc)
        cmd_error(prog, "cannot write the configuration");
    return rc ? CMD_FAIL : CMD_OK;
}

static int shard(const char *prog, const char *id, const char *path, unsigned long long v,
                 int stream)
{
    size_t n = strlen(id);
    if (stream ? n == 0 || n > 512 : !store_session_id_valid(id, n)) {
        cmd_error(prog, "'%.100s' is not a valid %s", id, stream ? "stream path" : "session id");
        return CMD_USAGE;
    }
    cluster_map_t *m = path ? load(prog, path) : NULL;
    if (path && !m)
        return CMD_FAIL;
    static char key[CLUSTER_KEY_MAX + 1];
    size_t kn = stream ? cluster_key_stream(id, n, key) : cluster_key_session(id, n, key);
    uint32_t h = cluster_murmur2(key, kn);
    unsigned vv = m ? m->v : (unsigned)v;
    uint64_t *bounds = m ? NULL : malloc(vv * sizeof *bounds);
    if (!m && !bounds) {
        cmd_error(prog, "out of memory");
        return CMD_FAIL;
    }
    if (!m)
        cluster_bounds(vv, bounds);
    unsigned s = cluster_shard_of(m ? m->bounds : bounds, vv, h);
    printf("key=%s hash=%lu shard=%u shards=%u", key, (unsigned long)h, s, vv);
    if (m) {
        const cluster_cell_t *c = &m->cells[m->owner[s]];
        printf(" cell=%s address=%s epoch=%llu", c->id, c->address, (unsigned long long)m->epoch);
    }
    putchar('\n');
    free(bounds);
    cluster_map_free(m);
    return CMD_OK;
}

int cmd_cluster(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "events") || !strcmp(argv[1], "sessions")))
        return cmd_cluster_reads(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "restore")) /* a table of options of its own */
        return cmd_cluster_restore(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "move")) /* its own options (cluster_move.c) */
        return cmd_cluster_move(argc - 1, argv + 1);
    const char *prog = "cluster", *map = NULL, *listen = NULL;
    unsigned long long v = CLUSTER_V_DEFAULT, epoch = 1, spares = 0;
    int stream = 0;
    const opt_t rows[] = {
        {.name = "shards", .type = OPT_U64, .arg = "V", .dest = &v, .min = 1,
         .max = CLUSTER_V_MAX, .help = "init, shard: the number of virtual shards", .def = "4096"},
        {.name = "epoch", .type = OPT_U64, .arg = "E", .dest = &epoch, .min = 1,
         .max = 1ull << 53, .help = "init: the map's epoch", .def = "1"},
        {.name = "spares", .type = OPT_U64, .arg = "N", .dest = &spares, .max = 1000,
         .help = "init: the last N cells own no shards yet", .def = "0"},
        {.name = "listen", .type = OPT_STRING, .arg = "HOST:PORT", .dest = &listen,
         .help = "nginx-conf: also write a server block listening there"},
        {.name = "map", .type = OPT_STRING, .arg = "MAP", .env = "REEL_CLUSTER_MAP", .dest = &map,
         .help = "shard: the cluster map (names the owner; its V wins over --shards)"},
        {.name = "stream", .type = OPT_FLAG, .dest = &stream,
         .help = "shard: ID is a Durable Streams path (/v1/stream/ID)"},
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = prog, .args = "init ID=HOST:PORT... | nginx-conf MAP | shard ID | events | sessions | restore | move",
                           .about = about, .opts = rows};
    int nargs, st = opt_parse(&cmd, argc, argv, &nargs);
    if (st != OPT_GO)
        return st;
    const char *verb = nargs ? argv[0] : "";
    if (!strcmp(verb, "init"))
        return init(prog, argv + 1, nargs - 1, v, epoch, spares);
    if (!strcmp(verb, "nginx-conf") && nargs == 2)
        return nginx_conf(prog, argv[1], listen);
    if (!strcmp(verb, "shard") && nargs == 2)
        return shard(prog, argv[1], map, v, stream);
    cmd_error(prog, "expected init ID=HOST:PORT..., nginx-conf MAP, shard ID, restore, events or "
                    "sessions (see --help)");
    return CMD_USAGE;
}
