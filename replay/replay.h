/* replay.h -- everything people read back out of reel: events rendered as JSON.
 *
 * This module turns store reads (store.h) into the JSON the API and the CLI serve. It
 * writes JSON straight from the stored msgpack, without building a DOM.
 *
 * Rules:
 *  - Functions append to a caller-owned store_buf_t and never free it (sticky OOM:
 *    check store_buf_failed() after a series of writes).
 *  - Views passed in are borrowed (store.h lifetimes); nothing here keeps them.
 *  - Errors: REEL_OK or a reel_err; REEL_ECORRUPT when a stored body cannot be decoded.
 */
#ifndef REEL_REPLAY_H
#define REEL_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "store/buf.h"
#include "store/store.h"

/* replay_write_event() flags. */
#define REPLAY_RAW 1         /* include 'raw' */
#define REPLAY_NO_POSITION 2 /* leave out 'position': a store-wide count that tenant tokens
                                must not see (docs/HTTP.md "Tenants") */

/* Appends the event envelope (docs/HTTP.md "Read a page") as one JSON object, without a
 * newline: session_id, sequence, position, event_id, time, type, source, synthetic,
 * native_session_id, data, and raw; 'flags' (REPLAY_*) adds raw or leaves position out. */
int replay_write_event(store_buf_t *out, const store_event_view_t *ev, int flags);

/* replay_write_event(out, ev, 0): the store's renderer (store_options_t.render), whose
 * envelopes the store's envelope cache keeps (store/cache.c). */
int replay_envelope(store_buf_t *out, const store_event_view_t *ev);

/* Removes 'position' from the envelope that replay_write_event() wrote at 'mark' of 'out'
 * (envelopes kept with it are served without it to tenant tokens). */
void replay_drop_position(store_buf_t *out, size_t mark);

/* ---- The feed with changes (changes.c; docs/HTTP.md "The feed with changes") ---- */

/* Appends change 'ch' as its JSON object: change, kind, session_id, position, index,
 * cursor, time, record (as replay_write_session()), last_hash and, for a trimmed session,
 * first_hash (the chain hash its kept events start from). */
int replay_write_change(store_buf_t *out, const store_change_view_t *ch);
/* Turns the envelope written from 'mark' of 'out' into one that carries what a copy needs
 * to rebuild the event: "hash" (its chain hash, hex), with 'kept' and a body redacted after
 * the fact "kept_hash" (the original body's SHA-256 that the chain commits to, hex), and
 * "body" (the stored msgpack body, base64), before its closing brace. The view must have
 * been checked (store_event_check). */
int replay_write_event_body(store_buf_t *out, size_t mark, const store_event_view_t *ev,
                            int kept);
/* Appends the cursor of the feed with changes: "P" for (P, 0), "P.I" otherwise. */
void replay_write_cursor(store_buf_t *out, uint64_t pos, uint32_t index);

/* Appends a session record as a JSON object (docs/HTTP.md "Sessions"). */
int replay_write_session(store_buf_t *out, const store_session_t *rec);
/* Appends ,"retention":{...} for policy 'p' (durations in seconds; docs/RETENTION.md). */
void replay_write_retention(store_buf_t *out, const store_retention_t *p);

/* Appends 'ms' (Unix ms) as RFC 3339 UTC with milliseconds, quoted:
 * "2026-11-22T13:00:00.123Z". */
void replay_write_time(store_buf_t *out, int64_t ms);

/* (Times are parsed by store_parse_time() in store/parse.h, the one parser of reel.) */

/* Appends a store_verify() report as JSON: {ok, sessions, events, log_entries} and, when
 * not ok, first_error {session, sequence, position, ok_up_to, problem} (position left out
 * with REPLAY_NO_POSITION in 'flags'). */
int replay_write_verify(store_buf_t *out, const store_verify_report_t *rep, int flags);

/* 1 if the event's type is one of the comma-separated names in 'csv'. */
int replay_type_listed(const store_event_view_t *ev, const char *csv);

/* Reads the event type out of a view's body (borrowed pointer into the body). */
int replay_event_type(const store_event_view_t *ev, const char **type, size_t *len);

/* ---- Scanning: events after a key, filtered by type (scan.c) ---- */

/* Gets each event a scan keeps with its key (sequence, or position on the feed). Returns
 * 0 to take the next event, 1 to stop before this one (it stays unconsumed), or a
 * negative reel_err to stop with that error. */
typedef int (*replay_scan_cb)(void *arg, const store_event_view_t *ev, uint64_t key);

typedef struct replay_scan {
    const char *session;  /* NULL: the feed of every session, keyed by position */
    size_t session_len;
    const char *types;    /* comma-separated event types to keep; NULL = every event */
    size_t max_examined;  /* events to examine at most (kept or skipped); 0 = 1 */
    uint64_t scanned;     /* out: key of the last event examined and not left unconsumed */
    int more;             /* out: events past 'scanned' exist */
} replay_scan_t;

/* Calls 'cb' for the events of sc->session (or of the feed) with key > 'after' whose
 * type is in sc->types, oldest first, on read 'r'. A filtered scan reads in chunks, so a
 * rare type costs no more than sc->max_examined events of one read. Returns REEL_OK, the
 * store's error (REEL_ESESSION_NOT_FOUND, REEL_EGONE, ...) or the callback's. */
int replay_scan(store_read_t *r, replay_scan_t *sc, uint64_t after, replay_scan_cb cb, void *arg);

/* ---- Restore (durable session resume, docs/REPLAY.md "Restore") ---- */

enum replay_fit {
    REPLAY_FIT_NEWEST = 0, /* keep the newest events that fit in max_chars */
    REPLAY_FIT_SDK,        /* the sandbox-agent 0.4 SDK's buildReplayText, byte for byte */
};

#define REPLAY_RESTORE_TEXT_HEADER                                                          \
    "Previous session history is replayed below as JSON-RPC envelopes. Use it as context "  \
    "before responding to the latest user prompt.\n"
#define REPLAY_RESTORE_MAX_EVENTS 10000 /* ceiling for max_events */

typedef struct replay_restore_opts {
    size_t max_events; /* newest events considered; default 50 */
    size_t max_chars;  /* replay text budget in UTF-16 code units; default 12000 */
    int fit;           /* enum replay_fit */
    int flags;         /* replay_write_event() flags of the returned events (REPLAY_*) */
    /* Renders one event of 'events' exactly as replay_write_event() does (NULL: that
     * function); lets the HTTP server copy envelopes it keeps instead. */
    int (*render)(void *arg, store_buf_t *out, const store_event_view_t *ev, int flags);
    void *render_arg;
} replay_restore_opts_t;

#define REPLAY_RESTORE_DEFAULT {50, 12000, REPLAY_FIT_NEWEST, 0, NULL, NULL}

typedef struct replay_restore {
    store_buf_t text;       /* the replay text (UTF-8), empty when the session has no event */
    int has_text;           /* 0 when there is no event (the SDK's null) */
    int truncated;          /* 1 when an event was left out for max_chars */
    uint64_t from_sequence; /* first and last sequence in the text, 0 when none */
    uint64_t to_sequence;
    store_buf_t events;     /* JSON array of the events in the text (the API's 'events') */
} replay_restore_t;

/* Builds the restore of session 'id' from its newest events only: O(max_events), not
 * O(session length). 'out' is initialised here; release it with replay_restore_release().
 * REEL_ESESSION_NOT_FOUND when the session does not exist. */
int replay_restore(store_read_t *r, const char *id, size_t id_len,
                   const replay_restore_opts_t *opt, replay_restore_t *out);
void replay_restore_release(replay_restore_t *out);

/* Appends the restore response object of docs/REPLAY.md ({session, events, replay_text,
 * truncated, from_sequence, to_sequence}) for 'rec' and 'res' to 'out'. */
int replay_write_restore(store_buf_t *out, const store_session_t *rec,
                         const replay_restore_t *res);

/* ---- Transcript projection (GET /v1/sessions/{id}/transcript) ---- */

/* Folds session 'id' as of sequence 'at' (0 = latest) into its transcript and appends it
 * to 'out' as JSON ({session_id, at, last_sequence, events, session, items, permissions,
 * questions, usage, turns, errors, unparsed, other, plan}) or, with 'markdown', as a
 * readable Markdown document. Items join their deltas in order; a tool call carries its
 * result; unknown event types are kept in 'other'. Reads in short transactions. */
int replay_transcript(store_t *s, const char *id, size_t id_len, uint64_t at, int markdown,
                      store_buf_t *out);

/* ---- Analytics (reel stats, GET /v1/stats) ---- */

typedef struct replay_stats_opts {
    uint64_t after, until;      /* positions (after, until]; until 0 = the tail */
    int64_t since_ms, before_ms; /* event times [since, before); 0 = unbounded */
    const char *session;        /* one session only, or NULL */
    size_t session_len;
    int flags;                  /* REPLAY_NO_POSITION: report no position (after, until,
                                   first_position, last_position) */
} replay_stats_opts_t;

/* Scans the range in position order (short reads of a few thousand events) and appends
 * one JSON object to 'out': events and sessions counted, events by type, by agent (from
 * the session record) and by source, tool calls by tool name, every numeric field of
 * 'usage' events summed, session durations (first to last event in the range), errors and
 * agent.unparsed counts. 'progress' may be NULL. */
int replay_stats(store_t *s, const replay_stats_opts_t *opt, store_buf_t *out,
                 store_progress_cb progress, void *arg);

/* ---- Export (docs/REPLAY.md "Export and import"; reading one back is ingest_import()) ---- */

/* An export is one stream of JSON lines: a header {"record":"export","format":2,...},
 * session records {"record":"session",...}, the events (exactly the API envelope, raw
 * included), a check record {"record":"check","lines":N,"sha256":H} after every 100 lines
 * or 64 KiB (H: the SHA-256 of every byte before it), and a trailer
 * {"record":"end","events":E,"sessions":S,"lines":N,"sha256":H}, zstd-compressed as one
 * frame with its content checksum unless told not to. It covers what was committed when it
 * began (positions up to the tail at that moment; session records are cut back to it) and
 * is produced in chunks, each from its own short read, so it never pins LMDB pages or
 * holds up map growth while a slow client reads. */
#define REPLAY_EXPORT_FORMAT 2

typedef struct replay_export_opts {
    const char *session;   /* one session, or NULL for every session */
    size_t session_len;
    uint64_t after;        /* positions (after, until]; until 0 = the tail at the start */
    uint64_t until;
    int64_t since_ms;      /* event times [since, before); 0 = unbounded */
    int64_t before_ms;
    const char *sessions;  /* comma-separated session filter for a whole-store export */
    int compress;          /* 1 = zstd (default), 0 = plain NDJSON */
    int level;             /* zstd level, default 3 */
    int64_t created_ms;    /* the header's created_at; 0 = now (tests fix it) */
    uint64_t until_sequence; /* one session: its events up to this sequence; 0 = all
                                (retention archives the events it is about to trim) */
    int flags;             /* REPLAY_NO_POSITION: no position in the header or the events */
} replay_export_opts_t;

#define REPLAY_EXPORT_DEFAULT {NULL, 0, 0, 0, 0, 0, NULL, 1, 3, 0, 0, 0}

typedef struct replay_export replay_export_t;

/* Prepares an export; REEL_ESESSION_NOT_FOUND for an unknown session,
 * REEL_EINVALID_PARAMETER for a bad level or session filter. Free with replay_export_free. */
int replay_export_new(store_t *s, const replay_export_opts_t *opt, replay_export_t **out);
/* Appends the next chunk (about 1 MiB of JSON before compression) to 'out'; '*done' is
 * set once the trailer has been written. */
int replay_export_next(replay_export_t *ex, store_buf_t *out, int *done);
/* Counters so far: events and sessions written, JSON bytes before and after compression. */
void replay_export_counts(const replay_export_t *ex, uint64_t *events, uint64_t *sessions,
                          uint64_t *json_bytes, uint64_t *out_bytes);
void replay_export_free(replay_export_t *ex);

#endif
