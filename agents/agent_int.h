/* agent_int.h -- private to agents/: the converter table, the converter state and the
 * helpers every converter uses to emit events. See agent.h for the module's contract.
 *
 * Item model (docs/AGENTS.md): every item gets item.started, zero or more item.delta
 * (text items only) and one item.completed. Items are minted here ('item_prefix' + n);
 * the agent's own id goes into native_item_id. Open items are found again by a native
 * key chosen by the converter ("m:<message id>", "t:<tool call id>", ...).
 */
#ifndef REEL_AGENT_INT_H
#define REEL_AGENT_INT_H

#include <jansson.h>

#include "agents/agent.h"

#define AGENT__UNKNOWN 1 /* convert(): the line's type is unknown -> agent.unparsed */
#define AGENT__ITEM_ID_MAX 96

typedef struct agent__argv {
    char **v;
    size_t n, cap;
} agent__argv_t;

/* Appends a copy of 's'. Aborts on out-of-memory (runner side, like tools/). */
void agent__argv_add(agent__argv_t *a, const char *s);
void agent__argv_free(agent__argv_t *a);
/* Appends the prompt as the last positional argument, after "--" when it starts with
 * '-' (so it is not taken for an option; not every CLI parser accepts "--"). */
void agent__argv_prompt(agent__argv_t *a, const char *prompt);

struct agent_ops {
    const char *name;
    const char *bin;   /* default executable, looked up on PATH */
    int echoes_prompt; /* 1: the agent echoes the user prompt on stdout itself */
    int stdin_driver;  /* 1: the runner talks a protocol on stdin (drive_*) */
    /* Converts one parsed line (an object); returns REEL_OK, AGENT__UNKNOWN or an emit
     * error. Lines from AGENT_STDIN come here too (c->stream says which). */
    int (*convert)(agent_conv_t *c, json_t *line);
    /* Appends the agent's arguments after the executable: 'resume_id' (NULL = new
     * session), the prompt (restore text already prepended) and the user's extras. */
    void (*build_argv)(agent__argv_t *a, const char *resume_id, const char *prompt,
                       char *const *extra);
    /* Protocol drivers (stdin_driver): the first requests, and the reaction to each
     * line the agent wrote (after it was converted). They write with agent__send(). */
    int (*drive_start)(agent_conv_t *c);
    int (*drive_line)(agent_conv_t *c, json_t *line);
};

typedef struct agent__item {
    char *key; /* native key, owned */
    char id[AGENT__ITEM_ID_MAX];
    json_t *info;     /* kind, role, native_item_id, call_id, name: repeated on completion */
    store_buf_t text; /* the text so far (deltas joined) */
} agent__item_t;

struct agent_conv {
    const agent_ops_t *ops;
    agent_emit_cb emit;
    void *emit_arg;
    char *event_prefix; /* NULL = store-generated ids */
    char *item_prefix;
    uint64_t next_item;
    uint64_t lines[3]; /* line counters per stream */
    /* the line being converted */
    int stream;
    uint64_t line_no;
    unsigned k;       /* events emitted for this line */
    const char *raw;  /* JSON text of 'raw' for this line's events */
    size_t raw_len;
    char nsid[STORE_NAME_MAX + 1];
    int started, failed;
    int client_side;     /* the line being converted is the client's (ACP capture) */
    char unknown[160];   /* why convert() returned AGENT__UNKNOWN, when it says */
    uint64_t unparsed;
    agent__item_t *items;
    size_t n_items, cap_items;
    json_t *state; /* converter-specific state, an object (pending ids, ...) */
    /* ingest */
    ingest_batch_t *ib;
    ingest_error_t *ie;
    /* runner: protocol drivers */
    int (*write)(void *arg, const char *line, size_t len);
    void *write_arg;
    const char *prompt;       /* the prompt as given */
    const char *resume_id;    /* native id to resume, or NULL */
    const char *restore_text; /* replay text to prepend when a fresh session starts */
    int approve;
    int turn_done; /* the driver finished its turn: the runner closes stdin */
};

/* ---- Emitting ---- */

/* Emits 'type' with 'data' (stolen; NULL = {}) for the current line: source "agent". */
int agent__emit(agent_conv_t *c, const char *type, json_t *data);
/* The same, synthetic: source "runner", synthetic true (still carries the line as raw). */
int agent__emit_syn(agent_conv_t *c, const char *type, json_t *data);
/* Returns AGENT__UNKNOWN, recording "unknown <what> '<name>'" as the reason. */
int agent__unknown(agent_conv_t *c, const char *what, const char *name);
/* Sets the native session id (from now on on every event). Returns 1 if it changed. */
int agent__set_nsid(agent_conv_t *c, const char *id);
/* session.started (agent-sourced when 'native', else synthetic) with 'data' (stolen). */
int agent__session_started(agent_conv_t *c, json_t *data, int native);
/* An error event {code, message, ...'extra'} ('extra' stolen, may be NULL). */
int agent__error(agent_conv_t *c, const char *code, const char *message, json_t *extra);

/* ---- Items ---- */

agent__item_t *agent__item_find(agent_conv_t *c, const char *key);
/* Starts an item: 'info' (stolen, may be NULL) gets item_id, kind and role (may be NULL)
 * and is emitted as item.started. Returns NULL on error (c->emit failed, kept). */
agent__item_t *agent__item_start(agent_conv_t *c, const char *key, const char *kind,
                                 const char *role, json_t *info, int synthetic, int *rc);
/* item.delta {item_id, delta}; the delta is appended to the item's text. */
int agent__item_delta(agent_conv_t *c, agent__item_t *it, const char *delta, size_t len,
                      int synthetic);
/* item.completed: the item's info, 'status', 'text' when the item has text, and the
 * members of 'extra' (stolen, may be NULL); then forgets the item. */
int agent__item_complete(agent_conv_t *c, agent__item_t *it, const char *status,
                         json_t *extra, int synthetic);
/* A whole text item at once (no native deltas): started, one synthetic full-text delta
 * (skipped when 'text' is empty), completed. */
int agent__item_whole(agent_conv_t *c, const char *kind, const char *role, json_t *info,
                      const char *text, json_t *extra);
/* A tool item (tool_call or tool_result) at once: started then completed. */
int agent__item_tool(agent_conv_t *c, const char *key, const char *kind, json_t *info,
                     const char *status, json_t *extra);
/* Completes every open item with status "incomplete" (synthetic). */
int agent__items_close_all(agent_conv_t *c);

/* ---- Protocol drivers ---- */

/* Writes 'obj' (borrowed) as one line to the agent's stdin and converts it as an
 * AGENT_STDIN line. */
int agent__send(agent_conv_t *c, json_t *obj);

/* Makes 'ev' storable: when its data or raw nest deeper than an event may (the default
 * ingest and server limit), '*out' becomes an agent.unparsed event saying so, with the
 * native line kept as a string (built in 'tmp', which must outlive '*out'); else '*out'
 * is 'ev'. Nothing is dropped either way. */
void agent__fit(const agent_event_t *ev, agent_event_t *out, store_buf_t *tmp);

/* ---- HTTP client (http.c) ---- */

typedef struct agent__http {
    char host[256];
    char port[8];
    char prefix[256]; /* path prefix of the base URL, without a trailing '/' */
    char token[512];
} agent__http_t;

/* Parses 'url' ("http://host[:port][/prefix]"). REEL_EINVALID_PARAMETER if malformed. */
int agent__http_init(agent__http_t *h, const char *url, const char *token);
/* One request; on REEL_OK '*status' is the HTTP status and the body is appended to
 * 'resp' (may be NULL). REEL_EIO when no complete response came within 'timeout_ms'. */
int agent__http_request(agent__http_t *h, const char *method, const char *path,
                        const char *ctype, const void *body, size_t len, int timeout_ms,
                        int *status, store_buf_t *resp);

/* ---- Progress lines of `reel run` (progress.c) ---- */

typedef struct agent__progress {
    unsigned turns;
    long long tok_in, tok_out;
    double cost;
    int have_cost;
    char last_text[120]; /* the start of the last assistant message */
    json_t *tool_names;  /* call_id -> tool name, for "[failed] NAME: ..." */
} agent__progress_t;

/* Prints the line 'ev' calls for, if any, on stderr. Zero-initialize the state. */
void agent__progress_event(agent__progress_t *p, const agent_event_t *ev);
void agent__progress_free(agent__progress_t *p);

/* ---- JSON helpers (NULL-safe) ---- */

const char *agent__str(json_t *o, const char *key); /* string member or NULL */
json_t *agent__get(json_t *o, const char *key);    /* member or NULL */
/* Copies member 'key' of 'from' to 'to' under 'as' (same name when NULL), if present. */
void agent__copy(json_t *to, const char *as, json_t *from, const char *key);
/* A JSON string from bytes that may not be UTF-8 (invalid bytes become U+FFFD). */
json_t *agent__string(const char *s, size_t len);

/* ---- The tables (one per file) ---- */

extern const agent_ops_t agent__claude_ops, agent__codex_ops, agent__opencode_ops,
    agent__amp_ops, agent__acp_ops, agent__mock_ops;

/* ---- Claude stream-json (shared by claude, amp and mock) ---- */

int agent__claude_convert(agent_conv_t *c, json_t *line);

#endif
