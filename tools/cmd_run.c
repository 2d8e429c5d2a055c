/* cmd_run.c -- `reel run`: run a coding agent as a subprocess and ingest its event stream
 * (docs/AGENTS.md). Option parsing only; the runner is agent_run() in agents/runner.c and the
 * behaviour is documented in docs/AGENTS.md. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agents/agent.h"
#include "tools/cmds.h"

static const char about[] =
    "Spawns a coding agent in its streaming JSON mode, converts every line it writes into\n"
    "universal events (the native line kept in 'raw') and appends them in order to session S,\n"
    "ending with session.ended. Running the same session again resumes the agent's own\n"
    "session (stored on the session record) or, where it cannot, prepends the restore text.\n"
    "The last argument is the prompt (unless --prompt is given); arguments before it are\n"
    "passed to the agent.\n\n"
    "When stderr is a terminal (or with --progress), one line per tool call, turn and error\n"
    "shows the agent at work: \"[tool] Bash ls -la\", \"[turn 1] <start of the answer> (1,234\n"
    "in, 56 out)\", \"[error] ...\", and at the end \"[done] 3 turns, 1,234 tokens in, 56 out,\n"
    "$0.0123\". --quiet silences them (unless --progress is also given).\n\n"
    "acp: permission requests are answered allow_once under --approve, else reject_once;\n"
    "elicitation/create questions are declined (nobody is there to answer them); an agent\n"
    "still running 3 s after its turn ended is stopped with SIGTERM (a completed run).\n";

static const char footer[] =
    "Exit status: 0 when the agent exited 0 and every event was appended, 1 otherwise,\n"
    "2 on bad usage.\n";

static int usage_error(const opt_cmd_t *cmd, const char *msg, const char *arg)
{
    fprintf(stderr, "reel %s: ", cmd->name);
    fprintf(stderr, msg, arg);
    fputs("\n\n", stderr);
    opt_usage(cmd, stderr);
    return CMD_USAGE;
}

int cmd_run(int argc, char **argv)
{
    const char *prog = "run", *argv0 = argv[0]; /* opt_parse() reuses argv */
    agent_run_opts_t o = {0};
    const char *agent = NULL;
    unsigned long long retry_s = 600;
    int replay = 0, force_progress = 0;
    o.data_dir = CMD_DEFAULT_DATA;
    const opt_t rows[] = {
        {.name = "session", .type = OPT_STRING, .arg = "S", .dest = &o.session, .required = 1,
         .help = "session id (1..1024 bytes of UTF-8, no control characters)"},
        {.name = "agent", .type = OPT_STRING, .arg = "AGENT", .dest = &agent, .required = 1,
         .help = "claude, codex, opencode, amp, acp or mock"},
        {.name = "agent-bin", .type = OPT_STRING, .arg = "PATH", .dest = &o.bin,
         .help = "the agent executable (default: found on PATH; required for acp)"},
        {.name = "prompt", .type = OPT_STRING, .arg = "TEXT", .dest = &o.prompt,
         .help = "the prompt; then every argument after -- goes to the agent"},
        {.name = "restore", .type = OPT_CHOICE, .arg = "native|replay", .dest = &replay,
         .help = "resume natively when possible (default), or always start a\n"
                 "fresh agent session with the restore replay text prepended"},
        {.name = "server", .type = OPT_STRING, .arg = "URL", .env = "REEL_SERVER",
         .dest = &o.server, .help = "append through a reel server (http://HOST:PORT)"},
        {.name = "token", .type = OPT_STRING, .arg = "T", .env = "REEL_TOKEN", .dest = &o.token,
         .help = "bearer token for --server"},
        {.name = "retry-max", .type = OPT_U64, .arg = "SECONDS", .dest = &retry_s,
         .help = "give up when the server is unreachable this long", .def = "600"},
        {.name = "data", .type = OPT_STRING, .arg = "DIR", .env = "REEL_DATA", .dest = &o.data_dir,
         .help = "data directory without --server", .def = CMD_DEFAULT_DATA},
        CMD_OPT_SYNC(&o.no_sync),
        {.name = "approve", .type = OPT_FLAG, .dest = &o.approve,
         .help = "acp: allow permission requests (default: reject them)"},
        {.name = "quiet", .type = OPT_FLAG, .dest = &o.quiet,
         .help = "no messages on stderr except errors (and no progress lines)"},
        {.name = "progress", .type = OPT_FLAG, .dest = &force_progress,
         .help = "print the progress lines even when stderr is not a terminal"},
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = prog, .args = "[--] [AGENT-ARGS...] PROMPT", .about = about,
                           .footer = footer, .opts = rows};
    int nrest, st = opt_parse(&cmd, argc, argv, &nrest);
    if (st != OPT_GO)
        return st;
    if (!o.session)
        return usage_error(&cmd, "--session is required%s", "");
    if (cmd_check_session(prog, o.session, 1))
        return CMD_USAGE;
    if (!agent)
        return usage_error(&cmd, "--agent is required%s", "");
    if (!(o.ops = agent_find(agent)))
        return usage_error(&cmd, "unknown agent '%s' (use claude, codex, opencode, amp, acp or "
                                 "mock)", agent);
    if (!o.prompt && !nrest)
        return usage_error(&cmd, "a prompt is required%s", "");
    /* The positional arguments now sit in argv[0..nrest): the agent's arguments, then the
     * prompt unless --prompt gave it. */
    char **rest = calloc((size_t)nrest + 1, sizeof *rest);
    if (!rest)
        return CMD_FAIL;
    memcpy(rest, argv, (size_t)nrest * sizeof *rest);
    if (!o.prompt)
        o.prompt = rest[--nrest];
    rest[nrest] = NULL;
    o.extra = rest;
    o.retry_max_s = (double)retry_s;
    o.restore = replay ? AGENT_RESTORE_REPLAY : AGENT_RESTORE_NATIVE;
    o.progress = force_progress || (!o.quiet && isatty(STDERR_FILENO));
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = 0;
    o.self_exe = n > 0 ? self : argv0;

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
