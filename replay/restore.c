/* restore.c -- durable session resume: the replay text of a session's newest events.
 *
 * fit=sdk reproduces the sandbox-agent 0.4 SDK's buildReplayText: the header line, then
 * oldest first one line per event {"createdAt":ms,"sender":source,"payload":data} (ms:
 * the event's client_time when it has one, the integer as given or RFC 3339 read as
 * Date.parse reads it; else the commit time) while
 * the text stays within max_chars (UTF-16 code units, as JavaScript counts), then
 * "\n[history truncated]" when an event did not fit -- which cuts the *newest* events.
 * fit=newest (the default) keeps the newest events that fit instead, still oldest first,
 * with the line "[earlier history truncated]" after the header when any was left out.
 * fit=newest also leaves out what would only repeat a later line of the window (issue 17):
 * the item.started and item.delta lines of an item whose item.completed is in the window
 * (the completion repeats the started fields, and a text item's completion carries the
 * whole text the deltas spelled out; deltas stay when the completion has no text). The
 * SDK's fit keeps every event, as the SDK does.
 */
#include <stdlib.h>
#include <string.h>

#include "replay/replay_int.h"
#include "store/parse.h"

#define EARLIER_MARKER "[earlier history truncated]\n"
#define SDK_MARKER "\n[history truncated]"

enum { L_OTHER, L_STARTED, L_DELTA, L_DONE, L_DONE_TEXT };

struct line {
    uint64_t seq;
    size_t off, len; /* in lines buffer (UTF-8, no newline) */
    size_t units;    /* UTF-16 length */
    size_t id_off, id_len; /* item_id of an item.* event, in 'ids' */
    int kind;              /* L_* */
    int drop;              /* fit=newest: repeated by a later line, left out */
};

struct collect {
    struct line *v;
    size_t n, cap;
    store_buf_t lines;
    store_buf_t ids;
};

/* The kind and item_id of an item.* event (data flat, or under data.item). */
static void item_kind(struct collect *c, struct line *l, store_mp_t type, store_mp_t data)
{
    const char *t, *id;
    size_t tlen, idlen;
    store_mp_t item = data, v, text;
    store_mp_obj_t o;
    l->kind = L_OTHER;
    if (!replay__mp_str(type, &t, &tlen) || tlen < 10 || memcmp(t, "item.", 5))
        return;
    if (replay__mp_get(data, "item", &v)) { /* sandbox-agent's UniversalItem */
        store_mp_t probe = v;
        if (!store_mp_next(&probe, &o) && o.type == STORE_MP_MAP)
            item = v;
    }
    if (!(replay__mp_get(item, "item_id", &v) && replay__mp_str(v, &id, &idlen)) &&
        !(replay__mp_get(data, "item_id", &v) && replay__mp_str(v, &id, &idlen)))
        return;
    const char *ts;
    size_t tslen;
    if (tlen == 12 && !memcmp(t, "item.started", 12))
        l->kind = L_STARTED;
    else if (tlen == 10 && !memcmp(t, "item.delta", 10))
        l->kind = L_DELTA;
    else if (tlen == 14 && !memcmp(t, "item.completed", 14))
        l->kind = replay__mp_get(item, "text", &text) && replay__mp_str(text, &ts, &tslen) && tslen
                      ? L_DONE_TEXT : L_DONE;
    else
        return;
    l->id_off = c->ids.len;
    l->id_len = idlen;
    store_buf_put(&c->ids, id, idlen);
}

static uint64_t id_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Marks the lines a later completion of the same item repeats (newest first, so the
 * completion is seen before what it repeats). REEL_OK or REEL_ENOMEM. */
static int mark_repeats(struct collect *c)
{
    size_t cap = 16;
    while (cap < 2 * c->n)
        cap *= 2;
    size_t *slot = malloc(cap * sizeof *slot); /* line index + 1 of a completion, 0 = free */
    if (!slot)
        return REEL_ENOMEM;
    memset(slot, 0, cap * sizeof *slot);
    const uint8_t *ids = c->ids.data;
    for (size_t i = c->n; i-- > 0;) {
        struct line *l = &c->v[i];
        if (l->kind == L_OTHER)
            continue;
        size_t h = (size_t)id_hash(ids + l->id_off, l->id_len) & (cap - 1);
        while (slot[h]) {
            const struct line *d = &c->v[slot[h] - 1];
            if (d->id_len == l->id_len && !memcmp(ids + d->id_off, ids + l->id_off, l->id_len))
                break;
            h = (h + 1) & (cap - 1);
        }
        if (l->kind == L_DONE || l->kind == L_DONE_TEXT) {
            slot[h] = i + 1; /* the next completion of the item after the lines before it */
        } else if (slot[h]) {
            int text = c->v[slot[h] - 1].kind == L_DONE_TEXT;
            l->drop = l->kind == L_STARTED || (l->kind == L_DELTA && text);
        }
    }
    free(slot);
    return REEL_OK;
}

/* Appends the API JSON of the events kept, once the fit is known (usually a fraction of
 * the events read: rendering only those halves the cost of a truncated restore). */
struct render {
    store_buf_t *out;
    const replay_restore_opts_t *opt;
    size_t n;
};

static int render_one(void *arg, const store_event_view_t *ev)
{
    struct render *w = arg;
    if (w->n++)
        store_buf_putc(w->out, ',');
    if (w->opt->render)
        return w->opt->render(w->opt->render_arg, w->out, ev, w->opt->flags);
    if (ev->envelope) { /* the store's (store_read_t.envelopes: never with REPLAY_RAW) */
        size_t mark = w->out->len;
        store_buf_put(w->out, ev->envelope, ev->envelope_len);
        if (w->opt->flags & REPLAY_NO_POSITION)
            replay_drop_position(w->out, mark);
        return store_buf_failed(w->out) ? REEL_ENOMEM : REEL_OK;
    }
    return replay_write_event(w->out, ev, w->opt->flags);
}

/* createdAt of an event: its client_time when given, else its commit time. */
static int created_at(const store_event_view_t *ev, store_mp_t ct, uint64_t *ms)
{
    store_mp_obj_t o;
    *ms = ev->time_ms;
    if (store_mp_next(&ct, &o))
        return REEL_ECORRUPT;
    if (o.type == STORE_MP_NIL)
        return REEL_OK;
    if (o.type == STORE_MP_UINT) {
        *ms = o.u;
        return REEL_OK;
    }
    int64_t t = o.type == STORE_MP_STR ? store_parse_rfc3339_js((const char *)o.ptr, o.len) : -1;
    if (t < 0) /* ingest accepts nothing else */
        return REEL_ECORRUPT;
    *ms = (uint64_t)t;
    return REEL_OK;
}

/* One event -> its SDK line. */
static int collect_one(void *arg, const store_event_view_t *ev)
{
    struct collect *c = arg;
    store_mp_t f[REPLAY_NFIELDS];
    uint64_t ms;
    if (replay__body_fields(ev, f) || created_at(ev, f[REPLAY_F_CLIENT_TIME], &ms))
        return REEL_ECORRUPT;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct line *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return REEL_ENOMEM;
        c->v = v, c->cap = cap;
    }
    struct line *l = &c->v[c->n];
    l->seq = ev->sequence;
    l->drop = 0;
    item_kind(c, l, f[REPLAY_F_TYPE], f[REPLAY_F_DATA]); /* (before js_json consumes them) */
    if (store_buf_failed(&c->ids))
        return REEL_ENOMEM;
    l->off = c->lines.len;
    store_buf_printf(&c->lines, "{\"createdAt\":%llu,\"sender\":", (unsigned long long)ms);
    int rc = replay__js_json(&f[REPLAY_F_SOURCE], &c->lines);
    store_buf_puts(&c->lines, ",\"payload\":");
    if (!rc)
        rc = replay__js_json(&f[REPLAY_F_DATA], &c->lines);
    store_buf_putc(&c->lines, '}');
    l->len = c->lines.len - l->off;
    if (rc)
        return rc;
    if (store_buf_failed(&c->lines))
        return REEL_ENOMEM;
    l->units = replay__utf16_len(c->lines.data + l->off, l->len);
    c->n++;
    return REEL_OK;
}

/* The SDK's algorithm: [0, *end) fit; stop at the first line that does not. */
static size_t fit_sdk(const struct collect *c, size_t max_chars, int *truncated)
{
    size_t len = replay__utf16_len((const uint8_t *)REPLAY_RESTORE_TEXT_HEADER,
                                   strlen(REPLAY_RESTORE_TEXT_HEADER));
    for (size_t i = 0; i < c->n; i++) {
        if (len + c->v[i].units + 1 > max_chars) {
            *truncated = 1;
            return i;
        }
        len += c->v[i].units + 1;
    }
    return c->n;
}

/* fit=newest: the first kept index; the newest lines that fit with the marker. */
static size_t fit_newest(const struct collect *c, size_t max_chars, int *truncated)
{
    size_t len = strlen(REPLAY_RESTORE_TEXT_HEADER), total = len;
    for (size_t i = 0; i < c->n; i++)
        total += c->v[i].drop ? 0 : c->v[i].units + 1;
    if (total <= max_chars)
        return 0;
    *truncated = 1;
    len += strlen(EARLIER_MARKER);
    size_t first = c->n;
    while (first > 0 && (c->v[first - 1].drop || len + c->v[first - 1].units + 1 <= max_chars)) {
        len += c->v[first - 1].drop ? 0 : c->v[first - 1].units + 1;
        first--;
    }
    while (first < c->n && c->v[first].drop)
        first++; /* the window starts at a line that is written */
    return first;
}

int replay_restore(store_read_t *r, const char *id, size_t id_len,
                   const replay_restore_opts_t *opt, replay_restore_t *out)
{
    static const replay_restore_opts_t defaults = REPLAY_RESTORE_DEFAULT;
    if (!opt)
        opt = &defaults;
    memset(out, 0, sizeof *out);
    size_t max_events = opt->max_events;
    if (max_events > REPLAY_RESTORE_MAX_EVENTS)
        max_events = REPLAY_RESTORE_MAX_EVENTS;
    struct collect c = {NULL, 0, 0, STORE_BUF_INIT, STORE_BUF_INIT};
    int rc = max_events ? store_events_newest(r, id, id_len, max_events, collect_one, &c)
                        : REEL_OK;
    if (!rc && !max_events) { /* still report a missing session */
        store_session_t rec;
        rc = store_session_get(r, id, id_len, &rec);
    }
    if (rc)
        goto done;
    size_t begin = 0, end = c.n;
    if (opt->fit == REPLAY_FIT_SDK)
        end = fit_sdk(&c, opt->max_chars, &out->truncated);
    else if (!(rc = mark_repeats(&c)))
        begin = fit_newest(&c, opt->max_chars, &out->truncated);
    if (rc)
        goto done;
    out->has_text = c.n > 0;
    if (out->has_text) {
        store_buf_puts(&out->text, REPLAY_RESTORE_TEXT_HEADER);
        if (opt->fit != REPLAY_FIT_SDK && out->truncated)
            store_buf_puts(&out->text, EARLIER_MARKER);
    }
    for (size_t i = begin; i < end; i++) {
        if (c.v[i].drop)
            continue;
        store_buf_put(&out->text, c.lines.data + c.v[i].off, c.v[i].len);
        store_buf_putc(&out->text, '\n');
    }
    /* Second pass over the kept range, in the same read transaction, so the same events:
     * a session's sequences are dense, so (first kept - 1, count) names them exactly. */
    store_buf_putc(&out->events, '[');
    struct render w = {&out->events, opt, 0};
    /* The envelopes of the kept events from the store's envelope cache (store/cache.c),
     * which has them checked and rendered when a reader asked before; not with 'raw'. */
    int envelopes = r->envelopes;
    r->envelopes = !(opt->flags & REPLAY_RAW);
    if (begin < end)
        rc = store_events_after(r, id, id_len, c.v[begin].seq - 1, end - begin, render_one, &w,
                                NULL);
    r->envelopes = envelopes;
    if (rc)
        goto done;
    if (w.n != end - begin) {
        rc = REEL_ECORRUPT;
        goto done;
    }
    store_buf_putc(&out->events, ']');
    if (opt->fit == REPLAY_FIT_SDK && out->truncated)
        store_buf_puts(&out->text, SDK_MARKER);
    if (begin < end) {
        out->from_sequence = c.v[begin].seq;
        out->to_sequence = c.v[end - 1].seq;
    }
    if (store_buf_failed(&out->text) || store_buf_failed(&out->events))
        rc = REEL_ENOMEM;
done:
    free(c.v);
    store_buf_release(&c.lines);
    store_buf_release(&c.ids);
    if (rc)
        replay_restore_release(out);
    return rc;
}

void replay_restore_release(replay_restore_t *out)
{
    store_buf_release(&out->text);
    store_buf_release(&out->events);
}

int replay_write_restore(store_buf_t *out, const store_session_t *rec,
                         const replay_restore_t *res)
{
    store_buf_puts(out, "{\"session\":");
    int rc = replay_write_session(out, rec);
    if (rc)
        return rc;
    store_buf_puts(out, ",\"events\":");
    store_buf_put(out, res->events.data, res->events.len);
    store_buf_puts(out, ",\"replay_text\":");
    if (res->has_text)
        store_json_write_string(out, (const char *)res->text.data, res->text.len);
    else
        store_buf_puts(out, "null");
    store_buf_printf(out, ",\"truncated\":%s,\"from_sequence\":%llu,\"to_sequence\":%llu}",
                     res->truncated ? "true" : "false",
                     (unsigned long long)res->from_sequence,
                     (unsigned long long)res->to_sequence);
    return store_buf_failed(out) ? REEL_ENOMEM : REEL_OK;
}
