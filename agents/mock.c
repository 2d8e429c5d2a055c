/* mock.c -- the built-in mock agent (`reel mock-agent`): its converter table, and the
 * scenarios it writes. The output is Claude stream-json (docs/AGENTS.md §6)
 * with small delays, so `reel run --agent mock` exercises the whole runner path (spawn,
 * conversion, resume with --resume, exit handling) without a network or a real agent.
 *
 * The prompt picks the scenario when it is a scenario name ("tools", "error", ...);
 * otherwise the scenario is "demo" and the reply echoes the prompt. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agents/agent_int.h"

static void mock_argv(agent__argv_t *a, const char *resume_id, const char *prompt,
                      char *const *extra)
{
    agent__argv_add(a, "mock-agent");
    if (resume_id) {
        agent__argv_add(a, "--resume");
        agent__argv_add(a, resume_id);
    }
    for (size_t i = 0; extra && extra[i]; i++)
        agent__argv_add(a, extra[i]);
    agent__argv_add(a, "--");
    agent__argv_add(a, prompt);
}

const agent_ops_t agent__mock_ops = {
    .name = "mock",
    .bin = NULL, /* the reel binary itself */
    .convert = agent__claude_convert,
    .build_argv = mock_argv,
};

/* ---- Scenarios ---- */

const char *agent_mock_scenarios(void) { return "demo markdown tools permission error long"; }

typedef struct mock {
    int fd;
    int delay_ms;
    const char *sid;
    int n; /* uuid counter */
    int err;
} mock_t;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* Writes 'obj' (stolen) as one line, adding session_id and uuid, then waits. */
static void put(mock_t *m, json_t *obj)
{
    if (!obj || m->err) {
        json_decref(obj);
        m->err = m->err ? m->err : REEL_ENOMEM;
        return;
    }
    json_object_set_new(obj, "session_id", json_string(m->sid));
    json_object_set_new(obj, "uuid", json_sprintf("c0ffee00-0000-4000-8000-%012d", ++m->n));
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!text) {
        m->err = REEL_ENOMEM;
        return;
    }
    size_t len = strlen(text);
    text[len++] = '\n'; /* json_dumps leaves the NUL: room for one byte */
    for (size_t off = 0; off < len;) {
        ssize_t w = write(m->fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            m->err = REEL_EIO;
            break;
        }
        off += (size_t)w;
    }
    free(text);
    sleep_ms(m->delay_ms);
}

static void init(mock_t *m)
{
    put(m, json_pack("{s:s,s:s,s:s,s:[s,s,s],s:[],s:s,s:s,s:s}", "type", "system", "subtype",
                     "init", "cwd", "/work/demo", "tools", "Bash", "Read", "Edit", "mcp_servers",
                     "model", "mock-model-1", "permissionMode", "default", "claude_code_version",
                     "0.0.0-mock"));
}

static json_t *usage(int in, int out)
{
    return json_pack("{s:i,s:i,s:i,s:i}", "input_tokens", in, "output_tokens", out,
                     "cache_read_input_tokens", 0, "cache_creation_input_tokens", 0);
}

/* An assistant line holding one block. */
static void assistant(mock_t *m, const char *msg_id, json_t *block, const char *stop)
{
    put(m, json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:[o],s:s?,s:n,s:o},s:n}", "type", "assistant",
                     "message", "id", msg_id, "type", "message", "role", "assistant", "model",
                     "mock-model-1", "content", block, "stop_reason", stop, "stop_sequence",
                     "usage", usage(12, 30), "parent_tool_use_id"));
}

static void partial(mock_t *m, json_t *event)
{
    put(m, json_pack("{s:s,s:o,s:n}", "type", "stream_event", "event", event,
                     "parent_tool_use_id"));
}

/* A text reply streamed word by word (partial messages), then the whole line. */
static void streamed_text(mock_t *m, const char *msg_id, const char *text)
{
    partial(m, json_pack("{s:s,s:{s:s,s:s,s:s,s:[]}}", "type", "message_start", "message", "id",
                         msg_id, "type", "message", "role", "assistant", "content"));
    partial(m, json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_start", "index", 0,
                         "content_block", "type", "text", "text", ""));
    const char *p = text;
    while (*p) {
        const char *sp = strchr(p + 1, ' ');
        size_t n = sp ? (size_t)(sp - p) : strlen(p);
        partial(m, json_pack("{s:s,s:i,s:{s:s,s:s%}}", "type", "content_block_delta", "index", 0,
                             "delta", "type", "text_delta", "text", p, n));
        p += n;
    }
    partial(m, json_pack("{s:s,s:i}", "type", "content_block_stop", "index", 0));
    assistant(m, msg_id, json_pack("{s:s,s:s}", "type", "text", "text", text), "end_turn");
    partial(m, json_pack("{s:s}", "type", "message_stop"));
}

static void tool(mock_t *m, const char *msg_id, const char *call_id, const char *cmd,
                 const char *output, int is_error)
{
    assistant(m, msg_id,
              json_pack("{s:s,s:s,s:s,s:{s:s}}", "type", "tool_use", "id", call_id, "name",
                        "Bash", "input", "command", cmd),
              "tool_use");
    put(m, json_pack("{s:s,s:{s:s,s:[{s:s,s:s,s:s,s:b}]},s:n}", "type", "user", "message",
                     "role", "user", "content", "tool_use_id", call_id, "type", "tool_result",
                     "content", output, "is_error", is_error, "parent_tool_use_id"));
}

static void result(mock_t *m, const char *sub, const char *text, int turns)
{
    int err = strcmp(sub, "success") != 0;
    put(m, json_pack("{s:s,s:s,s:b,s:i,s:i,s:i,s:s,s:f,s:o,s:[]}", "type", "result", "subtype",
                     sub, "is_error", err, "duration_ms", 1200, "duration_api_ms", 900,
                     "num_turns", turns, "result", text, "total_cost_usd", 0.0125, "usage",
                     usage(100, 40), "permission_denials"));
}

static void demo(mock_t *m, const char *prompt)
{
    assistant(m, "msg_mock_1",
              json_pack("{s:s,s:s,s:s}", "type", "thinking", "thinking",
                        "The user wants a reply; answer briefly.", "signature", "c2lnbmF0dXJl"),
              NULL);
    char reply[512];
    snprintf(reply, sizeof reply, "mock: %.480s", prompt && *prompt ? prompt : "Hello!");
    streamed_text(m, "msg_mock_2", reply);
    result(m, "success", reply, 1);
}

static void markdown(mock_t *m)
{
    static const char md[] =
        "# Build report\n\nThe build **passed** with two warnings:\n\n"
        "1. `unused variable 'x'` in `src/main.c`\n2. `implicit fallthrough` in `src/io.c`\n\n"
        "```c\nint main(void) { return 0; }\n```\n\n| file | warnings |\n| --- | --- |\n"
        "| main.c | 1 |\n| io.c | 1 |\n\n> Run `make check` next.";
    streamed_text(m, "msg_mock_1", md);
    result(m, "success", md, 1);
}

static void tools(mock_t *m)
{
    assistant(m, "msg_mock_1",
              json_pack("{s:s,s:s}", "type", "text", "text", "I'll look at the files first."),
              NULL);
    tool(m, "msg_mock_1", "toolu_mock_1", "ls", "README.md\nbuild.sh\nsrc", 0);
    tool(m, "msg_mock_2", "toolu_mock_2", "cat missing.txt",
         "cat: missing.txt: No such file or directory", 1);
    assistant(m, "msg_mock_3",
              json_pack("{s:s,s:s}", "type", "text", "text",
                        "There are three entries; missing.txt does not exist."),
              "end_turn");
    result(m, "success", "There are three entries; missing.txt does not exist.", 3);
}

static void permission(mock_t *m)
{
    assistant(m, "msg_mock_1",
              json_pack("{s:s,s:s,s:s,s:{s:s}}", "type", "tool_use", "id", "toolu_mock_1", "name",
                        "Bash", "input", "command", "rm -rf build"),
              "tool_use");
    put(m, json_pack("{s:s,s:s,s:{s:s,s:s,s:{s:s},s:s,s:n}}", "type", "control_request",
                     "request_id", "req_mock_1", "request", "subtype", "can_use_tool",
                     "tool_name", "Bash", "input", "command", "rm -rf build", "tool_use_id",
                     "toolu_mock_1", "blocked_path"));
    put(m, json_pack("{s:s,s:{s:s,s:[{s:s,s:s,s:s,s:b}]},s:n}", "type", "user", "message",
                     "role", "user", "content", "tool_use_id", "toolu_mock_1", "type",
                     "tool_result", "content", "Claude requested permissions to use Bash, but "
                     "you haven't granted it yet.", "is_error", 1, "parent_tool_use_id"));
    assistant(m, "msg_mock_2",
              json_pack("{s:s,s:s,s:s,s:{s:[{s:s,s:s,s:[{s:s,s:s},{s:s,s:s}],s:b}]}}", "type",
                        "tool_use", "id", "toolu_mock_2", "name", "AskUserQuestion", "input",
                        "questions", "question", "Delete the build directory?", "header",
                        "Confirm", "options", "label", "Yes", "description", "Delete it",
                        "label", "No", "description", "Keep it", "multiSelect", 0),
              "tool_use");
    put(m, json_pack("{s:s,s:{s:s,s:[{s:s,s:s,s:s,s:b}]},s:n}", "type", "user", "message",
                     "role", "user", "content", "tool_use_id", "toolu_mock_2", "type",
                     "tool_result", "content", "No", "is_error", 0, "parent_tool_use_id"));
    assistant(m, "msg_mock_3",
              json_pack("{s:s,s:s}", "type", "text", "text", "Understood, I left build/ alone."),
              "end_turn");
    put(m, json_pack("{s:s,s:s,s:b,s:i,s:i,s:s,s:f,s:o,s:[{s:s,s:s,s:{s:s}}]}", "type", "result",
                     "subtype", "success", "is_error", 0, "duration_ms", 2000, "num_turns", 3,
                     "result", "Understood, I left build/ alone.", "total_cost_usd", 0.02,
                     "usage", usage(200, 50), "permission_denials", "tool_name", "Bash",
                     "tool_use_id", "toolu_mock_1", "tool_input", "command", "rm -rf build"));
}

static void error_scenario(mock_t *m)
{
    assistant(m, "msg_mock_1",
              json_pack("{s:s,s:s}", "type", "text", "text", "Let me try that."), NULL);
    put(m, json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:[{s:s,s:s}],s:n,s:n,s:o},s:n,s:s}", "type",
                     "assistant", "message", "id", "msg_mock_2", "type", "message", "role",
                     "assistant", "model", "mock-model-1", "content", "type", "text", "text",
                     "API Error: 529 overloaded", "stop_reason", "stop_sequence", "usage",
                     usage(10, 0), "parent_tool_use_id", "error", "server_error"));
    put(m, json_pack("{s:s,s:s,s:b,s:i,s:i,s:i,s:f,s:o,s:[],s:[s]}", "type", "result",
                     "subtype", "error_during_execution", "is_error", 1, "duration_ms", 300,
                     "duration_api_ms", 250, "num_turns", 1, "total_cost_usd", 0.001, "usage",
                     usage(10, 0), "permission_denials", "errors", "API Error: 529 overloaded"));
}

static void long_scenario(mock_t *m)
{
    char text[128], id[32];
    for (int i = 1; i <= 40; i++) {
        snprintf(id, sizeof id, "msg_mock_%d", i);
        snprintf(text, sizeof text, "Step %d of 40: checked file_%02d.c and found nothing.", i,
                 i);
        streamed_text(m, id, text);
        if (i % 10 == 0) {
            snprintf(id, sizeof id, "toolu_mock_%d", i);
            tool(m, "msg_mock_tool", id, "make -q", "make: 'all' is up to date.", 0);
        }
    }
    result(m, "success", "All 40 steps done.", 40);
}

int agent_mock_write(const char *name, int fd, const char *session_id, const char *prompt,
                     int delay_ms)
{
    mock_t m = {fd, delay_ms, session_id ? session_id : "mock-3b1f9c2e-5d7a-4e21-9a0b", 0, 0};
    static const char *const names[] = {"demo", "markdown", "tools", "permission", "error",
                                        "long"};
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i]))
            break;
    if (i == sizeof names / sizeof names[0])
        return REEL_EINVALID_PARAMETER;
    init(&m);
    switch (i) {
    case 0: demo(&m, prompt); break;
    case 1: markdown(&m); break;
    case 2: tools(&m); break;
    case 3: permission(&m); break;
    case 4: error_scenario(&m); break;
    default: long_scenario(&m); break;
    }
    return m.err;
}

/* ---- ACP mock (reel mock-agent --format acp) ---- */

typedef struct acp_mock {
    mock_t m;
    FILE *in;
    char sid[64];
    int n_sessions;
} acp_mock_t;

/* Writes one JSON-RPC message (stolen) without the Claude envelope fields. */
static void rpc(acp_mock_t *a, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) {
        a->m.err = REEL_ENOMEM;
        return;
    }
    size_t len = strlen(text);
    text[len++] = '\n';
    for (size_t off = 0; off < len && !a->m.err;) {
        ssize_t w = write(a->m.fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            a->m.err = REEL_EIO;
        else
            off += (size_t)w;
    }
    free(text);
    sleep_ms(a->m.delay_ms);
}

static void update(acp_mock_t *a, json_t *u)
{
    rpc(a, json_pack("{s:s,s:s,s:{s:s,s:o}}", "jsonrpc", "2.0", "method", "session/update",
                     "params", "sessionId", a->sid, "update", u));
}

/* Reads lines until the response to request 'id'; returns it (new) or NULL at EOF. */
static json_t *await_response(acp_mock_t *a, const char *id)
{
    char *line = NULL;
    size_t cap = 0;
    json_t *found = NULL;
    while (!found && getline(&line, &cap, a->in) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        const char *jid = agent__str(j, "id");
        if (jid && !strcmp(jid, id) && !agent__get(j, "method"))
            found = j;
        else
            json_decref(j);
    }
    free(line);
    return found;
}

static void acp_prompt(acp_mock_t *a, json_t *req)
{
    json_t *blocks = agent__get(agent__get(req, "params"), "prompt");
    const char *text = agent__str(json_array_get(blocks, json_array_size(blocks) - 1), "text");
    text = text && *text ? text : "Hello!";
    update(a, json_pack("{s:s,s:{s:s,s:s}}", "sessionUpdate", "agent_thought_chunk", "content",
                        "type", "text", "text", "The user wants a reply."));
    if (strstr(text, "permission")) {
        update(a, json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s}}", "sessionUpdate", "tool_call",
                            "toolCallId", "call_mock_1", "title", "rm -rf build", "kind",
                            "execute", "status", "pending", "rawInput", "command",
                            "rm -rf build"));
        rpc(a, json_pack("{s:s,s:s,s:s,s:{s:s,s:{s:s},s:[{s:s,s:s,s:s},{s:s,s:s,s:s}]}}",
                         "jsonrpc", "2.0", "id", "perm-1", "method",
                         "session/request_permission", "params", "sessionId", a->sid,
                         "toolCall", "toolCallId", "call_mock_1", "options", "optionId",
                         "allow", "name", "Allow once", "kind", "allow_once", "optionId",
                         "reject", "name", "Reject", "kind", "reject_once"));
        json_t *resp = await_response(a, "perm-1");
        const char *opt = agent__str(agent__get(agent__get(resp, "result"), "outcome"), "optionId");
        int ok = opt && !strcmp(opt, "allow");
        json_decref(resp);
        update(a, json_pack("{s:s,s:s,s:s,s:[{s:s,s:{s:s,s:s}}]}", "sessionUpdate",
                            "tool_call_update", "toolCallId", "call_mock_1", "status",
                            ok ? "completed" : "failed", "content", "type", "content", "content",
                            "type", "text", "text", ok ? "removed 14 files" : "denied"));
    }
    char reply[600];
    snprintf(reply, sizeof reply, "mock: %.500s", text);
    for (const char *p = reply; *p;) {
        const char *sp = strchr(p + 1, ' ');
        size_t n = sp ? (size_t)(sp - p) : strlen(p);
        update(a, json_pack("{s:s,s:s,s:{s:s,s:s%}}", "sessionUpdate", "agent_message_chunk",
                            "messageId", "m_1", "content", "type", "text", "text", p, n));
        p += n;
    }
    update(a, json_pack("{s:s,s:i,s:i}", "sessionUpdate", "usage_update", "used", 1200, "size",
                        200000));
    rpc(a, json_pack("{s:s,s:O,s:{s:s}}", "jsonrpc", "2.0", "id", agent__get(req, "id"), "result",
                     "stopReason", "end_turn"));
}

static void acp_request(acp_mock_t *a, json_t *req)
{
    const char *method = agent__str(req, "method");
    json_t *id = agent__get(req, "id"), *params = agent__get(req, "params");
    json_t *result = NULL;
    if (!strcmp(method, "initialize")) {
        result = json_pack("{s:i,s:{s:b,s:{s:{}}},s:[]}", "protocolVersion", 1,
                           "agentCapabilities", "loadSession", 0, "sessionCapabilities",
                           "resume", "authMethods");
    } else if (!strcmp(method, "session/new")) {
        snprintf(a->sid, sizeof a->sid, "mock-acp-%d-%d", (int)getpid(), ++a->n_sessions);
        result = json_pack("{s:s}", "sessionId", a->sid);
    } else if (!strcmp(method, "session/resume")) {
        const char *sid = agent__str(params, "sessionId");
        snprintf(a->sid, sizeof a->sid, "%s", sid ? sid : "");
        result = json_object();
    } else if (!strcmp(method, "session/prompt")) {
        acp_prompt(a, req);
        return;
    }
    if (result)
        rpc(a, json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result));
    else
        rpc(a, json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
                         -32601, "message", "method not found"));
}

int agent_mock_acp(int in_fd, int out_fd, int delay_ms)
{
    acp_mock_t a = {{out_fd, delay_ms, NULL, 0, 0}, fdopen(in_fd, "r"), "", 0};
    if (!a.in)
        return REEL_EIO;
    char *line = NULL;
    size_t cap = 0;
    while (!a.m.err && getline(&line, &cap, a.in) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (agent__str(j, "method") && agent__get(j, "id"))
            acp_request(&a, j); /* notifications (session/cancel) need no answer */
        json_decref(j);
    }
    free(line);
    fclose(a.in);
    return a.m.err;
}
