/* ui.c -- the web inspector at /ui/ (docs/UI.md): static files embedded in the binary.
 *
 * The files live in ui/ (index.html, app.js, style.css: plain HTML/CSS/JS, no framework,
 * no build step) and are turned into byte arrays by scripts/embed_ui.sh, which writes the
 * header ui_assets.h included below; the Makefile generates it under the build directory
 * whenever a file in ui/ changes. docs/UI.md describes the inspector itself.
 *
 * Routes (rows of api/routes.c):
 *   /ui          302 to "ui/" (relative, so it stays under a reverse proxy's path prefix)
 *   /ui/         index.html (its asset and API URLs are relative to it: the inspector
 *                works unchanged when a proxy serves reel under a path prefix)
 *   /ui/<name>   the embedded file of that name; anything else is 404 not_found
 *
 * The files hold no data, so they are served without a token: the page asks for one and
 * sends it with every API call. Every answer carries a Content-Security-Policy that
 * allows only this server's own scripts, styles and connections (no inline script: the
 * script renders stored data with textContent only, so an event can never run as code),
 * nosniff, no framing, and a strong ETag; a matching If-None-Match is answered 304.
 * HEAD is answered by libmicrohttpd from the GET answer (headers only).
 */
#include <string.h>

#include "api/handlers/handlers.h"

typedef struct api_ui_asset {
    const char *name;          /* file name under /ui/ */
    const char *type;          /* Content-Type */
    const char *etag;          /* strong ETag, quotes included */
    const unsigned char *data; /* 'len' bytes (plus a NUL not counted) */
    size_t len;
} api_ui_asset_t;

#ifdef __has_include
#if __has_include("ui_assets.h")
#include "ui_assets.h"
#define UI_EMBEDDED 1
#endif
#endif
#ifndef UI_EMBEDDED
/* Built without the generated header (the Makefile's ui_assets.h rule did not run): serve
 * a page that says so instead of failing the whole build. */
static const unsigned char ui_missing[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<title>reel inspector</title></head><body><main><h1>reel inspector</h1>"
    "<p>This reel binary was built without the inspector's files: build it with "
    "<code>make</code>, which embeds <code>ui/*</code> with <code>scripts/embed_ui.sh</code>."
    "</p></main></body></html>\n";
static const api_ui_asset_t ui_assets[] = {
    {"index.html", "text/html; charset=utf-8", "\"missing\"", ui_missing, sizeof ui_missing - 1},
};
#endif

#define UI_CSP                                                                               \
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "       \
    "form-action 'none'; frame-ancestors 'none'"

static const api_ui_asset_t *find_asset(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof ui_assets / sizeof ui_assets[0]; i++)
        if (strlen(ui_assets[i].name) == len && !memcmp(ui_assets[i].name, name, len))
            return &ui_assets[i];
    return NULL;
}

/* 1 if the If-None-Match header 'inm' lists 'etag' (weak or strong) or is "*". */
static int etag_matches(const char *inm, const char *etag)
{
    size_t el = strlen(etag);
    for (const char *p = inm; *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ","), m = n;
        while (m && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if ((m == 1 && *p == '*') || (m == el && !memcmp(p, etag, el)) ||
            (m == el + 2 && !memcmp(p, "W/", 2) && !memcmp(p + 2, etag, el)))
            return 1;
        p += n;
    }
    return 0;
}

static enum MHD_Result serve(api_req_t *rq, const api_ui_asset_t *a)
{
    const char *inm = api__header(rq, MHD_HTTP_HEADER_IF_NONE_MATCH);
    int fresh = inm && etag_matches(inm, a->etag);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        fresh ? 0 : a->len, fresh ? NULL : (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    rq->resp_bytes = fresh ? 0 : (int64_t)a->len;
    if (!fresh)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, a->etag);
    MHD_add_response_header(resp, "Content-Security-Policy", UI_CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    /* Revalidate every time (cheap with the ETag): a new binary never runs an old app.js. */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    return api__queue(rq, fresh ? 304 : 200, resp);
}

enum MHD_Result api__ui_index(api_req_t *rq, const char *data, size_t *size)
{
    const api_ui_asset_t *a = find_asset("index.html", 10);
    return a ? serve(rq, a) : api__problem(rq, REEL_ENOT_FOUND, "the inspector was not built in");
}

/* A 302 to a relative Location: behind a reverse proxy that serves reel under a path
 * prefix, the browser stays under that prefix. */
static enum MHD_Result redirect_ui(api_req_t *rq)
{
    static const char body[] = "the inspector is at ui/\n";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    rq->resp_bytes = sizeof body - 1;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, "ui/");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    return api__queue(rq, 302, resp);
}

/* "/" sends a browser to the inspector ("ui/"). */
enum MHD_Result api__root(api_req_t *rq, const char *data, size_t *size)
{
    return redirect_ui(rq);
}

/* "/ui" too: index.html's URLs are relative to "/ui/", so "/ui" must not serve it. The
 * relative "ui/" from ".../ui" is ".../ui/". */
enum MHD_Result api__ui_slash(api_req_t *rq, const char *data, size_t *size)
{
    return redirect_ui(rq);
}

enum MHD_Result api__ui_file(api_req_t *rq, const char *data, size_t *size)
{
    const api_ui_asset_t *a = find_asset(rq->param, rq->param_len);
    if (!a)
        return api__problem(rq, REEL_ENOT_FOUND, "no file '/ui/%.*s' in the inspector",
                            (int)(rq->param_len > 76 ? 76 : rq->param_len), rq->param);
    return serve(rq, a);
}
