/* reel.c -- the reel binary: dispatches subcommands from one table (git style). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/version.h"
#include "tools/cmds.h"

struct cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

static const struct cmd cmds[] = {
    {"serve", cmd_serve, "run the HTTP server on the data directory"},
    {"ingest", cmd_ingest, "append JSONL events from a file or stdin to a session"},
    {"tail", cmd_tail, "print a session's (or all sessions') events, optionally following"},
    {"restore", cmd_restore, "print a session's replay text for a durable resume"},
    {"transcript", cmd_transcript, "a session folded into its transcript (JSON or Markdown)"},
    {"sessions", cmd_sessions, "list sessions with counts, sizes, first/last times"},
    {"consumers", cmd_consumers, "list durable consumers: position, lag, lease"},
    {"export", cmd_export, "bulk export to JSONL (zstd-compressed by default)"},
    {"import", cmd_import, "import an export (zstd or plain JSONL), idempotently"},
    {"replay", cmd_replay, "re-drive stored events in order to stdout or an HTTP endpoint"},
    {"stats", cmd_stats, "analytics: events by type, agent, tool; usage; durations; errors"},
    {"verify", cmd_verify, "check the integrity of the store (hash chains, density, index)"},
    {"backup", cmd_backup, "consistent, compacted hot copy of the store"},
    {"redact", cmd_redact, "rewrite secrets in stored events; the hash chain still verifies"},
    {"run", cmd_run, "run a coding agent and ingest its event stream (agent runner)"},
    {"mock-agent", cmd_mock_agent, "a fake agent writing realistic native JSONL (tests, demos)"},
    {"sink", cmd_sink, "follow the feed into PostgreSQL exactly once (reel sink postgres)"},
    {"tokens", cmd_tokens, "named tokens for serve --tokens: add, list, revoke (tenants)"},
    {"cluster", cmd_cluster, "cells behind nginx: a cluster map, its nginx config, a session's shard"},
    {"version", NULL, "print the version and the commit it was built from (also --version)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: reel <command> [--help] [options]\n\n"
               "reel is a durable transcript store for AI coding-agent sessions.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
    fprintf(f, "\ncommon options (environment twin in brackets):\n"
               "  --data DIR          data directory [REEL_DATA] (default %s)\n"
               "  --listen HOST:PORT  HTTP address [REEL_LISTEN] (default %s)\n"
               "  --token T           bearer token [REEL_TOKEN]\n"
               "  --sync full|none    fsync every commit [REEL_SYNC] (default full)\n\n"
               "Run 'reel <command> --help' for a command's options.\n",
            CMD_DEFAULT_DATA, CMD_DEFAULT_LISTEN);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CMD_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CMD_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") || !strcmp(argv[1], "version")) {
        printf("reel %s (commit %s)\n", REEL_VERSION, reel_build_commit);
        return CMD_OK;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (cmds[i].fn && !strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "reel: '%s' is not a reel command. See 'reel --help'.\n", argv[1]);
    return CMD_USAGE;
}
