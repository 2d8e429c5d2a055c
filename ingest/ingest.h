/* ingest.h -- bytes in -> validated events -> one atomic store batch.
 *
 * Ingest turns JSON (one object, an array of objects, or NDJSON) into store events:
 * it validates every field, transcodes 'data' and 'raw' to msgpack (store/json.h),
 * generates an event_id (UUIDv7) where the caller gave none, encodes and hashes each
 * body (store_body_encode), and submits the whole request as one store batch. Either
 * every event is valid and the batch is submitted, or nothing is.
 *
 * Accepted event fields (docs/DESIGN.md "Events", docs/HTTP.md "Append"): type
 * (required, 1..128 bytes), event_id (1..128 bytes), source, native_session_id (strings
 * or null), synthetic (bool or null), data, raw (any JSON), client_time (the client's
 * time: Unix ms 0..8.64e15 or RFC 3339 as store_parse_rfc3339_js() reads it, or null;
 * stored as given), redactions (the record ingest wrote), redacted (true: the event was
 * redacted after the fact; it is stored with STORE_FLAG_REDACTED, its own body's hash
 * kept, so an imported export of a redacted session stays marked and verifies). The
 * store-assigned fields session_id, sequence, position and time are accepted and ignored
 * (the session is the one the batch was made for, whatever a body's session_id says), so
 * events copied from a reel or sandbox-agent feed can be posted back as they are. Any other field is an
 * error naming the field. The batch's session id is checked by store_session_id_valid()
 * (any UTF-8 of 1..1024 bytes without control characters, not "." or "..").
 *
 * ingest_import() (import.c) reads an export back in: it knows the export's line format
 * (replay/export.c, docs/REPLAY.md) but calls nothing in replay/; ingest/ depends on
 * store/ only, and replay/ does not include ingest/.
 *
 * Rules:
 *  - An ingest_batch_t lives in caller storage: ingest_batch_init() then
 *    ingest_batch_release(), which frees everything it owns. The input text is borrowed
 *    only during ingest_parse(); the batch copies what it keeps.
 *  - After ingest_submit() the batch MUST stay alive until its completion callback ran.
 *  - Errors: REEL_OK or a reel_err; parse errors also fill an ingest_error_t naming the
 *    event (0-based index), the place, and the bad value.
 */
#ifndef REEL_INGEST_H
#define REEL_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "store/json.h"
#include "store/store.h"

typedef struct ingest_limits {
    size_t max_event_bytes;  /* JSON bytes of one event; default 8 MiB */
    size_t max_batch_events; /* events in one batch; default 10000 */
    int max_depth;           /* JSON nesting of one event (the envelope is depth 1); default 512 */
} ingest_limits_t;

#define INGEST_LIMITS_DEFAULT {8u << 20, 10000, STORE_JSON_DEFAULT_DEPTH}

typedef struct ingest_error {
    int err;      /* the reel_err */
    size_t index; /* 0-based event index within the request */
    size_t line;  /* 1-based line for NDJSON, else the JSON line */
    size_t column;
    char text[256]; /* what was wrong, naming the bad value */
} ingest_error_t;

enum ingest_format {
    INGEST_JSON = 0, /* one object, or an array of objects */
    INGEST_NDJSON,   /* one object per line; blank lines are skipped */
};

typedef struct ingest_batch {
    store_batch_t b;        /* submitted to the store; results are read from here */
    store_event_t *events;  /* b.events points here */
    size_t cap;
    store_buf_t arena;      /* event ids and encoded bodies, referenced by offset until final */
    size_t *offsets;        /* per event: [id_off, id_len, body_off, body_len, nsid_off, nsid_len] */
    char session[STORE_SESSION_ID_MAX + 1];
    store_buf_t body;       /* msgpack of the body being built */
    store_buf_t data;       /* msgpack of 'data' of the event being parsed */
    store_buf_t raw;        /* msgpack of 'raw' of the event being parsed */
    store_buf_t str;        /* decoded envelope strings of the event being parsed */
    store_buf_t rdata, rraw; /* 'data' and 'raw' with their secrets redacted */
    store_buf_t rprior;     /* msgpack of the 'redactions' the event came with (an import) */
} ingest_batch_t;

/* Prepares 'ib' for 'session' (copied). REEL_EINVALID_SESSION_ID if invalid. */
int ingest_batch_init(ingest_batch_t *ib, const char *session, size_t session_len);
void ingest_batch_release(ingest_batch_t *ib);

/* Parses 'text' (format as above) and adds its events to the batch. On error nothing
 * from this call is kept and 'e' (may be NULL) says where. REEL_EINVALID_JSON,
 * REEL_EINVALID_EVENT, REEL_ETOO_DEEP, REEL_ETOO_LARGE (too many events or an event too
 * big), REEL_ENOMEM. An input with no event at all is REEL_EINVALID_EVENT. */
int ingest_parse(ingest_batch_t *ib, const char *text, size_t len, int format,
                 const ingest_limits_t *lim, ingest_error_t *e);

/* Adds one event whose 'data' is already msgpack (runners and converters use this).
 * 'event_id' may be NULL to generate one; 'raw_json' may be NULL. */
int ingest_add(ingest_batch_t *ib, const char *type, const char *source, int synthetic,
               const char *native_session_id, const char *event_id,
               const uint8_t *data_mp, size_t data_len, const char *raw_json, size_t raw_len,
               ingest_error_t *e);

/* Number of events added so far. */
static inline size_t ingest_count(const ingest_batch_t *ib) { return ib->b.n_events; }

/* Submits the batch (see store_submit). 'done' runs on the committer thread. */
int ingest_submit(store_t *s, ingest_batch_t *ib, store_done_cb done, void *arg);
/* Submits and waits; returns the batch's result (ib->b.err). */
int ingest_append(store_t *s, ingest_batch_t *ib);

/* Writes a new UUIDv7 (36 chars + NUL) into 'out'. Thread-safe. */
void ingest_uuid7(char out[37]);
/* What a stored event adds to its session's usage summary (store_usage_t, the same rule
 * ingest applies when it appends), read from its msgpack body (store.h): 'u' is zeroed,
 * then filled; u->model borrows from 'body'. A body that is not an event array adds
 * nothing. For a copy that rebuilds records (cluster/pgload.h). */
void ingest_usage_of_body(const uint8_t *body, size_t len, store_usage_t *u);

/* ---- Redaction (redact.c, docs/REDACTION.md) ----
 *
 * Every string value in 'data' and 'raw' (not map keys, not the envelope) is scanned for
 * secrets before the body is encoded and hashed; a match is replaced by
 * "[REDACTED:<kind>]". The body then gets a 9th field, the record {"count":N,
 * "kinds":[...]} (store.h); a body without a match keeps 8 fields. The redactor in use is
 * process-wide: set once at startup, before any thread ingests (ingest_redact_set); until
 * then it is the built-in one. Counters per kind are atomic (reel_redactions_total). */

typedef struct ingest_redactor ingest_redactor_t;

enum { /* built-in kinds; custom kinds follow from INGEST_REDACT_BUILTIN_KINDS */
    INGEST_REDACT_ANTHROPIC, INGEST_REDACT_OPENAI, INGEST_REDACT_AWS_ACCESS,
    INGEST_REDACT_AWS_SECRET, INGEST_REDACT_GITHUB, INGEST_REDACT_GOOGLE, INGEST_REDACT_SLACK,
    INGEST_REDACT_STRIPE, INGEST_REDACT_JWT, INGEST_REDACT_PRIVATE_KEY,
    INGEST_REDACT_AUTHORIZATION, INGEST_REDACT_PASSWORD, INGEST_REDACT_USERINFO,
    INGEST_REDACT_BUILTIN_KINDS
};

typedef struct ingest_redact_match {
    size_t from, to; /* bytes [from, to) of the scanned string */
    int kind;
} ingest_redact_match_t;

/* 'spec' is "builtin" (or NULL/""), "off" (*out = NULL), or the path of a patterns file:
 * lines 'kind<TAB>POSIX ERE', '#' comments, and the line 'builtin' to keep the built-in
 * detectors too. REEL_EINVALID_PARAMETER with 'err' naming the line. */
int ingest_redactor_new(const char *spec, ingest_redactor_t **out, char *err, size_t err_len);
void ingest_redactor_free(ingest_redactor_t *r);
/* Sets the process-wide redactor (NULL: off). Not thread-safe: call before ingesting. */
void ingest_redact_set(ingest_redactor_t *r);
const ingest_redactor_t *ingest_redact_current(void);

/* The matches in s[0..n), in order, without overlaps; *out is malloc'ed (free it).
 * (size_t)-1 when out of memory. Counts nothing. */
size_t ingest_redact_find(const ingest_redactor_t *r, const void *s, size_t n,
                          ingest_redact_match_t **out);
/* Appends s[0..n) with its matches replaced to 'out' and returns how many there were (0:
 * nothing appended). Sets bit 'kind' of *kinds_seen (kinds < 64) and counts each kind. */
size_t ingest_redact_str(const ingest_redactor_t *r, const void *s, size_t n, store_buf_t *out,
                         uint64_t *kinds_seen);
/* Rewrites one msgpack value into 'out' (cleared first) with its strings redacted;
 * returns the number of matches (0: 'out' is not to be used). */
size_t ingest_redact_mp(const ingest_redactor_t *r, const uint8_t *mp, size_t len,
                        store_buf_t *out, uint64_t *kinds_seen);
const char *ingest_redact_kind(const ingest_redactor_t *r, int kind);
/* Tests only: scans with the 16-byte block prefilter when 'on' and the CPU has it (the
 * default), else byte by byte; returns whether it was on. Not thread-safe. */
int ingest__redact_blocks(int on);
size_t ingest_redact_kinds(const ingest_redactor_t *r); /* built-in + custom */
uint64_t ingest_redact_count(const ingest_redactor_t *r, int kind); /* matches so far */

/* Makes a redactor from rules given as lines of a patterns file: "builtin" or
 * "kind<TAB>POSIX ERE" (redaction after the fact takes them from a request). It has
 * counters of its own, so it does not count in reel_redactions_total. Free it with
 * ingest_redactor_free(). REEL_EINVALID_PARAMETER with 'err' naming the rule. */
int ingest_redactor_from_lines(const char *const *lines, size_t n, ingest_redactor_t **out,
                               char *err, size_t err_len);

/* ---- Redaction after the fact (redact_after.c, docs/REDACTION.md) ----
 *
 * Rewrites stored events of one session: every value that a path names, and every match
 * of a pattern in the string values of 'data' and 'raw', becomes "[REDACTED:path]" or
 * "[REDACTED:<kind>]". Paths: 'data' or 'raw', then steps '.key', '[index]', '.*' or
 * '[*]' (any key or index): "data.output", "raw", "data.items[2].text". The rewritten
 * bodies and a "reel.redacted" record event (data: by, from, to, sequences, paths,
 * patterns (kind names), kinds, values; never a value) are one STORE_OP_REDACT batch:
 * either all of it is durable or nothing. Events of type reel.redacted are never rewritten
 * (the audit trail stays). When nothing matches nothing is written
 * (result.record_sequence is 0). Blocking (a read, then store_append()): call it from a
 * thread that may wait. Errors: REEL_EINVALID_PARAMETER (a bad range, path or pattern,
 * or a sequence past the session's last, 'e->text' naming the value), REEL_ETOO_LARGE
 * (the rewritten bodies pass INGEST_REDACT_MAX_BYTES: 'e->text' names the sequence),
 * REEL_ESESSION_NOT_FOUND, REEL_EGONE, REEL_ECONFLICT (the events kept changing), store
 * errors. */
#define INGEST_REDACT_MAX_EVENTS 10000 /* events in one request's range */
#define INGEST_REDACT_MAX_PATHS 64     /* paths, and patterns, in one request */
#define INGEST_REDACT_MAX_BYTES (64u << 20) /* rewritten bodies of one request: bounds the
                                               plan's memory and the write transaction */

typedef struct ingest_redact_req {
    const char *session;
    size_t session_len;
    uint64_t from, to;               /* sequences, both included; 1 <= from <= to */
    const char *const *paths;        /* borrowed */
    size_t n_paths;
    const char *const *patterns;     /* rules as ingest_redactor_from_lines() takes them */
    size_t n_patterns;
    const char *by;                  /* who asked: a token's name, "cli", ... */
} ingest_redact_req_t;

typedef struct ingest_redact_result {
    uint64_t values;          /* values replaced */
    uint64_t events;          /* events rewritten */
    uint64_t record_sequence; /* the reel.redacted event's sequence; 0 = nothing written */
    uint64_t record_position;
    uint64_t *positions;      /* new: the rewritten events' positions ('events' of them) */
    uint64_t *sequences;      /* new: and their sequences */
} ingest_redact_result_t;

int ingest_redact_after(store_t *s, const ingest_redact_req_t *q, ingest_redact_result_t *res,
                        ingest_error_t *e);
void ingest_redact_result_release(ingest_redact_result_t *res);

/* ---- Import of an export (import.c) ---- */

typedef struct ingest_import_stats {
    uint64_t lines, events, duplicates, sessions, bytes_in; /* what was imported */
    int format;             /* the export's format (2 has digests, 1 only counts) */
    uint64_t lines_in_file; /* lines read by the checking pass (up to the damage) */
    uint64_t damaged_line;  /* 0, or the line where the file was found damaged */
    uint64_t good_lines;    /* with damage: lines verified before it (what --partial imports) */
    char damage[256];       /* with damage: what is wrong, naming the line */
} ingest_import_stats_t;

#define INGEST_IMPORT_PARTIAL 1u /* a damaged file: import its verified lines */
#define INGEST_IMPORT_CHECK 2u   /* the checking pass only: 's' may be NULL, nothing is written */

/* Reads an export (replay_export_new(), docs/REPLAY.md; zstd or plain, detected by its
 * magic number) from 'fd', which MUST be a regular file (it is read twice), and appends
 * it: session records are recreated, events keep their event_id and time, so importing
 * twice appends nothing the second time.
 *
 * The first pass checks the whole file and writes nothing: the check records and the end
 * record match the SHA-256 of the lines before them and their counts, a zstd frame ends
 * with its content checksum, and (format 1, which has no digests) each line parses. A cut or damaged file (also: no export
 * header, no end record, data after it) fails with REEL_EDAMAGED, 'err' and st->damage
 * naming the first bad line, and nothing is imported. With INGEST_IMPORT_PARTIAL it imports
 * the first st->good_lines lines (through the last check record that matched; for a
 * format 1 export, which has no digests, every line that parsed) and returns REEL_OK with
 * st->damaged_line set. An error of the store in the second pass (disk full) stops it
 * there and names the line: what came before it stays; importing again appends the rest.
 * 'progress' (may be NULL) is called about once per 10,000 events. */
int ingest_import(store_t *s, int fd, unsigned flags, ingest_import_stats_t *st, char *err,
                  size_t err_len, store_progress_cb progress, void *arg);

#endif
