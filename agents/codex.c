/* codex.c -- OpenAI Codex CLI `codex exec --json` (ThreadEvent lines) to universal
 * events. Mapping: docs/AGENTS.md (§3, "codex" in the per-agent notes). Codex exec has no
 * text deltas (messages get one synthetic full-text delta) and no permission events (the
 * sandbox policy decides). Items are keyed by Codex's own item id ("item_3"). */
#include <stdio.h>
#include <string.h>

#include "agents/agent_int.h"

static int text_item(agent_conv_t *c, const char *event, json_t *item, const char *kind)
{
    const char *id = agent__str(item, "id");
    char key[300];
    snprintf(key, sizeof key, "x:%s", id ? id : "");
    agent__item_t *it = agent__item_find(c, key);
    int rc = REEL_OK;
    if (!it) {
        json_t *info = json_object();
        agent__copy(info, "native_item_id", item, "id");
        it = agent__item_start(c, key, kind, "assistant", info, strcmp(event, "item.started"),
                               &rc);
        if (!it)
            return rc;
    }
    if (strcmp(event, "item.completed"))
        return REEL_OK;
    const char *text = agent__str(item, "text");
    if (text && *text && (rc = agent__item_delta(c, it, text, strlen(text), 1)))
        return rc;
    return agent__item_complete(c, it, "completed", NULL, 0);
}

/* The tool_call part of a tool item: started on item.started, completed with the item. */
static int tool_call(agent_conv_t *c, const char *event, json_t *item, const char *name,
                     json_t *args)
{
    const char *id = agent__str(item, "id");
    char key[300];
    snprintf(key, sizeof key, "x:%s", id ? id : "");
    int rc = REEL_OK;
    agent__item_t *it = agent__item_find(c, key);
    if (!it) {
        json_t *info = json_object();
        agent__copy(info, "native_item_id", item, "id");
        agent__copy(info, "call_id", item, "id");
        json_object_set_new(info, "name", json_string(name));
        json_object_set(info, "arguments", args);
        it = agent__item_start(c, key, "tool_call", NULL, info, strcmp(event, "item.started"),
                               &rc);
        if (!it)
            return rc;
    }
    if (strcmp(event, "item.completed"))
        return REEL_OK;
    return agent__item_complete(c, it, "completed", NULL, 0);
}

static int tool_result(agent_conv_t *c, json_t *item, json_t *extra)
{
    const char *status = agent__str(item, "status");
    int failed = status && (!strcmp(status, "failed") || !strcmp(status, "declined"));
    json_t *info = json_object();
    agent__copy(info, "call_id", item, "id");
    if (status && !strcmp(status, "declined"))
        json_object_set_new(extra, "reason", json_string("declined"));
    return agent__item_tool(c, NULL, "tool_result", info, failed ? "failed" : "completed",
                            extra);
}

static int item_event(agent_conv_t *c, const char *event, json_t *line)
{
    json_t *item = agent__get(line, "item");
    const char *type = agent__str(item, "type");
    int done = !strcmp(event, "item.completed");
    int rc;
    if (!type)
        return agent__unknown(c, "item type", NULL);
    if (!strcmp(type, "agent_message"))
        return text_item(c, event, item, "message");
    if (!strcmp(type, "reasoning"))
        return text_item(c, event, item, "reasoning");
    if (!strcmp(event, "item.updated") &&
        (strcmp(type, "todo_list") && strcmp(type, "plan") && strcmp(type, "error")))
        return REEL_OK; /* progress of a known item: kept as agent.native */
    if (!strcmp(type, "command_execution")) {
        json_t *args = json_pack("{s:O?}", "command", agent__get(item, "command"));
        rc = tool_call(c, event, item, "shell", args);
        json_decref(args);
        if (rc || !done)
            return rc;
        json_t *extra = json_object();
        agent__copy(extra, "output", item, "aggregated_output");
        agent__copy(extra, "exit_code", item, "exit_code");
        return tool_result(c, item, extra);
    }
    if (!strcmp(type, "file_change")) {
        json_t *args = json_pack("{s:O?}", "changes", agent__get(item, "changes"));
        rc = tool_call(c, event, item, "apply_patch", args);
        json_decref(args);
        if (rc || !done)
            return rc;
        json_t *extra = json_object();
        agent__copy(extra, "output", item, "changes");
        return tool_result(c, item, extra);
    }
    if (!strcmp(type, "mcp_tool_call") || !strcmp(type, "collab_tool_call")) {
        char name[300];
        const char *srv = agent__str(item, "server"), *tool = agent__str(item, "tool");
        snprintf(name, sizeof name, "%s.%s", srv ? srv : "collab", tool ? tool : "");
        json_t *args = agent__get(item, "arguments");
        if (!args)
            args = agent__get(item, "prompt");
        rc = tool_call(c, event, item, name, args ? args : json_null());
        if (rc || !done)
            return rc;
        json_t *extra = json_object();
        agent__copy(extra, "output", item, "result");
        json_t *err = agent__get(item, "error");
        if (err && !json_is_null(err))
            json_object_set(extra, "error", err);
        return tool_result(c, item, extra);
    }
    if (!strcmp(type, "web_search")) {
        json_t *args = json_object();
        agent__copy(args, "query", item, "query");
        agent__copy(args, "action", item, "action");
        rc = tool_call(c, event, item, "web_search", args);
        json_decref(args);
        return rc;
    }
    if (!strcmp(type, "todo_list") || !strcmp(type, "plan"))
        return REEL_OK;
    if (!strcmp(type, "error"))
        return done ? agent__error(c, "item_error", agent__str(item, "message"),
                                   json_pack("{s:b}", "fatal", 0))
                    : REEL_OK;
    return agent__unknown(c, "item type", type);
}

static int codex_convert(agent_conv_t *c, json_t *line)
{
    const char *type = agent__str(line, "type");
    if (!type)
        return AGENT__UNKNOWN;
    if (!strcmp(type, "thread.started")) {
        agent__set_nsid(c, agent__str(line, "thread_id"));
        return agent__session_started(c, NULL, 1);
    }
    if (!strcmp(type, "turn.started") || !strcmp(type, "item.plan.delta"))
        return REEL_OK;
    if (!strncmp(type, "item.", 5) &&
        (!strcmp(type + 5, "started") || !strcmp(type + 5, "updated") ||
         !strcmp(type + 5, "completed")))
        return item_event(c, type, line);
    if (!strcmp(type, "turn.completed")) {
        json_t *u = agent__get(line, "usage");
        json_t *d = json_object();
        json_object_set_new(d, "turn_end", json_true());
        agent__copy(d, "input_tokens", u, "input_tokens");
        agent__copy(d, "cached_input_tokens", u, "cached_input_tokens");
        agent__copy(d, "output_tokens", u, "output_tokens");
        c->failed = 0;
        return agent__emit(c, "usage", d);
    }
    if (!strcmp(type, "turn.failed")) {
        c->failed = 1;
        return agent__error(c, "turn_failed", agent__str(agent__get(line, "error"), "message"),
                            NULL);
    }
    if (!strcmp(type, "error")) {
        c->failed = 1;
        return agent__error(c, "stream_error", agent__str(line, "message"),
                            json_pack("{s:b}", "fatal", 1));
    }
    if (!strcmp(type, "request_user_input")) {
        json_t *d = json_object();
        agent__copy(d, "question_id", line, "call_id");
        agent__copy(d, "questions", line, "questions");
        json_object_set_new(d, "status", json_string("requested"));
        return agent__emit(c, "question.requested", d);
    }
    return AGENT__UNKNOWN;
}

/* `codex exec --json [extra] PROMPT`, or `codex exec --json [extra] resume ID PROMPT`
 * (flags go before `resume`). */
static void codex_argv(agent__argv_t *a, const char *resume_id, const char *prompt,
                       char *const *extra)
{
    agent__argv_add(a, "exec");
    agent__argv_add(a, "--json");
    for (size_t i = 0; extra && extra[i]; i++)
        agent__argv_add(a, extra[i]);
    if (resume_id) {
        agent__argv_add(a, "resume");
        agent__argv_add(a, resume_id);
    }
    agent__argv_prompt(a, prompt);
}

const agent_ops_t agent__codex_ops = {
    .name = "codex",
    .bin = "codex",
    .convert = codex_convert,
    .build_argv = codex_argv,
};
