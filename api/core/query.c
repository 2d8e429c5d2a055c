/* query.c -- percent-decoding, query parameters and request headers.
 *
 * Query strings are decoded one parameter at a time from the raw target (the request's
 * 'query'), '+' meaning a space as in HTML forms. Integers are plain decimal: digits only,
 * no sign, no blanks, no overflow; a bad value is answered with a problem naming it.
 */
#include <stdio.h>
#include <string.h>

#include "api/core/core.h"
#include "store/parse.h"

/* ---- Percent decoding ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long api__pct_decode(const char *s, size_t n, char *out, size_t cap, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int h = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int l = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
        } else if (plus && c == '+') {
            c = ' ';
        }
        if (c == 0 || o >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

/* ---- Query parameters ---- */

int api__query_in(const char *query, const char *name, char *out, size_t out_len)
{
    const char *p = query;
    char key[64];
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t kn = eq ? (size_t)(eq - p) : n;
        long k = api__pct_decode(p, kn, key, sizeof key - 1, 1);
        if (k >= 0 && !strcmp(key, name)) {
            const char *v = eq ? eq + 1 : p + n;
            size_t vn = eq ? n - kn - 1 : 0;
            if (api__pct_decode(v, vn, out, out_len - 1, 1) < 0)
                return REEL_EINVALID_PARAMETER;
            return 1;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return 0;
}

int api__query(const api_req_t *rq, const char *name, char *out, size_t out_len)
{
    return api__query_in(rq->query, name, out, out_len);
}

int api__query_count(const api_req_t *rq, const char *name)
{
    int n = 0;
    size_t nl = strlen(name);
    for (const char *p = rq->query; *p;) {
        size_t len = strcspn(p, "&");
        if (len >= nl && !strncmp(p, name, nl) && (len == nl || p[nl] == '='))
            n++;
        p += len;
        if (*p == '&')
            p++;
    }
    return n;
}

int api__query_u64(api_req_t *rq, const char *name, uint64_t max, uint64_t *v)
{
    char buf[64];
    int rc = api__query(rq, name, buf, sizeof buf);
    if (rc == 0)
        return REEL_OK;
    uint64_t x;
    if (rc < 0 || store_parse_u64(buf, strlen(buf), &x) != REEL_OK || x > max) {
        api__problem(rq, REEL_EINVALID_PARAMETER,
                     "'%s' must be an integer from 0 to %llu, not '%s'", name,
                     (unsigned long long)max, rc < 0 ? "(bad encoding)" : buf);
        return REEL_EINVALID_PARAMETER;
    }
    *v = x;
    return REEL_OK;
}

int api__query_bool(api_req_t *rq, const char *name, int *v)
{
    char buf[16];
    int rc = api__query(rq, name, buf, sizeof buf);
    if (rc == 0)
        return REEL_OK;
    if (rc > 0 && (!strcmp(buf, "true") || !strcmp(buf, "1"))) {
        *v = 1;
        return REEL_OK;
    }
    if (rc > 0 && (!strcmp(buf, "false") || !strcmp(buf, "0"))) {
        *v = 0;
        return REEL_OK;
    }
    api__problem(rq, REEL_EINVALID_PARAMETER, "'%s' must be true or false, not '%s'", name,
                 rc < 0 ? "(bad encoding)" : buf);
    return REEL_EINVALID_PARAMETER;
}

const char *api__header(const api_req_t *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}
