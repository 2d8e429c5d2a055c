/* cmd_mock_agent.c -- `reel mock-agent`: a fake coding agent that writes realistic Claude
 * stream-json lines to stdout with small delays (tests, demos). The scenarios are in
 * agents/mock.c; `reel run --agent mock` spawns this command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agents/agent.h"
#include "tools/cmds.h"

static const char about[] =
    "Writes a scripted agent session as Claude Code stream-json (one JSON object per line)\n"
    "to stdout, like `claude -p --output-format stream-json --verbose`. With --format acp it\n"
    "is an ACP agent instead, answering JSON-RPC requests read from stdin (docs/AGENTS.md).\n";

int cmd_mock_agent(int argc, char **argv)
{
    const char *prog = "mock-agent", *scenario = NULL, *resume = NULL, *prompt = NULL;
    const char *exit_s = NULL;
    unsigned long long d = 20, ex = 0;
    int acp = 0;
    const opt_t rows[] = {
        {.name = "scenario", .type = OPT_STRING, .arg = "NAME", .dest = &scenario,
         .help = "demo, markdown, tools, permission, error or long (default: the\n"
                 "prompt when it names a scenario, else demo, which echoes the prompt)"},
        {.name = "delay", .type = OPT_U64, .arg = "MS", .env = "REEL_MOCK_DELAY_MS", .dest = &d,
         .help = "pause between lines", .def = "20"},
        {.name = "resume", .type = OPT_STRING, .arg = "ID", .dest = &resume,
         .help = "continue session ID (reported as its session_id)"},
        {.name = "exit", .type = OPT_STRING, .arg = "N", .dest = &exit_s,
         .help = "exit status after the last line (default 0; 1 for 'error')"},
        {.name = "format", .type = OPT_CHOICE, .arg = "claude|acp", .dest = &acp,
         .help = "output format", .def = "claude"},
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = prog, .args = "[--] [PROMPT]", .about = about, .opts = rows};
    int nargs, st = opt_parse(&cmd, argc, argv, &nargs);
    if (st != OPT_GO)
        return st;
    if (nargs)
        prompt = argv[nargs - 1];
    if (exit_s && cmd_parse_u64(prog, "--exit", exit_s, &ex))
        return CMD_USAGE;
    if (acp)
        return agent_mock_acp(STDIN_FILENO, STDOUT_FILENO, (int)(d > 10000 ? 10000 : d)) ? CMD_FAIL
                                                                                        : CMD_OK;
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
