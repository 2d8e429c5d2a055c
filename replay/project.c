/* project.c -- the transcript projection: a session folded into what happened in it.
 *
 * Two input models are understood, and anything else is carried through untouched:
 *  - the universal item model: item.started / item.delta / item.completed (data flat, as
 *    reel's runners write it, or under data.item as sandbox-agent's UniversalItem),
 *    permission.* / question.*, usage, error, session.started / session.ended;
 *  - ACP JSON-RPC envelopes as the sandbox-agent SDK persists them: session/update
 *    notifications (agent_message_chunk, user_message_chunk, agent_thought_chunk,
 *    tool_call, tool_call_update, plan, usage_update, ...), session/prompt requests,
 *    session/request_permission requests and the responses that answer them.
 * A tool_result item is attached to the tool_call item with the same call_id as its
 * 'result'. The fold is built with jansson: a transcript is a document, not a hot path.
 *
 * Out of memory: every jansson call that can allocate goes through set(), set_new() or
 * push() below, or is checked where it is made; a failure is sticky in 'fold.failed'
 * (store_buf_t's idea), later events are not folded, and replay_transcript() returns
 * REEL_ENOMEM. The keys and containers given to jansson are always valid (UTF-8 from
 * jansson strings or literals, objects the fold made), so a refusal means out of memory.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/replay_int.h"

#define CHUNK 2048

struct fold {
    json_t *items;       /* array, in order of first appearance */
    json_t *by_item;     /* item_id -> item (borrowed refs into 'items') */
    json_t *by_call;     /* call_id -> tool_call item */
    json_t *perms, *by_perm, *questions, *by_question;
    json_t *usage, *errors, *unparsed, *other, *session, *plan;
    json_t *acp_open;    /* ACP: the message/reasoning item chunks go to, or NULL */
    uint64_t turns, events, last_seq;
    unsigned acp_items;
    int failed;          /* sticky: an allocation failed, the fold is incomplete */
};

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* json_object_set_new() that records a failure (a NULL 'v' from its constructor, or a
 * refused insert) in 'f'. Steals 'v'; 'o' may be NULL after an earlier failure. */
static void set_new(struct fold *f, json_t *o, const char *k, json_t *v)
{
    if (json_object_set_new_nocheck(o, k, v))
        f->failed = 1;
}

/* The same for a borrowed 'v'. */
static void set(struct fold *f, json_t *o, const char *k, json_t *v)
{
    set_new(f, o, k, json_incref(v));
}

/* json_array_append_new() that records a failure in 'f'. Steals 'v'. */
static void push(struct fold *f, json_t *a, json_t *v)
{
    if (json_array_append_new(a, v))
        f->failed = 1;
}

static void fold_init(struct fold *f)
{
    memset(f, 0, sizeof *f);
    f->items = json_array(), f->by_item = json_object(), f->by_call = json_object();
    f->perms = json_array(), f->by_perm = json_object();
    f->questions = json_array(), f->by_question = json_object();
    f->usage = json_object(), f->errors = json_array(), f->unparsed = json_array();
    f->other = json_array(), f->session = json_object();
    f->failed = !f->items || !f->by_item || !f->by_call || !f->perms || !f->by_perm ||
                !f->questions || !f->by_question || !f->usage || !f->errors || !f->unparsed ||
                !f->other || !f->session;
}

static void fold_release(struct fold *f)
{
    json_t *all[] = {f->items, f->by_item, f->by_call, f->perms, f->by_perm, f->questions,
                     f->by_question, f->usage, f->errors, f->unparsed, f->other, f->session,
                     f->plan};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        json_decref(all[i]);
}

/* Appends 'more' to the string field 'k' of 'o'. The strings are WTF-8 (store/json.h):
 * a chunk that ends in the high half of a surrogate pair followed by one that starts with
 * the low half (a stream cut in the middle of an emoji) joins into the one code point, as
 * JavaScript's string concatenation does. */
static void append_text(struct fold *f, json_t *o, const char *k, const char *more, size_t b)
{
    const char *cur = str(o, k);
    size_t a = json_string_length(json_object_get(o, k)); /* (strings may hold NUL) */
    char *t = malloc(a + b + 1);
    if (!t) {
        f->failed = 1;
        return;
    }
    memcpy(t, cur ? cur : "", a);
    const unsigned char *h = (const unsigned char *)t + a - 3, *l = (const unsigned char *)more;
    if (a >= 3 && b >= 3 && h[0] == 0xed && h[1] >= 0xa0 && h[1] <= 0xaf && l[0] == 0xed &&
        l[1] >= 0xb0) {
        unsigned hi = 0xd000 | (unsigned)(h[1] & 0x3f) << 6 | (h[2] & 0x3f);
        unsigned lo = 0xd000 | (unsigned)(l[1] & 0x3f) << 6 | (l[2] & 0x3f);
        unsigned cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
        unsigned char *w = (unsigned char *)t + a - 3;
        w[0] = (unsigned char)(0xf0 | cp >> 18), w[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
        w[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)), w[3] = (unsigned char)(0x80 | (cp & 0x3f));
        a += 1, more += 3, b -= 3;
    }
    memcpy(t + a, more, b);
    set_new(f, o, k, json_stringn_nocheck(t, a + b));
    free(t);
}

/* append_text() of 'src' when it is a string. */
static void append_str(struct fold *f, json_t *o, const char *k, json_t *src)
{
    if (json_is_string(src))
        append_text(f, o, k, json_string_value(src), json_string_length(src));
}

/* ---- the universal item model ---- */

/* A new item, borrowed from 'f->items'; NULL once the fold has failed. */
static json_t *item_new(struct fold *f, const char *id, const char *kind, uint64_t seq)
{
    json_t *it = json_pack("{s:o,s:o,s:s,s:I}", "item_id", json_string_nocheck(id), "kind",
                           json_string_nocheck(kind ? kind : "unknown"), "status", "in_progress",
                           "started_sequence", (json_int_t)seq);
    push(f, f->items, it);
    if (f->failed)
        return NULL; /* 'it' was freed by a failed push */
    set(f, f->by_item, id, it);
    return it;
}

/* Where a tool_result goes: the tool_call with its call_id, if any. */
static json_t *result_slot(struct fold *f, json_t *d)
{
    const char *kind = str(d, "kind") ? str(d, "kind") : str(d, "item_kind");
    const char *call = str(d, "call_id");
    if (!kind || strcmp(kind, "tool_result") || !call)
        return NULL;
    json_t *callitem = json_object_get(f->by_call, call);
    if (!callitem)
        return NULL;
    if (!json_object_get(callitem, "result"))
        set_new(f, callitem, "result", json_object());
    return json_object_get(callitem, "result"); /* NULL after a failed set */
}

static void merge(struct fold *f, json_t *dst, json_t *src)
{
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(src, k, klen, v) { /* (a key may hold a NUL) */
        if (!strcmp(k, "text") && json_is_string(v) && !json_string_length(v))
            continue; /* never overwrite joined deltas with an empty text */
        if (json_object_setn_new_nocheck(dst, k, klen, json_incref(v)))
            f->failed = 1;
    }
}

static void item_event(struct fold *f, const char *type, json_t *data, uint64_t seq)
{
    json_t *d = json_is_object(json_object_get(data, "item")) ? json_object_get(data, "item") : data;
    const char *id = str(d, "item_id") ? str(d, "item_id") : str(data, "item_id");
    char stub[32];
    if (!id) {
        snprintf(stub, sizeof stub, "seq-%llu", (unsigned long long)seq);
        id = stub;
    }
    json_t *it = json_object_get(f->by_item, id);
    json_t *res = result_slot(f, d);
    if (res && !it) { /* a tool result: becomes the tool call's 'result' */
        set(f, f->by_item, id, res);
        it = res;
    }
    if (!strcmp(type, "item.delta")) {
        if (!it)
            it = item_new(f, id, "message", seq);
        append_str(f, it, "text", json_object_get(data, "delta"));
        return;
    }
    if (!it) {
        it = item_new(f, id, str(d, "kind") ? str(d, "kind") : str(d, "item_kind"), seq);
    }
    json_t *prev_text = json_incref(json_object_get(it, "text")); /* merge may replace it */
    int had_text = json_string_length(prev_text) > 0;
    merge(f, it, d);
    if (had_text) /* deltas joined in order win over a completion's copy */
        set(f, it, "text", prev_text);
    json_decref(prev_text);
    if (!had_text && !str(it, "text") && json_is_array(json_object_get(it, "content"))) {
        size_t i; /* sandbox-agent's UniversalItem: text content parts */
        json_t *part;
        json_array_foreach(json_object_get(it, "content"), i, part) {
            const char *pt = str(part, "type");
            if (pt && !strcmp(pt, "text") && str(part, "text"))
                append_str(f, it, "text", json_object_get(part, "text"));
        }
    }
    if (!strcmp(type, "item.completed")) {
        if (!str(d, "status"))
            set_new(f, it, "status", json_string_nocheck("completed"));
        set_new(f, it, "completed_sequence", json_integer((json_int_t)seq));
    }
    const char *kind = str(it, "kind");
    const char *call = str(it, "call_id");
    if (kind && !strcmp(kind, "tool_call") && call && !json_object_get(f->by_call, call))
        set(f, f->by_call, call, it);
}

static void request_event(struct fold *f, json_t *list, json_t *index, const char *idkey,
                          json_t *data, uint64_t seq, int resolved)
{
    const char *id = str(data, idkey);
    json_t *num = json_object_get(data, idkey);
    char stub[32];
    if (!id && json_is_integer(num)) { /* a JSON-RPC id as a number: its text */
        snprintf(stub, sizeof stub, "%" JSON_INTEGER_FORMAT, json_integer_value(num));
        id = stub;
    } else if (!id) {
        snprintf(stub, sizeof stub, "seq-%llu", (unsigned long long)seq);
        id = stub;
    }
    json_t *r = json_object_get(index, id);
    if (!r) {
        r = json_pack("{s:o,s:s}", idkey, json_string_nocheck(id), "status", "requested");
        push(f, list, r);
        if (f->failed)
            return; /* 'r' was freed by a failed push */
        set(f, index, id, r);
    }
    if (resolved) {
        set(f, r, "resolution", data);
        set_new(f, r, "status",
                json_string_nocheck(str(data, "status") ? str(data, "status") : "resolved"));
        set_new(f, r, "resolved_sequence", json_integer((json_int_t)seq));
    } else {
        merge(f, r, data);
        set_new(f, r, idkey, json_string_nocheck(id)); /* the key it is found by */
        set_new(f, r, "requested_sequence", json_integer((json_int_t)seq));
    }
}

static void add_usage(struct fold *f, json_t *data)
{
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(data, k, klen, v) {
        if (!json_is_number(v) || strlen(k) != klen) /* (no usage field holds a NUL) */
            continue;
        json_t *cur = json_object_get(f->usage, k);
        double sum = json_number_value(v) + (cur ? json_number_value(cur) : 0);
        if (json_is_integer(v) && (!cur || json_is_integer(cur)))
            set_new(f, f->usage, k, json_integer(json_integer_value(v) +
                                                 (cur ? json_integer_value(cur) : 0)));
        else if (isfinite(sum)) /* jansson has no infinite reals: the total stays as it was */
            set_new(f, f->usage, k, json_real(sum));
    }
}

/* ---- ACP envelopes ---- */

static json_t *acp_item(struct fold *f, const char *kind, const char *role, uint64_t seq)
{
    char id[32];
    snprintf(id, sizeof id, "acp-%u", ++f->acp_items);
    json_t *it = item_new(f, id, kind, seq);
    if (role)
        set_new(f, it, "role", json_string_nocheck(role));
    return it;
}

/* Completes the open ACP message or reasoning item: its chunks have ended. */
static void acp_close(struct fold *f)
{
    json_t *open = f->acp_open;
    if (!open)
        return;
    set_new(f, open, "status", json_string_nocheck("completed"));
    json_t *last = json_object_get(open, "last_sequence");
    if (last) {
        set(f, open, "completed_sequence", last);
        json_object_del(open, "last_sequence");
    }
    f->acp_open = NULL;
}

/* Chunks of one kind and role go to the open item; anything else closes it. */
static void acp_chunk(struct fold *f, const char *kind, const char *role, json_t *update,
                      uint64_t seq)
{
    json_t *open = f->acp_open;
    if (!open || strcmp(str(open, "kind"), kind) || strcmp(str(open, "role") ? str(open, "role") : "", role)) {
        acp_close(f);
        open = f->acp_open = acp_item(f, kind, role, seq);
    }
    append_str(f, open, "text", json_object_get(json_object_get(update, "content"), "text"));
    set_new(f, open, "last_sequence", json_integer((json_int_t)seq));
}

static void acp_tool(struct fold *f, json_t *u, uint64_t seq, int update)
{
    const char *call = str(u, "toolCallId");
    json_t *it = call ? json_object_get(f->by_call, call) : NULL;
    acp_close(f);
    if (!it) {
        it = acp_item(f, "tool_call", NULL, seq);
        if (call) {
            set_new(f, it, "call_id", json_string_nocheck(call));
            set(f, f->by_call, call, it);
        }
    }
    if (str(u, "title"))
        set_new(f, it, "name", json_string_nocheck(str(u, "title")));
    if (str(u, "kind"))
        set_new(f, it, "tool_kind", json_string_nocheck(str(u, "kind")));
    if (json_object_get(u, "rawInput"))
        set(f, it, "arguments", json_object_get(u, "rawInput"));
    if (str(u, "status"))
        set_new(f, it, "status", json_string_nocheck(str(u, "status")));
    if (update && (json_object_get(u, "rawOutput") || json_object_get(u, "content"))) {
        json_t *res = json_object();
        if (json_object_get(u, "rawOutput"))
            set(f, res, "output", json_object_get(u, "rawOutput"));
        if (json_object_get(u, "content"))
            set(f, res, "content", json_object_get(u, "content"));
        if (str(u, "status"))
            set_new(f, res, "status", json_string_nocheck(str(u, "status")));
        set_new(f, it, "result", res);
    }
    const char *st = str(it, "status");
    if (st && (!strcmp(st, "completed") || !strcmp(st, "failed")))
        set_new(f, it, "completed_sequence", json_integer((json_int_t)seq));
}

static void acp_prompt(struct fold *f, json_t *params, uint64_t seq)
{
    json_t *prompt = json_object_get(params, "prompt"), *block;
    size_t i;
    acp_close(f);
    json_t *it = acp_item(f, "message", "user", seq);
    json_array_foreach(prompt, i, block) {
        if (str(block, "text")) {
            if (str(it, "text"))
                append_text(f, it, "text", "\n\n", 2);
            append_str(f, it, "text", json_object_get(block, "text"));
        }
    }
    set_new(f, it, "status", json_string_nocheck("completed"));
}

/* Returns 1 if 'data' was an ACP envelope and has been folded. */
static int acp_event(struct fold *f, json_t *data, uint64_t seq)
{
    const char *method = str(data, "method");
    json_t *params = json_object_get(data, "params");
    if (!json_is_object(data) || (!method && !json_object_get(data, "result") &&
                                  !json_object_get(data, "error")) ||
        !json_object_get(data, "jsonrpc"))
        return 0;
    if (method && !strcmp(method, "session/update")) {
        json_t *u = json_object_get(params, "update");
        const char *kind = str(u, "sessionUpdate");
        if (!kind)
            return 0;
        if (!strcmp(kind, "agent_message_chunk"))
            acp_chunk(f, "message", "assistant", u, seq);
        else if (!strcmp(kind, "user_message_chunk"))
            acp_chunk(f, "message", "user", u, seq);
        else if (!strcmp(kind, "agent_thought_chunk"))
            acp_chunk(f, "reasoning", "assistant", u, seq);
        else if (!strcmp(kind, "tool_call") || !strcmp(kind, "tool_call_update"))
            acp_tool(f, u, seq, !strcmp(kind, "tool_call_update"));
        else if (!strcmp(kind, "plan")) {
            json_decref(f->plan);
            f->plan = json_incref(json_object_get(u, "entries"));
        } else if (!strcmp(kind, "usage_update")) {
            /* ACP reports the context window and the session's cost so far: the latest
             * values are the totals, unlike universal usage events, which are summed. */
            if (json_object_get(u, "used"))
                set(f, f->usage, "context_used", json_object_get(u, "used"));
            if (json_object_get(u, "size"))
                set(f, f->usage, "context_size", json_object_get(u, "size"));
            if (json_object_get(u, "cost"))
                set(f, f->usage, "cost", json_object_get(u, "cost"));
        }
        else
            push(f, f->other, json_pack("{s:I,s:o,s:O}", "sequence", (json_int_t)seq,
                                                      "type", json_string_nocheck(kind), "data", u));
        return 1;
    }
    if (method && !strcmp(method, "session/prompt")) {
        acp_prompt(f, params, seq);
        return 1;
    }
    if (method && !strcmp(method, "session/request_permission")) {
        json_t *id = json_object_get(data, "id");
        char key[64];
        snprintf(key, sizeof key, "%lld", json_is_integer(id) ? (long long)json_integer_value(id) : -1);
        json_t *d = json_pack("{s:o,s:O*,s:O*}", "permission_id",
                              json_string_nocheck(json_is_string(id) ? json_string_value(id) : key), "tool_call",
                              json_object_get(params, "toolCall"), "options",
                              json_object_get(params, "options"));
        if (d)
            request_event(f, f->perms, f->by_perm, "permission_id", d, seq, 0);
        else
            f->failed = 1;
        json_decref(d);
        return 1;
    }
    json_t *id = json_object_get(data, "id"), *result = json_object_get(data, "result");
    if (id && result) { /* a response: a permission answer, or a prompt's end of turn */
        char key[64];
        snprintf(key, sizeof key, "%lld", json_is_integer(id) ? (long long)json_integer_value(id) : -1);
        const char *pid = json_is_string(id) ? json_string_value(id) : key;
        if (json_object_get(f->by_perm, pid)) {
            json_t *outcome = json_object_get(result, "outcome");
            const char *st = str(outcome, "outcome") ? str(outcome, "outcome") : "resolved";
            json_t *d = json_pack("{s:o,s:o,s:O*}", "permission_id", json_string_nocheck(pid), "status",
                                  json_string_nocheck(st), "outcome", outcome);
            if (d)
                request_event(f, f->perms, f->by_perm, "permission_id", d, seq, 1);
            else
                f->failed = 1;
            json_decref(d);
        } else if (str(result, "stopReason")) {
            f->turns++;
            acp_close(f);
        }
        return 1;
    }
    if (json_object_get(data, "error")) {
        push(f, f->errors, json_pack("{s:I,s:O}", "sequence", (json_int_t)seq, "error",
                                     json_object_get(data, "error")));
        return 1;
    }
    return 0;
}

/* ---- one event ---- */

static void fold_event(struct fold *f, uint64_t seq, const char *type, json_t *data)
{
    f->events++;
    f->last_seq = seq;
    if (!strncmp(type, "item.", 5) && json_is_object(data)) {
        acp_close(f);
        item_event(f, type, data, seq);
    } else if (!strcmp(type, "permission.requested") || !strcmp(type, "permission.resolved"))
        request_event(f, f->perms, f->by_perm, "permission_id", data, seq,
                      !strcmp(type + 11, "resolved"));
    else if (!strcmp(type, "question.requested") || !strcmp(type, "question.resolved"))
        request_event(f, f->questions, f->by_question, "question_id", data, seq,
                      !strcmp(type + 9, "resolved"));
    else if (!strcmp(type, "usage") && json_is_object(data)) {
        add_usage(f, data);
        if (json_is_true(json_object_get(data, "turn_end")))
            f->turns++;
    } else if (!strcmp(type, "error"))
        push(f, f->errors, json_pack("{s:I,s:O}", "sequence", (json_int_t)seq, "error", data));
    else if (!strcmp(type, "session.started") || !strcmp(type, "session.ended"))
        set(f, f->session, type + 8, data);
    else if (!strcmp(type, "agent.unparsed"))
        push(f, f->unparsed, json_pack("{s:I,s:O}", "sequence", (json_int_t)seq, "data", data));
    else if (!acp_event(f, data, seq)) {
        push(f, f->other, json_pack("{s:I,s:o,s:O}", "sequence", (json_int_t)seq, "type",
                                    json_string_nocheck(type), "data", data));
    }
}

/* ---- reading ---- */

struct reader {
    struct fold *f;
    store_buf_t json;
    uint64_t last;
};

/* What build() can end in besides REEL_OK and REEL_ENOMEM: where json_loadb() would have
 * refused the value's JSON text. */
enum {
    AS_REAL = 1, /* an integer beyond 64 bits: read every number as a double */
    AS_TEXT      /* a number beyond a double, or nesting beyond JANSSON_DEPTH: keep the
                  * JSON text (a NUL in a string or key is kept: jansson 2.14 holds it) */
};

/* Number text 'p' as jansson's lexer reads it: an integer unless it has a fraction or an
 * exponent (or 'as_real'), a double otherwise. */
static int number(const char *p, size_t n, int as_real, json_t **out)
{
    char small[64], *t = n < sizeof small ? small : malloc(n + 1), *end;
    int rc;
    if (!t)
        return REEL_ENOMEM;
    memcpy(t, p, n);
    t[n] = 0;
    errno = 0;
    if (!as_real && !strpbrk(t, ".eE")) {
        json_int_t i = strtoll(t, &end, 10);
        rc = errno == ERANGE ? AS_REAL : (*out = json_integer(i)) ? REEL_OK : REEL_ENOMEM;
    } else {
        double d = strtod(t, &end);
        rc = errno == ERANGE && isinf(d) ? AS_TEXT : (*out = json_real(d)) ? REEL_OK : REEL_ENOMEM;
    }
    if (!rc && end != t + n) { /* not a JSON number: jansson would refuse it */
        json_decref(*out);
        rc = AS_TEXT;
    }
    if (t != small)
        free(t);
    return rc;
}

/* One scalar 'o' (read from 'start' to 'm') into '*out' (new); as build(). */
static int scalar(store_mp_t *m, const uint8_t *start, const store_mp_obj_t *o, int as_real,
                  json_t **out)
{
    char num[32];
    switch (o->type) {
    case STORE_MP_NIL: *out = json_null(); return REEL_OK;
    case STORE_MP_BOOL: *out = json_boolean(o->u); return REEL_OK;
    case STORE_MP_UINT: snprintf(num, sizeof num, "%" PRIu64, o->u); break;
    case STORE_MP_INT: snprintf(num, sizeof num, "%" PRId64, o->i); break;
    case STORE_MP_FLOAT:
        if (!isfinite(o->f)) {
            *out = json_null(); /* store_mp_to_json() writes null */
            return REEL_OK;
        }
        snprintf(num, sizeof num, "%.17g", o->f);
        break;
    case STORE_MP_EXT: return number((const char *)o->ptr, o->len, as_real, out);
    case STORE_MP_STR:
        /* nocheck: the text is WTF-8 (a lone surrogate is kept); replay__json_write()
         * writes it, never jansson's dumper */
        *out = json_stringn_nocheck((const char *)o->ptr, o->len);
        return *out ? REEL_OK : REEL_ENOMEM;
    case STORE_MP_BIN: { /* a base64 string */
        store_buf_t b = STORE_BUF_INIT;
        store_mp_t one = {start, m->p};
        store_mp_to_json(&one, &b, 1);
        *out = store_buf_failed(&b) ? NULL : json_stringn_nocheck((const char *)b.data + 1, b.len - 2);
        store_buf_release(&b);
        return *out ? REEL_OK : REEL_ENOMEM;
    }
    default: return REEL_ECORRUPT;
    }
    return number(num, strlen(num), as_real, out);
}

/* How deep a value given to jansson may nest. jansson's own walks (json_decref(), the
 * copies and comparisons) recurse, so deeper data is kept as its JSON text (AS_TEXT); the
 * bound is jansson's own parser limit, JSON_PARSER_MAX_DEPTH (2048). */
#define JANSSON_DEPTH 2048

/* One value of 'm' into '*out' (new); REEL_OK, REEL_ENOMEM, AS_REAL or AS_TEXT.
 * Containers are walked with an explicit stack, not by recursion; each is attached to its
 * parent when it opens, so one json_decref() of the root frees a partial tree. */
static int build(store_mp_t *m, int as_real, json_t **out)
{
    struct open { json_t *c; uint64_t left; int map; } local[32], *st = local;
    size_t cap = 32, used = 0;
    json_t *root = NULL;
    int rc = REEL_OK;
    for (;;) {
        store_mp_obj_t k = {0}, o;
        if (used) {
            struct open *top = &st[used - 1];
            if (!top->left) {
                if (--used == 0)
                    break;
                continue;
            }
            top->left--;
            if (top->map) {
                if (store_mp_next(m, &k) || k.type != STORE_MP_STR) {
                    rc = REEL_ECORRUPT;
                    break;
                }
            }
        }
        const uint8_t *start = m->p;
        json_t *v = NULL;
        if (store_mp_next(m, &o)) {
            rc = REEL_ECORRUPT;
            break;
        }
        int open = o.type == STORE_MP_ARRAY || o.type == STORE_MP_MAP;
        if (open) {
            if (used >= JANSSON_DEPTH) {
                rc = AS_TEXT;
                break;
            }
            if (store_stack_room((void **)&st, &cap, used, local, sizeof *st)) {
                rc = REEL_ENOMEM;
                break;
            }
            v = o.type == STORE_MP_MAP ? json_object() : json_array();
            if (!v) {
                rc = REEL_ENOMEM;
                break;
            }
        } else if ((rc = scalar(m, start, &o, as_real, &v))) {
            break;
        }
        if (!used) {
            root = v;
        } else {
            struct open *top = &st[used - 1];
            if (top->map ? json_object_setn_new_nocheck(top->c, (const char *)k.ptr, k.len, v)
                         : json_array_append_new(top->c, v)) {
                rc = REEL_ENOMEM; /* 'v' was freed */
                break;
            }
        }
        if (open)
            st[used++] = (struct open){v, o.u, o.type == STORE_MP_MAP};
        else if (!used)
            break;
    }
    store_stack_free(st, local);
    if (rc)
        json_decref(root);
    else
        *out = root;
    return rc;
}

/* A stored value as a new jansson value in '*out': what json_loadb() makes of its JSON
 * text (store_mp_to_json()), numbers jansson cannot hold exactly (beyond 64-bit integers,
 * 1e400) falling back to doubles, and failing that to the JSON text kept as a string;
 * null when the text cannot be written. REEL_OK or REEL_ENOMEM. The value is built from
 * the msgpack rather than by json_loadb(), because jansson's parser reports running out
 * of memory as a syntax error (or not at all, dropping bytes it could not save). */
static int to_json(store_buf_t *buf, store_mp_t v, json_t **out)
{
    store_mp_t m = v;
    store_buf_clear(buf);
    int rc = store_mp_to_json(&m, buf, STORE_JSON_MAX_DEPTH);
    if (store_buf_failed(buf))
        return REEL_ENOMEM;
    if (rc) {
        *out = json_null();
        return REEL_OK;
    }
    m = v;
    if ((rc = build(&m, 0, out)) == AS_REAL) {
        m = v;
        rc = build(&m, 1, out);
    }
    if (rc == AS_TEXT || rc == REEL_ECORRUPT) { /* (not reached: the text was written) */
        *out = json_stringn_nocheck((const char *)buf->data, buf->len);
        rc = *out ? REEL_OK : REEL_ENOMEM;
    }
    return rc;
}

static int take(void *arg, const store_event_view_t *ev)
{
    struct reader *r = arg;
    store_mp_t f[REPLAY_NFIELDS];
    const char *type;
    size_t tlen;
    json_t *data;
    if (replay__body_fields(ev, f) || !replay__mp_str(f[REPLAY_F_TYPE], &type, &tlen))
        return REEL_ECORRUPT;
    char t[STORE_TYPE_MAX + 1];
    memcpy(t, type, tlen);
    t[tlen] = 0;
    int rc = to_json(&r->json, f[REPLAY_F_DATA], &data);
    if (rc)
        return rc;
    if (memchr(type, 0, tlen)) {
        /* No known type holds a NUL, and fold_event() compares C strings ("item.delta\0x"
         * would pass for "item.delta"): kept whole, by length, with the other events. */
        r->f->events++;
        r->f->last_seq = ev->sequence;
        push(r->f, r->f->other, json_pack("{s:I,s:o,s:O}", "sequence", (json_int_t)ev->sequence,
                                          "type", json_stringn_nocheck(type, tlen), "data", data));
    } else {
        fold_event(r->f, ev->sequence, t, data);
    }
    json_decref(data);
    if (r->f->failed)
        return REEL_ENOMEM;
    r->last = ev->sequence;
    return 0;
}

/* The transcript object (new); NULL with 'f->failed' set when out of memory. */
static json_t *result(struct fold *f, const store_session_t *rec, uint64_t at)
{
    json_t *o = json_object();
    if (!o) {
        f->failed = 1;
        return NULL;
    }
    set_new(f, o, "session_id", json_stringn_nocheck(rec->id, rec->id_len));
    set_new(f, o, "at", json_integer((json_int_t)at));
    set_new(f, o, "last_sequence", json_integer((json_int_t)rec->last_sequence));
    set_new(f, o, "events", json_integer((json_int_t)f->events));
    set(f, o, "session", f->session);
    set(f, o, "items", f->items);
    set(f, o, "permissions", f->perms);
    set(f, o, "questions", f->questions);
    set(f, o, "usage", f->usage);
    set_new(f, o, "turns", json_integer((json_int_t)f->turns));
    set(f, o, "errors", f->errors);
    set(f, o, "unparsed", f->unparsed);
    set(f, o, "other", f->other);
    if (f->plan)
        set(f, o, "plan", f->plan);
    return o;
}

int replay_transcript(store_t *s, const char *id, size_t id_len, uint64_t at, int markdown_fmt,
                      store_buf_t *out)
{
    store_read_t r;
    store_session_t rec;
    int rc = store_read_begin(s, &r);
    if (rc)
        return rc;
    rc = store_session_get(&r, id, id_len, &rec);
    rec.metadata = NULL;
    store_read_end(&r);
    if (rc)
        return rc;
    if (!at || at > rec.last_sequence)
        at = rec.last_sequence;
    struct fold f;
    fold_init(&f);
    struct reader rd = {&f, STORE_BUF_INIT, 0};
    if (f.failed)
        rc = REEL_ENOMEM;
    while (!rc && rd.last < at) { /* short reads, CHUNK events each */
        uint64_t before = rd.last;
        if ((rc = store_read_begin(s, &r)))
            break;
        uint64_t n = at - rd.last < CHUNK ? at - rd.last : CHUNK;
        rc = store_events_after(&r, id, id_len, rd.last, (size_t)n, take, &rd, NULL);
        store_read_end(&r);
        if (rd.last == before)
            break; /* deleted meanwhile */
    }
    json_t *t = rc ? NULL : result(&f, &rec, at);
    size_t mark = out->len;
    if (!rc && f.failed)
        rc = REEL_ENOMEM;
    else if (!rc)
        rc = markdown_fmt ? replay__markdown(out, t)
                          : replay__json_write(out, t, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!rc && store_buf_failed(out))
        rc = REEL_ENOMEM;
    if (rc)
        out->len = mark; /* no half answer */
    json_decref(t);
    store_buf_release(&rd.json);
    fold_release(&f);
    return rc;
}
