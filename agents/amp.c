/* amp.c -- Amp CLI (`amp -x PROMPT --stream-json`), whose stream is Claude Code
 * compatible (docs/AGENTS.md §3, "amp"): the Claude converter does the mapping. Amp
 * has no partial messages and no permission protocol, echoes the user prompt as a `user`
 * line, and resumes with `amp threads continue <thread id>`. */
#include "agents/agent_int.h"

static void amp_argv(agent__argv_t *a, const char *resume_id, const char *prompt,
                     char *const *extra)
{
    if (resume_id) {
        agent__argv_add(a, "threads");
        agent__argv_add(a, "continue");
        agent__argv_add(a, resume_id);
    }
    for (size_t i = 0; extra && extra[i]; i++)
        agent__argv_add(a, extra[i]);
    agent__argv_add(a, "-x");
    agent__argv_add(a, prompt);
    agent__argv_add(a, "--stream-json");
}

const agent_ops_t agent__amp_ops = {
    .name = "amp",
    .bin = "amp",
    .echoes_prompt = 1,
    .convert = agent__claude_convert,
    .build_argv = amp_argv,
};
