/* metrics.c -- GET /v1/health and GET /metrics (Prometheus text format 0.0.4).
 *
 * Store counters come from store_get_stats(); HTTP counters are the server's atomics.
 * Metric names are listed in docs/HTTP.md.
 */
#include <dirent.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
#include <string.h>

#include "api/handlers/handlers.h"
#include "api/live/live.h"
#include "ingest/ingest.h"
#include "store/version.h"

enum MHD_Result api__health(api_req_t *rq, const char *data, size_t *size)
{
    store_stats_t st;
    store_get_stats(rq->srv->store, &st);
    store_buf_t out = STORE_BUF_INIT;
    if (st.failed) {
        return api__problem(rq, REEL_EUNAVAILABLE,
                            "the store stopped after a failed commit; restart the server");
    }
    /* Damaged pages fail only the reads that meet them (docs/DESIGN.md, "Read path"):
     * the server stays up, and says here that the store needs `reel verify`. */
    store_buf_printf(&out,
                     "{\"status\":\"%s\",\"corrupt_reads\":%llu,\"version\":\"%s\","
                     "\"commit\":\"%s\"}",
                     st.corrupt_reads ? "degraded" : "ok", (unsigned long long)st.corrupt_reads,
                     REEL_VERSION, reel_build_commit);
    return api__reply_json(rq, 200, &out);
}

static void metric(store_buf_t *o, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    store_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

static void commit_histogram(store_buf_t *o, const store_stats_t *st)
{
    const char *n = "reel_store_commit_seconds";
    store_buf_printf(o, "# HELP %s Time per write transaction (write + fsync).\n"
                        "# TYPE %s histogram\n", n, n);
    unsigned long long cum = 0;
    /* Bucket i counts commits under 2^i * 64 us, above bucket i-1; the last bucket
     * also takes everything slower, so it only feeds +Inf. */
    for (int i = 0; i < STORE_HIST_BUCKETS - 1; i++) {
        cum += st->commit_hist[i];
        double le = (double)(64ull << i) / 1e6;
        store_buf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", n, le, cum);
    }
    store_buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", n, (unsigned long long)st->commits);
    store_buf_printf(o, "%s_sum %.6f\n%s_count %llu\n", n, (double)st->commit_ns / 1e9, n,
                     (unsigned long long)st->commits);
}

/* Request duration per route row and method, only for series that saw a request (a
 * bounded set: the route table's rows times six methods). */
static void route_histograms(store_buf_t *o, api_server_t *srv)
{
    static const char *const methods[API_N_METHODS] = {"GET", "HEAD", "POST", "PUT", "DELETE",
                                                       "OPTIONS"};
    const char *n = "reel_http_request_duration_seconds";
    store_buf_printf(o, "# HELP %s Time from a request's head to its end, by route and method "
                        "(long-polls and SSE streams included).\n# TYPE %s histogram\n", n, n);
    for (size_t r = 0; r < srv->n_routes && r < API_MAX_ROUTES; r++)
        for (int m = 0; m < API_N_METHODS; m++) {
            uint64_t counts[API_LAT_BUCKETS], total = 0;
            for (int b = 0; b < API_LAT_BUCKETS; b++)
                total += counts[b] = atomic_load(&srv->lat[r][m][b]);
            if (!total)
                continue;
            char labels[160];
            snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\"",
                     srv->routes[r].pattern, methods[m]);
            uint64_t cum = 0;
            for (int b = 0; b < API_LAT_BUCKETS - 1; b++) {
                cum += counts[b];
                store_buf_printf(o, "%s_bucket{%s,le=\"%g\"} %llu\n", n, labels,
                                 (double)api__lat_bounds_us[b] / 1e6, (unsigned long long)cum);
            }
            store_buf_printf(o, "%s_bucket{%s,le=\"+Inf\"} %llu\n%s_sum{%s} %.6f\n"
                                "%s_count{%s} %llu\n", n, labels, (unsigned long long)total, n,
                             labels, (double)atomic_load(&srv->lat_sum_us[r][m]) / 1e6, n, labels,
                             (unsigned long long)total);
        }
}

/* The process_* metrics every Prometheus client library exports, from /proc. */
static void process_metrics(store_buf_t *o, const api_server_t *srv)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        store_buf_printf(o, "# HELP process_cpu_seconds_total User and system CPU time.\n"
                            "# TYPE process_cpu_seconds_total counter\n"
                            "process_cpu_seconds_total %.3f\n",
                         (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                             (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long vsz = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%llu %llu", &vsz, &rss) == 2) {
            metric(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size.",
                   vsz * (unsigned long long)page);
            metric(o, "process_resident_memory_bytes", "gauge", "Resident memory size.",
                   rss * (unsigned long long)page);
        }
        fclose(f);
    }
    unsigned long long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            fds += e->d_name[0] != '.';
        closedir(d);
        metric(o, "process_open_fds", "gauge", "Open file descriptors.", fds ? fds - 1 : 0);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        metric(o, "process_max_fds", "gauge", "Limit of open file descriptors.",
               (unsigned long long)rl.rlim_cur);
    store_buf_printf(o, "# HELP process_start_time_seconds Start time since the Unix epoch.\n"
                        "# TYPE process_start_time_seconds gauge\n"
                        "process_start_time_seconds %.3f\n", srv->started_s);
}

/* Secrets replaced at ingest, by kind (ingest/redact.c); nothing when redaction is off. */
static void redaction_metrics(store_buf_t *o)
{
    const ingest_redactor_t *r = ingest_redact_current();
    size_t n = ingest_redact_kinds(r);
    if (!n)
        return;
    store_buf_puts(o, "# HELP reel_redactions_total Secrets replaced at ingest, by kind.\n"
                      "# TYPE reel_redactions_total counter\n");
    for (size_t k = 0; k < n; k++)
        store_buf_printf(o, "reel_redactions_total{kind=\"%s\"} %llu\n",
                         ingest_redact_kind(r, (int)k),
                         (unsigned long long)ingest_redact_count(r, (int)k));
}

static void batch_histogram(store_buf_t *o, api_server_t *srv)
{
    const char *n = "reel_http_append_batch_events";
    store_buf_printf(o, "# HELP %s Events per HTTP append request.\n# TYPE %s histogram\n", n, n);
    unsigned long long cum = 0, le = 1;
    for (int i = 0; i < 7; i++, le *= 10) {
        cum += atomic_load(&srv->append_batch_hist[i]);
        store_buf_printf(o, "%s_bucket{le=\"%llu\"} %llu\n", n, le, cum);
    }
    cum += atomic_load(&srv->append_batch_hist[7]);
    store_buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %llu\n%s_count %llu\n", n, cum, n,
                     (unsigned long long)atomic_load(&srv->append_events), n, cum);
}

enum MHD_Result api__metrics(api_req_t *rq, const char *data, size_t *size)
{
    api_server_t *srv = rq->srv;
    store_stats_t st;
    store_get_stats(srv->store, &st);
    pthread_mutex_lock(&srv->conn_lock);
    unsigned conns = srv->n_conns;
    pthread_mutex_unlock(&srv->conn_lock);
    store_buf_t o = STORE_BUF_INIT;
    /* The info-metric idiom (value 1, facts in labels); the commit is [0-9a-z-] only. */
    store_buf_printf(&o, "# HELP reel_build_info The version and commit of this server.\n"
                         "# TYPE reel_build_info gauge\n"
                         "reel_build_info{version=\"%s\",commit=\"%s\"} 1\n",
                     REEL_VERSION, reel_build_commit);
    metric(&o, "reel_http_requests_total", "counter", "HTTP requests received.",
           atomic_load(&srv->requests));
    metric(&o, "reel_http_appends_total", "counter", "Successful append requests.",
           atomic_load(&srv->appends));
    metric(&o, "reel_http_append_events_total", "counter", "Events in successful append requests.",
           atomic_load(&srv->append_events));
    batch_histogram(&o, srv);
    route_histograms(&o, srv);
    api__token_metrics(srv, &o);
    api__cell_metrics(srv, &o);
    api__consumer_metrics(srv, &o);
    store_buf_printf(&o, "# HELP reel_http_problems_total Problem responses by class.\n"
                         "# TYPE reel_http_problems_total counter\n"
                         "reel_http_problems_total{class=\"4xx\"} %llu\n"
                         "reel_http_problems_total{class=\"5xx\"} %llu\n",
                     (unsigned long long)atomic_load(&srv->problems_4xx),
                     (unsigned long long)atomic_load(&srv->problems_5xx));
    metric(&o, "reel_http_connections", "gauge", "Open HTTP connections.", conns);
    metric(&o, "reel_sse_clients", "gauge", "Open SSE streams.", atomic_load(&srv->sse_clients));
    metric(&o, "reel_http_wakeups_total", "counter", "Suspended connections resumed by a commit or deadline.",
           atomic_load(&srv->wakeups));
    store_cache_stats_t cs;
    store_cache_stats(srv->store, &cs);
    metric(&o, "reel_event_cache_hits_total", "counter",
           "Event envelopes served from the store's envelope cache.", cs.hits);
    metric(&o, "reel_event_cache_misses_total", "counter",
           "Event envelopes rendered from the stored value (then kept).", cs.misses);
    metric(&o, "reel_event_cache_bytes", "gauge",
           "Bytes held by the envelope cache (envelopes and entries).", cs.bytes);
    metric(&o, "reel_event_cache_entries", "gauge", "Envelopes held by the envelope cache.",
           cs.entries);
    metric(&o, "reel_event_cache_clears_total", "counter",
           "Times the envelope cache was emptied: another process redacted.", cs.clears);
    redaction_metrics(&o);
    api__sink_metrics(srv, &o);
    metric(&o, "reel_store_batches_total", "counter", "Batches committed.", st.batches);
    metric(&o, "reel_store_batch_errors_total", "counter", "Batches failed.", st.batch_errors);
    metric(&o, "reel_store_events_total", "counter", "Events appended.", st.events);
    metric(&o, "reel_store_duplicates_total", "counter", "Events skipped as duplicates.",
           st.duplicates);
    metric(&o, "reel_store_commits_total", "counter", "Write transactions committed.", st.commits);
    commit_histogram(&o, &st);
    metric(&o, "reel_store_map_bytes", "gauge", "LMDB map size.", st.map_size);
    metric(&o, "reel_store_used_bytes", "gauge", "LMDB pages in use, in bytes.", st.used_bytes);
    metric(&o, "reel_store_map_grows_total", "counter", "Times the map grew.", st.map_grows);
    metric(&o, "reel_store_corrupt_reads_total", "counter",
           "Reads that met a damaged page or value (answered 500).", st.corrupt_reads);
    metric(&o, "reel_store_failed", "gauge", "1 when the store is in fail-stop.", (unsigned)st.failed);
    process_metrics(&o, srv);
    metric(&o, "reel_store_trimmed_events_total", "counter",
           "Events removed by retention trims.", st.trimmed);
    metric(&o, "reel_store_purged_sessions_total", "counter",
           "Sessions removed for good (purge or expiry).", st.purged);
    if (srv->metrics)
        srv->metrics(srv->metrics_arg, &o);
    if (store_buf_failed(&o)) {
        store_buf_release(&o);
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    }
    enum MHD_Result r = api__reply_text(rq, 200, "text/plain; version=0.0.4; charset=utf-8",
                                        (const char *)o.data, o.len);
    store_buf_release(&o);
    return r;
}
