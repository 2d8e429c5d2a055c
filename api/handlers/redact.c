/* redact.c -- POST /v1/sessions/{id}/redact: redaction after the fact (docs/HTTP.md
 * "Redact", docs/REDACTION.md; the work is ingest_redact_after(), ingest/redact_after.c).
 *
 *   {"from":1,"to":5,"paths":["data.output","raw"],
 *    "patterns":["builtin",{"kind":"ticket","regex":"TKT-[0-9]{6}"}]}
 *
 * The route needs the 'delete' scope (the row in api/routes.c): a redaction destroys data
 * as a DELETE does. The body is checked on the HTTP thread; the plan (a read of the range)
 * and the commit run on a thread of their own while the connection is suspended, like the
 * transcript jobs. The store's envelope cache drops the rewritten events' envelopes
 * before the redaction commits (store/cache.c), so no read that begins after the answer
 * is served the old bytes.
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers/handlers.h"
#include "api/live/live.h"
#include "ingest/ingest.h"

enum { REDACT_BODY = API_PHASE_OWN, REDACT_RUNNING };

#define REDACT_MAX_JOBS 4 /* shared with the transcript/stats jobs' counter */

typedef struct redact_job {
    api_req_t *rq;
    ingest_redact_req_t q;
    char *paths[INGEST_REDACT_MAX_PATHS];
    char *patterns[INGEST_REDACT_MAX_PATHS];
    size_t n_paths, n_patterns;
    char by[80];
    ingest_error_t e;
} redact_job_t;

static void job_free(redact_job_t *j)
{
    for (size_t i = 0; i < j->n_paths; i++)
        free(j->paths[i]);
    for (size_t i = 0; i < j->n_patterns; i++)
        free(j->patterns[i]);
    free(j);
}

/* ---- the body ---- */

static int bad(char *why, size_t cap, const char *fmt, const char *name)
{
    snprintf(why, cap, fmt, name);
    return REEL_EINVALID_PARAMETER;
}

static int seq_field(json_t *o, const char *name, uint64_t *out, char *why, size_t cap)
{
    json_t *v = json_object_get(o, name);
    if (!v)
        return bad(why, cap, "'%s' is required (a sequence, 1 or more)", name);
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return bad(why, cap, "'%s' must be a sequence (an integer, 1 or more)", name);
    *out = (uint64_t)json_integer_value(v);
    return REEL_OK;
}

static int paths_field(redact_job_t *j, json_t *a, char *why, size_t cap)
{
    if (!json_is_array(a))
        return bad(why, cap, "'%s' must be an array of strings", "paths");
    if (json_array_size(a) > INGEST_REDACT_MAX_PATHS)
        return bad(why, cap, "'%s': at most 64", "paths");
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (!json_is_string(v))
            return bad(why, cap, "'%s' must be an array of strings", "paths");
        if (!(j->paths[j->n_paths] = strdup(json_string_value(v))))
            return REEL_ENOMEM;
        j->n_paths++;
    }
    return REEL_OK;
}

/* One pattern: "builtin", or {"kind":K,"regex":R} (kind defaults to "pattern"), as the
 * rule line "K<TAB>R". */
static int pattern_rule(json_t *v, char **out, char *why, size_t cap)
{
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "builtin")) {
            snprintf(why, cap, "pattern '%.100s': a string pattern must be \"builtin\"; give a "
                               "regex as {\"kind\":\"name\",\"regex\":\"...\"}",
                     json_string_value(v));
            return REEL_EINVALID_PARAMETER;
        }
        return (*out = strdup("builtin")) ? REEL_OK : REEL_ENOMEM;
    }
    json_t *k = json_object_get(v, "kind"), *re = json_object_get(v, "regex");
    if (!json_is_object(v) || !json_is_string(re) || (k && !json_is_string(k)) ||
        json_object_size(v) != (size_t)(1 + (k != NULL)))
        return bad(why, cap, "'%s' holds \"builtin\" or objects {\"kind\":\"name\",\"regex\":"
                             "\"POSIX ERE\"}", "patterns");
    const char *kind = k ? json_string_value(k) : "pattern";
    size_t n = strlen(kind) + strlen(json_string_value(re)) + 2;
    if (!(*out = malloc(n)))
        return REEL_ENOMEM;
    snprintf(*out, n, "%s\t%s", kind, json_string_value(re));
    return REEL_OK;
}

static int patterns_field(redact_job_t *j, json_t *a, char *why, size_t cap)
{
    if (!json_is_array(a))
        return bad(why, cap, "'%s' must be an array", "patterns");
    if (json_array_size(a) > INGEST_REDACT_MAX_PATHS)
        return bad(why, cap, "'%s': at most 64", "patterns");
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        int rc = pattern_rule(v, &j->patterns[j->n_patterns], why, cap);
        if (rc)
            return rc;
        j->n_patterns++;
    }
    return REEL_OK;
}

/* Reads the request body into 'j'. REEL_OK, or an error with 'why' naming the value. */
static int parse_body(api_req_t *rq, redact_job_t *j, char *why, size_t cap)
{
    json_error_t je;
    json_t *o = json_loadb((const char *)rq->body.data, rq->body.len, JSON_REJECT_DUPLICATES,
                           &je);
    if (!o) {
        snprintf(why, cap, "line %d, column %d: %s", je.line, je.column, je.text);
        return REEL_EINVALID_JSON;
    }
    int rc = json_is_object(o) ? REEL_OK
                               : bad(why, cap, "the body must be a JSON %s", "object");
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (rc)
            break;
        if (strcmp(key, "from") && strcmp(key, "to") && strcmp(key, "paths") &&
            strcmp(key, "patterns"))
            rc = bad(why, cap, "unknown field '%.64s' (expected from, to, paths, patterns)", key);
    }
    if (!rc)
        rc = seq_field(o, "from", &j->q.from, why, cap);
    if (!rc)
        rc = seq_field(o, "to", &j->q.to, why, cap);
    if (!rc && json_object_get(o, "paths"))
        rc = paths_field(j, json_object_get(o, "paths"), why, cap);
    if (!rc && json_object_get(o, "patterns"))
        rc = patterns_field(j, json_object_get(o, "patterns"), why, cap);
    json_decref(o);
    return rc;
}

/* ---- the job ---- */

static void write_answer(api_req_t *rq, const ingest_redact_result_t *res)
{
    store_buf_t *b = &rq->body;
    store_buf_clear(b);
    store_buf_puts(b, "{\"session_id\":");
    store_json_write_string(b, rq->session, rq->session_len);
    store_buf_printf(b, ",\"events\":%" PRIu64 ",\"values\":%" PRIu64 ",\"sequences\":[",
                     res->events, res->values);
    for (uint64_t i = 0; i < res->events; i++)
        store_buf_printf(b, "%s%" PRIu64, i ? "," : "", res->sequences[i]);
    store_buf_puts(b, "],\"record_sequence\":");
    if (res->record_sequence)
        store_buf_printf(b, "%" PRIu64 "}", res->record_sequence);
    else
        store_buf_puts(b, "null}");
}

static void *run_redact(void *arg)
{
    redact_job_t *j = arg;
    api_req_t *rq = j->rq;
    api_server_t *srv = rq->srv;
    ingest_redact_result_t res;
    rq->batch.err = ingest_redact_after(srv->store, &j->q, &res, &j->e);
    if (rq->batch.err == REEL_OK) {
        write_answer(rq, &res);
        if (store_buf_failed(&rq->body))
            rq->batch.err = REEL_ENOMEM;
    } else {
        snprintf(rq->reject_detail, sizeof rq->reject_detail, "%s", j->e.text);
        snprintf(rq->store_detail, sizeof rq->store_detail, "%s", store_read_corruption());
        rq->has_store_detail = 1;
    }
    ingest_redact_result_release(&res);
    job_free(j);
    atomic_fetch_sub(&srv->jobs, 1);
    if (rq->batch.err == REEL_OK) { /* --ack replica waits for its reel.redacted event */
        rq->batch.op = STORE_OP_REDACT;
        api__feed_tail(srv, &rq->batch.cursor_position, &rq->batch.cursor_index);
    }
    api__batch_done(&rq->batch, rq);
    return NULL;
}

static void job_release(void *j)
{
    job_free(j);
}

static enum MHD_Result start(api_req_t *rq, redact_job_t *j)
{
    return api__job_start(rq, run_redact, j, job_release, REDACT_MAX_JOBS, "long",
                          REDACT_RUNNING);
}

static enum MHD_Result done(api_req_t *rq)
{
    int rc = rq->batch.err;
    if (rc == REEL_OK)
        return api__reply_json(rq, 200, &rq->body);
    if (rc == REEL_ESESSION_NOT_FOUND || rc == REEL_EGONE || rc == REEL_ECORRUPT)
        return api__session_problem(rq, rc, "redacting");
    return api__problem(rq, rc, "%s", rq->reject_detail[0] ? rq->reject_detail
                                                            : reel_strerror(rc));
}

static enum MHD_Result submit(api_req_t *rq)
{
    enum MHD_Result r;
    if (api__body_complete(rq, &r) != REEL_OK)
        return r;
    redact_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return api__problem(rq, REEL_ENOMEM, "out of memory");
    char why[300] = "";
    int rc = parse_body(rq, j, why, sizeof why);
    if (rc) {
        job_free(j);
        return api__problem(rq, rc, "%s", why[0] ? why : reel_strerror(rc));
    }
    j->rq = rq;
    snprintf(j->by, sizeof j->by, "%s",
             rq->token_name[0] ? rq->token_name : rq->token_scope ? "token" : "anonymous");
    j->q = (ingest_redact_req_t){rq->session, rq->session_len, j->q.from, j->q.to,
                                 (const char *const *)j->paths, j->n_paths,
                                 (const char *const *)j->patterns, j->n_patterns, j->by};
    rq->reject_detail[0] = 0;
    return start(rq, j);
}

enum MHD_Result api__session_redact(api_req_t *rq, const char *data, size_t *size)
{
    if (rq->phase == REDACT_RUNNING)
        return rq->async_done ? done(rq) : MHD_YES;
    enum MHD_Result r;
    return api__json_body_step(rq, data, size, REDACT_BODY, &r) ? r : submit(rq);
}
