/* scan.c -- events after a key, filtered by type: the one walk behind offset pages, the
 * feed, long-polls and Server-Sent Events (replay.h).
 *
 * A filter is applied while walking, so a page of a rare type does not make the caller
 * read whole sessions: the walk stops after 'max_examined' events and reports how far it
 * got ('scanned') so that the next call continues from there.
 */
#include "replay/replay.h"

#define SCAN_CHUNK 1000 /* events per store call while filtering by type */

struct walk {
    replay_scan_t *sc;
    replay_scan_cb cb;
    void *arg;
    size_t examined;
    int stopped; /* the callback stopped before an event */
    int err;
};

static int walk_event(void *arg, const store_event_view_t *ev)
{
    struct walk *w = arg;
    replay_scan_t *sc = w->sc;
    uint64_t key = sc->session ? ev->sequence : ev->position;
    w->examined++;
    if (sc->types && !replay_type_listed(ev, sc->types)) {
        sc->scanned = key;
        return 0;
    }
    int rc = w->cb(w->arg, ev, key);
    if (rc == 0) {
        sc->scanned = key;
        return 0;
    }
    if (rc > 0)
        w->stopped = 1;
    else
        w->err = rc;
    return 1;
}

int replay_scan(store_read_t *r, replay_scan_t *sc, uint64_t after, replay_scan_cb cb, void *arg)
{
    struct walk w = {sc, cb, arg, 0, 0, 0};
    size_t budget = sc->max_examined ? sc->max_examined : 1;
    size_t chunk = (sc->types || r->only) && budget > SCAN_CHUNK ? SCAN_CHUNK : budget;
    sc->scanned = after;
    sc->more = 0;
    for (;;) {
        int more = 0;
        size_t n = budget - w.examined < chunk ? budget - w.examined : chunk;
        r->passed = 0;
        int rc = sc->session
                     ? store_events_after(r, sc->session, sc->session_len, sc->scanned, n,
                                          walk_event, &w, &more)
                     : store_feed_after(r, sc->scanned, n, walk_event, &w, &more);
        /* Events the read's 'only' hook passed over were examined too (store.h). */
        w.examined += r->passed;
        if (r->passed && r->passed_up_to > sc->scanned)
            sc->scanned = r->passed_up_to;
        if (w.err)
            return w.err;
        if (w.stopped) {
            sc->more = 1;
            return REEL_OK;
        }
        if (rc != REEL_OK)
            return rc;
        if (!more)
            return REEL_OK;
        if (w.examined >= budget) {
            sc->more = 1;
            return REEL_OK;
        }
    }
}
