/* store_int.h -- private to store/: the handle, key helpers and record codecs.
 * The public contract and the on-disk format are in store.h and docs/FORMAT.md. */
#ifndef REEL_STORE_INT_H
#define REEL_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <zstd.h>

#include "store/store.h"

#define STORE__GROUP_MAX_EVENTS 20000 /* events per write transaction, to bound latency */
#define STORE__ZDICT_MAX 255          /* dictionary ids 1..255: a one-byte id in each frame */

struct store__zdict; /* zdict.c */
struct store__cache; /* cache.c */

struct store {
    MDB_env *env;
    MDB_dbi db_meta, db_sessions, db_session_ids, db_events, db_event_ids, db_seqs;
    MDB_dbi db_event_uuids; /* STORE__PART_IXDUP only: num -> uuid | seq (DUPFIXED) */
    MDB_dbi db_ixtail;      /* STORE__PART_IXTAIL only: num -> the session's newest entries */
    MDB_dbi db_recent; /* format 2: updated_ms BE | num BE (valid when has_recent) */
    int has_recent;    /* 0: a format-1 store opened read-only (no 'recent' db) */
    uint32_t parts;    /* optional parts the format record names (STORE__PART_*) */
    uint32_t parts_off; /* store_options_t.parts_off: parts a new store does not get */
    MDB_dbi db_changes; /* format 4: position BE -> change (section 13; changes.c) */
    int has_changes;    /* 0: opened read-only before any build with the change log wrote */
    MDB_dbi db_consumers;        /* format 4, optional (valid when has_consumers) */
    atomic_int has_consumers;    /* set once the database exists (opened, or made by the
                                    committer's first consumer change and committed) */
    char upgrade_note[300]; /* the line store_open() logs after an upgrade committed */
    int upgrade_full;       /* the upgrade ran out of map (MDB_MAP_FULL): grow and retry */
    int read_only;
    int lockless; /* read-only without the lock file (a directory this user cannot write) */
    int no_sync;
    uint8_t secret[STORE_SECRET_LEN]; /* meta "secret" (store_secret()) */
    int has_secret;
    /* Readers hold it shared for the life of a read; map growth takes it exclusive, since
     * mdb_env_set_mapsize() needs every transaction of this process closed (lmdb.h). */
    pthread_rwlock_t resize_lock;
    uintptr_t map_lo, map_hi; /* where data.mdb is mapped (0 = not found); guard.c */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t work; /* signalled when a batch is queued or on close */
    store_batch_t *head, *tail;
    int stopping;
    int failed; /* fail-stop: a commit failed with something other than a full disk */
    int started;
    pthread_t committer;
    store_commit_hook hook;
    void *hook_arg;
    store_stats_t stats;

    /* the visible bound of reads (visible.c): set under vis_mu; 'clipping' is 0 while
     * there is none, so store_read_begin() takes no lock then */
    pthread_mutex_t vis_mu;
    uint64_t vis_pos;
    uint32_t vis_idx;
    atomic_int clipping;
    /* with the journal: the durable bound (under vis_mu), which every read keeps below
     * whatever the replica bound says (store__read_bound) */
    int durable_on;
    uint64_t dur_pos;
    uint32_t dur_idx;
    struct store__journal *jr; /* the write-ahead journal (jfile.c); NULL when off */

    /* zstd dictionaries (zdict.c; docs/FORMAT.md section 15) */
    struct store__zdict *_Atomic zd[STORE__ZDICT_MAX + 1]; /* by id: set once, then fixed */
    pthread_mutex_t zd_mu;    /* serialises installs into zd[] */
    pthread_cond_t zd_cv;     /* signalled (under mu) when a posted dictionary was handled */
    int zd_auto;              /* train and compress (!store_options_t.no_zdict) */
    /* under mu: a trained dictionary waiting for the committer, and the trainer thread */
    uint8_t *zd_pending;
    size_t zd_pending_len;
    uint64_t zd_pending_at;   /* last position when its samples were taken */
    uint64_t zd_done;         /* dictionaries handled by the committer (generation) */
    int zd_result;            /* REEL_OK or the error of the last one handled */
    int zd_training;          /* a trainer thread was started and is not joined */
    int zd_finished;          /* ... and it has finished */
    pthread_t zd_thread;
    /* committer thread only */
    int zd_loaded;            /* the newest dictionary was looked up */
    uint32_t zd_cur;          /* the id values are compressed with (0: none) */
    uint64_t zd_next_train;   /* train when the last position reaches this */
    uint8_t *zd_new;          /* the dictionary this group writes (taken from zd_pending) */
    size_t zd_new_len;
    uint64_t zd_new_at;
    uint32_t zd_new_id;
    /* any thread: the dictionary submitters compress with (set by the committer) */
    struct store__zdict *_Atomic zd_enc;

    /* the envelope cache (cache.c): NULL when off; 'render' NULL: no envelopes at all */
    struct store__cache *cache;
    store_render_fn render;
};

/* ---- the committer's writes (journal.c; docs/FORMAT.md section 17) ----
 *
 * Every write the committer makes goes through these wrappers: the same arguments as the
 * LMDB call plus the group's write context. They make the LMDB call and, when the group is
 * journaled ('logging'), append the write to the group's physical log (dbi as a tree id,
 * op, key, value), which recovery replays with the same calls. Only a write that LMDB
 * accepted is logged. A reserved value (MDB_RESERVE) is logged by store__reserved(),
 * called right after the caller filled it and before any other write of the group (a
 * later write may move the page). */
/* A session's index tail (index.c, docs/FORMAT.md 22): entry i is sequence first + i. */
#define STORE__TAIL_MAX 16
#define STORE__TAIL_ENTRY 25 /* pos u64 BE | kind u8 | uuid 16 bytes */
typedef struct store__tail {
    uint64_t first;
    unsigned n;
    uint8_t e[STORE__TAIL_MAX][STORE__TAIL_ENTRY];
} store__tail_t;

typedef struct store__wg {
    store_t *s;
    MDB_txn *txn;
    int logging;      /* 1: append each write to 'log' */
    store_buf_t log;  /* the group's records (journal.c); owned by the group */
    size_t reserve_at; /* where the pending reserved value goes (0: none pending) */
    /* index.c: the tail of session 'tail_num' as the appends of one batch leave it, so
     * that a batch of many events writes it once; store__ix_flush() writes it */
    int tail_state;   /* 0: none held, 1: held as stored, 2: changed, not yet written */
    uint64_t tail_num;
    store__tail_t tail;
} store__wg_t;

/* mdb_put(g->txn, dbi, key, val, flags); logged on success. 0 or an LMDB/errno code
 * (ENOMEM when the log could not grow: the group must fail). */
int store__put(store__wg_t *g, MDB_dbi dbi, MDB_val *key, MDB_val *val, unsigned flags);
/* mdb_del(g->txn, dbi, key, val); logged on success. */
int store__del(store__wg_t *g, MDB_dbi dbi, MDB_val *key, MDB_val *val);
/* mdb_cursor_del(c, flags), logging the key and value the cursor stands on. */
int store__cursor_del(store__wg_t *g, MDB_cursor *c, unsigned flags);
/* The value of the last store__put() with MDB_RESERVE is filled: logs its 'len' bytes. */
void store__reserved(store__wg_t *g, const void *ptr, size_t len);
/* mdb_dbi_open(g->txn, name, MDB_CREATE, dbi), logged (a tree the group creates). */
int store__create(store__wg_t *g, const char *name, MDB_dbi *dbi);
/* 1 when a log append ran out of memory (the group must not commit). */
static inline int store__wg_failed(const store__wg_t *g) { return g->logging && g->log.oom; }

/* ---- the write-ahead journal (jfile.c, jrecover.c; docs/FORMAT.md section 17) ----
 *
 * Threads: the committer commits a group without a flush and hands it to the journal
 * thread (store__journal_group), which writes the logs of every queued group with one
 * write and one fdatasync, advances the durable bound, then completes the groups in order
 * (store__group_complete). A checkpoint thread flushes data.mdb for a snapshot the
 * committer pinned; the journal thread then starts a new journal file headed by that
 * snapshot's meta page. */

/* One committed (or failed) group on its way to the journal; the first member of
 * commit.c's group, which it owns until store__group_complete(). */
typedef struct store__jgroup {
    struct store__jgroup *next;
    store_batch_t *list;   /* completed when the group is durable */
    const uint8_t *log;    /* its physical log (journal.c), 'log_len' bytes */
    size_t log_len;
    uint64_t txn_id;       /* the LMDB transaction it committed as */
    uint64_t pos;          /* the durable bound once it is durable */
    uint32_t idx;
    int committed;         /* 0: the group failed, nothing to write, only complete it */
} store__jgroup_t;

/* commit.c, on the journal thread: completes the batches of 'j' ('err' non-zero: the
 * journal failed, every batch not failed on its own gets it), fires the commit hook when
 * it is durable, frees the group. */
void store__group_complete(store_t *s, store__jgroup_t *j, int err);

/* store_open(), before LMDB opens the environment: takes journal.lock (exclusively with
 * 'journal', else as a plain writer or reader), refuses when a journaling process holds
 * it (naming its pid) or, with 'journal', when another process has the environment open;
 * recovers a journal left by a crash (the checkpoint's meta page over both meta slots,
 * then a replay of every complete group after it). REEL_OK or a reel_err with
 * store_last_error() set. */
int store__journal_open(store_t *s, const char *dir, int journal);
/* store_open(), after the environment is open, before the committer starts: sets part
 * 0x2 with a synced commit, writes the first checkpoint, starts the threads. */
int store__journal_start(store_t *s, const char *dir);
/* store_close(), after the committer stopped: drains the journal, flushes data.mdb,
 * removes the journal files and clears part 0x2 (unless the journal failed), then
 * releases journal.lock. Also releases the lock of a store opened without the journal. */
void store__journal_close(store_t *s);
/* Clears part 0x2 of a store opened without the journal (a synced commit). */
int store__journal_clear(store_t *s);
/* Committer: hands over group 'j' (ownership of the whole group goes with it). */
void store__journal_group(store_t *s, store__jgroup_t *j);
/* Committer, after a committed group: takes a checkpoint when one is due. */
void store__journal_tick(store_t *s);
/* A write transaction outside the committer committed (epoch.c, copied.c): waits for a
 * checkpoint that covers it, so that recovery never reverts it. REEL_OK or REEL_EIO. */
int store__journal_checkpoint_wait(store_t *s);
/* The bound every read of this process keeps to: the replica bound, lowered to the
 * durable bound when journaling (visible.c). */
void store__read_bound(store_t *s, uint64_t *position, uint32_t *index);
/* Sets the durable bound (journal thread). */
void store__set_durable(store_t *s, uint64_t position, uint32_t index);
/* CRC-32C of 'n' bytes (jrecover.c): the check of every journal record. */
uint32_t store__crc32c(uint32_t crc, const void *p, size_t n);

/* visible.c: 1 when a change at ('pos', 'index') is at or below r's visible bound; the
 * record as of its last visible event (REEL_ECORRUPT when an index entry is missing). */
int store__change_visible(const store_read_t *r, uint64_t pos, uint32_t index);
int store__clip_record(store_read_t *r, store_session_t *rec);

/* Sets the text store_last_error() returns (printf-style). */
void store__set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Translates an LMDB or errno code to a reel_err. */
int store__err_from_mdb(int rc);
/* Grows the map (by doubling, at least 'need' bytes more) or adopts a size set by another
 * process ('adopt'); takes the resize lock exclusively. Called with no transaction open
 * by the calling thread. */
int store__grow(store_t *s, int adopt, size_t need);
/* The meta record 'key' ({0, NULL} when absent), whole 'unit'-byte items or REEL_ECORRUPT */
int store__meta_get(store_t *s, MDB_txn *txn, const char *key, size_t unit, MDB_val *v);
/* Begins an LMDB transaction, adopting a map grown by another process when told to. */
int store__txn_begin(store_t *s, unsigned flags, MDB_txn **txn);
void *store__committer_main(void *arg);
/* Merges copied positions [first, last] into meta "copied" inside the committer's write
 * transaction 'w' (copied.c): an LMDB error code (or ENOMEM), 0 when done. */
int store__copied_put(store__wg_t *w, uint64_t first, uint64_t last);
/* 1 when position 'pos' holds a copied event (copied.c; store_read_t.skip_copied). */
int store__copied(store_read_t *r, uint64_t pos);
/* Upgrades a format-1 store to format 2 inside 'txn' (upgrade.c); the note to log goes
 * into s->upgrade_note. REEL_OK or an error with store_last_error() set. */
int store__upgrade(store_t *s, MDB_txn *txn, const char *dir);
/* Writes the current STORE_FORMAT_VERSION into the meta record, in 'txn' (upgrade.c). */
int store__put_format(store_t *s, MDB_txn *txn);

/* Optional parts of format 4 that older format-4 builds must not open, named in the
 * format record after the version (docs/FORMAT.md section 18.1): a record of 8 bytes, u32
 * BE version then u32 BE parts, which a build that knows only the 4-byte record reads as
 * version 0 and refuses. A store is created with every part this build writes. */
#define STORE__PART_IDKEYS 0x1u /* event_ids keys of UUID event ids in 16 bytes (18.2) */
/* set while a journaling process may have acknowledged groups that are only in its journal
 * (section 17): a build without the journal must not open the store then */
#define STORE__PART_JOURNAL 0x2u
#define STORE__PART_IXDUP 0x4u  /* seqs and UUID event ids in per-session DUPFIXED trees (21.1) */
#define STORE__PART_SHORTHEAD 0x8u /* new values may have varint headers (21.2) */
/* the newest index entries of a session in one value of 'ixtail' (22); with IXDUP only */
#define STORE__PART_IXTAIL 0x10u
#define STORE__PARTS_KNOWN                                                                   \
    (STORE__PART_IDKEYS | STORE__PART_JOURNAL | STORE__PART_IXDUP | STORE__PART_SHORTHEAD | \
     STORE__PART_IXTAIL)
#define STORE__PARTS_NEW \
    (STORE__PART_IDKEYS | STORE__PART_IXDUP | STORE__PART_SHORTHEAD | STORE__PART_IXTAIL)
/* Flags of 'seqs' and 'event_uuids' in a store with STORE__PART_IXDUP. */
#define STORE__IXDUP_FLAGS (MDB_DUPSORT | MDB_DUPFIXED)

/* 1 and 'out' set when 'id' is a UUID in canonical lowercase text (record.c). */
int store__uuid_bytes(const char *id, size_t len, uint8_t out[16]);

/* ---- the session indexes, either layout (index.c, docs/FORMAT.md 2.5, 2.6, 21.1, 22) ----
 * Without STORE__PART_IXDUP: 'seqs' keys num|seq -> pos, 'event_ids' keys -> seq. With
 * it: 'seqs' is keyed by num with DUPFIXED values seq|pos (16 bytes), canonical UUID
 * event ids go to 'event_uuids', keyed by num with values uuid|seq (24 bytes), and every
 * other id stays in 'event_ids' as before. With STORE__PART_IXTAIL as well, a session's
 * newest (up to STORE__TAIL_MAX) seqs and UUID entries are kept together in its one value
 * of 'ixtail', rewritten once per batch of appends, and moved into the two trees when it is full:
 * an append then dirties the pages of those trees once per STORE__TAIL_MAX events instead
 * of once per event. These return LMDB codes (0, MDB_NOTFOUND, MDB_KEYEXIST, ...); a
 * malformed entry reads as position/sequence 0, which the callers report as damage, and a
 * malformed 'ixtail' value as MDB_CORRUPTED. Writes go through the group's wrappers
 * (store__put ...: journal.c). */
int store__seq_get(const store_t *s, MDB_txn *txn, uint64_t num, uint64_t seq, uint64_t *pos);
/* Every 'seqs' entry of session 'num' (not the events they point at). */
int store__seq_drop(store__wg_t *w, uint64_t num);
/* A walk over one session's 'seqs' entries in sequence order, on a cursor of 'seqs'; its
 * 'ixtail' entries (copied at init) come after those of the tree. */
typedef struct store__seqc {
    MDB_cursor *c;
    const store_t *s;
    uint64_t num;
    int dup;                /* the STORE__PART_IXDUP layout */
    int in_tail;            /* the walk stands in the tail (entry 'ti') */
    int rc;                 /* reading the tail failed (MDB_CORRUPTED, ...) */
    unsigned tn, ti;        /* entries in the tail, the one the walk stands on */
    uint64_t tfirst;        /* the tail's first sequence */
    uint64_t tpos[STORE__TAIL_MAX];
} store__seqc_t;
void store__seqc_init(store__seqc_t *w, const store_t *s, MDB_cursor *c, uint64_t num);
/* The first entry with sequence >= 'seq' into got and pos; MDB_NOTFOUND past the session. */
int store__seqc_seek(store__seqc_t *w, uint64_t seq, uint64_t *got, uint64_t *pos);
/* The next entry of the session; MDB_NOTFOUND after its last. */
int store__seqc_next(store__seqc_t *w, uint64_t *got, uint64_t *pos);
/* Deletes the entry the walk stands on (in the tail, only its first: trims remove the
 * oldest); the walk then stands nowhere: seek again. */
int store__seqc_del(store__wg_t *g, store__seqc_t *w);
/* The event_id index: the sequence of 'id' in session 'num'. */
int store__id_get(const store_t *s, MDB_txn *txn, uint64_t num, const char *id, size_t len,
                  uint64_t *seq);
/* Indexes event 'seq' of session 'num' at position 'pos' with event id 'id', unless the id
 * is there: then MDB_KEYEXIST, its sequence in '*had', and nothing written. 'new_id' (an
 * id generated for this event, store_event_t.new_id) skips the lookup of a UUID id. */
int store__ix_append(store__wg_t *w, uint64_t num, uint64_t seq, uint64_t pos, const char *id,
                     size_t len, int new_id, uint64_t *had);
/* Writes the tail store__ix_append() holds, if it changed. Every reader of the index in
 * the group's transaction must come after it: the committer calls it after each batch
 * (group_run), before the next batch's duplicate lookups; a batch reads the index only
 * before its appends (a redaction's checks too). */
int store__ix_flush(store__wg_t *w);
int store__id_del(store__wg_t *w, uint64_t num, const char *id, size_t len);
/* Every event_id entry of session 'num', in both trees and its tail. */
int store__ids_drop(store__wg_t *w, uint64_t num);

/* The event_ids key of event id 'id' in session 'num' into 'key' (at least
 * STORE__ID_KEY_MAX bytes); returns its length. Without STORE__PART_IDKEYS: num | id. With
 * it: num | 0x00 | the 16 bytes of a canonical lowercase UUID, or num | 0x01 | id. */
#define STORE__ID_KEY_MAX (9 + STORE_EVENT_ID_MAX)
size_t store__id_key(const store_t *s, uint8_t *key, uint64_t num, const char *id, size_t len);

/* Events with position in (after, until], at most 'limit', as store_feed_after() gives
 * them (read.c); not guarded: the caller runs under STORE__GUARD. */
int store__feed_range(store_read_t *r, uint64_t after, uint64_t until, size_t limit,
                      store_event_cb cb, void *arg, int *more);

/* ---- the change log (changes.c, docs/FORMAT.md section 13) ---- */

/* Where a write transaction's last change went (zeroed with its group): the next change
 * after the same position takes the next index. */
typedef struct store__chlog {
    int known;       /* 'pos'/'index' hold the log's last key */
    uint64_t pos;
    uint32_t index;
} store__chlog_t;

/* Writes change 'kind' (enum store_change_kind) of record 'rec' in the group's transaction,
 * after position 'pos' (the last position assigned so far: the change sorts after that
 * event and before the next). 0 or an LMDB/errno code. */
int store__change_put(store__wg_t *w, store__chlog_t *cl, uint64_t pos, int kind,
                      uint64_t time_ms, const store_session_t *rec);
/* Writes change 'kind' of 'rec' under the given key (position, index), which must come
 * after the log's last key (STORE_OP_LOAD brings a source's log). 0, EINVAL when the key
 * does not come after, or an LMDB/errno code. */
int store__change_put_at(store__wg_t *w, store__chlog_t *cl, uint64_t pos, uint32_t index,
                         int kind, uint64_t time_ms, const store_session_t *rec);
/* Reads the log's last key into 'cl' unless it is known. 0 or an LMDB code. */
int store__change_last(store_t *s, MDB_txn *txn, store__chlog_t *cl);

/* ---- loading a copy (load.c; STORE_OP_LOAD in store.h) ----
 *
 * What load.c needs of the committer's group (commit.c fills it per batch). */
typedef struct store__load_ctx {
    store_t *s;
    store__wg_t *w;        /* the group's transaction (w->txn) */
    uint64_t *position;    /* the group's last position assigned */
    store__chlog_t *chlog;
    uint64_t now_ms;
    /* The session's record in the group: '*rec' NULL when it does not exist; with
     * 'create' a new one (number, created/updated now, version 1, first_sequence 1) is
     * made. The record stays the group's; it is written when the group finishes. */
    int (*sess)(void *arg, const char *id, size_t len, int create, store_session_t **rec);
    void *arg;
    /* outputs for the group */
    int mdb_rc;            /* an LMDB error that fails the whole group */
    size_t n_events, need_bytes;
} store__load_ctx_t;

/* STORE_OP_LOAD of batch 'b' in the group's transaction. A reel_err for the batch. */
int store__load_apply(store__load_ctx_t *c, store_batch_t *b);

/* ---- durable consumers (consumer.c) ---- */

/* Opens the 'consumers' database at store open if it exists (a read of 'txn'). */
int store__consumers_open(store_t *s, MDB_txn *txn);
/* The last sequence of session 'id' as the committer's transaction sees it (0: none). */
typedef int (*store__last_seq_fn)(void *arg, const char *id, size_t len, uint64_t *seq);
/* Applies consumer change 'q' inside write transaction 'txn' (the committer): 'tail' is
 * the log's last position and 'last_seq' gives the last sequence of the consumer's session
 * as this transaction sees them (for an ACK). Returns a reel_err for the batch; an LMDB
 * error that must fail the whole group goes into '*mdb_rc'. '*made' is set when this
 * call created the database (the committer publishes it after the commit). */
int store__consumer_apply(store__wg_t *w, store_consumer_req_t *q, uint64_t now_ms,
                          uint64_t tail, store__last_seq_fn last_seq, void *arg, int *mdb_rc,
                          int *made);

/* ---- damaged pages (guard.c) ---- */

/* One guarded call; lives on the stack of STORE__GUARD's caller. */
typedef struct store__guard {
    sigjmp_buf jb;
    struct store__guard *prev; /* the enclosing guard of this thread, or NULL */
    const store_t *s;
    const char *what;          /* set when a damaged page was caught */
    char detail[160];          /* LMDB's assertion text */
} store__guard_t;

extern __thread store__guard_t *store__guard_top;

/* Installs the SIGSEGV/SIGBUS handler (once per process) and the env's assert callback,
 * and finds the map. Called by store_open(). */
void store__guard_install(store_t *s);
/* Finds where data.mdb is mapped (after open and after every map growth). */
void store__guard_map(store_t *s);
/* The caught path of STORE__GUARD: sets the error text; REEL_ECORRUPT. */
int store__guard_caught(store_t *s, store__guard_t *g);

/* Runs 'call' (an int expression that reads the map) so that an LMDB assertion, or a fault
 * inside the map or inside LMDB, on a damaged page makes 'rc' REEL_ECORRUPT instead of
 * ending the process.
 * The caller MUST keep every resource it needs to release (the read, its cursor) outside
 * 'call''s own frame: after a catch, 'call' never returns. */
#define STORE__GUARD(s_, rc_, call_)                                \
    do {                                                            \
        store__guard_t g_ = {.prev = store__guard_top, .s = (s_)}; \
        if (sigsetjmp(g_.jb, 0) == 0) {                             \
            store__guard_top = &g_;                                 \
            (rc_) = (call_);                                        \
            store__guard_top = g_.prev;                             \
        } else {                                                    \
            (rc_) = store__guard_caught((s_), &g_);                 \
        }                                                           \
    } while (0)

/* A walk's cursor is kept in its read, so that store_read_end() can close it when a guard
 * left the walk; walks nest (a callback reads again), so the read keeps a small stack. */
static inline void store__cursor_push(store_read_t *r, MDB_cursor *c)
{
    if (r->n_cursors_ < sizeof r->cursors_ / sizeof r->cursors_[0])
        r->cursors_[r->n_cursors_++] = c;
}

/* Opens a cursor on 'dbi' in read 'r' and pushes it (above). REEL_OK or a reel_err. */
static inline int store__cursor_open(store_read_t *r, MDB_dbi dbi, MDB_cursor **c)
{
    int rc = mdb_cursor_open((MDB_txn *)r->txn_, dbi, c);
    if (rc)
        return store__err_from_mdb(rc);
    store__cursor_push(r, *c);
    return REEL_OK;
}

/* Closes 'c', the innermost cursor of 'r'. */
static inline void store__cursor_close(store_read_t *r, MDB_cursor *c)
{
    if (r->n_cursors_ && r->cursors_[r->n_cursors_ - 1] == c)
        r->n_cursors_--;
    mdb_cursor_close(c);
}

/* ---- keys (big-endian) ---- */

static inline void store__put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline uint64_t store__get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* ---- session keys (env.c) ----
 *
 * The 'sessions' key of an id (docs/FORMAT.md, format 2): the id itself when it is at
 * most STORE__SESSION_KEY_MAX bytes; a longer id is keyed by its first
 * STORE__SESSION_KEY_CUT bytes, one byte 0xFF (never in UTF-8) and the SHA-256 of the
 * whole id, and its record holds the full id under "id". */
#define STORE__SESSION_KEY_MAX 480
#define STORE__SESSION_KEY_CUT 447
/* Writes the key of 'id' into 'key'; returns its length, 0 when hashing failed (ENOMEM). */
size_t store__session_key(const char *id, size_t len, uint8_t key[STORE__SESSION_KEY_MAX]);
/* 1 when 'key' is the hashed key of a long id (its record carries the id). */
static inline int store__session_key_long(const void *key, size_t len)
{
    return len == STORE__SESSION_KEY_MAX && ((const uint8_t *)key)[STORE__SESSION_KEY_CUT] == 0xff;
}

/* ---- records (record.c) ---- */

/* Encodes 'rec' as the msgpack map stored in the sessions database. */
void store__session_encode(const store_session_t *rec, store_buf_t *out);
/* Decodes a stored session record found under 'sessions' key 'key' (the id, or for a
 * long id the hashed key: the id is then the record's "id", checked against the key);
 * 'metadata' points into 'p' (borrowed). */
int store__session_decode(const uint8_t *p, size_t len, const char *key, size_t key_len,
                          store_session_t *rec);
/* Decodes the event value stored at position 'pos' of store 's' (read in 'txn', where a
 * dictionary it names is found) into 'ev' (body decompressed into 'scratch' when needed;
 * the session fields are left to the caller) and its session number into '*num'.
 * REEL_ECORRUPT when the value is malformed. */
int store__value_decode(store_t *s, MDB_txn *txn, uint64_t pos, const uint8_t *p, size_t len,
                        store_buf_t *scratch, store_event_view_t *ev, uint64_t *num);
/* An event value's header (docs/FORMAT.md 3; with flag STORE_FLAG_SHORT, 21.2). */
typedef struct store__head {
    uint64_t num, seq, time_ms;
    const uint8_t *hash; /* the chain hash, STORE_HASH_LEN bytes */
    size_t len;          /* header bytes, before the kept hash (redacted) or the body */
} store__head_t;
/* Parses the header of value 'p' ('len' bytes): REEL_ECORRUPT for unknown flags, a cut
 * header, or no body byte after it (and after the kept hash of a redacted value). */
int store__head_parse(const uint8_t *p, size_t len, store__head_t *h);
/* The header's size for these flags and fields, and writing it: returns its length. */
size_t store__head_size(uint8_t flags, uint64_t num, uint64_t seq, uint64_t time_ms);
size_t store__head_write(uint8_t *p, uint8_t flags, uint64_t num, uint64_t seq,
                         uint64_t time_ms, const uint8_t hash[STORE_HASH_LEN]);
/* STORE_FLAG_SHORT when the store writes short headers (STORE__PART_SHORTHEAD), else 0. */
#define STORE__HEAD_FLAG(s) ((s)->parts & STORE__PART_SHORTHEAD ? STORE_FLAG_SHORT : 0u)

/* store__value_decode() without the decompression: a compressed body is left in
 * ev->zbody_ (ev->body NULL) for store__value_body(). */
int store__value_head(uint64_t pos, const uint8_t *p, size_t len, store_event_view_t *ev,
                      uint64_t *num);
/* Decompresses ev->zbody_ (if any) into 'scratch' and points ev->body at it. */
int store__value_body(store_t *s, MDB_txn *txn, store_buf_t *scratch, store_event_view_t *ev);
/* The hash the chain commits to for 'ev' (docs/FORMAT.md sections 4 and 11): its kept
 * original hash when redacted, else the SHA-256 of its body. REEL_OK or REEL_ENOMEM. */
int store__body_hash(const store_event_view_t *ev, uint8_t out[STORE_HASH_LEN]);
/* SHA-256 of 'p' into 'out'. OpenSSL 3's one-shot SHA256() allocates a digest context
 * and returns NULL, leaving 'out' unset, when that fails: REEL_ENOMEM then (found by
 * tests/oom; the hash was used unset, so the event was stored with a broken chain). */
int store__sha256(const void *p, size_t n, uint8_t out[STORE_HASH_LEN]);
/* Appends a zstd frame of 'src' at level 1, without dictionary, to 'out' and sets '*n' to
 * its length, or to 0 (nothing appended) when it would not save an eighth. REEL_OK, or
 * REEL_ENOMEM (nothing appended; 'out' may be marked failed). */
int store__zstd_plain(const uint8_t *src, size_t len, store_buf_t *out, size_t *n);
/* The chain hash of one event (docs/FORMAT.md); REEL_OK or REEL_ENOMEM. */
int store__chain(const uint8_t prev[STORE_HASH_LEN], uint64_t seq, uint64_t pos,
                  uint64_t time_ms, const uint8_t body_hash[STORE_HASH_LEN],
                  uint8_t out[STORE_HASH_LEN]);

/* ---- reads (read.c), shared with the session listings (list.c) ---- */

/* Records a failed check of session 'id' at 'seq' (position 'pos', 0 when unknown):
 * the text for this thread (store_read_corruption()), the counter and a log line.
 * Returns REEL_ECORRUPT. */
int store__read_corrupt(store_read_t *r, const char *id, size_t id_len, uint64_t seq,
                        uint64_t pos, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Ends a cursor walk: closes 'c'; 'stop' is a callback's (or decoder's) non-zero result,
 * returned as is; 'rc' is the last LMDB result, where MDB_NOTFOUND means the walk ran off
 * the end. */
int store__walk_end(store_read_t *r, MDB_cursor *c, int stop, int rc);
/* Opens the two cursors of a walk over session 'rec' in 'r': its sequence index as 'w'
 * (w->c, closed by store__walk_end) and the events tree as '*ec'. REEL_OK or a reel_err
 * (nothing left open). */
int store__walk_open(store_read_t *r, const store_session_t *rec, store__seqc_t *w,
                     MDB_cursor **ec);
/* The record of session 'id', checked (REEL_ESESSION_NOT_FOUND, REEL_ECORRUPT recorded). */
int store__session_get(store_read_t *r, const char *id, size_t id_len, store_session_t *out);
/* The session id of internal session number 'num' (an LMDB code). */
int store__session_name(store_read_t *r, const uint8_t num[8], MDB_val *name);
/* Decodes the sessions entry (k, v) of a listing into 'rec', checked: REEL_ECORRUPT. */
int store__list_decode(store_read_t *r, const MDB_val *k, const MDB_val *v,
                       store_session_t *rec);

/* ---- the envelope cache (cache.c; rules at its top) ---- */

/* One cached envelope: what a read needs to serve the event without its value. */
typedef struct store__cent {
    uint64_t position, num, seq, time_ms;
    uint8_t hash[STORE_HASH_LEN]; /* its chain hash, recomputed before it was kept */
    size_t stored_len;
    int redacted;
    uint64_t stamp;               /* the cache's tick when it last moved to the LRU head */
    struct store__cent *hnext, *prev, *next; /* bucket chain; LRU list or limbo (under
                                                the lock) */
    size_t len;
    uint8_t env[];
} store__cent_t;

/* Makes the cache at open (store_options_t.render, cache_bytes) and reads what it must know
 * of the store (its last transaction id and redaction count). REEL_OK (no memory: no
 * cache, still REEL_OK) or a reel_err. */
int store__cache_open(store_t *s, const store_options_t *opt);
void store__cache_free(store_t *s);
/* 1 when read 'r' may use the cache (checks, once per read, that no other process
 * redacted since the cache last looked: else empties it). */
int store__cache_usable(store_read_t *r);
/* Looks up 'n' positions under one lock: ents[i] is the entry or NULL. The entries stay
 * valid until store__cache_unpin(r, <the result>) (or store_read_end()). */
int store__cache_get(store_read_t *r, const uint64_t *pos, size_t n, store__cent_t **ents);
void store__cache_unpin(store_read_t *r, int g);
/* An entry for the envelope 'env' of checked view 'ev' (session number 'num', read in
 * 'r'): kept in the cache (and '*g' a pinned generation) unless it is too large or its
 * snapshot is older than a redaction ('*g' -1: the caller's). Either way the caller ends
 * with store__cache_done(r, e, *g). NULL: out of memory. */
store__cent_t *store__cache_put(store_read_t *r, const store_event_view_t *ev, uint64_t num,
                                const uint8_t *env, size_t len, int *g);
void store__cache_done(store_read_t *r, store__cent_t *e, int g);
/* The committer, right before committing write transaction 'txn_id' with the batches of
 * 'list': drops the envelopes its redactions rewrite (the meta count read in 'txn'); and
 * after: 'ok' when it committed. */
void store__cache_precommit(store_t *s, MDB_txn *txn, uint64_t txn_id, store_batch_t *list);
void store__cache_committed(store_t *s, uint64_t txn_id, int ok);

/* ---- read.c's walk, shared with the cached walk (cread.c) ---- */

/* What a walk knows about the value it is about to serve. */
struct store__expect {
    const char *id; /* session id */
    size_t id_len;
    uint64_t num;   /* its session number */
    uint64_t seq;   /* the sequence the index gave for this position */
    uint8_t chain[STORE_HASH_LEN]; /* the previous event's chain hash */
};
/* Decodes the value 'v' at position 'pos', checks it against 'x' and hands it to 'cb'
 * (with its envelope when the read asks for them); x->chain becomes its chain hash. */
int store__emit(store_read_t *r, struct store__expect *x, uint64_t pos, const MDB_val *v,
                store_event_cb cb, void *arg);
/* Hands cached entry 'e' (its num and seq are x's) to 'cb'; 'prev' is the chain hash
 * before it, NULL when the walk does not know it. x->chain becomes its hash. */
int store__emit_cached(store_read_t *r, struct store__expect *x, const store__cent_t *e,
                       const uint8_t *prev, store_event_cb cb, void *arg);
/* The value at 'pos' through the walk's events cursor (read.c's event_at). */
int store__event_at(MDB_cursor *ec, uint64_t pos, uint64_t *at, MDB_val *v);
/* The chain hash before sequence 'seq' of session 'num' (0, or 1 when it cannot be found). */
int store__prev_chain(store_read_t *r, uint64_t num, uint64_t seq, uint8_t out[STORE_HASH_LEN]);
#define STORE__WALK_HELD 32 /* positions the cached walk looks up under one lock */
/* events_walk() with the envelope cache (cread.c): same answers, same checks on every
 * event it reads from the map; cached events are served from their entries. */
int store__events_walk_cached(store_read_t *r, const store_session_t *rec, uint64_t after,
                              size_t limit, store_event_cb cb, void *arg, int *more);

/* ---- dictionaries (zdict.c) ---- */

/* Decompresses the dictionary frame 'b' (stored without its magic number) into 'scratch'
 * with the per-thread context 'd'; '*out' points into 'scratch'. The dictionary is looked
 * up by the id in the frame header, loaded from 'txn' on first use. REEL_ECORRUPT when the
 * frame or its dictionary is damaged or missing, REEL_ENOMEM. */
int store__zdict_decode(store_t *s, MDB_txn *txn, ZSTD_DCtx *d, const uint8_t *b, size_t blen,
                        store_buf_t *scratch, const uint8_t **out, size_t *out_len);
/* store_open(), before the committer starts: loads the newest dictionary, so that the
 * first batches are compressed with it too. REEL_OK (a failure is left to the committer's
 * first group) or REEL_ENOMEM. */
int store__zdict_open(store_t *s);
/* Committer: at the start of a group in 'txn': looks up the newest dictionary once, and
 * writes the one a trainer posted (if any) as the next id. 0 or an LMDB/errno code. */
int store__zdict_group(store__wg_t *w);
/* store_submit(), on the submitting thread: compresses the bodies of 'b''s events with the
 * store's current dictionary into b->zbodies_/zoff_ where that makes them smaller (bodies
 * with flags 0 or 0x01; the others are kept); out of memory there, the bodies go as
 * given. No dictionary: raw bodies of STORE_COMPRESS_MIN bytes or more into plain frames
 * (b->zplain_), as store_body_encode() would have; out of memory there, REEL_ENOMEM and
 * nothing made, as store_body_encode() would have failed. */
int store__zdict_batch(store_t *s, store_batch_t *b);
/* Frees what store__zdict_batch() made ('b' is about to complete). */
void store__zdict_batch_free(store_batch_t *b);
/* Trains a dictionary of at most 'cap' bytes into 'dict' from 'n' samples (their 'sizes',
 * one after the other in 'samples') with ZDICT_trainFromBuffer() in a child process, the
 * running executable started anew (ztrain.c says why and how); '*len' its size. REEL_ENOT_FOUND (nothing useful in the samples),
 * REEL_ENOMEM (also when the child died), REEL_EINTERNAL (killed after its time), REEL_EIO;
 * store_last_error() says what happened. */
int store__ztrain(const void *samples, const size_t *sizes, unsigned n, void *dict, size_t cap,
                  size_t *len);
/* The per-thread zstd contexts of record.c (NULL when out of memory). */
ZSTD_CCtx *store__cctx(void);
ZSTD_DCtx *store__dctx(void);
/* Committer, after a group: 'ok' 1 when it committed at last position 'last_pos'.
 * Installs the dictionary the group wrote, completes store_zdict_train() callers, and
 * starts a trainer when it is time. */
void store__zdict_after(store_t *s, int ok, uint64_t last_pos);
/* store_close(): waits for a trainer, frees the dictionaries. */
void store__zdict_release(store_t *s);

#endif
