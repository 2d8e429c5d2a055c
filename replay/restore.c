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
 */
#include <stdlib.h>
#include <string.h>

#include "replay/replay_int.h"
#include "store/parse.h"

#define EARLIER_MARKER "[earlier history truncated]\n"
#define SDK_MARKER "\n[history truncated]"

struct line {
    uint64_t seq;
    size_t off, len; /* in lines buffer (UTF-8, no newline) */
    size_t units;    /* UTF-16 length */
};

struct collect {
    struct line *v;
    size_t n, cap;
    store_buf_t lines;
};

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
        return w->opt->render(w->opt->render_arg, w->out, ev, w->opt->include_raw);
    return replay_write_event(w->out, ev, w->opt->include_raw);
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
        total += c->v[i].units + 1;
    if (total <= max_chars)
        return 0;
    *truncated = 1;
    len += strlen(EARLIER_MARKER);
    size_t first = c->n;
    while (first > 0 && len + c->v[first - 1].units + 1 <= max_chars) {
        len += c->v[first - 1].units + 1;
        first--;
    }
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
    struct collect c = {NULL, 0, 0, STORE_BUF_INIT};
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
    else
        begin = fit_newest(&c, opt->max_chars, &out->truncated);
    out->has_text = c.n > 0;
    if (out->has_text) {
        store_buf_puts(&out->text, REPLAY_RESTORE_TEXT_HEADER);
        if (opt->fit != REPLAY_FIT_SDK && out->truncated)
            store_buf_puts(&out->text, EARLIER_MARKER);
    }
    for (size_t i = begin; i < end; i++) {
        store_buf_put(&out->text, c.lines.data + c.v[i].off, c.v[i].len);
        store_buf_putc(&out->text, '\n');
    }
    /* Second pass over the kept range, in the same read transaction, so the same events:
     * a session's sequences are dense, so (first kept - 1, count) names them exactly. */
    store_buf_putc(&out->events, '[');
    struct render w = {&out->events, opt, 0};
    if (begin < end &&
        (rc = store_events_after(r, id, id_len, c.v[begin].seq - 1, end - begin, render_one,
                                 &w, NULL)))
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
