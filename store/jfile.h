/* jfile.h -- private to the journal (jfile.c, jrecover.c): its files and its state.
 * The format is docs/FORMAT.md section 17; the threads are in store_int.h. */
#ifndef REEL_STORE_JFILE_H
#define REEL_STORE_JFILE_H

#include <sys/uio.h>
#include <time.h>

#include "store/store_int.h"

#define JR_MAGIC "REELJNL1"      /* the first 8 bytes of every journal file */
#define JR_HEAD 17               /* record head: length u32 | crc u32 | type u8 | txnid u64 */
#define JR_GROUP 'G'
#define JR_CHECKPOINT 'K'
#define JR_NAME_LEN 24           /* "journal-" and 16 hex digits */
#define JR_META_TXNID 144        /* offset of mm_txnid in an LMDB 0.9 meta page */
#define JR_META_MAGIC 16         /* offset of mm_magic */
#define JR_LMDB_MAGIC 0xBEEFC0DEu
/* Groups the committer may have handed over that are not yet durable: one being flushed
 * and one waiting. The committer waits for room before it takes the next group, so the
 * batches that arrive during a flush go into one group (as with LMDB's own flush) instead
 * of many small commits that each rewrite the same leaf pages. */
#define JR_DEPTH 2

struct store__journal {
    char dir[4000];
    int lock_fd;          /* journal.lock (flock held), -1 */
    int journaling;       /* this process journals (LOCK_EX held for its life) */
    int dir_fd, fd;       /* the directory; the journal file groups go to */
    uint64_t file_no;     /* the number in that file's name */
    uint64_t off;         /* where the next record goes */
    size_t psize;         /* LMDB's page size */
    int data_fd;          /* data.mdb, for its meta pages */

    pthread_mutex_t mu;
    pthread_cond_t cv;    /* the journal thread: groups queued, a checkpoint synced, stop */
    pthread_cond_t ck_cv; /* the checkpoint thread and checkpoint waiters */
    pthread_cond_t room;  /* the committer: fewer than JR_DEPTH groups are not yet durable */
    int pending;          /* groups handed over and not yet completed */
    store__jgroup_t *head, *tail;
    int stop, ck_stop;
    int failed;           /* a journal write or flush failed: nothing more is acked */
    /* the checkpoint in flight: captured, being flushed, then written as a new file */
    int ck_busy, ck_captured, ck_synced, ck_rc;
    MDB_txn *ck_txn;      /* read transaction pinning snapshot ck_id */
    uint64_t ck_id;
    uint8_t *ck_meta;     /* its meta page (psize bytes) */
    MDB_txn *pin;         /* pins the snapshot of the last durable checkpoint */
    uint64_t ck_durable;  /* its txnid */
    uint64_t ck_count;    /* checkpoints made durable (for waiters) */
    pthread_t jthread, cthread;
    int threads;
    /* committer only */
    uint64_t groups_since, bytes_since;
    struct timespec ck_at;
    long ck_ms;           /* checkpoint interval (CK_MS, or REEL_JOURNAL_CHECKPOINT_MS) */
    uint64_t last_pos;
    uint32_t last_idx;
};

/* 1 when the environment variable REEL_JOURNAL_FAULT names 'what'. The one use:
 * "cut-recovery" makes the process exit right after a recovery's replay, before its
 * flush, as kill -9 there would (tests/unit/store_journal.c: a recovery cut short runs
 * again from a whole checkpoint). The journal's other negative controls are mutants
 * (tests/mutants journal-ack-before-flush, journal-no-meta-rewrite). */
int store__jr_fault(const char *what);
/* journal-done (17.4): 'set' 1 creates it, 0 removes it; then the directory is flushed.
 * 0 or an errno. */
int store__jr_done(const char *dir, int dir_fd, int set);
/* Removes every journal file, flushes the directory, then removes journal-done. */
int store__jr_remove(const char *dir, int dir_fd);
/* The name of journal file 'no' in 'dir' into 'out'. */
void store__jr_path(const char *dir, uint64_t no, char *out, size_t cap);
/* The numbers of the journal files in 'dir', ascending, into '*nos' (malloc'd; '*n');
 * 0 or an errno. */
int store__jr_list(const char *dir, uint64_t **nos, size_t *n);
/* Writes 'len' bytes at 'off' of 'fd' whole (retrying short writes). 0 or an errno. */
int store__jr_pwrite(int fd, const void *p, size_t len, uint64_t off);
/* Fills the head of a record of 'type' for 'txnid' whose payload is 'iov' ('n' parts). */
void store__jr_head(uint8_t head[JR_HEAD], int type, uint64_t txnid, const struct iovec *iov,
                    int n);

#endif
