/* janitor.c -- the thread that applies retention policies (contract in retain.h).
 *
 * A pass reads the session records in pages (one short read each), decides per record,
 * then acts on the page's sessions with no read open: archive, then remove through the
 * committer in small batches. The decision is re-checked where it matters by the store:
 * a purge carries the last sequence the archive covered (expected_sequence), so a
 * session that got new events meanwhile is left for the next pass; a trim only removes
 * events below a sequence, which appends never move.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "retain/retain.h"

#define PAGE 256 /* records per read */

struct retain {
    store_t *s;
    retain_config_t cfg;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping; /* under mu */
    atomic_uint_fast64_t runs, trimmed, expired, archived, archive_failures, last_run_ms;
};

enum { ACT_EXPIRE = 1, ACT_TRIM = 2 };

/* One session to act on, copied out of the read. */
struct item {
    char id[STORE_SESSION_ID_MAX + 1];
    size_t id_len;
    int act;
    int archive;          /* 1: archive first */
    int tombstone;        /* a deleted session: nothing to trim, purge only */
    uint64_t first, last; /* kept range when decided */
    uint64_t trim_before; /* ACT_TRIM */
};

struct page {
    retain_t *j;
    uint64_t now;
    struct item *items;
    size_t n;
    char cursor[STORE_SESSION_ID_MAX + 1];
    size_t cursor_len;
    size_t seen;
};

static void say(retain_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(retain_t *j, const char *fmt, ...)
{
    char line[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (j->cfg.log)
        j->cfg.log(j->cfg.log_arg, line);
    else
        fprintf(stderr, "reel: %s\n", line);
}

static int has_target(const retain_t *j)
{
    return j->cfg.archive_dir || j->cfg.archive_command;
}

/* What the policy asks of 'rec' at 'now': 0, ACT_EXPIRE or ACT_TRIM. */
static int decide(const store_retention_t *p, const store_session_t *rec, uint64_t now)
{
    uint64_t idle = now > (uint64_t)rec->updated_ms ? now - (uint64_t)rec->updated_ms : 0;
    uint64_t since_end = rec->ended_ms && now > (uint64_t)rec->ended_ms
                             ? now - (uint64_t)rec->ended_ms : 0;
    if (p->max_age_ms && idle >= p->max_age_ms)
        return ACT_EXPIRE; /* a tombstone too: it is purged for good */
    if (rec->status == STORE_DELETED)
        return 0;
    if (p->max_age_ended_ms && rec->status == STORE_ENDED && since_end >= p->max_age_ended_ms)
        return ACT_EXPIRE;
    if (p->max_events && rec->event_count > p->max_events)
        return ACT_TRIM;
    return 0;
}

static int take(void *arg, const store_session_t *rec)
{
    struct page *pg = arg;
    memcpy(pg->cursor, rec->id, rec->id_len);
    pg->cursor[rec->id_len] = 0;
    pg->cursor_len = rec->id_len;
    pg->seen++;
    const store_retention_t *p = retain_policy_of(rec, &pg->j->cfg.dflt);
    int act = p->set ? decide(p, rec, pg->now) : 0;
    if (!act)
        return 0;
    struct item *it = &pg->items[pg->n++];
    memcpy(it->id, rec->id, rec->id_len);
    it->id_len = rec->id_len;
    it->act = act;
    it->first = rec->first_sequence;
    it->last = rec->last_sequence;
    it->trim_before = act == ACT_TRIM ? rec->last_sequence - p->max_events + 1 : 0;
    it->tombstone = rec->status == STORE_DELETED;
    it->archive = has_target(pg->j) && !p->no_archive && rec->status != STORE_DELETED &&
                  rec->event_count > 0;
    return 0;
}

static int stopping(retain_t *j)
{
    pthread_mutex_lock(&j->mu);
    int st = j->stopping;
    pthread_mutex_unlock(&j->mu);
    return st;
}

/* Archives what 'it' is about to remove; 0 when done (or nothing to archive). */
static int archive(retain_t *j, const struct item *it)
{
    if (!it->archive)
        return 0;
    char why[512];
    uint64_t until = it->act == ACT_TRIM ? it->trim_before - 1 : it->last;
    int rc = retain_archive(j->s, it->id, it->id_len, it->first, until,
                            it->act == ACT_TRIM ? "trim" : "expire", j->cfg.archive_dir,
                            j->cfg.archive_command, why, sizeof why);
    if (rc) {
        atomic_fetch_add(&j->archive_failures, 1);
        say(j, "retention: archiving session '%.*s' failed, nothing removed: %s",
            (int)(it->id_len > 200 ? 200 : it->id_len), it->id, why);
        return -1;
    }
    atomic_fetch_add(&j->archived, 1);
    return 0;
}

/* Sleeps as long as the last batch took (at most 50 ms): the janitor takes at most about
 * half of the committer's time, however large its backlog, so appends queued behind a
 * trim batch are rare (docs/BENCHMARKS.md, "Retention"). */
static void pace(double started)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double took = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - started;
    if (took > 0.05)
        took = 0.05;
    struct timespec d = {0, (long)(took * 1e9)};
    nanosleep(&d, NULL);
}

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Trims 'it' up to 'before' in STORE_TRIM_MAX batches; 0 when it got there. */
static int trim_to(retain_t *j, const struct item *it, uint64_t before)
{
    store_batch_t b;
    uint64_t first = it->first;
    while (first < before && !stopping(j)) {
        store_batch_init(&b, STORE_OP_TRIM, it->id, it->id_len);
        b.trim_before = before;
        double t0 = mono();
        int rc = store_append(j->s, &b);
        if (rc) {
            if (rc != REEL_ESESSION_NOT_FOUND && rc != REEL_EGONE)
                say(j, "retention: trimming session '%.*s' failed: %s",
                    (int)(it->id_len > 200 ? 200 : it->id_len), it->id, reel_strerror(rc));
            return -1;
        }
        if (b.first_sequence <= first)
            return first < before ? -1 : 0; /* nothing moved: another trim got there */
        if (it->act == ACT_TRIM)
            atomic_fetch_add(&j->trimmed, b.first_sequence - first);
        first = b.first_sequence;
        pace(t0);
    }
    return first < before ? -1 : 0;
}

static void trim(retain_t *j, const struct item *it)
{
    trim_to(j, it, it->trim_before);
}

/* Trims every event in bounded batches first (a purge of a long session in one
 * transaction would hold up the appends sharing it), then purges the emptied session. */
static void expire(retain_t *j, const struct item *it)
{
    if (!it->tombstone && it->last >= it->first && trim_to(j, it, it->last + 1))
        return;
    store_batch_t b;
    store_batch_init(&b, STORE_OP_PURGE, it->id, it->id_len);
    b.expected_sequence = (int64_t)it->last; /* exactly what was archived */
    int rc = store_append(j->s, &b);
    if (rc == REEL_OK)
        atomic_fetch_add(&j->expired, 1);
    else if (rc != REEL_ECONFLICT && rc != REEL_ESESSION_NOT_FOUND)
        say(j, "retention: removing session '%.*s' failed: %s",
            (int)(it->id_len > 200 ? 200 : it->id_len), it->id, reel_strerror(rc));
}

int retain_run_once(retain_t *j)
{
    uint64_t t0 = store_wall_ms();
    struct page pg = {.j = j, .now = t0};
    if (!(pg.items = malloc(PAGE * sizeof *pg.items)))
        return REEL_ENOMEM;
    int rc = REEL_OK, more = 1;
    while (more && !stopping(j)) {
        store_read_t r;
        pg.n = pg.seen = 0;
        if ((rc = store_read_begin(j->s, &r)))
            break;
        rc = store_sessions_list(&r, pg.cursor, pg.cursor_len, PAGE, take, &pg, &more);
        store_read_end(&r);
        if (rc)
            break;
        for (size_t i = 0; i < pg.n && !stopping(j); i++) {
            const struct item *it = &pg.items[i];
            if (archive(j, it))
                continue;
            if (it->act == ACT_TRIM)
                trim(j, it);
            else
                expire(j, it);
        }
        if (!pg.seen)
            break;
    }
    free(pg.items);
    atomic_fetch_add(&j->runs, 1);
    atomic_store(&j->last_run_ms, store_wall_ms() - t0);
    return rc;
}

static void *main_loop(void *arg)
{
    retain_t *j = arg;
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (j->cfg.interval_ms % 1000) * 1000000u;
        until.tv_sec += (time_t)(j->cfg.interval_ms / 1000 + ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&j->mu);
        while (!j->stopping && pthread_cond_timedwait(&j->cv, &j->mu, &until) == 0)
            ;
        int st = j->stopping;
        pthread_mutex_unlock(&j->mu);
        if (st)
            return NULL;
        int rc = retain_run_once(j);
        if (rc)
            say(j, "retention: a janitor pass stopped early: %s", reel_strerror(rc));
    }
}

int retain_new(store_t *s, const retain_config_t *cfg, retain_t **out)
{
    retain_t *j = calloc(1, sizeof *j);
    if (!j)
        return REEL_ENOMEM;
    j->s = s;
    j->cfg = *cfg;
    if (!j->cfg.interval_ms)
        j->cfg.interval_ms = 60000;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    *out = j;
    return REEL_OK;
}

int retain_begin(retain_t *j)
{
    if (pthread_create(&j->thread, NULL, main_loop, j))
        return REEL_ENOMEM;
    j->started = 1;
    return REEL_OK;
}

int retain_start(store_t *s, const retain_config_t *cfg, retain_t **out)
{
    int rc = retain_new(s, cfg, out);
    if (rc)
        return rc;
    if ((rc = retain_begin(*out))) {
        retain_free(*out);
        *out = NULL;
    }
    return rc;
}

void retain_stop(retain_t *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->mu);
    j->stopping = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (j->started)
        pthread_join(j->thread, NULL);
    j->started = 0;
}

void retain_free(retain_t *j)
{
    if (!j)
        return;
    retain_stop(j);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

void retain_get_stats(retain_t *j, retain_stats_t *out)
{
    out->runs = atomic_load(&j->runs);
    out->events_trimmed = atomic_load(&j->trimmed);
    out->sessions_expired = atomic_load(&j->expired);
    out->archived = atomic_load(&j->archived);
    out->archive_failures = atomic_load(&j->archive_failures);
    out->last_run_ms = atomic_load(&j->last_run_ms);
}

void retain_metrics(void *arg, store_buf_t *o)
{
    retain_stats_t st;
    retain_get_stats(arg, &st);
    static const struct { const char *name, *help; } m[] = {
        {"reel_retention_runs_total", "Janitor passes completed."},
        {"reel_retention_events_trimmed_total", "Events removed by max_events."},
        {"reel_retention_sessions_expired_total",
         "Sessions removed for good by max_age or max_age_after_end."},
        {"reel_retention_archived_total", "Archives written before a removal."},
        {"reel_retention_archive_failures_total",
         "Archives that failed (nothing was removed for them)."},
    };
    uint64_t v[] = {st.runs, st.events_trimmed, st.sessions_expired, st.archived,
                    st.archive_failures};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        store_buf_printf(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", m[i].name, m[i].help,
                         m[i].name, m[i].name, (unsigned long long)v[i]);
    store_buf_printf(o, "# HELP reel_retention_last_run_seconds Duration of the last pass.\n"
                        "# TYPE reel_retention_last_run_seconds gauge\n"
                        "reel_retention_last_run_seconds %.3f\n", (double)st.last_run_ms / 1e3);
}
