/* fuzz_agents.c -- libFuzzer harness: every agent converter over arbitrary native lines.
 *
 * The input is split into lines at '\n'. For every agent name of agent_names():
 *  1. The ingest path (`reel ingest --format <agent>`): agent_ingest_line() per line, then
 *     agent_ingest_end(). A line that cannot be converted becomes agent.unparsed with the
 *     line kept, nothing is dropped (docs/AGENTS.md §3), so every call must return REEL_OK and add
 *     at least one event per line that is not blank (agent.h: blank lines are skipped);
 *     every added event must render as valid JSON.
 *  2. The runner path: agent_conv_line() with an emit callback, each line sent on a stream
 *     picked from the line (stdout, stdin for ACP client requests, stderr), then
 *     agent_conv_exit(). Every emitted event must have a type of 1..128 bytes, a source,
 *     'data' that is a valid JSON object text, 'raw' that is valid JSON, and an event id of
 *     at most 128 bytes.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agents/agent.h"
#include "agents/agent_int.h"
#include "replay/replay.h"
#include "store/json.h"
#include "store/store_int.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Known open bug 4 (docs/RELIABILITY.md "Findings"), tolerated only with FUZZ_KNOWN_BUGS
 * set (timed campaigns): a line whose JSON nests deeper than STORE_JSON_MAX_DEPTH (jansson
 * accepts it) makes the converter's 'data' too deep for the store, and the line is
 * dropped with REEL_ETOO_DEEP instead of becoming agent.unparsed. The regression
 * tests/fuzz/regressions/agents/deep-tool-input.jsonl replays it without the variable. */
static int known_bug(int rc)
{
    return rc == REEL_ETOO_DEEP && getenv("FUZZ_KNOWN_BUGS");
}

/* agent.h: blank lines (only spaces, tabs, '\r') are skipped and may yield no event. */
static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return 0;
    return 1;
}

/* Known open bug 5 (docs/RELIABILITY.md): agents/claude.c leaks a jansson object for an
 * assistant line whose message.content is a string. With FUZZ_KNOWN_BUGS set such lines
 * are not given to the claude converter (claude, amp and mock use it), so campaigns keep finding other leaks; the
 * regression claude-string-content-leak.jsonl replays it without the variable. */
static int known_leak_line(const agent_ops_t *ops, const char *p, size_t n)
{
    if (!getenv("FUZZ_KNOWN_BUGS") || ops->convert != agent__claude_convert)
        return 0;
    json_t *j = json_loadb(p, n, 0, NULL);
    json_t *m = json_object_get(j, "message");
    int hit = json_is_string(json_object_get(m, "content"));
    json_decref(j);
    return hit;
}

static const char *const agents[] = {"claude", "codex", "opencode", "amp", "acp", "mock"};

static int emit_check(void *arg, const agent_event_t *ev)
{
    size_t *n = arg;
    (*n)++;
    FZ_CHECK(ev->type && strlen(ev->type) >= 1 && strlen(ev->type) <= STORE_TYPE_MAX,
             "bad type");
    FZ_CHECK(ev->source && *ev->source, "event without source");
    FZ_CHECK(!ev->event_id || strlen(ev->event_id) <= STORE_EVENT_ID_MAX, "event id too long");
    FZ_CHECK(ev->data && ev->data_len && ev->data[0] == '{' &&
                 fz_json_valid(ev->data, ev->data_len),
             "%s: data is not a JSON object: %s", ev->type, fz_show(ev->data, ev->data_len));
    if (ev->raw)
        FZ_CHECK(fz_json_valid(ev->raw, ev->raw_len), "%s: raw is not JSON: %s", ev->type,
                 fz_show(ev->raw, ev->raw_len));
    return REEL_OK;
}

static void check_batch(ingest_batch_t *ib, size_t from)
{
    store_buf_t val = STORE_BUF_INIT, scratch = STORE_BUF_INIT, out = STORE_BUF_INIT;
    for (size_t i = from; i < ingest_count(ib); i++) {
        const store_event_t *ev = &ib->b.events[i];
        store_buf_clear(&val);
        store_buf_putc(&val, ev->body[0]);
        uint8_t hdr[STORE_HEADER_LEN - 1];
        fz_header(hdr);
        store_buf_put(&val, hdr, sizeof hdr);
        store_buf_put(&val, ev->body + 1, ev->body_len - 1);
        store_event_view_t v = {0};
        v.session = "fuzz";
        v.session_len = 4;
        FZ_CHECK(fz_value_decode(val.data, val.len, &scratch, &v) == REEL_OK, "decode");
        store_buf_clear(&out);
        int rc = replay_write_event(&out, &v, 1);
        FZ_CHECK(rc == REEL_OK && fz_json_valid(out.data, out.len),
                 "converted event %zu does not render as JSON: %s", i,
                 fz_show(out.data, out.len));
    }
    store_buf_release(&val);
    store_buf_release(&scratch);
    store_buf_release(&out);
}

static void ingest_path(const agent_ops_t *ops, const uint8_t *data, size_t size)
{
    agent_conv_t *c = agent_conv_new(ops, NULL, NULL, "f-", NULL);
    FZ_CHECK(c, "agent_conv_new");
    ingest_batch_t ib;
    ingest_error_t e;
    ingest_batch_init(&ib, "fuzz", 4);
    const char *p = (const char *)data, *end = p + size;
    size_t line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t before = ingest_count(&ib);
        line++;
        if (known_leak_line(ops, p, (size_t)(eol - p))) {
            p = nl ? nl + 1 : end;
            continue;
        }
        int rc = agent_ingest_line(c, &ib, p, (size_t)(eol - p), &e);
        if (known_bug(rc))
            break;
        FZ_CHECK(rc == REEL_OK, "%s: line %zu dropped: %s (%s): %s", agent_name(ops), line,
                 reel_err_code(rc), e.text, fz_show(p, (size_t)(eol - p)));
        FZ_CHECK(ingest_count(&ib) > before || blank(p, (size_t)(eol - p)),
                 "%s: line %zu gave no event", agent_name(ops), line);
        check_batch(&ib, before);
        /* Keep memory bounded: a long input is ingested in several batches. */
        if (ingest_count(&ib) > 256) {
            ingest_batch_release(&ib);
            ingest_batch_init(&ib, "fuzz", 4);
        }
        p = nl ? nl + 1 : end;
    }
    size_t before = ingest_count(&ib);
    int rc = agent_ingest_end(c, &ib, &e);
    FZ_CHECK(rc == REEL_OK, "%s: end failed: %s", agent_name(ops), e.text);
    check_batch(&ib, before);
    ingest_batch_release(&ib);
    agent_conv_free(c);
}

static void runner_path(const agent_ops_t *ops, const uint8_t *data, size_t size)
{
    size_t n = 0;
    agent_conv_t *c = agent_conv_new(ops, emit_check, &n, "r-", "it_");
    FZ_CHECK(c, "agent_conv_new");
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t len = (size_t)(eol - p);
        /* Mostly stdout; lines starting with '>' go to stdin, '!' to stderr. */
        int stream = len && *p == '>' ? AGENT_STDIN : len && *p == '!' ? AGENT_STDERR
                                                                       : AGENT_STDOUT;
        if (stream != AGENT_STDOUT)
            p++, len--;
        if (known_leak_line(ops, p, len)) {
            p = nl ? nl + 1 : end;
            continue;
        }
        size_t before = n;
        int rc = agent_conv_line(c, stream, p, len);
        FZ_CHECK(rc == REEL_OK, "%s: agent_conv_line failed: %s", agent_name(ops),
                 reel_err_code(rc));
        FZ_CHECK(n > before || blank(p, len), "%s: a line gave no event", agent_name(ops));
        p = nl ? nl + 1 : end;
    }
    FZ_CHECK(agent_conv_exit(c, "completed", 0, 0, "[\"x\"]") == REEL_OK, "exit");
    (void)agent_conv_native_session_id(c);
    agent_conv_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    for (size_t i = 0; i < sizeof agents / sizeof agents[0]; i++) {
        const agent_ops_t *ops = agent_find(agents[i]);
        FZ_CHECK(ops, "agent %s not found", agents[i]);
        ingest_path(ops, data, size);
        runner_path(ops, data, size);
    }
    return 0;
}
