/* retain.h -- retention: per-session policies, a store default, and the janitor that
 * applies them in `reel serve` (docs/RETENTION.md; the store side is docs/FORMAT.md
 * section 10).
 *
 * A policy (store_retention_t) says when a session expires (max_age after its last
 * activity, max_age_after_end after it ended) and how many of its newest events it keeps
 * (max_events). The janitor is one thread that walks the session records now and then
 * (short reads of 256 records) and, for each session a policy touches:
 *   1. archives what is about to go (the export of the session, or of the events to be
 *      trimmed: zstd NDJSON, replay's export) into --archive-dir or through
 *      --archive-command, when one is configured and the policy does not opt out;
 *   2. only when that succeeded, removes it through the committer: STORE_OP_TRIM batches
 *      of at most STORE_TRIM_MAX events, or one STORE_OP_PURGE that applies only if the
 *      session did not grow since the archive was taken.
 * So nothing is dropped silently: a failed archive deletes nothing, is logged and counted.
 * Each removal is a small batch in the ordinary queue: appends never wait for a janitor
 * pass, only (at most) for one small trim sharing their transaction.
 *
 * Rules:
 *  - Threads: retain_start() starts the thread; retain_stop() stops it and retain_free()
 *    frees it. The counters and retain_metrics() may be read from any thread until
 *    retain_free(): a server stops the janitor before itself and frees it after (its
 *    /metrics reads them).
 *  - The janitor never holds a read across an archive or a batch wait.
 *  - Errors: REEL_OK or a reel_err; parse errors name the bad value in 'why'.
 */
#ifndef REEL_RETAIN_H
#define REEL_RETAIN_H

#include <stddef.h>
#include <stdint.h>

#include "store/buf.h"
#include "store/store.h"

/* Parses a duration: digits with an optional unit s, m, h, d or w (no unit: seconds),
 * e.g. "30d", "12h", "90"; into milliseconds. REEL_EINVALID_PARAMETER when malformed, 0,
 * or over 100 years. */
int retain_duration_parse(const char *s, size_t len, uint64_t *ms);

/* Parses a policy "max_age=30d,max_age_after_end=7d,max_events=N,archive=on|off" (any
 * subset, "none" for an empty one) into 'out' (set = 1). REEL_EINVALID_PARAMETER with the
 * reason in 'why'. */
int retain_policy_parse(const char *spec, store_retention_t *out, char *why, size_t cap);

/* The policy that applies to 'rec': its own, else 'dflt'. */
const store_retention_t *retain_policy_of(const store_session_t *rec,
                                          const store_retention_t *dflt);

typedef struct retain_config {
    store_retention_t dflt;      /* the store default ('set' 0: none) */
    const char *archive_dir;     /* NULL: none; files <id>.<first>-<last>.<ms>.ndjson.zst */
    const char *archive_command; /* NULL: none; `sh -c` with the export on standard input */
    uint64_t interval_ms;        /* between passes */
    /* log lines (warnings: archive failures); NULL = standard error */
    void (*log)(void *arg, const char *line);
    void *log_arg;
} retain_config_t;

typedef struct retain_stats {
    uint64_t runs;              /* janitor passes completed */
    uint64_t events_trimmed;    /* events removed by max_events */
    uint64_t sessions_expired;  /* sessions removed by max_age / max_age_after_end */
    uint64_t archived;          /* archives written (or commands that succeeded) */
    uint64_t archive_failures;  /* archives that failed: nothing was removed */
    uint64_t last_run_ms;       /* duration of the last pass */
} retain_stats_t;

typedef struct retain retain_t;

/* Starts the janitor on store 's' (borrowed; must outlive it) with a copy of 'cfg' (its
 * strings borrowed). REEL_OK and '*out', or REEL_ENOMEM. */
int retain_start(store_t *s, const retain_config_t *cfg, retain_t **out);
/* Stops the thread (waits for the pass under way); the counters stay readable. NULL and
 * a second call are allowed. */
void retain_stop(retain_t *j);
/* retain_stop(), then frees 'j'. NULL is allowed. */
void retain_free(retain_t *j);
/* Runs one pass now on the calling thread (tests and benchmarks; 'j' from retain_new). */
int retain_run_once(retain_t *j);
/* A janitor without a thread (retain_run_once(), or retain_begin() later, once what its
 * log callback needs exists); free with retain_free(). */
int retain_new(store_t *s, const retain_config_t *cfg, retain_t **out);
/* Starts the thread of a janitor made by retain_new(). REEL_OK or REEL_ENOMEM. */
int retain_begin(retain_t *j);
void retain_get_stats(retain_t *j, retain_stats_t *out);
/* Appends the janitor's Prometheus metrics (reel_retention_*) to 'out' ('arg' is the
 * retain_t): the shape of api_server_set_metrics_hook()'s hook. */
void retain_metrics(void *arg, store_buf_t *out);

/* Archives the events of session 'id' up to sequence 'until' (0 = all) as a zstd NDJSON
 * export: into 'dir' (a new file, synced, then renamed into place) or through 'command'
 * (standard input; environment REEL_SESSION_ID, REEL_FIRST_SEQUENCE, REEL_LAST_SEQUENCE,
 * REEL_ARCHIVE_REASON). REEL_OK, or an error with the reason in 'why'. */
int retain_archive(store_t *s, const char *id, size_t id_len, uint64_t first, uint64_t until,
                   const char *reason, const char *dir, const char *command, char *why,
                   size_t cap);

#endif
