/* agents_runner.c -- agent_run() end to end with fake agent executables: shell scripts
 * that record their arguments, print a golden case's native lines and a stderr line, and
 * exit with a chosen status (and a small Python ACP agent). Checks spawning, the flags of
 * each agent, native resume, the restore text, exit handling, and the ingest adapter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agents/agent_int.h" /* agent__http_init */
#include "tests/unit/testutil.h"

static char dir[TU_PATH_MAX], data[TU_PATH_MAX + 16], root[TU_PATH_MAX * 2];

static void setup(void)
{
    tu_tmpdir(dir);
    snprintf(data, sizeof data, "%s/data", dir);
    cr_assert(getcwd(root, sizeof root));
}

static void teardown(void) { tu_rmrf(dir); }

TestSuite(agents_runner, .init = setup, .fini = teardown, .timeout = 60);

/* Writes a fake agent that logs its arguments (one per line, then "--end--") to
 * <dir>/argv.log, prints 'case_file' on stdout, "warning: <name>" on stderr, and exits
 * with 'status'. Returns its path (static storage). */
static const char *fake_agent(const char *name, const char *case_file, int status)
{
    static char path[TU_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "#!/bin/sh\nfor a in \"$@\"; do printf '%%s\\n' \"$a\"; done >> '%s/argv.log'\n"
               "echo --end-- >> '%s/argv.log'\n",
            dir, dir);
    if (case_file)
        fprintf(f, "cat '%s/%s'\n", root, case_file);
    fprintf(f, "echo 'warning: %s' >&2\nexit %d\n", name, status);
    fclose(f);
    chmod(path, 0755);
    return path;
}

/* The arguments of the 'n'th run (0-based), joined with spaces (caller frees). */
static char *argv_of(int n)
{
    char path[TU_PATH_MAX + 16], line[4096];
    snprintf(path, sizeof path, "%s/argv.log", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f, "the fake agent did not run");
    store_buf_t b = STORE_BUF_INIT;
    int run = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strcmp(line, "--end--")) {
            if (run++ == n)
                break;
            store_buf_clear(&b);
            continue;
        }
        if (b.len)
            store_buf_putc(&b, ' ');
        store_buf_puts(&b, line);
    }
    fclose(f);
    size_t len;
    store_buf_cstr(&b);
    return (char *)store_buf_detach(&b, &len);
}

static int run(const char *agent, const char *bin, const char *prompt, int restore,
               agent_run_result_t *res)
{
    agent_run_opts_t o = {0};
    o.ops = agent_find(agent);
    cr_assert(o.ops, "no agent %s", agent);
    o.session = "s1";
    o.data_dir = data;
    o.no_sync = 1;
    o.bin = bin;
    o.prompt = prompt;
    o.restore = restore;
    o.retry_max_s = 5;
    o.quiet = 1;
    o.self_exe = "/proc/self/exe";
    return agent_run(&o, res);
}

static void read_events(tu_events_t *ev, store_session_t *rec)
{
    store_t *s = tu_open(data, 0, 1);
    memset(ev, 0, sizeof *ev);
    tu_read_session(s, "s1", ev);
    if (rec)
        TU_OK(tu_session(s, "s1", rec));
    store_close(s);
}

static size_t count_type(const tu_events_t *ev, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < ev->n; i++)
        n += !strcmp(ev->v[i].type, type);
    return n;
}

Test(agents_runner, claude_run_appends_every_line_then_session_ended)
{
    agent_run_result_t res;
    const char *bin = fake_agent("claude", "tests/cases/agents/claude/basic/input.jsonl", 0);
    TU_OK(run("claude", bin, "List the files", 0, &res));
    cr_assert_eq(res.exit_code, 0);
    cr_assert_eq(res.unparsed, 0);
    char *args = argv_of(0);
    cr_assert_str_eq(args, "-p --output-format stream-json --verbose List the files");
    free(args);

    tu_events_t ev;
    store_session_t rec;
    read_events(&ev, &rec);
    cr_assert_str_eq(rec.agent, "claude");
    cr_assert_str_eq(rec.native_session_id, "3b1f9c2e-5d7a-4e21-9a0b-6c8d2e4f1a37");
    cr_assert_eq(rec.status, STORE_ENDED);
    /* the case's 15 events + the user prompt (3) + one stderr line + session.ended */
    cr_assert_eq(ev.n, 15 + 3 + 1 + 1, "got %zu events", ev.n);
    cr_assert_str_eq(ev.v[0].type, "session.started");
    cr_assert_str_eq(ev.v[1].type, "item.started"); /* the prompt follows session.started */
    cr_assert(strstr(ev.v[2].data, "\"delta\":\"List the files\""), "%s", ev.v[2].data);
    cr_assert_str_eq(ev.v[ev.n - 1].type, "session.ended");
    cr_assert(strstr(ev.v[ev.n - 1].data, "\"reason\":\"completed\""), "%s", ev.v[ev.n - 1].data);
    cr_assert(strstr(ev.v[ev.n - 1].data, "\"exit_code\":0"));
    cr_assert(strstr(ev.v[ev.n - 1].data, "warning: claude"), "stderr tail kept");
    cr_assert_eq(count_type(&ev, "agent.stderr"), 1);
    for (size_t i = 0; i < ev.n; i++) { /* deterministic ids, unique */
        cr_assert(strstr(ev.v[i].event_id, "run-"), "%s", ev.v[i].event_id);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(ev.v[i].event_id, ev.v[j].event_id);
    }
    tu_events_free(&ev);
}

Test(agents_runner, second_run_resumes_the_native_session)
{
    agent_run_result_t res;
    const char *bin = fake_agent("claude", "tests/cases/agents/claude/basic/input.jsonl", 0);
    TU_OK(run("claude", bin, "first", 0, &res));
    TU_OK(run("claude", bin, "second", 0, &res));
    char *args = argv_of(1);
    cr_assert_str_eq(args, "-p --output-format stream-json --verbose --resume "
                           "3b1f9c2e-5d7a-4e21-9a0b-6c8d2e4f1a37 second");
    free(args);
    tu_events_t ev;
    read_events(&ev, NULL);
    cr_assert_eq(count_type(&ev, "session.started"), 2);
    cr_assert_eq(count_type(&ev, "session.ended"), 2);
    tu_events_free(&ev);
}

Test(agents_runner, each_agent_gets_its_streaming_and_resume_flags)
{
    static const struct {
        const char *agent, *input, *first, *second;
    } t[] = {
        {"codex", "codex/basic", "exec --json -- -go",
         "exec --json resume 0199b0c2-1a2b-7c3d-8e4f-5a6b7c8d9e0f again"},
        {"opencode", "opencode/run", "run --format json -- -go",
         "run --format json --session ses_4a1b2c3d4e5fXyZ again"},
        {"amp", "amp/basic", "-x -go --stream-json",
         "threads continue T-019b2c3d-4e5f-7a6b-8c9d-0e1f2a3b4c5d -x again --stream-json"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char input[256];
        snprintf(input, sizeof input, "tests/cases/agents/%s/input.jsonl", t[i].input);
        tu_rmrf(data);
        char log[TU_PATH_MAX + 16];
        snprintf(log, sizeof log, "%s/argv.log", dir);
        unlink(log);
        agent_run_result_t res;
        const char *bin = fake_agent(t[i].agent, input, 0);
        TU_OK(run(t[i].agent, bin, "-go", 0, &res)); /* a prompt that looks like a flag */
        TU_OK(run(t[i].agent, bin, "again", 0, &res));
        char *a0 = argv_of(0), *a1 = argv_of(1);
        cr_assert_str_eq(a0, t[i].first, "%s", t[i].agent);
        cr_assert_str_eq(a1, t[i].second, "%s", t[i].agent);
        free(a0);
        free(a1);
    }
}

Test(agents_runner, restore_replay_prepends_the_history_and_starts_fresh)
{
    agent_run_result_t res;
    const char *bin = fake_agent("claude", "tests/cases/agents/claude/basic/input.jsonl", 0);
    TU_OK(run("claude", bin, "first", 0, &res));
    TU_OK(run("claude", bin, "second", AGENT_RESTORE_REPLAY, &res));
    char *args = argv_of(1);
    cr_assert(!strstr(args, "--resume"), "%s", args);
    cr_assert(strstr(args, "--verbose Previous session history is replayed below as JSON-RPC envelopes."),
              "%.300s", args);
    cr_assert(strstr(args, "\"sender\":\"agent\""), "%.300s", args);
    size_t n = strlen(args);
    cr_assert(n > 7 && !strcmp(args + n - 7, " second"), "the prompt comes last");
    free(args);
    tu_events_t ev;
    read_events(&ev, NULL);
    /* the stored user message is the prompt alone, not the replayed history */
    int found = 0;
    for (size_t i = 0; i < ev.n; i++)
        found += !strcmp(ev.v[i].type, "item.delta") && strstr(ev.v[i].data, "\"delta\":\"second\"");
    cr_assert_eq(found, 1);
    tu_events_free(&ev);
}

Test(agents_runner, agent_failure_is_recorded_with_its_exit_status)
{
    agent_run_result_t res;
    const char *bin = fake_agent("claude", "tests/cases/agents/claude/error/input.jsonl", 3);
    TU_OK(run("claude", bin, "go", 0, &res));
    cr_assert_eq(res.exit_code, 3);
    tu_events_t ev;
    read_events(&ev, NULL);
    const char *end = ev.v[ev.n - 1].data;
    cr_assert_str_eq(ev.v[ev.n - 1].type, "session.ended");
    cr_assert(strstr(end, "\"reason\":\"error\"") && strstr(end, "\"exit_code\":3"), "%s", end);
    tu_events_free(&ev);
}

Test(agents_runner, torn_and_garbage_lines_become_unparsed_events)
{
    agent_run_result_t res;
    const char *bin = fake_agent("claude", "tests/cases/agents/claude/broken/input.jsonl", 0);
    TU_OK(run("claude", bin, "go", 0, &res));
    cr_assert_eq(res.unparsed, 5);
    tu_events_t ev;
    read_events(&ev, NULL);
    cr_assert_eq(count_type(&ev, "agent.unparsed"), 5);
    /* the banner came first: the runner started the session itself */
    cr_assert_str_eq(ev.v[0].type, "session.started");
    cr_assert(strstr(ev.v[0].json, "\"synthetic\":true"));
    tu_events_free(&ev);
}

Test(agents_runner, a_background_child_holding_the_pipes_does_not_hang_the_run)
{
    char bin[TU_PATH_MAX + 16];
    snprintf(bin, sizeof bin, "%s/bg-agent", dir);
    FILE *f = fopen(bin, "w");
    fprintf(f, "#!/bin/sh\ncat '%s/tests/cases/agents/codex/basic/input.jsonl'\n"
               "sleep 6 &\nexit 0\n", root);
    fclose(f);
    chmod(bin, 0755);
    agent_run_result_t res;
    time_t t0 = time(NULL);
    TU_OK(run("codex", bin, "go", 0, &res));
    cr_assert_lt(time(NULL) - t0, 6, "the runner waited for the background child");
    cr_assert_eq(res.exit_code, 0);
    tu_events_t ev;
    read_events(&ev, NULL);
    cr_assert_str_eq(ev.v[ev.n - 1].type, "session.ended");
    tu_events_free(&ev);
}

Test(agents_runner, missing_binary_is_recorded_as_exit_127)
{
    agent_run_result_t res;
    char bin[TU_PATH_MAX + 16];
    snprintf(bin, sizeof bin, "%s/no-such-agent", dir);
    TU_OK(run("codex", bin, "go", 0, &res));
    cr_assert_eq(res.exit_code, 127);
    tu_events_t ev;
    read_events(&ev, NULL);
    cr_assert_str_eq(ev.v[0].type, "session.started");
    cr_assert_str_eq(ev.v[ev.n - 1].type, "session.ended");
    cr_assert(strstr(ev.v[ev.n - 1].data, "cannot start"), "%s", ev.v[ev.n - 1].data);
    tu_events_free(&ev);
}

static const char acp_agent[] =
    "#!/usr/bin/env python3\n"
    "import json, sys\n"
    "log = open(sys.argv[1], 'a')\n"
    "def out(o):\n"
    "    sys.stdout.write(json.dumps(o) + '\\n'); sys.stdout.flush()\n"
    "for line in sys.stdin:\n"
    "    m = json.loads(line); log.write(line); log.flush()\n"
    "    if m.get('method') == 'initialize':\n"
    "        out({'jsonrpc':'2.0','id':m['id'],'result':{'protocolVersion':1,'agentCapabilities':{'loadSession':False}}})\n"
    "    elif m.get('method') == 'session/new':\n"
    "        out({'jsonrpc':'2.0','id':m['id'],'result':{'sessionId':'sess_fake'}})\n"
    "    elif m.get('method') == 'session/prompt':\n"
    "        pid = m['id']\n"
    "        up = lambda u: out({'jsonrpc':'2.0','method':'session/update','params':{'sessionId':'sess_fake','update':u}})\n"
    "        up({'sessionUpdate':'agent_message_chunk','content':{'type':'text','text':'Cleaning.'}})\n"
    "        up({'sessionUpdate':'tool_call','toolCallId':'c1','title':'rm -rf build','kind':'execute','status':'pending'})\n"
    "        out({'jsonrpc':'2.0','id':'perm-1','method':'session/request_permission','params':{'sessionId':'sess_fake','toolCall':{'toolCallId':'c1'},'options':[{'optionId':'a','name':'Allow','kind':'allow_once'},{'optionId':'r','name':'Reject','kind':'reject_once'}]}})\n"
    "    elif m.get('id') == 'perm-1':\n"
    "        ok = m['result']['outcome'].get('optionId') == 'a'\n"
    "        up({'sessionUpdate':'tool_call_update','toolCallId':'c1','status':'completed' if ok else 'failed'})\n"
    "        out({'jsonrpc':'2.0','id':pid,'result':{'stopReason':'end_turn'}})\n";

/* Writes 'script' as the executable dir/acp-agent and fills what every ACP run test's
 * options share: the agent, session s1, the test store, the script with 'log' as its one
 * argument. */
static void acp_setup(const char *script, char *bin, char *log, char **extra, agent_run_opts_t *o)
{
    snprintf(bin, TU_PATH_MAX + 16, "%s/acp-agent", dir);
    snprintf(log, TU_PATH_MAX + 16, "%s/acp.log", dir);
    FILE *f = fopen(bin, "w");
    fputs(script, f);
    fclose(f);
    chmod(bin, 0755);
    extra[0] = log;
    extra[1] = NULL;
    memset(o, 0, sizeof *o);
    o->ops = agent_find("acp");
    o->session = "s1";
    o->data_dir = data;
    o->no_sync = 1;
    o->bin = bin;
    o->extra = extra;
}

Test(agents_runner, acp_agent_is_driven_over_stdin_and_restored_by_replay)
{
    char bin[TU_PATH_MAX + 16], log[TU_PATH_MAX + 16], *extra[2];
    agent_run_opts_t o;
    acp_setup(acp_agent, bin, log, extra, &o);
    o.prompt = "Clean the build dir";
    o.retry_max_s = 5;
    o.quiet = 1;
    agent_run_result_t res;
    TU_OK(agent_run(&o, &res));
    cr_assert_eq(res.exit_code, 0);
    cr_assert_str_eq(res.native_session_id, "sess_fake");
    cr_assert_eq(res.unparsed, 0);
    tu_events_t ev;
    read_events(&ev, NULL);
    cr_assert_eq(count_type(&ev, "permission.requested"), 1);
    cr_assert_eq(count_type(&ev, "permission.resolved"), 1);
    int rejected = 0, ended = 0;
    for (size_t i = 0; i < ev.n; i++) {
        rejected += !strcmp(ev.v[i].type, "permission.resolved") && strstr(ev.v[i].data, "\"reject\"");
        ended += !strcmp(ev.v[i].type, "session.ended") && strstr(ev.v[i].data, "completed");
    }
    cr_assert_eq(rejected, 1, "no --approve: the runner rejects");
    cr_assert_eq(ended, 1);
    size_t first = 0;
    while (first < ev.n && !strcmp(ev.v[first].type, "agent.native"))
        first++; /* initialize and its response */
    cr_assert_str_eq(ev.v[first].type, "session.started", "%s", ev.v[first].type);
    cr_assert(strstr(ev.v[first].json, "\"synthetic\":false"), "the agent's own start");
    cr_assert_eq(count_type(&ev, "session.started"), 1);
    tu_events_free(&ev);

    o.approve = 1;
    o.prompt = "again";
    TU_OK(agent_run(&o, &res)); /* no loadSession: a new session with the restore text */
    size_t len;
    FILE *f = fopen(log, "r");
    char buf[65536];
    len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = 0;
    fclose(f);
    cr_assert(strstr(buf, "Previous session history is replayed below"), "%s", buf);
    read_events(&ev, NULL);
    int accepted = 0;
    for (size_t i = 0; i < ev.n; i++)
        accepted += !strcmp(ev.v[i].type, "permission.resolved") && strstr(ev.v[i].data, "\"accept\"");
    cr_assert_eq(accepted, 1);
    tu_events_free(&ev);
}

/* A real ACP agent numbers its own requests from 0 (as the TypeScript SDK does) and may
 * ask an elicitation/create question and call vendor extension methods. */
static const char acp_agent_numeric[] =
    "#!/usr/bin/env python3\n"
    "import json, sys\n"
    "log = open(sys.argv[1], 'a')\n"
    "def out(o):\n"
    "    sys.stdout.write(json.dumps(o) + '\\n'); sys.stdout.flush()\n"
    "up = lambda u: out({'jsonrpc':'2.0','method':'session/update','params':{'sessionId':'s0','update':u}})\n"
    "pid = None\n"
    "for line in sys.stdin:\n"
    "    m = json.loads(line); log.write(line); log.flush()\n"
    "    if m.get('method') == 'initialize':\n"
    "        out({'jsonrpc':'2.0','id':m['id'],'result':{'protocolVersion':1,'agentCapabilities':{}}})\n"
    "    elif m.get('method') == 'session/new':\n"
    "        out({'jsonrpc':'2.0','id':m['id'],'result':{'sessionId':'s0'}})\n"
    "    elif m.get('method') == 'session/prompt':\n"
    "        pid = m['id']\n"
    "        out({'jsonrpc':'2.0','method':'cursor/update_todos','params':{'todos':[]}})\n"
    "        up({'sessionUpdate':'tool_call','toolCallId':'t1','title':'Terminal','kind':'execute','status':'pending','rawInput':{}})\n"
    "        up({'sessionUpdate':'tool_call_update','toolCallId':'t1','title':'`ls`','rawInput':{'command':'ls'}})\n"
    "        out({'jsonrpc':'2.0','id':0,'method':'session/request_permission','params':{'sessionId':'s0','toolCall':{'toolCallId':'t1'},'options':[{'optionId':'a','name':'Allow','kind':'allow_once'},{'optionId':'r','name':'Reject','kind':'reject_once'}]}})\n"
    "    elif m.get('id') == 0 and 'result' in m:\n"
    "        ok = m['result']['outcome'].get('optionId') == 'a'\n"
    "        up({'sessionUpdate':'tool_call_update','toolCallId':'t1','status':'completed' if ok else 'failed'})\n"
    "        out({'jsonrpc':'2.0','id':1,'method':'elicitation/create','params':{'sessionId':'s0','message':'Which branch?','requestedSchema':{'type':'object','properties':{'branch':{'type':'string'}}}}})\n"
    "    elif m.get('id') == 1 and 'result' in m:\n"
    "        up({'sessionUpdate':'agent_message_chunk','content':{'type':'text','text':'answer: ' + m['result']['action']}})\n"
    "        out({'jsonrpc':'2.0','id':pid,'result':{'stopReason':'end_turn'}})\n"
    "import time\n"
    "time.sleep(60)  # like claude-code-acp: still running after its stdin closed\n";

Test(agents_runner, acp_numeric_ids_elicitation_and_vendor_methods)
{
    char bin[TU_PATH_MAX + 16], log[TU_PATH_MAX + 16], *extra[2];
    agent_run_opts_t o;
    acp_setup(acp_agent_numeric, bin, log, extra, &o);
    o.prompt = "list";
    o.retry_max_s = 5;
    o.quiet = 1;
    o.approve = 1;
    agent_run_result_t res;
    TU_OK(agent_run(&o, &res));
    cr_assert_eq(res.exit_code, 0);
    cr_assert_eq(res.unparsed, 0);
    tu_events_t ev;
    store_session_t rec;
    read_events(&ev, &rec);
    cr_assert_eq(rec.agent_len, 3);
    cr_assert(!memcmp(rec.agent, "acp", 3));
    int accepted = 0, declined = 0, args = 0, answer = 0;
    for (size_t i = 0; i < ev.n; i++) {
        accepted += !strcmp(ev.v[i].type, "permission.resolved") &&
                    strstr(ev.v[i].data, "\"permission_id\":\"0\"") && strstr(ev.v[i].data, "\"accept\"");
        declined += !strcmp(ev.v[i].type, "question.resolved") &&
                    strstr(ev.v[i].data, "\"question_id\":\"1\"") && strstr(ev.v[i].data, "\"rejected\"");
        args += !strcmp(ev.v[i].type, "item.completed") && strstr(ev.v[i].data, "\"tool_call\"") &&
                strstr(ev.v[i].data, "\"arguments\":{\"command\":\"ls\"}");
        answer += !strcmp(ev.v[i].type, "item.completed") && strstr(ev.v[i].data, "answer: decline");
    }
    cr_assert_eq(accepted, 1, "the numeric permission id 0 pairs with its reply");
    cr_assert_eq(count_type(&ev, "question.requested"), 1);
    cr_assert_eq(declined, 1, "elicitation/create is declined");
    cr_assert_eq(args, 1, "the input of the tool_call_update reaches the call");
    cr_assert_eq(answer, 1, "the agent got the decline and finished its turn");
    /* the agent did not exit after its turn: stopped by the runner, a normal end */
    cr_assert_eq(res.signal, 0);
    const tu_event_t *last = &ev.v[ev.n - 1];
    cr_assert_str_eq(last->type, "session.ended");
    cr_assert(strstr(last->data, "\"reason\":\"completed\"") && strstr(last->data, "\"signal\":15") &&
              strstr(last->data, "\"terminated_by\":\"runner\""), "%s", last->data);
    tu_events_free(&ev);
}

Test(agents_runner, mock_agent_scenarios_convert_without_unparsed_lines)
{
    const char *names = agent_mock_scenarios();
    char name[32];
    for (const char *p = names; *p;) {
        size_t n = strcspn(p, " ");
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        p += n + (p[n] == ' ');
        char path[TU_PATH_MAX + 40];
        snprintf(path, sizeof path, "%s/%s.jsonl", dir, name);
        FILE *f = fopen(path, "w+");
        cr_assert(f);
        TU_OK(agent_mock_write(name, fileno(f), NULL, "hi", 0));
        rewind(f);
        agent_conv_t *c = agent_conv_new(agent_find("mock"), NULL, NULL, NULL, NULL);
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        int lines = 0;
        while ((len = getline(&line, &cap, f)) > 0) {
            TU_OK(agent_conv_line(c, AGENT_STDOUT, line, (size_t)len - 1));
            lines++;
        }
        cr_assert_gt(lines, 3, "%s", name);
        cr_assert_eq(agent_conv_unparsed(c), 0, "%s", name);
        cr_assert(agent_conv_started(c));
        cr_assert_eq(agent_conv_failed(c), !strcmp(name, "error"), "%s", name);
        agent_conv_free(c);
        free(line);
        fclose(f);
    }
}

Test(agents_runner, ingest_adapter_is_idempotent_with_a_stable_prefix)
{
    store_t *s = tu_open(data, 0, 1);
    for (int pass = 0; pass < 2; pass++) {
        FILE *f = fopen("tests/cases/agents/codex/basic/input.jsonl", "r");
        cr_assert(f);
        agent_conv_t *c = agent_conv_new(agent_find("codex"), NULL, NULL, "file-1/", NULL);
        ingest_batch_t ib;
        ingest_error_t e;
        TU_OK(ingest_batch_init(&ib, "imp", 3));
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while ((len = getline(&line, &cap, f)) > 0)
            TU_OK(agent_ingest_line(c, &ib, line, (size_t)len - 1, &e));
        TU_OK(agent_ingest_end(c, &ib, &e));
        cr_assert_eq(ingest_count(&ib), 17);
        TU_OK(ingest_append(s, &ib));
        cr_assert_eq(ib.b.duplicates, pass ? 17 : 0);
        ingest_batch_release(&ib);
        agent_conv_free(c);
        free(line);
        fclose(f);
    }
    tu_events_t ev = {0};
    tu_read_session(s, "imp", &ev);
    cr_assert_eq(ev.n, 17);
    cr_assert_str_eq(ev.v[0].event_id, "file-1/o1.0");
    tu_events_free(&ev);
    store_close(s);
}

Test(agents_runner, invalid_utf8_is_kept_as_valid_json)
{
    store_buf_t seen = STORE_BUF_INIT;
    agent_conv_t *c = agent_conv_new(agent_find("claude"), NULL, NULL, NULL, NULL);
    cr_assert(c);
    TU_OK(agent_conv_line(c, AGENT_STDOUT, "bad \xff\xfe bytes", 12));
    TU_OK(agent_conv_line(c, AGENT_STDERR, "err \xc3", 5));
    cr_assert_eq(agent_conv_unparsed(c), 1);
    agent_conv_free(c);
    store_buf_release(&seen);
}

Test(agents_runner, server_urls_are_parsed_strictly)
{
    agent__http_t h;
    TU_OK(agent__http_init(&h, "http://127.0.0.1:2469", "tok"));
    cr_assert_str_eq(h.host, "127.0.0.1");
    cr_assert_str_eq(h.port, "2469");
    cr_assert_str_eq(h.prefix, "");
    cr_assert_str_eq(h.token, "tok");
    TU_OK(agent__http_init(&h, "http://reel.internal/base/", NULL));
    cr_assert_str_eq(h.host, "reel.internal");
    cr_assert_str_eq(h.port, "80");
    cr_assert_str_eq(h.prefix, "/base");
    TU_OK(agent__http_init(&h, "http://[::1]:8080", NULL));
    cr_assert_str_eq(h.host, "::1");
    cr_assert_str_eq(h.port, "8080");
    TU_ERR(agent__http_init(&h, "https://example.com", NULL), REEL_EINVALID_PARAMETER);
    TU_ERR(agent__http_init(&h, "http://:80", NULL), REEL_EINVALID_PARAMETER);
    TU_ERR(agent__http_init(&h, "http://host:", NULL), REEL_EINVALID_PARAMETER);
    TU_ERR(agent__http_init(&h, "127.0.0.1:2469", NULL), REEL_EINVALID_PARAMETER);
}
