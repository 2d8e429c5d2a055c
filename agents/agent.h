/* agent.h -- agent runners and per-agent converters: native agent output in, universal
 * events (docs/AGENTS.md §3; the envelope in docs/DESIGN.md "Events") out.
 *
 * A converter turns the lines a coding-agent CLI writes in its machine-readable mode
 * (Claude Code stream-json, Codex exec --json, OpenCode run --format json and its event
 * bus, Amp --stream-json, ACP JSON-RPC) into universal events: session.started,
 * item.started/item.delta/item.completed, permission.*, question.*, usage, error,
 * session.ended, plus three bookkeeping types of our own:
 *   agent.native    a line that parsed but carries nothing the universal model has (a
 *                   turn start, a todo list, a keep-alive): kept, never dropped
 *   agent.unparsed  a line that is not JSON or has an unknown type, kept with the error
 *   agent.stderr    one line the agent wrote on stderr (runner only)
 * The event data shapes are documented in docs/AGENTS.md. Every event converted from a
 * native line carries that line in 'raw' (as JSON when the line is JSON, else as a
 * string), so the native transcript can always be re-converted.
 *
 * The converter interface is a table of functions (agent_ops_t), one table per agent,
 * each in its own file (agents/claude.c, codex.c, opencode.c, amp.c, acp.c, mock.c),
 * found by name with agent_find(). A converter's per-stream state lives in an
 * agent_conv_t (items still open, ids already seen), created by agent_conv_new().
 *
 * The runner (agent_run(), agents/runner.c) spawns the agent CLI, feeds its stdout and
 * stderr lines through a converter and appends the events in order, either to a store or
 * through a reel server's HTTP API with deterministic event ids, so retries never
 * duplicate or lose an event.
 *
 * Rules:
 *  - Ownership: every pointer passed in is borrowed for the call; every agent_event_t
 *    given to an emit callback is borrowed until the callback returns.
 *  - Threads: an agent_conv_t belongs to one thread at a time; the tables are read-only.
 *  - Errors: REEL_OK or a reel_err (store/err.h). A native line that cannot be converted
 *    is not an error: it becomes an agent.unparsed event.
 */
#ifndef REEL_AGENT_H
#define REEL_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/ingest.h"
#include "store/store.h"

/* ---- Events ---- */

/* One universal event, as produced by a converter. All pointers are borrowed until the
 * emit callback returns. */
typedef struct agent_event {
    const char *event_id;          /* deterministic id, or NULL (store generates one) */
    const char *type;              /* "item.delta", ... */
    const char *source;            /* "agent", "runner", or "client" (ACP captures) */
    int synthetic;                 /* 1 = made up by the runner, not said by the agent */
    const char *native_session_id; /* the agent's session id once known, else NULL */
    const char *data;              /* compact JSON text of the data object (valid UTF-8) */
    size_t data_len;
    const char *raw; /* JSON text: the native line this event came from (the line itself
                        when it is JSON, else the line as a JSON string), or NULL */
    size_t raw_len;
} agent_event_t;

/* Receives each event in order; a non-zero return (a reel_err) stops the conversion and
 * is returned by the agent_conv_* call that produced the event. */
typedef int (*agent_emit_cb)(void *arg, const agent_event_t *ev);

/* Where a line came from. */
enum agent_stream {
    AGENT_STDOUT = 0, /* written by the agent (or a captured transcript) */
    AGENT_STDIN = 1,  /* written to the agent by the runner (ACP requests and replies) */
    AGENT_STDERR = 2, /* the agent's stderr: becomes agent.stderr */
};

/* ---- Converters ---- */

typedef struct agent_conv agent_conv_t;
typedef struct agent_ops agent_ops_t;

/* Returns the converter table of agent 'name' ("claude", "codex", "opencode", "amp",
 * "acp", "mock"), or NULL. */
const agent_ops_t *agent_find(const char *name);
/* The table's agent name (static string). */
const char *agent_name(const agent_ops_t *ops);
/* Comma-separated list of every agent name, for usage messages (static string). */
const char *agent_names(void);

/* Creates a converter state for 'ops' that sends its events to 'emit'. Event ids are
 * '<event_prefix><stream letter><line number>.<index>' ("o12.0": the first event of
 * stdout line 12) when 'event_prefix' is not NULL, else NULL (store-generated). Item ids
 * are '<item_prefix><n>' ("itm_1" when 'item_prefix' is NULL). Returns NULL when out of
 * memory. Free with agent_conv_free(). */
agent_conv_t *agent_conv_new(const agent_ops_t *ops, agent_emit_cb emit, void *arg,
                             const char *event_prefix, const char *item_prefix);
void agent_conv_free(agent_conv_t *c);

/* Converts one native line (without its '\n'; a trailing '\r' is ignored) from 'stream'.
 * Every line yields at least one event, except blank lines, which are skipped (they
 * still count in the line numbers). Returns REEL_OK or the emit callback's error. */
int agent_conv_line(agent_conv_t *c, int stream, const char *line, size_t len);

/* End of the stream: completes the items the agent left open (synthetic item.completed
 * with status "incomplete"). Does not emit session.ended (see agent_conv_exit). */
int agent_conv_finish(agent_conv_t *c);

/* The agent process ended: agent_conv_finish(), then session.ended with 'reason'
 * ("completed", "error" or "terminated"), the exit status ('exit_code' >= 0) or signal
 * ('signal' > 0) and the last lines of stderr ('stderr_tail' JSON array text or NULL). */
int agent_conv_exit(agent_conv_t *c, const char *reason, int exit_code, int signal,
                    const char *stderr_tail);

/* Emits a synthetic runner event with 'data_json' (compact JSON object text) and
 * event id '<event_prefix><name>'. Used for the runner's own events (the user prompt,
 * session.started when the agent never sent one). */
int agent_conv_emit_runner(agent_conv_t *c, const char *name, const char *type,
                           const char *data_json);

/* Emits the user prompt as a synthetic user message item (item.started, one full-text
 * item.delta, item.completed) with event ids '<event_prefix>p.0' .. 'p.2'. */
int agent_conv_prompt(agent_conv_t *c, const char *prompt);

/* State the runner reads. */
const char *agent_conv_native_session_id(const agent_conv_t *c); /* "" until known */
int agent_conv_started(const agent_conv_t *c); /* 1 once session.started was emitted */
int agent_conv_failed(const agent_conv_t *c);  /* 1 once the agent reported an error result */
uint64_t agent_conv_unparsed(const agent_conv_t *c); /* agent.unparsed events so far */

/* ---- Ingest (reel ingest --format <agent>) ---- */

/* Converts one native line of a captured transcript (stdout stream, line number counted
 * by 'c') and adds the events to 'ib' with ingest_add() (this replaces the emit callback
 * of 'c'). Create 'c' with
 * agent_conv_new(ops, NULL, NULL, prefix, NULL): the batch is given per call, so a long
 * file may be appended in several batches with one converter. A stable 'prefix' (e.g.
 * derived from the file) makes re-ingesting the same file append nothing new.
 * Errors: ingest_add()'s (then 'e' says why), REEL_ENOMEM. */
int agent_ingest_line(agent_conv_t *c, ingest_batch_t *ib, const char *line, size_t len,
                      ingest_error_t *e);
/* End of the captured transcript: agent_conv_finish() into 'ib'. */
int agent_ingest_end(agent_conv_t *c, ingest_batch_t *ib, ingest_error_t *e);

/* ---- Runner ---- */

enum agent_restore_mode {
    AGENT_RESTORE_NATIVE = 0, /* resume natively when the agent can, else replay text */
    AGENT_RESTORE_REPLAY = 1, /* always start fresh and prepend the replay text */
};

typedef struct agent_run_opts {
    const agent_ops_t *ops;
    const char *session;       /* reel session id */
    const char *data_dir;      /* store directory (when 'server' is NULL) */
    int no_sync;               /* --sync=none for the store */
    const char *server;        /* "http://host:port" or NULL for the data directory */
    const char *token;         /* bearer token for 'server', or NULL */
    const char *bin;           /* agent executable, or NULL for the agent's default */
    const char *self_exe;      /* path of the reel binary (the mock agent runs it) */
    const char *prompt;        /* the user prompt */
    char *const *extra;        /* extra agent arguments (NULL-terminated), or NULL */
    int restore;               /* enum agent_restore_mode */
    int approve;               /* ACP: 1 = allow permission requests, 0 = reject them */
    double retry_max_s;        /* --server: give up after this long without progress */
    int quiet;                 /* no progress messages on stderr */
    int progress;              /* 1: one line per turn, tool call and error on stderr
                                * ("[turn 1] ...", "[tool] Bash ls", "[done] ..."); 0: none */
} agent_run_opts_t;

typedef struct agent_run_result {
    int exit_code;     /* the agent's exit status, or -1 */
    int signal;        /* the signal that ended the agent, or 0 */
    uint64_t events;   /* events appended (duplicates excluded) */
    uint64_t lines;    /* native lines read (stdout and stderr) */
    uint64_t unparsed; /* agent.unparsed events */
    char native_session_id[STORE_NAME_MAX + 1];
} agent_run_result_t;

/* Runs the agent to completion: reads the session record (resume id, restore text),
 * spawns the agent, converts and appends every line, and ends with session.ended (see
 * docs/AGENTS.md). Returns REEL_OK when every event was appended, whatever the agent's
 * own outcome ('res' has its exit status; an agent that cannot be started is recorded
 * with exit status 127). Errors, with a message on stderr: REEL_EINVALID_PARAMETER (bad
 * options), REEL_EGONE (the session was deleted), REEL_EIO (the server refused an append
 * or stayed unreachable for 'retry_max_s'), store errors. After an error the agent is
 * stopped with SIGTERM and no session.ended is appended. */
int agent_run(const agent_run_opts_t *o, agent_run_result_t *res);

/* ---- Mock agent ---- */

/* Writes scenario 'name' ("demo", "markdown", "tools", "permission", "error", "long")
 * as Claude stream-json lines to 'fd', sleeping 'delay_ms' between lines. 'session_id'
 * (NULL = a fixed one) is the session id it reports (the resumed id under --resume);
 * 'prompt' (may be NULL) is echoed by "demo".
 * Returns REEL_OK, REEL_EINVALID_PARAMETER for an unknown scenario, or REEL_EIO. */
int agent_mock_write(const char *name, int fd, const char *session_id, const char *prompt,
                     int delay_ms);
/* An ACP agent on 'in_fd'/'out_fd' (JSON-RPC lines) until 'in_fd' ends: initialize,
 * session/new, session/resume, and session/prompt, which streams a thought, "mock:
 * <prompt>" word by word, and, when the prompt contains "permission", a tool call that
 * asks for permission first (and fails if rejected). Returns REEL_OK or REEL_EIO. */
int agent_mock_acp(int in_fd, int out_fd, int delay_ms);
/* Space-separated list of scenario names (static string). */
const char *agent_mock_scenarios(void);

#endif
