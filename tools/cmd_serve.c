/* cmd_serve.c -- `reel serve`: run the HTTP API (api/api.h) on a data directory.
 *
 * Every option has an environment twin (REEL_<NAME>); flags win over the environment,
 * the environment over defaults (docs/HTTP.md, "Options and limits"). The process blocks
 * SIGINT, SIGTERM and SIGHUP in every thread and takes them with sigtimedwait() on the
 * main thread, so shutdown runs in order (the server first: it answers waiting clients
 * and completes in-flight appends; then the store) and SIGHUP (reopen the logs, re-read
 * the tokens file) never interrupts a request. Under systemd (Type=notify) the same loop
 * says READY=1, RELOADING=1 / READY=1 around a reload, STOPPING=1, and pings the watchdog
 * while the store is healthy.
 */
#include <errno.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "api/api.h"
#include "cluster/cluster.h"
#include "replay/replay.h"
#include "retain/retain.h"
#include "store/json.h"
#include "tools/cmds.h"

/* The settings, filled by the option table: strings stay NULL when not given, numbers
 * start at the server's defaults (API_LIMITS_DEFAULT). */
struct settings {
    const char *data, *listen, *token, *tokens_file, *named_tokens, *cors, *access_log, *error_log,
        *redact, *retention, *archive_dir, *archive_command, *cluster_map, *cell, *replica_sink;
    int ack_replica, no_sync, create, log_json, log_level, no_zdict, journal;
    unsigned long long max_body, max_event, max_depth, max_conn, max_conn_ip, timeout, max_sse,
        sse_buf, threads, evcache_mb, ds_long_poll_ms, retention_interval, max_sink_lag,
        sink_wait_ms, replica_wait_ms;
};

#define U64(n, e, field, lo, hi, h, d)                                                        \
    {.name = n, .type = OPT_U64, .arg = "N", .env = e, .dest = &st->field, .min = lo,         \
     .max = hi, .help = h, .def = d}

/* Parses the command line and environment into 'st'; OPT_GO or the exit status. */
static int parse(struct settings *st, int argc, char **argv)
{
    const opt_t rows[] = {
        CMD_OPT_DATA(&st->data),
        {.name = "listen", .type = OPT_STRING, .arg = "HOST:PORT", .env = "REEL_LISTEN",
         .dest = &st->listen, .help = "address (port 0 = any)", .def = CMD_DEFAULT_LISTEN},
        {.name = "token", .type = OPT_STRING, .arg = "T", .env = "REEL_TOKEN",
         .dest = &st->token, .help = "bearer token with full scope"},
        {.name = "tokens-file", .type = OPT_STRING, .arg = "FILE", .env = "REEL_TOKENS_FILE",
         .dest = &st->tokens_file, .help = "lines 'TOKEN full|read|append'"},
        {.name = "tokens", .type = OPT_STRING, .arg = "FILE", .env = "REEL_TOKENS",
         .dest = &st->named_tokens,
         .help = "named tokens, hashed, with scopes and session prefixes\n(`reel tokens add` writes it)"},
        CMD_OPT_SYNC(&st->no_sync),
        {.name = "journal", .type = OPT_FLAG, .dest = &st->journal,
         .help = "write-ahead journal: each group of appends is durable with one\n"
                 "sequential write and flush of DATA/journal-*, data.mdb is flushed by\n"
                 "checkpoints; must be the store's only process (docs/DESIGN.md \"The\n"
                 "journal\"). Halves a lone append's latency; under many concurrent\n"
                 "appends it is not faster (docs/BENCHMARKS.md). Not with --sync none"},
        {.name = "create", .type = OPT_FLAG, .dest = &st->create,
         .help = "make a new, empty store where data.mdb exists but holds none"},
        {.name = "zdict", .type = OPT_CHOICE, .arg = "on|off", .env = "REEL_ZDICT",
         .dest = &st->no_zdict,
         .help = "compress events with zstd dictionaries trained on the store (about\n"
                 "a third of the bytes; ~1 us more per event read); off: none trained or\n"
                 "used for new events (docs/FORMAT.md section 15)", .def = "on"},
        {.name = "cors-origin", .type = OPT_STRING, .arg = "ORIGIN", .env = "REEL_CORS_ORIGIN",
         .dest = &st->cors, .help = "grant cross-origin access (CORS) to ORIGIN or *"},
        {.name = "access-log", .type = OPT_STRING, .arg = "FILE|-", .env = "REEL_ACCESS_LOG",
         .dest = &st->access_log, .help = "one line per request ('-': standard error)",
         .def = "off"},
        {.name = "error-log", .type = OPT_STRING, .arg = "FILE|-", .env = "REEL_ERROR_LOG",
         .dest = &st->error_log, .help = "server events and 5xx answers", .def = "-"},
        {.name = "log-format", .type = OPT_CHOICE, .arg = "text|json", .env = "REEL_LOG_FORMAT",
         .dest = &st->log_json, .help = "text lines or JSON lines", .def = "text"},
        {.name = "log-level", .type = OPT_CHOICE, .arg = "error|warn|info|debug",
         .env = "REEL_LOG_LEVEL", .dest = &st->log_level,
         .help = "error log threshold (debug adds 4xx answers)", .def = "info"},
        U64("max-body-bytes", "REEL_MAX_BODY_BYTES", max_body, 1, 1ull << 32,
            "request body limit", "16777216"),
        U64("max-event-bytes", "REEL_MAX_EVENT_BYTES", max_event, 1, 1ull << 31,
            "one event's JSON limit", "8388608"),
        U64("max-depth", "REEL_MAX_DEPTH", max_depth, 2, STORE_JSON_MAX_DEPTH, "JSON nesting limit", "512"),
        U64("max-connections", "REEL_MAX_CONNECTIONS", max_conn, 1, 1000000,
            "open connections", "1024"),
        U64("max-connections-per-ip", "REEL_MAX_CONNECTIONS_PER_IP", max_conn_ip, 0, 1000000,
            "per client address, 0 = no limit", "256"),
        {.name = "request-timeout", .type = OPT_U64, .arg = "S", .env = "REEL_REQUEST_TIMEOUT",
         .dest = &st->timeout, .min = 1, .max = 86400, .help = "idle/slow request timeout",
         .def = "30"},
        U64("max-sse-clients", "REEL_MAX_SSE_CLIENTS", max_sse, 0, 1000000,
            "concurrent SSE streams", "1000"),
        U64("sse-buffer-bytes", "REEL_SSE_BUFFER_BYTES", sse_buf, 1024, 1ull << 30,
            "bytes buffered per SSE client", "262144"),
        U64("threads", "REEL_THREADS", threads, 1, 64, "HTTP worker threads", "2"),
        U64("event-cache-mb", "REEL_EVENT_CACHE_MB", evcache_mb, 0, 1u << 20,
            "rendered event envelopes the store keeps for readers (its envelope\n"
            "cache), 0 = off", "64"),
        U64("ds-long-poll-ms", "REEL_DS_LONG_POLL_MS", ds_long_poll_ms, 100, 600000,
            "Durable Streams long-poll wait before 204", "3000"),
        U64("max-sink-lag", "REEL_MAX_SINK_LAG", max_sink_lag, 0, 1ull << 62,
            "appends wait while the slowest sink that reports (POST /v1/sinks/NAME)\n"
            "is more positions behind; 0 = off", "0"),
        U64("sink-wait-ms", "REEL_SINK_WAIT_MS", sink_wait_ms, 1, 600000,
            "how long an append waits for a sink before 503 with Retry-After", "2000"),
        {.name = "ack", .type = OPT_CHOICE, .arg = "local|replica", .env = "REEL_ACK",
         .dest = &st->ack_replica,
         .help = "local: acknowledge appends once durable here; replica: only once the\n"
                 "replica sink committed them to a PostgreSQL with a synchronous standby,\n"
                 "and reads stop there (docs/CLUSTER.md \"Acknowledged by a replica\")",
         .def = "local"},
        {.name = "replica-sink", .type = OPT_STRING, .arg = "NAME", .env = "REEL_REPLICA_SINK",
         .dest = &st->replica_sink,
         .help = "with --ack replica: the sink whose reports count (POST /v1/sinks/NAME)",
         .def = "postgres-<cell or 0>"},
        U64("replica-wait-ms", "REEL_REPLICA_WAIT_MS", replica_wait_ms, 1, 600000,
            "with --ack replica: how long a write waits for the replica before\n"
            "503 replica_behind with Retry-After (it is durable here; retry it)", "5000"),
        CMD_OPT_REDACT(&st->redact),
        {.name = "retention", .type = OPT_STRING, .arg = "POLICY", .env = "REEL_RETENTION",
         .dest = &st->retention,
         .help = "store default retention, e.g. max_age=30d,max_age_after_end=7d,\n"
                 "max_events=N,archive=on|off (docs/RETENTION.md)", .def = "none"},
        {.name = "archive-dir", .type = OPT_STRING, .arg = "DIR", .env = "REEL_ARCHIVE_DIR",
         .dest = &st->archive_dir,
         .help = "before retention removes events, write their export (zstd NDJSON) here"},
        {.name = "archive-command", .type = OPT_STRING, .arg = "CMD", .env = "REEL_ARCHIVE_COMMAND",
         .dest = &st->archive_command,
         .help = "before retention removes events, run `sh -c CMD` with their export\non "
                 "standard input; a non-zero exit removes nothing"},
        U64("retention-interval", "REEL_RETENTION_INTERVAL", retention_interval, 1, 86400,
            "seconds between retention janitor passes", "60"),
        {.name = "cluster-map", .type = OPT_STRING, .arg = "FILE", .env = "REEL_CLUSTER_MAP",
         .dest = &st->cluster_map,
         .help = "serve as a cell of this cluster map (docs/CLUSTER.md): sessions of\n"
                 "other cells' shards get 421 naming the owner"},
        {.name = "cell", .type = OPT_STRING, .arg = "ID", .env = "REEL_CELL", .dest = &st->cell,
         .help = "this cell's id in --cluster-map"},
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = "serve", .synopsis = "[options]", .opts = rows,
                           .about = "Run the HTTP API (docs/HTTP.md) on a data directory.\n"
                                    "\n"
                                    "Signals: SIGINT and SIGTERM stop it cleanly; SIGHUP reopens "
                                    "the log files\n"
                                    "(after logrotate) and re-reads --tokens-file and "
                                    "--cluster-map, without\n"
                                    "dropping connections (a map with an older epoch than the "
                                    "store has seen\n"
                                    "is refused).\n"
                                    "Under systemd (Type=notify) it reports readiness and pings "
                                    "the watchdog.\n"};
    return opt_parse(&cmd, argc, argv, NULL);
}
#undef U64

/* The server's defaults, so that an option left out keeps them. */
static void settings_init(struct settings *st, const api_limits_t *l)
{
    memset(st, 0, sizeof *st);
    st->data = CMD_DEFAULT_DATA;
    st->listen = CMD_DEFAULT_LISTEN;
    st->redact = "builtin";
    st->log_level = API_LOG_INFO;
    st->max_body = l->max_body_bytes;
    st->max_event = l->max_event_bytes;
    st->max_depth = (unsigned long long)l->max_depth;
    st->max_conn = l->max_connections;
    st->max_conn_ip = l->max_connections_per_ip;
    st->timeout = l->request_timeout;
    st->max_sse = l->max_sse_clients;
    st->sse_buf = l->sse_buffer_bytes;
    st->evcache_mb = STORE_CACHE_DEFAULT_BYTES >> 20; /* given in MiB */
    st->ds_long_poll_ms = l->ds_long_poll_ms;
    st->max_sink_lag = l->max_sink_lag;
    st->sink_wait_ms = l->sink_wait_ms;
    st->replica_wait_ms = l->replica_wait_ms;
    st->retention_interval = 60;
}

static void limits(const struct settings *st, api_limits_t *l)
{
    l->max_body_bytes = (size_t)st->max_body;
    l->max_event_bytes = (size_t)st->max_event;
    l->max_depth = (int)st->max_depth;
    l->max_connections = (unsigned)st->max_conn;
    l->max_connections_per_ip = (unsigned)st->max_conn_ip;
    l->request_timeout = (unsigned)st->timeout;
    l->max_sse_clients = (unsigned)st->max_sse;
    l->sse_buffer_bytes = (size_t)st->sse_buf;
    l->ds_long_poll_ms = (unsigned)st->ds_long_poll_ms;
    l->max_sink_lag = st->max_sink_lag;
    l->sink_wait_ms = (unsigned)st->sink_wait_ms;
    l->ack_replica = st->ack_replica;
    l->replica_wait_ms = (unsigned)st->replica_wait_ms;
    snprintf(l->replica_sink, sizeof l->replica_sink, "postgres-%s",
             st->replica_sink ? "" : st->cell ? st->cell : "0");
    if (st->replica_sink)
        snprintf(l->replica_sink, sizeof l->replica_sink, "%s", st->replica_sink);
}

/* Collects --token (full scope) and the tokens file into one new array. */
static int tokens(const struct settings *st, api_token_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char msg[512];
    if (st->tokens_file && api_tokens_load(st->tokens_file, out, n, msg, sizeof msg) != REEL_OK) {
        cmd_error("serve", "%s", msg);
        return -1;
    }
    if (st->named_tokens) {
        api_token_t *named;
        size_t nn;
        api_token_t *v;
        if (api_tokens_load_named(st->named_tokens, &named, &nn, msg, sizeof msg) != REEL_OK) {
            cmd_error("serve", "%s", msg);
            api_tokens_free(*out, *n);
            *out = NULL, *n = 0;
            return -1;
        }
        if (nn && !(v = realloc(*out, (*n + nn) * sizeof *v))) {
            cmd_error("serve", "out of memory");
            abort();
        }
        if (nn) {
            memcpy(v + *n, named, nn * sizeof *v);
            *out = v;
            *n += nn;
        }
        free(named); /* its entries now belong to *out */
    }
    if (st->token) {
        api_token_t *v = realloc(*out, (*n + 1) * sizeof *v);
        char *t = strdup(st->token);
        if (!v || !t) {
            cmd_error("serve", "out of memory");
            abort();
        }
        memset(&v[*n], 0, sizeof v[*n]);
        v[*n].token = t;
        v[*n].scope = API_SCOPE_FULL;
        *out = v;
        (*n)++;
    }
    return 0;
}

/* Lets the connection limit be reached before the fd limit is. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The first lines an operator sees: where to point a browser and a client, and, like
 * Redis's protected mode, a loud warning when anyone on the network could read and write
 * every session because no token is set. */
static void announce(const api_config_t *cfg, api_server_t *srv, const char *dir, int no_sync)
{
    const char *colon = strrchr(cfg->listen, ':');
    int hl = colon ? (int)(colon - cfg->listen) : 0;
    const char *host = cfg->listen;
    if (hl == 0 || (hl == 7 && !strncmp(host, "0.0.0.0", 7)) || (hl == 4 && !strncmp(host, "[::]", 4)))
        host = "127.0.0.1", hl = 9; /* a wildcard address: the local one is a usable URL */
    unsigned port = api_server_port(srv);
    api_server_log(srv, API_LOG_INFO, "reel serve: listening on http://%.*s:%u/ (data %s, sync %s)",
                   hl, host, port, dir, no_sync == 2 ? "journal" : no_sync ? "none" : "full");
    api_server_log(srv, API_LOG_INFO, "reel serve: inspector at http://%.*s:%u/ui/", hl, host, port);
    if (!api_server_loopback(srv) && cfg->n_tokens == 0) {
        api_server_log(srv, API_LOG_WARN, "reel serve: WARNING: listening on %s, which is not a "
                       "loopback address, WITHOUT a token:", cfg->listen);
        api_server_log(srv, API_LOG_WARN, "reel serve: WARNING: anyone who can reach it can "
                       "read, append and delete every session.");
        api_server_log(srv, API_LOG_WARN, "reel serve: WARNING: set --token (REEL_TOKEN) or "
                       "listen on 127.0.0.1.");
    }
}

/* SIGHUP: the cluster map again. A map that cannot be read or is refused (older epoch,
 * no such cell) keeps the old one in force. */
static void reload_map(api_server_t *srv, const struct settings *st)
{
    cluster_map_t *m;
    char msg[512];
    int rc = cluster_map_load(st->cluster_map, &m, msg, sizeof msg);
    if (rc == REEL_OK)
        rc = api_server_set_cluster(srv, m, msg, sizeof msg);
    if (rc)
        api_server_log(srv, API_LOG_ERROR, "reel serve: SIGHUP: %s; the old cluster map stays "
                       "in force", msg);
    else
        api_server_log(srv, API_LOG_INFO, "reel serve: SIGHUP: cluster map %s loaded",
                       st->cluster_map);
}

/* SIGHUP: the log files by name again, the tokens file again (a token removed from it stops
 * working at the next request of every connection). A failure keeps what was there. */
static void reload(api_server_t *srv, const struct settings *st)
{
    sd_notify(0, "RELOADING=1");
    char msg[512];
    if (api_server_reopen_logs(srv, msg, sizeof msg) != REEL_OK)
        api_server_log(srv, API_LOG_ERROR, "reel serve: SIGHUP: %s; logging goes on to the "
                       "old file", msg);
    api_token_t *toks;
    size_t n;
    if (!st->tokens_file && !st->named_tokens) {
        api_server_log(srv, API_LOG_INFO, "reel serve: SIGHUP: logs reopened");
    } else if (tokens(st, &toks, &n) < 0) {
        api_server_log(srv, API_LOG_ERROR, "reel serve: SIGHUP: the tokens file could not be "
                       "read; the old tokens stay in force");
    } else {
        int rc = api_server_set_tokens(srv, toks, n);
        api_tokens_free(toks, n);
        api_server_log(srv, rc ? API_LOG_ERROR : API_LOG_INFO,
                       "reel serve: SIGHUP: logs reopened, %zu tokens %s", n,
                       rc ? "NOT loaded (out of memory)" : "loaded");
    }
    if (st->cluster_map)
        reload_map(srv, st);
    sd_notify(0, "READY=1");
}

/* Waits for a signal, pinging the systemd watchdog (when it is on) every half period
 * while the store is healthy: a store in fail-stop lets systemd restart the server. */
static int wait_signal(const sigset_t *set, store_t *s, uint64_t watchdog_us)
{
    for (;;) {
        struct timespec ts = {.tv_sec = watchdog_us ? (time_t)(watchdog_us / 2000000) : 3600,
                              .tv_nsec = watchdog_us ? (long)(watchdog_us / 2 % 1000000) * 1000 : 0};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0)
            return sig;
        if (errno == EAGAIN && watchdog_us) {
            store_stats_t stats;
            store_get_stats(s, &stats);
            if (!stats.failed)
                sd_notify(0, "WATCHDOG=1");
        }
    }
}

/* The janitor's log lines go to the server's error log once it runs. */
static void janitor_log(void *arg, const char *line)
{
    api_server_t *srv = *(api_server_t *volatile *)arg;
    if (srv)
        api_server_log(srv, API_LOG_WARN, "reel serve: %s", line);
    else
        fprintf(stderr, "reel serve: %s\n", line);
}

/* The retention janitor's settings from the options; -1 after saying what is wrong. */
static int retention_config(const struct settings *st, retain_config_t *rc)
{
    memset(rc, 0, sizeof *rc);
    char why[256];
    if (st->retention && strcmp(st->retention, "none") &&
        retain_policy_parse(st->retention, &rc->dflt, why, sizeof why)) {
        cmd_error("serve", "--retention: %s", why);
        return -1;
    }
    struct stat sb;
    if (st->archive_dir && (stat(st->archive_dir, &sb) || !S_ISDIR(sb.st_mode))) {
        cmd_error("serve", "--archive-dir '%s' is not a directory", st->archive_dir);
        return -1;
    }
    rc->archive_dir = st->archive_dir;
    rc->archive_command = st->archive_command;
    rc->interval_ms = st->retention_interval * 1000;
    rc->log = janitor_log;
    return 0;
}

static int serve(const api_config_t *cfg_in, const struct settings *st)
{
    api_config_t copy = *cfg_in, *cfg = &copy;
    retain_config_t rcfg;
    if (retention_config(st, &rcfg))
        return CMD_USAGE;
    if (st->journal && st->no_sync) {
        fprintf(stderr, "reel serve: --journal flushes every group; it cannot go with --sync none\n");
        return CMD_USAGE;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* Blocked before any thread starts, so every thread inherits the mask and the
     * signals are only ever taken by wait_signal() below. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    store_options_t opt = {.no_sync = st->no_sync, .create = st->create,
                           .no_zdict = st->no_zdict, .journal = st->journal, .render = replay_envelope,
                           .cache_bytes = st->evcache_mb ? (size_t)st->evcache_mb << 20
                                                         : STORE_CACHE_OFF};
    store_t *s = cmd_open_store_opt("serve", st->data, &opt);
    if (!s) {
        cluster_map_free(cfg->cluster);
        return CMD_FAIL;
    }
    api_server_t *volatile srv_for_log = NULL, *srv = NULL;
    rcfg.log_arg = (void *)&srv_for_log;
    retain_t *janitor = NULL;
    if (retain_new(s, &rcfg, &janitor) != REEL_OK) {
        cmd_error("serve", "out of memory");
        cluster_map_free(cfg->cluster);
        store_close(s);
        return CMD_FAIL;
    }
    cfg->metrics = retain_metrics;
    cfg->metrics_arg = janitor;
    char msg[256] = "";
    int rc = api_server_start(s, cfg, &srv, msg, sizeof msg);
    if (rc != REEL_OK) {
        cmd_error("serve", "%s", msg[0] ? msg : reel_strerror(rc));
        retain_free(janitor);
        store_close(s);
        return rc == REEL_EINVALID_PARAMETER ? CMD_USAGE : CMD_FAIL;
    }
    srv_for_log = srv;
    if (retain_begin(janitor) != REEL_OK)
        api_server_log(srv, API_LOG_ERROR, "reel serve: the retention janitor did not start");
    announce(cfg, srv, st->data, st->journal ? 2 : st->no_sync);
    uint64_t watchdog_us = 0;
    if (sd_watchdog_enabled(0, &watchdog_us) <= 0)
        watchdog_us = 0;
    sd_notifyf(0, "READY=1\nSTATUS=serving %s on port %u", st->data, api_server_port(srv));
    int sig;
    while ((sig = wait_signal(&set, s, watchdog_us)) == SIGHUP)
        reload(srv, st);
    sd_notify(0, "STOPPING=1");
    api_server_log(srv, API_LOG_INFO, "reel serve: %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    retain_stop(janitor); /* before the server: its removals go through the store */
    api_server_stop(srv);
    retain_free(janitor); /* after it: /metrics reads the janitor's counters */
    store_close(s);
    return CMD_OK;
}

/* --cluster-map and --cell: the map into cfg->cluster (api_server_start() takes it over). */
static int cluster(const struct settings *st, api_config_t *cfg)
{
    if (!st->cluster_map != !st->cell) {
        cmd_error("serve", "--cluster-map and --cell go together (a cell serves its own shards)");
        return -1;
    }
    if (!st->cluster_map)
        return 0;
    char msg[512];
    cluster_map_t *m;
    if (cluster_map_load(st->cluster_map, &m, msg, sizeof msg)) {
        cmd_error("serve", "%s", msg);
        return -1;
    }
    cfg->cluster = m;
    cfg->cell = st->cell;
    cfg->cluster_map_path = st->cluster_map;
    return 0;
}

/* --replica-sink: a sink name as POST /v1/sinks/NAME takes it. */
static int replica_sink_ok(const char *name)
{
    size_t n = name ? strlen(name) : 1;
    if (n && n <= 63 && (!name || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                              "0123456789._-") == n))
        return 0;
    cmd_error("serve", "--replica-sink '%s': a sink name is 1..63 characters of A-Z a-z 0-9 "
              ". _ -", name);
    return -1;
}

int cmd_serve(int argc, char **argv)
{
    api_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    api_limits_t lim = API_LIMITS_DEFAULT;
    struct settings st;
    settings_init(&st, &lim);
    int r = parse(&st, argc, argv);
    if (r != OPT_GO)
        return r;
    if (cmd_redact_setup("serve", st.redact) || replica_sink_ok(st.replica_sink))
        return CMD_USAGE;
    cfg.limits = lim;
    limits(&st, &cfg.limits);
    cfg.threads = (unsigned)st.threads;
    cfg.listen = st.listen;
    cfg.cors_origin = st.cors;
    cfg.access_log = st.access_log;
    cfg.error_log = st.error_log;
    cfg.log_json = st.log_json;
    cfg.log_level = st.log_level;
    api_token_t *toks;
    size_t n_toks;
    if (tokens(&st, &toks, &n_toks) < 0)
        return CMD_USAGE;
    cfg.tokens = toks;
    cfg.n_tokens = n_toks;
    if (cluster(&st, &cfg) < 0) {
        api_tokens_free(toks, n_toks);
        return CMD_USAGE;
    }
    raise_nofile();
    int rc = serve(&cfg, &st);
    api_tokens_free(toks, n_toks);
    return rc;
}
