/* render.c -- event envelopes for the API: the store's cached envelope when the read
 * gave one, else replay_write_event().
 *
 * The envelopes are kept by the store (store/cache.c: verified, bounded, invalidated by
 * the store itself on a redaction); a read that sets store_read_t.envelopes gets each
 * event with its envelope. The API only cuts 'position' out for tenants
 * (REPLAY_NO_POSITION) and renders 'raw' (REPLAY_RAW, the rare case) itself.
 *
 * Rules: any thread; nothing is kept here.
 */
#include "api/live/live.h"
#include "replay/replay.h"

int api__render_event(api_server_t *srv, store_buf_t *out, const store_event_view_t *ev,
                      int flags)
{
    size_t mark = out->len;
    int rc;
    if (ev->envelope && !(flags & REPLAY_RAW)) {
        store_buf_put(out, ev->envelope, ev->envelope_len);
        if (flags & REPLAY_NO_POSITION) /* kept whole, served without it to tenants */
            replay_drop_position(out, mark);
        return store_buf_failed(out) ? REEL_ENOMEM : REEL_OK;
    }
    /* A view served from the cache without its envelope cannot be: check it all the same. */
    if ((rc = store_event_check(ev)) != REEL_OK)
        return rc;
    return replay_write_event(out, ev, flags);
}

int api__render_flags(const api_req_t *rq, int include_raw)
{
    return (include_raw ? REPLAY_RAW : 0) | (rq->n_prefixes ? REPLAY_NO_POSITION : 0);
}

/* The trampoline replay_restore() calls (replay knows nothing of the server). */
int api__render_event_cb(void *srv, store_buf_t *out, const store_event_view_t *ev,
                         int flags)
{
    return api__render_event(srv, out, ev, flags);
}
