/* ds_int.h -- private declarations of the Durable Streams files (api/ds/, top floor of
 * api/, see api/core/core.h). docs/durable-streams.md describes the protocol as served
 * and every format used here.
 *
 * Files: ds.c (request state, responses, finding a stream, dispatch by method), write.c
 * (write headers, building a write, POST: append and close), producer.c (idempotent
 * producers), create.c (PUT: create and fork; DELETE and the release of fork sources),
 * read.c (pages, HEAD, GET: catch-up, long-poll and live=sse), meta.c (the path <->
 * session mapping, the stream state record, offsets, base64; no libmicrohttpd calls).
 *
 * A stream is a session of the log. Its messages are events of type "stream.message"
 * whose 'data' is the message (a JSON value in JSON mode, msgpack bin in byte mode);
 * closing appends one "stream.closed" event. The stream's own state (content type, TTL,
 * expiry, closed flag, Stream-Seq, producer state, forks) is the session record's metadata
 * under the key "durable_stream", written in the same transaction as the events, as a
 * compare-and-swap on the metadata the writer read.
 */
#ifndef REEL_API_DS_INT_H
#define REEL_API_DS_INT_H

#include "api/core/core.h"
#include "api/ds/ds.h"
#include "api/live/live.h"
#include "ingest/ingest.h"

#define DS_ID_PREFIX "ds:"
#define DS_BASE_MAX (STORE_SESSION_ID_MAX - 7) /* "ds:" + escaped path; room for ":<gen>" (5 digits) */
#define DS_PATH_MAX 512          /* decoded path bytes */
#define DS_CTYPE_MAX 255
#define DS_SEQ_MAX 255           /* Stream-Seq bytes */
#define DS_PRODUCER_ID_MAX 255   /* Producer-Id bytes */
#define DS_OFFSET_LEN 33         /* "%016llu_%016llu" */
#define DS_META_KEY "durable_stream"
#define DS_TYPE_MESSAGE "stream.message"
#define DS_TYPE_CLOSED "stream.closed"
#define DS_SSE_MAX_MS 60000      /* an SSE response ends after this (CDN request collapsing) */
#define DS_SSE_KEEPALIVE_MS 10000 /* control event while idle */
#define DS_PAGE_BYTES (1u << 20) /* a catch-up read stops growing past this */
#define DS_PRODUCER_TTL_MS (7LL * 24 * 3600 * 1000) /* producer state kept this long idle */
#define DS_MAX_ATTEMPTS 1000     /* optimistic retries of one write before 503 */
typedef struct ds_producer {
    char id[DS_PRODUCER_ID_MAX + 1];
    uint64_t epoch;
    uint64_t seq;        /* last accepted Producer-Seq */
    uint64_t updated_ms; /* wall clock */
} ds_producer_t;

/* A stream's state as stored (decoded copy; owns 'producers'). DS_META_INIT or
 * ds__meta_parse() initialises one; ds__meta_release() is then always safe, also twice. */
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

#define DS_META_INIT {0}

/* stream_meta.c */
int ds__base_id(const char *path, size_t len, char *out, size_t *out_len);
void ds__gen_id(const char *base, size_t base_len, unsigned gen, char *out, size_t *out_len);
/* 1 when the stream's TTL or expiry time has passed at 'now'; 'last_read' is the last
 * read of the stream this process saw (reads refresh a TTL), 0 = none. */
int ds__expired(const ds_meta_t *m, const store_session_t *rec, int64_t last_read, int64_t now);
/* Decodes a session record's metadata into 'm' (always initialised first, so
 * ds__meta_release() is safe after an error). 0, or -1 for bad bytes. */
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

enum { W_NONE = 0, W_APPEND, W_PUT, W_DELETE };               /* a write in flight */
enum { P_ACCEPT = 0, P_DUP, P_STALE, P_BAD_EPOCH, P_GAP };      /* producer checks */
enum { S_NONE = 0, S_LIVE, S_EXPIRED, S_SOFT_DELETED };         /* ds__find() */
enum { DS_BODY = API_PHASE_OWN, DS_COMMIT, DS_WAIT };           /* rq->phase */

/* One request's state (rq->ctx; freed by the dispose hook). */
typedef struct ds_req {
    char path[DS_PATH_MAX + 1];
    size_t path_len;
    char base[STORE_SESSION_ID_MAX + 1];
    size_t base_len;
    char sid[STORE_SESSION_ID_MAX + 1]; /* the current generation's session */
    size_t sid_len;
    unsigned gen;

    /* request headers (PUT, POST) */
    char ctype[DS_CTYPE_MAX + 1];
    int has_ctype;
    int close;
    int has_producer;
    char pid[DS_PRODUCER_ID_MAX + 1];
    uint64_t pepoch, pseq;
    int has_seq;
    char seq[DS_SEQ_MAX + 1];
    int has_ttl;
    uint64_t ttl;
    int has_expires;
    char expires[64];
    int64_t expires_ms;
    int has_fork;
    char fork_path[DS_PATH_MAX + 1];
    int has_fork_offset;
    uint64_t fork_offset;
    uint64_t fork_sub;
    store_buf_t prefix;  /* a binary sub-offset fork's first message */
    int has_prefix;
    char gc_next[STORE_SESSION_ID_MAX + 1]; /* DELETE: the source to release next */
    char gc_cur[STORE_SESSION_ID_MAX + 1];

    /* a write in flight */
    int kind;         /* W_* */
    ingest_batch_t ib;
    int ib_live;
    store_batch_t pb;
    store_buf_t meta;
    int attempts;
    int is_new;       /* PUT created the stream */
    int closing;      /* the write closes the stream */
    int prod_status;  /* P_* of the write's producer check */
    store_buf_t seen;    /* the stream's metadata as read: the batch's compare-and-swap */
    char src_sid[STORE_SESSION_ID_MAX + 1]; /* fork: the source's session (forks+1) */
    store_buf_t src_seen;
    store_batch_t src_b;
    store_buf_t src_meta;
    int src_pending;

    /* reads */
    int has_offset, off_now;
    uint64_t after;
    char offset_text[64];
    int live;         /* 0, 1 long-poll, 2 sse */
    char cursor[32];
    char ctype_read[DS_CTYPE_MAX + 1];
    api_waiter_t waiter;
} ds_req_t;

/* ---- ds.c ---- */

/* An empty response (copied body 'body', 'len' bytes; NULL = none) and header helpers. */
struct MHD_Response *ds__resp(const void *body, size_t len);
void ds__hdr(struct MHD_Response *r, const char *k, const char *v);
void ds__hdr_u64(struct MHD_Response *r, const char *k, uint64_t v);
void ds__hdr_offset(struct MHD_Response *r, uint64_t seq);
/* Queues a problem response built by api__problem_response() (NULL: out of memory). */
enum MHD_Result ds__queue_problem(api_req_t *rq, int err, struct MHD_Response *r);
/* 404 for the request's stream. */
enum MHD_Result ds__not_found(api_req_t *rq, const ds_req_t *d);
/* Finds the current generation of the stream (d->sid, d->gen) on a short read and keeps
 * its metadata in d->seen. '*rec' (metadata not kept) and 'm' (release it) describe a
 * found record. Returns a S_* state or a negative reel_err (then 'm' holds nothing); an
 * expired stream is reaped. */
int ds__find(api_req_t *rq, ds_req_t *d, store_session_t *rec, ds_meta_t *m);
/* Reads the state of session 'sid' on 'r' into 'rec' and 'm' (release 'm'). REEL_OK, the
 * store's error, or REEL_ECORRUPT for metadata that does not decode. */
int ds__state(store_read_t *r, const char *sid, size_t sid_len, store_session_t *rec,
              ds_meta_t *m);
/* ds__state() on a short read of its own: 'rec' loses its metadata pointer when the read
 * ends, so the bytes are copied into 'seen' when not NULL (a compare-and-swap needs them).
 * 'm' is always initialised: release it whatever the result. */
int ds__state_read(api_server_t *srv, const char *sid, size_t sid_len, store_session_t *rec,
                   ds_meta_t *m, store_buf_t *seen);
/* The first offset of a stream's own messages: a fork's starts at its fork point. */
uint64_t ds__base(const ds_meta_t *m);

/* For the subscriptions (subs.c), on the caller's own thread: the current generation of
 * the stream at 'path' on read 'r'. 1 live ('*tail' its last offset's sequence, '*closed'),
 * 0 none (absent, deleted, expired), or a negative reel_err. */
int ds__stream_tail(api_server_t *srv, store_read_t *r, const char *path, size_t len,
                    uint64_t *tail, int *closed);
/* Appends one JSON message to the live stream at 'path' and waits for the commit (blocks:
 * not on a libmicrohttpd thread). REEL_ENOT_FOUND, REEL_ECONFLICT (closed), ... */
int ds__append_json(api_server_t *srv, const char *path, size_t len, const char *json,
                    size_t json_len);

/* ---- write.c ---- */

int ds__parse_write_headers(api_req_t *rq, ds_req_t *d);
int ds__parse_put_headers(api_req_t *rq, ds_req_t *d);
/* Adds the body as messages (JSON mode: each element of a top-level array, or the one
 * value; byte mode: the bytes as one message). REEL_OK, or an error with 'why' set. */
int ds__add_messages(api_req_t *rq, ds_req_t *d, int json, size_t *count, char *why,
                     size_t why_len);
int ds__add_close_marker(ds_req_t *d);
void ds__batch_reset(ds_req_t *d);
int ds__batch_start(ds_req_t *d);
/* Makes 'b' replace the session's metadata with 'meta' only if it is still 'seen'. */
void ds__cas_meta(store_batch_t *b, const store_buf_t *meta, const store_buf_t *seen);
enum MHD_Result ds__submit_append(api_req_t *rq, ds_req_t *d, const ds_meta_t *m);
enum MHD_Result ds__submit_plain(api_req_t *rq, ds_req_t *d, int op, int kind);
enum MHD_Result ds__post_decide(api_req_t *rq, ds_req_t *d);
enum MHD_Result ds__post_done(api_req_t *rq, ds_req_t *d);

/* ---- producer.c ---- */

/* Kafka-style idempotent producer check on 'm' (updated in place when accepted): a P_*
 * code, or -1 when out of memory; '*a' is the value the refusal reports. */
int ds__producer_check(ds_meta_t *m, const ds_req_t *d, uint64_t *a);
/* Answers a producer check that did not accept. */
enum MHD_Result ds__producer_refused(api_req_t *rq, ds_req_t *d, int st, uint64_t a,
                                     uint64_t tail, int closed);

/* ---- create.c ---- */

enum MHD_Result ds__put_decide(api_req_t *rq, ds_req_t *d);
enum MHD_Result ds__put_done(api_req_t *rq, ds_req_t *d);
enum MHD_Result ds__delete(api_req_t *rq, ds_req_t *d);

/* ---- read.c ---- */

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
    uint64_t first_kept; /* retention trimmed messages the read asked for: the sequence of
                            the first kept one (header Reel-First-Sequence); 0 = none */
    uint64_t redactions; /* the store's count of redactions at the read: in the ETag, so a
                            page whose bodies a redaction rewrote is not answered 304 */
    int flags;           /* a plain session's envelopes: replay_write_event() flags */
} ds_page_t;

/* Reads the messages of session 'sid' (a stream, maybe a fork) after sequence 'after'
 * into 'pg' on one short read transaction. */
int ds__read(api_server_t *srv, const char *sid, size_t sid_len, uint64_t after, ds_page_t *pg);

/* GET and HEAD of a stream. */
enum MHD_Result ds__get(api_req_t *rq, ds_req_t *d);
enum MHD_Result ds__head(api_req_t *rq, ds_req_t *d);

#endif
