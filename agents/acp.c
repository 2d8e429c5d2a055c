/* acp.c -- ACP (Agent Client Protocol: JSON-RPC 2.0 over newline-delimited stdio) to
 * universal events, and the client side of the protocol that `reel run --agent acp`
 * speaks. Mapping: docs/AGENTS.md (§3, "acp" in the per-agent notes).
 *
 * The converter sees both directions: what the agent wrote (AGENT_STDOUT) and what the
 * runner wrote to it (AGENT_STDIN), so a captured bidirectional log converts the same
 * way. Requests are remembered by id to match their responses: the client's
 * (session/new, session/prompt, ...) in "creq", the agent's (session/request_permission,
 * fs/..., ...) in "areq".
 *
 * The driver: initialize; then session/resume (when advertised) or session/load (when
 * loadSession) for a stored native id, else session/new with the restore text prepended
 * to the prompt; then one session/prompt. Permission requests are answered with the
 * allow_once option under --approve, else reject_once; elicitation/create is declined
 * (nobody is there to type an answer); fs/, terminal/ and other requests get a JSON-RPC
 * error -32601 (the runner advertises neither capability). The prompt response ends
 * the turn and the runner closes the agent's stdin.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agents/agent_int.h"

#define RESTORE_HEADER "Previous session history is replayed below"

static const char *const client_methods[] = {
    "initialize", "authenticate", "session/new", "session/load", "session/resume",
    "session/list", "session/close", "session/delete", "session/set_mode",
    "session/set_config_option", "session/set_model", "session/prompt", "logout",
};

static int is_client_method(const char *m)
{
    for (size_t i = 0; i < sizeof client_methods / sizeof client_methods[0]; i++)
        if (!strcmp(m, client_methods[i]))
            return 1;
    return 0;
}

/* The table 'name' in the state (created on first use). */
static json_t *table(agent_conv_t *c, const char *name)
{
    json_t *t = agent__get(c->state, name);
    if (!t)
        json_object_set_new(c->state, name, t = json_object());
    return t;
}

/* A request id as a table key: its JSON text ("1", "\"perm-1\""). */
static void id_key(json_t *id, char *out, size_t n)
{
    char *t = id ? json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    snprintf(out, n, "%s", t ? t : "null");
    free(t);
}

/* A request id as the universal events carry it (permission_id, question_id): a string,
 * the id itself when it is one, else its JSON text (real agents number their requests
 * from 0, and the ids of both sides share no namespace). */
static json_t *id_string(json_t *id)
{
    if (json_is_string(id))
        return json_incref(id);
    char key[200];
    id_key(id, key, sizeof key);
    return json_string(key);
}

/* 1 for a method of the protocol's own namespaces (the base methods and session/, fs/,
 * terminal/, elicitation/); anything else (`_x/...`, `cursor/...`, `$/...`) is a vendor
 * extension, kept as agent.native. An unknown method inside ACP's namespaces stays
 * unparsed: it is something the converter should learn. */
static int is_acp_namespace(const char *m)
{
    static const char *const ns[] = {"session/", "fs/", "terminal/", "elicitation/"};
    if (m[0] == '_' || m[0] == '$')
        return 0;
    if (!strchr(m, '/'))
        return 1;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        if (!strncmp(m, ns[i], strlen(ns[i])))
            return 1;
    return 0;
}

/* ---- session/update ---- */

static int close_open(agent_conv_t *c, const char *except)
{
    static const char *const keys[] = {"acp:user", "acp:msg", "acp:thought"};
    int rc = REEL_OK;
    for (size_t i = 0; !rc && i < 3; i++) {
        agent__item_t *it = agent__item_find(c, keys[i]);
        if (it && (!except || strcmp(except, keys[i])))
            rc = agent__item_complete(c, it, "completed", NULL, 1);
    }
    return rc;
}

static int chunk(agent_conv_t *c, json_t *u, const char *key, const char *kind,
                 const char *role)
{
    const char *mid = agent__str(u, "messageId");
    agent__item_t *it = agent__item_find(c, key);
    int rc = close_open(c, key);
    if (rc)
        return rc;
    if (it && mid) {
        const char *cur = agent__str(it->info, "native_item_id");
        if (!cur || strcmp(cur, mid)) { /* a new message id: a new message */
            if ((rc = agent__item_complete(c, it, "completed", NULL, 1)))
                return rc;
            it = NULL;
        }
    }
    if (!it) {
        json_t *info = json_object();
        if (mid)
            json_object_set_new(info, "native_item_id", json_string(mid));
        if (json_is_true(agent__get(c->state, "replaying")))
            json_object_set_new(info, "replay", json_true());
        it = agent__item_start(c, key, kind, role, info, 1, &rc);
        if (!it)
            return rc;
    }
    json_t *content = agent__get(u, "content");
    const char *text = agent__str(content, "text");
    if (text)
        return agent__item_delta(c, it, text, strlen(text), 0);
    json_t *d = json_object();
    json_object_set_new(d, "item_id", json_string(it->id));
    json_object_set(d, "content", content ? content : json_null());
    return agent__emit(c, "item.delta", d);
}

static int is_terminal(const char *status)
{
    return status && (!strcmp(status, "completed") || !strcmp(status, "failed"));
}

static int tool_result(agent_conv_t *c, json_t *u, const char *status)
{
    json_t *info = json_object();
    agent__copy(info, "call_id", u, "toolCallId");
    json_t *extra = json_object();
    store_buf_t text = STORE_BUF_INIT;
    size_t i;
    json_t *tc;
    json_array_foreach(agent__get(u, "content"), i, tc) {
        const char *t = agent__str(agent__get(tc, "content"), "text");
        if (t) {
            if (text.len)
                store_buf_putc(&text, '\n');
            store_buf_puts(&text, t);
        }
    }
    if (text.len)
        json_object_set_new(extra, "output", agent__string((char *)text.data, text.len));
    store_buf_release(&text);
    agent__copy(extra, "content", u, "content");
    agent__copy(extra, "raw_output", u, "rawOutput");
    agent__copy(extra, "locations", u, "locations");
    return agent__item_tool(c, NULL, "tool_result", info,
                            !strcmp(status, "failed") ? "failed" : "completed", extra);
}

static int tool_call(agent_conv_t *c, json_t *u, int update)
{
    const char *id = agent__str(u, "toolCallId"), *status = agent__str(u, "status");
    char key[300];
    snprintf(key, sizeof key, "acp:t:%s", id ? id : "");
    int rc = close_open(c, NULL);
    agent__item_t *it = agent__item_find(c, key);
    if (!rc && it) {
        /* Input that arrives late belongs to the call: a tool_call with rawInput {} first,
         * the real input in a tool_call_update or in the same tool_call sent again
         * (claude-code-acp 0.16 does the latter). Its completion carries the latest. The
         * first title stays the name; a later, more specific one is kept as 'title'. */
        if (agent__get(u, "rawInput"))
            agent__copy(it->info, "arguments", u, "rawInput");
        const char *title = agent__str(u, "title"), *name = agent__str(it->info, "name");
        if (title && !name)
            agent__copy(it->info, "name", u, "title");
        else if (title && strcmp(title, name))
            agent__copy(it->info, "title", u, "title");
        if (agent__get(u, "locations"))
            agent__copy(it->info, "locations", u, "locations");
    }
    if (rc || (update && !it && !is_terminal(status)))
        return rc; /* a non-terminal update: agent.native */
    if (!it) {
        json_t *info = json_object();
        agent__copy(info, "call_id", u, "toolCallId");
        agent__copy(info, "name", u, "title");
        agent__copy(info, "tool_kind", u, "kind");
        agent__copy(info, "arguments", u, "rawInput");
        agent__copy(info, "locations", u, "locations");
        it = agent__item_start(c, key, "tool_call", NULL, info, update, &rc);
        if (!it)
            return rc;
    }
    if (!is_terminal(status))
        return REEL_OK;
    json_t *extra = json_object();
    agent__copy(extra, "arguments", u, "rawInput");
    if ((rc = agent__item_complete(c, it, !strcmp(status, "failed") ? "failed" : "completed",
                                   extra, 0)))
        return rc;
    return tool_result(c, u, status);
}

static int session_update(agent_conv_t *c, json_t *params)
{
    json_t *u = agent__get(params, "update");
    const char *kind = agent__str(u, "sessionUpdate");
    agent__set_nsid(c, agent__str(params, "sessionId"));
    if (!kind)
        return agent__unknown(c, "session update", NULL);
    if (!strcmp(kind, "agent_message_chunk"))
        return chunk(c, u, "acp:msg", "message", "assistant");
    if (!strcmp(kind, "agent_thought_chunk"))
        return chunk(c, u, "acp:thought", "reasoning", "assistant");
    if (!strcmp(kind, "user_message_chunk"))
        return chunk(c, u, "acp:user", "message", "user");
    if (!strcmp(kind, "tool_call"))
        return tool_call(c, u, 0);
    if (!strcmp(kind, "tool_call_update"))
        return tool_call(c, u, 1);
    if (!strcmp(kind, "usage_update")) {
        json_t *d = json_object();
        json_object_set_new(d, "turn_end", json_false());
        agent__copy(d, "context_used", u, "used");
        agent__copy(d, "context_size", u, "size");
        json_t *cost = agent__get(u, "cost");
        const char *cur = agent__str(cost, "currency");
        if (cur && !strcmp(cur, "USD"))
            agent__copy(d, "cost_usd", cost, "amount");
        agent__copy(d, "cost", u, "cost");
        return agent__emit(c, "usage", d);
    }
    if (!strcmp(kind, "plan") || !strcmp(kind, "available_commands_update") ||
        !strcmp(kind, "current_mode_update") || !strcmp(kind, "config_option_update") ||
        !strcmp(kind, "session_info_update"))
        return REEL_OK;
    return agent__unknown(c, "session update", kind);
}

/* ---- Requests and responses ---- */

static int prompt_request(agent_conv_t *c, json_t *params)
{
    store_buf_t text = STORE_BUF_INIT;
    size_t i;
    json_t *b;
    int restored = 0;
    json_array_foreach(agent__get(params, "prompt"), i, b) {
        const char *t = agent__str(b, "text");
        if (!t)
            continue;
        if (i == 0 && !strncmp(t, RESTORE_HEADER, strlen(RESTORE_HEADER))) {
            restored = 1; /* the replayed history is not part of the user's message */
            continue;
        }
        if (text.len)
            store_buf_putc(&text, '\n');
        store_buf_puts(&text, t);
    }
    json_t *extra = restored ? json_pack("{s:b}", "restored", 1) : NULL;
    int rc = close_open(c, NULL);
    if (!rc) {
        agent__item_t *it = agent__item_start(c, "acp:prompt", "message", "user", NULL, 0, &rc);
        if (it && text.len)
            rc = agent__item_delta(c, it, (char *)text.data, text.len, 1);
        if (it && !rc)
            rc = agent__item_complete(c, it, "completed", extra, 0), extra = NULL;
    }
    json_decref(extra);
    store_buf_release(&text);
    return rc;
}

static int client_request(agent_conv_t *c, const char *method, json_t *line)
{
    char key[200];
    id_key(agent__get(line, "id"), key, sizeof key);
    json_t *params = agent__get(line, "params");
    c->client_side = 1;
    json_object_set_new(table(c, "creq"), key,
                        json_pack("{s:s,s:O?}", "method", method, "sessionId",
                                  agent__get(params, "sessionId")));
    if (!strcmp(method, "session/load"))
        json_object_set_new(c->state, "replaying", json_true());
    if (!strcmp(method, "session/prompt"))
        return prompt_request(c, params);
    return REEL_OK;
}

/* question.requested of an elicitation/create request: the message, the schema, and one
 * question per field of the schema (its title or description, its type, and its options:
 * the enum values, or the titles of oneOf constants). */
static int elicitation(agent_conv_t *c, json_t *line, json_t *params)
{
    json_t *d = json_object(), *schema = agent__get(params, "requestedSchema");
    json_object_set_new(d, "question_id", id_string(agent__get(line, "id")));
    agent__copy(d, "message", params, "message");
    agent__copy(d, "mode", params, "mode");
    agent__copy(d, "url", params, "url");
    agent__copy(d, "schema", params, "requestedSchema");
    json_t *qs = json_array();
    const char *field;
    json_t *prop;
    json_object_foreach(agent__get(schema, "properties"), field, prop) {
        json_t *q = json_object();
        const char *text = agent__str(prop, "title");
        if (!text)
            text = agent__str(prop, "description");
        json_object_set_new(q, "question", json_string(text ? text : field));
        json_object_set_new(q, "field", json_string(field));
        agent__copy(q, "type", prop, "type");
        json_t *opts = json_array(), *items = agent__get(prop, "items");
        json_t *en = agent__get(prop, "enum") ? agent__get(prop, "enum") : agent__get(items, "enum");
        json_t *one = agent__get(prop, "oneOf") ? agent__get(prop, "oneOf") : agent__get(items, "anyOf");
        size_t i;
        json_t *v;
        json_array_foreach(en, i, v)
            json_array_append_new(opts, json_pack("{s:O}", "label", v));
        json_array_foreach(one, i, v)
            json_array_append_new(opts, json_pack("{s:O,s:O?}", "label",
                                                  agent__get(v, "title") ? agent__get(v, "title")
                                                                         : agent__get(v, "const"),
                                                  "value", agent__get(v, "const")));
        if (json_array_size(opts))
            json_object_set_new(q, "options", opts);
        else
            json_decref(opts);
        if (json_is_object(items))
            json_object_set_new(q, "multiSelect", json_true());
        json_array_append_new(qs, q);
    }
    if (!json_array_size(qs) && agent__str(params, "message"))
        json_array_append_new(qs, json_pack("{s:s}", "question", agent__str(params, "message")));
    json_object_set_new(d, "questions", qs);
    json_object_set_new(d, "status", json_string("requested"));
    return agent__emit(c, "question.requested", d);
}

static int agent_request(agent_conv_t *c, const char *method, json_t *line)
{
    char key[200];
    id_key(agent__get(line, "id"), key, sizeof key);
    json_t *params = agent__get(line, "params");
    agent__set_nsid(c, agent__str(params, "sessionId"));
    json_object_set_new(table(c, "areq"), key,
                        json_pack("{s:s,s:O?}", "method", method, "options",
                                  agent__get(params, "options")));
    if (!strcmp(method, "session/request_permission")) {
        json_t *tc = agent__get(params, "toolCall");
        const char *action = agent__str(tc, "title");
        char tkey[300];
        snprintf(tkey, sizeof tkey, "acp:t:%s", agent__str(tc, "toolCallId") ? agent__str(tc, "toolCallId") : "");
        agent__item_t *open_call = agent__item_find(c, tkey);
        if (!action && open_call)
            action = agent__str(open_call->info, "name");
        if (!action)
            action = agent__str(tc, "kind");
        if (!action)
            action = agent__str(tc, "toolCallId");
        json_t *d = json_object();
        json_object_set_new(d, "permission_id", id_string(agent__get(line, "id")));
        json_object_set_new(d, "action", action ? json_string(action) : json_null());
        agent__copy(d, "tool_call_id", tc, "toolCallId");
        if (agent__get(tc, "rawInput"))
            agent__copy(d, "input", tc, "rawInput");
        else if (open_call && agent__get(open_call->info, "arguments"))
            agent__copy(d, "input", open_call->info, "arguments");
        agent__copy(d, "options", params, "options");
        json_object_set_new(d, "status", json_string("requested"));
        return agent__emit(c, "permission.requested", d);
    }
    if (!strcmp(method, "elicitation/create"))
        return elicitation(c, line, params);
    if (!strcmp(method, "_sandboxagent/session/request_question")) {
        json_t *d = json_object();
        json_object_set_new(d, "question_id", id_string(agent__get(line, "id")));
        agent__copy(d, "questions", params, "questions");
        agent__copy(d, "message", params, "message");
        json_object_set_new(d, "status", json_string("requested"));
        return agent__emit(c, "question.requested", d);
    }
    if (!strncmp(method, "fs/", 3) || !strncmp(method, "terminal/", 9) ||
        !is_acp_namespace(method))
        return REEL_OK;
    return agent__unknown(c, "method", method);
}

/* The runner's (or client's) reply to an agent request. */
static int client_response(agent_conv_t *c, json_t *req, json_t *line)
{
    const char *method = agent__str(req, "method");
    if (method && (!strcmp(method, "elicitation/create") ||
                   !strcmp(method, "_sandboxagent/session/request_question"))) {
        /* {action: accept|decline|cancel, content?}; an error reply is a refusal */
        json_t *res = agent__get(line, "result");
        const char *action = agent__str(res, "action");
        const char *status = !action                     ? (agent__get(line, "error") ? "rejected" : "answered")
                             : !strcmp(action, "accept")  ? "answered"
                             : !strcmp(action, "decline") ? "rejected"
                                                          : "cancelled";
        json_t *d = json_object();
        json_object_set_new(d, "question_id", id_string(agent__get(line, "id")));
        json_object_set_new(d, "status", json_string(status));
        if (action)
            json_object_set_new(d, "action", json_string(action));
        if (agent__get(res, "content"))
            agent__copy(d, "answer", res, "content");
        else if (!action && agent__get(res, "answers"))
            agent__copy(d, "answers", res, "answers");
        agent__copy(d, "error", line, "error");
        return agent__emit(c, "question.resolved", d);
    }
    if (!method || strcmp(method, "session/request_permission"))
        return REEL_OK;
    json_t *outcome = agent__get(agent__get(line, "result"), "outcome");
    const char *oc = agent__str(outcome, "outcome"), *opt = agent__str(outcome, "optionId");
    const char *status = "cancelled";
    if (oc && !strcmp(oc, "selected")) {
        status = "reject";
        size_t i;
        json_t *o;
        json_array_foreach(agent__get(req, "options"), i, o) {
            const char *id = agent__str(o, "optionId"), *kind = agent__str(o, "kind");
            if (id && opt && !strcmp(id, opt) && kind)
                status = !strcmp(kind, "allow_once")     ? "accept"
                         : !strcmp(kind, "allow_always") ? "accept_for_session"
                                                         : "reject";
        }
    } else if (agent__get(line, "error")) {
        status = "reject";
    }
    json_t *d = json_object();
    json_object_set_new(d, "permission_id", id_string(agent__get(line, "id")));
    json_object_set_new(d, "status", json_string(status));
    if (opt)
        json_object_set_new(d, "option_id", json_string(opt));
    return agent__emit(c, "permission.resolved", d);
}

static const char *const error_stops[] = {"refusal", "max_tokens", "max_turn_requests"};

/* The agent's reply to a client request. */
static int agent_response(agent_conv_t *c, json_t *req, json_t *line)
{
    const char *method = agent__str(req, "method");
    json_t *res = agent__get(line, "result"), *err = agent__get(line, "error");
    if (err) {
        c->failed = 1;
        json_t *extra = json_object();
        agent__copy(extra, "rpc_code", err, "code");
        agent__copy(extra, "details", err, "data");
        json_object_set_new(extra, "method", method ? json_string(method) : json_null());
        return agent__error(c, "rpc_error", agent__str(err, "message"), extra);
    }
    if (!method)
        return REEL_OK;
    if (!strcmp(method, "session/new") || !strcmp(method, "session/load") ||
        !strcmp(method, "session/resume")) {
        json_object_del(c->state, "replaying");
        const char *sid = agent__str(res, "sessionId");
        agent__set_nsid(c, sid ? sid : agent__str(req, "sessionId"));
        json_t *d = json_object();
        json_object_set_new(d, "method", json_string(method));
        agent__copy(d, "modes", res, "modes");
        int rc = close_open(c, NULL);
        return rc ? rc : agent__session_started(c, d, 1);
    }
    if (!strcmp(method, "session/prompt")) {
        int rc = close_open(c, NULL);
        const char *stop = agent__str(res, "stopReason");
        json_t *d = json_object();
        json_object_set_new(d, "turn_end", json_true());
        agent__copy(d, "stop_reason", res, "stopReason");
        agent__copy(d, "usage", res, "usage");
        if (!rc)
            rc = agent__emit(c, "usage", d);
        else
            json_decref(d);
        for (size_t i = 0; !rc && stop && i < 3; i++)
            if (!strcmp(stop, error_stops[i])) {
                c->failed = 1;
                rc = agent__error(c, stop, "the turn stopped early", NULL);
            }
        return rc;
    }
    return REEL_OK;
}

static int response(agent_conv_t *c, json_t *line)
{
    char key[200];
    id_key(agent__get(line, "id"), key, sizeof key);
    json_t *creq = agent__get(table(c, "creq"), key), *areq = agent__get(table(c, "areq"), key);
    /* Both sides number their requests (often from 0), so an id may name a pending
     * request of each side in a captured log: the shape of the result decides. */
    json_t *result = agent__get(line, "result");
    int from_client = c->stream == AGENT_STDIN ||
                      (areq && (!creq || agent__get(result, "outcome") ||
                                agent__get(result, "action") || agent__get(result, "answers")));
    json_t *req = from_client ? areq : creq;
    c->client_side = from_client;
    if (!req)
        return REEL_OK;
    json_incref(req);
    json_object_del(table(c, from_client ? "areq" : "creq"), key);
    int rc = from_client ? client_response(c, req, line) : agent_response(c, req, line);
    json_decref(req);
    return rc;
}

static int acp_convert(agent_conv_t *c, json_t *line)
{
    const char *method = agent__str(line, "method");
    json_t *id = agent__get(line, "id");
    if (!method) {
        if (id && (agent__get(line, "result") || agent__get(line, "error")))
            return response(c, line);
        return AGENT__UNKNOWN;
    }
    if (id) {
        if (is_client_method(method))
            return client_request(c, method, line);
        return agent_request(c, method, line);
    }
    if (!strcmp(method, "session/update"))
        return session_update(c, agent__get(line, "params"));
    if (!strcmp(method, "session/cancel"))
        c->client_side = 1;
    if (!strcmp(method, "session/cancel") || !is_acp_namespace(method))
        return REEL_OK;
    return agent__unknown(c, "method", method);
}

/* ---- The driver (runner side) ---- */

enum { ID_INIT = 1, ID_SESSION = 2, ID_NEW = 3, ID_PROMPT = 4 };

static int send_new(agent_conv_t *c, int id)
{
    json_object_set_new(c->state, "use_restore", json_true());
    json_t *r = json_pack("{s:s,s:i,s:s,s:{s:s,s:[]}}", "jsonrpc", "2.0", "id", id, "method",
                          "session/new", "params", "cwd", agent__str(c->state, "cwd"),
                          "mcpServers");
    int rc = r ? agent__send(c, r) : REEL_ENOMEM;
    json_decref(r);
    return rc;
}

static int acp_start(agent_conv_t *c)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, "/");
    json_object_set_new(c->state, "cwd", json_string(cwd));
    json_t *r = json_pack("{s:s,s:i,s:s,s:{s:i,s:{s:{s:b,s:b},s:b},s:{s:s,s:s}}}", "jsonrpc",
                          "2.0", "id", ID_INIT, "method", "initialize", "params",
                          "protocolVersion", 1, "clientCapabilities", "fs", "readTextFile", 0,
                          "writeTextFile", 0, "terminal", 0, "clientInfo", "name", "reel",
                          "version", "0.1");
    int rc = r ? agent__send(c, r) : REEL_ENOMEM;
    json_decref(r);
    return rc;
}

static int after_init(agent_conv_t *c, json_t *res)
{
    json_t *caps = agent__get(res, "agentCapabilities");
    const char *method = NULL;
    if (c->resume_id && agent__get(agent__get(caps, "sessionCapabilities"), "resume"))
        method = "session/resume";
    else if (c->resume_id && json_is_true(agent__get(caps, "loadSession")))
        method = "session/load";
    if (!method)
        return send_new(c, ID_SESSION);
    json_t *r = json_pack("{s:s,s:i,s:s,s:{s:s,s:s,s:[]}}", "jsonrpc", "2.0", "id", ID_SESSION,
                          "method", method, "params", "sessionId", c->resume_id, "cwd",
                          agent__str(c->state, "cwd"), "mcpServers");
    int rc = r ? agent__send(c, r) : REEL_ENOMEM;
    json_decref(r);
    return rc;
}

static int send_prompt(agent_conv_t *c, const char *sid)
{
    json_t *blocks = json_array();
    if (json_is_true(agent__get(c->state, "use_restore")) && c->restore_text && *c->restore_text)
        json_array_append_new(blocks, json_pack("{s:s,s:s}", "type", "text", "text",
                                                c->restore_text));
    json_array_append_new(blocks, json_pack("{s:s,s:s}", "type", "text", "text", c->prompt));
    json_t *r = json_pack("{s:s,s:i,s:s,s:{s:s,s:o}}", "jsonrpc", "2.0", "id", ID_PROMPT,
                          "method", "session/prompt", "params", "sessionId", sid, "prompt",
                          blocks);
    int rc = r ? agent__send(c, r) : REEL_ENOMEM;
    json_decref(r);
    return rc;
}

static int answer_permission(agent_conv_t *c, json_t *line)
{
    const char *want = c->approve ? "allow_once" : "reject_once";
    const char *alt = c->approve ? "allow_always" : "reject_always";
    const char *pick = NULL;
    size_t i;
    json_t *o;
    json_array_foreach(agent__get(agent__get(line, "params"), "options"), i, o) {
        const char *kind = agent__str(o, "kind"), *id = agent__str(o, "optionId");
        if (kind && id && !strcmp(kind, want))
            pick = id;
        else if (kind && id && !pick && !strcmp(kind, alt))
            pick = id;
    }
    json_t *outcome = pick ? json_pack("{s:s,s:s}", "outcome", "selected", "optionId", pick)
                           : json_pack("{s:s}", "outcome", "cancelled");
    json_t *r = json_pack("{s:s,s:O,s:{s:o}}", "jsonrpc", "2.0", "id", agent__get(line, "id"),
                          "result", "outcome", outcome);
    int rc = r ? agent__send(c, r) : REEL_ENOMEM;
    json_decref(r);
    return rc;
}

static int acp_drive(agent_conv_t *c, json_t *line)
{
    const char *method = agent__str(line, "method");
    json_t *id = agent__get(line, "id");
    if (method && id) { /* a request from the agent */
        if (!strcmp(method, "session/request_permission"))
            return answer_permission(c, line);
        if (!strcmp(method, "elicitation/create")) {
            /* Nobody is there to answer: declined, with or without --approve (which
             * grants permissions; it cannot make up what a person would have typed). */
            json_t *r = json_pack("{s:s,s:O,s:{s:s}}", "jsonrpc", "2.0", "id", id, "result",
                                  "action", "decline");
            int rc = r ? agent__send(c, r) : REEL_ENOMEM;
            json_decref(r);
            return rc;
        }
        json_t *r = json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error",
                              "code", -32601, "message", "method not supported by reel run");
        int rc = r ? agent__send(c, r) : REEL_ENOMEM;
        json_decref(r);
        return rc;
    }
    if (method || !json_is_integer(id))
        return REEL_OK;
    json_t *res = agent__get(line, "result");
    switch (json_integer_value(id)) {
    case ID_INIT:
        if (!res)
            break;
        return after_init(c, res);
    case ID_SESSION:
    case ID_NEW:
        if (!res && json_integer_value(id) == ID_SESSION && c->resume_id)
            return send_new(c, ID_NEW); /* could not resume: a fresh session + restore */
        if (!res || (!agent__str(res, "sessionId") && !c->resume_id))
            break;
        return send_prompt(c, agent__str(res, "sessionId") ? agent__str(res, "sessionId")
                                                           : c->resume_id);
    case ID_PROMPT:
        c->turn_done = 1;
        return REEL_OK;
    default:
        return REEL_OK;
    }
    c->turn_done = 1; /* the protocol failed: end the run */
    return REEL_OK;
}

/* The ACP agent is the executable itself: extra arguments are its own. */
static void acp_argv(agent__argv_t *a, const char *resume_id, const char *prompt,
                     char *const *extra)
{
    for (size_t i = 0; extra && extra[i]; i++)
        agent__argv_add(a, extra[i]);
}

const agent_ops_t agent__acp_ops = {
    .name = "acp",
    .bin = NULL,
    .echoes_prompt = 1,
    .stdin_driver = 1,
    .convert = acp_convert,
    .build_argv = acp_argv,
    .drive_start = acp_start,
    .drive_line = acp_drive,
};
