/* cmd_run.c -- `reel run`: run a coding agent as a subprocess and ingest its event stream
 * (SPEC §5). Option parsing only; the runner is agent_run() in agents/runner.c and the
 * behaviour is documented in docs/AGENTS.md. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agents/agent.h"
#include "tools/cmds.h"

static const char usage[] =
    "usage: reel run --session S --agent AGENT [options] [--] [AGENT-ARGS...] PROMPT\n\n"
    "Spawns a coding agent in its streaming JSON mode, converts every line it writes into\n"
    "universal events (the native line kept in 'raw') and appends them in order to session S,\n"
    "ending with session.ended. Running the same session again resumes the agent's own\n"
    "session (stored on the session record) or, where it cannot, prepends the restore text.\n"
    "The last argument is the prompt (unless --prompt is given); arguments before it are\n"
    "passed to the agent.\n\n"
    "  --session S            session id (1..128 bytes of [A-Za-z0-9._:~-])\n"
    "  --agent AGENT          claude, codex, opencode, amp, acp or mock\n"
    "  --agent-bin PATH       the agent executable (default: found on PATH; required for acp)\n"
    "  --prompt TEXT          the prompt; then every argument after -- goes to the agent\n"
    "  --restore native|replay  resume natively when possible (default), or always start a\n"
    "                         fresh agent session with the restore replay text prepended\n"
    "  --server URL           append through a reel server (http://HOST:PORT) [REEL_SERVER]\n"
    "  --token T              bearer token for --server [REEL_TOKEN]\n"
    "  --retry-max SECONDS    give up when the server is unreachable this long (default 600)\n"
    "  --data DIR             data directory without --server [REEL_DATA] (default ./reel-data)\n"
    "  --sync full|none       fsync every commit [REEL_SYNC] (default full)\n"
    "  --approve              acp: allow permission requests (default: reject them)\n"
    "  --quiet                no messages on stderr except errors\n\n"
    "Exit status: 0 when the agent exited 0 and every event was appended, 1 otherwise,\n"
    "2 on bad usage.\n";

static int usage_error(const char *prog, const char *msg, const char *arg)
{
    fprintf(stderr, "reel %s: ", prog);
    fprintf(stderr, msg, arg);
    fprintf(stderr, "\n\n%s", usage);
    return CMD_USAGE;
}

int cmd_run(int argc, char **argv)
{
    const char *prog = "run";
    agent_run_opts_t o = {0};
    const char *agent = NULL, *sync = cmd_env("REEL_SYNC", "full"), *retry = "600";
    const char *restore = "native";
    o.data_dir = cmd_env("REEL_DATA", CMD_DEFAULT_DATA);
    o.server = cmd_env("REEL_SERVER", NULL);
    o.token = cmd_env("REEL_TOKEN", NULL);
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    size_t nrest = 0;
    if (!rest)
        return CMD_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **val = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            free(rest);
            return CMD_OK;
        } else if (!strcmp(a, "--")) {
            while (++i < argc)
                rest[nrest++] = argv[i];
            break;
        } else if (!strcmp(a, "--quiet")) {
            o.quiet = 1;
        } else if (!strcmp(a, "--approve")) {
            o.approve = 1;
        } else if (!strncmp(a, "--restore=", 10)) {
            restore = a + 10;
        } else if (!strcmp(a, "--session")) {
            val = &o.session;
        } else if (!strcmp(a, "--agent")) {
            val = &agent;
        } else if (!strcmp(a, "--agent-bin")) {
            val = &o.bin;
        } else if (!strcmp(a, "--prompt")) {
            val = &o.prompt;
        } else if (!strcmp(a, "--server")) {
            val = &o.server;
        } else if (!strcmp(a, "--token")) {
            val = &o.token;
        } else if (!strcmp(a, "--retry-max")) {
            val = &retry;
        } else if (!strcmp(a, "--data")) {
            val = &o.data_dir;
        } else if (!strcmp(a, "--sync")) {
            val = &sync;
        } else if (!strcmp(a, "--restore")) {
            val = &restore;
        } else if (a[0] == '-' && a[1]) {
            free(rest);
            return usage_error(prog, "unknown option '%s'", a);
        } else {
            rest[nrest++] = argv[i];
        }
        if (val) {
            if (i + 1 >= argc) {
                free(rest);
                return usage_error(prog, "%s needs a value", a);
            }
            *val = argv[++i];
        }
    }
    int rc = CMD_USAGE;
    unsigned long long retry_s = 0;
    if (!o.session)
        usage_error(prog, "--session is required%s", "");
    else if (!store_session_id_valid(o.session, strlen(o.session)))
        usage_error(prog, "invalid session id '%s': use 1..128 bytes of [A-Za-z0-9._:~-]",
                    o.session);
    else if (!agent)
        usage_error(prog, "--agent is required%s", "");
    else if (!(o.ops = agent_find(agent)))
        usage_error(prog, "unknown agent '%s' (use claude, codex, opencode, amp, acp or mock)",
                    agent);
    else if (!o.prompt && !nrest)
        usage_error(prog, "a prompt is required%s", "");
    else if (strcmp(restore, "native") && strcmp(restore, "replay"))
        usage_error(prog, "--restore must be 'native' or 'replay', not '%s'", restore);
    else if (cmd_parse_sync(prog, sync, &o.no_sync) ||
             cmd_parse_u64(prog, "--retry-max", retry, &retry_s))
        ;
    else
        rc = CMD_OK;
    if (rc != CMD_OK) {
        free(rest);
        return rc;
    }
    if (!o.prompt)
        o.prompt = rest[--nrest];
    rest[nrest] = NULL;
    o.extra = rest;
    o.retry_max_s = (double)retry_s;
    o.restore = !strcmp(restore, "replay") ? AGENT_RESTORE_REPLAY : AGENT_RESTORE_NATIVE;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    o.self_exe = n > 0 ? self : argv[0];

    agent_run_result_t res;
    int err = agent_run(&o, &res);
    free(rest);
    if (err == REEL_EINVALID_PARAMETER)
        return CMD_USAGE;
    if (!o.quiet && !err) {
        fprintf(stderr, "reel run: %s %s %d; %llu events appended to '%s'", agent,
                res.signal ? "killed by signal" : "exited", res.signal ? res.signal : res.exit_code,
                (unsigned long long)res.events, o.session);
        if (res.native_session_id[0])
            fprintf(stderr, " (native session %s)", res.native_session_id);
        if (res.unparsed)
            fprintf(stderr, ", %llu unparsed lines", (unsigned long long)res.unparsed);
        fputc('\n', stderr);
    }
    return !err && res.exit_code == 0 && !res.signal ? CMD_OK : CMD_FAIL;
}
