/* conv.c -- the converter frame shared by every agent: line parsing, event envelopes,
 * deterministic ids, the item table, agent.native / agent.unparsed, and the ingest
 * adapter. The per-agent files only map parsed lines to events (agent_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/agent_int.h"
#include "store/json.h"

static const agent_ops_t *const tables[] = {
    &agent__claude_ops, &agent__codex_ops, &agent__opencode_ops,
    &agent__amp_ops,    &agent__acp_ops,   &agent__mock_ops,
};

const agent_ops_t *agent_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof tables / sizeof tables[0]; i++)
        if (!strcmp(tables[i]->name, name))
            return tables[i];
    return NULL;
}

const char *agent_name(const agent_ops_t *ops) { return ops->name; }

const char *agent_names(void) { return "claude, codex, opencode, amp, acp, mock"; }

/* ---- Lifecycle ---- */

static char *dupz(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

agent_conv_t *agent_conv_new(const agent_ops_t *ops, agent_emit_cb emit, void *arg,
                             const char *event_prefix, const char *item_prefix)
{
    agent_conv_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ops = ops;
    c->emit = emit;
    c->emit_arg = arg;
    c->event_prefix = dupz(event_prefix);
    c->item_prefix = dupz(item_prefix ? item_prefix : "itm_");
    c->state = json_object();
    if ((event_prefix && !c->event_prefix) || !c->item_prefix || !c->state) {
        agent_conv_free(c);
        return NULL;
    }
    return c;
}

static void item_free(agent__item_t *it)
{
    free(it->key);
    json_decref(it->info);
    store_buf_release(&it->text);
}

void agent_conv_free(agent_conv_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_items; i++)
        item_free(&c->items[i]);
    free(c->items);
    free(c->event_prefix);
    free(c->item_prefix);
    json_decref(c->state);
    free(c);
}

const char *agent_conv_native_session_id(const agent_conv_t *c) { return c->nsid; }
int agent_conv_started(const agent_conv_t *c) { return c->started; }
int agent_conv_failed(const agent_conv_t *c) { return c->failed; }
uint64_t agent_conv_unparsed(const agent_conv_t *c) { return c->unparsed; }

/* ---- Emitting ---- */

static int emit_text(agent_conv_t *c, const char *id_suffix, const char *type,
                     const char *source, int synthetic, const char *data, size_t data_len)
{
    char id[STORE_EVENT_ID_MAX + 1];
    agent_event_t ev = {0};
    if (c->event_prefix) {
        int n;
        if (id_suffix)
            n = snprintf(id, sizeof id, "%s%s", c->event_prefix, id_suffix);
        else
            n = snprintf(id, sizeof id, "%s%c%llu.%u", c->event_prefix, "oie"[c->stream],
                         (unsigned long long)c->line_no, c->k);
        if (n < 0 || (size_t)n >= sizeof id)
            return REEL_EINVALID_EVENT;
        ev.event_id = id;
    }
    if (!id_suffix)
        c->k++;
    ev.type = type;
    ev.source = source;
    ev.synthetic = synthetic;
    ev.native_session_id = c->nsid[0] ? c->nsid : NULL;
    ev.data = data;
    ev.data_len = data_len;
    ev.raw = c->raw;
    ev.raw_len = c->raw_len;
    return c->emit ? c->emit(c->emit_arg, &ev) : REEL_OK;
}

static int emit_json(agent_conv_t *c, const char *id_suffix, const char *type,
                     const char *source, int synthetic, json_t *data)
{
    if (!data)
        data = json_object();
    char *text = data ? json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(16)) : NULL;
    json_decref(data);
    if (!text)
        return REEL_ENOMEM;
    int rc = emit_text(c, id_suffix, type, source, synthetic, text, strlen(text));
    free(text);
    return rc;
}

int agent__emit(agent_conv_t *c, const char *type, json_t *data)
{
    const char *source = c->stream == AGENT_STDIN ? "runner" : c->client_side ? "client" : "agent";
    return emit_json(c, NULL, type, source, 0, data);
}

int agent__unknown(agent_conv_t *c, const char *what, const char *name)
{
    snprintf(c->unknown, sizeof c->unknown, "unknown %s '%.100s'", what, name ? name : "(none)");
    return AGENT__UNKNOWN;
}

int agent__emit_syn(agent_conv_t *c, const char *type, json_t *data)
{
    return emit_json(c, NULL, type, "runner", 1, data);
}

int agent__set_nsid(agent_conv_t *c, const char *id)
{
    if (!id || !*id || strlen(id) > STORE_NAME_MAX || !strcmp(id, c->nsid))
        return 0;
    snprintf(c->nsid, sizeof c->nsid, "%s", id);
    return 1;
}

int agent__session_started(agent_conv_t *c, json_t *data, int native)
{
    if (!data)
        data = json_object();
    json_object_set_new(data, "agent", json_string(c->ops->name));
    c->started = 1;
    return native ? agent__emit(c, "session.started", data)
                  : agent__emit_syn(c, "session.started", data);
}

int agent__error(agent_conv_t *c, const char *code, const char *message, json_t *extra)
{
    json_t *d = json_object();
    json_object_set_new(d, "code", code ? json_string(code) : json_null());
    json_object_set_new(d, "message", message ? json_string(message) : json_null());
    if (extra)
        json_object_update(d, extra);
    json_decref(extra);
    return agent__emit(c, "error", d);
}

int agent_conv_emit_runner(agent_conv_t *c, const char *name, const char *type,
                           const char *data_json)
{
    const char *raw = c->raw;
    size_t raw_len = c->raw_len;
    c->raw = NULL;
    c->raw_len = 0;
    if (!strcmp(type, "session.started"))
        c->started = 1;
    int rc = emit_text(c, name, type, "runner", 1, data_json, strlen(data_json));
    c->raw = raw;
    c->raw_len = raw_len;
    return rc;
}

/* ---- Items ---- */

agent__item_t *agent__item_find(agent_conv_t *c, const char *key)
{
    for (size_t i = 0; key && i < c->n_items; i++)
        if (!strcmp(c->items[i].key, key))
            return &c->items[i];
    return NULL;
}

agent__item_t *agent__item_start(agent_conv_t *c, const char *key, const char *kind,
                                 const char *role, json_t *info, int synthetic, int *rc)
{
    if (c->n_items == c->cap_items) {
        size_t cap = c->cap_items ? c->cap_items * 2 : 8;
        agent__item_t *v = realloc(c->items, cap * sizeof *v);
        if (!v) {
            json_decref(info);
            *rc = REEL_ENOMEM;
            return NULL;
        }
        c->items = v;
        c->cap_items = cap;
    }
    agent__item_t *it = &c->items[c->n_items];
    memset(it, 0, sizeof *it);
    char keybuf[40];
    if (!key) {
        snprintf(keybuf, sizeof keybuf, "#%llu", (unsigned long long)c->next_item + 1);
        key = keybuf;
    }
    it->key = dupz(key);
    snprintf(it->id, sizeof it->id, "%s%llu", c->item_prefix,
             (unsigned long long)++c->next_item);
    json_t *full = json_object();
    json_object_set_new(full, "item_id", json_string(it->id));
    json_object_set_new(full, "kind", json_string(kind));
    if (role)
        json_object_set_new(full, "role", json_string(role));
    if (info)
        json_object_update(full, info);
    json_decref(info);
    it->info = full;
    if (!it->key) {
        json_decref(full);
        *rc = REEL_ENOMEM;
        return NULL;
    }
    c->n_items++;
    json_t *d = json_deep_copy(full);
    json_object_set_new(d, "status", json_string("in_progress"));
    *rc = synthetic ? agent__emit_syn(c, "item.started", d) : agent__emit(c, "item.started", d);
    return *rc ? NULL : it;
}

int agent__item_delta(agent_conv_t *c, agent__item_t *it, const char *delta, size_t len,
                      int synthetic)
{
    store_buf_put(&it->text, delta, len);
    json_t *d = json_object();
    json_object_set_new(d, "item_id", json_string(it->id));
    json_object_set_new(d, "delta", agent__string(delta, len));
    return synthetic ? agent__emit_syn(c, "item.delta", d) : agent__emit(c, "item.delta", d);
}

int agent__item_complete(agent_conv_t *c, agent__item_t *it, const char *status,
                         json_t *extra, int synthetic)
{
    json_t *d = json_deep_copy(it->info);
    json_object_set_new(d, "status", json_string(status));
    const char *kind = agent__str(it->info, "kind");
    if (kind && (!strcmp(kind, "message") || !strcmp(kind, "reasoning")))
        json_object_set_new(d, "text", agent__string((const char *)it->text.data, it->text.len));
    if (extra)
        json_object_update(d, extra);
    json_decref(extra);
    size_t i = (size_t)(it - c->items);
    item_free(it);
    memmove(&c->items[i], &c->items[i + 1], (c->n_items - i - 1) * sizeof *it);
    c->n_items--;
    return synthetic ? agent__emit_syn(c, "item.completed", d)
                     : agent__emit(c, "item.completed", d);
}

int agent__item_whole(agent_conv_t *c, const char *kind, const char *role, json_t *info,
                      const char *text, json_t *extra)
{
    int rc;
    agent__item_t *it = agent__item_start(c, NULL, kind, role, info, 1, &rc);
    if (!it) {
        json_decref(extra);
        return rc;
    }
    if (text && *text && (rc = agent__item_delta(c, it, text, strlen(text), 1))) {
        json_decref(extra);
        return rc;
    }
    return agent__item_complete(c, it, "completed", extra, 0);
}

int agent__item_tool(agent_conv_t *c, const char *key, const char *kind, json_t *info,
                     const char *status, json_t *extra)
{
    int rc;
    agent__item_t *it = agent__item_find(c, key);
    if (!it) {
        it = agent__item_start(c, key, kind, NULL, info, 1, &rc);
        if (!it) {
            json_decref(extra);
            return rc;
        }
    } else {
        json_decref(info);
    }
    return agent__item_complete(c, it, status, extra, 0);
}

int agent__items_close_all(agent_conv_t *c)
{
    int rc = REEL_OK;
    while (!rc && c->n_items)
        rc = agent__item_complete(c, &c->items[0], "incomplete", NULL, 1);
    return rc;
}

/* ---- Lines ---- */

/* Sets c->raw to the line as JSON text: the line itself when the store's parser accepts
 * it, else the line as a JSON string (invalid UTF-8 replaced). 'tmp' owns the text. */
static int set_raw(agent_conv_t *c, const char *line, size_t len, store_buf_t *tmp)
{
    store_json_error_t je;
    if (len && !store_json_to_msgpack(line, len, STORE_JSON_MAX_DEPTH, tmp, &je)) {
        store_buf_clear(tmp);
        c->raw = line;
        c->raw_len = len;
        return REEL_OK;
    }
    store_buf_clear(tmp);
    json_t *s = agent__string(line, len);
    char *text = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(s);
    if (!text)
        return REEL_ENOMEM;
    store_buf_puts(tmp, text);
    free(text);
    if (store_buf_failed(tmp))
        return REEL_ENOMEM;
    c->raw = (const char *)tmp->data;
    c->raw_len = tmp->len;
    return REEL_OK;
}

static const char *stream_name(int stream)
{
    return stream == AGENT_STDIN ? "stdin" : stream == AGENT_STDERR ? "stderr" : "stdout";
}

/* agent.unparsed {error, stream, line, column?, position?}: where the line went bad, in
 * the words of jansson's json_error_t (column and byte position within the line). */
static int unparsed(agent_conv_t *c, const char *error, const json_error_t *je)
{
    c->unparsed++;
    json_t *d = json_object();
    json_object_set_new(d, "error", json_string(error));
    json_object_set_new(d, "stream", json_string(stream_name(c->stream)));
    json_object_set_new(d, "line", json_integer((json_int_t)c->line_no));
    if (je) {
        json_object_set_new(d, "column", json_integer(je->column));
        json_object_set_new(d, "position", json_integer(je->position));
    }
    return agent__emit_syn(c, "agent.unparsed", d);
}

/* {native_type, native_subtype?} of a line kept as agent.native. */
static json_t *native_data(json_t *j)
{
    json_t *d = json_object();
    const char *t = agent__str(j, "type"), *sub = agent__str(j, "subtype");
    if (!t)
        t = agent__str(j, "method");
    if (!t && agent__get(j, "id"))
        t = "response";
    if (!sub)
        sub = agent__str(agent__get(j, "event"), "type");
    if (!sub)
        sub = agent__str(agent__get(j, "item"), "type");
    if (!sub)
        sub = agent__str(agent__get(agent__get(j, "params"), "update"), "sessionUpdate");
    json_object_set_new(d, "native_type", t ? json_string(t) : json_null());
    if (sub)
        json_object_set_new(d, "native_subtype", json_string(sub));
    return d;
}

static int convert_json(agent_conv_t *c, const char *line, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(line, len, 0, &je);
    if (!j) {
        char msg[256];
        snprintf(msg, sizeof msg, "not JSON: %s", je.text);
        return unparsed(c, msg, &je);
    }
    int rc;
    if (!json_is_object(j)) {
        rc = unparsed(c, "not a JSON object", NULL);
    } else {
        c->unknown[0] = 0;
        c->client_side = 0;
        rc = c->ops->convert(c, j);
        if (rc == AGENT__UNKNOWN) {
            char msg[200];
            const char *t = agent__str(j, "type");
            if (!t)
                t = agent__str(j, "method");
            snprintf(msg, sizeof msg, "unknown type '%.150s'", t ? t : "(none)");
            rc = unparsed(c, c->unknown[0] ? c->unknown : msg, NULL);
        }
        if (!rc && c->k == 0) /* parsed fine, nothing universal in it: keep it */
            rc = agent__emit(c, "agent.native", native_data(j));
        c->client_side = 0;
        if (!rc && c->stream == AGENT_STDOUT && c->ops->drive_line && c->write)
            rc = c->ops->drive_line(c, j);
    }
    json_decref(j);
    return rc;
}

int agent_conv_line(agent_conv_t *c, int stream, const char *line, size_t len)
{
    if (len && line[len - 1] == '\r')
        len--;
    store_buf_t tmp = STORE_BUF_INIT;
    c->stream = stream;
    c->line_no = ++c->lines[stream];
    c->k = 0;
    size_t blank = 0;
    while (blank < len && (line[blank] == ' ' || line[blank] == '\t' || line[blank] == '\r'))
        blank++;
    if (blank == len) /* an empty line says nothing; it still counts for the line numbers */
        return REEL_OK;
    int rc = set_raw(c, line, len, &tmp);
    if (rc) {
        store_buf_release(&tmp);
        return rc;
    }
    /* A UTF-8 byte order mark before the first line (written by some Windows tools and
     * editors) is not part of the JSON: skipped for the conversion, kept in 'raw' (the
     * line exactly as it came, as a JSON string since it is not JSON). */
    if (c->line_no == 1 && stream != AGENT_STDERR && len >= 3 && !memcmp(line, "\xef\xbb\xbf", 3))
        line += 3, len -= 3;
    if (stream == AGENT_STDERR) {
        json_t *d = json_object();
        json_object_set_new(d, "line", json_integer((json_int_t)c->line_no));
        json_object_set_new(d, "text", agent__string(line, len));
        rc = agent__emit_syn(c, "agent.stderr", d);
    } else {
        rc = convert_json(c, line, len);
    }
    c->raw = NULL;
    c->raw_len = 0;
    store_buf_release(&tmp);
    return rc;
}

int agent_conv_finish(agent_conv_t *c)
{
    c->stream = AGENT_STDOUT;
    c->line_no = c->lines[AGENT_STDOUT] + 1; /* ids "o<last+1>.k": after every line */
    c->k = 0;
    return agent__items_close_all(c);
}

int agent_conv_exit(agent_conv_t *c, const char *reason, int exit_code, int signal,
                    const char *stderr_tail)
{
    int rc = agent_conv_finish(c);
    if (rc)
        return rc;
    json_t *d = json_object();
    json_object_set_new(d, "reason", json_string(reason));
    json_object_set_new(d, "terminated_by", json_string(signal ? "runner" : "agent"));
    json_object_set_new(d, "exit_code", exit_code >= 0 ? json_integer(exit_code) : json_null());
    if (signal)
        json_object_set_new(d, "signal", json_integer(signal));
    json_t *tail = stderr_tail ? json_loads(stderr_tail, 0, NULL) : NULL;
    if (tail)
        json_object_set_new(d, "stderr_tail", tail);
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    if (!text)
        return REEL_ENOMEM;
    rc = agent_conv_emit_runner(c, "end", "session.ended", text);
    free(text);
    return rc;
}

int agent_conv_prompt(agent_conv_t *c, const char *prompt)
{
    const char *names[3] = {"p.0", "p.1", "p.2"};
    char id[AGENT__ITEM_ID_MAX];
    snprintf(id, sizeof id, "%s%llu", c->item_prefix, (unsigned long long)++c->next_item);
    json_t *base = json_object();
    json_object_set_new(base, "item_id", json_string(id));
    json_object_set_new(base, "kind", json_string("message"));
    json_object_set_new(base, "role", json_string("user"));
    json_t *d[3] = {json_deep_copy(base), json_object(), base};
    json_object_set_new(d[0], "status", json_string("in_progress"));
    json_object_set_new(d[1], "item_id", json_string(id));
    json_object_set_new(d[1], "delta", agent__string(prompt, strlen(prompt)));
    json_object_set_new(d[2], "status", json_string("completed"));
    json_object_set_new(d[2], "text", agent__string(prompt, strlen(prompt)));
    const char *types[3] = {"item.started", "item.delta", "item.completed"};
    int rc = REEL_OK;
    for (int i = 0; i < 3; i++) {
        char *text = json_dumps(d[i], JSON_COMPACT);
        json_decref(d[i]);
        if (!rc)
            rc = text ? agent_conv_emit_runner(c, names[i], types[i], text) : REEL_ENOMEM;
        free(text);
    }
    return rc;
}

/* ---- Protocol drivers ---- */

int agent__send(agent_conv_t *c, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    if (!text)
        return REEL_ENOMEM;
    size_t len = strlen(text);
    int rc = c->write ? c->write(c->write_arg, text, len) : REEL_OK;
    /* Convert the sent line in its own frame, then restore the one being converted. */
    int stream = c->stream;
    uint64_t line_no = c->line_no;
    unsigned k = c->k;
    const char *raw = c->raw;
    size_t raw_len = c->raw_len;
    if (!rc)
        rc = agent_conv_line(c, AGENT_STDIN, text, len);
    c->stream = stream;
    c->line_no = line_no;
    c->k = k;
    c->raw = raw;
    c->raw_len = raw_len;
    free(text);
    return rc;
}

/* ---- Ingest adapter ---- */

/* Nesting an event's data or raw may have: the envelope is level 1 (ingest.h). */
#define FIT_DEPTH (((ingest_limits_t)INGEST_LIMITS_DEFAULT).max_depth - 1)

static int nests_ok(const char *json, size_t len, store_buf_t *scratch)
{
    store_json_error_t je;
    store_buf_clear(scratch);
    return !json || !len || store_json_to_msgpack(json, len, FIT_DEPTH, scratch, &je) != REEL_ETOO_DEEP;
}

void agent__fit(const agent_event_t *ev, agent_event_t *out, store_buf_t *tmp)
{
    store_buf_t scratch = STORE_BUF_INIT;
    int ok = nests_ok(ev->data, ev->data_len, &scratch) && nests_ok(ev->raw, ev->raw_len, &scratch);
    store_buf_release(&scratch);
    *out = *ev;
    if (ok)
        return;
    store_buf_clear(tmp);
    store_buf_printf(tmp, "{\"error\":\"nested deeper than %d levels\",\"type\":", FIT_DEPTH);
    store_json_write_string(tmp, ev->type, strlen(ev->type));
    store_buf_putc(tmp, '}');
    size_t data_len = tmp->len;
    if (ev->raw)
        store_json_write_string(tmp, ev->raw, ev->raw_len);
    out->type = "agent.unparsed";
    out->data = (const char *)tmp->data;
    out->data_len = data_len;
    out->raw = ev->raw ? (const char *)tmp->data + data_len : NULL;
    out->raw_len = ev->raw ? tmp->len - data_len : 0;
}

static int ingest_add_event(agent_conv_t *c, const agent_event_t *in);

/* A captured transcript may lack the agent's start line (a file cut at the front, a
 * format without one): as the runner does, the first event other than agent.native is
 * preceded by one synthetic session.started {agent}, so every ingested session starts
 * exactly once. Its event id is '<prefix>s' (stable: re-ingesting appends nothing). */
static int ingest_emit(void *arg, const agent_event_t *in)
{
    agent_conv_t *c = arg;
    if (!c->started && strcmp(in->type, "agent.native")) {
        c->started = 1;
        if (strcmp(in->type, "session.started")) {
            char id[STORE_EVENT_ID_MAX + 1], data[160];
            snprintf(data, sizeof data, "{\"agent\":\"%s\"}", c->ops->name);
            agent_event_t s = {0};
            if (c->event_prefix) {
                if ((size_t)snprintf(id, sizeof id, "%ss", c->event_prefix) >= sizeof id)
                    return REEL_EINVALID_EVENT;
                s.event_id = id;
            }
            s.type = "session.started";
            s.source = "runner";
            s.synthetic = 1;
            s.native_session_id = in->native_session_id;
            s.data = data;
            s.data_len = strlen(data);
            int rc = ingest_add_event(c, &s);
            if (rc)
                return rc;
        }
    }
    return ingest_add_event(c, in);
}

static int ingest_add_event(agent_conv_t *c, const agent_event_t *in)
{
    store_buf_t mp = STORE_BUF_INIT, tmp = STORE_BUF_INIT;
    store_json_error_t je;
    agent_event_t ev;
    agent__fit(in, &ev, &tmp);
    int rc = store_json_to_msgpack(ev.data, ev.data_len, STORE_JSON_MAX_DEPTH, &mp, &je);
    if (!rc)
        rc = ingest_add(c->ib, ev.type, ev.source, ev.synthetic, ev.native_session_id,
                        ev.event_id, mp.data, mp.len, ev.raw, ev.raw_len, c->ie);
    store_buf_release(&mp);
    store_buf_release(&tmp);
    return rc;
}

int agent_ingest_line(agent_conv_t *c, ingest_batch_t *ib, const char *line, size_t len,
                      ingest_error_t *e)
{
    c->emit = ingest_emit;
    c->emit_arg = c;
    c->ib = ib;
    c->ie = e;
    return agent_conv_line(c, AGENT_STDOUT, line, len);
}

int agent_ingest_end(agent_conv_t *c, ingest_batch_t *ib, ingest_error_t *e)
{
    c->emit = ingest_emit;
    c->emit_arg = c;
    c->ib = ib;
    c->ie = e;
    return agent_conv_finish(c);
}

/* ---- JSON helpers ---- */

json_t *agent__get(json_t *o, const char *key)
{
    return json_is_object(o) ? json_object_get(o, key) : NULL;
}

const char *agent__str(json_t *o, const char *key) { return json_string_value(agent__get(o, key)); }

void agent__copy(json_t *to, const char *as, json_t *from, const char *key)
{
    json_t *v = agent__get(from, key);
    if (v)
        json_object_set(to, as ? as : key, v);
}

/* Length of the valid UTF-8 sequence at 's' (at most 'n' bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char b = s[0];
    size_t need;
    uint32_t cp;
    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf)
        need = 2, cp = b & 0x1f;
    else if (b >= 0xe0 && b <= 0xef)
        need = 3, cp = b & 0x0f;
    else if (b >= 0xf0 && b <= 0xf4)
        need = 4, cp = b & 0x07;
    else
        return 0;
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return need;
}

json_t *agent__string(const char *s, size_t len)
{
    store_buf_t b = STORE_BUF_INIT;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_len(p + i, len - i);
        if (n) {
            store_buf_put(&b, p + i, n);
            i += n;
        } else {
            store_buf_puts(&b, "\xef\xbf\xbd");
            i++;
        }
    }
    json_t *j = store_buf_failed(&b) ? NULL : json_stringn(b.data ? (char *)b.data : "", b.len);
    store_buf_release(&b);
    return j;
}
