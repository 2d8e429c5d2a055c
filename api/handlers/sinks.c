/* sinks.c -- sinks report how far they have copied the feed (docs/HTTP.md "Sinks"):
 * POST /v1/sinks/{name} {"position":N[,"index":I][,"replicated":B,"why":W]}, GET
 * /v1/sinks, DELETE /v1/sinks/{name}; the lag metric (reel_sink_lag_events), append
 * backpressure (serve --max-sink-lag) and the replica watermark (serve --ack replica) read
 * it.
 *
 * The table lives in the server's memory only: a sink reports again after every batch it
 * commits (and every second while idle), so a restarted server has it back within a
 * second. Until a sink has reported, nothing waits for it for backpressure; with --ack
 * replica the watermark starts at 0 (reads show nothing, writes wait) until the replica
 * sink reports: a watermark kept on disk could claim what a replaced PostgreSQL no longer
 * holds, one learned from the sink cannot (docs/CLUSTER.md "Acknowledged by a replica").
 * Bounded: API_MAX_SINKS names.
 *
 * With --ack replica the replica sink's reports that say "replicated": true move the
 * watermark, the store's visible bound (store_set_visible): reads stop there, and writes
 * waiting in api/core/ack.c are woken to look.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api/handlers/handlers.h"
#include "store/json.h"

enum { SINK_BODY = API_PHASE_OWN };

/* The log's last position (0 when it cannot be read). */
static uint64_t tail_position(api_server_t *srv)
{
    store_read_t r;
    uint64_t tail = 0;
    if (store_read_begin(srv->store, &r) == REEL_OK) {
        store_read_see_all(&r); /* the lag counts what is not copied yet */
        store_tail_position(&r, &tail);
        store_read_end(&r);
    }
    return tail;
}

static uint64_t lag_of(uint64_t tail, uint64_t pos)
{
    return tail > pos ? tail - pos : 0;
}

int api__sink_over_lag(api_server_t *srv, uint64_t *lag)
{
    *lag = 0;
    if (!srv->lim.max_sink_lag)
        return 0;
    pthread_mutex_lock(&srv->sinks_lock);
    unsigned n = srv->n_sinks;
    uint64_t slowest = UINT64_MAX;
    for (unsigned i = 0; i < n; i++)
        if (srv->sinks[i].position < slowest)
            slowest = srv->sinks[i].position;
    pthread_mutex_unlock(&srv->sinks_lock);
    if (!n)
        return 0;
    *lag = lag_of(tail_position(srv), slowest);
    return *lag > srv->lim.max_sink_lag;
}

/* --ack replica: the watermark, how far the log is past it, and the writes' wait. */
static void ack_metrics(api_server_t *srv, store_buf_t *o, uint64_t tail)
{
    uint64_t vis;
    uint32_t idx;
    store_get_visible(srv->store, &vis, &idx);
    const char *n = "reel_ack_replica_wait_seconds";
    store_buf_printf(o, "# HELP reel_replica_watermark_position The feed position the replica "
                        "sink reported committed to a synchronously replicated PostgreSQL "
                        "(reads stop there; --ack replica).\n"
                        "# TYPE reel_replica_watermark_position gauge\n"
                        "reel_replica_watermark_position %llu\n"
                        "# HELP reel_replica_lag_events Positions of the log above the "
                        "watermark (durable here, not yet acknowledged).\n"
                        "# TYPE reel_replica_lag_events gauge\n"
                        "reel_replica_lag_events %llu\n"
                        "# HELP reel_ack_replica_total Writes that waited for the replica "
                        "(outcome: acked, or refused with 503 replica_behind).\n"
                        "# TYPE reel_ack_replica_total counter\n"
                        "reel_ack_replica_total{outcome=\"acked\"} %llu\n"
                        "reel_ack_replica_total{outcome=\"refused\"} %llu\n"
                        "# HELP %s Time from a write's local commit to its acknowledgement by "
                        "the replica (or its refusal).\n# TYPE %s histogram\n",
                     (unsigned long long)vis, (unsigned long long)lag_of(tail, vis),
                     (unsigned long long)atomic_load(&srv->ack_acked),
                     (unsigned long long)atomic_load(&srv->ack_refused), n, n);
    uint64_t cum = 0;
    for (size_t b = 0; b < API_LAT_BUCKETS; b++) {
        cum += atomic_load(&srv->ack_hist[b]);
        if (b < API_LAT_BUCKETS - 1)
            store_buf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", n,
                             (double)api__lat_bounds_us[b] / 1e6, (unsigned long long)cum);
        else
            store_buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", n, (unsigned long long)cum);
    }
    store_buf_printf(o, "%s_sum %.6f\n%s_count %llu\n", n,
                     (double)atomic_load(&srv->ack_sum_us) / 1e6, n, (unsigned long long)cum);
}

void api__sink_metrics(api_server_t *srv, store_buf_t *o)
{
    uint64_t tail = tail_position(srv);
    store_buf_puts(o, "# HELP reel_sink_lag_events Positions of the log a sink has not "
                      "committed yet (tail minus its reported position).\n"
                      "# TYPE reel_sink_lag_events gauge\n");
    pthread_mutex_lock(&srv->sinks_lock);
    for (unsigned i = 0; i < srv->n_sinks; i++) {
        store_buf_puts(o, "reel_sink_lag_events{sink=\"");
        store_buf_puts(o, srv->sinks[i].name); /* names are [A-Za-z0-9._-] */
        store_buf_printf(o, "\"} %llu\n",
                         (unsigned long long)lag_of(tail, srv->sinks[i].position));
    }
    pthread_mutex_unlock(&srv->sinks_lock);
    store_buf_printf(o, "# HELP reel_sink_backpressure_total Appends that waited for a sink "
                        "(outcome: passed after waiting, or refused with 503).\n"
                        "# TYPE reel_sink_backpressure_total counter\n"
                        "reel_sink_backpressure_total{outcome=\"waited\"} %llu\n"
                        "reel_sink_backpressure_total{outcome=\"refused\"} %llu\n",
                     (unsigned long long)atomic_load(&srv->sink_waited),
                     (unsigned long long)atomic_load(&srv->sink_refused));
    if (srv->lim.ack_replica)
        ack_metrics(srv, o, tail);
}

/* The sink's name from the path: 1..63 bytes of [A-Za-z0-9._-] (a metric label value). */
static int sink_name(api_req_t *rq, char name[64])
{
    if (!rq->param_len || rq->param_len > 63)
        return -1;
    for (size_t i = 0; i < rq->param_len; i++) {
        char c = rq->param[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return -1;
    }
    memcpy(name, rq->param, rq->param_len);
    name[rq->param_len] = 0;
    return 0;
}

static void write_sink(store_buf_t *o, const struct api_sink *k, uint64_t tail, uint64_t now)
{
    store_buf_printf(o, "{\"name\":\"%s\",\"position\":%llu,\"index\":%u,\"lag\":%llu,"
                        "\"reported_ms_ago\":%llu,\"replicated\":%s",
                     k->name, (unsigned long long)k->position, k->index,
                     (unsigned long long)lag_of(tail, k->position),
                     (unsigned long long)(now - k->reported_ms), k->replicated ? "true" : "false");
    if (!k->replicated && k->why[0]) {
        store_buf_puts(o, ",\"why\":");
        store_json_write_string(o, k->why, strlen(k->why));
    }
    store_buf_putc(o, '}');
}

static int cursor_le(uint64_t p1, uint32_t i1, uint64_t p2, uint32_t i2)
{
    return p1 < p2 || (p1 == p2 && i1 <= i2);
}

/* --ack replica: the replica sink's replicated cursor becomes the watermark (it only
 * grows). Caller holds sinks_lock. */
static void watermark(api_server_t *srv, const struct api_sink *k)
{
    if (!srv->lim.ack_replica || strcmp(k->name, srv->lim.replica_sink) || !k->replicated)
        return;
    uint64_t vis;
    uint32_t idx;
    store_get_visible(srv->store, &vis, &idx);
    if (!cursor_le(k->rep_position, k->rep_index, vis, idx))
        store_set_visible(srv->store, k->rep_position, k->rep_index);
}

/* Sets (or adds) sink 'name' at 'pos'; a position never goes back (a late report of an
 * older batch must not raise the lag). -1 when the table is full. */
static int sink_set(api_server_t *srv, const char *name, const struct api_sink *in,
                    uint64_t tail, struct api_sink *out)
{
    int rc = 0;
    pthread_mutex_lock(&srv->sinks_lock);
    unsigned i = 0;
    while (i < srv->n_sinks && strcmp(srv->sinks[i].name, name))
        i++;
    if (i == srv->n_sinks) {
        if (i == API_MAX_SINKS) {
            rc = -1;
        } else {
            memset(&srv->sinks[i], 0, sizeof srv->sinks[i]);
            snprintf(srv->sinks[i].name, sizeof srv->sinks[i].name, "%s", name);
            srv->n_sinks++;
        }
    }
    if (!rc) {
        struct api_sink *k = &srv->sinks[i];
        if (!cursor_le(in->position, in->index, k->position, k->index))
            k->position = in->position, k->index = in->index;
        k->replicated = in->replicated;
        snprintf(k->why, sizeof k->why, "%s", in->why);
        /* A cursor past this cell's last position ('tail', read before the report) is
         * another store's (a data directory replaced under the sink's checkpoint): counted,
         * it would show and acknowledge events the sink never copied. */
        if (k->replicated && in->position > tail) {
            k->replicated = 0;
            snprintf(k->why, sizeof k->why, "position %llu is past this cell's last position "
                     "%llu: the sink copied another store", (unsigned long long)in->position,
                     (unsigned long long)tail);
        }
        if (k->replicated && !cursor_le(in->position, in->index, k->rep_position, k->rep_index))
            k->rep_position = in->position, k->rep_index = in->index;
        k->reported_ms = api__now_ms();
        watermark(srv, k);
        *out = *k;
    }
    pthread_mutex_unlock(&srv->sinks_lock);
    return rc;
}

static enum MHD_Result report(api_req_t *rq, const char *name)
{
    enum MHD_Result r;
    if (api__body_complete(rq, &r) != REEL_OK)
        return r;
    json_error_t e;
    json_t *j = json_loadb((const char *)rq->body.data, rq->body.len, 0, &e);
    json_t *p = j ? json_object_get(j, "position") : NULL;
    json_t *ix = j ? json_object_get(j, "index") : NULL;
    json_t *rp = j ? json_object_get(j, "replicated") : NULL;
    json_t *why = j ? json_object_get(j, "why") : NULL;
    if (!p || !json_is_integer(p) || json_integer_value(p) < 0 ||
        (ix && (!json_is_integer(ix) || json_integer_value(ix) < 0 ||
                json_integer_value(ix) > UINT32_MAX)) ||
        (rp && !json_is_boolean(rp)) || (why && !json_is_string(why))) {
        json_decref(j);
        return api__problem(rq, REEL_EINVALID_PARAMETER,
                            "the body must be {\"position\": N} with N a position >= 0, and "
                            "optionally \"index\": I (a change index), \"replicated\": true|"
                            "false and \"why\": TEXT");
    }
    struct api_sink in = {.position = (uint64_t)json_integer_value(p),
                          .index = ix ? (uint32_t)json_integer_value(ix) : 0,
                          .replicated = rp && json_is_true(rp)};
    snprintf(in.why, sizeof in.why, "%s", why ? json_string_value(why) : "");
    json_decref(j);
    struct api_sink k;
    if (sink_set(rq->srv, name, &in, tail_position(rq->srv), &k))
        return api__problem(rq, REEL_ETOO_MANY, "at most %d sinks report to one server; "
                            "forget one with DELETE /v1/sinks/NAME", API_MAX_SINKS);
    /* Appends held back by this sink look again; with --ack replica, writes waiting for
     * the watermark and readers stopped at it too (sink_set moved it). Not otherwise:
     * every long-poll and SSE stream would wake at every report. */
    if (rq->srv->lim.max_sink_lag || rq->srv->lim.ack_replica)
        api__wake_all(rq->srv, 0);
    store_buf_t o = STORE_BUF_INIT;
    write_sink(&o, &k, tail_position(rq->srv), k.reported_ms);
    return api__reply_json(rq, 200, &o);
}

/* POST or PUT /v1/sinks/{name}: a sink's committed position. Needs the admin scope: a
 * position says what may be dropped and what appends wait for. */
enum MHD_Result api__sink_report(api_req_t *rq, const char *data, size_t *size)
{
    char name[64];
    if (rq->phase == API_PHASE_NEW) {
        if (rq->token_scope && !(rq->token_scope & API_SCOPE_ADMIN))
            return api__problem(rq, REEL_EFORBIDDEN, "reporting a sink's position needs a "
                                "token with the full scope");
        if (sink_name(rq, name))
            return api__problem(rq, REEL_EINVALID_PARAMETER, "a sink name is 1..63 bytes of "
                                "A-Z a-z 0-9 . _ -");
    }
    enum MHD_Result r;
    if (api__body_step(rq, data, size, SINK_BODY, &r))
        return r;
    sink_name(rq, name);
    return report(rq, name);
}

enum MHD_Result api__sink_forget(api_req_t *rq, const char *data, size_t *size)
{
    char name[64];
    if (sink_name(rq, name))
        return api__problem(rq, REEL_EINVALID_PARAMETER, "a sink name is 1..63 bytes of "
                            "A-Z a-z 0-9 . _ -");
    api_server_t *srv = rq->srv;
    int found = 0;
    pthread_mutex_lock(&srv->sinks_lock);
    for (unsigned i = 0; i < srv->n_sinks; i++)
        if (!strcmp(srv->sinks[i].name, name)) {
            srv->sinks[i] = srv->sinks[--srv->n_sinks];
            found = 1;
            break;
        }
    pthread_mutex_unlock(&srv->sinks_lock);
    if (!found)
        return api__problem(rq, REEL_ENOT_FOUND, "no sink '%s' has reported", name);
    api__wake_all(srv, 0);
    return api__reply_text(rq, 204, "application/json", "", 0);
}

enum MHD_Result api__sinks_list(api_req_t *rq, const char *data, size_t *size)
{
    api_server_t *srv = rq->srv;
    uint64_t tail = tail_position(srv), now = api__now_ms();
    store_buf_t o = STORE_BUF_INIT;
    store_buf_printf(&o, "{\"tail\":%llu,\"max_sink_lag\":%llu,", (unsigned long long)tail,
                     (unsigned long long)srv->lim.max_sink_lag);
    if (srv->lim.ack_replica) {
        uint64_t vis;
        uint32_t idx;
        store_get_visible(srv->store, &vis, &idx);
        store_buf_printf(&o, "\"ack\":\"replica\",\"replica_sink\":\"%s\",\"watermark\":"
                             "{\"position\":%llu,\"index\":%u},", srv->lim.replica_sink,
                         (unsigned long long)vis, idx);
    } else {
        store_buf_puts(&o, "\"ack\":\"local\",");
    }
    store_buf_puts(&o, "\"sinks\":[");
    pthread_mutex_lock(&srv->sinks_lock);
    for (unsigned i = 0; i < srv->n_sinks; i++) {
        if (i)
            store_buf_putc(&o, ',');
        write_sink(&o, &srv->sinks[i], tail, now);
    }
    pthread_mutex_unlock(&srv->sinks_lock);
    store_buf_puts(&o, "]}");
    return api__reply_json(rq, 200, &o);
}
