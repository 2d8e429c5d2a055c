/* opencode.c -- OpenCode to universal events: the lines of `opencode run --format json`
 * ({type, timestamp, sessionID, part|error}) and the server event bus frames
 * ({type, properties}) that `opencode serve` streams over SSE. Mapping:
 * docs/AGENTS.md (§3, "opencode" in the per-agent notes).
 *
 * Items are parts, keyed "p:<part id>". Text arrives three ways and all three give the
 * same deltas: message.part.updated with a `delta` beside the part (older builds),
 * message.part.delta {partID, field:"text", delta} (newer builds), or a re-sent part
 * without delta, which is diffed against the text already seen (never re-emitted whole).
 */
#include <stdio.h>
#include <string.h>

#include "agents/agent_int.h"

static int ensure_started(agent_conv_t *c, json_t *line)
{
    const char *sid = agent__str(line, "sessionID");
    if (!sid)
        sid = agent__str(agent__get(line, "properties"), "sessionID");
    agent__set_nsid(c, sid);
    if (c->started || !sid)
        return REEL_OK;
    return agent__session_started(c, NULL, 0);
}

/* The role of message 'mid' as told by message.updated ("assistant" when unknown). */
static const char *role_of(agent_conv_t *c, const char *mid)
{
    const char *r = mid ? agent__str(agent__get(c->state, "roles"), mid) : NULL;
    return r ? r : "assistant";
}

static agent__item_t *part_item(agent_conv_t *c, json_t *part, const char *pid,
                                const char *kind, int *rc)
{
    char key[300];
    snprintf(key, sizeof key, "p:%s", pid ? pid : "");
    agent__item_t *it = agent__item_find(c, key);
    if (it)
        return it;
    if (agent__get(agent__get(c->state, "done"), key)) { /* completed earlier */
        *rc = REEL_OK;
        return NULL;
    }
    json_t *info = json_object();
    if (pid)
        json_object_set_new(info, "native_item_id", json_string(pid));
    agent__copy(info, "message_id", part, "messageID");
    return agent__item_start(c, key, kind, role_of(c, agent__str(part, "messageID")), info,
                             0, rc);
}

static int complete(agent_conv_t *c, agent__item_t *it, const char *status, json_t *extra)
{
    json_t *done = agent__get(c->state, "done");
    if (!done)
        json_object_set_new(c->state, "done", done = json_object());
    json_object_set_new(done, it->key, json_true());
    return agent__item_complete(c, it, status, extra, 0);
}

/* A text or reasoning part: deltas from 'delta' or by diffing 'text' with what was seen. */
static int text_part(agent_conv_t *c, json_t *part, const char *delta, const char *kind)
{
    int rc = REEL_OK;
    agent__item_t *it = part_item(c, part, agent__str(part, "id"), kind, &rc);
    if (!it)
        return rc;
    const char *text = agent__str(part, "text");
    if (delta && *delta) {
        rc = agent__item_delta(c, it, delta, strlen(delta), 0);
    } else if (text) {
        size_t seen = it->text.len, n = strlen(text);
        if (n > seen && (!seen || !memcmp(it->text.data, text, seen)))
            rc = agent__item_delta(c, it, text + seen, n - seen, 1);
        else if (n != seen || (seen && memcmp(it->text.data, text, n)))
            rc = agent__emit_syn(c, "item.delta",
                                 json_pack("{s:s,s:s,s:b}", "item_id", it->id, "text", text,
                                           "replace", 1));
    }
    if (rc)
        return rc;
    if (text && (it->text.len != strlen(text) ||
                 (it->text.len && memcmp(it->text.data, text, it->text.len)))) {
        store_buf_clear(&it->text); /* keep the item's text equal to the part's */
        store_buf_puts(&it->text, text);
    }
    /* An assistant part ends with time.end; a user part (no time at all) is whole as sent. */
    if (agent__get(agent__get(part, "time"), "end") ||
        !strcmp(role_of(c, agent__str(part, "messageID")), "user"))
        return complete(c, it, "completed", NULL);
    return REEL_OK;
}

/* `opencode run` prints no permission lines: a call refused by a "deny" rule, or by the
 * automatic rejection of an "ask" (run has no one to ask), shows only as the tool's error
 * text. Those two texts give a synthetic permission.requested + permission.resolved
 * (reject) pair, like Claude's permission_denials. */
static const struct {
    const char *prefix, *reason;
} refusals[] = {
    {"The user rejected permission to use this specific tool call", "rejected"},
    {"The user has specified a rule which prevents you from using this specific tool call",
     "denied_by_rule"},
};

static int refusal(agent_conv_t *c, json_t *part, json_t *state)
{
    const char *err = agent__str(state, "error");
    const char *reason = NULL;
    for (size_t i = 0; err && i < sizeof refusals / sizeof refusals[0]; i++)
        if (!strncmp(err, refusals[i].prefix, strlen(refusals[i].prefix)))
            reason = refusals[i].reason;
    if (!reason)
        return REEL_OK;
    json_t *d = json_object();
    agent__copy(d, "permission_id", part, "callID");
    agent__copy(d, "action", part, "tool");
    agent__copy(d, "input", state, "input");
    agent__copy(d, "tool_use_id", part, "callID");
    json_object_set_new(d, "status", json_string("requested"));
    int rc = agent__emit_syn(c, "permission.requested", d);
    if (rc)
        return rc;
    d = json_object();
    agent__copy(d, "permission_id", part, "callID");
    json_object_set_new(d, "status", json_string("reject"));
    json_object_set_new(d, "reason", json_string(reason));
    agent__copy(d, "message", state, "error");
    return agent__emit_syn(c, "permission.resolved", d);
}

static int tool_part(agent_conv_t *c, json_t *part)
{
    json_t *state = agent__get(part, "state");
    const char *status = agent__str(state, "status");
    const char *call = agent__str(part, "callID");
    char key[300];
    snprintf(key, sizeof key, "p:%s", call ? call : "");
    if (agent__get(agent__get(c->state, "done"), key))
        return REEL_OK;
    int rc = REEL_OK;
    agent__item_t *it = agent__item_find(c, key);
    if (!it) {
        json_t *info = json_object();
        agent__copy(info, "native_item_id", part, "id");
        agent__copy(info, "call_id", part, "callID");
        agent__copy(info, "name", part, "tool");
        agent__copy(info, "arguments", state, "input");
        int whole = status && (!strcmp(status, "completed") || !strcmp(status, "error"));
        it = agent__item_start(c, key, "tool_call", NULL, info, whole, &rc);
        if (!it)
            return rc;
    }
    if (!status || (strcmp(status, "completed") && strcmp(status, "error")))
        return REEL_OK;
    int failed = !strcmp(status, "error");
    json_t *args = json_object();
    agent__copy(args, "arguments", state, "input");
    if ((rc = complete(c, it, failed ? "failed" : "completed", args)))
        return rc;
    if (failed && (rc = refusal(c, part, state)))
        return rc;
    json_t *info = json_object();
    agent__copy(info, "call_id", part, "callID");
    agent__copy(info, "name", part, "tool");
    json_t *extra = json_object();
    agent__copy(extra, "output", state, failed ? "error" : "output");
    json_object_set_new(extra, "is_error", json_boolean(failed));
    json_t *exit_code = agent__get(agent__get(state, "metadata"), "exit");
    if (json_is_integer(exit_code)) /* bash: the command's exit status */
        json_object_set(extra, "exit_code", exit_code);
    agent__copy(extra, "title", state, "title");
    agent__copy(extra, "metadata", state, "metadata");
    agent__copy(extra, "attachments", state, "attachments");
    return agent__item_tool(c, NULL, "tool_result", info, failed ? "failed" : "completed", extra);
}

/* Whether the turn has ended (a step_finish said so): session.idle and `done` then end
 * no second turn (one prompt, one turn_end). */
static int turn_ended(agent_conv_t *c)
{
    return json_is_true(agent__get(c->state, "turn_ended"));
}

static void set_turn_ended(agent_conv_t *c, int ended)
{
    json_object_set_new(c->state, "turn_ended", json_boolean(ended));
}

/* session.idle / done: the turn's end, unless a step_finish already ended it. */
static int idle(agent_conv_t *c, json_t *d)
{
    if (turn_ended(c)) {
        json_decref(d);
        return REEL_OK;
    }
    set_turn_ended(c, 1);
    json_object_set_new(d, "turn_end", json_true());
    return agent__emit(c, "usage", d);
}

static int step_finish(agent_conv_t *c, json_t *part)
{
    json_t *t = agent__get(part, "tokens");
    json_t *d = json_object();
    const char *reason = agent__str(part, "reason");
    /* the loop goes on after "tool-calls" (and "unknown"); any other reason ends the turn */
    int end = reason && strcmp(reason, "tool-calls") && strcmp(reason, "unknown");
    set_turn_ended(c, end);
    json_object_set_new(d, "turn_end", json_boolean(end));
    agent__copy(d, "stop_reason", part, "reason");
    /* The tokens and cost of this step (one model call), not a running total: every
     * step_finish is summed. input excludes cache reads, output excludes reasoning. */
    agent__copy(d, "input_tokens", t, "input");
    agent__copy(d, "output_tokens", t, "output");
    agent__copy(d, "reasoning_tokens", t, "reasoning");
    agent__copy(d, "cached_input_tokens", agent__get(t, "cache"), "read");
    agent__copy(d, "cache_creation_input_tokens", agent__get(t, "cache"), "write");
    agent__copy(d, "cost_usd", part, "cost");
    return agent__emit(c, "usage", d);
}

static int part(agent_conv_t *c, json_t *p, const char *delta)
{
    const char *type = agent__str(p, "type");
    if (!type)
        return REEL_OK;
    if (!strcmp(type, "text"))
        return text_part(c, p, delta, "message");
    if (!strcmp(type, "reasoning"))
        return text_part(c, p, delta, "reasoning");
    if (!strcmp(type, "tool"))
        return tool_part(c, p);
    if (!strcmp(type, "step-finish"))
        return step_finish(c, p);
    if (!strcmp(type, "step-start"))
        set_turn_ended(c, 0);
    return REEL_OK; /* step-start, snapshot, patch, agent, retry, compaction, subtask, file */
}

static int error_event(agent_conv_t *c, json_t *err)
{
    c->failed = 1;
    json_t *extra = json_object();
    agent__copy(extra, "status", agent__get(err, "data"), "statusCode"); /* APIError */
    agent__copy(extra, "retryable", agent__get(err, "data"), "isRetryable");
    agent__copy(extra, "details", err, "data");
    return agent__error(c, agent__str(err, "name"), agent__str(agent__get(err, "data"), "message"),
                        extra);
}

/* ---- `opencode run --format json` ---- */

static int run_line(agent_conv_t *c, const char *type, json_t *line)
{
    json_t *p = agent__get(line, "part");
    if (!strcmp(type, "step_start")) {
        set_turn_ended(c, 0);
        return REEL_OK;
    }
    if (!strcmp(type, "text") || !strcmp(type, "reasoning") || !strcmp(type, "tool_use") ||
        !strcmp(type, "step_finish"))
        return part(c, p, NULL);
    if (!strcmp(type, "error"))
        return error_event(c, agent__get(line, "error"));
    if (!strcmp(type, "done")) {
        json_t *d = json_pack("{s:O?,s:O?}", "stop_reason", agent__get(line, "reason"),
                              "rejected", agent__get(line, "rejected"));
        return idle(c, d);
    }
    return AGENT__UNKNOWN;
}

/* ---- The event bus ---- */

static const char *const raw_only[] = {
    "server.", "session.updated", "session.status", "session.diff", "session.compacted",
    "session.deleted", "message.removed", "message.part.removed", "todo.", "file.",
    "command.", "pty.", "lsp.", "tui.", "installation.", "vcs.", "project.", "mcp.", "ide.",
    /* 1.18: instance-wide state (plugins loaded, model catalog, references, integrations) */
    "plugin.", "catalog.", "reference.", "integration.",
};

static int message_updated(agent_conv_t *c, json_t *info)
{
    const char *id = agent__str(info, "id"), *role = agent__str(info, "role");
    json_t *roles = agent__get(c->state, "roles");
    if (!roles)
        json_object_set_new(c->state, "roles", roles = json_object());
    if (id && role)
        json_object_set_new(roles, id, json_string(role));
    json_t *err = agent__get(info, "error");
    if (err && !json_is_null(err) && !agent__get(agent__get(c->state, "errors"), id ? id : "")) {
        json_t *seen = agent__get(c->state, "errors");
        if (!seen)
            json_object_set_new(c->state, "errors", seen = json_object());
        json_object_set_new(seen, id ? id : "", json_true());
        return error_event(c, err);
    }
    return REEL_OK;
}

static const char *reply_status(const char *reply)
{
    if (!reply)
        return "reject";
    if (!strcmp(reply, "once"))
        return "accept";
    if (!strcmp(reply, "always"))
        return "accept_for_session";
    return "reject";
}

static int bus_line(agent_conv_t *c, const char *type, json_t *pr)
{
    if (!strcmp(type, "session.created")) {
        json_t *info = agent__get(pr, "info");
        agent__set_nsid(c, agent__str(info, "id"));
        if (c->started)
            return REEL_OK;
        json_t *d = json_object();
        agent__copy(d, "title", info, "title");
        agent__copy(d, "cwd", info, "directory");
        agent__copy(d, "version", info, "version");
        return agent__session_started(c, d, 1);
    }
    if (!strcmp(type, "message.updated"))
        return message_updated(c, agent__get(pr, "info"));
    if (!strcmp(type, "message.part.updated"))
        return part(c, agent__get(pr, "part"), agent__str(pr, "delta"));
    if (!strcmp(type, "message.part.delta")) {
        const char *field = agent__str(pr, "field"), *delta = agent__str(pr, "delta");
        if ((field && strcmp(field, "text")) || !delta)
            return REEL_OK;
        int rc = REEL_OK;
        json_t *stub = json_pack("{s:O?}", "messageID", agent__get(pr, "messageID"));
        agent__item_t *it = part_item(c, stub, agent__str(pr, "partID"), "message", &rc);
        json_decref(stub);
        return it ? agent__item_delta(c, it, delta, strlen(delta), 0) : rc;
    }
    if (!strcmp(type, "session.idle"))
        return idle(c, json_object());
    if (!strcmp(type, "session.error"))
        return error_event(c, agent__get(pr, "error"));
    if (!strcmp(type, "permission.asked") || !strcmp(type, "permission.updated")) {
        json_t *d = json_object();
        agent__copy(d, "permission_id", pr, "id");
        agent__copy(d, "action", pr, "permission");
        agent__copy(d, "patterns", pr, "patterns");
        agent__copy(d, "metadata", pr, "metadata");
        agent__copy(d, "always", pr, "always");
        agent__copy(d, "tool", pr, "tool");
        agent__copy(d, "tool_use_id", agent__get(pr, "tool"), "callID"); /* the call it gates */
        json_object_set_new(d, "status", json_string("requested"));
        return agent__emit(c, "permission.requested", d);
    }
    if (!strcmp(type, "permission.replied")) {
        json_t *d = json_object();
        agent__copy(d, "permission_id", pr, "requestID");
        if (!agent__get(d, "permission_id"))
            agent__copy(d, "permission_id", pr, "permissionID");
        json_object_set_new(d, "status", json_string(reply_status(agent__str(pr, "reply"))));
        return agent__emit(c, "permission.resolved", d);
    }
    if (!strcmp(type, "question.asked")) {
        json_t *d = json_object();
        agent__copy(d, "question_id", pr, "id");
        agent__copy(d, "questions", pr, "questions");
        agent__copy(d, "tool", pr, "tool");
        json_object_set_new(d, "status", json_string("requested"));
        return agent__emit(c, "question.requested", d);
    }
    if (!strcmp(type, "question.replied") || !strcmp(type, "question.rejected")) {
        json_t *d = json_object();
        agent__copy(d, "question_id", pr, "requestID");
        json_object_set_new(d, "status",
                            json_string(!strcmp(type, "question.replied") ? "answered" : "rejected"));
        agent__copy(d, "answers", pr, "answers");
        return agent__emit(c, "question.resolved", d);
    }
    for (size_t i = 0; i < sizeof raw_only / sizeof raw_only[0]; i++) {
        size_t n = strlen(raw_only[i]);
        if (raw_only[i][n - 1] == '.' ? !strncmp(type, raw_only[i], n) : !strcmp(type, raw_only[i]))
            return REEL_OK;
    }
    return AGENT__UNKNOWN;
}

static int opencode_convert(agent_conv_t *c, json_t *line)
{
    const char *type = agent__str(line, "type");
    if (!type)
        return AGENT__UNKNOWN;
    json_t *pr = agent__get(line, "properties");
    int rc = REEL_OK;
    if (strcmp(type, "session.created") && strncmp(type, "server.", 7))
        rc = ensure_started(c, line);
    if (rc)
        return rc;
    return json_is_object(pr) ? bus_line(c, type, pr) : run_line(c, type, line);
}

/* `opencode run --format json [--session ID] [extra] PROMPT` */
static void opencode_argv(agent__argv_t *a, const char *resume_id, const char *prompt,
                          char *const *extra)
{
    agent__argv_add(a, "run");
    agent__argv_add(a, "--format");
    agent__argv_add(a, "json");
    if (resume_id) {
        agent__argv_add(a, "--session");
        agent__argv_add(a, resume_id);
    }
    for (size_t i = 0; extra && extra[i]; i++)
        agent__argv_add(a, extra[i]);
    agent__argv_prompt(a, prompt);
}

const agent_ops_t agent__opencode_ops = {
    .name = "opencode",
    .bin = "opencode",
    .convert = opencode_convert,
    .build_argv = opencode_argv,
};
