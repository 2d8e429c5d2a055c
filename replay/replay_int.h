/* replay_int.h -- private to replay/. */
#ifndef REEL_REPLAY_INT_H
#define REEL_REPLAY_INT_H

#include "replay/replay.h"
#include "store/json.h"

/* Writes one msgpack value as JSON.stringify(JSON.parse(json)) would (see jsjson.c). */
int replay__js_json(store_mp_t *m, store_buf_t *out);
/* Length of UTF-8 text 'p' in UTF-16 code units, as JavaScript's String.length counts. */
size_t replay__utf16_len(const uint8_t *p, size_t n);

/* Appends jansson value 'v' as json_dumps(v, flags) would give it; REEL_OK, or
 * REEL_ENOMEM when it could not be written (markdown.c). */
struct json_t;
int replay__json_write(store_buf_t *out, const struct json_t *v, size_t flags);
/* Appends transcript 't' (project.c's fold) as Markdown (markdown.c). */
int replay__markdown(store_buf_t *out, struct json_t *t);

/* Positions of the body fields (store.h): [event_id, type, source, synthetic,
 * native_session_id, data, raw, client_time]; a 7-field body (format 1) has no
 * client_time. */
enum { REPLAY_F_ID, REPLAY_F_TYPE, REPLAY_F_SOURCE, REPLAY_F_SYNTHETIC, REPLAY_F_NSID,
       REPLAY_F_DATA, REPLAY_F_RAW, REPLAY_F_CLIENT_TIME, REPLAY_NFIELDS };

/* Points 'fields[i]' at the msgpack of each body field of 'ev' (a 7-field body's
 * client_time at a msgpack nil). */
int replay__body_fields(const store_event_view_t *ev, store_mp_t fields[REPLAY_NFIELDS]);

/* Finds 'key' in the msgpack map 'map'; 1 and its value span in 'val', or 0. */
int replay__mp_get(store_mp_t map, const char *key, store_mp_t *val);
/* 1 and the string if 'v' is a msgpack string. */
int replay__mp_str(store_mp_t v, const char **s, size_t *len);
/* Follows a NULL-terminated key path from map 'v' to a string. */
int replay__mp_path_str(store_mp_t v, const char *const *path, const char **s, size_t *len);

#endif
