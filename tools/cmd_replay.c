/* cmd_replay.c -- `reel replay`: re-drive stored events in position order, to stdout as
 * JSON lines or to an HTTP endpoint as one POST per event, instantly or at their pace.
 *
 * Events are copied out of each short read before they are written or sent, so no read
 * transaction is held across a sleep or a network wait.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "replay/replay.h"
#include "tools/cmds.h"

#define CHUNK 1000

static const char about[] =
    "Re-drives stored events in position order (audit replays, feeding another system):\n"
    "to standard output as JSON lines, or with --to as one HTTP POST per event (the event\n"
    "envelope as JSON). --pace original waits between events as long as they were apart\n"
    "when recorded; xN is N times faster; instant (default) does not wait.\n";

struct opts {
    const char *session, *types, *to, *token;
    cmd_range_t range;
    double speed; /* 0 = instant */
    int include_raw;
};

struct item {
    uint64_t key; /* sequence or position */
    int64_t time_ms;
    size_t off, len; /* in the chunk's text */
};

struct chunk {
    const struct opts *o;
    store_buf_t text;
    struct item *v;
    size_t n, cap;
    uint64_t last;
    int past_end;
};


static int take(void *arg, const store_event_view_t *ev)
{
    struct chunk *c = arg;
    const struct opts *o = c->o;
    c->last = o->session ? ev->sequence : ev->position;
    if (!o->session && o->range.until && ev->position > o->range.until) {
        c->past_end = 1;
        return 1;
    }
    if ((o->types && !replay_type_listed(ev, o->types)) ||
        (o->range.since_ms && (int64_t)ev->time_ms < o->range.since_ms) ||
        (o->range.before_ms && (int64_t)ev->time_ms >= o->range.before_ms))
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        struct item *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return REEL_ENOMEM;
        c->v = v, c->cap = cap;
    }
    struct item *it = &c->v[c->n++];
    it->key = c->last;
    it->time_ms = (int64_t)ev->time_ms;
    it->off = c->text.len;
    int rc = replay_write_event(&c->text, ev, o->include_raw);
    it->len = c->text.len - it->off;
    return rc;
}

static void pace(const struct opts *o, int64_t *prev, int64_t t)
{
    if (o->speed > 0 && *prev && t > *prev) {
        double s = (double)(t - *prev) / 1000.0 / o->speed;
        struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
        nanosleep(&ts, NULL);
    }
    *prev = t;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

/* POSTs one event; -1 on failure with 'why' saying it: the transport's error (could not
 * connect, timed out, ...) or the HTTP status. */
static int post(CURL *curl, const char *body, size_t len, long *status, char *why, size_t wlen)
{
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
    CURLcode cc = curl_easy_perform(curl);
    if (cc != CURLE_OK) {
        snprintf(why, wlen, "%s", cc == CURLE_COULDNT_CONNECT ? "could not connect (is the server "
                                                                "running there?)"
                                                              : curl_easy_strerror(cc));
        return -1;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    snprintf(why, wlen, "HTTP %ld", *status);
    return *status >= 200 && *status < 300 ? 0 : -1;
}

static int run(store_t *s, const struct opts *o, CURL *curl)
{
    struct chunk c = {o, STORE_BUF_INIT, NULL, 0, 0, o->session ? 0 : o->range.after, 0};
    int64_t prev = 0;
    unsigned long long sent = 0;
    int rc = 0, more = 1;
    while (!rc && more && !c.past_end) {
        store_read_t r;
        c.n = 0;
        store_buf_clear(&c.text);
        uint64_t before = c.last;
        if ((rc = store_read_begin(s, &r)))
            break;
        rc = o->session ? store_events_after(&r, o->session, strlen(o->session), c.last, CHUNK,
                                             take, &c, &more)
                        : store_feed_after(&r, c.last, CHUNK, take, &c, &more);
        store_read_end(&r);
        if (rc == 1)
            rc = 0;
        if (c.last == before)
            more = 0;
        for (size_t i = 0; !rc && i < c.n; i++) {
            pace(o, &prev, c.v[i].time_ms);
            const char *body = (const char *)c.text.data + c.v[i].off;
            if (!curl) {
                fwrite(body, 1, c.v[i].len, stdout);
                putchar('\n');
                if (o->speed > 0)
                    fflush(stdout);
            } else {
                long status = 0;
                char why[160];
                if (post(curl, body, c.v[i].len, &status, why, sizeof why)) {
                    cmd_error("replay", "POST of event %s %llu to %s failed: %s; %llu "
                              "events were sent before it", o->session ? "sequence" : "position",
                              (unsigned long long)c.v[i].key, o->to, why, sent);
                    rc = REEL_EIO;
                }
            }
            sent++;
        }
    }
    if (rc && rc != REEL_EIO)
        cmd_error("replay", "%s", reel_strerror(rc));
    free(c.v);
    store_buf_release(&c.text);
    return rc ? CMD_FAIL : CMD_OK;
}

/* "instant", "original" or "xN" into a speed factor (0 = instant); 0, or -1. */
static int pace_value(const char *v, double *speed)
{
    if (!strcmp(v, "instant"))
        return *speed = 0, 0;
    if (!strcmp(v, "original"))
        return *speed = 1, 0;
    char *end;
    if (v[0] == 'x' && (*speed = strtod(v + 1, &end)) > 0 && !*end)
        return 0;
    return -1;
}

static int parse_pace(const opt_cmd_t *cmd, const opt_t *row, const char *v)
{
    double *speed = row->dest;
    if (!pace_value(v, speed))
        return 0;
    cmd_error(cmd->name, "--pace must be instant, original or xN (e.g. x10), not '%s'", v);
    return -1;
}

int cmd_replay(int argc, char **argv)
{
    const char *prog = "replay", *data = CMD_DEFAULT_DATA;
    struct opts o = {0};
    const opt_t rows[] = {
        CMD_OPT_DATA(&data),
        {.name = "session", .type = OPT_STRING, .arg = "S", .dest = &o.session,
         .help = "one session (by sequence)"},
        {.name = "type", .type = OPT_STRING, .arg = "T,...", .dest = &o.types,
         .help = "only these event types"},
        CMD_OPT_RANGE(&o.range),
        {.name = "pace", .type = OPT_CALL, .arg = "instant|original|xN", .fn = parse_pace,
         .dest = &o.speed, .help = "how fast to re-drive", .def = "instant"},
        {.name = "to", .type = OPT_STRING, .arg = "URL", .dest = &o.to,
         .help = "POST each event to URL (2xx expected; stops at the first failure)"},
        {.name = "token", .type = OPT_STRING, .arg = "T", .env = "REEL_TOKEN", .dest = &o.token,
         .help = "bearer token for --to"},
        {.name = "include-raw", .type = OPT_FLAG, .dest = &o.include_raw,
         .help = "include 'raw' (default for --to: included)"},
        OPT_END,
    };
    int st = cmd_parse_session(prog, about, rows, argc, argv, &o.session, 0);
    if (st != OPT_GO)
        return st;
    if (o.to)
        o.include_raw = 1;
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s)
        return CMD_FAIL;
    CURL *curl = NULL;
    struct curl_slist *hdr = NULL;
    char auth[512];
    if (o.to) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl = curl_easy_init();
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        if (o.token) {
            snprintf(auth, sizeof auth, "Authorization: Bearer %s", o.token);
            hdr = curl_slist_append(hdr, auth);
        }
        curl_easy_setopt(curl, CURLOPT_URL, o.to);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    }
    int rc = run(s, &o, curl);
    if (curl) {
        curl_slist_free_all(hdr);
        curl_easy_cleanup(curl);
        curl_global_cleanup();
    }
    store_close(s);
    return rc;
}
