/* cluster_restore.c -- `reel cluster restore --cell ID --dsn DSN --data DIR`: a lost
 * cell's data directory rebuilt from the tables of `reel sink postgres`
 * (cluster/pgload.h, docs/CLUSTER.md "Restore").
 *
 * All or nothing: the store is written into DIR.partial (tools/partial.c) with sync off
 * and renamed to DIR only after everything is in and fsynced, so DIR is absent or whole.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/pgload.h"
#include "tools/cmds.h"

static const char about[] =
    "Rebuilds the data directory of cell ID from PostgreSQL, from the tables `reel sink\n"
    "postgres --cell ID` wrote (docs/CLUSTER.md \"Restore\"): every session the tables hold\n"
    "with the same sequences, positions, event ids, times, bodies and chain hashes, the\n"
    "session records (deleted sessions, trims, metadata, versions, usage) and the change log,\n"
    "read in one snapshot. Every chain is checked while loading; a hash that does not follow\n"
    "stops the restore naming the session and sequence. The new store's positions go on after\n"
    "the sink's checkpoint, so the cell's sink, started again with the same --cell, resumes\n"
    "where PostgreSQL is. `reel verify` passes on the result.\n"
    "\n"
    "DIR must not exist or be empty. The store is written to DIR.partial and renamed to DIR\n"
    "once complete and synced: interrupted, nothing is left in DIR.\n"
    "\n"
    "Not in the tables, so not restored: durable consumers' cursors and Durable Streams\n"
    "subscriptions, API tokens (a file of their own), the store secret (tenants' sealed\n"
    "cursors must be asked again), compression dictionaries (values are compressed again),\n"
    "the cluster epoch (the next map sets it), and what the sink had not copied when the\n"
    "machine was lost (with --ack=local: at most the sink's lag).\n";

static void on_progress(void *arg, const cluster_pgload_stats_t *st)
{
    cmd_progress(arg, st->events, st->events_total, st->body_bytes);
}

static int restore(const char *prog, const char *dsn, const char *schema, const char *cell,
                   const char *dir, int show)
{
    if (cmd_check_new_dir(prog, "--data ", dir, "restore writes a new data directory: move the "
                          "old one away first"))
        return CMD_FAIL;
    cmd_partial_t out;
    if (cmd_partial_begin(&out, prog, dir, 1))
        return CMD_FAIL;
    if (mkdir(out.tmp, 0700) && errno != EEXIST) {
        cmd_error(prog, "cannot make '%s': %s", out.tmp, strerror(errno));
        return CMD_FAIL;
    }
    store_options_t o = {.no_sync = 1}; /* one fsync at the end (cmd_partial_commit) */
    store_t *s = cmd_open_store_opt(prog, out.tmp, &o);
    if (!s) {
        cmd_partial_abort(&out);
        return CMD_FAIL;
    }
    cmd_progress_t pr;
    cmd_progress_init(&pr, prog, show ? 1 : -1);
    cluster_pgload_opt_t lo = {.dsn = dsn, .schema = schema, .cell = cell, .keep_positions = 1,
                               .progress = on_progress, .progress_arg = &pr};
    cluster_pgload_stats_t st;
    char err[600];
    int rc = cluster_pgload(s, &lo, &st, err, sizeof err);
    store_verify_report_t rep = {0};
    if (!rc && (rc = store_verify(s, NULL, 0, &rep, NULL, NULL)) == REEL_OK && !rep.ok) {
        snprintf(err, sizeof err, "the restored store fails verify: %s at session '%.200s' "
                 "sequence %llu", rep.problem, rep.session, (unsigned long long)rep.sequence);
        rc = REEL_ECORRUPT;
    }
    store_close(s);
    if (rc) {
        cmd_error(prog, "%s", err[0] ? err : reel_strerror(rc));
        cmd_partial_abort(&out);
        return CMD_FAIL;
    }
    if (cmd_partial_commit(&out))
        return CMD_FAIL;
    double el = cmd_progress_elapsed(&pr);
    printf("restored cell %s into %s: %llu sessions (%llu deleted, %llu trimmed), %llu events "
           "(%llu redacted after the fact), %llu changes, %.1f MB of bodies in %.2fs "
           "(%.0f events/s); positions up to %llu, sink checkpoint %llu%s%.0u (epoch %lld); "
           "verify ok\n", cell, dir, (unsigned long long)st.sessions,
           (unsigned long long)st.deleted, (unsigned long long)st.trimmed,
           (unsigned long long)st.events, (unsigned long long)st.redacted,
           (unsigned long long)st.changes, (double)st.body_bytes / 1e6, el,
           el > 0 ? (double)st.events / el : 0.0, (unsigned long long)st.last_position,
           (unsigned long long)st.checkpoint, st.checkpoint_index ? "." : "",
           st.checkpoint_index, (long long)st.sink_epoch);
    return CMD_OK;
}

int cmd_cluster_restore(int argc, char **argv)
{
    const char *prog = "cluster restore", *dsn = NULL, *schema = "reel", *cell = NULL,
               *data = NULL;
    int show = 0;
    const opt_t rows[] = {
        {.name = "cell", .type = OPT_STRING, .arg = "ID", .env = "REEL_CELL", .dest = &cell,
         .required = 1, .help = "the cell to restore: the sink's --cell (the map's cell id)"},
        {.name = "dsn", .type = OPT_STRING, .arg = "DSN", .env = "REEL_SINK_DSN", .dest = &dsn,
         .required = 1, .help = "PostgreSQL connection string (libpq), as the sink's --dsn"},
        {.name = "schema", .type = OPT_STRING, .arg = "SCHEMA", .env = "REEL_SINK_SCHEMA",
         .dest = &schema, .help = "PostgreSQL schema of the sink's tables", .def = "reel"},
        {.name = "data", .type = OPT_STRING, .arg = "DIR", .dest = &data, .required = 1,
         .help = "the data directory to write (must not exist, or be empty)"},
        CMD_OPT_PROGRESS(&show),
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = prog, .about = about, .opts = rows};
    int st = opt_parse(&cmd, argc, argv, NULL);
    if (st != OPT_GO)
        return st;
    if (!cell || !dsn || !data) {
        cmd_error(prog, "--cell ID (which cell), --dsn DSN (the sink's PostgreSQL) and --data "
                  "DIR (where to write) are needed (see --help)");
        return CMD_USAGE;
    }
    return restore(prog, dsn, schema, cell, data, show);
}
