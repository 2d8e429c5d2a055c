/* stream_int.h -- private declarations of the Durable Streams files of api/
 * (stream.c: routes; stream_read.c: reading, long-poll and SSE; stream_meta.c: the
 * path <-> session mapping, stream state, offsets). docs/durable-streams.md describes
 * the protocol as served and every format used here.
 *
 * A stream is a session of the log. Its messages are events of type "stream.message"
 * whose 'data' is the message (a JSON value in JSON mode, msgpack bin in byte mode);
 * closing appends one "stream.closed" event. The stream's own state (content type, TTL,
 * expiry, closed flag, Stream-Seq, producer state, forks) is the session record's metadata
 * under the key "durable_stream", written in the same transaction as the events, as a
 * compare-and-swap on the metadata the writer read.
 */
#ifndef REEL_API_STREAM_INT_H
#define REEL_API_STREAM_INT_H

#include "api/api_int.h"

#define DS_ID_PREFIX "ds:"
#define DS_BASE_MAX 116          /* bytes of "ds:" + escaped path; room left for ":<gen>" */
#define DS_PATH_MAX 512          /* decoded path bytes */
#define DS_CTYPE_MAX 255
#define DS_SEQ_MAX 255           /* Stream-Seq bytes */
#define DS_PRODUCER_ID_MAX 255   /* Producer-Id bytes */
#define DS_OFFSET_LEN 33         /* "%016llu_%016llu" */
#define DS_META_KEY "durable_stream"
#define DS_TYPE_MESSAGE "stream.message"
#define DS_TYPE_CLOSED "stream.closed"
#define DS_LONG_POLL_MS 3000     /* long-poll answers 204 after this (REEL_DS_LONG_POLL_MS) */
#define DS_SSE_MAX_MS 60000      /* an SSE response ends after this (CDN request collapsing) */
#define DS_SSE_KEEPALIVE_MS 10000 /* control event while idle */
#define DS_PAGE_BYTES (1u << 20) /* a catch-up read stops growing past this */
#define DS_PRODUCER_TTL_MS (7LL * 24 * 3600 * 1000) /* producer state kept this long idle */

typedef struct ds_producer {
    char id[DS_PRODUCER_ID_MAX + 1];
    uint64_t epoch;
    uint64_t seq;        /* last accepted Producer-Seq */
    uint64_t updated_ms; /* wall clock */
} ds_producer_t;

/* A stream's state as stored (decoded copy; owns 'producers'). */
typedef struct ds_meta {
    int is_stream;       /* the record has a "durable_stream" map */
    char path[DS_PATH_MAX + 1]; /* the stream's path (decoded) */
    char ctype[DS_CTYPE_MAX + 1];
    int has_ttl;
    uint64_t ttl_s;
    int has_expires;
    char expires[64];    /* Stream-Expires-At as given */
    int64_t expires_ms;
    int closed;
    int has_closed_by;   /* the producer tuple that closed it */
    char closed_by[DS_PRODUCER_ID_MAX + 1];
    uint64_t closed_epoch, closed_seq;
    int has_seq;
    char seq[DS_SEQ_MAX + 1]; /* last Stream-Seq */
    int is_fork;
    char fork_of[STORE_SESSION_ID_MAX + 1]; /* source session id */
    uint64_t fork_offset;                   /* source offset the fork's own messages follow */
    uint64_t fork_req;   /* Stream-Fork-Offset as requested (an offset's sequence) */
    uint64_t fork_sub;   /* Stream-Fork-Sub-Offset as requested (0 = none) */
    uint64_t forks;      /* live forks of this stream */
    int soft_deleted;    /* deleted while forks still read it */
    ds_producer_t *producers;
    size_t n_producers, cap_producers;
} ds_meta_t;

/* stream_meta.c */
int ds__base_id(const char *path, size_t len, char *out, size_t *out_len);
void ds__gen_id(const char *base, size_t base_len, unsigned gen, char *out, size_t *out_len);
int64_t ds__wall_ms(void);
int64_t ds__parse_rfc3339(const char *s);
void ds__touch(const char *sid, size_t len);
int ds__expired(const ds_meta_t *m, const store_session_t *rec, int64_t now);
int ds__meta_parse(const uint8_t *p, size_t len, ds_meta_t *m);
void ds__meta_encode(const ds_meta_t *m, const char *path, size_t path_len, store_buf_t *out);
void ds__meta_release(ds_meta_t *m);
ds_producer_t *ds__producer(ds_meta_t *m, const char *id, int create);
void ds__ctype_norm(const char *ct, char *out, size_t cap);
int ds__is_json(const char *ct);
int ds__is_text(const char *ct);
void ds__offset(uint64_t seq, char out[DS_OFFSET_LEN + 1]);
int ds__offset_parse(const char *s, uint64_t *seq);
uint64_t ds__cursor(const char *client);
void ds__base64(store_buf_t *out, const uint8_t *p, size_t n);
/* Appends the bytes of base64 text 'p'; -1 (nothing appended) when it is not base64. */
int ds__unbase64(store_buf_t *out, const uint8_t *p, size_t n);

/* stream_read.c */

/* One stream's read position and what a read produced. */
typedef struct ds_page {
    int json;            /* JSON mode: items are JSON values joined with ',' */
    size_t budget;       /* stop adding messages past this many bytes (at least one) */
    store_buf_t *out;    /* message bytes (byte mode) or JSON items (JSON mode) */
    size_t n;            /* messages written */
    uint64_t next;       /* the sequence to continue after */
    int at_end;          /* nothing left past 'next' */
    int closed;          /* the stream is closed (and 'at_end': the reader saw everything) */
    int gone;            /* the session was deleted (or expired) */
} ds_page_t;

/* Reads the messages of session 'sid' (a stream, maybe a fork) after sequence 'after'
 * into 'pg' on one short read transaction. */
int ds__read(store_t *s, const char *sid, size_t sid_len, uint64_t after, ds_page_t *pg);

/* Starts an SSE response for a stream (live=sse). */
enum MHD_Result ds__sse_start(api_req_t *rq, const char *sid, size_t sid_len, uint64_t after,
                              const char *ctype, const char *cursor);

#endif
