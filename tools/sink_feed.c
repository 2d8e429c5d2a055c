/* sink_feed.c -- `reel sink postgres`: a page of the feed with changes parsed into
 * sink_item_t (sink.h). Elements are read with the verbatim member scanner of remote.c:
 * JSON texts (data, raw, the record, its metadata) reach PostgreSQL as the source wrote
 * them, never re-encoded. */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/cmds.h"
#include "tools/sink.h"


/* Room for 'n' bytes, or NULL: the arena is sized for a page (3x its text), so running
 * out means a malformed page. */
static char *arena_take(sink_arena_t *a, size_t n)
{
    if (a->cap - a->len < n)
        return NULL;
    char *p = a->p + a->len;
    a->len += n;
    return p;
}


/* Member 'name' of 'json': from the element's index when 'json' is the element. */
static int lookup(const sink_parser_t *ps, const char *json, size_t len, const char *name,
                  const char **v, size_t *n)
{
    if (json != ps->el || ps->n_kv < 0)
        return cmd_json_member(json, len, name, v, n);
    size_t nl = strlen(name);
    for (int i = 0; i < ps->n_kv; i++)
        if (ps->kv[i].kn == nl + 2 && !memcmp(ps->kv[i].k + 1, name, nl)) {
            *v = ps->kv[i].v;
            *n = ps->kv[i].vn;
            return 0;
        }
    return -1;
}

static int member(sink_parser_t *ps, const char *name, const char **v, size_t *n)
{
    return lookup(ps, ps->el, ps->el_len, name, v, n);
}

/* A string member, decoded and NUL-terminated; NULL for null or absent. */
static const char *str_in(sink_parser_t *ps, const char *json, size_t len, const char *name)
{
    const char *v;
    size_t n;
    if (lookup(ps, json, len, name, &v, &n) || n < 2 || v[0] != '"')
        return NULL;
    store_buf_t b = STORE_BUF_INIT;
    cmd_json_unquote(v, n, &b);
    char *out = arena_take(&ps->a, b.len + 1);
    if (!out || store_buf_failed(&b)) {
        ps->bad = 1;
        store_buf_release(&b);
        return NULL;
    }
    if (b.len)
        memcpy(out, b.data, b.len);
    out[b.len] = 0;
    store_buf_release(&b);
    return out;
}

static const char *str(sink_parser_t *ps, const char *name)
{
    return str_in(ps, ps->el, ps->el_len, name);
}

/* The JSON text of a member, NUL-terminated; NULL for null or absent. */
static const char *text_in(sink_parser_t *ps, const char *json, size_t len, const char *name)
{
    const char *v;
    size_t n;
    if (lookup(ps, json, len, name, &v, &n) || (n == 4 && !memcmp(v, "null", 4)))
        return NULL;
    char *out = arena_take(&ps->a, n + 1);
    if (!out) {
        ps->bad = 1;
        return NULL;
    }
    memcpy(out, v, n);
    out[n] = 0;
    return out;
}

uint64_t sink_json_u64(const char *json, size_t len, const char *name, int *ok)
{
    const char *v;
    size_t n;
    if (cmd_json_member(json, len, name, &v, &n) || !n || v[0] < '0' || v[0] > '9') {
        if (ok)
            *ok = 0;
        return 0;
    }
    if (ok)
        *ok = 1;
    return strtoull(v, NULL, 10);
}

static uint64_t u64(sink_parser_t *ps, const char *name)
{
    const char *v;
    size_t n;
    if (member(ps, name, &v, &n) || !n || v[0] < '0' || v[0] > '9') {
        ps->bad = 1;
        return 0;
    }
    return strtoull(v, NULL, 10);
}

/* "2026-12-05T07:29:57.116Z" (what reel writes) -> Unix ms; 0 when it is not that. */
static uint64_t time_ms(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t < 0 ? 0 : (uint64_t)t * 1000 + (uint64_t)ms;
}

static int hex32(const char *s, uint8_t out[32])
{
    if (!s || strlen(s) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes base64 's' into the arena; -1 when it is not base64. */
static int unbase64(sink_parser_t *ps, const char *s, const uint8_t **out, size_t *len)
{
    size_t n = s ? strlen(s) : 0;
    uint8_t *o = (uint8_t *)arena_take(&ps->a, n / 4 * 3 + 3);
    if (!s || !o || n % 4)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++)
            v[j] = s[i + j] == '=' ? 0 : b64val(s[i + j]);
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0)
            return -1;
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        o[k++] = (uint8_t)(w >> 16);
        if (s[i + 2] != '=')
            o[k++] = (uint8_t)(w >> 8);
        if (s[i + 3] != '=')
            o[k++] = (uint8_t)w;
    }
    *out = o;
    *len = k;
    return 0;
}

/* The sandbox-agent fields: eventIndex and connectionId kept in raw by the SDK adapter
 * (clients/typescript/src/adapters/sandbox-agent.ts), createdAt as client_time. */
static void sdk_fields(sink_parser_t *ps, sink_item_t *it)
{
    int ok = 0;
    it->event_index = it->raw ? sink_json_u64(it->raw, strlen(it->raw), "eventIndex", &ok) : 0;
    if (!ok)
        it->event_index = it->sequence;
    const char *conn = it->raw ? str_in(ps, it->raw, strlen(it->raw), "connectionId") : NULL;
    it->connection_id = conn ? conn : "";
    it->created_at = it->time_ms;
    if (it->client_time && it->client_time[0] >= '0' && it->client_time[0] <= '9')
        it->created_at = strtoull(it->client_time, NULL, 10);
    else if (it->client_time && time_ms(it->client_time + 1))
        it->created_at = time_ms(it->client_time + 1); /* the quoted text reel wrote back */
}

static void parse_event(sink_parser_t *ps, sink_item_t *it)
{
    it->sequence = u64(ps, "sequence");
    it->event_id = str(ps, "event_id");
    it->type = str(ps, "type");
    const char *src = str(ps, "source");
    it->sender = src ? src : "";
    it->native = str(ps, "native_session_id");
    it->client_time = text_in(ps, ps->el, ps->el_len, "client_time");
    it->payload = text_in(ps, ps->el, ps->el_len, "data");
    it->raw = text_in(ps, ps->el, ps->el_len, "raw");
    if (!it->event_id || !it->type || hex32(str(ps, "hash"), it->hash) ||
        unbase64(ps, str(ps, "body"), &it->body, &it->body_len)) {
        ps->bad = 1;
        return;
    }
    SHA256(it->body, it->body_len, it->body_hash);
    it->has_kept = !hex32(str(ps, "kept_hash"), it->kept_hash);
    it->starts = !strcmp(it->type, "session.started");
    it->ends = !strcmp(it->type, "session.ended");
    sdk_fields(ps, it);
}

static void parse_change(sink_parser_t *ps, sink_item_t *it)
{
    it->is_change = 1;
    it->change = str(ps, "change");
    it->kind = (int)u64(ps, "kind");
    it->index = (uint32_t)u64(ps, "index");
    if (!it->index)
        ps->bad = 1;
    it->record = text_in(ps, ps->el, ps->el_len, "record");
    it->has_last_hash = !hex32(str(ps, "last_hash"), it->last_hash);
    it->has_first_hash = !hex32(str(ps, "first_hash"), it->first_hash);
    if (!it->record || !it->change) {
        ps->bad = 1;
        return;
    }
    const char *r = it->record;
    size_t n = strlen(r);
    it->agent = str_in(ps, r, n, "agent");
    it->agent_session_id = str_in(ps, r, n, "native_session_id");
    it->status = str_in(ps, r, n, "status");
    it->metadata = text_in(ps, r, n, "metadata");
    it->created_ms = time_ms(str_in(ps, r, n, "created_at"));
    it->updated_ms = time_ms(str_in(ps, r, n, "updated_at"));
    it->ended_ms = time_ms(str_in(ps, r, n, "ended_at"));
    it->first_ms = time_ms(str_in(ps, r, n, "first_event_at"));
    it->last_sequence = sink_json_u64(r, n, "last_sequence", NULL);
    it->event_count = sink_json_u64(r, n, "event_count", NULL);
    it->runs = sink_json_u64(r, n, "runs", NULL);
    it->version = sink_json_u64(r, n, "version", NULL);
    int ok = 0;
    it->first_sequence = sink_json_u64(r, n, "first_sequence", &ok);
    if (!ok)
        it->first_sequence = 1;
    if (!it->status)
        ps->bad = 1;
}


static int on_element(void *arg, const char *el, size_t n)
{
    sink_page_t *pg = arg;
    if (pg->n == pg->cap) {
        pg->cap = pg->cap ? pg->cap * 2 : 256;
        pg->items = realloc(pg->items, pg->cap * sizeof *pg->items);
        if (!pg->items)
            return -1;
    }
    sink_item_t *it = &pg->items[pg->n];
    memset(it, 0, sizeof *it);
    sink_parser_t *ps = &pg->ps;
    ps->el = el, ps->el_len = n, ps->bad = 0;
    ps->n_kv = cmd_json_members(el, n, ps->kv, sizeof ps->kv / sizeof ps->kv[0]);
    if (ps->n_kv == (int)(sizeof ps->kv / sizeof ps->kv[0]))
        ps->n_kv = -1; /* more members than indexed: scan */
    it->position = u64(ps, "position");
    it->session = str(ps, "session_id");
    it->time_ms = time_ms(str(ps, "time"));
    const char *v;
    size_t vn;
    if (!member(ps, "change", &v, &vn))
        parse_change(ps, it);
    else
        parse_event(ps, it);
    /* Cursors must grow: (position, index), an event's index being 0. */
    uint64_t prev = pg->n ? pg->items[pg->n - 1].position : pg->after;
    uint32_t prev_index = pg->n ? pg->items[pg->n - 1].index : pg->after_index;
    int grows = it->position > prev || (it->position == prev && it->index > prev_index);
    if (ps->bad || !it->session || !it->time_ms || !grows)
        return 1;
    pg->n++;
    return 0;
}

/* Parses the page in 'body' into pg->items. 0, or -1 when it is not a page of the feed. */
int sink_page_parse(sink_page_t *pg, const store_buf_t *body, int *more)
{
    pg->n = 0;
    size_t cap = body->len * 3 + 4096;
    if (pg->ps.a.cap < cap) {
        free(pg->ps.a.p);
        if (!(pg->ps.a.p = malloc(cap)))
            return -1;
        pg->ps.a.cap = cap;
    }
    pg->ps.a.len = 0;
    const char *json = (const char *)body->data;
    if (cmd_json_array_each(json, body->len, "events", on_element, pg))
        return -1;
    const char *v;
    size_t n;
    *more = !cmd_json_member(json, body->len, "hasMore", &v, &n) && n == 4 && !memcmp(v, "true", 4);
    return 0;
}

