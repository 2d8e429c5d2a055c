/* remote.c -- the reading commands against a server (--server URL, REEL_SERVER) instead of
 * a data directory, like redis-cli -h or kcat -b.
 *
 * Each command asks the route that serves what it prints locally (docs/HTTP.md), so the
 * server renders events, records and reports with the very code the local path uses; what
 * a page wraps around them ({"events":[...],"next_offset":N}) is cut off here without
 * re-encoding the elements, so `reel tail --server` prints byte for byte what `reel tail
 * --data` prints (tests/cli/test_remote.py). libcurl does the HTTP (and https).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cmds.h"

/* ---- Requests ---- */

struct sink {
    store_buf_t *buf; /* the body, or NULL when streamed to fd */
    int fd;
    int failed;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct sink *k = arg;
    size_t len = size * n;
    if (k->buf) {
        store_buf_put(k->buf, p, len);
        return store_buf_failed(k->buf) ? 0 : len;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(k->fd, p + off, len - off);
        if (w < 0) {
            k->failed = 1;
            return 0;
        }
        off += (size_t)w;
    }
    return len;
}

/* The detail of an RFC 7807 problem body, else the body itself (shortened). */
static void problem_text(const store_buf_t *b, char *out, size_t cap)
{
    const char *v;
    size_t n;
    if (b->len && !cmd_json_member((const char *)b->data, b->len, "detail", &v, &n) && n >= 2 &&
        v[0] == '"') {
        store_buf_t s = STORE_BUF_INIT;
        cmd_json_unquote(v, n, &s);
        snprintf(out, cap, "%s", store_buf_cstr(&s));
        store_buf_release(&s);
        return;
    }
    snprintf(out, cap, "%.*s", (int)(b->len > 200 ? 200 : b->len), b->len ? (const char *)b->data : "");
}

/* GET, or POST of 'post' (JSON, 'post_len' bytes) when it is not NULL. */
static int request_body(const char *prog, const cmd_remote_t *r, const char *path,
                        const char *post, size_t post_len, struct sink *k)
{
    static int inited;
    if (!inited++)
        curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    if (!c) {
        cmd_error(prog, "cannot start an HTTP client");
        return -1;
    }
    store_buf_t url = STORE_BUF_INIT, err = STORE_BUF_INIT;
    size_t base = strlen(r->url);
    while (base && r->url[base - 1] == '/')
        base--;
    store_buf_printf(&url, "%.*s%s", (int)base, r->url, path);
    struct curl_slist *h = NULL;
    if (r->token) {
        store_buf_t auth = STORE_BUF_INIT;
        store_buf_printf(&auth, "Authorization: Bearer %s", r->token);
        h = curl_slist_append(h, store_buf_cstr(&auth));
        store_buf_release(&auth);
    }
    /* The body of a 4xx/5xx goes to 'err' (the problem), never to the output. */
    struct sink ek = {.buf = &err};
    long status = 0;
    curl_easy_setopt(c, CURLOPT_URL, store_buf_cstr(&url));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, k);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (post) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)post_len);
    }
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_WRITE_ERROR && status >= 400) /* headers said error: fetch it as a problem */
        cc = CURLE_OK;
    int rc = 0;
    if (cc != CURLE_OK) {
        cmd_error(prog, "%s: %s", store_buf_cstr(&url),
                  cc == CURLE_COULDNT_CONNECT ? "could not connect (is the server running?)"
                                              : curl_easy_strerror(cc));
        rc = -1;
    } else if (status >= 400) {
        if (!post && (!k->buf || !k->buf->len)) { /* nothing streamed: ask again for the problem */
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &ek);
            curl_easy_perform(c);
        } else {
            store_buf_put(&err, k->buf->data, k->buf->len);
        }
        char detail[512];
        problem_text(&err, detail, sizeof detail);
        cmd_error(prog, "%s: HTTP %ld: %s", r->url, status, detail);
        rc = -1;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    store_buf_release(&url);
    store_buf_release(&err);
    return rc;
}

static int request(const char *prog, const cmd_remote_t *r, const char *path, struct sink *k)
{
    return request_body(prog, r, path, NULL, 0, k);
}

int cmd_remote_post(const char *prog, const cmd_remote_t *r, const char *path,
                    const char *body, size_t len, store_buf_t *out)
{
    store_buf_clear(out);
    struct sink k = {.buf = out};
    return request_body(prog, r, path, body, len, &k);
}

int cmd_remote_get(const char *prog, const cmd_remote_t *r, const char *path, store_buf_t *out)
{
    store_buf_clear(out);
    struct sink k = {.buf = out};
    return request(prog, r, path, &k);
}

int cmd_remote_stream(const char *prog, const cmd_remote_t *r, const char *path, int fd)
{
    struct sink k = {.fd = fd};
    int rc = request(prog, r, path, &k);
    if (!rc && k.failed) {
        cmd_error(prog, "cannot write the output");
        return -1;
    }
    return rc;
}

void cmd_remote_escape(store_buf_t *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c))
            store_buf_putc(b, (char)c);
        else
            store_buf_printf(b, "%%%02X", c);
    }
}

void cmd_remote_session_path(store_buf_t *b, const char *session, const char *route)
{
    store_buf_clear(b);
    store_buf_printf(b, "/v1/sessions/");
    cmd_remote_escape(b, session);
    store_buf_printf(b, "/%s", route);
}

/* ---- JSON pages, cut without re-encoding ---- */

/* The end of the JSON value starting at p (a string, a container or a scalar). */
static const char *value_end(const char *p, const char *end)
{
    int depth = 0;
    for (; p < end; p++) {
        char c = *p;
        if (c == '"') {
            /* memchr to the next quote, then an odd run of backslashes before it escapes it:
             * long strings (event data) cost a memchr, not a branch per byte */
            for (p++;; p++) {
                const char *q = p < end ? memchr(p, '"', (size_t)(end - p)) : NULL;
                if (!q)
                    return NULL;
                const char *b = q;
                while (b > p && b[-1] == '\\')
                    b--;
                p = q;
                if ((q - b) % 2 == 0)
                    break;
            }
            if (!depth)
                return p + 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth <= 0)
                return depth < 0 ? p : p + 1;
        } else if (!depth && (c == ',' || c == ' ' || c == '\n')) {
            return p;
        }
    }
    return depth ? NULL : end;
}

int cmd_json_member(const char *json, size_t len, const char *name, const char **v, size_t *vlen)
{
    const char *p = json, *end = json + len;
    size_t nl = strlen(name);
    if (p >= end || *p != '{')
        return -1;
    p++;
    while (p < end && *p != '}') {
        if (*p == ',' || *p == ' ' || *p == '\n') {
            p++;
            continue;
        }
        const char *k = p, *ke = value_end(p, end);
        if (!ke || ke >= end || *ke != ':')
            return -1;
        const char *val = ke + 1, *ve = value_end(val, end);
        if (!ve)
            return -1;
        if ((size_t)(ke - k) == nl + 2 && !memcmp(k + 1, name, nl)) {
            *v = val;
            *vlen = (size_t)(ve - val);
            return 0;
        }
        p = ve;
    }
    return -1;
}

int cmd_json_members(const char *json, size_t len, cmd_json_kv_t *out, size_t cap)
{
    const char *p = json, *end = json + len;
    size_t n = 0;
    if (p >= end || *p != '{')
        return -1;
    p++;
    while (p < end && *p != '}') {
        if (*p == ',' || *p == ' ' || *p == '\n') {
            p++;
            continue;
        }
        const char *k = p, *ke = value_end(p, end);
        if (!ke || ke >= end || *ke != ':' || *k != '"')
            return -1;
        const char *val = ke + 1, *ve = value_end(val, end);
        if (!ve)
            return -1;
        if (n < cap)
            out[n++] = (cmd_json_kv_t){k, val, (size_t)(ke - k), (size_t)(ve - val)};
        p = ve;
    }
    return (int)n;
}

int cmd_json_array_each(const char *json, size_t len, const char *name,
                        int (*cb)(void *arg, const char *elem, size_t n), void *arg)
{
    const char *a;
    size_t an;
    if (cmd_json_member(json, len, name, &a, &an) || an < 2 || a[0] != '[')
        return -1;
    const char *p = a + 1, *end = a + an - 1;
    while (p < end) {
        if (*p == ',' || *p == ' ' || *p == '\n') {
            p++;
            continue;
        }
        const char *e = value_end(p, end);
        if (!e)
            return -1;
        int rc = cb(arg, p, (size_t)(e - p));
        if (rc)
            return rc;
        p = e;
    }
    return 0;
}

/* \uXXXX pairs to UTF-8; a lone surrogate to its WTF-8 bytes, as the store keeps it. */
static void put_code_point(store_buf_t *o, unsigned cp)
{
    if (cp < 0x80) {
        store_buf_putc(o, (char)cp);
    } else if (cp < 0x800) {
        store_buf_putc(o, (char)(0xc0 | cp >> 6));
        store_buf_putc(o, (char)(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
        store_buf_putc(o, (char)(0xe0 | cp >> 12));
        store_buf_putc(o, (char)(0x80 | ((cp >> 6) & 0x3f)));
        store_buf_putc(o, (char)(0x80 | (cp & 0x3f)));
    } else {
        store_buf_putc(o, (char)(0xf0 | cp >> 18));
        store_buf_putc(o, (char)(0x80 | ((cp >> 12) & 0x3f)));
        store_buf_putc(o, (char)(0x80 | ((cp >> 6) & 0x3f)));
        store_buf_putc(o, (char)(0x80 | (cp & 0x3f)));
    }
}

static unsigned hex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

void cmd_json_unquote(const char *v, size_t n, store_buf_t *out)
{
    const char *p = v + 1, *end = v + n - 1;
    static const char esc[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
    while (p < end) {
        if (*p != '\\') {
            store_buf_putc(out, *p++);
            continue;
        }
        p++;
        if (*p == 'u' && end - p >= 5) {
            unsigned cp = hex4(p + 1);
            p += 5;
            if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                unsigned lo = hex4(p + 2);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
            }
            put_code_point(out, cp);
            continue;
        }
        const char *e = strchr(esc, *p);
        store_buf_putc(out, e && ((e - esc) % 2 == 0) ? e[1] : *p);
        p++;
    }
}
