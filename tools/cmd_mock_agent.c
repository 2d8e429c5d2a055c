/* cmd_mock_agent.c -- `reel mock-agent`: a fake coding agent that writes realistic Claude
 * stream-json lines to stdout with small delays (tests, demos). The scenarios are in
 * agents/mock.c; `reel run --agent mock` spawns this command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agents/agent.h"
#include "tools/cmds.h"

static const char usage[] =
    "usage: reel mock-agent [--scenario NAME] [--delay MS] [--resume ID] [--exit N] [--] [PROMPT]\n"
    "   or: reel mock-agent --format acp [--delay MS]\n\n"
    "Writes a scripted agent session as Claude Code stream-json (one JSON object per line)\n"
    "to stdout, like `claude -p --output-format stream-json --verbose`. With --format acp it\n"
    "is an ACP agent instead, answering JSON-RPC requests read from stdin.\n\n"
    "  --scenario NAME   demo, markdown, tools, permission, error or long (default: the\n"
    "                    prompt when it names a scenario, else demo, which echoes the prompt)\n"
    "  --delay MS        pause between lines (default 20) [REEL_MOCK_DELAY_MS]\n"
    "  --resume ID       continue session ID (reported as its session_id)\n"
    "  --exit N          exit status after the last line (default 0; 1 for 'error')\n"
    "  --format F        claude (default) or acp\n";

int cmd_mock_agent(int argc, char **argv)
{
    const char *prog = "mock-agent", *scenario = NULL, *resume = NULL, *prompt = NULL;
    const char *delay = cmd_env("REEL_MOCK_DELAY_MS", "20"), *exit_s = NULL, *format = "claude";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return CMD_OK;
        } else if (!strcmp(a, "--")) {
            if (i + 1 < argc)
                prompt = argv[i + 1];
            break;
        } else if ((!strcmp(a, "--scenario") || !strcmp(a, "--delay") ||
                    !strcmp(a, "--resume") || !strcmp(a, "--exit") || !strcmp(a, "--format")) &&
                   i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(a, "--format"))
                format = v;
            else if (!strcmp(a, "--scenario"))
                scenario = v;
            else if (!strcmp(a, "--delay"))
                delay = v;
            else if (!strcmp(a, "--resume"))
                resume = v;
            else
                exit_s = v;
        } else if (a[0] == '-' && a[1]) {
            cmd_error(prog, "unknown option '%s'\n\n%s", a, usage);
            return CMD_USAGE;
        } else {
            prompt = a;
        }
    }
    unsigned long long d = 0, ex = 0;
    if (cmd_parse_u64(prog, "--delay", delay, &d) ||
        (exit_s && cmd_parse_u64(prog, "--exit", exit_s, &ex)))
        return CMD_USAGE;
    if (!strcmp(format, "acp"))
        return agent_mock_acp(STDIN_FILENO, STDOUT_FILENO, (int)(d > 10000 ? 10000 : d)) ? CMD_FAIL
                                                                                        : CMD_OK;
    if (strcmp(format, "claude")) {
        cmd_error(prog, "--format must be 'claude' or 'acp', not '%s'", format);
        return CMD_USAGE;
    }
    if (!scenario) {
        scenario = "demo";
        const char *names = agent_mock_scenarios(), *p = prompt ? strstr(names, prompt) : NULL;
        size_t n = prompt ? strlen(prompt) : 0;
        if (n && p && (p == names || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0))
            scenario = prompt;
    }
    int rc = agent_mock_write(scenario, STDOUT_FILENO, resume, prompt, (int)(d > 10000 ? 10000 : d));
    if (rc == REEL_EINVALID_PARAMETER) {
        cmd_error(prog, "unknown scenario '%s' (use %s)", scenario, agent_mock_scenarios());
        return CMD_USAGE;
    }
    if (rc)
        return CMD_FAIL;
    if (!exit_s && !strcmp(scenario, "error"))
        ex = 1;
    return (int)(ex > 255 ? 255 : ex);
}
