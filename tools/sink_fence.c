/* sink_fence.c -- shard fences: what a sink must not copy once a shard moved away from
 * its cell (sink.h; docs/CLUSTER.md "Moving shards").
 *
 * `reel cluster move` records, in one PostgreSQL transaction that locks the old owner's
 * row of 'sink' (the row every page transaction of that cell's sink locks first), a row
 * of 'shard_fence' per moved shard: (cell, shard) fenced after the cursor (position,
 * change_index) at map epoch E, moved to cell T; and it bumps sink.fences so sinks read
 * the fences again. A page transaction of the old owner's sink then finds each item's
 * shard (the cluster's shard rule over its session id) and stops before the first item of
 * a fenced shard that comes after its fence: the items before it are written with the
 * checkpoint, that item and everything after it are not. The old owner's feed is then
 * stuck at that item, so under --ack=replica (the cell acknowledges an append once its
 * sink committed it) nothing the old owner accepted for the shard after the fence is ever
 * acknowledged, whether it was a zombie (stopped while the move ran, woken after) or a
 * write in flight the move did not wait for. The row lock orders the move's fence and the
 * sink's pages: a page committed before the fence was checked against the fences before
 * it, every page after it sees the fence.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "tools/cmds.h"
#include "tools/sink.h"

struct sink_fences {
    int64_t gen;       /* sink.fences when read */
    unsigned v;        /* the cluster's shards (0: no fence) */
    uint64_t *bounds;  /* cluster_bounds(v) */
    struct fence {
        int set;
        uint64_t position;
        uint32_t index;
        int64_t epoch;
        char to[CLUSTER_ID_MAX + 1];
    } *f;              /* v entries */
};

static const char fence_sql[] =
    "ALTER TABLE \"%1$s\".sink ADD COLUMN IF NOT EXISTS fences bigint NOT NULL DEFAULT 0;\n"
    "CREATE TABLE IF NOT EXISTS \"%1$s\".shard_fence (\n"
    "  cell text NOT NULL, shard integer NOT NULL, shards integer NOT NULL,\n"
    "  epoch bigint NOT NULL, position bigint NOT NULL, change_index bigint NOT NULL,\n"
    "  to_cell text NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),\n"
    "  PRIMARY KEY (cell, shard));\n";

int sink_fence_schema(PGconn *conn, const char *schema)
{
    store_buf_t sql = STORE_BUF_INIT;
    store_buf_printf(&sql, fence_sql, schema);
    PGresult *res = PQexec(conn, store_buf_cstr(&sql));
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        cmd_error("sink", "PostgreSQL: creating the shard fences: %s", PQresultErrorMessage(res));
    PQclear(res);
    store_buf_release(&sql);
    return ok ? 0 : -1;
}

void sink_fence_free(sink_pg_t *pg)
{
    if (!pg->fences)
        return;
    free(pg->fences->bounds);
    free(pg->fences->f);
    free(pg->fences);
    pg->fences = NULL;
}

static PGresult *query(sink_pg_t *pg, const char *fmt, const char *what)
{
    char sql[400];
    snprintf(sql, sizeof sql, fmt, pg->schema);
    const char *params[1] = {pg->cell};
    PGresult *res = PQexecParams(pg->conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        cmd_error("sink", "PostgreSQL: %s: %s", what, PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* Reads this cell's fences into pg->fences (generation 'gen'). 0 or -1. */
static int load(sink_pg_t *pg, int64_t gen)
{
    PGresult *res = query(pg, "SELECT shard, shards, epoch, position, change_index, to_cell "
                          "FROM \"%s\".shard_fence WHERE cell = $1", "reading the shard fences");
    if (!res)
        return -1;
    sink_fence_free(pg);
    struct sink_fences *fs = calloc(1, sizeof *fs);
    int n = PQntuples(res), rc = fs ? 0 : -1;
    if (fs)
        fs->gen = gen;
    for (int i = 0; i < n && !rc; i++) {
        unsigned shard = (unsigned)strtoul(PQgetvalue(res, i, 0), NULL, 10);
        unsigned v = (unsigned)strtoul(PQgetvalue(res, i, 1), NULL, 10);
        if (v < 1 || v > CLUSTER_V_MAX || shard >= v || (fs->v && v != fs->v)) {
            cmd_error("sink", "shard_fence: shard %u of %u shards does not fit the other fences",
                      shard, v);
            rc = -1;
            break;
        }
        if (!fs->v) {
            fs->v = v;
            fs->bounds = malloc(v * sizeof *fs->bounds);
            fs->f = calloc(v, sizeof *fs->f);
            if (!fs->bounds || !fs->f) {
                rc = -1;
                break;
            }
            cluster_bounds(v, fs->bounds);
        }
        struct fence *f = &fs->f[shard];
        f->set = 1;
        f->epoch = strtoll(PQgetvalue(res, i, 2), NULL, 10);
        f->position = strtoull(PQgetvalue(res, i, 3), NULL, 10);
        f->index = (uint32_t)strtoull(PQgetvalue(res, i, 4), NULL, 10);
        snprintf(f->to, sizeof f->to, "%s", PQgetvalue(res, i, 5));
    }
    PQclear(res);
    pg->fences = fs;
    if (rc) {
        sink_fence_free(pg);
        cmd_error("sink", "cannot hold the shard fences");
    }
    return rc;
}

/* 1 when item 'it' is of a fenced shard and after its fence ('*f' set). */
static int blocked(const struct sink_fences *fs, const sink_item_t *it, unsigned *shard,
                   const struct fence **f)
{
    static char key[CLUSTER_KEY_MAX + 1];
    size_t kn = cluster_key_session(it->session, strlen(it->session), key);
    *shard = cluster_shard_of(fs->bounds, fs->v, cluster_murmur2(key, kn));
    *f = &fs->f[*shard];
    if (!(*f)->set)
        return 0;
    return it->position > (*f)->position ||
           (it->position == (*f)->position && it->index > (*f)->index);
}

int sink_fence_cut(sink_pg_t *pg, const sink_item_t *items, size_t n, size_t *keep)
{
    *keep = n;
    PGresult *res = query(pg, "SELECT fences FROM \"%s\".sink WHERE cell = $1",
                          "reading the fence generation");
    if (!res)
        return -1;
    int64_t gen = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    if (gen == 0) /* never fenced (a move bumps it before any fence counts) */
        return 0;
    if ((!pg->fences || pg->fences->gen != gen) && load(pg, gen))
        return -1;
    const struct sink_fences *fs = pg->fences;
    if (!fs->v)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned shard;
        const struct fence *f;
        if (!blocked(fs, &items[i], &shard, &f))
            continue;
        *keep = i;
        snprintf(pg->fence_note, sizeof pg->fence_note,
                 "%s %llu%s%.0u of session '%.200s' is in shard %u, which moved to cell '%s' "
                 "at cluster map epoch %lld after position %llu.%u of this cell: not copied "
                 "(the old owner accepted it after the move fenced the shard)",
                 items[i].is_change ? "the change at" : "the event at position",
                 (unsigned long long)items[i].position, items[i].is_change ? "." : "",
                 items[i].index, items[i].session, shard, f->to, (long long)f->epoch,
                 (unsigned long long)f->position, f->index);
        return 0;
    }
    return 0;
}
