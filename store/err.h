/* err.h -- the one error list of reel.
 *
 * Every module returns 0 (REEL_OK) for success or a negative reel_err code from
 * this list. Each row carries everything the boundaries need, so the C names, the
 * messages, the HTTP status and the RFC 7807 problem type cannot drift apart:
 *
 *   XX(NAME, http_status, "problem_code", "message")
 *
 * The problem type served over HTTP is "urn:reel:error:<problem_code>". The store
 * does not know HTTP; the status is data that api/ reads from this table.
 * LMDB and errno codes are translated into this list where they arise, by
 * store__err_from_mdb() (store_int.h); zstd and msgpack failures are checked where the
 * call is made and become REEL_ECORRUPT (a stored value that does not decode) or
 * REEL_ENOMEM. No foreign code leaks out of a module.
 *
 * Titles (the messages) are general: one row serves every use of its code (a query
 * value, a header, a body field, a CLI option), and 'detail' in the problem body names
 * the bad value. The problem codes are a stable interface and never change.
 */
#ifndef REEL_ERR_H
#define REEL_ERR_H

#define REEL_ERR_MAP(XX)                                                                   \
    XX(INVALID_JSON, 400, "invalid_json", "request body is not valid JSON")                \
    XX(INVALID_EVENT, 400, "invalid_event", "event failed validation")                     \
    XX(INVALID_SESSION_ID, 400, "invalid_session_id", "session id is not valid")           \
    XX(INVALID_PARAMETER, 400, "invalid_parameter", "a request parameter is not valid")    \
    XX(TOO_DEEP, 400, "too_deep", "JSON nesting exceeds the limit")                        \
    XX(DAMAGED, 400, "damaged_input", "the input is cut or damaged (failed its checks)")    \
    XX(UNAUTHORIZED, 401, "unauthorized", "a bearer token is required")                    \
    XX(FORBIDDEN, 403, "forbidden", "the token does not allow this operation")             \
    XX(QUOTA, 403, "quota_exceeded", "the token's storage quota is used up")               \
    XX(NOT_FOUND, 404, "not_found", "no such resource")                                    \
    XX(SESSION_NOT_FOUND, 404, "session_not_found", "no such session")                     \
    XX(METHOD_NOT_ALLOWED, 405, "method_not_allowed", "method not allowed on this route")  \
    XX(CONFLICT, 409, "sequence_conflict", "the request conflicts with the current state") \
    XX(LEASE_HELD, 409, "lease_held", "another worker holds the consumer's lease")         \
    XX(STALE_TOKEN, 409, "stale_token", "the fencing token is not the consumer's current lease") \
    XX(GONE, 410, "session_deleted", "the session was deleted")                            \
    XX(PRECONDITION, 412, "precondition_failed", "the session's version does not match")   \
    XX(TOO_LARGE, 413, "payload_too_large", "request or event is larger than the limit")   \
    XX(UNSUPPORTED_MEDIA, 415, "unsupported_media_type", "content type not supported")     \
    XX(MISDIRECTED, 421, "misdirected_request", "the session belongs to another cell")     \
    XX(TOO_MANY, 429, "too_many_requests", "connection or client limit reached")           \
    XX(NOMEM, 500, "out_of_memory", "out of memory")                                       \
    XX(IO, 500, "io_error", "I/O error")                                                   \
    XX(CORRUPT, 500, "store_corrupt", "stored record failed its checks")                   \
    XX(FORMAT, 500, "format_mismatch", "data directory has an unsupported format version") \
    XX(INTERNAL, 500, "internal", "internal error")                                        \
    XX(UNAVAILABLE, 503, "unavailable", "the store is closed or failed; restart it")       \
    XX(SINK_BEHIND, 503, "sink_behind", "a sink is too far behind; retry later")           \
    XX(SHARD_LOADING, 503, "shard_loading", "the session's shard is being moved here; retry later") \
    XX(REPLICA_BEHIND, 503, "replica_behind", "durable here, not yet on the replica; retry")  \
    XX(FULL, 507, "store_full", "no space left on the device")

typedef enum reel_err {
    REEL_OK = 0,
    REEL__ERR_FIRST = -1000,
#define XX(name, status, code, msg) REEL_E##name,
    REEL_ERR_MAP(XX)
#undef XX
    REEL__ERR_LAST
} reel_err;

/* Message for 'err' (a static string; "unknown error" for codes not in the list). */
const char *reel_strerror(int err);
/* Stable snake_case code, as used in the problem type URN. */
const char *reel_err_code(int err);
/* HTTP status that api/ answers with for 'err' (500 for unknown codes). */
int reel_err_status(int err);

#endif
