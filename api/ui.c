/* ui.c -- the web inspector at /ui/ (SPEC §4): a sessions list and a live event view.
 *
 * One static page and its script, no build step: the page lists sessions with fetch() and
 * follows one session over EventSource (SSE). A token typed into the page is kept in
 * localStorage and sent as a bearer header, or as ?access_token= for the EventSource,
 * which cannot send headers. The script renders every value with textContent, and the
 * Content-Security-Policy allows scripts from this server only (no inline script), so
 * stored event data can never run as code. Neither file holds data: no token needed.
 */
#include <string.h>

#include "api/api_int.h"

static const char page[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<title>reel inspector</title>\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<style>\n"
    "body { font: 14px/1.4 system-ui, sans-serif; margin: 0; display: flex; height: 100vh; }\n"
    "#side { width: 300px; border-right: 1px solid #ddd; overflow: auto; padding: 8px; }\n"
    "#main { flex: 1; overflow: auto; padding: 8px 16px; }\n"
    ".s { padding: 4px 6px; cursor: pointer; border-radius: 4px; }\n"
    ".s:hover, .s.on { background: #eef; }\n"
    ".meta { color: #777; font-size: 12px; }\n"
    ".ev { border-bottom: 1px solid #f0f0f0; padding: 4px 0; white-space: pre-wrap; }\n"
    ".t { font-weight: 600; margin-right: 8px; }\n"
    ".msg { background: #f7f7fb; padding: 6px; border-radius: 4px; }\n"
    "#bar { margin-bottom: 8px; }\n"
    "input { width: 100%; box-sizing: border-box; }\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<div id=\"side\">\n"
    "  <div id=\"bar\"><input id=\"tok\" placeholder=\"bearer token (if the server needs one)\"></div>\n"
    "  <div id=\"sessions\"></div>\n"
    "  <button id=\"more\" hidden>more</button>\n"
    "</div>\n"
    "<div id=\"main\"><h3 id=\"title\">reel: pick a session</h3><div id=\"status\" class=\"meta\"></div><div id=\"events\"></div></div>\n"
    "<script src=\"/ui/app.js\"></script>\n"
    "</body>\n"
    "</html>\n";

static const char script[] =
    "\"use strict\";\n"
    "const $ = (id) => document.getElementById(id);\n"
    "const tok = $(\"tok\");\n"
    "tok.value = localStorage.getItem(\"reel-token\") || \"\";\n"
    "tok.onchange = () => { localStorage.setItem(\"reel-token\", tok.value); loadSessions(); };\n"
    "let cursor = null, source = null;\n"
    "\n"
    "function headers() {\n"
    "  return tok.value ? { Authorization: \"Bearer \" + tok.value } : {};\n"
    "}\n"
    "\n"
    "function el(tag, cls, text) {\n"
    "  const e = document.createElement(tag);\n"
    "  if (cls) e.className = cls;\n"
    "  if (text !== undefined) e.textContent = text;\n"
    "  return e;\n"
    "}\n"
    "\n"
    "async function loadSessions(more) {\n"
    "  if (!more) { $(\"sessions\").textContent = \"\"; cursor = null; }\n"
    "  const q = \"/v1/sessions?limit=100\" + (cursor ? \"&cursor=\" + encodeURIComponent(cursor) : \"\");\n"
    "  const r = await fetch(q, { headers: headers() });\n"
    "  if (!r.ok) { $(\"sessions\").textContent = \"error \" + r.status; return; }\n"
    "  const j = await r.json();\n"
    "  for (const s of j.sessions) {\n"
    "    const d = el(\"div\", \"s\");\n"
    "    d.append(el(\"div\", \"\", s.id));\n"
    "    d.append(el(\"div\", \"meta\", (s.agent || \"?\") + \" - \" + s.status + \" - \" + s.event_count + \" events\"));\n"
    "    d.onclick = () => open(s.id, d);\n"
    "    $(\"sessions\").append(d);\n"
    "  }\n"
    "  cursor = j.next_cursor;\n"
    "  $(\"more\").hidden = !cursor;\n"
    "}\n"
    "$(\"more\").onclick = () => loadSessions(true);\n"
    "\n"
    "function open(id, node) {\n"
    "  document.querySelectorAll(\".s.on\").forEach((n) => n.classList.remove(\"on\"));\n"
    "  if (node) node.classList.add(\"on\");\n"
    "  if (source) source.close();\n"
    "  $(\"title\").textContent = id;\n"
    "  $(\"events\").textContent = \"\";\n"
    "  const items = new Map();\n"
    "  let url = \"/v1/sessions/\" + encodeURIComponent(id) + \"/events/sse\";\n"
    "  if (tok.value) url += \"?access_token=\" + encodeURIComponent(tok.value);\n"
    "  source = new EventSource(url);\n"
    "  source.onopen = () => { $(\"status\").textContent = \"live\"; };\n"
    "  source.onerror = () => { $(\"status\").textContent = \"reconnecting...\"; };\n"
    "  source.onmessage = (m) => show(JSON.parse(m.data), items);\n"
    "}\n"
    "\n"
    "function show(ev, items) {\n"
    "  const data = ev.data || {};\n"
    "  if (ev.type === \"item.delta\" && items.has(data.item_id)) {\n"
    "    items.get(data.item_id).textContent += typeof data.delta === \"string\" ? data.delta : JSON.stringify(data.delta);\n"
    "    return;\n"
    "  }\n"
    "  const row = el(\"div\", \"ev\");\n"
    "  row.append(el(\"span\", \"t\", \"#\" + ev.sequence + \" \" + ev.type));\n"
    "  row.append(el(\"span\", \"meta\", ev.time + (ev.source ? \" - \" + ev.source : \"\")));\n"
    "  if (ev.type === \"item.started\" && data.item_id) {\n"
    "    const body = el(\"div\", \"msg\", \"\");\n"
    "    items.set(data.item_id, body);\n"
    "    row.append(body);\n"
    "  } else if (ev.data !== null && ev.data !== undefined) {\n"
    "    row.append(el(\"div\", \"\", JSON.stringify(ev.data, null, 1)));\n"
    "  }\n"
    "  $(\"events\").append(row);\n"
    "  row.scrollIntoView({ block: \"end\" });\n"
    "}\n"
    "\n"
    "loadSessions();\n";

static enum MHD_Result serve(api_req_t *rq, const char *body, size_t len, const char *type)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                            "object-src 'none'; frame-ancestors 'none'");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    return api__queue(rq, 200, resp);
}

enum MHD_Result api__ui(api_req_t *rq, int script_file)
{
    if (script_file)
        return serve(rq, script, sizeof script - 1, "text/javascript; charset=utf-8");
    return serve(rq, page, sizeof page - 1, "text/html; charset=utf-8");
}
