/* cluster_move.c -- `reel cluster move SHARDS --to CELL`: shards move between cells while
 * they are written, with one writer at every moment and nothing acknowledged lost
 * (docs/CLUSTER.md "Moving shards"). Also `reel cluster push MAP`: a map to every cell.
 *
 * PostgreSQL (the sink's tables) is the copy the shards move through and the fencing
 * authority. The steps, each printed as it starts:
 *
 *   1 check     the map, the shards, the cells that answer (their epoch), the sink rows
 *   2 copy      the new owner copies the shards' sessions from PostgreSQL while the old
 *               owners still serve them (POST /v1/cluster/load with "precopy": in its own
 *               process, on a job thread, through its one committer): no pause
 *   3 hand over map epoch E+1 gives the shards to the new owner as "loading" (it answers
 *               503 for them); pushed to the new owner first, then to the old owners, each
 *               of which installs it (421 from then on), waits for its writes admitted under
 *               E and answers the last cursor of its log. Writes to the shards pause here
 *   4 fence     one PostgreSQL transaction per old owner, under its sink row's lock: its
 *               shards are fenced after that cursor (or, for an old owner that did not
 *               answer, after its sink's checkpoint): its sink never copies anything of
 *               them written later (tools/sink_fence.c)
 *   5 route     the map file, the other cells, nginx (configuration and reload)
 *   6 catch up  each old owner's sink reaches its fence
 *   7 load      the new owner copies what the copy ahead did not have (the loader catches
 *               up), and its own sink copies that into PostgreSQL
 *   8 activate  map epoch E+2 without "loading": pushed to the new owner first (writes go
 *               on), then the others; the map file and nginx again
 *
 * A move that stops after step 3 leaves the shards loading; --resume runs steps 6 to 8
 * again from the map file and the fences in PostgreSQL.
 *
 * An old owner that cannot be reached may be a zombie (stopped, partitioned) that wakes
 * up later with the old map and accepts writes. Under --ack replica it cannot acknowledge
 * them (its sink stops at the fence), so the move goes on; under --ack local it would
 * acknowledge them locally and it may hold acknowledged writes its sink had not copied:
 * the move refuses unless --force, and says what is lost.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cluster_move.h"
#include "tools/cmds.h"
#include "tools/sink.h"

/* ---- the steps ---- */

/* Step 1: the shards, the cells that answer, the sink rows. 0 or an exit status. */
static int check(move_t *mv, answer_t *a)
{
    const settings_t *st = mv->st;
    cluster_map_t *m = mv->m;
    for (unsigned s = 0; s < m->v; s++) {
        if (!mv->set[s])
            continue;
        if (m->loading[s]) {
            cmd_error(PROG, "shard %u is still loading into '%s' (a move that did not finish: "
                      "docs/CLUSTER.md \"Moving shards\")", s, m->cells[m->owner[s]].id);
            return CMD_USAGE;
        }
        if (m->owner[s] == mv->to) {
            cmd_error(PROG, "shard %u already belongs to '%s'", s, st->to);
            return CMD_USAGE;
        }
        mv->from[s] = m->owner[s];
        mv->cs[m->owner[s]].old_owner = 1;
        mv->n_shards++;
    }
    for (size_t i = 0; i < m->n_cells; i++) {
        cell_state_t *c = &mv->cs[i];
        c->answered = !move_call(mv, i, "GET", "/v1/health", NULL, 0, (long)st->cell_timeout_ms, a) &&
                      a->status == 200;
        c->epoch = strtoull(a->epoch, NULL, 10);
        if (c->answered && c->epoch > m->epoch) {
            cmd_error(PROG, "cell '%s' serves under epoch %llu, newer than %s's %llu: the map "
                      "file is out of date", m->cells[i].id, (unsigned long long)c->epoch,
                      st->map, (unsigned long long)m->epoch);
            return CMD_FAIL;
        }
        uint64_t pos;
        uint32_t idx;
        int has = move_checkpoint(mv, i, 0, &pos, &idx);
        if (has < 0)
            return CMD_FAIL;
        if (c->old_owner && !has) {
            cmd_error(PROG, "cell '%s' has no sink in PostgreSQL (schema %s): run `reel sink "
                      "postgres --cell %s` first; its shards move through the sink's copy",
                      m->cells[i].id, st->schema, m->cells[i].id);
            return CMD_FAIL;
        }
        if (c->old_owner && !c->answered && !st->ack && !st->force) {
            cmd_error(PROG, "cell '%s' does not answer (%s). Under --ack local it acknowledged "
                      "writes its sink may not have copied yet (PostgreSQL holds its log up to "
                      "position %llu): moving its shards loses those, and if it is only "
                      "stopped it would go on acknowledging writes of them. --force moves them "
                      "all the same", m->cells[i].id, a->error[0] ? a->error : "not 200",
                      (unsigned long long)pos);
            return CMD_FAIL;
        }
        if (c->old_owner)
            move_step(mv, 1, "old owner '%s' %s; its sink is at %llu.%u", m->cells[i].id,
                 c->answered ? "answers" : "DOES NOT ANSWER (fenced at its sink's checkpoint)",
                 (unsigned long long)pos, idx);
    }
    if (!mv->cs[mv->to].answered) {
        cmd_error(PROG, "the new owner '%s' does not answer at %s", st->to,
                  m->cells[mv->to].address);
        return CMD_FAIL;
    }
    return 0;
}

/* Waits until the new owner's sink copied what it loaded (no sink: a warning, once). */
static int new_owner_sink(move_t *mv, int n)
{
    uint64_t pos;
    uint32_t idx;
    int has = move_checkpoint(mv, (size_t)mv->to, 0, &pos, &idx);
    if (has < 0)
        return CMD_FAIL;
    if (!has) {
        if (n == 7)
            fprintf(stderr, "reel cluster move: WARNING: cell '%s' has no sink: PostgreSQL "
                    "will not hold what it gets\n", mv->st->to);
        return 0;
    }
    move_step(mv, n, "waiting for the sink of '%s' to reach %llu", mv->st->to,
              (unsigned long long)mv->cs[mv->to].position);
    return move_catch_up(mv, (size_t)mv->to) ? CMD_FAIL : 0;
}

/* Step 2: the new owner copies the shards' sessions while the old owners still serve
 * them, and its sink copies the copies; again while a round found more than
 * AHEAD_ENOUGH events new since the last one (at most --ahead-rounds), so the copy after
 * the hand-over only catches up the last moments, which is all writes wait for. */
#define AHEAD_ENOUGH 500

static int copy_ahead(move_t *mv, answer_t *a)
{
    for (unsigned long long round = 1; round <= mv->st->ahead_rounds; round++) {
        uint64_t before = mv->events_ahead;
        for (size_t i = 0; i < mv->m->n_cells; i++)
            if (mv->cs[i].old_owner) {
                move_step(mv, 2, "'%s' copies the sessions of '%s' ahead, from PostgreSQL "
                          "(round %llu, no pause)", mv->st->to, mv->m->cells[i].id, round);
                if (move_load(mv, i, 1, a))
                    return CMD_FAIL;
            }
        if (new_owner_sink(mv, 2))
            return CMD_FAIL;
        if (mv->events_ahead - before <= AHEAD_ENOUGH)
            break;
    }
    return 0;
}

/* Step 3: epoch E+1 ('text') to the new owner (503 for the shards from now on), then to
 * each old owner (421, after its writes in flight). */
static int hand_over(move_t *mv, uint64_t e1, const store_buf_t *text, uint8_t *done, answer_t *a)
{
    cluster_map_t *m = mv->m;
    move_step(mv, 3, "epoch %llu: %u shards to '%s' (loading), old owners hand over",
         (unsigned long long)e1, mv->n_shards, mv->st->to);
    mv->pause_start = move_now_s();
    int p = move_push(mv, (size_t)mv->to, text, a);
    done[mv->to] = 1;
    if (p != 1) {
        if (p == 0)
            cmd_error(PROG, "the new owner did not take the map: %s", a->error);
        return CMD_FAIL;
    }
    for (size_t i = 0; i < m->n_cells; i++) {
        if (!mv->cs[i].old_owner)
            continue;
        p = move_push(mv, i, text, a);
        done[i] = 1;
        if (p < 0)
            return CMD_FAIL;
        mv->cs[i].handed = p == 1;
        if (p == 0)
            move_step(mv, 3, "old owner '%s' did not take the map (%s): fenced at its sink's "
                 "checkpoint", m->cells[i].id, a->error);
        else
            move_step(mv, 3, "old owner '%s' handed over at %llu.%u", m->cells[i].id,
                 (unsigned long long)mv->cs[i].position, mv->cs[i].index);
    }
    return 0;
}

/* Steps 6 to 8: the old owners' sinks reach their fences, the new owner loads what the
 * copy ahead did not have, its sink copies it, map epoch 'e2' serves the shards. */
static int finish(move_t *mv, uint64_t e2, answer_t *a)
{
    cluster_map_t *m = mv->m;
    for (size_t i = 0; i < m->n_cells; i++)
        if (mv->cs[i].old_owner) {
            move_step(mv, 6, "waiting for the sink of '%s' to reach %llu.%u", m->cells[i].id,
                 (unsigned long long)mv->cs[i].position, mv->cs[i].index);
            if (move_catch_up(mv, i))
                return CMD_FAIL;
        }
    for (size_t i = 0; i < m->n_cells; i++)
        if (mv->cs[i].old_owner) {
            move_step(mv, 7, "'%s' loads the rest of the sessions of '%s' from PostgreSQL",
                 mv->st->to, m->cells[i].id);
            if (move_load(mv, i, 0, a))
                return CMD_FAIL;
        }
    if (new_owner_sink(mv, 7)) /* the copies in PostgreSQL before they go live */
        return CMD_FAIL;
    store_buf_t text = STORE_BUF_INIT;
    uint8_t *done = calloc(m->n_cells, 1);
    cluster_map_t *m2 = done ? move_next_map(mv, e2, 0, &text) : NULL;
    int rc = m2 ? 0 : CMD_FAIL;
    if (!rc) {
        move_step(mv, 8, "epoch %llu: '%s' serves the shards", (unsigned long long)e2, mv->st->to);
        int p = move_push(mv, (size_t)mv->to, &text, a);
        mv->pause_end = move_now_s();
        done[mv->to] = 1;
        if (p == 0)
            cmd_error(PROG, "the new owner did not take the map: %s", a->error);
        rc = p == 1 ? 0 : CMD_FAIL;
    }
    if (!rc) {
        move_push_rest(mv, &text, done, a);
        rc = move_route(mv, m2, &text) ? CMD_FAIL : 0;
    }
    cluster_map_free(m2);
    free(done);
    store_buf_release(&text);
    return rc;
}

/* Steps 2 to 8. 0 or an exit status. */
static int run(move_t *mv, answer_t *a)
{
    cluster_map_t *m = mv->m;
    uint64_t e1 = m->epoch + 1;
    store_buf_t text = STORE_BUF_INIT;
    uint8_t *done = calloc(m->n_cells, 1);
    cluster_map_t *m1 = done ? move_next_map(mv, e1, 1, &text) : NULL;
    int rc = m1 ? copy_ahead(mv, a) : CMD_FAIL;
    if (!rc)
        rc = hand_over(mv, e1, &text, done, a);
    for (size_t i = 0; !rc && i < m->n_cells; i++)
        if (mv->cs[i].old_owner) {
            rc = move_fence(mv, i, e1) ? CMD_FAIL : 0;
            if (!rc)
                move_step(mv, 4, "shards of '%s' fenced after %llu.%u", m->cells[i].id,
                     (unsigned long long)mv->cs[i].position, mv->cs[i].index);
        }
    if (!rc) {
        move_step(mv, 5, "map file, other cells, nginx");
        move_push_rest(mv, &text, done, a);
        rc = move_route(mv, m1, &text) ? CMD_FAIL : 0;
    }
    if (!rc)
        rc = finish(mv, m->epoch + 2, a);
    if (rc)
        cmd_error(PROG, "the move stopped; what is done stays done (the fences, the maps "
                  "pushed, the map file). %s", m1 && mv->pause_start ?
                  "Once the cause is fixed, `reel cluster move SHARDS --to CELL --resume` "
                  "finishes it (docs/CLUSTER.md \"Moving shards\")" :
                  "Nothing was handed over: the shards stay where they were");
    cluster_map_free(m1);
    free(done);
    store_buf_release(&text);
    return rc;
}

/* --resume: the map says the shards are loading at the new owner (a move stopped after
 * its hand-over); the fences in PostgreSQL say whose they were and where they stop. */
static int resume(move_t *mv, answer_t *a)
{
    cluster_map_t *m = mv->m;
    char e[24];
    snprintf(e, sizeof e, "%llu", (unsigned long long)m->epoch);
    const char *prm[2] = {m->cells[mv->to].id, e};
    PGresult *res = move_pq(mv, "SELECT cell, shard, position, change_index FROM \"%s\".shard_fence "
                       "WHERE to_cell = $1 AND epoch = $2", 2, prm, PGRES_TUPLES_OK,
                       "reading the move's fences");
    if (!res)
        return CMD_FAIL;
    int rc = 0;
    for (int r = 0; r < PQntuples(res) && !rc; r++) {
        int ci = cluster_map_cell(m, PQgetvalue(res, r, 0));
        unsigned s = (unsigned)strtoul(PQgetvalue(res, r, 1), NULL, 10);
        if (ci < 0 || s >= m->v) {
            cmd_error(PROG, "a fence names cell '%s' or shard %u, which the map does not have",
                      PQgetvalue(res, r, 0), s);
            rc = CMD_FAIL;
        } else if (mv->set[s]) {
            mv->from[s] = (uint16_t)ci;
            mv->cs[ci].old_owner = 1;
            mv->cs[ci].position = strtoull(PQgetvalue(res, r, 2), NULL, 10);
            mv->cs[ci].index = (uint32_t)strtoull(PQgetvalue(res, r, 3), NULL, 10);
            mv->set[s] = 2; /* found */
        }
    }
    PQclear(res);
    for (unsigned s = 0; s < m->v && !rc; s++) {
        if (!mv->set[s])
            continue;
        if (mv->set[s] != 2 || m->owner[s] != mv->to || !m->loading[s]) {
            cmd_error(PROG, "shard %u is not loading into '%s' under a fence of epoch %llu: "
                      "nothing to resume for it", s, mv->st->to, (unsigned long long)m->epoch);
            rc = CMD_USAGE;
        }
        mv->set[s] = 1;
        mv->n_shards++;
    }
    mv->pause_start = move_now_s();
    return rc ? rc : finish(mv, m->epoch + 1, a);
}

/* ---- the command ---- */

static const char about[] =
    "Moves SHARDS (FIRST[-LAST][,...]) to cell CELL while they are written: one writer at\n"
    "every moment, nothing acknowledged lost (docs/CLUSTER.md \"Moving shards\"). The\n"
    "shards move through PostgreSQL (the sinks' tables, --dsn), which also fences the old\n"
    "owner: its sink never copies anything of them written after the move, so under\n"
    "--ack replica nothing it accepts afterwards is acknowledged. Steps (each printed):\n"
    "1 check, 2 the new owner copies the shards' sessions ahead (no pause), 3 hand over\n"
    "(epoch E+1: the new owner answers 503 for the shards, each old owner 421 once its\n"
    "writes in flight ended), 4 fence, 5 the map file, the other cells and nginx, 6 the\n"
    "old owners' sinks catch up, 7 the new owner loads the rest, 8 epoch E+2: it serves\n"
    "them. Writes to the shards pause from 3 to 8. The cells need an admin token\n"
    "(--token). Exit status 0 when the shards moved, 1 when a step failed (what was done\n"
    "stays done; the message says how to go on), 2 for bad arguments.\n";

static int parse(settings_t *st, int argc, char **argv, int *nargs)
{
    const opt_t rows[] = {
        {.name = "to", .type = OPT_STRING, .arg = "CELL", .dest = &st->to, .required = 1,
         .help = "the cell that gets the shards (in the map; a spare or an owner)"},
        {.name = "map", .type = OPT_STRING, .arg = "MAP", .env = "REEL_CLUSTER_MAP",
         .dest = &st->map, .required = 1,
         .help = "the cluster map file; rewritten with each new epoch"},
        {.name = "dsn", .type = OPT_STRING, .arg = "DSN", .env = "REEL_SINK_DSN",
         .dest = &st->dsn, .required = 1, .help = "the sinks' PostgreSQL (libpq connection)"},
        {.name = "schema", .type = OPT_STRING, .arg = "SCHEMA", .env = "REEL_SINK_SCHEMA",
         .dest = &st->schema, .help = "the sinks' schema", .def = "reel"},
        {.name = "token", .type = OPT_STRING, .arg = "T", .env = "REEL_TOKEN", .dest = &st->token,
         .help = "bearer token with the admin scope, for every cell"},
        {.name = "ack", .type = OPT_CHOICE, .arg = "local|replica", .env = "REEL_ACK",
         .dest = &st->ack, .help = "how the cells acknowledge (serve --ack): with local, an\n"
                                   "old owner that does not answer needs --force",
         .def = "local"},
        {.name = "force", .type = OPT_FLAG, .dest = &st->force,
         .help = "--ack local: move the shards of an old owner that does not answer,\n"
                 "losing what it acknowledged and its sink had not copied"},
        {.name = "nginx-conf", .type = OPT_STRING, .arg = "FILE", .dest = &st->nginx_conf,
         .help = "rewrite this nginx configuration (reel cluster nginx-conf) and reload"},
        {.name = "nginx-listen", .type = OPT_STRING, .arg = "HOST:PORT", .dest = &st->nginx_listen,
         .help = "with --nginx-conf: also write its server block listening there"},
        {.name = "reload-command", .type = OPT_STRING, .arg = "CMD", .dest = &st->reload,
         .help = "with --nginx-conf: how to reload nginx (sh -c)", .def = "nginx -s reload"},
        {.name = "drain-ms", .type = OPT_U64, .arg = "MS", .dest = &st->drain_ms, .min = 1,
         .max = 120000, .help = "how long an old owner waits for its writes in flight",
         .def = "10000"},
        {.name = "cell-timeout-ms", .type = OPT_U64, .arg = "MS", .dest = &st->cell_timeout_ms,
         .min = 1, .max = 600000, .help = "a cell that does not answer within it is down",
         .def = "2000"},
        {.name = "timeout", .type = OPT_U64, .arg = "S", .dest = &st->timeout_s, .min = 1,
         .max = 86400, .help = "how long the sinks' catching up and the load may take",
         .def = "600"},
        {.name = "ahead-rounds", .type = OPT_U64, .arg = "N", .dest = &st->ahead_rounds,
         .max = 20, .help = "rounds of copying ahead before the hand-over, while a round\n"
                            "finds more than 500 new events; 0: none (writes then wait for\n"
                            "the whole copy)", .def = "4"},
        {.name = "resume", .type = OPT_FLAG, .dest = &st->resume,
         .help = "finish a move that stopped after its hand-over (the map file says\n"
                 "the shards are loading at CELL; PostgreSQL has its fences)"},
        {.name = "quiet", .alias = 'q', .type = OPT_FLAG, .dest = &st->quiet,
         .help = "no step lines"},
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = PROG, .args = "SHARDS", .about = about, .opts = rows};
    return opt_parse(&cmd, argc, argv, nargs);
}

static void summary(const move_t *mv)
{
    printf("moved %u shards to %s: %llu sessions, %llu events (%llu copied ahead) in %.2f s; "
           "writes to them paused %.2f s; epoch %llu\n", mv->n_shards, mv->st->to,
           (unsigned long long)mv->sessions, (unsigned long long)mv->events,
           (unsigned long long)mv->events_ahead, move_now_s() - mv->t0,
           mv->pause_end - mv->pause_start,
           (unsigned long long)mv->m->epoch + (mv->st->resume ? 1 : 2));
}

static int go(move_t *mv, const char *shards)
{
    char msg[512];
    answer_t a = {0};
    if (cluster_map_load(mv->st->map, &mv->m, msg, sizeof msg)) {
        cmd_error(PROG, "%s", msg);
        return CMD_FAIL;
    }
    mv->to = cluster_map_cell(mv->m, mv->st->to);
    if (mv->to < 0) {
        cmd_error(PROG, "--to '%s': the map has no such cell", mv->st->to);
        return CMD_USAGE;
    }
    mv->set = calloc(mv->m->v, 1);
    mv->cs = calloc(mv->m->n_cells, sizeof *mv->cs);
    mv->from = calloc(mv->m->v, sizeof *mv->from);
    if (!mv->set || !mv->cs || !mv->from)
        return CMD_FAIL;
    if (cluster_shards_parse(shards, mv->m->v, mv->set, msg, sizeof msg)) {
        cmd_error(PROG, "%s", msg);
        return CMD_USAGE;
    }
    mv->pg = PQconnectdb(mv->st->dsn);
    if (PQstatus(mv->pg) != CONNECTION_OK) {
        cmd_error(PROG, "cannot connect to PostgreSQL: %s", PQerrorMessage(mv->pg));
        return CMD_FAIL;
    }
    PQclear(PQexec(mv->pg, "SET client_min_messages = warning"));
    if (sink_fence_schema(mv->pg, mv->st->schema))
        return CMD_FAIL;
    mv->c = curl_easy_init();
    if (!mv->c)
        return CMD_FAIL;
    move_step(mv, 1, "%s: epoch %llu, moving shards %s to '%s'", mv->st->map,
         (unsigned long long)mv->m->epoch, shards, mv->st->to);
    int rc = mv->st->resume ? resume(mv, &a) : check(mv, &a);
    if (!rc && !mv->st->resume)
        rc = run(mv, &a);
    if (!rc)
        summary(mv);
    store_buf_release(&a.body);
    return rc;
}

int cmd_cluster_move(int argc, char **argv)
{
    settings_t st = {.schema = "reel", .drain_ms = 10000, .cell_timeout_ms = 2000,
                     .timeout_s = 600, .ahead_rounds = 4};
    int nargs = 0, rc = parse(&st, argc, argv, &nargs);
    if (rc != OPT_GO)
        return rc;
    if (nargs != 1 || !st.to || !st.map || !st.dsn) {
        cmd_error(PROG, "usage: reel cluster move SHARDS --to CELL --map MAP --dsn DSN (see "
                  "--help)");
        return CMD_USAGE;
    }
    for (const char *p = st.schema; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
              (p > st.schema && *p >= '0' && *p <= '9'))) {
            cmd_error(PROG, "--schema '%s': letters, digits and '_' only", st.schema);
            return CMD_USAGE;
        }
    move_t mv = {.st = &st, .t0 = move_now_s()};
    rc = go(&mv, argv[0]);
    if (mv.c)
        curl_easy_cleanup(mv.c);
    if (mv.pg)
        PQfinish(mv.pg);
    cluster_map_free(mv.m);
    free(mv.set);
    free(mv.from);
    free(mv.cs);
    return rc;
}
