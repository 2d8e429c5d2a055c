/* route.c -- path patterns and methods of the route table (core.h, api/routes.c).
 *
 * Matching works on the raw request target (kept by the URI log callback), not on
 * libmicrohttpd's decoded URL: MHD decodes %2F to '/' and cuts the path at %00 before the
 * handler sees it, so "/v1/sessions/a%2F..%2Fb/events" and "/v1/sessions/abc%00x/events"
 * could otherwise route as other paths. Here the path is split on the raw '/' and a
 * parameter segment is handed over raw; the dispatcher decodes an {id} once, alone.
 */
#include <stdio.h>
#include <string.h>

#include "api/core/core.h"

static const struct {
    const char *name;
    unsigned bit;
} methods[] = {
    {"GET", API_M_GET},       {"HEAD", API_M_HEAD},     {"POST", API_M_POST},
    {"PUT", API_M_PUT},       {"DELETE", API_M_DELETE}, {"OPTIONS", API_M_OPTIONS},
};

unsigned api__method_bit(const char *method)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (!strcmp(method, methods[i].name))
            return methods[i].bit;
    return 0;
}

void api__methods_text(unsigned bits, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (bits & methods[i].bit) {
            int n = snprintf(out + o, cap - o, "%s%s", o ? ", " : "", methods[i].name);
            if (n < 0 || (size_t)n >= cap - o) {
                out[o] = '\0'; /* whole names only */
                return;
            }
            o += (size_t)n;
        }
}

/* Length of the pattern segment at 'p' (up to the next '/' or the end). */
static size_t seg_len(const char *p, size_t n)
{
    const char *s = memchr(p, '/', n);
    return s ? (size_t)(s - p) : n;
}

int api__route_match(const char *pattern, const char *path, size_t len, const char **param,
                     size_t *param_len)
{
    *param = NULL;
    *param_len = 0;
    if (len == 0 || path[0] != '/' || pattern[0] != '/')
        return 0;
    const char *pp = pattern + 1, *sp = path + 1;
    size_t pn = strlen(pp), sn = len - 1;
    for (;;) {
        size_t pl = seg_len(pp, pn);
        if (pl == 1 && pp[0] == '*' && pl == pn) { /* the rest, not empty */
            if (sn == 0)
                return 0;
            *param = sp;
            *param_len = sn;
            return 1;
        }
        size_t sl = seg_len(sp, sn);
        if (pp[0] == '{' && pl > 2 && pp[pl - 1] == '}') {
            *param = sp;
            *param_len = sl;
        } else if (pl != sl || memcmp(pp, sp, pl)) {
            return 0;
        }
        int pend = pl == pn, send = sl == sn;
        if (pend || send)
            return pend && send;
        pp += pl + 1;
        pn -= pl + 1;
        sp += sl + 1;
        sn -= sl + 1;
    }
}

unsigned api__route_methods(const api_route_t *tab, size_t n, const char *pattern)
{
    unsigned bits = API_M_OPTIONS;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(tab[i].pattern, pattern))
            bits |= tab[i].methods;
    return bits;
}
