/* codex.c -- OpenAI Codex CLI `codex exec --json` to universal events. Mapping:
 * docs/AGENTS.md (§3, "codex" in the per-agent notes). Two formats:
 *  - ThreadEvent lines (thread.started, turn.*, item.*): no text deltas (messages get one
 *    synthetic full-text delta), no permission events (the sandbox policy decides). Items
 *    are keyed by Codex's own item id ("item_3").
 *  - the legacy Event lines of older releases, {"id": SUBMISSION, "msg": {"type": ...}}
 *    (session_configured, agent_message[_delta], agent_reasoning[_delta],
 *    exec_command_begin/end, patch_apply_begin/end, mcp_tool_call_begin/end, token_count,
 *    task_started/complete, error, ...), and the config summary / prompt lines printed
 *    before them. A msg type with nothing universal is agent.native, never unparsed.
 * Usage: Codex reports the thread's running total (turn.completed.usage; legacy
 * token_count.info.total_token_usage), which after `exec resume` includes the earlier runs.
 * The converter keeps the last total per thread (c->state "totals"; a resumed run starts
 * from "prior_usage", what the session already holds, when the runner provides it) and
 * emits the difference; the native running total goes under data.totals. */
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

/* ---- Usage ---- */

/* Codex usage names -> ours (docs/AGENTS.md: reasoning_tokens, cache_creation_input_tokens). */
static const char *const usage_names[][2] = {
    {"input_tokens", "input_tokens"},
    {"cached_input_tokens", "cached_input_tokens"},
    {"output_tokens", "output_tokens"},
    {"reasoning_output_tokens", "reasoning_tokens"},
    {"cache_write_input_tokens", "cache_creation_input_tokens"},
};

/* Completes 'd' (stolen) with the usage 'u' and emits it. 'running': 'u' is the thread's
 * running total: the numbers emitted are what it grew by since the thread's last total
 * (a total that went down starts over: it is taken whole), and the total itself goes
 * under data.totals. Otherwise 'u' is one response's usage and is emitted as it is. */
static int usage_event(agent_conv_t *c, json_t *d, json_t *u, int running)
{
    json_t *all = agent__get(c->state, "totals");
    if (!all) {
        json_object_set_new(c->state, "totals", json_object());
        all = agent__get(c->state, "totals");
    }
    const char *thread = c->nsid;
    json_t *prev = running ? agent__get(all, thread) : NULL;
    if (running && !prev) { /* first total of this thread in this run */
        json_t *prior = c->resume_id && !strcmp(c->resume_id, thread)
                            ? agent__get(c->state, "prior_usage")
                            : NULL;
        prev = prior ? json_deep_copy(prior) : json_object();
        json_object_set_new(all, thread, prev);
    }
    json_t *totals = running ? json_object() : NULL;
    for (size_t i = 0; i < sizeof usage_names / sizeof usage_names[0]; i++) {
        json_t *v = agent__get(u, usage_names[i][0]);
        if (!json_is_number(v))
            continue;
        const char *ours = usage_names[i][1];
        if (!running) {
            json_object_set(d, ours, v);
            continue;
        }
        json_object_set(totals, ours, v);
        json_t *p = agent__get(prev, ours);
        if (json_is_integer(v) && (!p || json_is_integer(p))) {
            json_int_t cur = json_integer_value(v), was = p ? json_integer_value(p) : 0;
            json_object_set_new(d, ours, json_integer(cur >= was ? cur - was : cur));
        } else {
            double cur = json_number_value(v), was = p ? json_number_value(p) : 0;
            json_object_set_new(d, ours, json_real(cur >= was ? cur - was : cur));
        }
        json_object_set(prev, ours, v);
    }
    if (totals)
        json_object_set_new(d, "totals", totals);
    return agent__emit(c, "usage", d);
}

/* ---- The legacy Event stream: {"id": SUBMISSION, "msg": {"type": ...}} ---- */

/* agent.native for a legacy line: {native_type: msg.type, native_id?}. */
static int legacy_native(agent_conv_t *c, json_t *line, const char *type)
{
    json_t *d = json_object();
    json_object_set_new(d, "native_type", json_string(type));
    agent__copy(d, "native_id", line, "id");
    return agent__emit(c, "agent.native", d);
}

/* A streamed text item of the legacy stream (one open message and one open reasoning at
 * a time): deltas start it, the full-text event completes it (or is the whole item). */
static int legacy_text(agent_conv_t *c, const char *kind, const char *text, int delta)
{
    const char *key = !strcmp(kind, "message") ? "l:message" : "l:reasoning";
    agent__item_t *it = agent__item_find(c, key);
    int rc = REEL_OK;
    if (!it) {
        it = agent__item_start(c, key, kind, "assistant", NULL, !delta, &rc);
        if (!it)
            return rc;
    }
    size_t len = text ? strlen(text) : 0;
    if (delta)
        return len ? agent__item_delta(c, it, text, len, 0) : REEL_OK;
    /* the full text: what the deltas did not already say */
    if (len && it->text.len <= len && !memcmp(it->text.data ? (char *)it->text.data : "", text,
                                              it->text.len)) {
        size_t rest = len - it->text.len;
        if (rest && (rc = agent__item_delta(c, it, text + it->text.len, rest, 1)))
            return rc;
    } else if (len) {
        store_buf_clear(&it->text); /* the deltas disagree with the text: the text wins */
        if ((rc = agent__item_delta(c, it, text, len, 1)))
            return rc;
    }
    return agent__item_complete(c, it, "completed", NULL, 0);
}

/* The call part of a legacy tool (begin event), whole: the end event gives the result.
 * 'args' is stolen. */
static int legacy_call(agent_conv_t *c, json_t *m, const char *name, json_t *args)
{
    json_t *info = json_object();
    agent__copy(info, "call_id", m, "call_id");
    json_object_set_new(info, "name", json_string(name));
    json_object_set(info, "arguments", args ? args : json_null());
    json_decref(args);
    return agent__item_tool(c, NULL, "tool_call", info, "completed", NULL);
}

/* The result part of a legacy tool (end event): 'extra' (stolen) has output, ... */
static int legacy_result(agent_conv_t *c, json_t *m, int failed, json_t *extra)
{
    json_t *info = json_object();
    agent__copy(info, "call_id", m, "call_id");
    if (failed)
        json_object_set_new(extra, "is_error", json_true());
    return agent__item_tool(c, NULL, "tool_result", info, failed ? "failed" : "completed",
                            extra);
}

/* exec_command_end/patch_apply_end output: aggregated_output, else stdout + stderr. */
static json_t *legacy_output(json_t *m)
{
    json_t *agg = agent__get(m, "aggregated_output");
    if (json_is_string(agg))
        return json_incref(agg);
    const char *out = agent__str(m, "stdout"), *err = agent__str(m, "stderr");
    store_buf_t b = STORE_BUF_INIT;
    store_buf_puts(&b, out ? out : "");
    if (err && *err) {
        if (b.len && b.data[b.len - 1] != '\n')
            store_buf_putc(&b, '\n');
        store_buf_puts(&b, err);
    }
    json_t *j = agent__string(b.data ? (char *)b.data : "", b.len);
    store_buf_release(&b);
    return j;
}

static int legacy_convert(agent_conv_t *c, json_t *line, json_t *m)
{
    const char *type = agent__str(m, "type");
    int rc;
    if (!strcmp(type, "session_configured")) {
        agent__set_nsid(c, agent__str(m, "session_id"));
        json_t *d = json_object();
        agent__copy(d, "model", m, "model");
        agent__copy(d, "reasoning_effort", m, "reasoning_effort");
        agent__copy(d, "rollout_path", m, "rollout_path");
        return agent__session_started(c, d, 1);
    }
    if (!strcmp(type, "agent_message"))
        return legacy_text(c, "message", agent__str(m, "message"), 0);
    if (!strcmp(type, "agent_message_delta"))
        return legacy_text(c, "message", agent__str(m, "delta"), 1);
    if (!strcmp(type, "agent_reasoning") || !strcmp(type, "agent_reasoning_raw_content"))
        return legacy_text(c, "reasoning", agent__str(m, "text"), 0);
    if (!strcmp(type, "agent_reasoning_delta") || !strcmp(type, "agent_reasoning_raw_content_delta"))
        return legacy_text(c, "reasoning", agent__str(m, "delta"), 1);
    if (!strcmp(type, "exec_command_begin")) {
        json_t *args = json_object();
        agent__copy(args, "command", m, "command");
        agent__copy(args, "cwd", m, "cwd");
        return legacy_call(c, m, "shell", args);
    }
    if (!strcmp(type, "exec_command_end")) {
        json_t *code = agent__get(m, "exit_code");
        json_t *extra = json_object();
        json_object_set_new(extra, "output", legacy_output(m));
        agent__copy(extra, "exit_code", m, "exit_code");
        agent__copy(extra, "duration", m, "duration");
        return legacy_result(c, m, json_is_integer(code) && json_integer_value(code) != 0,
                             extra);
    }
    if (!strcmp(type, "patch_apply_begin")) {
        json_t *args = json_object();
        agent__copy(args, "changes", m, "changes");
        agent__copy(args, "auto_approved", m, "auto_approved");
        return legacy_call(c, m, "apply_patch", args);
    }
    if (!strcmp(type, "patch_apply_end")) {
        json_t *ok = agent__get(m, "success");
        json_t *extra = json_object();
        json_object_set_new(extra, "output", legacy_output(m));
        return legacy_result(c, m, json_is_false(ok), extra);
    }
    if (!strcmp(type, "mcp_tool_call_begin")) {
        json_t *inv = agent__get(m, "invocation");
        const char *srv = agent__str(inv, "server"), *tool = agent__str(inv, "tool");
        char name[300];
        snprintf(name, sizeof name, "%s.%s", srv ? srv : "mcp", tool ? tool : "");
        json_t *args = agent__get(inv, "arguments");
        return legacy_call(c, m, name, args ? json_incref(args) : NULL);
    }
    if (!strcmp(type, "mcp_tool_call_end")) {
        json_t *res = agent__get(m, "result"), *extra = json_object();
        json_t *ok = agent__get(res, "Ok"), *err = agent__get(res, "Err");
        json_object_set(extra, "output", ok ? ok : res ? res : json_null());
        if (err)
            json_object_set(extra, "error", err);
        agent__copy(extra, "duration", m, "duration");
        int failed = err || json_is_true(agent__get(ok, "isError"));
        return legacy_result(c, m, failed, extra);
    }
    if (!strcmp(type, "web_search_end")) {
        json_t *args = json_object();
        agent__copy(args, "query", m, "query");
        return legacy_call(c, m, "web_search", args);
    }
    if (!strcmp(type, "token_count")) {
        json_t *info = agent__get(m, "info");
        json_t *total = agent__get(info, "total_token_usage");
        json_t *d = json_object();
        json_object_set_new(d, "turn_end", json_false());
        if (json_is_object(total)) { /* 0.3x and later: the thread's running total */
            agent__copy(d, "context_size", info, "model_context_window");
            return usage_event(c, d, total, 1);
        }
        if (agent__get(m, "input_tokens") || agent__get(m, "output_tokens"))
            return usage_event(c, d, m, 0); /* older: one response's usage */
        json_decref(d);
        return legacy_native(c, line, type); /* info null: rate limits only */
    }
    if (!strcmp(type, "task_complete")) {
        c->failed = 0;
        if ((rc = agent__items_close_all(c)))
            return rc;
        json_t *d = json_object();
        json_object_set_new(d, "turn_end", json_true());
        return agent__emit(c, "usage", d);
    }
    if (!strcmp(type, "error")) {
        c->failed = 1;
        return agent__error(c, "error", agent__str(m, "message"), json_pack("{s:b}", "fatal", 1));
    }
    if (!strcmp(type, "stream_error"))
        return agent__error(c, "stream_error", agent__str(m, "message"),
                            json_pack("{s:b}", "fatal", 0));
    if (!strcmp(type, "turn_aborted")) {
        c->failed = 1;
        return agent__error(c, "turn_aborted", agent__str(m, "reason"),
                            json_pack("{s:b}", "fatal", 1));
    }
    /* task_started, exec_command_output_delta, background_event, turn_diff, plan_update,
     * user_message, agent_reasoning_section_break, shutdown_complete, approval requests
     * (exec never asks), ...: nothing universal in them */
    return legacy_native(c, line, type);
}

static int codex_convert(agent_conv_t *c, json_t *line)
{
    const char *type = agent__str(line, "type");
    json_t *msg = agent__get(line, "msg");
    if (!type && json_is_object(msg) && agent__str(msg, "type"))
        return legacy_convert(c, line, msg);
    if (!type && (agent__get(line, "prompt") ||
                  (agent__get(line, "model") && agent__get(line, "workdir")))) {
        /* legacy exec --json: the prompt line and the config summary printed first */
        json_t *d = json_object();
        json_object_set_new(d, "native_type",
                            json_string(agent__get(line, "prompt") ? "prompt" : "config_summary"));
        return agent__emit(c, "agent.native", d);
    }
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
        json_t *d = json_object();
        json_object_set_new(d, "turn_end", json_true());
        c->failed = 0;
        return usage_event(c, d, agent__get(line, "usage"), 1);
    }
    if (!strcmp(type, "turn.failed")) {
        /* Codex prints the failure twice: an error line, then turn.failed with the same
         * message. One failure is one error event; the repeat stays agent.native. */
        const char *text = agent__str(agent__get(line, "error"), "message");
        const char *last = agent__str(c->state, "last_error");
        int repeat = text && last && !strcmp(text, last);
        json_object_del(c->state, "last_error");
        c->failed = 1;
        return repeat ? REEL_OK : agent__error(c, "turn_failed", text, NULL);
    }
    if (!strcmp(type, "error")) {
        c->failed = 1;
        const char *text = agent__str(line, "message");
        if (text)
            json_object_set_new(c->state, "last_error", json_string(text));
        return agent__error(c, "stream_error", text, json_pack("{s:b}", "fatal", 1));
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
