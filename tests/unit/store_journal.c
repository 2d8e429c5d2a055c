/* store_journal.c -- the write-ahead journal (store/jfile.c, store/jrecover.c; docs/FORMAT.md
 * section 17): a journaling child process appends and dies without closing (as kill -9
 * leaves it: every write in the page cache, data.mdb past its last checkpoint); the next
 * open recovers from the checkpoint's meta page and the journal's complete group records.
 * A torn or damaged last record ends the replay there. Another process that would write
 * is refused while a journaling one holds the store; readers are not. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/jfile.h"
#include "tests/unit/testutil.h"

#define N_EVENTS 40

static char dir[TU_PATH_MAX];

static void setup(void)
{
    tu_watchdog(120);
    tu_tmpdir(dir);
    /* no checkpoint after the first: every group of the test stays in the journal */
    setenv("REEL_JOURNAL_CHECKPOINT_MS", "600000", 1);
}

static void teardown(void)
{
    unsetenv("REEL_JOURNAL_CHECKPOINT_MS");
    tu_rmrf(dir);
}

TestSuite(store_journal, .init = setup, .fini = teardown);

/* Appends event 'i' of session "j" (one batch: one group, the appends are sequential). */
static int append_one(store_t *s, int i)
{
    char text[128];
    snprintf(text, sizeof text, "{\"event_id\":\"e%d\",\"type\":\"t\",\"data\":{\"i\":%d}}\n", i, i);
    tu_result_t res;
    return tu_append(s, "j", text, INGEST_NDJSON, -1, &res, NULL);
}

/* A child journals N_EVENTS appends, then writes one byte to 'fd' and, with 'wait_fd'
 * (the read end of a pipe whose write end is 'wait_w'), waits for the parent to close its
 * end; then exits without closing the store (a crash). With 'wait_first' it writes 'o'
 * and waits right after its open (its first checkpoint), before the appends. */
static pid_t journaling_child(int fd, int wait_fd, int wait_w, int wait_first)
{
    pid_t pid = fork();
    if (pid)
        return pid;
    if (wait_w >= 0)
        close(wait_w);
    store_options_t opt = {.journal = 1};
    store_t *s = NULL;
    int rc = store_open(dir, &opt, &s);
    char c = rc ? 'x' : 'o';
    if (wait_first) {
        (void)!write(fd, &c, 1);
        (void)!read(wait_fd, &c, 1);
    }
    for (int i = 1; !rc && i <= N_EVENTS; i++)
        rc = append_one(s, i);
    c = rc ? 'x' : 'k';
    (void)!write(fd, &c, 1);
    if (wait_fd >= 0 && !wait_first)
        (void)!read(wait_fd, &c, 1);
    _exit(rc ? 3 : 0);
}

/* Starts a journaling child that waits on pipe 'hold' (after its open with 'wait_first',
 * else after its appends) and reads its first report from pipe 'p', which must be 'want'. */
static pid_t held_child(int p[2], int hold[2], int wait_first, char want)
{
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(pipe(hold), 0);
    pid_t pid = journaling_child(p[1], hold[0], hold[1], wait_first);
    char c = 0;
    cr_assert_eq(read(p[0], &c, 1), 1);
    cr_assert_eq(c, want, "the child could not %s: %s", wait_first ? "open the store" :
                 "journal its appends", store_last_error());
    return pid;
}

/* Runs a journaling child to its crash; the journal files are left. */
static void crash_child(void)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = journaling_child(p[1], -1, -1, 0);
    char c = 0;
    cr_assert_eq(read(p[0], &c, 1), 1);
    cr_assert_eq(c, 'k', "the child could not journal its appends: %s", store_last_error());
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    close(p[0]);
    close(p[1]);
}

/* The newest journal file's path and size. */
static off_t newest_file(char *path, size_t cap)
{
    uint64_t *nos;
    size_t n;
    cr_assert_eq(store__jr_list(dir, &nos, &n), 0);
    cr_assert(n >= 1, "no journal file after a crash");
    store__jr_path(dir, nos[n - 1], path, cap);
    free(nos);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return st.st_size;
}

/* The offset of the last record of journal file 'path' (after its checkpoint). */
static off_t last_record(const char *path, off_t size)
{
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    uint8_t *b = malloc((size_t)size);
    cr_assert_eq(read(fd, b, (size_t)size), size);
    close(fd);
    off_t off = 8, last = 0;
    while (off + JR_HEAD <= size) {
        uint32_t len = (uint32_t)b[off] << 24 | b[off + 1] << 16 | b[off + 2] << 8 | b[off + 3];
        cr_assert_eq(store__crc32c(0, b + off + 8, len),
                     (uint32_t)b[off + 4] << 24 | b[off + 5] << 16 | b[off + 6] << 8 | b[off + 7],
                     "a record's CRC-32C does not hold");
        last = off;
        off += 8 + len;
    }
    cr_assert_eq(off, size, "records do not end where the file ends");
    cr_assert_eq(b[last + 8], JR_GROUP, "the last record is not a group");
    free(b);
    return last;
}

/* Opens the store (plain: it recovers) and checks the session has 'want' events, whole. */
static void expect_events(uint64_t want)
{
    store_t *s = tu_open(dir, 0, 0);
    store_session_t rec;
    TU_OK(tu_session(s, "j", &rec));
    cr_assert_eq(rec.last_sequence, want, "last_sequence %llu, want %llu",
                 (unsigned long long)rec.last_sequence, (unsigned long long)want);
    tu_events_t ev = {0};
    tu_read_session(s, "j", &ev);
    cr_assert_eq(ev.n, want);
    tu_events_free(&ev);
    store_verify_report_t rep;
    TU_OK(store_verify(s, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "verify found damage after recovery");
    uint8_t fr[16];
    store_close(s);
    cr_assert_eq(tu_format_record(dir, fr) == 8 ? fr[7] & STORE__PART_JOURNAL : 0, 0,
                 "part 0x2 is left after recovery");
    uint64_t *nos;
    size_t n;
    cr_assert_eq(store__jr_list(dir, &nos, &n), 0);
    cr_assert_eq(n, 0, "journal files are left after recovery");
    free(nos);
}

Test(store_journal, a_crash_keeps_every_journaled_group)
{
    crash_child();
    uint8_t fr[16];
    cr_assert_eq(tu_format_record(dir, fr), 8);
    cr_assert(fr[7] & STORE__PART_JOURNAL, "part 0x2 is not set while journaling");
    expect_events(N_EVENTS);
}

Test(store_journal, a_torn_last_record_ends_the_replay)
{
    crash_child();
    char path[512];
    off_t size = newest_file(path, sizeof path);
    off_t last = last_record(path, size);
    /* cut inside the last group's log: the group before it is the last one replayed */
    cr_assert_eq(truncate(path, size - (size - last) / 2), 0);
    expect_events(N_EVENTS - 1);
}

Test(store_journal, a_damaged_last_record_fails_its_crc_and_ends_the_replay)
{
    crash_child();
    char path[512];
    off_t size = newest_file(path, sizeof path);
    off_t last = last_record(path, size);
    int fd = open(path, O_RDWR);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, size - 1), 1);
    b ^= 0x5a;
    cr_assert_eq(pwrite(fd, &b, 1, size - 1), 1);
    close(fd);
    (void)last;
    expect_events(N_EVENTS - 1);
}

/* data.mdb as it was at its first checkpoint, and its size. */
static uint8_t *read_data_file(size_t *size)
{
    char path[TU_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    uint8_t *b = malloc((size_t)st.st_size);
    cr_assert_eq(read(fd, b, (size_t)st.st_size), st.st_size);
    close(fd);
    *size = (size_t)st.st_size;
    return b;
}

/* A power loss can keep the meta pages of commits after the checkpoint while losing the
 * pages they point to (no commit after the checkpoint is flushed). The recovery must
 * start from the checkpoint's meta page (kept in the journal), not from the one data.mdb
 * holds: here every page but the two meta pages is put back as it was at the checkpoint
 * (pages past the file's size then are zeros) and the tree the file's meta names is gone. */
Test(store_journal, a_meta_page_ahead_of_its_pages_is_replaced_by_the_checkpoint)
{
    int p[2], hold[2];
    pid_t pid = held_child(p, hold, 1, 'o');
    char c = 0;
    size_t then_size;
    uint8_t *then = read_data_file(&then_size);
    close(hold[1]); /* the child appends now, and crashes */
    cr_assert_eq(read(p[0], &c, 1), 1);
    cr_assert_eq(c, 'k', "the child could not journal its appends");
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    close(p[0]), close(p[1]), close(hold[0]);
    size_t now_size;
    uint8_t *now = read_data_file(&now_size);
    size_t psize = (size_t)sysconf(_SC_PAGESIZE), changed = 0;
    for (size_t off = 2 * psize; off + psize <= now_size; off += psize) {
        uint8_t *pg = now + off;
        if (off + psize <= then_size ? !memcmp(pg, then + off, psize) : 0)
            continue;
        changed++;
        if (off + psize <= then_size)
            memcpy(pg, then + off, psize);
        else
            memset(pg, 0, psize);
    }
    cr_assert(changed > 0, "no page changed after the checkpoint");
    char path[TU_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, O_WRONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, now, now_size, 0), (ssize_t)now_size);
    close(fd);
    free(then);
    free(now);
    expect_events(N_EVENTS);
}

Test(store_journal, a_recovery_cut_short_runs_again_from_a_whole_checkpoint)
{
    crash_child();
    pid_t pid = fork();
    if (pid == 0) { /* recovers, and exits right after the replay (REEL_JOURNAL_FAULT) */
        setenv("REEL_JOURNAL_FAULT", "cut-recovery", 1);
        store_t *s = NULL;
        store_options_t opt = {0};
        store_open(dir, &opt, &s);
        _exit(3); /* not reached when the fault works */
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 9, "the recovery was not cut short");
    expect_events(N_EVENTS);
}

Test(store_journal, a_journaling_process_holds_off_other_writers_not_readers)
{
    int p[2], hold[2];
    pid_t pid = held_child(p, hold, 0, 'k');
    store_t *s = NULL;
    store_options_t plain = {0}, journal = {.journal = 1}, ro = {.read_only = 1};
    char pidtext[32];
    snprintf(pidtext, sizeof pidtext, "process %ld", (long)pid);
    cr_assert_eq(store_open(dir, &plain, &s), REEL_EUNAVAILABLE);
    cr_assert(strstr(store_last_error(), pidtext) && strstr(store_last_error(), "journal.lock"),
              "%s", store_last_error());
    cr_assert_eq(store_open(dir, &journal, &s), REEL_EUNAVAILABLE);
    cr_assert(strstr(store_last_error(), pidtext), "%s", store_last_error());
    TU_OK(store_open(dir, &ro, &s)); /* a reader sees what the journaling process wrote */
    store_session_t rec;
    TU_OK(tu_session(s, "j", &rec));
    cr_assert_eq(rec.last_sequence, N_EVENTS);
    store_close(s);
    close(hold[1]); /* the child crashes now */
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    close(p[0]), close(p[1]), close(hold[0]);
    expect_events(N_EVENTS);
}

Test(store_journal, a_clean_close_leaves_no_journal_and_no_part)
{
    store_options_t opt = {.journal = 1};
    store_t *s = NULL;
    TU_OK(store_open(dir, &opt, &s));
    for (int i = 1; i <= 5; i++)
        TU_OK(append_one(s, i));
    store_close(s);
    expect_events(5);
}

/* Appends 'n' events with UUID event ids (kept in 'event_uuids' with part 0x4) to 'sess'. */
static int append_uuids(store_t *s, const char *sess, int n, tu_result_t *res)
{
    store_buf_t text = STORE_BUF_INIT;
    char line[160];
    for (int i = 1; i <= n; i++) {
        int len = snprintf(line, sizeof line,
                           "{\"event_id\":\"0190c0de-0000-7000-8000-%012d\",\"type\":\"t\","
                           "\"data\":{\"i\":%d}}\n", i, i);
        store_buf_put(&text, line, (size_t)len);
    }
    store_buf_putc(&text, 0);
    tu_result_t own;
    int rc = tu_append(s, sess, (const char *)text.data, INGEST_NDJSON, -1, res ? res : &own,
                       NULL);
    store_buf_release(&text);
    return rc;
}

/* The cursor deletes of a trim in the per-session trees (FORMAT.md 21.1) are replayed as
 * the one entry each removed: a delete by key alone would drop the kept ids too, and the
 * same appends would then not be found duplicates. */
Test(store_journal, a_replayed_trim_and_purge_remove_only_what_they_removed)
{
    pid_t pid = fork();
    if (pid == 0) {
        store_options_t opt = {.journal = 1};
        store_t *s = NULL;
        int rc = store_open(dir, &opt, &s);
        store_batch_t b;
        if (!rc && !(rc = append_uuids(s, "u", 20, NULL)) && !(rc = append_uuids(s, "p", 5, NULL))) {
            store_batch_init(&b, STORE_OP_TRIM, "u", 1);
            b.trim_before = 11;
            if (!(rc = store_append(s, &b))) {
                store_batch_init(&b, STORE_OP_PURGE, "p", 1);
                rc = store_append(s, &b);
            }
        }
        _exit(rc ? 3 : 0); /* without closing: the journal is left to recover */
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the journaling child failed");
    store_t *s = tu_open(dir, 0, 0);
    store_verify_report_t rep;
    TU_OK(store_verify(s, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "verify found damage after recovery");
    store_session_t rec;
    TU_OK(tu_session(s, "u", &rec));
    cr_assert_eq(rec.first_sequence, 11);
    cr_assert_eq(rec.last_sequence, 20);
    TU_ERR(tu_session(s, "p", &rec), REEL_ESESSION_NOT_FOUND);
    tu_result_t res;
    TU_OK(append_uuids(s, "u", 20, &res));
    cr_assert_eq(res.duplicates, 10, "the kept ten are duplicates (got %zu)", (size_t)res.duplicates);
    TU_OK(store_verify(s, NULL, 0, &rep, NULL, NULL));
    cr_assert(rep.ok, "verify found damage after the appends");
    store_close(s);
}
