/* cmd_serve.c -- `reel serve`: run the HTTP API (api/api.h) on a data directory.
 *
 * Every option has an environment twin (REEL_<NAME>); flags win over the environment,
 * the environment over defaults (SPEC §2). The process blocks SIGINT/SIGTERM in every
 * thread and waits for them with sigwait(), so shutdown runs in order on the main
 * thread: the server first (answers waiting clients, completes in-flight appends), then
 * the store.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "api/api.h"
#include "tools/cmds.h"

static const char usage_text[] =
    "usage: reel serve [options]\n"
    "\n"
    "Run the HTTP API (docs/HTTP.md) on a data directory.\n"
    "\n"
    "options (environment twin in brackets):\n"
    "  --data DIR                 data directory [REEL_DATA] (default ./reel-data)\n"
    "  --listen HOST:PORT         address [REEL_LISTEN] (default 127.0.0.1:2469; port 0 = any)\n"
    "  --token T                  bearer token with full scope [REEL_TOKEN]\n"
    "  --tokens-file FILE         lines 'TOKEN full|read|append' [REEL_TOKENS_FILE]\n"
    "  --sync full|none           fsync every commit [REEL_SYNC] (default full)\n"
    "  --cors-origin ORIGIN       send CORS headers for ORIGIN or * [REEL_CORS_ORIGIN]\n"
    "  --max-body-bytes N         request body limit [REEL_MAX_BODY_BYTES] (16777216)\n"
    "  --max-event-bytes N        one event's JSON limit [REEL_MAX_EVENT_BYTES] (8388608)\n"
    "  --max-depth N              JSON nesting limit [REEL_MAX_DEPTH] (64)\n"
    "  --max-connections N        open connections [REEL_MAX_CONNECTIONS] (1024)\n"
    "  --max-connections-per-ip N per client address, 0 = no limit [REEL_MAX_CONNECTIONS_PER_IP] (256)\n"
    "  --request-timeout S        idle/slow request timeout [REEL_REQUEST_TIMEOUT] (30)\n"
    "  --max-sse-clients N        concurrent SSE streams [REEL_MAX_SSE_CLIENTS] (1000)\n"
    "  --sse-buffer-bytes N       bytes buffered per SSE client [REEL_SSE_BUFFER_BYTES] (262144)\n"
    "  --threads N                HTTP worker threads [REEL_THREADS] (2)\n"
    "  --event-cache-mb N         rendered event JSON kept for readers, 0 = off\n"
    "                             [REEL_EVENT_CACHE_MB] (64)\n"
    "\nenvironment only:\n"
    "  REEL_DS_LONG_POLL_MS       Durable Streams long-poll wait before 204 (3000)\n";

struct opt {
    const char *flag; /* without the leading "--" */
    const char *env;
    const char *value;
};

enum {
    O_DATA, O_LISTEN, O_TOKEN, O_TOKENS_FILE, O_SYNC, O_CORS, O_MAX_BODY, O_MAX_EVENT,
    O_MAX_DEPTH, O_MAX_CONN, O_MAX_CONN_IP, O_TIMEOUT, O_MAX_SSE, O_SSE_BUF, O_THREADS, O_EVCACHE,
    O_N
};

static struct opt opts[O_N] = {
    {"data", "REEL_DATA", NULL},
    {"listen", "REEL_LISTEN", NULL},
    {"token", "REEL_TOKEN", NULL},
    {"tokens-file", "REEL_TOKENS_FILE", NULL},
    {"sync", "REEL_SYNC", NULL},
    {"cors-origin", "REEL_CORS_ORIGIN", NULL},
    {"max-body-bytes", "REEL_MAX_BODY_BYTES", NULL},
    {"max-event-bytes", "REEL_MAX_EVENT_BYTES", NULL},
    {"max-depth", "REEL_MAX_DEPTH", NULL},
    {"max-connections", "REEL_MAX_CONNECTIONS", NULL},
    {"max-connections-per-ip", "REEL_MAX_CONNECTIONS_PER_IP", NULL},
    {"request-timeout", "REEL_REQUEST_TIMEOUT", NULL},
    {"max-sse-clients", "REEL_MAX_SSE_CLIENTS", NULL},
    {"sse-buffer-bytes", "REEL_SSE_BUFFER_BYTES", NULL},
    {"threads", "REEL_THREADS", NULL},
    {"event-cache-mb", "REEL_EVENT_CACHE_MB", NULL},
};

/* Parses "--flag VALUE" and "--flag=VALUE"; returns 0, 1 for --help, or -1. */
static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return 1;
        if (strncmp(a, "--", 2)) {
            cmd_error("serve", "unexpected argument '%s'", a);
            return -1;
        }
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        int k = 0;
        while (k < O_N && !(strlen(opts[k].flag) == n && !strncmp(opts[k].flag, a + 2, n)))
            k++;
        if (k == O_N) {
            cmd_error("serve", "unknown option '%s' (see 'reel serve --help')", a);
            return -1;
        }
        if (!eq && i + 1 >= argc) {
            cmd_error("serve", "option '%s' needs a value", a);
            return -1;
        }
        opts[k].value = eq ? eq + 1 : argv[++i];
    }
    for (int k = 0; k < O_N; k++)
        if (!opts[k].value)
            opts[k].value = cmd_env(opts[k].env, NULL);
    return 0;
}

/* Reads numeric option 'k' into '*v' when set; 'min' guards against useless zeros. */
static int num(int k, unsigned long long min, unsigned long long max, unsigned long long *v)
{
    if (!opts[k].value)
        return 0;
    char what[64];
    snprintf(what, sizeof what, "--%s", opts[k].flag);
    if (cmd_parse_u64("serve", what, opts[k].value, v) < 0)
        return -1;
    if (*v < min || *v > max) {
        cmd_error("serve", "%s must be from %llu to %llu, not %llu", what, min, max, *v);
        return -1;
    }
    return 0;
}

static int limits(api_limits_t *l, unsigned *threads)
{
    unsigned long long v;
    int bad = 0;
#define NUM(k, min, max, field, type) \
    do { v = 0; if (num(k, min, max, &v) < 0) bad = 1; else if (opts[k].value) field = (type)v; } while (0)
    NUM(O_MAX_BODY, 1, 1ull << 32, l->max_body_bytes, size_t);
    NUM(O_MAX_EVENT, 1, 1ull << 31, l->max_event_bytes, size_t);
    NUM(O_MAX_DEPTH, 2, 128, l->max_depth, int);
    NUM(O_MAX_CONN, 1, 1000000, l->max_connections, unsigned);
    NUM(O_MAX_CONN_IP, 0, 1000000, l->max_connections_per_ip, unsigned);
    NUM(O_TIMEOUT, 1, 86400, l->request_timeout, unsigned);
    NUM(O_MAX_SSE, 0, 1000000, l->max_sse_clients, unsigned);
    NUM(O_SSE_BUF, 1024, 1ull << 30, l->sse_buffer_bytes, size_t);
    NUM(O_THREADS, 1, 64, *threads, unsigned);
    NUM(O_EVCACHE, 0, 1u << 20, l->event_cache_bytes, size_t);
    if (opts[O_EVCACHE].value && !bad)
        l->event_cache_bytes <<= 20; /* given in MiB */
#undef NUM
    return bad ? -1 : 0;
}

/* Collects --token (full scope) and the tokens file into one new array. */
static int tokens(api_token_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (opts[O_TOKENS_FILE].value) {
        char msg[512];
        if (api_tokens_load(opts[O_TOKENS_FILE].value, out, n, msg, sizeof msg) != REEL_OK) {
            cmd_error("serve", "%s", msg);
            return -1;
        }
    }
    if (opts[O_TOKEN].value) {
        api_token_t *v = realloc(*out, (*n + 1) * sizeof *v);
        char *t = strdup(opts[O_TOKEN].value);
        if (!v || !t) {
            cmd_error("serve", "out of memory");
            abort();
        }
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

static int serve(const api_config_t *cfg, const char *dir, int no_sync)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    /* Blocked before any thread starts, so every thread inherits the mask and the
     * signals are only ever taken by sigwait() below. */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    store_t *s = cmd_open_store("serve", dir, 0, no_sync);
    if (!s)
        return CMD_FAIL;
    api_server_t *srv = NULL;
    char msg[256] = "";
    int rc = api_server_start(s, cfg, &srv, msg, sizeof msg);
    if (rc != REEL_OK) {
        cmd_error("serve", "%s", msg[0] ? msg : reel_strerror(rc));
        store_close(s);
        return rc == REEL_EINVALID_PARAMETER ? CMD_USAGE : CMD_FAIL;
    }
    fprintf(stderr, "reel serve: listening on port %u (data %s, sync %s)\n",
            api_server_port(srv), dir, no_sync ? "none" : "full");
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "reel serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    api_server_stop(srv);
    store_close(s);
    return CMD_OK;
}

int cmd_serve(int argc, char **argv)
{
    int r = parse_args(argc, argv);
    if (r > 0) {
        fputs(usage_text, stdout);
        return CMD_OK;
    }
    if (r < 0)
        return CMD_USAGE;
    int no_sync = 0;
    if (opts[O_SYNC].value && cmd_parse_sync("serve", opts[O_SYNC].value, &no_sync) < 0)
        return CMD_USAGE;
    api_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    api_limits_t lim = API_LIMITS_DEFAULT;
    cfg.limits = lim;
    if (limits(&cfg.limits, &cfg.threads) < 0)
        return CMD_USAGE;
    /* A test knob, out of range values keep the default (docs/durable-streams.md). */
    long lp = strtol(cmd_env("REEL_DS_LONG_POLL_MS", "0"), NULL, 10);
    if (lp >= 100 && lp <= 600000)
        cfg.limits.ds_long_poll_ms = (unsigned)lp;
    cfg.listen = opts[O_LISTEN].value ? opts[O_LISTEN].value : CMD_DEFAULT_LISTEN;
    cfg.cors_origin = opts[O_CORS].value;
    api_token_t *toks;
    size_t n_toks;
    if (tokens(&toks, &n_toks) < 0)
        return CMD_USAGE;
    cfg.tokens = toks;
    cfg.n_tokens = n_toks;
    raise_nofile();
    const char *dir = opts[O_DATA].value ? opts[O_DATA].value : CMD_DEFAULT_DATA;
    int rc = serve(&cfg, dir, no_sync);
    api_tokens_free(toks, n_toks);
    return rc;
}
