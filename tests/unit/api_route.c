/* api_route.c -- the pure helpers of api/core/: route patterns, methods and the Allow
 * list (route.c), percent-decoding and query parameters (query.c). */
#include <string.h>

#include "api/core/core.h"
#include "api/routes.h"
#include "tests/unit/testutil.h"

/* Matches 'path' against 'pattern'; returns 1/0 and the parameter as a C string. */
static int match(const char *pattern, const char *path, char *param)
{
    const char *p;
    size_t n;
    int m = api__route_match(pattern, path, strlen(path), &p, &n);
    param[0] = '\0';
    if (m && p) {
        memcpy(param, p, n);
        param[n] = '\0';
    }
    return m;
}

Test(api_route, literal_paths)
{
    char p[256];
    cr_assert(match("/v1/health", "/v1/health", p));
    cr_assert(!match("/v1/health", "/v1/health/", p));
    cr_assert(!match("/v1/health", "/v1//health", p));
    cr_assert(!match("/v1/health", "/v1/healthz", p));
    cr_assert(!match("/v1/health", "/v1", p));
    cr_assert(!match("/v1/health", "v1/health", p));
    cr_assert(!match("/v1/health", "", p));
    cr_assert(match("/ui/", "/ui/", p));
    cr_assert(!match("/ui/", "/ui", p));
    cr_assert(!match("/ui", "/ui/", p));
}

Test(api_route, id_segment_is_raw_and_one_segment)
{
    char p[256];
    cr_assert(match("/v1/sessions/{id}/events", "/v1/sessions/abc/events", p));
    cr_assert_str_eq(p, "abc");
    cr_assert(match("/v1/sessions/{id}/events", "/v1/sessions/a%2F..%2Fb/events", p));
    cr_assert_str_eq(p, "a%2F..%2Fb"); /* decoded once, later, by the dispatcher */
    cr_assert(!match("/v1/sessions/{id}/events", "/v1/sessions/a/b/events", p));
    cr_assert(!match("/v1/sessions/{id}", "/v1/sessions/a/events", p));
    cr_assert(match("/v1/sessions/{id}", "/v1/sessions/", p)); /* empty: refused as an id */
    cr_assert_str_eq(p, "");
}

Test(api_route, star_takes_a_non_empty_rest)
{
    char p[256];
    cr_assert(match("/v1/stream/*", "/v1/stream/a/b/c", p));
    cr_assert_str_eq(p, "a/b/c");
    cr_assert(match("/v1/stream/*", "/v1/stream/%2F", p));
    cr_assert_str_eq(p, "%2F");
    cr_assert(!match("/v1/stream/*", "/v1/stream/", p));
    cr_assert(!match("/v1/stream/*", "/v1/stream", p));
    cr_assert(!match("/v1/stream/*", "/v1/streams/x", p));
}

Test(api_route, methods_and_allow_list)
{
    cr_assert_eq(api__method_bit("GET"), API_M_GET);
    cr_assert_eq(api__method_bit("OPTIONS"), API_M_OPTIONS);
    cr_assert_eq(api__method_bit("get"), 0u); /* methods are case-sensitive (RFC 9110) */
    cr_assert_eq(api__method_bit("PATCH"), 0u);
    char t[128];
    api__methods_text(API_M_READ | API_M_POST | API_M_OPTIONS, t, sizeof t);
    cr_assert_str_eq(t, "GET, HEAD, POST, OPTIONS");
    api__methods_text(0, t, sizeof t);
    cr_assert_str_eq(t, "");
    api__methods_text(API_M_READ | API_M_DELETE, t, 8); /* cut, never overrun */
    cr_assert_str_eq(t, "GET");
}

/* Every row of the real table: the methods of one pattern are the union of its rows, a
 * body is only read for methods the row takes, and no two rows of a pattern overlap. */
Test(api_route, the_route_table_is_consistent)
{
    for (size_t i = 0; i < api__n_routes; i++) {
        const api_route_t *r = &api__routes[i];
        cr_assert(r->pattern[0] == '/' && r->handler && r->methods, "row %zu", i);
        cr_assert_eq(r->body & ~r->methods, 0u, "%s reads a body it does not take",
                     r->pattern);
        for (size_t j = i + 1; j < api__n_routes; j++)
            if (!strcmp(r->pattern, api__routes[j].pattern))
                cr_assert_eq(r->methods & api__routes[j].methods, 0u, "%s: rows overlap",
                             r->pattern);
    }
    char t[128];
    api__methods_text(api__route_methods(api__routes, api__n_routes, "/v1/sessions/{id}"), t,
                      sizeof t);
    cr_assert_str_eq(t, "GET, HEAD, POST, PUT, DELETE, OPTIONS");
    api__methods_text(api__route_methods(api__routes, api__n_routes, "/v1/health"), t,
                      sizeof t);
    cr_assert_str_eq(t, "GET, HEAD, OPTIONS");
}

Test(api_query, percent_decoding)
{
    char o[16];
    cr_assert_eq(api__pct_decode("a%2Fb", 5, o, 15, 0), 3);
    cr_assert_str_eq(o, "a/b");
    cr_assert_eq(api__pct_decode("a+b", 3, o, 15, 0), 3);
    cr_assert_str_eq(o, "a+b");
    cr_assert_eq(api__pct_decode("a+b", 3, o, 15, 1), 3);
    cr_assert_str_eq(o, "a b");
    cr_assert_eq(api__pct_decode("%e2%82%AC", 9, o, 15, 0), 3);
    cr_assert_str_eq(o, "\xe2\x82\xac");
    cr_assert_eq(api__pct_decode("%00", 3, o, 15, 0), -1);   /* NUL */
    cr_assert_eq(api__pct_decode("%4", 2, o, 15, 0), -1);    /* cut escape */
    cr_assert_eq(api__pct_decode("%zz", 3, o, 15, 0), -1);   /* not hex */
    cr_assert_eq(api__pct_decode("abcd", 4, o, 3, 0), -1);   /* longer than 'cap' */
    cr_assert_eq(api__pct_decode("abc", 3, o, 3, 0), 3);     /* exactly 'cap' */
    cr_assert_eq(api__pct_decode("", 0, o, 3, 0), 0);
    cr_assert_str_eq(o, "");
}

Test(api_query, parameters)
{
    char v[32];
    cr_assert_eq(api__query_in("a=1&b=two&c", "b", v, sizeof v), 1);
    cr_assert_str_eq(v, "two");
    cr_assert_eq(api__query_in("a=1&b=two&c", "c", v, sizeof v), 1);
    cr_assert_str_eq(v, "");
    cr_assert_eq(api__query_in("a=1&b=two", "z", v, sizeof v), 0);
    cr_assert_eq(api__query_in("", "a", v, sizeof v), 0);
    cr_assert_eq(api__query_in("t%79pes=a%2Cb+c", "types", v, sizeof v), 1); /* key decoded */
    cr_assert_str_eq(v, "a,b c");
    cr_assert_eq(api__query_in("a=1&a=2", "a", v, sizeof v), 1); /* the first wins */
    cr_assert_str_eq(v, "1");
    cr_assert_eq(api__query_in("a=%zz", "a", v, sizeof v), REEL_EINVALID_PARAMETER);
    cr_assert_eq(api__query_in("a=0123456789", "a", v, 8), REEL_EINVALID_PARAMETER);
}
