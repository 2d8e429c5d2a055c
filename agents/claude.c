/* claude.c -- Claude Code headless stream-json (`claude -p --output-format stream-json
 * --verbose`) to universal events. Mapping: docs/AGENTS.md (§3, "claude" in the
 * per-agent notes). The same converter serves Amp (amp.c) and the mock agent (mock.c),
 * whose output is Claude-compatible.
 *
 * Items: the text of one assistant message (keyed "m:<message id>") is one message item;
 * every thinking block is a reasoning item; every tool_use block is a tool_call item
 * (keyed "t:<tool_use id>"); every tool_result block is a tool_result item. With
 * --include-partial-messages, stream_event lines start the items and carry the deltas
 * (routed by content block index, "i:<index>"); the complete assistant line then
 * completes them. Without partials the assistant line gives started, one synthetic
 * full-text delta and completed.
 *
 * Usage: in stream-json only result lines count (result_usage: the turn's share of the
 * running totals); Amp and project transcripts count assistant-message usage instead, once
 * per message id (message_usage). An API error is one error event, coded by its HTTP
 * status. Project transcripts (~/.claude/projects/.../<id>.jsonl, camelCase sessionId)
 * are recognized line by line (transcript_line).
 *
 * State (c->state): "parent" (the line's parent_tool_use_id), "stream_msg" and "i:<index>"
 * (partials), "questions", "perm_tools", "tool_inputs" (tool_use input until its result),
 * "api_error" (the turn's API error was told), "base_model_usage" / "base_usage" (the
 * previous running totals), "msg_usage" / "usage_msgs" (message usage counted),
 * "transcript", "summary", "cost_state".
 */
#include <stdio.h>
#include <string.h>

#include "agents/agent_int.h"

/* Item info for the current line: {parent_call_id} when the line comes from a sub-agent
 * (its parent_tool_use_id, noted by agent__claude_convert). */
static json_t *new_info(agent_conv_t *c)
{
    json_t *info = json_object();
    json_t *parent = agent__get(c->state, "parent");
    if (json_is_string(parent))
        json_object_set(info, "parent_call_id", parent);
    return info;
}

/* An object member of the converter state, created when missing. */
static json_t *state_object(agent_conv_t *c, const char *key)
{
    json_t *o = agent__get(c->state, key);
    if (!json_is_object(o))
        json_object_set_new(c->state, key, o = json_object());
    return o;
}

/* ---- Stream events (partial messages) ---- */

static const char *stream_message_id(agent_conv_t *c)
{
    return agent__str(c->state, "stream_msg");
}

static int block_start(agent_conv_t *c, json_t *ev)
{
    json_t *cb = agent__get(ev, "content_block");
    const char *type = agent__str(cb, "type");
    json_int_t index = json_integer_value(agent__get(ev, "index"));
    const char *msg = stream_message_id(c);
    char key[300];
    int rc = REEL_OK;
    if (!type)
        return REEL_OK;
    if (!strcmp(type, "text")) {
        snprintf(key, sizeof key, "m:%s", msg ? msg : "");
        if (!agent__item_find(c, key)) {
            json_t *info = new_info(c);
            if (msg)
                json_object_set_new(info, "native_item_id", json_string(msg));
            agent__item_start(c, key, "message", "assistant", info, 0, &rc);
        }
        snprintf(key, sizeof key, "i:%lld", (long long)index);
        json_object_set_new(c->state, key, json_sprintf("m:%s", msg ? msg : ""));
    } else if (!strcmp(type, "thinking") || !strcmp(type, "tool_use")) {
        int tool = !strcmp(type, "tool_use");
        const char *id = agent__str(cb, "id");
        char ikey[300];
        if (tool)
            snprintf(ikey, sizeof ikey, "t:%s", id ? id : "");
        else
            snprintf(ikey, sizeof ikey, "r:%s:%lld", msg ? msg : "", (long long)index);
        json_t *info = new_info(c);
        if (tool) {
            agent__copy(info, "call_id", cb, "id");
            agent__copy(info, "name", cb, "name");
        } else if (msg) {
            json_object_set_new(info, "native_item_id", json_string(msg));
        }
        agent__item_start(c, ikey, tool ? "tool_call" : "reasoning",
                          tool ? NULL : "assistant", info, 0, &rc);
        snprintf(key, sizeof key, "i:%lld", (long long)index);
        json_object_set_new(c->state, key, json_string(ikey));
    }
    return rc;
}

static int block_delta(agent_conv_t *c, json_t *ev)
{
    char key[64];
    snprintf(key, sizeof key, "i:%lld", (long long)json_integer_value(agent__get(ev, "index")));
    json_t *delta = agent__get(ev, "delta");
    const char *type = agent__str(delta, "type");
    const char *text = NULL;
    if (!type)
        return REEL_OK;
    if (!strcmp(type, "text_delta"))
        text = agent__str(delta, "text");
    else if (!strcmp(type, "thinking_delta"))
        text = agent__str(delta, "thinking");
    else if (!strcmp(type, "input_json_delta"))
        text = agent__str(delta, "partial_json");
    if (!text)
        return REEL_OK; /* signature_delta and the like: bookkeeping only */
    int rc = REEL_OK;
    agent__item_t *it = agent__item_find(c, agent__str(c->state, key));
    if (!it && !strcmp(type, "text_delta")) { /* orphan delta: a stub item first */
        const char *msg = stream_message_id(c);
        char mkey[300];
        snprintf(mkey, sizeof mkey, "m:%s", msg ? msg : "");
        json_t *info = new_info(c);
        if (msg)
            json_object_set_new(info, "native_item_id", json_string(msg));
        it = agent__item_start(c, mkey, "message", "assistant", info, 1, &rc);
        json_object_set_new(c->state, key, json_string(mkey));
    }
    if (!it)
        return rc;
    return agent__item_delta(c, it, text, strlen(text), 0);
}

static int stream_event(agent_conv_t *c, json_t *line)
{
    json_t *ev = agent__get(line, "event");
    const char *type = agent__str(ev, "type");
    if (!type)
        return REEL_OK;
    if (!strcmp(type, "message_start")) {
        const char *id = agent__str(agent__get(ev, "message"), "id");
        json_object_set_new(c->state, "stream_msg", id ? json_string(id) : json_null());
        return REEL_OK;
    }
    if (!strcmp(type, "content_block_start"))
        return block_start(c, ev);
    if (!strcmp(type, "content_block_delta"))
        return block_delta(c, ev);
    return REEL_OK; /* content_block_stop, message_delta, message_stop */
}

/* ---- Assistant and user lines ---- */

static int question(agent_conv_t *c, json_t *block, const char *name)
{
    json_t *d = json_object();
    agent__copy(d, "question_id", block, "id");
    json_t *input = agent__get(block, "input");
    json_object_set_new(d, "tool", json_string(name));
    if (!strcmp(name, "ExitPlanMode")) {
        agent__copy(d, "plan", input, "plan");
        json_object_set_new(d, "questions",
                            json_pack("[{s:s,s:[{s:s},{s:s}]}]", "question", "Approve the plan?",
                                      "options", "label", "approve", "label", "reject"));
    } else {
        agent__copy(d, "questions", input, "questions");
    }
    json_object_set_new(d, "status", json_string("requested"));
    json_t *qs = agent__get(c->state, "questions");
    if (!qs)
        json_object_set_new(c->state, "questions", qs = json_object());
    const char *id = agent__str(block, "id");
    if (id)
        json_object_set_new(qs, id, json_true());
    return agent__emit(c, "question.requested", d);
}

static int assistant_text(agent_conv_t *c, const char *msg, json_t *block, const char *kind,
                          const char *text)
{
    char key[300];
    if (!strcmp(kind, "message"))
        snprintf(key, sizeof key, "m:%s", msg ? msg : "");
    else
        snprintf(key, sizeof key, "r:%s", msg ? msg : "");
    agent__item_t *it = agent__item_find(c, key);
    if (!it && !strcmp(kind, "reasoning")) { /* a streamed thinking block, by prefix */
        for (size_t i = 0; i < c->n_items; i++)
            if (!strncmp(c->items[i].key, key, strlen(key))) {
                it = &c->items[i];
                break;
            }
    }
    json_t *extra = NULL;
    if (!strcmp(agent__str(block, "type"), "redacted_thinking"))
        extra = json_pack("{s:b}", "redacted", 1);
    if (it) { /* streamed: complete with the final text */
        json_t *e = extra ? extra : json_object();
        json_object_set_new(e, "text", json_string(text ? text : ""));
        return agent__item_complete(c, it, "completed", e, 0);
    }
    json_t *info = new_info(c);
    if (msg)
        json_object_set_new(info, "native_item_id", json_string(msg));
    return agent__item_whole(c, kind, "assistant", info, text, extra);
}

/* ---- Usage ---- */

/* Token counts of a Messages API usage object into 'd' under reel's names. */
static void usage_tokens(json_t *d, json_t *u)
{
    agent__copy(d, "input_tokens", u, "input_tokens");
    agent__copy(d, "output_tokens", u, "output_tokens");
    agent__copy(d, "cached_input_tokens", u, "cache_read_input_tokens");
    agent__copy(d, "cache_creation_input_tokens", u, "cache_creation_input_tokens");
}

/* Where the usage of an assistant message is the only count (Amp, whose result line has
 * none, and Claude Code project transcripts, which have no result line): one usage event
 * per message id (the lines of one message repeat it). In Claude stream-json the result
 * line carries the total, so message usage is not counted there. */
static int per_message_usage(agent_conv_t *c)
{
    return c->ops == &agent__amp_ops || json_is_true(agent__get(c->state, "transcript"));
}

static int message_usage(agent_conv_t *c, json_t *line)
{
    json_t *m = agent__get(line, "message");
    json_t *u = agent__get(m, "usage");
    if (!json_is_object(u) || !per_message_usage(c))
        return REEL_OK;
    const char *id = agent__str(m, "id");
    json_t *seen = state_object(c, "usage_msgs");
    if (id && agent__get(seen, id))
        return REEL_OK;
    if (id)
        json_object_set_new(seen, id, json_true());
    json_object_set_new(c->state, "msg_usage", json_true()); /* counted in this turn */
    json_t *d = json_object();
    json_object_set_new(d, "turn_end", json_false());
    agent__copy(d, "stop_reason", m, "stop_reason");
    agent__copy(d, "model", m, "model");
    usage_tokens(d, u);
    return agent__emit(c, "usage", d);
}

static int assistant(agent_conv_t *c, json_t *line)
{
    json_t *m = agent__get(line, "message");
    const char *msg = agent__str(m, "id");
    json_t *content = agent__get(m, "content");
    int rc = REEL_OK;
    if (json_is_string(content)) { /* the block is only read: release it after */
        json_t *block = json_pack("{s:s}", "type", "text");
        rc = assistant_text(c, msg, block, "message", json_string_value(content));
        json_decref(block);
    }
    size_t i;
    json_t *b;
    json_array_foreach(content, i, b) {
        const char *type = agent__str(b, "type");
        if (rc || !type)
            break;
        if (!strcmp(type, "text")) {
            rc = assistant_text(c, msg, b, "message", agent__str(b, "text"));
        } else if (!strcmp(type, "thinking") || !strcmp(type, "redacted_thinking")) {
            rc = assistant_text(c, msg, b, "reasoning", agent__str(b, "thinking"));
        } else if (!strcmp(type, "tool_use") || !strcmp(type, "server_tool_use")) {
            const char *id = agent__str(b, "id"), *name = agent__str(b, "name");
            char key[300];
            snprintf(key, sizeof key, "t:%s", id ? id : "");
            json_t *info = new_info(c);
            agent__copy(info, "call_id", b, "id");
            agent__copy(info, "name", b, "name");
            json_t *extra = json_object();
            agent__copy(extra, "arguments", b, "input");
            rc = agent__item_tool(c, key, "tool_call", info, "completed", extra);
            if (!rc && name && (!strcmp(name, "AskUserQuestion") || !strcmp(name, "ExitPlanMode")))
                rc = question(c, b, name);
            if (id && agent__get(b, "input")) /* until its result: a refusal names it */
                json_object_set(state_object(c, "tool_inputs"), id, agent__get(b, "input"));
        }
    }
    json_t *err = agent__get(line, "error");
    if (!rc && err && !json_is_null(err)) {
        const char *text = NULL;
        json_array_foreach(content, i, b) {
            if (!text)
                text = agent__str(b, "text");
        }
        c->failed = 1;
        json_t *status = agent__get(line, "api_error_status");
        if (!status) /* project transcripts: camelCase */
            status = agent__get(line, "apiErrorStatus");
        char code[32];
        json_t *extra = json_object();
        if (json_is_integer(status)) { /* an API error: its HTTP status is the code */
            snprintf(code, sizeof code, "%lld", (long long)json_integer_value(status));
            json_object_set(extra, "error", err);
        }
        /* The result line that follows reports the same API error: not twice. */
        if (json_is_integer(status) || json_is_true(agent__get(line, "is_api_error_message")))
            json_object_set_new(c->state, "api_error", json_true());
        agent__copy(extra, "api_error_status", line, "api_error_status");
        agent__copy(extra, "api_error_status", line, "apiErrorStatus");
        agent__copy(extra, "api_error_type", line, "api_error_type");
        agent__copy(extra, "api_error_type", line, "apiErrorType");
        agent__copy(extra, "api_error", line, "api_error");
        agent__copy(extra, "request_id", line, "request_id");
        agent__copy(extra, "request_id", line, "requestId");
        rc = agent__error(c,
                          json_is_integer(status) ? code
                          : json_is_string(err)   ? json_string_value(err)
                                                  : "error",
                          text ? text : json_string_value(err), extra);
    }
    if (!rc)
        rc = message_usage(c, line);
    return rc;
}

static int tool_result(agent_conv_t *c, json_t *line, json_t *b)
{
    const char *call = agent__str(b, "tool_use_id");
    if (call)
        json_object_del(state_object(c, "tool_inputs"), call);
    int is_error = json_is_true(agent__get(b, "is_error"));
    json_t *info = new_info(c);
    agent__copy(info, "call_id", b, "tool_use_id");
    json_t *extra = json_object();
    agent__copy(extra, "output", b, "content");
    json_object_set_new(extra, "is_error", json_boolean(is_error));
    agent__copy(extra, "result", line, "tool_use_result");
    agent__copy(extra, "result", line, "toolUseResult"); /* project transcripts */
    int rc = agent__item_tool(c, NULL, "tool_result", info, is_error ? "failed" : "completed",
                              extra);
    json_t *pending = call ? agent__get(agent__get(c->state, "perm_tools"), call) : NULL;
    if (!rc && json_is_string(pending)) { /* the tool ran (or not): the permission's answer */
        rc = agent__emit_syn(c, "permission.resolved",
                             json_pack("{s:O,s:s}", "permission_id", pending, "status",
                                       is_error ? "reject" : "accept"));
        json_object_set_new(agent__get(c->state, "perm_tools"), call, json_true());
    }
    json_t *qs = agent__get(c->state, "questions");
    if (!rc && call && agent__get(qs, call)) {
        json_object_del(qs, call);
        json_t *d = json_object();
        json_object_set_new(d, "question_id", json_string(call));
        json_object_set_new(d, "status", json_string(is_error ? "rejected" : "answered"));
        agent__copy(d, "answer", b, "content");
        rc = agent__emit(c, "question.resolved", d);
    }
    return rc;
}

static int user(agent_conv_t *c, json_t *line)
{
    json_t *content = agent__get(agent__get(line, "message"), "content");
    if (json_is_string(content))
        return agent__item_whole(c, "message", "user", new_info(c), json_string_value(content),
                                 NULL);
    size_t i;
    json_t *b;
    int rc = REEL_OK;
    store_buf_t text = STORE_BUF_INIT;
    json_array_foreach(content, i, b) {
        const char *type = agent__str(b, "type");
        if (rc || !type)
            break;
        if (!strcmp(type, "tool_result"))
            rc = tool_result(c, line, b);
        else if (!strcmp(type, "text") && agent__str(b, "text"))
            store_buf_puts(&text, agent__str(b, "text"));
    }
    if (!rc && text.len)
        rc = agent__item_whole(c, "message", "user", new_info(c), store_buf_cstr(&text), NULL);
    store_buf_release(&text);
    return rc;
}

/* ---- Result, permissions, init ---- */

/* Permissions asked per tool_use id: the control_request id still waiting for its
 * resolution, or true once resolved (or synthesized from a denial). */
static json_t *perm_tools(agent_conv_t *c)
{
    json_t *seen = agent__get(c->state, "perm_tools");
    if (!seen)
        json_object_set_new(c->state, "perm_tools", seen = json_object());
    return seen;
}

/* A refusal the agent reports without having asked: a synthetic requested + rejected pair
 * (permission_id "denial:<tool_use_id>"). */
static int denial_pair(agent_conv_t *c, const char *tid, json_t *tool, json_t *input, json_t *message)
{
    if (tid)
        json_object_set_new(perm_tools(c), tid, json_true());
    char pid[300];
    snprintf(pid, sizeof pid, "denial:%s", tid ? tid : "");
    json_t *req = json_object();
    json_object_set_new(req, "permission_id", json_string(pid));
    if (tool)
        json_object_set(req, "action", tool);
    if (tid)
        json_object_set_new(req, "tool_use_id", json_string(tid));
    if (input)
        json_object_set(req, "input", input);
    if (message)
        json_object_set(req, "message", message);
    json_object_set_new(req, "status", json_string("requested"));
    int rc = agent__emit_syn(c, "permission.requested", req);
    if (!rc)
        rc = agent__emit_syn(c, "permission.resolved",
                             json_pack("{s:s,s:s}", "permission_id", pid, "status", "reject"));
    return rc;
}

static int denials(agent_conv_t *c, json_t *line)
{
    size_t i;
    json_t *d;
    int rc = REEL_OK;
    json_array_foreach(agent__get(line, "permission_denials"), i, d) {
        const char *tid = agent__str(d, "tool_use_id");
        json_t *seen = tid ? agent__get(perm_tools(c), tid) : NULL;
        if (rc || json_is_true(seen))
            continue;
        if (json_is_string(seen)) { /* asked through control_request: now denied */
            rc = agent__emit_syn(c, "permission.resolved",
                                 json_pack("{s:O,s:s}", "permission_id", seen, "status", "reject"));
            json_object_set_new(perm_tools(c), tid, json_true());
            continue;
        }
        rc = denial_pair(c, tid, agent__get(d, "tool_name"), agent__get(d, "tool_input"), NULL);
    }
    return rc;
}

/* system/permission_denied (2.1.x): the CLI refused a tool as it happened; the result's
 * permission_denials then names it again (skipped). */
static int permission_denied(agent_conv_t *c, json_t *line)
{
    const char *tid = agent__str(line, "tool_use_id");
    if (!tid || json_is_true(agent__get(perm_tools(c), tid)))
        return REEL_OK;
    json_t *pending = agent__get(perm_tools(c), tid);
    if (json_is_string(pending)) { /* asked through control_request: now denied */
        json_object_set_new(perm_tools(c), tid, json_true());
        return agent__emit_syn(c, "permission.resolved",
                               json_pack("{s:O,s:s}", "permission_id", pending, "status", "reject"));
    }
    return denial_pair(c, tid, agent__get(line, "tool_name"),
                       agent__get(agent__get(c->state, "tool_inputs"), tid), agent__get(line, "message"));
}

/* ---- Result ---- */

/* A result's usage, from the best source it has:
 *  1. model_usage_since_last_result (2.1.x): what this result added, per model;
 *  2. modelUsage and total_cost_usd: running totals of the process (they grow across the
 *     turns of one `--input-format stream-json` session, and after --resume they go on
 *     from the restored session cost): the difference with the previous result's;
 *  3. usage and total_cost_usd (older builds): running totals of the process, from zero
 *     at each system/init.
 * When a running total went down, a new count began: taken whole. The native running
 * totals (usage's fields, total_cost_usd) go under data.totals. */
static const char *const usage_names[][3] = {
    /* reel, usage, modelUsage */
    {"input_tokens", "input_tokens", "inputTokens"},
    {"output_tokens", "output_tokens", "outputTokens"},
    {"cached_input_tokens", "cache_read_input_tokens", "cacheReadInputTokens"},
    {"cache_creation_input_tokens", "cache_creation_input_tokens", "cacheCreationInputTokens"},
};
#define N_USAGE_NAMES (sizeof usage_names / sizeof usage_names[0])

static json_t *sum_models(json_t *per_model, const char *key, int real)
{
    json_int_t n = 0;
    double x = 0;
    const char *model;
    json_t *m;
    json_object_foreach(per_model, model, m) {
        n += json_integer_value(agent__get(m, key));
        x += json_number_value(agent__get(m, key));
    }
    return real ? json_real(x) : json_integer(n);
}

/* 'now' (running totals under reel's names, stolen) less 'base' (the previous ones, then
 * replaced): tokens into 'tok', cost_usd into 'd'. */
static void running_diff(json_t *d, json_t *tok, json_t *base, json_t *now)
{
    const char *k;
    json_t *v;
    int fresh = 0;
    json_object_foreach(now, k, v) {
        json_t *b = json_object_get(base, k);
        if (json_is_number(b) && json_number_value(v) < json_number_value(b))
            fresh = 1;
    }
    json_object_foreach(now, k, v) {
        json_t *b = fresh ? NULL : json_object_get(base, k);
        json_t *out = strcmp(k, "cost_usd") ? tok : d;
        if (!json_is_number(b))
            json_object_set(out, k, v);
        else if (json_is_integer(v) && json_is_integer(b))
            json_object_set_new(out, k, json_integer(json_integer_value(v) - json_integer_value(b)));
        else
            json_object_set_new(out, k, json_real(json_number_value(v) - json_number_value(b)));
    }
    json_object_clear(base);
    json_object_update(base, now);
    json_decref(now);
}

static void result_usage(agent_conv_t *c, json_t *line, json_t *d, json_t *tok)
{
    json_t *u = agent__get(line, "usage"), *mu = agent__get(line, "modelUsage");
    json_t *since = agent__get(line, "model_usage_since_last_result");
    json_t *cost = agent__get(line, "total_cost_usd");
    json_t *now = json_object();
    if (json_object_size(mu)) { /* keep its baseline current whichever source counts */
        for (size_t i = 0; i < N_USAGE_NAMES; i++)
            json_object_set_new(now, usage_names[i][0], sum_models(mu, usage_names[i][2], 0));
        json_object_set_new(now, "cost_usd",
                            json_is_number(cost) ? json_incref(cost) : sum_models(mu, "costUSD", 1));
    }
    if (json_object_size(since)) {
        for (size_t i = 0; i < N_USAGE_NAMES; i++)
            json_object_set_new(tok, usage_names[i][0], sum_models(since, usage_names[i][2], 0));
        json_object_set_new(d, "cost_usd", sum_models(since, "costUSD", 1));
        if (json_object_size(now)) { /* only the baseline moves */
            json_t *ignored = json_object();
            running_diff(ignored, ignored, state_object(c, "base_model_usage"), now);
            json_decref(ignored);
        } else {
            json_decref(now);
        }
    } else if (json_object_size(now)) {
        running_diff(d, tok, state_object(c, "base_model_usage"), now);
    } else {
        for (size_t i = 0; i < N_USAGE_NAMES; i++)
            agent__copy(now, usage_names[i][0], u, usage_names[i][1]);
        if (json_is_number(cost))
            json_object_set(now, "cost_usd", cost);
        running_diff(d, tok, state_object(c, "base_usage"), now);
    }
    json_t *totals = json_object();
    for (size_t i = 0; i < N_USAGE_NAMES; i++)
        agent__copy(totals, NULL, u, usage_names[i][1]);
    agent__copy(totals, NULL, line, "total_cost_usd");
    if (json_object_size(totals))
        json_object_set(d, "totals", totals);
    json_decref(totals);
}

static int result(agent_conv_t *c, json_t *line)
{
    json_t *d = json_object();
    json_object_set_new(d, "turn_end", json_true());
    agent__copy(d, "stop_reason", line, "stop_reason");
    agent__copy(d, "subtype", line, "subtype");
    /* Amp counts on its assistant messages; a result total would count them again. */
    int counted = per_message_usage(c) && json_is_true(agent__get(c->state, "msg_usage"));
    json_t *tok = counted ? json_object() : json_incref(d); /* where token counts go */
    result_usage(c, line, d, tok);
    json_decref(tok);
    json_object_del(c->state, "msg_usage");
    agent__copy(d, "duration_ms", line, "duration_ms");
    agent__copy(d, "duration_api_ms", line, "duration_api_ms");
    agent__copy(d, "num_turns", line, "num_turns");
    agent__copy(d, "model_usage", line, "modelUsage");
    int rc = agent__emit(c, "usage", d);
    const char *sub = agent__str(line, "subtype");
    json_t *status = agent__get(line, "api_error_status");
    int api_error = json_is_integer(status);
    int told = json_is_true(agent__get(c->state, "api_error")) &&
               (api_error || (sub && !strcmp(sub, "success")));
    json_object_del(c->state, "api_error");
    if (!rc && (json_is_true(agent__get(line, "is_error")) || (sub && strcmp(sub, "success")))) {
        c->failed = 1;
        if (told) /* the assistant line already gave this API error */
            return denials(c, line);
        const char *msg = agent__str(line, "result");
        if (!msg)
            msg = agent__str(line, "error");
        json_t *errors = agent__get(line, "errors");
        if (!msg && json_is_array(errors))
            msg = json_string_value(json_array_get(errors, 0));
        char fallback[160];
        if (!msg) {
            snprintf(fallback, sizeof fallback, "the turn ended with %.100s", sub ? sub : "an error");
            msg = fallback;
        }
        json_t *extra = json_object();
        agent__copy(extra, "errors", line, "errors");
        agent__copy(extra, "api_error_status", line, "api_error_status");
        agent__copy(extra, "api_error_type", line, "api_error_type");
        char code[128];
        if (api_error) /* an API error: its HTTP status, not "success" */
            snprintf(code, sizeof code, "%lld", (long long)json_integer_value(status));
        else
            snprintf(code, sizeof code, "%.127s", sub && strcmp(sub, "success") ? sub : "error");
        rc = agent__error(c, code, msg, extra);
    } else if (!rc) {
        c->failed = 0; /* a later successful turn clears an earlier failure */
    }
    return rc ? rc : denials(c, line);
}

static int control_request(agent_conv_t *c, json_t *line)
{
    json_t *req = agent__get(line, "request");
    const char *sub = agent__str(req, "subtype");
    if (!sub || strcmp(sub, "can_use_tool"))
        return REEL_OK;
    const char *tid = agent__str(req, "tool_use_id");
    json_t *rid = agent__get(line, "request_id");
    if (tid && json_is_string(rid))
        json_object_set(perm_tools(c), tid, rid);
    json_t *d = json_object();
    agent__copy(d, "permission_id", line, "request_id");
    agent__copy(d, "action", req, "tool_name");
    agent__copy(d, "input", req, "input");
    agent__copy(d, "tool_use_id", req, "tool_use_id");
    agent__copy(d, "suggestions", req, "permission_suggestions");
    agent__copy(d, "blocked_path", req, "blocked_path");
    json_object_set_new(d, "status", json_string("requested"));
    return agent__emit(c, "permission.requested", d);
}

static int control_response(agent_conv_t *c, json_t *line)
{
    /* Only a reply the runner wrote (stdin) resolves a permission. */
    json_t *resp = agent__get(line, "response");
    json_t *body = agent__get(resp, "response");
    const char *behavior = agent__str(body, "behavior");
    if (c->stream != AGENT_STDIN || !behavior)
        return REEL_OK;
    const char *status = "reject";
    if (!strcmp(behavior, "allow"))
        status = agent__get(body, "updatedPermissions") ? "accept_for_session" : "accept";
    json_t *d = json_object();
    agent__copy(d, "permission_id", resp, "request_id");
    json_object_set_new(d, "status", json_string(status));
    agent__copy(d, "message", body, "message");
    return agent__emit_syn(c, "permission.resolved", d);
}

static int init(agent_conv_t *c, json_t *line)
{
    /* A new process: its usage totals start from zero (modelUsage's may go on). */
    json_object_del(c->state, "base_usage");
    json_object_del(c->state, "api_error");
    json_t *d = json_object();
    agent__copy(d, "model", line, "model");
    agent__copy(d, "cwd", line, "cwd");
    agent__copy(d, "tools", line, "tools");
    agent__copy(d, "permission_mode", line, "permissionMode");
    agent__copy(d, "version", line, "claude_code_version");
    agent__copy(d, "mcp_servers", line, "mcp_servers");
    return agent__session_started(c, d, 1);
}

/* ---- Claude Code project transcripts (~/.claude/projects/<dir>/<id>.jsonl) ---- */

/* A transcript line: camelCase sessionId, one content block per assistant line (usage
 * repeated on each), no init and no result line, and many bookkeeping types
 * (queue-operation, attachment, file-history-snapshot, summary, cost-state, ...) that are
 * agent.native. cost-state carries the session's running cost (it survives a resume). */
static int transcript_line(agent_conv_t *c, json_t *line, const char *type)
{
    int rc = REEL_OK;
    /* session.started on the first line that says where (bookkeeping lines before it,
     * such as queue-operation, are agent.native), titled by a summary line if one came. */
    if (!c->started && type &&
        (agent__get(line, "cwd") || !strcmp(type, "user") || !strcmp(type, "assistant"))) {
        json_t *d = json_object();
        agent__copy(d, "cwd", line, "cwd");
        agent__copy(d, "version", line, "version");
        agent__copy(d, "git_branch", line, "gitBranch");
        agent__copy(d, "title", c->state, "summary");
        json_object_set_new(d, "format", json_string("transcript"));
        rc = agent__session_started(c, d, 0);
    }
    if (rc || !type)
        return rc;
    if (!strcmp(type, "cost-state")) {
        json_t *cost = agent__get(line, "totalCostUSD");
        if (!json_is_number(cost))
            return REEL_OK;
        json_t *d = json_object(), *totals = json_object();
        json_object_set_new(d, "turn_end", json_false());
        json_t *prev = agent__get(c->state, "cost_state");
        double now = json_number_value(cost), before = json_number_value(prev);
        json_object_set_new(d, "cost_usd", json_real(json_is_number(prev) && now >= before
                                                         ? now - before
                                                         : now));
        json_object_set(totals, "total_cost_usd", cost);
        json_object_set_new(d, "totals", totals);
        agent__copy(d, "model_usage", line, "modelUsage");
        json_object_set(c->state, "cost_state", cost);
        return agent__emit(c, "usage", d);
    }
    return REEL_OK; /* system api_error (one per attempt), compact_boundary, ...: native */
}

int agent__claude_convert(agent_conv_t *c, json_t *line)
{
    const char *type = agent__str(line, "type");
    agent__set_nsid(c, agent__str(line, "session_id"));
    /* A project transcript line: sessionId (camelCase) instead of session_id. */
    const char *tsid = agent__str(line, "sessionId");
    if (tsid && !agent__get(line, "session_id")) {
        agent__set_nsid(c, tsid);
        json_object_set_new(c->state, "transcript", json_true());
    }
    int transcript = json_is_true(agent__get(c->state, "transcript"));
    json_t *parent = agent__get(line, "parent_tool_use_id");
    json_object_set(c->state, "parent", parent ? parent : json_null());
    if (!type)
        return AGENT__UNKNOWN;
    if (transcript && tsid) {
        int rc = transcript_line(c, line, type);
        if (rc)
            return rc;
        if (strcmp(type, "user") && strcmp(type, "assistant"))
            return REEL_OK; /* bookkeeping: agent.native */
    }
    if (!strcmp(type, "summary") || !strcmp(type, "file-history-snapshot")) {
        /* transcript lines without a sessionId: agent.native (a summary titles the
         * session when it comes first, as in older transcripts) */
        if (!strcmp(type, "summary") && !agent__get(c->state, "summary"))
            agent__copy(c->state, NULL, line, "summary");
        return REEL_OK;
    }
    if (!strcmp(type, "system")) {
        const char *sub = agent__str(line, "subtype");
        if (sub && !strcmp(sub, "permission_denied"))
            return permission_denied(c, line);
        return sub && !strcmp(sub, "init") ? init(c, line) : REEL_OK;
    }
    if (!strcmp(type, "assistant"))
        return assistant(c, line);
    if (!strcmp(type, "user"))
        return user(c, line);
    if (!strcmp(type, "stream_event"))
        return stream_event(c, line);
    if (!strcmp(type, "result"))
        return result(c, line);
    if (!strcmp(type, "control_request"))
        return control_request(c, line);
    if (!strcmp(type, "control_response"))
        return control_response(c, line);
    if (!strcmp(type, "control_cancel_request"))
        return agent__emit(c, "permission.resolved",
                           json_pack("{s:O?,s:s}", "permission_id", agent__get(line, "request_id"),
                                     "status", "cancelled"));
    if (!strcmp(type, "rate_limit_event") || !strcmp(type, "keep_alive") ||
        !strcmp(type, "update_environment_variables"))
        return REEL_OK;
    return AGENT__UNKNOWN;
}

/* ---- Invocation ---- */

static void claude_argv(agent__argv_t *a, const char *resume_id, const char *prompt,
                        char *const *extra)
{
    agent__argv_add(a, "-p");
    agent__argv_add(a, "--output-format");
    agent__argv_add(a, "stream-json");
    agent__argv_add(a, "--verbose");
    if (resume_id) {
        agent__argv_add(a, "--resume");
        agent__argv_add(a, resume_id);
    }
    for (size_t i = 0; extra && extra[i]; i++)
        agent__argv_add(a, extra[i]);
    agent__argv_prompt(a, prompt);
}

const agent_ops_t agent__claude_ops = {
    .name = "claude",
    .bin = "claude",
    .convert = agent__claude_convert,
    .build_argv = claude_argv,
};
