/* changes.c -- the feed with changes: GET /v1/events?changes=1 and /v1/events/sse?changes=1
 * (docs/HTTP.md "The feed with changes", docs/FORMAT.md section 13).
 *
 * One read walks events and session record changes together in position order
 * (store_feed_changes_after) and renders them into the page or the SSE buffer. Without
 * 'changes' the feed routes keep their own code (events.c, sse.c), so existing clients get
 * exactly what they got before. 'bodies' adds to each event what a copy needs to rebuild
 * it bit for bit (the sink, docs/CLUSTER.md): its chain hash and its stored msgpack body.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers/handlers.h"
#include "api/live/live.h"
#include "replay/replay.h"

/* The envelope, then (with 'bodies') "hash" and "body" before its closing brace. */
static int render_event(api_cfeed_t *f, const store_event_view_t *ev)
{
    size_t mark = f->out->len;
    int rc = f->bodies ? store_event_check(ev) : REEL_OK;
    if (!rc)
        rc = f->bodies ? replay_write_event(f->out, ev, f->include_raw)
                       : api__render_event(f->srv, f->out, ev, f->include_raw);
    if (rc || !f->bodies)
        return rc;
    return replay_write_event_body(f->out, mark, ev, f->kept_hashes);
}

/* 1 when the buffer is full enough to stop before the next item ('more' is then exact). */
static int full(const api_cfeed_t *f)
{
    return f->n > 0 && f->out->len >= f->max_bytes;
}

int api__cursor_parse(const char *s, uint64_t *pos, uint32_t *index)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long p = strtoull(s, &end, 10), i = 0;
    if (errno || p > INT64_MAX)
        return -1;
    if (*end == '.') {
        const char *d = end + 1;
        if (*d < '1' || *d > '9')
            return -1;
        i = strtoull(d, &end, 10);
        if (errno || i > UINT32_MAX)
            return -1;
    }
    if (*end)
        return -1;
    *pos = p;
    *index = (uint32_t)i;
    return 0;
}

void api__cursor_write(store_buf_t *out, uint64_t pos, uint32_t index)
{
    replay_write_cursor(out, pos, index);
}

static void item_start(api_cfeed_t *f, uint64_t pos, uint32_t index, const char *sse_event)
{
    if (f->sse) {
        store_buf_puts(f->out, "id: ");
        api__cursor_write(f->out, pos, index);
        store_buf_putc(f->out, '\n');
        if (sse_event)
            store_buf_printf(f->out, "event: %s\n", sse_event);
        store_buf_puts(f->out, "data: ");
    } else if (f->n) {
        store_buf_putc(f->out, ',');
    }
}

static void item_end(api_cfeed_t *f, uint64_t pos, uint32_t index)
{
    if (f->sse)
        store_buf_puts(f->out, "\n\n");
    f->n++;
    f->last = pos;
    f->last_index = index;
}

static int on_event(void *arg, const store_event_view_t *ev)
{
    api_cfeed_t *f = arg;
    if (full(f))
        return 1;
    size_t mark = f->out->len;
    item_start(f, ev->position, 0, NULL);
    int rc = render_event(f, ev);
    if (rc) {
        f->out->len = mark;
        return rc;
    }
    item_end(f, ev->position, 0);
    return 0;
}

int api__render_change(store_buf_t *out, const store_change_view_t *ch)
{
    return replay_write_change(out, ch);
}

static int on_change(void *arg, const store_change_view_t *ch)
{
    api_cfeed_t *f = arg;
    if (full(f))
        return 1;
    size_t mark = f->out->len;
    item_start(f, ch->position, ch->index, "change");
    int rc = api__render_change(f->out, ch);
    if (rc) {
        f->out->len = mark;
        return rc;
    }
    item_end(f, ch->position, ch->index);
    return 0;
}

int api__cfeed_read(api_cfeed_t *f, uint64_t after, uint32_t index, size_t limit)
{
    store_read_t r;
    int rc = store_read_begin(f->srv->store, &r);
    if (rc != REEL_OK)
        return rc;
    if (f->unreplicated)
        store_read_see_all(&r);
    /* every event goes through api__render_event(), which serves the envelope */
    r.envelopes = !f->include_raw && !f->bodies;
    f->n = 0;
    f->last = after;
    f->last_index = index;
    f->more = 0;
    r.skip_copied = f->skip_copied;
    rc = store_feed_changes_after(&r, after, index, limit, on_event, on_change, f, &f->more);
    store_read_end(&r);
    /* Copies passed over after the last item given: the cursor goes past them, so a page
     * of copies only still moves the reader on. */
    if (r.passed && r.passed_up_to > f->last)
        f->last = r.passed_up_to, f->last_index = 0;
    if (rc == 1) { /* stopped full: the rest is there */
        f->more = 1;
        rc = REEL_OK;
    }
    return rc;
}
