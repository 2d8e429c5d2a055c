/* replay.h -- everything people read back out of reel: events rendered as JSON.
 *
 * This module turns store reads (store.h) into the JSON the API and the CLI serve. It
 * writes JSON straight from the stored msgpack, without building a DOM.
 *
 * Rules:
 *  - Functions append to a caller-owned store_buf_t and never free it (sticky OOM:
 *    check store_buf_failed() after a series of writes).
 *  - Views passed in are borrowed (store.h lifetimes); nothing here keeps them.
 *  - Errors: REEL_OK or a reel_err; REEL_ECORRUPT when a stored body cannot be decoded.
 */
#ifndef REEL_REPLAY_H
#define REEL_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "store/buf.h"
#include "store/store.h"

/* Appends the event envelope of SPEC §3 as one JSON object (no newline):
 * session_id, sequence, position, event_id, time, type, source, synthetic,
 * native_session_id, data, and raw when 'include_raw'. */
int replay_write_event(store_buf_t *out, const store_event_view_t *ev, int include_raw);

/* Appends a session record as a JSON object (SPEC §3 session record). */
int replay_write_session(store_buf_t *out, const store_session_t *rec);

/* Appends 'ms' (Unix ms) as RFC 3339 UTC with milliseconds, quoted:
 * "2026-11-22T13:00:00.123Z". */
void replay_write_time(store_buf_t *out, int64_t ms);

/* Reads the event type out of a view's body (borrowed pointer into the body). */
int replay_event_type(const store_event_view_t *ev, const char **type, size_t *len);

#endif
