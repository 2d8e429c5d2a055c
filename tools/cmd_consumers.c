/* cmd_consumers.c -- `reel consumers`: list the durable consumers of a data directory. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "replay/replay.h"
#include "store/json.h"
#include "store/parse.h"
#include "tools/cmds.h"

static const char about[] =
    "Lists the durable consumers (docs/HTTP.md \"Consumers\"): name, what it reads (a\n"
    "session, or the feed of every session), event types, the acknowledged position, the\n"
    "end it reads towards, the lag between them, and the lease (owner, fencing token,\n"
    "seconds left). Positions are sequences for a session consumer, log positions for a\n"
    "feed consumer. --json prints one consumer per line. Reads the store read-only, so it\n"
    "runs beside `reel serve`; with --server URL the list comes from a reel server (GET\n"
    "/v1/consumers). Consumers are made and leased over HTTP (/v1/consumers).\n";

struct lister {
    store_read_t *r;
    int json;
    uint64_t now;
    store_buf_t buf;
};

static int print_consumer(struct lister *l, const store_consumer_t *c, uint64_t tail)
{
    uint64_t lag = tail > c->acked ? tail - c->acked : 0;
    int live = c->owner_len && l->now < c->lease_until_ms;
    if (l->json) {
        store_buf_t *o = &l->buf;
        store_buf_clear(o);
        store_buf_puts(o, "{\"name\":");
        store_json_write_string(o, c->name, c->name_len);
        store_buf_printf(o, ",\"feed\":%s,\"session\":", c->feed ? "true" : "false");
        if (c->feed)
            store_buf_puts(o, "null");
        else
            store_json_write_string(o, c->session, c->session_len);
        store_buf_puts(o, ",\"types\":");
        store_json_write_string(o, c->types, strlen(c->types));
        store_buf_printf(o, ",\"acked\":%llu,\"tail\":%llu,\"lag\":%llu,\"token\":%llu,\"owner\":",
                         (unsigned long long)c->acked, (unsigned long long)tail,
                         (unsigned long long)lag, (unsigned long long)c->token);
        if (live)
            store_json_write_string(o, c->owner, c->owner_len);
        else
            store_buf_puts(o, "null");
        store_buf_puts(o, ",\"lease_until\":");
        if (live)
            replay_write_time(o, (int64_t)c->lease_until_ms);
        else
            store_buf_puts(o, "null");
        store_buf_puts(o, "}");
        printf("%s\n", store_buf_cstr(o));
        return 0;
    }
    char lease[64] = "-";
    if (live)
        snprintf(lease, sizeof lease, "%.60s", c->owner);
    printf("%-24s %-24.24s %-16.16s %12llu %12llu %10llu %6llu %-16s %7.1f\n", c->name,
           c->feed ? "(feed)" : c->session, c->types[0] ? c->types : "*",
           (unsigned long long)c->acked, (unsigned long long)tail, (unsigned long long)lag,
           (unsigned long long)c->token, lease,
           live ? (double)(c->lease_until_ms - l->now) / 1000.0 : 0.0);
    return 0;
}

static int print_one(void *arg, const store_consumer_t *c)
{
    struct lister *l = arg;
    return print_consumer(l, c, store_consumer_tail(l->r, c));
}

/* One consumer as GET /v1/consumers serves it, into the fields the listing prints. */
static int from_json(json_t *j, store_consumer_t *c, uint64_t *tail)
{
    memset(c, 0, sizeof *c);
    const char *name = json_string_value(json_object_get(j, "name"));
    const char *sess = json_string_value(json_object_get(j, "session"));
    json_t *lease = json_object_get(j, "lease"), *t;
    size_t i, used = 0;
    if (!name || strlen(name) > STORE_CONSUMER_NAME_MAX)
        return -1;
    c->name_len = strlen(name);
    memcpy(c->name, name, c->name_len);
    c->feed = json_is_true(json_object_get(j, "feed"));
    if (sess && strlen(sess) <= STORE_SESSION_ID_MAX) {
        c->session_len = strlen(sess);
        memcpy(c->session, sess, c->session_len);
    }
    json_array_foreach(json_object_get(j, "types"), i, t) {
        const char *ty = json_string_value(t);
        if (!ty || used + strlen(ty) + 1 > STORE_CONSUMER_TYPES_MAX)
            return -1;
        used += (size_t)snprintf(c->types + used, sizeof c->types - used, "%s%s",
                                 used ? "," : "", ty);
    }
    c->acked = (uint64_t)json_integer_value(json_object_get(j, "acked"));
    c->token = (uint64_t)json_integer_value(json_object_get(j, "token"));
    *tail = (uint64_t)json_integer_value(json_object_get(j, "tail"));
    const char *owner = json_string_value(json_object_get(lease, "owner"));
    const char *until = json_string_value(json_object_get(lease, "expires_at"));
    if (owner && until && strlen(owner) <= STORE_CONSUMER_OWNER_MAX) {
        c->owner_len = strlen(owner);
        memcpy(c->owner, owner, c->owner_len);
        c->lease_until_ms = (uint64_t)store_parse_rfc3339(until, strlen(until));
    }
    return 0;
}

static int list_remote(const char *prog, const cmd_remote_t *r, struct lister *l)
{
    store_buf_t body = STORE_BUF_INIT;
    int rc = cmd_remote_get(prog, r, "/v1/consumers", &body);
    json_t *j = rc ? NULL : json_loadb((const char *)body.data, body.len, 0, NULL), *c;
    json_t *arr = json_object_get(j, "consumers");
    size_t i;
    if (!rc && !json_is_array(arr)) {
        cmd_error(prog, "%s answered something that is not a consumers list", r->url);
        rc = -1;
    }
    json_array_foreach(arr, i, c) {
        store_consumer_t x;
        uint64_t tail;
        if (from_json(c, &x, &tail)) {
            cmd_error(prog, "%s answered a consumer that does not parse", r->url);
            rc = -1;
            break;
        }
        print_consumer(l, &x, tail);
    }
    json_decref(j);
    store_buf_release(&body);
    return rc;
}

int cmd_consumers(int argc, char **argv)
{
    const char *prog = "consumers", *data = CMD_DEFAULT_DATA;
    struct lister l = {.buf = STORE_BUF_INIT};
    cmd_remote_t remote = {0};
    const opt_t rows[] = {
        CMD_OPT_DATA(&data),
        {.name = "json", .type = OPT_FLAG, .dest = &l.json,
         .help = "JSON lines instead of a table"},
        CMD_OPT_REMOTE(&remote),
        OPT_END,
    };
    const opt_cmd_t cmd = {.name = prog, .about = about, .opts = rows};
    int st = opt_parse(&cmd, argc, argv, NULL);
    if (st != OPT_GO)
        return st;
    if (!l.json)
        printf("%-24s %-24s %-16s %12s %12s %10s %6s %-16s %7s\n", "CONSUMER", "READS",
               "TYPES", "ACKED", "TAIL", "LAG", "TOKEN", "LEASED BY", "LEFT S");
    l.now = store_wall_ms();
    if (remote.url) {
        int rc = list_remote(prog, &remote, &l);
        store_buf_release(&l.buf);
        return rc ? CMD_FAIL : CMD_OK;
    }
    store_t *s = cmd_open_store(prog, data, 1, 0);
    if (!s)
        return CMD_FAIL;
    store_read_t r;
    int rc = store_read_begin(s, &r);
    if (rc == REEL_OK) {
        l.r = &r;
        rc = store_consumer_list(&r, print_one, &l);
        store_read_end(&r);
    }
    store_buf_release(&l.buf);
    store_close(s);
    if (rc != REEL_OK) {
        cmd_error(prog, "%s", reel_strerror(rc));
        return CMD_FAIL;
    }
    return CMD_OK;
}
