/* store.h -- reel's append-only event log on LMDB.
 *
 * One LMDB environment per data directory holds every session's events. Events are
 * appended through a single committer thread that group-commits: it takes every pending
 * batch, writes them in one write transaction, commits with one fsync, then completes
 * each batch and fires the commit hook. Reads run on short read-only transactions from
 * any thread. The full on-disk format is in docs/FORMAT.md; in short:
 *
 *   database     key                                   value
 *   ----------   -----------------------------------   ---------------------------------------
 *   meta         "format"                              u32 BE format version (STORE_FORMAT_VERSION),
 *                                                       then u32 BE optional parts (FORMAT.md 18.1;
 *                                                       absent = none; 0x1 = compact event_ids keys,
 *                                                       0x4 = per-session trees, 0x8 = short headers)
 *                "next_session"                        u64 BE next internal session number
 *                "cluster_epoch"                       u64 BE highest cluster map epoch accepted
 *                "copied"                              [u64 BE first, u64 BE last]...: positions
 *                                                      holding copies (section 20, optional)
 *   sessions     session key (below)                   msgpack map: the session record
 *   session_ids  num u64 BE                            session id bytes
 *   recent       updated_ms u64 BE | num u64 BE        empty (one entry per session)
 *   events       position u64 BE                       event value (below)
 *   seqs         num u64 BE | sequence u64 BE          position u64 BE
 *                (part 0x4: key num u64 BE, DUPSORT|DUPFIXED values sequence | position)
 *   event_ids    num u64 BE | event_id bytes            sequence u64 BE
 *                (part 0x1: num | 0x00 | UUID's 16 bytes, or num | 0x01 | event_id bytes;
 *                part 0x4: only ids that are not canonical UUIDs, num | 0x01 | id)
 *   event_uuids  num u64 BE (part 0x4 only)            DUPSORT|DUPFIXED: UUID's 16 bytes | seq
 *   changes      position u64 BE | index u32 BE         change: kind, time, num, id, record
 *   consumers    kind u8 ('c' | 's') | name bytes          msgpack map (format 4, optional:
 *                                                       durable consumers, DS subscriptions)
 *
 *                "zdict" u32 BE id                     a zstd dictionary (FORMAT.md section 15)
 *   event value: off 0 u8 flags (0x01 = body is a zstd frame, 0x02 = redacted after the
 *   fact, 0x04 with 0x01 = the frame was made with dictionary "zdict" id, which its header
 *   names, and is stored without its 4-byte magic number), off 1 u64 BE session num,
 *   off 9 u64 BE sequence, off 17 u64 BE time (Unix ms), off 25 u8[32] chain hash, off
 *   57 body; with 0x02, off 57 u8[32] the SHA-256 of the original body (the chain
 *   commits to it, FORMAT.md section 11) and the body at 89. Flag 0x08 (stores with part
 *   0x8, FORMAT.md 21.2): num, sequence and time are LEB128 varints, so the chain hash,
 *   kept hash and body move up by 24 - (their lengths).
 *   body (after decompression): msgpack array [event_id, type, source, synthetic,
 *   native_session_id, data, raw, client_time] (client_time: nil, or as the client gave
 *   it: a uint of Unix ms or the RFC 3339 str; format 1 bodies have the first 7); JSON numbers that are not 64-bit integers are kept as
 *   msgpack ext type 1 holding the number's text, so they round-trip exactly.
 *   chain hash = SHA-256(previous chain hash | seq | position | time | SHA-256(body)),
 *   all integers u64 BE, the previous chain hash of sequence 1 being 32 zero bytes.
 *
 * session key: the id when it is at most 480 bytes, else its first 447 bytes, a byte 0xFF
 * and the SHA-256 of the whole id (480 bytes; the record then holds the id under "id").
 *
 * Event values are keyed by position and written with MDB_APPEND, so the log fills its
 * pages completely (keys in the middle of a tree make LMDB split pages in half); a
 * session's events are found through 'seqs'.
 * Keys are big-endian so LMDB's memcmp order is (session, sequence) and position order.
 *
 * Rules:
 *  - Threads: store_submit()/store_append() may be called from any thread. Completion
 *    callbacks and the commit hook run on the committer thread: they MUST NOT block and
 *    MUST NOT call store_append() (it would wait for the thread that runs them).
 *  - A store_read_t belongs to the thread that began it and MUST be ended with
 *    store_read_end() before that thread begins another read or waits on an append.
 *    Keep reads short: never hold one across a network wait (LMDB caveat: long read
 *    transactions pin pages, and the map cannot grow while any read is open).
 *  - Lifetimes: pointers in a store_event_view_t and a store_session_t's 'metadata' are
 *    borrowed; they are valid until the callback returns (views) or until
 *    store_read_end() (session records). Copy what must live longer.
 *  - Ownership: the store never takes ownership of caller memory. A submitted batch and
 *    everything it points to MUST stay valid and unmodified until its 'done' callback ran
 *    (store_append() returns).
 *  - Damaged pages: reads run under a guard (store/guard.c) that leaves the call by
 *    siglongjmp() when LMDB asserts or faults on a damaged page, and the read returns
 *    REEL_ECORRUPT. Callbacks run under it too, so they MUST NOT hold a lock (or be inside
 *    anything that cannot be abandoned) while they read a view's bytes: render first,
 *    then lock (store/cache.c does). The read must still be ended as usual.
 *  - The envelope cache (store/cache.c) is the store's: thread-safe, bounded by
 *    store_options_t.cache_bytes, emptied by the store itself on a redaction (its own, in
 *    the committer before the commit; another process's, seen by the next read). An
 *    envelope enters it only after its value passed every check a read makes.
 *  - Errors: every int-returning function returns REEL_OK (0) or a reel_err (err.h).
 *  - Durability: with sync on (the default) a batch completes with REEL_OK only after
 *    mdb_txn_commit() returned 0, i.e. after fdatasync of the data and a synchronous meta
 *    page write. With the journal (store_options_t.journal) it completes only after its
 *    group's journal record was written and fdatasync'd, on the journal thread; reads of
 *    this process never see past what is durable (docs/FORMAT.md section 17).
 *    A commit error other than "disk full" (ENOSPC, EDQUOT, or EIO while the
 *    file system has no free space: a short write) puts the store in fail-stop: every
 *    later append fails with REEL_EUNAVAILABLE until the process reopens the store.
 */
#ifndef REEL_STORE_H
#define REEL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/buf.h"
#include "store/err.h"

/* 1, 2 and 3 are upgraded by a read-write open (store/upgrade.c; 2 and 3 to 4 is the
 * version number only: format 3 adds the optional 9th body element, 'redactions'; format 4
 * adds the optional parts of the data lifecycle, docs/FORMAT.md 8.3). */
#define STORE_FORMAT_VERSION 4
#define STORE_SESSION_ID_MAX 1024 /* bytes of UTF-8 without control characters */
#define STORE_EVENT_ID_MAX 128   /* bytes, any UTF-8 */
#define STORE_TYPE_MAX 128       /* bytes */
#define STORE_NAME_MAX 256       /* agent and native_session_id, bytes */
#define STORE_HASH_LEN 32
#define STORE_HEADER_LEN 57 /* bytes before the body in an event value with the long header
                               (flag STORE_FLAG_SHORT: 36..63, store__head_parse) */
#define STORE_SECRET_LEN 32
#define STORE_FLAG_ZSTD 0x01u     /* flags: the body is one zstd frame */
#define STORE_FLAG_REDACTED 0x02u /* flags: redacted after the fact; the original body's
                                     SHA-256 (32 bytes) comes before the body */
#define STORE_FLAG_ZDICT 0x04u    /* flags, only with 0x01: the frame was compressed with the
                                     store's dictionary its header names and is stored
                                     without its magic number (FORMAT.md section 15) */
#define STORE_FLAG_SHORT 0x08u    /* flags: the header's number, sequence and time are
                                     varints (docs/FORMAT.md 21.2; stores with part 0x8) */

typedef struct store store_t;
struct store_event_view;

/* Renders the envelope of a checked event view into 'out' (appending): replay_envelope()
 * (replay.h) gives the JSON envelope readers are served. REEL_OK, REEL_ECORRUPT when the
 * body does not decode, REEL_ENOMEM. Called from any reading thread. */
typedef int (*store_render_fn)(store_buf_t *out, const struct store_event_view *ev);

#define STORE_CACHE_DEFAULT_BYTES ((size_t)64 << 20) /* store_options_t.cache_bytes 0 */
#define STORE_CACHE_OFF SIZE_MAX                     /* store_options_t.cache_bytes: none */

/* ---- Lifecycle ---- */

typedef struct store_options {
    size_t map_size; /* initial LMDB map size in bytes; 0 = 1 GiB. The map grows by itself. */
    int no_sync;     /* 1 = --sync=none: commits skip fsync (loses the newest commits on
                        power loss; the store stays consistent after a process crash). */
    int read_only;   /* 1 = no committer thread; appends fail with REEL_EUNAVAILABLE. */
    int create;      /* 1 = may make a new store where data.mdb exists but holds none (empty,
                        or an LMDB file without reel's format record). Without it such a
                        directory is refused (REEL_EFORMAT); a missing data.mdb is always
                        created (unless 'read_only'). */
    int no_zdict;    /* 1 = no compression dictionaries: none is trained and new values
                        are written as a store without one writes them (values written
                        with one still read). The default (0) trains them on the store's
                        events and uses them for new values, about a third of the bytes;
                        training runs in a child process: the running executable
                        (/proc/self/exe) started anew, which any program linked with the
                        store can be (store/ztrain.c, docs/FORMAT.md section 15.3). */
    /* The envelope cache (store/cache.c; docs/DESIGN.md "The envelope cache"): envelopes
     * that 'render' made of events whose checks passed, kept by position, so that a read
     * with store_read_t.envelopes set gets them without decompressing, hashing or
     * rendering again. NULL 'render': no cache and no envelopes. 'cache_bytes' bounds it
     * (envelopes and their entries, least recently used out first): 0 =
     * STORE_CACHE_DEFAULT_BYTES, STORE_CACHE_OFF = none kept (reads with 'envelopes' then
     * render every event). */
    store_render_fn render;
    size_t cache_bytes;
    unsigned parts_off; /* optional parts of format 4 a store created by this open does not
                           get (STORE_PART_* bits, docs/FORMAT.md 18.1): 0 = every part this
                           build writes. For tests of the older layouts, and for a store an
                           older format-4 build must open. Ignored for an existing store.
                           The environment variable REEL_STORE_PARTS_OFF (a number, e.g.
                           12) adds bits, so that the HTTP and CLI tests can run on the
                           older layouts. */
    int journal;     /* 1 = the write-ahead journal (docs/DESIGN.md "The journal"; FORMAT.md
                        section 17): LMDB commits without a flush and each group is durable
                        with one sequential write and fdatasync of the journal; reads never
                        see past what is durable. This process must be the store's only one
                        (REEL_EUNAVAILABLE otherwise, the message names the other's pid).
                        The environment variable REEL_JOURNAL=1 sets it for every writing
                        open (tests). */
} store_options_t;

/* Optional parts of format 4 (docs/FORMAT.md 18.1), for store_options_t.parts_off. */
#define STORE_PART_IDKEYS 0x1u /* compact event_ids keys (section 18.2) */
#define STORE_PART_IXDUP 0x4u  /* per-session DUPFIXED seqs and event_uuids (section 21.1) */
#define STORE_PART_SHORTHEAD 0x8u /* varint value headers (section 21.2) */
#define STORE_PART_IXTAIL 0x10u   /* a session's newest index entries in 'ixtail' (22) */

/* Opens (creating when missing and not 'read_only') the store in directory 'dir'.
 * 'opt' may be NULL for defaults. On success '*out' is a new handle (free with
 * store_close()). Errors: REEL_EFORMAT (format version differs, the message names both;
 * or data.mdb exists but holds no reel store and 'create' is 0), REEL_ECORRUPT (a
 * truncated data.mdb, or a damaged page met while opening),
 * REEL_EIO (with errno kept for store_last_error()), REEL_ENOMEM. */
int store_open(const char *dir, const store_options_t *opt, store_t **out);

/* Completes every pending batch, stops the committer and closes the environment.
 * No read may be open. NULL is allowed. */
void store_close(store_t *s);

/* A readable explanation of the last error of store_open() or of the committer
 * (e.g. "format version 7 in ./data, this build reads 1"). Thread-safe, static storage. */
const char *store_last_error(void);

/* The store's own random secret (STORE_SECRET_LEN bytes into 'out'): made by the first
 * read-write open of a format-4 store and kept in it, so it survives restarts and backups.
 * For keys that must outlive the process and stay with the data, e.g. the HTTP server's
 * sealed cursors. REEL_ENOT_FOUND when a read-only open found none (an older store). */
int store_secret(const store_t *s, uint8_t out[STORE_SECRET_LEN]);

/* 1 if 'id' (not NUL-terminated) is a valid session id: 1..STORE_SESSION_ID_MAX bytes of
 * strict UTF-8 (shortest forms, no surrogates) without U+0000..U+001F and U+007F, except
 * "." and "..", which are path segments with a meaning of their own in URLs. */
int store_session_id_valid(const char *id, size_t len);

/* ---- Appending ---- */

/* What one event adds to its session's usage summary (format 4, docs/FORMAT.md section 16).
 * The store never reads event bodies for it: the layer that parses events (ingest/) fills
 * it, and the committer adds it to the record in the append's own transaction, only when
 * the event is appended (a duplicate adds nothing). All zero: the event adds nothing. */
typedef struct store_usage {
    const char *model;      /* non-NULL (1..STORE_NAME_MAX bytes): the session's model now */
    size_t model_len;
    uint64_t input_tokens;  /* tokens, summed */
    uint64_t output_tokens;
    uint64_t cost_nusd;     /* cost in nano-USD (1e-9 USD), summed */
    uint64_t turns;         /* turns ended (1 for a usage event with turn_end) */
} store_usage_t;

/* One event to append. The caller fills the input part (ingest_ does this from JSON);
 * the committer fills the output part before completing the batch. */
typedef struct store_event {
    const char *event_id; /* input: 1..STORE_EVENT_ID_MAX bytes, unique key within the session */
    size_t event_id_len;
    const uint8_t *body; /* input: from store_body_encode(): flags byte then body bytes; an
                            event imported as redacted has STORE_FLAG_REDACTED set and the
                            32 bytes of 'body_hash' after the flags byte */
    size_t body_len;
    uint8_t body_hash[STORE_HASH_LEN]; /* input: from store_body_encode() */
    const char *native_session_id;     /* input: non-NULL updates the session record */
    size_t native_session_id_len;
    int ends_session;   /* input: 1 for a "session.ended" event (status becomes ended) */
    int starts_session; /* input: 1 for a "session.started" event (counts one more run) */
    store_usage_t usage; /* input: what the event adds to the usage summary (above) */
    uint64_t sequence;  /* output: assigned sequence, or the existing one for a duplicate */
    uint64_t position;  /* output: assigned position, or the existing one for a duplicate */
    uint64_t time_ms;   /* output: commit time (Unix ms); input with 'keep_times' */
    int duplicate;      /* output: 1 if the event_id existed and nothing was appended */
    int new_id;         /* input: 1 when 'event_id' was just generated (a UUIDv7 of
                           ingest_uuid7()): no event can have it, so no duplicate lookup */
} store_event_t;

enum store_op {
    STORE_OP_APPEND = 0,     /* append 'events' to 'session' (created on first append) */
    STORE_OP_SESSION_PUT,    /* create or update the session record's agent/native/metadata */
    STORE_OP_SESSION_DELETE, /* remove the events, keep a record with status "deleted" */
    STORE_OP_TRIM,           /* remove the session's oldest events, up to 'trim_before'
                                (retention: docs/FORMAT.md section 10) */
    STORE_OP_PURGE,          /* remove the session for good: record, ids and events */
    STORE_OP_REDACT,         /* rewrite the bodies of 'rewrites' in place, then append
                                'events' (the record of the redaction), all or nothing */
    STORE_OP_CONSUMER,       /* a durable consumer's change ('consumer', below; section 12) */
    STORE_OP_LOAD,           /* pre-hashed events, a whole record and change log entries
                                copied from another copy of a store ('load', below) */
};

typedef struct store_consumer_req store_consumer_req_t;
typedef struct store_load store_load_t;

/* Events one STORE_OP_TRIM batch removes at most: a trim shares its write transaction with
 * appends, so it is kept small; the janitor submits another batch for the rest. */
#define STORE_TRIM_MAX 256

/* A session's retention policy (docs/RETENTION.md), kept in its record. A duration or
 * count of 0 means "no such limit". */
typedef struct store_retention {
    int set;                    /* 1: the record has a policy (it replaces the store's
                                   default as a whole); 0: none, the default applies */
    uint64_t max_age_ms;        /* expire the session this long after its last activity
                                   (updated_at) */
    uint64_t max_age_ended_ms;  /* expire an ended session this long after ended_at */
    uint64_t max_events;        /* keep the newest N events (trim the older ones) */
    int no_archive;             /* 1: do not archive before deleting, even with a target */
} store_retention_t;

/* One event body replaced by STORE_OP_REDACT (docs/FORMAT.md section 11). The value keeps
 * its key, header (sequence, time, chain hash) and gains flag STORE_FLAG_REDACTED with the
 * SHA-256 of the original body (taken from the old value: its kept hash when it was
 * redacted before, else the hash of its body), so the chain still verifies. */
typedef struct store_rewrite {
    uint64_t sequence;                   /* input: 1..the session's last sequence */
    uint8_t current_hash[STORE_HASH_LEN]; /* input: SHA-256 of the body the rewrite was made
                                            from; another body there is REEL_ECONFLICT */
    const uint8_t *body;                 /* input: from store_body_encode() (flags 0 or 1) */
    size_t body_len;
    uint64_t position;                   /* output: the event's position */
    /* private: what the check found, for the write */
    uint8_t kept_[STORE_HASH_LEN], chain_[STORE_HASH_LEN];
    uint64_t time_, old_len_;
} store_rewrite_t;

/* store_batch_t.if_version bits. */
#define STORE_IF_EXISTS 1u  /* the session must exist (If-Match: *) */
#define STORE_IF_ABSENT 2u  /* the session must not exist (If-None-Match: *) */
#define STORE_IF_VERSION 4u /* its version must be one of 'if_match' (If-Match: "3") */
#define STORE_IF_MATCH_MAX 8

typedef struct store_batch store_batch_t;
typedef void (*store_done_cb)(store_batch_t *b, void *arg);

/* A unit of work for the committer: atomic, all of it or nothing. */
struct store_batch {
    int op; /* enum store_op */
    const char *session;
    size_t session_len;
    /* STORE_OP_APPEND */
    store_event_t *events;
    size_t n_events;
    int64_t expected_sequence; /* -1 = no check; else the session's last sequence must equal it
                                  (0 = session new or empty), unless every event is a duplicate */
    int keep_times; /* 1 (import): each event's 'time_ms' is its time, not the commit time */
    /* STORE_OP_SESSION_PUT: NULL fields are left unchanged. STORE_OP_APPEND: a non-NULL
     * 'metadata' replaces the session's metadata in the same transaction as the events
     * (api/stream.c keeps a stream's producer state there, atomic with its data). */
    const char *agent;
    size_t agent_len;
    const char *native_session_id;
    size_t native_session_id_len;
    const uint8_t *metadata; /* msgpack map (store_json_to_msgpack of a JSON object) */
    size_t metadata_len;
    const struct store_session *times; /* import: non-NULL copies its created, updated, ended
                                          and first-event times and an "ended" status */
    /* STORE_OP_SESSION_PUT: non-NULL sets the record's retention policy (with 'set' 0:
     * removes it, the store default applies again). */
    const store_retention_t *retention;
    /* STORE_OP_TRIM: remove the events with a sequence below 'trim_before' (at most
     * STORE_TRIM_MAX of them; capped at last_sequence + 1). The batch's 'first_sequence'
     * is then the record's first kept sequence; repeat until it reaches 'trim_before'.
     * Version conditions (if_version) apply as to a delete. STORE_OP_PURGE:
     * 'expected_sequence' >= 0 purges only if the session's last sequence still equals it
     * (what was archived is all there is), else REEL_ECONFLICT. A purge removes everything
     * in one transaction: trim a long session first (the janitor and the HTTP purge do). */
    uint64_t trim_before;
    /* STORE_OP_APPEND, STORE_OP_SESSION_PUT: with 'check_metadata' set, the batch applies
     * only if the session's metadata is byte for byte 'expected_metadata' (length 0: the
     * session does not exist or has none), else it fails with REEL_ECONFLICT: a
     * compare-and-swap on the metadata (api/stream.c's stream state). */
    int check_metadata;
    const uint8_t *expected_metadata;
    size_t expected_metadata_len;
    /* STORE_OP_REDACT: the bodies to replace, checked before anything is written:
     * REEL_ESESSION_NOT_FOUND, REEL_EGONE, REEL_EINVALID_PARAMETER (a sequence out of
     * range), REEL_ECONFLICT (a body changed since it was read), REEL_ECORRUPT (the old
     * value fails its chain). The session's status is kept: the appended record does not
     * make an ended session active. */
    store_rewrite_t *rewrites;
    size_t n_rewrites;
    /* STORE_OP_SESSION_PUT, STORE_OP_SESSION_DELETE: conditions on the record's version
     * (HTTP If-Match / If-None-Match), checked inside the write transaction. A batch
     * that fails one changes nothing and fails with REEL_EPRECONDITION; 'version' then
     * holds the current version (0: no session). A deleted session fails with REEL_EGONE
     * before any condition is looked at. */
    unsigned if_version;      /* STORE_IF_* bits, 0 = no condition */
    uint64_t if_match[STORE_IF_MATCH_MAX]; /* STORE_IF_VERSION: the version must be one */
    size_t n_if_match;                     /* of these 'n_if_match' */
    /* results, valid once completed */
    int err;                 /* REEL_OK, REEL_ECONFLICT, REEL_EGONE, REEL_EFULL, ... */
    uint64_t first_sequence; /* smallest sequence among the events (new or duplicate) */
    uint64_t last_sequence;  /* largest; for a failed conflict: the session's actual last */
    uint64_t position;       /* largest position among the events */
    size_t duplicates;       /* events that already existed */
    /* the feed cursor (position, change index) right after this batch's last event or
     * change: a reader of the feed with changes that got there has seen the batch */
    uint64_t cursor_position;
    uint32_t cursor_index;
    uint64_t version;        /* the record's version after the batch (see if_version) */
    /* STORE_OP_CONSUMER: the change and its result ('session' is not used) */
    store_consumer_req_t *consumer;
    /* STORE_OP_LOAD: what to write and its result (below; 'session' is the session loaded,
     * or with no events and no record only the change log entries: any valid id) */
    store_load_t *load;
    /* completion: called once on the committer thread (see the rules above) */
    store_done_cb done;
    void *done_arg;
    store_batch_t *next_; /* private: queue link */
    /* private: the events' bodies compressed with the store's dictionary by
     * store_submit() on the submitting thread (FORMAT.md section 15); freed before 'done' */
    uint8_t *zbodies_;
    size_t *zoff_; /* per event: offset and length in zbodies_ (length 0: body as given) */
    int zplain_;   /* 1: zbodies_ holds plain zstd frames (no dictionary; FORMAT.md 3) */
};

/* Prepares a store_batch_t: zeroes it, sets 'op', the session and expected_sequence = -1. */
void store_batch_init(store_batch_t *b, int op, const char *session, size_t session_len);

/* Queues 'b' for the committer; b->done(b, b->done_arg) is called once it is durable or
 * failed. Returns REEL_OK or an error without queueing (REEL_EUNAVAILABLE after close or
 * fail-stop, REEL_EINVALID_SESSION_ID, REEL_ENOMEM when a body could not be compressed);
 * b->done is not called when this fails. */
int store_submit(store_t *s, store_batch_t *b);

/* store_submit() and wait: returns b->err. b->done must be NULL. */
int store_append(store_t *s, store_batch_t *b);

/* Encodes a body for storage: computes its SHA-256 into 'hash' and appends the flags
 * byte and the body to 'out', zstd-compressed when that saves space (bodies of
 * STORE_COMPRESS_MIN bytes or more). 'msgpack' is the body array described above.
 * Thread-safe (per-thread compression context). */
#define STORE_COMPRESS_MIN 1900 /* smaller values fit in a leaf page; see FORMAT.md */
int store_body_encode(const uint8_t *msgpack, size_t len, store_buf_t *out,
                      uint8_t hash[STORE_HASH_LEN]);

/* store_body_encode() without the compression: the flags byte is 0 and the body follows as
 * it is. For bodies that go to store_submit(), which compresses them itself: with the
 * store's dictionary when it has one, else at level 1 when they are STORE_COMPRESS_MIN
 * bytes or more -- so that a body is compressed once, not once here and again there. */
int store_body_encode_raw(const uint8_t *msgpack, size_t len, store_buf_t *out,
                          uint8_t hash[STORE_HASH_LEN]);

/* ---- Loading a copy: pre-hashed events (STORE_OP_LOAD; docs/CLUSTER.md "Restore") ----
 *
 * Rebuilds sessions from another copy of a store (cluster/pgload.h reads the PostgreSQL
 * tables of `reel sink postgres`; the store knows nothing of where they come from). The
 * events come with their sequence, time, body, the hash the chain commits to and their
 * chain hash in the source; the committer checks that the chain follows and writes them
 * as it writes appends (same keys, same value layout, MDB_APPEND), in one transaction
 * with everything else of the batch: all of it or nothing.
 *
 *  - keep_positions 1 (restore): each event keeps its 'position', which must be above the
 *    store's last position (gaps allowed); the chain hash written is the source's, and it
 *    must recompute from the previous one (for the first event, 'src_prev': the session's
 *    stored last hash, or for a session this batch creates the hash its chain starts
 *    from). The store's last position becomes the highest position written, or
 *    'min_last_position' when that is higher (restore: the sink's checkpoint), so the next
 *    append continues after both.
 *  - keep_positions 0 (move): each event gets the next position of this store and its
 *    chain hash is computed anew with it; the source's chain is checked all the same
 *    (each 'hash' recomputes from 'src_prev' / the previous 'hash', with the source's
 *    'position'), so a damaged source is refused rather than copied. A record applied
 *    logs a 'put' change (so this store's sink copies it); with keep_positions 1 no
 *    change is logged: the caller brings the source's change log ('changes').
 *  - Sequences: the first event is the session's last sequence + 1, or for a session the
 *    batch creates any sequence F >= 1 (a trimmed source: the record gets first_seq F
 *    and first_hash 'src_prev', FORMAT.md section 10); each next one + 1.
 *  - 'record' (may be NULL) is applied after the events: agent, native id, status,
 *    times, version, runs, usage, retention and metadata are taken from it as they are;
 *    the counters (last_sequence, event_count, bytes, last_hash) stay the store's own, and
 *    its last_sequence must equal the record's (a deleted record: no events, and its
 *    last_sequence and last_hash are taken). A record that creates a session without
 *    events also sets first_sequence and first_prev_hash (a session trimmed to nothing).
 *  - Event ids must be new in the session (a copy has no duplicates): REEL_EDAMAGED.
 *  - Refusals change nothing and fail the batch alone: REEL_EDAMAGED (the chain does not
 *    follow, a sequence or position out of order, a bad value; 'why' names the session,
 *    sequence and what was wrong), REEL_ECONFLICT (keep_positions 1 and a session that
 *    exists while its last hash is not 'src_prev'), REEL_EINVALID_PARAMETER.
 */
typedef struct store_load_event {
    const char *event_id;   /* input: body element 0 (1..STORE_EVENT_ID_MAX bytes) */
    size_t event_id_len;
    const uint8_t *body;    /* input: the stored value's flags byte and body: from
                               store_body_encode() (flags 0 or 0x01), or for a body
                               redacted after the fact flags | STORE_FLAG_REDACTED, the kept
                               hash (32 bytes, == 'body_hash') and the redacted body */
    size_t body_len;
    uint8_t body_hash[STORE_HASH_LEN]; /* input: what the chain commits to: SHA-256 of the
                                          (original) body; the caller checks it */
    uint64_t sequence;      /* input */
    uint64_t position;      /* input: in the source; output: in this store */
    uint64_t time_ms;       /* input: commit time in the source (kept) */
    uint8_t hash[STORE_HASH_LEN]; /* input: chain hash in the source; output: in this store */
} store_load_event_t;

typedef struct store_load_change {
    uint64_t position;      /* its key in the source's change log (keep_positions 1 only) */
    uint32_t index;
    int kind;               /* enum store_change_kind (or a newer kind, kept as it is) */
    uint64_t time_ms;
    const struct store_session *record; /* the record as the change carried it; its
                                           'num' is replaced by this store's (UINT64_MAX,
                                           never given, when the session is not here:
                                           purged) */
} store_load_change_t;

struct store_load {
    int keep_positions;           /* 1: restore, 0: move (above) */
    store_load_event_t *events;   /* in sequence order; n 0: none */
    size_t n_events;
    uint8_t src_prev[STORE_HASH_LEN]; /* the source's chain hash before events[0] */
    const struct store_session *record; /* NULL or the record (above); 'id' is ignored */
    store_load_change_t *changes; /* keep_positions 1: change log entries, keys increasing
                                     and after the log's last key */
    size_t n_changes;
    uint64_t min_last_position;   /* keep_positions 1: the store's last position is at
                                     least this afterwards */
    /* output */
    uint64_t bad_sequence;        /* the refused event's sequence (0: not an event's) */
    char why[256];                /* a refusal in words, naming the session and sequence */
};

/* ---- Compression dictionaries (docs/FORMAT.md section 15) ---- */

/* Trains a zstd dictionary on the store's newest events now, on the calling thread, and
 * waits until the committer stored it (one more "zdict" record; from then on the committer
 * compresses event values with it). The store does this by itself when it reaches
 * STORE_ZDICT_FIRST events and again each time it has grown sixteenfold since the last
 * training (unless 'no_zdict'). MUST NOT be called on the committer thread.
 * Errors: REEL_ENOT_FOUND (too few events or bytes to train on; nothing changes),
 * REEL_EUNAVAILABLE (read-only, 'no_zdict' or failed store), REEL_ECORRUPT, REEL_ENOMEM,
 * REEL_EIO. */
#define STORE_ZDICT_FIRST 1024
int store_zdict_train(store_t *s);

/* What the store's dictionaries are: 'count' records, the newest 'id' (0: none) and the
 * number of damaged records ('damaged'). Reads the meta database. REEL_OK or a reel_err. */
typedef struct store_zdict_info {
    uint32_t count, id, damaged;
    uint32_t first_damaged; /* the lowest damaged id (0: none) */
    uint64_t trained_at; /* the last position when the newest one was trained */
    size_t bytes;        /* size of the newest one */
} store_zdict_info_t;
int store_zdict_info(store_t *s, store_zdict_info_t *out);

/* Called on the committer thread after every successful commit. */
typedef struct store_touched {
    const char *session; /* borrowed until the hook returns */
    size_t session_len;
    uint64_t last_sequence;
} store_touched_t;

typedef struct store_commit {
    uint64_t tail_position; /* last position in the log after this commit */
    const store_touched_t *sessions; /* sessions whose events or record changed */
    size_t n_sessions;
    size_t n_events;  /* events appended by this commit */
    size_t n_batches; /* batches completed by this commit */
    uint64_t txn_id;  /* its LMDB transaction id: ids count the commits of every process */
} store_commit_t;

typedef void (*store_commit_hook)(void *arg, const store_commit_t *c);
/* Sets the hook (NULL to remove). Call before the first submit. */
void store_set_commit_hook(store_t *s, store_commit_hook hook, void *arg);

/* ---- Reading ---- */

typedef struct store_read {
    store_t *s;         /* private */
    void *txn_;         /* private: MDB_txn */
    store_buf_t zbuf_;  /* private: decompression scratch */
    /* Optional, set after store_read_begin(): 1 = every event a walk gives comes with its
     * envelope (store_event_view_t.envelope, rendered by the store's 'render'), from the
     * envelope cache when it holds the event's (store/cache.c says what such a read does
     * not check again), else rendered now from the checked value and kept. A view served
     * from the cache has 'unchecked' set and 'body' NULL: the caller MUST serve the
     * envelope, or call store_event_check() before using the view's body. No effect when
     * the store has no renderer. */
    int envelopes;
    /* Optional, for store_feed_after(): events of a session for which 'only' returns 0 are
     * passed over unread (neither checked nor handed to the callback) but count against
     * the limit; 'passed' and 'passed_up_to' (the last such position) say how many and how
     * far, so a caller can continue after them. The caller resets 'passed'. */
    int (*only)(void *arg, const char *id, size_t id_len);
    void *only_arg;
    uint64_t passed, passed_up_to;
    /* Optional, for the feed: 1 passes over the positions holding events copied in from
     * another store (store_copied_add()) as 'only' does, counted in 'passed'. */
    int skip_copied;
    int copied_read_;         /* private: 'copied_' was looked up */
    const uint8_t *copied_;   /* private: the meta record "copied" in this snapshot */
    size_t n_copied_;
    /* The visible bound (a feed cursor), copied from store_set_visible() by
     * store_read_begin(); STORE_VISIBLE_ALL (the default) = none. See "Visible bound". */
    uint64_t visible;
    uint32_t visible_index;
    void *cursors_[8];  /* private: the open MDB_cursors, innermost last (walks nest: a
                         * callback may read again), closed by store_read_end() */
    unsigned n_cursors_;
    int cache_state_;   /* private: 0 not asked yet, 1 usable, -1 not for this read */
    store_buf_t envbuf_; /* private: an envelope rendered and not kept */
    unsigned pins_[2];  /* private: envelope cache generations pinned by walks (unpinned
                         * by the walk, or by store_read_end() when a guard left it) */
    void *priv_[8];     /* private: envelopes rendered and not kept, being served */
    unsigned n_priv_;
} store_read_t;

/* Begins a read snapshot. Returns REEL_OK or an error (then 'r' needs no end). */
int store_read_begin(store_t *s, store_read_t *r);
/* Ends the snapshot; every pointer borrowed from it becomes invalid. */
void store_read_end(store_read_t *r);

/* ---- Visible bound (visible.c) ----
 *
 * A process may bound what its reads see by a feed cursor (position, index): `reel serve
 * --ack replica` sets it to what its replica holds, so that no reader sees an event a
 * machine loss could take back (docs/CLUSTER.md "Acknowledged by a replica"). Every read
 * begun after store_set_visible() is clipped: no walk gives an event with a position above
 * the bound or a change whose (position, index) is above it; a session record (get,
 * listing) is read as of its last visible event (last_sequence, event_count, last_hash;
 * a session whose events are all above it reads as empty); store_tail_position() is at
 * most the bound. Writes, and the committer's checks (duplicates, expected_sequence,
 * versions), see everything. A read that must (a replica's own copy, a lag) calls
 * store_read_see_all() after store_read_begin(). Any thread. */
#define STORE_VISIBLE_ALL UINT64_MAX
/* Sets the bound; position STORE_VISIBLE_ALL removes it. */
void store_set_visible(store_t *s, uint64_t position, uint32_t index);
/* The bound now (STORE_VISIBLE_ALL, UINT32_MAX when none). */
void store_get_visible(store_t *s, uint64_t *position, uint32_t *index);
/* Lifts the bound for read 'r' only. */
void store_read_see_all(store_read_t *r);

enum store_session_status { STORE_ACTIVE = 0, STORE_ENDED = 1, STORE_DELETED = 2 };

typedef struct store_session {
    char id[STORE_SESSION_ID_MAX + 1];
    size_t id_len;
    uint64_t num; /* internal session number, the key prefix of its events */
    /* agent and native_session_id are byte strings of the given lengths: they may hold
     * NUL (JSON's \u0000 is kept exactly); the NUL after the last byte is a convenience. */
    char agent[STORE_NAME_MAX + 1];
    size_t agent_len;
    char native_session_id[STORE_NAME_MAX + 1];
    size_t native_session_id_len;
    int status;          /* enum store_session_status */
    int64_t created_ms;  /* Unix ms */
    int64_t updated_ms;  /* Unix ms of the last change */
    int64_t ended_ms;    /* the latest session.ended (kept when the session runs again), or 0 */
    int64_t first_event_ms; /* time of sequence 1, 0 when no event */
    uint64_t last_sequence;
    uint64_t event_count; /* = last_sequence - first_sequence + 1 */
    uint64_t bytes; /* stored value bytes of its events */
    uint8_t last_hash[STORE_HASH_LEN];
    /* retention (format 4, docs/FORMAT.md section 10): events before 'first_sequence'
     * were trimmed and are gone (1 when none were); 'first_prev_hash' is the chain hash
     * of first_sequence - 1, where the chain of the kept events starts (zeros at 1). */
    uint64_t first_sequence;
    uint8_t first_prev_hash[STORE_HASH_LEN];
    store_retention_t retention;
    /* version: 1 when created, +1 with every PUT that applies, every DELETE that deletes,
     * and every append batch that changes a field a PUT sets (native_session_id by an
     * event, metadata by a batch's 'metadata'); other appends leave it. runs: the number
     * of session.started events. */
    uint64_t version;
    uint64_t runs;
    /* usage summary (format 4, docs/FORMAT.md section 16): the model of the latest
     * session.started that named one, and the sums of the appended usage events; zero
     * (model_len 0) when none. Kept across a trim and a delete, like runs. */
    char model[STORE_NAME_MAX + 1];
    size_t model_len;
    uint64_t input_tokens, output_tokens, cost_nusd, turns;
    const uint8_t *metadata; /* borrowed msgpack map, or NULL; see the rules */
    size_t metadata_len;
} store_session_t;

/* Reads session 'id'. REEL_ESESSION_NOT_FOUND when it does not exist. */
int store_session_get(store_read_t *r, const char *id, size_t id_len, store_session_t *out);

/* One event as read. Every pointer is borrowed until the callback returns. */
typedef struct store_event_view {
    const char *session; /* session id */
    size_t session_len;
    uint64_t sequence;
    uint64_t position;
    uint64_t time_ms;
    const uint8_t *hash; /* chain hash, STORE_HASH_LEN bytes */
    const uint8_t *body; /* msgpack array, decompressed */
    size_t body_len;
    size_t stored_len; /* bytes of the stored value */
    int unchecked;       /* 1: served from the envelope cache: the value was not read
                            again ('body' NULL; store_read_t.envelopes) */
    int redacted;        /* 1: the body was rewritten by a redaction (STORE_FLAG_REDACTED) */
    const uint8_t *kept_hash_; /* private: the original body's SHA-256 (redacted only) */
    const uint8_t *prev_hash_; /* private: the chain hash before this event */
    store_read_t *read_;       /* private: the read it came from */
    const uint8_t *zbody_;     /* private: an unchecked view's body, still compressed (its
                                  'body' is NULL until store_event_check()) */
    size_t zbody_len_;
    uint8_t zflags_;           /* private: the value's flags, for zbody_ */
    const uint8_t *envelope;   /* with store_read_t.envelopes: the rendered envelope
                                  (borrowed until the callback returns), else NULL */
    size_t envelope_len;
} store_event_view_t;

/* Reads and checks the value of a view given with 'unchecked' set (REEL_OK at once
 * otherwise): its header, decompressed body and chain hash, as a read does; 'body' is set
 * then. A view served from the envelope cache comes with 'body' NULL, since the caller
 * serves its envelope (a decompression and a SHA-256 per event were most of the cost of
 * a cached read, FORMAT.md 9.1 and 15).
 * REEL_ECORRUPT, recorded as every failed check is, when it does not match or does not
 * decompress; REEL_ENOMEM. */
int store_event_check(const store_event_view_t *ev);

/* The SHA-256 of the original body of an event redacted after the fact (the hash its chain
 * commits to, docs/FORMAT.md section 11) into 'out': REEL_OK, or REEL_ENOT_FOUND when 'ev'
 * is not redacted. For a copy that must rebuild the chain (the sink, restore); never served
 * to readers who could test guesses of a short secret against it. */
int store_event_kept_hash(const store_event_view_t *ev, uint8_t out[STORE_HASH_LEN]);

/* The LMDB transaction id of the snapshot 'ev' was read in: a commit with a larger id was
 * not seen by it (the envelope cache keeps renderings of older snapshots out after a
 * redaction). */
uint64_t store_event_snapshot(const store_event_view_t *ev);

/* Called per event; a non-zero return stops the walk and is returned by the caller. */
typedef int (*store_event_cb)(void *arg, const store_event_view_t *ev);

/* Events of session 'id' with sequence > 'after', oldest first, at most 'limit'. Events
 * before the record's first_sequence are gone (trimmed): an 'after' below first_sequence - 1
 * reads from the first kept event (the caller reads the record to say so).
 * '*more' (may be NULL) is set to 1 when events past the last one given exist.
 * Cost O(log n + limit). REEL_ESESSION_NOT_FOUND if the session does not exist,
 * REEL_EGONE if it was deleted. */
int store_events_after(store_read_t *r, const char *id, size_t id_len, uint64_t after,
                       size_t limit, store_event_cb cb, void *arg, int *more);

/* The newest 'n' events of session 'id', given oldest first. Cost O(log n + n),
 * independent of the session's length. */
int store_events_newest(store_read_t *r, const char *id, size_t id_len, size_t n,
                        store_event_cb cb, void *arg);

/* Events of every session with position > 'after', in position order, at most 'limit'.
 * Positions of deleted sessions are skipped. '*more' as above. */
int store_feed_after(store_read_t *r, uint64_t after, size_t limit, store_event_cb cb,
                     void *arg, int *more);

/* ---- The change log (docs/FORMAT.md section 13) ----
 *
 * Every change of a session record that the events do not carry is written, in the same
 * write transaction, to the 'changes' database, keyed by the position of the last event
 * before it and its index among the changes after that event. Events keep their positions
 * (a change takes none), and (position, index) orders events (index 0) and changes in
 * commit order: the feed with changes (store_feed_changes_after) is one cursor over both.
 * Kinds 1..5 are written now; redaction after the fact adds its own with the next number. A reader MUST pass an unknown kind
 * on with its record rather than fail: it is a record change all the same. */
enum store_change_kind {
    STORE_CHANGE_PUT = 1,    /* a PUT/POST of the record applied (created, or fields set) */
    STORE_CHANGE_DELETE = 2, /* the session was deleted: its events are gone */
    STORE_CHANGE_APPEND = 3, /* an append batch changed a field a PUT sets (native id,
                                metadata): the version moved without a PUT */
    STORE_CHANGE_TRIM = 4,   /* retention removed the oldest events: the record's
                                first_sequence says where the session starts now */
    STORE_CHANGE_PURGE = 5,  /* the session was removed for good (record included); the
                                change carries the record as it was */
};

typedef struct store_change_view {
    uint64_t position;             /* the last event position before it (0: none) */
    uint32_t index;                /* 1, 2, ...: its place among the changes after it */
    int kind;                      /* enum store_change_kind, or a newer kind */
    uint64_t time_ms;              /* commit time of the change */
    const store_session_t *record; /* the record right after the change; borrowed until
                                      the callback returns */
} store_change_view_t;

typedef int (*store_change_cb)(void *arg, const store_change_view_t *ch);

/* Events (to 'cb', as store_feed_after() gives them) and changes (to 'ccb') after the
 * cursor ('after', 'index'): events with position > 'after' and changes with (position,
 * index) > ('after', 'index'), in commit order (an event is (position, 0)), at most 'limit'
 * of both together. A cursor is where the last item given was: an event's (position, 0),
 * a change's (position, index). '*more' as above. A store without a change log
 * (read-only, written by an older build) gives the events only. */
int store_feed_changes_after(store_read_t *r, uint64_t after, uint32_t index, size_t limit,
                             store_event_cb cb, store_change_cb ccb, void *arg, int *more);

/* The name of a change kind ("put", "delete", "append", "trim", "purge"), NULL for a kind this build does
 * not know. */
const char *store_change_name(int kind);

/* What the last REEL_ECORRUPT of a read on this thread found, naming the session,
 * sequence and position ("" when none since this thread's last store_read_begin()).
 * Thread-local; valid until this thread's next read. Every event a read hands to a
 * callback was checked first: header, chain hash (docs/FORMAT.md section 4) and, for a
 * session walk, dense sequences up to the record's last_seq and hash. */
const char *store_read_corruption(void);

/* The wall clock in Unix ms: the clock event times are taken from. */
uint64_t store_wall_ms(void);

/* How many redactions (STORE_OP_REDACT batches) were ever committed to the store: the meta
 * record "redactions" (docs/FORMAT.md section 11), 0 when absent. The envelope cache
 * (store/cache.c) empties itself when another process changes it. */
int store_redaction_count(store_read_t *r, uint64_t *n);

/* The last position in the log (0 when empty). */
int store_tail_position(store_read_t *r, uint64_t *pos);
/* The feed with changes' last cursor: the last change when it follows the last event,
 * else (the last position, 0); within the visible bound like every read. */
int store_feed_tail(store_read_t *r, uint64_t *pos, uint32_t *index);

/* The id of the last write transaction committed to the data directory by any process
 * (LMDB's me_last_txnid; one per commit, so a reader that knows the ids of its own
 * process's commits can tell that another process committed). No transaction needed;
 * never call it while this thread holds a read (store_read_t): it takes the resize lock. */
uint64_t store_last_txn(store_t *s);

/* Session records in key order, starting after 'cursor' (an id given before; NULL or "" =
 * first), at most 'limit'. Key order is id (byte) order, except that an id longer than 480
 * bytes sorts after every id sharing its first 447 bytes, such ids among themselves in
 * hash order. 'cb' gets each record (borrowed until it returns); a non-zero return stops.
 * '*more' as above. */
typedef int (*store_session_cb)(void *arg, const store_session_t *rec);
int store_sessions_list(store_read_t *r, const char *cursor, size_t cursor_len, size_t limit,
                        store_session_cb cb, void *arg, int *more);

enum store_order { STORE_ORDER_ID = 0, STORE_ORDER_RECENT = 1 };

/* A filtered listing and its place (the cursor): store_sessions_query() moves the place
 * to the last record it examined, so the next call goes on after it. */
typedef struct store_list {
    int order;          /* enum store_order: key order (above), or updated_ms newest first,
                           ties by session number, highest first */
    const char *prefix; /* ids starting with these bytes; NULL = any */
    size_t prefix_len;
    const char *agent;  /* records whose agent is exactly these bytes; NULL = any */
    size_t agent_len;
    int status;         /* enum store_session_status, or -1 = any */
    /* the place: 'started' 0 = from the beginning */
    int started;
    char last_id[STORE_SESSION_ID_MAX + 1]; /* STORE_ORDER_ID: the last id examined */
    size_t last_id_len;
    int64_t last_ms;    /* STORE_ORDER_RECENT: the last (updated_ms, num) examined */
    uint64_t last_num;
} store_list_t;

/* Gives the records that match 'q' after its place to 'cb', at most 'limit', examining at
 * most 'budget' records (0 = no bound). '*more' is 1 when the walk stopped before the end
 * (another match waits, or the budget ran out: go on from the place). In recent order a
 * store opened read-only at format 1 (no 'recent' db) sorts its records for each call. */
int store_sessions_query(store_read_t *r, store_list_t *q, size_t limit, size_t budget,
                         store_session_cb cb, void *arg, int *more);

/* ---- Integrity and backup ---- */

/* Called now and then by long operations: 'done' of 'total' units (events). */
typedef void (*store_progress_cb)(void *arg, uint64_t done, uint64_t total);

typedef struct store_verify_report {
    uint64_t sessions;    /* sessions checked */
    uint64_t events;      /* events checked */
    uint64_t log_entries; /* position index entries checked */
    int ok;               /* 1 when nothing was wrong */
    /* The first bad place (when !ok): */
    char session[STORE_SESSION_ID_MAX + 1];
    uint64_t sequence;     /* 0 when the problem is not one event's */
    uint64_t position;
    uint64_t ok_up_to;     /* last sequence of 'session' that checked out */
    char problem[256];     /* what is wrong, in words */
} store_verify_report_t;

/* Checks the store (or only session 'id' when 'id' is not NULL): per session, sequences
 * dense from 1, every value decodable (header, zstd, msgpack body), the hash chain
 * recomputed from the bodies, the event_id index and the session record's counters;
 * for the whole store also the log (every value is in its session's sequence index at
 * its position, no position past the last one recorded) and the 'recent' index (one
 * entry per record, each matching its record; none in a format-1 store). Reads in short transactions; checks
 * what was committed when it started. Returns REEL_OK when the check ran ('rep->ok' says
 * whether the store is sound), or an error when it could not run. Changes nothing. */
int store_verify(store_t *s, const char *id, size_t id_len, store_verify_report_t *rep,
                 store_progress_cb progress, void *arg);

/* Writes a consistent, compacted copy of the store into directory 'dir' (created if
 * missing, must not hold a store) while appends go on: mdb_env_copy2(MDB_CP_COMPACT). */
int store_backup(store_t *s, const char *dir);

/* Unmaps the store's pages from this process (madvise MADV_DONTNEED on the read-only map)
 * so that a long scan (export, verify, stats) does not grow the process's RSS with file
 * pages; they stay in the page cache and are mapped again on the next touch. Safe at any
 * time, from any thread: the map is never written through (no MDB_WRITEMAP). */
void store_drop_mapped_pages(store_t *s);

/* ---- Durable consumers (format 4, docs/FORMAT.md section 12) ----
 *
 * A consumer is a named cursor kept in the 'consumers' database: over one session (its
 * positions are the session's sequences) or over the all-sessions feed (log positions),
 * optionally only events of some types. Workers take a lease on it (one owner at a time,
 * for a TTL); each new owner gets a fencing token larger than every earlier one, and an
 * acknowledgement must carry the current token of a live lease, so a worker that lost its
 * lease (paused, partitioned) can no longer move the cursor. The acknowledged position only
 * grows: every event is acknowledged exactly once per consumer; what was read but not
 * acknowledged when a lease ended is read again by the next owner (at least once).
 * Every change goes through the committer (STORE_OP_CONSUMER) and is decided inside the
 * write transaction, so it is atomic with respect to every other change and durable when
 * the batch completes. The database is made by the first change; a store without one reads
 * as having no consumers.
 *
 * The same database keeps opaque records under kind 's' (the Durable Streams subscriptions
 * of api/ds/), written with a compare-and-swap (STORE_CONSUMER_PUT_RAW). */

#define STORE_CONSUMER_NAME_MAX 128  /* bytes of [A-Za-z0-9._:-] (raw records: any bytes) */
#define STORE_CONSUMER_TYPES_MAX 512 /* comma-separated event types, "" = every type */
#define STORE_CONSUMER_OWNER_MAX 128 /* a worker's name, any UTF-8 */
#define STORE_CONSUMER_TTL_MAX (3600u * 1000u) /* the longest lease, ms */

typedef struct store_consumer {
    char name[STORE_CONSUMER_NAME_MAX + 1];
    size_t name_len;
    int feed;                                   /* 1: the all-sessions feed, 0: 'session' */
    char session[STORE_SESSION_ID_MAX + 1];
    size_t session_len;
    char types[STORE_CONSUMER_TYPES_MAX + 1];   /* NUL-terminated */
    uint64_t acked;          /* last acknowledged sequence (session) or position (feed) */
    uint64_t acks;           /* acknowledgements that moved 'acked' */
    uint64_t token;          /* fencing token of the newest lease; 0 = never leased */
    char owner[STORE_CONSUMER_OWNER_MAX + 1];   /* holder of the newest lease, "" = none */
    size_t owner_len;
    uint64_t lease_until_ms; /* Unix ms the newest lease ends at; 0 = released */
    uint64_t takeovers;      /* leases given while another owner's had expired */
    uint64_t created_ms, acked_ms;
} store_consumer_t;

enum store_consumer_op {
    /* Creates rec (name, feed or session, types; the rest is zeroed). An existing consumer
     * with the same definition is kept ('created' 0); another definition: REEL_ECONFLICT. */
    STORE_CONSUMER_CREATE = 1,
    STORE_CONSUMER_DELETE, /* REEL_ENOT_FOUND when absent */
    /* Gives rec.owner a lease of 'ttl_ms' (1..STORE_CONSUMER_TTL_MAX). Free or expired:
     * a new token. Held by rec.owner: renewed when 'token' is its token, else a new token
     * (a restarted worker). Held live by another: REEL_ELEASE_HELD, 'rec' says by whom. */
    STORE_CONSUMER_LEASE,
    /* Moves 'acked' to 'position' (>= acked, at most the session's last sequence or the
     * log's last position, else REEL_EINVALID_PARAMETER). 'token' must be the newest token
     * and its lease live, else REEL_ESTALE_TOKEN. A position below 'acked': REEL_ECONFLICT. */
    STORE_CONSUMER_ACK,
    STORE_CONSUMER_RELEASE, /* ends the lease of 'token' (REEL_ESTALE_TOKEN if not current) */
    /* Raw records (kind 's'): puts 'value' (len 0: deletes) if the stored value is byte for
     * byte 'expected' (len 0: absent) when 'check' is set, else REEL_ECONFLICT. */
    STORE_CONSUMER_PUT_RAW,
    /* Changes nothing. Batches are committed in the order they were submitted, so it
     * completes once every batch submitted before it is durable: a barrier for callers
     * whose own writes were submitted without waiting (api/ds/subs*.c). */
    STORE_CONSUMER_SYNC,
};

struct store_consumer_req {
    int op;                 /* enum store_consumer_op */
    store_consumer_t rec;   /* in: name and what the op takes; out: the record after the
                               batch (or as found, when refused) */
    uint64_t token, ttl_ms, position;
    int created;            /* out: CREATE made it */
    uint64_t now_ms;        /* out: the transaction's clock */
    const uint8_t *value, *expected; /* PUT_RAW */
    size_t value_len, expected_len;
    int check;
};

/* 1 if 'name' is a valid consumer name (1..STORE_CONSUMER_NAME_MAX of [A-Za-z0-9._:-]). */
int store_consumer_name_valid(const char *name, size_t len);
/* Reads consumer 'name' into 'out'. REEL_ENOT_FOUND when it does not exist. */
int store_consumer_get(store_read_t *r, const char *name, size_t len, store_consumer_t *out);
/* Gives every consumer, in name order, to 'cb' (borrowed until it returns; non-zero stops). */
typedef int (*store_consumer_cb)(void *arg, const store_consumer_t *c);
int store_consumer_list(store_read_t *r, store_consumer_cb cb, void *arg);
/* The end a consumer reads towards, in 'r': its session's last sequence (0 when the session
 * is missing or deleted), or for a feed consumer the log's last position. */
uint64_t store_consumer_tail(store_read_t *r, const store_consumer_t *c);
/* Raw records (kind 's'): one (borrowed until the read ends; REEL_ENOT_FOUND), or all. */
int store_consumer_raw_get(store_read_t *r, const char *name, size_t len, const uint8_t **val,
                           size_t *val_len);
typedef int (*store_consumer_raw_cb)(void *arg, const char *name, size_t len,
                                     const uint8_t *val, size_t val_len);
int store_consumer_raw_list(store_read_t *r, store_consumer_raw_cb cb, void *arg);

/* ---- Metrics ---- */

#define STORE_HIST_BUCKETS 16 /* commit latency: bucket i counts commits < 2^i * 64 us */

typedef struct store_stats {
    uint64_t batches;      /* batches completed OK */
    uint64_t batch_errors; /* batches completed with an error */
    uint64_t events;       /* events appended */
    uint64_t duplicates;   /* events skipped as duplicates */
    uint64_t commits;      /* write transactions committed */
    uint64_t commit_ns;    /* total time in commits (write + fsync) */
    uint64_t commit_hist[STORE_HIST_BUCKETS];
    uint64_t map_size;    /* current LMDB map size */
    uint64_t used_bytes;  /* pages in use * page size */
    uint64_t map_grows;   /* times the map grew */
    int failed;           /* 1 in fail-stop */
    uint64_t corrupt_reads; /* reads answered REEL_ECORRUPT, as told by store_note_corrupt() */
    uint64_t trimmed;       /* events removed by STORE_OP_TRIM (retention) */
    uint64_t purged;        /* sessions removed for good by STORE_OP_PURGE */
} store_stats_t;

/* ---- Copied positions (copied.c; docs/FORMAT.md section 20) ---- */

/* Records that positions in the 'n' ranges (pairs first, last; first >= 1) hold events
 * copied in from another store (a shard moved here), so a reader of every store's feed
 * can pass over them (store_read_t.skip_copied). Merged with the ranges recorded before,
 * durably (its own write transaction, synced even under --sync=none). Not while this
 * thread holds a read. */
int store_copied_add(store_t *s, const uint64_t *ranges, size_t n);
/* How many copied ranges the snapshot records, and how many positions they span. */
int store_copied_count(store_read_t *r, uint64_t *ranges, uint64_t *positions);

/* ---- Cluster epoch (epoch.c; docs/FORMAT.md 14) ---- */

/* The highest cluster map epoch this store accepted (meta "cluster_epoch"; 0: none). */
int store_epoch_get(store_t *s, uint64_t *epoch);
/* Records 'epoch' as accepted, durably (its own write transaction, synced even under
 * --sync=none), unless the stored one is higher. REEL_OK when 'epoch' >= the stored one
 * (equal: nothing is written); REEL_ECONFLICT when it is lower; '*stored' is then the
 * stored epoch, else 'epoch'. Not while this thread holds a read. */
int store_epoch_raise(store_t *s, uint64_t epoch, uint64_t *stored);

/* The envelope cache's counters (store/cache.c): envelopes served from it, rendered on a
 * miss, entries held and their bytes (envelopes and entry overhead), the budget, and how
 * many times it was emptied because another process redacted. All 0 without a cache.
 * Any thread. */
typedef struct store_cache_stats {
    uint64_t hits, misses, entries, bytes, max_bytes, clears, evictions;
} store_cache_stats_t;
void store_cache_stats(store_t *s, store_cache_stats_t *out);

/* A copy of the counters. Takes the resize lock: not while this thread holds a read. */
void store_get_stats(store_t *s, store_stats_t *out);
/* Counts one read that failed with REEL_ECORRUPT (a damaged page or value). The caller
 * that answers the error calls it once per failed request: the store cannot, since
 * decoders above it (replay/) find damage in values too. Thread-safe. */
void store_note_corrupt(store_t *s);

#endif
