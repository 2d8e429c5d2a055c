/* cmds.h -- the reel subcommands and the helpers they share.
 *
 * Each subcommand lives in tools/cmd_<name>.c as `int cmd_<name>(int argc, char **argv)`
 * (argv[0] is the subcommand name) and returns an exit status from enum cmd_exit.
 * tools/reel.c dispatches from a table. Every subcommand parses its options through one
 * table of opt_t rows (tools/opt.h), so every one answers --help on stdout with exit 0,
 * and prints usage errors on stderr with exit 2 (git conventions). A new subcommand is a
 * cmd_<name>.c with its rows, a prototype below and a row in reel.c's table.
 * tools/ may abort on out-of-memory (xmalloc); the library modules never do.
 */
#ifndef REEL_CMDS_H
#define REEL_CMDS_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>

#include "store/store.h"
#include "tools/opt.h"

enum cmd_exit { CMD_OK = 0, CMD_FAIL = 1, CMD_USAGE = 2 };

int cmd_serve(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_sessions(int argc, char **argv);
int cmd_consumers(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_transcript(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_mock_agent(int argc, char **argv);
int cmd_tokens(int argc, char **argv);
int cmd_redact(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
int cmd_cluster_reads(int argc, char **argv); /* events|sessions, from cmd_cluster */
int cmd_cluster_restore(int argc, char **argv); /* cluster_restore.c */
int cmd_cluster_move(int argc, char **argv); /* cluster_move.c: `reel cluster move` */
int cmd_sink(int argc, char **argv);

/* Common settings with their environment twins: flags win over environment, environment
 * over defaults (docs/HTTP.md, "Options and limits"; opt.h applies the rule). */
#define CMD_DEFAULT_DATA "./reel-data"
#define CMD_DEFAULT_LISTEN "127.0.0.1:2469"

/* getenv(name) or 'fallback' when unset or empty. */
const char *cmd_env(const char *name, const char *fallback);

/* Parses a decimal unsigned 64-bit value; returns 0, or -1 after printing an error that
 * names 'what' and the bad value. */
int cmd_parse_u64(const char *prog, const char *what, const char *v, unsigned long long *out);

/* ---- Option rows shared by the subcommands (tools/opt.h) ---- */

/* --data DIR [REEL_DATA] into a const char *. */
#define CMD_OPT_DATA(d)                                                                     \
    {.name = "data", .type = OPT_STRING, .arg = "DIR", .env = "REEL_DATA",                     \
     .help = "data directory", .def = CMD_DEFAULT_DATA, .dest = (d)}

/* --progress: progress lines on stderr (cmd_progress_init() enables them on a terminal). */
#define CMD_OPT_PROGRESS(flag)                                                                 \
    {.name = "progress", .type = OPT_FLAG, .dest = (flag),                                     \
     .help = "progress lines on stderr (default: when stderr is a terminal)"}

/* --sync full|none [REEL_SYNC] into an int that becomes 1 for none (no fsync). */
#define CMD_OPT_SYNC(no_sync)                                                                  \
    {.name = "sync", .type = OPT_CHOICE, .arg = "full|none", .env = "REEL_SYNC",               \
     .help = "fsync every commit", .def = "full", .dest = (no_sync)}

/* --redact builtin|off|FILE [REEL_REDACT] into a const char * (docs/REDACTION.md). */
#define CMD_OPT_REDACT(spec)                                                                   \
    {.name = "redact", .type = OPT_STRING, .arg = "builtin|off|FILE", .env = "REEL_REDACT",    \
     .help = "replace secrets in data and raw before storing them", .def = "builtin",          \
     .dest = (spec)}

/* Sets the process-wide redactor from a --redact value; 0, or -1 after printing why. */
int cmd_redact_setup(const char *prog, const char *spec);

/* A range of the log given as --after P --until Q (positions) and --since T --before T
 * (event times: RFC 3339 UTC or Unix ms); zero fields are unset. */
typedef struct cmd_range {
    unsigned long long after, until;
    int64_t since_ms, before_ms;
} cmd_range_t;

/* The four rows of a cmd_range_t 'r'. */
#define CMD_OPT_RANGE(r)                                                                       \
    {.name = "after", .type = OPT_U64, .arg = "P", .dest = &(r)->after,                       \
     .help = "positions after P of the all-sessions log (exclusive)"},                         \
    {.name = "until", .type = OPT_U64, .arg = "Q", .dest = &(r)->until,                       \
     .help = "positions up to Q (inclusive)"},                                                 \
    {.name = "since", .type = OPT_CALL, .arg = "TIME", .fn = cmd_opt_time, .dest = &(r)->since_ms, \
     .help = "events at or after TIME: RFC 3339 UTC (2026-11-22T13:00:00Z) or Unix ms"},      \
    {.name = "before", .type = OPT_CALL, .arg = "TIME", .fn = cmd_opt_time,                   \
     .dest = &(r)->before_ms, .help = "events before TIME (same forms)"}

/* An OPT_CALL for an event time (RFC 3339 UTC or Unix ms) into the int64_t row->dest. */
int cmd_opt_time(const opt_cmd_t *cmd, const opt_t *row, const char *v);

/* 0 if 'id' is a valid session id; else prints why (or that it is missing, when
 * 'required') and returns -1. NULL is fine when not required. */
int cmd_check_session(const char *prog, const char *id, int required);

/* opt_parse() for a subcommand without arguments, then cmd_check_session() on the id its
 * rows filled into '*session': OPT_GO, or the exit status to return (--help, a usage
 * error, a bad or missing session id). */
int cmd_parse_session(const char *prog, const char *about, const opt_t *rows, int argc,
                      char **argv, const char *const *session, int required);

/* Opens the store at 'dir' or prints why not (naming 'dir'); returns NULL on failure. */
store_t *cmd_open_store(const char *prog, const char *dir, int read_only, int no_sync);
/* The same with every store option (serve's --create). */
store_t *cmd_open_store_opt(const char *prog, const char *dir, const store_options_t *opt);

/* Progress lines on stderr, at most one a second; enabled when stderr is a terminal
 * (enabled < 0) or when asked (--progress). */
typedef struct cmd_progress {
    const char *prog;
    int enabled;
    int printed;
    double start, last;
} cmd_progress_t;

void cmd_progress_init(cmd_progress_t *p, const char *prog, int enabled);
void cmd_progress(cmd_progress_t *p, unsigned long long events, unsigned long long total,
                  unsigned long long bytes);
double cmd_progress_elapsed(const cmd_progress_t *p);
/* A store_progress_cb whose 'arg' is a cmd_progress_t. */
void cmd_progress_cb(void *arg, uint64_t done, uint64_t total);

/* Prints "reel <prog>: " and the message to stderr. */
/* Human-readable tables: "1.2 KiB"; the width of UTF-8 text in code points; the first
 * 'chars' code points of 's' (NUL-terminated, within 'cap' bytes). */
void cmd_human_bytes(char *out, size_t n, uint64_t b);
size_t cmd_utf8_width(const char *s);
void cmd_utf8_prefix(char *out, size_t cap, const char *s, size_t chars);

/* The error of a store call, naming 'session' (may be NULL) when it does not exist. */
void cmd_store_error(const char *prog, int rc, const char *session);
void cmd_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Long-running commands (sink, tail, cluster events) stop after the page in hand once
 * SIGINT or SIGTERM set cmd_stop (after cmd_stop_on_signals()). */
extern volatile sig_atomic_t cmd_stop;
void cmd_stop_on_signals(void);
uint64_t cmd_now_ms(void); /* CLOCK_MONOTONIC, in ms */
/* 0 when 'dir' is absent or an empty directory, else an error naming it (restore, backup) */
int cmd_check_new_dir(const char *prog, const char *label, const char *dir, const char *why);

/* All-or-nothing outputs (partial.c): written as "<dest>.partial", renamed to dest by
 * cmd_partial_commit() after an fsync; removed on SIGINT/SIGTERM/SIGHUP, on abort, and (when
 * a SIGKILL left it) by the next cmd_partial_begin() for the same destination. is_dir: the
 * output is a directory holding an LMDB copy (backup). Each returns 0, or -1 after printing
 * the error. */
typedef struct cmd_partial {
    const char *prog;
    int is_dir;
    char dest[PATH_MAX], tmp[PATH_MAX], tmp_data[PATH_MAX], tmp_lock[PATH_MAX];
} cmd_partial_t;

int cmd_partial_begin(cmd_partial_t *p, const char *prog, const char *dest, int is_dir);
int cmd_partial_commit(cmd_partial_t *p);
void cmd_partial_abort(cmd_partial_t *p);

/* ---- Against a server (remote.c): --server URL [REEL_SERVER] --token T [REEL_TOKEN] ---- */

typedef struct cmd_remote {
    const char *url;   /* http(s)://host:port, no trailing path; NULL = use --data */
    const char *token; /* bearer token or NULL */
} cmd_remote_t;

/* The two rows of a cmd_remote_t 'r'. */
#define CMD_OPT_REMOTE(r)                                                                     \
    {.name = "server", .type = OPT_STRING, .arg = "URL", .env = "REEL_SERVER",                 \
     .dest = &(r)->url, .help = "read from a reel server instead of --data"},                   \
    {.name = "token", .type = OPT_STRING, .arg = "T", .env = "REEL_TOKEN", .dest = &(r)->token, \
     .help = "bearer token for --server"}

/* GET url+path (path with its query, already escaped): the body into 'out' (cleared
 * first), or the body streamed to 'fd'. 0, or -1 after printing why: could not connect,
 * or the HTTP status and the problem's detail. */
int cmd_remote_get(const char *prog, const cmd_remote_t *r, const char *path, store_buf_t *out);
int cmd_remote_stream(const char *prog, const cmd_remote_t *r, const char *path, int fd);
/* POST of the JSON 'body' to url+path: the answer into 'out' (cleared first); 0 or -1 as
 * above (a failed POST is never sent again). */
int cmd_remote_post(const char *prog, const cmd_remote_t *r, const char *path,
                    const char *body, size_t len, store_buf_t *out);
/* Sets 'b' to "/v1/sessions/<session, escaped>/<route>". */
void cmd_remote_session_path(store_buf_t *b, const char *session, const char *route);
/* Appends 's' percent-encoded (everything but A-Z a-z 0-9 - . _ ~). */
void cmd_remote_escape(store_buf_t *b, const char *s);
/* The text of member 'name' of the JSON object 'json' (no re-encoding): 0 or -1. */
int cmd_json_member(const char *json, size_t len, const char *name, const char **v, size_t *vlen);
/* The top-level members of object text 'json' in one pass: up to 'cap' (name, value)
 * pairs, the names with their quotes, values as cmd_json_member() gives them. The count,
 * or -1 when it is not such an object. (A reader of many members of one large object
 * indexes it once instead of scanning it per member.) */
typedef struct cmd_json_kv {
    const char *k, *v;
    size_t kn, vn;
} cmd_json_kv_t;
int cmd_json_members(const char *json, size_t len, cmd_json_kv_t *out, size_t cap);
/* Calls cb with the text of each element of the array member 'name', verbatim. 0, -1 (no
 * such array) or cb's non-zero result. */
int cmd_json_array_each(const char *json, size_t len, const char *name,
                        int (*cb)(void *arg, const char *elem, size_t n), void *arg);
/* Appends the decoded JSON string literal v[0..n) (quotes included) to 'out'. */
void cmd_json_unquote(const char *v, size_t n, store_buf_t *out);

#endif
