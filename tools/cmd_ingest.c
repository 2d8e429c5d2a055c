/* cmd_ingest.c -- `reel ingest`: append JSONL events from a file or stdin to a session.
 *
 * Lines are appended in chunks (one atomic store batch each) so that a long stream is
 * durable as it goes; a chunk is also flushed as soon as the input pauses, so events
 * piped from a live agent arrive without delay. A bad line rejects its whole chunk and
 * stops the command; earlier chunks stay appended (re-running is safe with event_ids).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "agents/agent.h"
#include "ingest/ingest.h"
#include "tools/cmds.h"

#define CHUNK_EVENTS 1000
#define CHUNK_BYTES (4u << 20)

static const char about[] =
    "Appends JSONL events (one JSON object per line, the fields of docs/HTTP.md \"Append\")\n"
    "to session S, from FILE or standard input. Each chunk of up to 1000 lines is one atomic,\n"
    "durable append; a bad line rejects its chunk and stops with its line number.\n\n"
    "With --format claude|codex|opencode|amp|acp the input is an agent's own native\n"
    "transcript (e.g. a Claude Code ~/.claude/projects/.../*.jsonl file), converted into\n"
    "universal events by the same converters as `reel run` (docs/AGENTS.md); every native\n"
    "line is kept in 'raw', a line that cannot be converted becomes agent.unparsed. Event ids\n"
    "derive from the input's first line and the line numbers, so ingesting the same file\n"
    "again appends nothing. A UTF-8 byte order mark before the first line is skipped; input\n"
    "without the agent's start line still starts the session once (a synthetic\n"
    "session.started); the session record gets the agent's name and native session id\n"
    "(shown by `reel sessions`, counted by `reel stats` by_agent).\n\n"
    "Secrets in data and raw (API keys, tokens, private keys, passwords in URLs) are replaced\n"
    "by [REDACTED:kind] before anything is stored; --redact off keeps them, --redact FILE\n"
    "adds patterns (docs/REDACTION.md).\n";

struct chunk {
    store_buf_t text; /* NDJSON lines */
    size_t lines;
    size_t first_line; /* input line number of the chunk's first line */
};

struct totals {
    size_t events, dups;
    uint64_t first, last;
};

/* A native-format converter, created at the first line (its event ids derive from it). */
struct native {
    const agent_ops_t *ops; /* NULL for universal input */
    agent_conv_t *conv;
};

/* Event id prefix: the format and a hash of the first line, so that the same file gives
 * the same ids (re-ingesting appends nothing) and another file other ids. */
static int native_start(struct native *n, const char *line, size_t len)
{
    uint8_t h[SHA256_DIGEST_LENGTH];
    char prefix[64];
    SHA256((const uint8_t *)line, len, h);
    snprintf(prefix, sizeof prefix, "%s-%02x%02x%02x%02x%02x%02x/", agent_name(n->ops), h[0],
             h[1], h[2], h[3], h[4], h[5]);
    /* Item ids from the same hash: several files ingested into one session must not
     * share "itm_1" (the transcript would fold them into one item). */
    char items[32];
    snprintf(items, sizeof items, "itm_%02x%02x%02x%02x%02x%02x_", h[0], h[1], h[2], h[3], h[4],
             h[5]);
    n->conv = agent_conv_new(n->ops, NULL, NULL, prefix, items);
    return n->conv ? REEL_OK : REEL_ENOMEM;
}

/* Converts the chunk's lines (or, at the end, the open items) into 'ib'. */
static int native_parse(struct native *n, ingest_batch_t *ib, const struct chunk *c, int end,
                        ingest_error_t *e)
{
    const char *p = (const char *)c->text.data, *stop = p + c->text.len;
    int rc = REEL_OK;
    while (!rc && p < stop) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        size_t len = (size_t)(nl - p);
        if (!n->conv && (rc = native_start(n, p, len)))
            break;
        rc = agent_ingest_line(n->conv, ib, p, len, e);
        p = nl + 1;
    }
    if (!rc && end && n->conv)
        rc = agent_ingest_end(n->conv, ib, e);
    return rc;
}

static int flush(const char *prog, store_t *s, const char *session, struct chunk *c,
                 struct totals *t, struct native *n, int end)
{
    if (!c->lines && !(end && n->conv))
        return 0;
    ingest_batch_t ib;
    ingest_error_t e;
    memset(&e, 0, sizeof e);
    ingest_batch_init(&ib, session, strlen(session));
    int rc = n->ops ? native_parse(n, &ib, c, end, &e)
                    : ingest_parse(&ib, (const char *)c->text.data, c->text.len, INGEST_NDJSON,
                                   NULL, &e);
    if (rc == REEL_EINVALID_EVENT && e.text[0] && !strcmp(e.text, "the request holds no event"))
        rc = REEL_OK, ib.b.n_events = 0; /* only blank lines */
    if (rc) {
        cmd_error(prog, "line %zu: %s (%s); %zu events appended before it", c->first_line +
                  (e.line ? e.line - 1 : 0), e.text, reel_err_code(rc), t->events);
    } else if (ingest_count(&ib) && (rc = ingest_append(s, &ib))) {
        cmd_error(prog, "append failed: %s (%s)", reel_strerror(rc), store_last_error());
    } else if (ingest_count(&ib)) {
        if (!t->first)
            t->first = ib.b.first_sequence;
        t->last = ib.b.last_sequence;
        t->events += ib.b.n_events - ib.b.duplicates;
        t->dups += ib.b.duplicates;
    }
    ingest_batch_release(&ib);
    store_buf_clear(&c->text);
    c->first_line += c->lines;
    c->lines = 0;
    return rc ? -1 : 0;
}

/* 1 when reading more would block (the producer paused): time to flush. */
static int input_idle(FILE *in)
{
    if (in->_IO_read_ptr < in->_IO_read_end) /* glibc: bytes still buffered */
        return 0;
    struct pollfd p = {fileno(in), POLLIN, 0};
    return poll(&p, 1, 0) == 0;
}

/* --format X: the session record names the agent (reel sessions, stats by_agent) and
 * the native session id the converter found, as `reel run --agent X` records them. */
static int put_agent(const char *prog, store_t *s, const char *session, struct native *n)
{
    store_batch_t b;
    store_batch_init(&b, STORE_OP_SESSION_PUT, session, strlen(session));
    const char *agent = agent_name(n->ops), *nsid = agent_conv_native_session_id(n->conv);
    b.agent = agent;
    b.agent_len = strlen(agent);
    if (nsid[0]) {
        b.native_session_id = nsid;
        b.native_session_id_len = strlen(nsid);
    }
    int rc = store_append(s, &b);
    if (rc)
        cmd_error(prog, "cannot set the session's agent: %s (%s)", reel_strerror(rc),
                  store_last_error());
    return rc;
}

static int run(const char *prog, store_t *s, const char *session, FILE *in, int quiet,
               struct native *nat)
{
    struct chunk c = {STORE_BUF_INIT, 0, 1};
    struct totals t = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, in)) >= 0) {
        store_buf_put(&c.text, line, (size_t)n);
        if (n == 0 || line[n - 1] != '\n')
            store_buf_putc(&c.text, '\n');
        c.lines++;
        if (c.lines >= CHUNK_EVENTS || c.text.len >= CHUNK_BYTES || input_idle(in))
            rc = flush(prog, s, session, &c, &t, nat, 0);
    }
    if (!rc && ferror(in)) {
        cmd_error(prog, "read error: %s", strerror(errno));
        rc = -1;
    }
    if (!rc)
        rc = flush(prog, s, session, &c, &t, nat, 1);
    if (!rc && nat->ops && nat->conv && (t.events || t.dups) && put_agent(prog, s, session, nat))
        rc = -1;
    free(line);
    store_buf_release(&c.text);
    if (!quiet && !rc)
        fprintf(stderr, "reel ingest: %zu events appended to '%s' (sequences %llu..%llu), "
                        "%zu duplicates skipped\n", t.events, session,
                (unsigned long long)t.first, (unsigned long long)t.last, t.dups);
    return rc ? CMD_FAIL : CMD_OK;
}

int cmd_ingest(int argc, char **argv)
{
    const char *prog = "ingest", *data = CMD_DEFAULT_DATA, *session = NULL, *file = "-";
    const char *format = "universal", *redact = "builtin";
    int quiet = 0, no_sync = 0, no_zdict = 0;
    const opt_t rows[] = {
        {.name = "session", .type = OPT_STRING, .arg = "S", .dest = &session, .required = 1,
         .help = "session id (1..1024 bytes of UTF-8, no control characters)"},
        CMD_OPT_DATA(&data),
        CMD_OPT_SYNC(&no_sync),
        {.name = "format", .type = OPT_STRING, .arg = "FMT", .dest = &format,
         .help = "universal, claude, codex, opencode, amp or acp", .def = "universal"},
        CMD_OPT_REDACT(&redact),
        {.name = "zdict", .type = OPT_CHOICE, .arg = "on|off", .env = "REEL_ZDICT",
         .dest = &no_zdict, .help = "compress events with zstd dictionaries trained on the\n"
                 "store (docs/FORMAT.md section 15)", .def = "on"},
        {.name = "quiet", .type = OPT_FLAG, .dest = &quiet, .help = "no summary on stderr"},
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = prog, .args = "[FILE|-]", .about = about, .opts = rows};
    int nargs, st = opt_parse(&cmd, argc, argv, &nargs);
    if (st != OPT_GO)
        return st;
    if (nargs)
        file = argv[nargs - 1]; /* the last one, as before the option table */
    if (cmd_check_session(prog, session, 1))
        return CMD_USAGE;
    if (cmd_redact_setup(prog, redact))
        return CMD_USAGE;
    struct native nat = {NULL, NULL};
    if (strcmp(format, "universal") && !(nat.ops = agent_find(format))) {
        cmd_error(prog, "--format must be universal or one of %s, not '%s'", agent_names(),
                  format);
        return CMD_USAGE;
    }
    FILE *in = strcmp(file, "-") ? fopen(file, "r") : stdin;
    if (!in) {
        cmd_error(prog, "cannot open '%s': %s", file, strerror(errno));
        return CMD_FAIL;
    }
    store_options_t o = {.no_sync = no_sync, .no_zdict = no_zdict};
    store_t *s = cmd_open_store_opt(prog, data, &o);
    int rc = s ? run(prog, s, session, in, quiet, &nat) : CMD_FAIL;
    agent_conv_free(nat.conv);
    store_close(s);
    if (in != stdin)
        fclose(in);
    return rc;
}
