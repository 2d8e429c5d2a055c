/* cluster_reads.c -- `reel cluster events|sessions`: reads over every cell of a cluster
 * (docs/CLUSTER.md "Cluster-wide reads"; issue 18 item 5).
 *
 * Each cell serves its own feed (GET /v1/events, positions of its own log) and its own
 * listing; there is no total order across cells. `events` reads every cell's feed at once
 * (libcurl multi: one request in flight per cell) and prints each event as it comes, with
 * its cell and a **vector cursor**: one position per cell, "c1:120,c2:98,c3:0" (cells in
 * id order). Given back with --after it resumes every cell exactly after what was printed,
 * so every event of the cluster is read once, in per-session order (a session lives on one
 * cell; each feed is in commit order, which within a session is sequence order). A cell
 * the cursor does not name starts at position 0 (a cell added later is read from its
 * start); a cell the cursor names but the map does not is carried along unchanged (a cell
 * removed, or a map older than the cursor), so a cursor survives map changes.
 *
 * `sessions` lists every cell's sessions and keeps each record only from the cell the map
 * gives its shard to, so a session whose records exist on two cells (a move that copied
 * it) is listed once, from its owner.
 *
 * Cells are reached at their map addresses (http://ADDRESS), or through one URL (nginx)
 * with --server, which picks each cell with the Reel-Cell request header.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "tools/cmds.h"

#define WAIT_S 5      /* --follow: each cell's long-poll; also the stop latency bound */
#define RETRY_MS 1000 /* --follow: a cell that did not answer is asked again after this */
#define MAX_CELLS 1024

/* Moves (issue 18 item 4b). After a move, a session's events up to the move are in the old
 * owner's feed and, copied at new positions, in the new owner's. The rule for a cluster
 * reader: a session's events up to the move come from the old owner, only the later ones
 * from the new owner. skip_copied=1 is the feed option (branch s7-move) that leaves the
 * copies out; a cell built before it ignores the parameter, and a reader that spans a move
 * then reads the copies twice (docs/CLUSTER.md "Cluster-wide reads"). */
#define CLUSTER_READS_FEED_SKIP_MOVED "&skip_copied=1"


/* ---- Cells and the vector cursor ---- */

typedef struct rcell {
    char id[CLUSTER_ID_MAX + 1];
    char base[CLUSTER_ADDR_MAX + 16]; /* "http://ADDRESS", or the --server URL */
    uint64_t pos;                     /* the cursor: after this position of its feed */
    int in_map;                       /* 0: named by the cursor only, carried along */
    int done;                         /* without --follow: caught up */
    int down;                         /* said once that it does not answer */
    uint64_t retry_at;
    CURL *c;                          /* the request in flight, or NULL */
    struct curl_slist *hdr;
    store_buf_t body;
    /* events: the page in hand (borrowed from 'body'), not yet printed from 'next' on */
    struct el { const char *p; size_t n; } *els;
    size_t n_els, cap_els, next;
    uint64_t page_after; /* the page's next_after: the cursor once it is all printed */
    /* the next page, asked for while this one is printed */
    store_buf_t inbuf;   /* its body */
    int has_ready;       /* it arrived and waits in 'inbuf' */
    uint64_t fetch_after; /* where it starts: the last page's next_after */
    int fetch_more;      /* the last page received said hasMore */
    size_t head;         /* els index whose time and position are below (+1; 0: none) */
    const char *ht;      /* its time's JSON text, borrowed from 'body' */
    size_t htn;
    uint64_t hpos;
} rcell_t;

typedef struct reads {
    const char *prog;
    rcell_t *cells; /* sorted by id: the cursor's order */
    size_t n;
    const char *server, *token;
    unsigned long long limit;
    int follow;
    CURLM *multi;
    store_buf_t line;
} reads_t;

static int by_id(const void *a, const void *b)
{
    return strcmp(((const rcell_t *)a)->id, ((const rcell_t *)b)->id);
}

static rcell_t *find(reads_t *r, const char *id, size_t len)
{
    for (size_t i = 0; i < r->n; i++)
        if (strlen(r->cells[i].id) == len && !memcmp(r->cells[i].id, id, len))
            return &r->cells[i];
    return NULL;
}

static int id_ok(const char *s, size_t n)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (!n || n > CLUSTER_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr(ok, s[i]) || !s[i])
            return 0;
    return 1;
}

/* The cells of the map, in id order. */
static int cells_from_map(reads_t *r, const cluster_map_t *m)
{
    r->cells = calloc(MAX_CELLS, sizeof *r->cells);
    if (!r->cells || m->n_cells > MAX_CELLS)
        return -1;
    for (size_t i = 0; i < m->n_cells; i++) {
        rcell_t *c = &r->cells[r->n++];
        snprintf(c->id, sizeof c->id, "%s", m->cells[i].id);
        if (r->server)
            snprintf(c->base, sizeof c->base, "%s", r->server);
        else
            snprintf(c->base, sizeof c->base, "http://%s", m->cells[i].address);
        size_t bl = strlen(c->base);
        while (bl && c->base[bl - 1] == '/')
            c->base[--bl] = 0;
        c->in_map = 1;
    }
    qsort(r->cells, r->n, sizeof *r->cells, by_id);
    return 0;
}

/* Parses a vector cursor "ID:POS[,ID:POS]..." into the cells: a cell of the map takes its
 * position, an unknown one is added and carried along. "" is the start. 0, or -1 after
 * printing what is wrong with it. */
static int cursor_parse(reads_t *r, const char *s)
{
    const char *p = s;
    while (*p) {
        const char *colon = strchr(p, ':');
        const char *comma = strchr(p, ',');
        if (!comma)
            comma = p + strlen(p);
        if (!colon || colon > comma || !id_ok(p, (size_t)(colon - p))) {
            cmd_error(r->prog, "--after '%.200s': a cursor is CELL:POSITION pairs separated by "
                      "',' (cell ids of A-Z a-z 0-9 - _), as `reel cluster events` prints it", s);
            return -1;
        }
        char num[24], *end;
        size_t nl = (size_t)(comma - colon - 1);
        if (!nl || nl >= sizeof num || strspn(colon + 1, "0123456789") < nl) {
            cmd_error(r->prog, "--after '%.200s': the position of cell '%.*s' is not a number",
                      s, (int)(colon - p), p);
            return -1;
        }
        memcpy(num, colon + 1, nl);
        num[nl] = 0;
        errno = 0;
        unsigned long long pos = strtoull(num, &end, 10);
        if (errno == ERANGE || pos > INT64_MAX) {
            cmd_error(r->prog, "--after '%.200s': the position of cell '%.*s' is out of range",
                      s, (int)(colon - p), p);
            return -1;
        }
        rcell_t *c = find(r, p, (size_t)(colon - p));
        if (!c) {
            if (r->n == MAX_CELLS) {
                cmd_error(r->prog, "--after: more than %d cells", MAX_CELLS);
                return -1;
            }
            c = &r->cells[r->n++];
            snprintf(c->id, sizeof c->id, "%.*s", (int)(colon - p), p);
            c->done = 1;
            fprintf(stderr, "reel %s: cell '%s' of the cursor is not in the map: its position "
                    "is kept in the cursor, its feed not read\n", r->prog, c->id);
        }
        c->pos = pos;
        p = *comma ? comma + 1 : comma;
    }
    qsort(r->cells, r->n, sizeof *r->cells, by_id);
    return 0;
}

/* The cursor's text. It is written with every event, so by hand rather than one printf per
 * cell. */
static void cursor_put(const reads_t *r, store_buf_t *b)
{
    for (size_t i = 0; i < r->n; i++) {
        char num[24], *e = num + sizeof num, *q = e;
        uint64_t v = r->cells[i].pos;
        do
            *--q = (char)('0' + v % 10);
        while (v /= 10);
        if (i)
            store_buf_putc(b, ',');
        store_buf_put(b, r->cells[i].id, strlen(r->cells[i].id));
        store_buf_putc(b, ':');
        store_buf_put(b, q, (size_t)(e - q));
    }
}

/* ---- Requests ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    store_buf_t *b = arg;
    store_buf_put(b, p, size * n);
    return store_buf_failed(b) ? 0 : size * n;
}

/* A GET of 'path' at cell 'c' on a new easy handle (c->c), its body into c->body. */
static CURL *request_new(reads_t *r, rcell_t *c, const char *path, long timeout_s,
                         store_buf_t *into)
{
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    store_buf_t url = STORE_BUF_INIT, a = STORE_BUF_INIT;
    store_buf_printf(&url, "%s%s", c->base, path);
    curl_slist_free_all(c->hdr);
    c->hdr = NULL;
    if (r->token) {
        store_buf_printf(&a, "Authorization: Bearer %s", r->token);
        c->hdr = curl_slist_append(c->hdr, store_buf_cstr(&a));
    }
    store_buf_clear(&a);
    store_buf_printf(&a, "Reel-Cell: %s", c->id); /* picks the cell through nginx */
    c->hdr = curl_slist_append(c->hdr, store_buf_cstr(&a));
    store_buf_clear(into);
    curl_easy_setopt(h, CURLOPT_URL, store_buf_cstr(&url));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, into);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, c);
    store_buf_release(&url);
    store_buf_release(&a);
    return h;
}

/* The answer of c->c (its body in 'b'): 0 for a 200, else -1 with 'why' filled. */
static int answer(rcell_t *c, const store_buf_t *b, CURLcode cc, char *why, size_t cap)
{
    long status = 0;
    curl_easy_getinfo(c->c, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK) {
        snprintf(why, cap, "%s", curl_easy_strerror(cc));
        return -1;
    }
    if (status != 200) {
        const char *d;
        size_t dn;
        if (!cmd_json_member((const char *)b->data, b->len, "detail", &d, &dn))
            snprintf(why, cap, "HTTP %ld: %.*s", status, (int)(dn > 300 ? 300 : dn), d);
        else
            snprintf(why, cap, "HTTP %ld", status);
        return -1;
    }
    return 0;
}

/* ---- events ----
 *
 * Each cell's pages are kept until printed, and the events of all cells are printed in
 * commit-time order: the next event printed is the earliest head of the cells' pages, and
 * only while every other cell either has a page in hand (so its head is not earlier), is
 * caught up (its last page said no more), or does not answer (--follow goes on without
 * it). Commit times are the cells' own clocks, so this is no total order; what it buys is
 * per-session order across a move: the old owner's last events of a moved session are
 * committed before the new owner's first, so they are printed first, even when the reader
 * is far behind on the old owner (a reader that printed each page as it came could print
 * the new owner's first), as long as the cells' clocks differ by less than the move's
 * pause. Within a cell, position order is kept: a cell's page is in position order and its
 * head only moves forward. */

static int collect(void *arg, const char *el, size_t n)
{
    rcell_t *c = arg;
    if (n < 2 || el[0] != '{')
        return -1;
    if (c->n_els == c->cap_els) {
        size_t cap = c->cap_els ? c->cap_els * 2 : 256;
        struct el *e = realloc(c->els, cap * sizeof *e);
        if (!e)
            return -1;
        c->els = e;
        c->cap_els = cap;
    }
    c->els[c->n_els].p = el;
    c->els[c->n_els++].n = n;
    return 0;
}

/* The page in c->body, kept in c->els until printed (page_tail() checked its cursor). */
static int take_page(reads_t *r, rcell_t *c)
{
    const char *json = (const char *)c->body.data, *v;
    size_t len = c->body.len, vn;
    c->page_after = !cmd_json_member(json, len, "next_after", &v, &vn) ? strtoull(v, NULL, 10) : 0;
    c->n_els = c->next = c->head = 0;
    if (cmd_json_array_each(json, len, "events", collect, c)) {
        cmd_error(r->prog, "cell '%s': not a page of the feed: %.200s", c->id, json);
        return -1;
    }
    return 0;
}

/* The commit time of event el ("2026-12-05T10:38:02.974Z": fixed width, so text order is
 * time order) and its position; -1 when it has neither. */
static int head_of(const struct el *e, const char **t, size_t *tn, uint64_t *pos)
{
    const char *v;
    size_t vn;
    if (cmd_json_member(e->p, e->n, "position", &v, &vn) || !vn || v[0] < '0' || v[0] > '9' ||
        cmd_json_member(e->p, e->n, "time", t, tn) || *tn < 2)
        return -1;
    *pos = strtoull(v, NULL, 10);
    return 0;
}

/* Prints the head of cell c's page as {"cell":ID,"cursor":VECTOR,<its members>}. */
static void print_head(reads_t *r, rcell_t *c, uint64_t pos)
{
    const struct el *e = &c->els[c->next++];
    c->pos = pos;
    if (c->next == c->n_els && c->page_after > c->pos)
        c->pos = c->page_after; /* past events of deleted sessions the page skipped */
    store_buf_t *b = &r->line;
    store_buf_clear(b);
    store_buf_puts(b, "{\"cell\":\"");
    store_buf_puts(b, c->id);
    store_buf_puts(b, "\",\"cursor\":\"");
    cursor_put(r, b);
    store_buf_puts(b, e->n > 2 ? "\"," : "\"");
    store_buf_put(b, e->p + 1, e->n - 1);
    store_buf_putc(b, '\n');
    fwrite(b->data, 1, b->len, stdout);
}

static int in_hand(const rcell_t *c)
{
    return c->next < c->n_els;
}

/* A cell whose next events are not known yet and may be earlier than what is in hand:
 * its page is printed, the next one is on its way, and the last said there is more. */
static int blocks(const rcell_t *c)
{
    return c->in_map && !c->done && !in_hand(c) && c->fetch_more && !c->down;
}

/* Without --follow, a cell is done once everything it had is printed. */
static void check_done(const reads_t *r, rcell_t *c)
{
    if (!r->follow && !in_hand(c) && !c->has_ready && !c->c && !c->fetch_more)
        c->done = 1;
}

/* The page that arrived in 'inbuf' becomes the one in hand. */
static int promote(reads_t *r, rcell_t *c)
{
    store_buf_t t = c->body;
    c->body = c->inbuf;
    c->inbuf = t;
    c->has_ready = 0;
    return take_page(r, c);
}

/* Prints what the merge allows; 0, or -1 for an event without position or time. */
static int emit(reads_t *r)
{
    for (;;) {
        rcell_t *best = NULL;
        const char *bt = NULL;
        size_t btn = 0;
        uint64_t bpos = 0;
        for (size_t i = 0; i < r->n; i++) {
            rcell_t *c = &r->cells[i];
            if (!in_hand(c) && c->has_ready && promote(r, c))
                return -1;
            if (blocks(c))
                return 0;
            if (!in_hand(c))
                continue;
            if (c->head != c->next + 1) { /* a new head: its time and position, once */
                if (head_of(&c->els[c->next], &c->ht, &c->htn, &c->hpos)) {
                    cmd_error(r->prog, "cell '%s': an event without position or time: %.200s",
                              c->id, c->els[c->next].p);
                    return -1;
                }
                c->head = c->next + 1;
            }
            if (!best || (c->htn == btn ? memcmp(c->ht, bt, btn) < 0 : c->htn < btn))
                best = c, bt = c->ht, btn = c->htn, bpos = c->hpos;
        }
        if (!best)
            return 0;
        print_head(r, best, bpos);
        check_done(r, best);
    }
}

/* Asks for cell c's next page, after the last one received. */
static void start_feed(reads_t *r, rcell_t *c)
{
    char path[160];
    int wait = r->follow && !c->fetch_more ? WAIT_S : 0; /* a long-poll once caught up */
    snprintf(path, sizeof path, "/v1/events?after=%llu&limit=%llu&wait=%d%s",
             (unsigned long long)c->fetch_after, r->limit, wait, CLUSTER_READS_FEED_SKIP_MOVED);
    c->c = request_new(r, c, path, wait + 30, &c->inbuf);
    if (c->c)
        curl_multi_add_handle(r->multi, c->c);
}

/* The next_after and hasMore of the page in 'b'; -1 when it has no position cursor. */
static int page_tail(reads_t *r, rcell_t *c, const store_buf_t *b)
{
    const char *json = (const char *)b->data, *v;
    size_t len = b->len, vn;
    if (cmd_json_member(json, len, "next_after", &v, &vn) || !vn || v[0] < '0' || v[0] > '9') {
        cmd_error(r->prog, "cell '%s': the feed's next_after is not a position (a token limited "
                  "to session prefixes gets sealed cursors, which a vector cursor cannot hold)",
                  c->id);
        return -1;
    }
    c->fetch_after = strtoull(v, NULL, 10);
    c->fetch_more = !cmd_json_member(json, len, "hasMore", &v, &vn) && vn == 4 &&
                    !memcmp(v, "true", 4);
    return 0;
}

/* A finished request of cell c: 0 (page kept, or a --follow retry scheduled) or -1. */
static int finish(reads_t *r, rcell_t *c, CURLcode cc)
{
    char why[400];
    int rc = answer(c, &c->inbuf, cc, why, sizeof why);
    curl_multi_remove_handle(r->multi, c->c);
    curl_easy_cleanup(c->c);
    c->c = NULL;
    if (!rc) {
        if (c->down)
            fprintf(stderr, "reel %s: cell '%s' answers again\n", r->prog, c->id);
        c->down = 0;
        if (page_tail(r, c, &c->inbuf))
            return -1;
        c->has_ready = 1;
        if (!in_hand(c) && promote(r, c))
            return -1;
        check_done(r, c);
        return 0;
    }
    if (!r->follow) {
        cmd_error(r->prog, "cell '%s' (%s): %s", c->id, c->base, why);
        return -1;
    }
    if (!c->down++)
        fprintf(stderr, "reel %s: cell '%s' (%s): %s; its feed is asked again every second, "
                "the other cells' events go on\n", r->prog, c->id, c->base, why);
    c->retry_at = cmd_now_ms() + RETRY_MS;
    return 0;
}

static int events_loop(reads_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        r->cells[i].fetch_after = r->cells[i].pos;
        r->cells[i].fetch_more = 1; /* nothing known yet: every cell's first page is awaited */
    }
    for (;;) {
        int pending = 0;
        uint64_t now = cmd_now_ms();
        for (size_t i = 0; i < r->n; i++) {
            rcell_t *c = &r->cells[i];
            if (!c->in_map || c->done)
                continue;
            pending = 1;
            if (!c->c && !c->has_ready && (c->fetch_more || r->follow) && !cmd_stop &&
                now >= c->retry_at)
                start_feed(r, c);
        }
        if (!pending || cmd_stop)
            return 0;
        int running, done = 0;
        curl_multi_perform(r->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(r->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            rcell_t *c;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            if (finish(r, c, m->data.result))
                return -1;
            done++;
        }
        if (done && emit(r))
            return -1;
        if (done && r->follow)
            fflush(stdout);
        /* Wait only when nothing finished: a page that arrived whole within perform leaves
         * libcurl no socket to wait on, and a poll would sleep its full timeout. */
        if (!done)
            curl_multi_poll(r->multi, NULL, 0, 200, NULL);
    }
}

static void reads_free(reads_t *r)
{
    for (size_t i = 0; r->cells && i < r->n; i++) {
        rcell_t *c = &r->cells[i];
        if (c->c) {
            curl_multi_remove_handle(r->multi, c->c);
            curl_easy_cleanup(c->c);
        }
        curl_slist_free_all(c->hdr);
        store_buf_release(&c->body);
        store_buf_release(&c->inbuf);
        free(c->els);
    }
    if (r->multi)
        curl_multi_cleanup(r->multi);
    free(r->cells);
    store_buf_release(&r->line);
}

static int events(reads_t *r, const char *after)
{
    if (after && cursor_parse(r, after))
        return CMD_USAGE;
    cmd_stop_on_signals();
    signal(SIGPIPE, SIG_IGN);
    if (!(r->multi = curl_multi_init())) {
        cmd_error(r->prog, "cannot start an HTTP client");
        return CMD_FAIL;
    }
    int rc = events_loop(r);
    fflush(stdout);
    store_buf_t b = STORE_BUF_INIT;
    cursor_put(r, &b);
    fprintf(stderr, "reel %s: cursor %s\n", r->prog, store_buf_cstr(&b));
    store_buf_release(&b);
    return rc ? CMD_FAIL : CMD_OK;
}

/* ---- sessions ---- */

typedef struct list_ctx {
    reads_t *r;
    rcell_t *c;
    const cluster_map_t *m;
    unsigned long long printed, elsewhere;
    int bad;
} list_ctx_t;

/* One record of cell c's listing, printed as {"cell":ID,<its members>} when the map gives
 * its session to c. */
static int print_record(void *arg, const char *el, size_t n)
{
    list_ctx_t *x = arg;
    const char *v;
    size_t vn;
    if (n < 2 || cmd_json_member(el, n, "id", &v, &vn) || vn < 2 || v[0] != '"') {
        x->bad = 1;
        return -1;
    }
    store_buf_t id = STORE_BUF_INIT;
    cmd_json_unquote(v, vn, &id);
    static char key[CLUSTER_KEY_MAX + 1];
    int owner;
    size_t kn = cluster_key_session(store_buf_cstr(&id), id.len, key);
    cluster_map_shard(x->m, key, kn, &owner);
    store_buf_release(&id);
    if (strcmp(x->m->cells[owner].id, x->c->id)) {
        x->elsewhere++; /* a copy: its owner lists it */
        return 0;
    }
    store_buf_t *b = &x->r->line;
    store_buf_clear(b);
    store_buf_printf(b, "{\"cell\":\"%s\",", x->c->id);
    store_buf_put(b, el + 1, n - 1);
    store_buf_putc(b, '\n');
    fwrite(b->data, 1, b->len, stdout);
    x->printed++;
    return 0;
}

/* Every page of cell c's listing, blocking (one cell after another). */
static int list_cell(reads_t *r, list_ctx_t *x, const char *prefix)
{
    store_buf_t path = STORE_BUF_INIT, cursor = STORE_BUF_INIT;
    int rc = 0;
    for (;;) {
        store_buf_clear(&path);
        store_buf_printf(&path, "/v1/sessions?limit=%llu", r->limit);
        if (prefix) {
            store_buf_puts(&path, "&prefix=");
            cmd_remote_escape(&path, prefix);
        }
        if (cursor.len) {
            store_buf_puts(&path, "&cursor=");
            cmd_remote_escape(&path, store_buf_cstr(&cursor));
        }
        rcell_t *c = x->c;
        char why[400];
        if (!(c->c = request_new(r, c, store_buf_cstr(&path), 60, &c->body)) ||
            answer(c, &c->body, curl_easy_perform(c->c), why, sizeof why)) {
            cmd_error(r->prog, "cell '%s' (%s): %s", c->id, c->base, c->c ? why : "no HTTP client");
            rc = -1;
        }
        if (c->c)
            curl_easy_cleanup(c->c);
        c->c = NULL;
        const char *json = (const char *)c->body.data, *v;
        size_t len = c->body.len, vn;
        if (!rc && (cmd_json_array_each(json, len, "sessions", print_record, x) || x->bad)) {
            cmd_error(r->prog, "cell '%s': not a page of the listing: %.200s", c->id, json);
            rc = -1;
        }
        store_buf_clear(&cursor);
        if (rc || cmd_json_member(json, len, "next_cursor", &v, &vn) || vn < 2 || v[0] != '"')
            break;
        cmd_json_unquote(v, vn, &cursor);
    }
    store_buf_release(&path);
    store_buf_release(&cursor);
    return rc;
}

static int sessions(reads_t *r, const cluster_map_t *m, const char *prefix)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    unsigned long long printed = 0, elsewhere = 0;
    for (size_t i = 0; i < r->n; i++) {
        list_ctx_t x = {.r = r, .c = &r->cells[i], .m = m};
        int rc = list_cell(r, &x, prefix);
        printed += x.printed;
        elsewhere += x.elsewhere;
        if (rc)
            return CMD_FAIL;
    }
    fflush(stdout);
    if (elsewhere)
        fprintf(stderr, "reel %s: %llu records left out: their cell holds them, but the map "
                "gives their shard to another cell (which listed them)\n", r->prog, elsewhere);
    return CMD_OK;
}

/* ---- the command ---- */

static const char about[] =
    "Reads over every cell of a cluster (docs/CLUSTER.md \"Cluster-wide reads\"):\n"
    "  events --map MAP [--after CURSOR] [--follow]\n"
    "      every event of every cell's feed, once, each session's in sequence order, as\n"
    "      JSON lines: the event as the feed gives it, with \"cell\" (its cell) and\n"
    "      \"cursor\" (a vector of per-cell positions, \"c1:120,c2:98\": pass the last one\n"
    "      processed to --after to resume exactly after it). There is no order across\n"
    "      cells. The final cursor goes to stderr. Without --follow it ends when every cell\n"
    "      is caught up; with it, it waits for new events until SIGINT/SIGTERM.\n"
    "  sessions --map MAP [--prefix P]\n"
    "      every session record of the cluster, once: each cell's listing as JSON lines with\n"
    "      \"cell\", a record kept only from the cell the map gives its shard to.\n"
    "Cells are asked at their map addresses, or through one URL (nginx) with --server,\n"
    "which picks each cell with the Reel-Cell header.\n";

int cmd_cluster_reads(int argc, char **argv)
{
    const char *map = NULL, *after = NULL, *prefix = NULL;
    reads_t r = {.prog = "cluster", .limit = 1000};
    const opt_t rows[] = {
        {.name = "map", .type = OPT_STRING, .arg = "MAP", .env = "REEL_CLUSTER_MAP", .dest = &map,
         .required = 1, .help = "the cluster map: the cells to read"},
        {.name = "after", .type = OPT_STRING, .arg = "CURSOR", .dest = &after,
         .help = "events: resume after this vector cursor (CELL:POS,...); a cell it does not\n"
                 "name is read from its start"},
        {.name = "follow", .alias = 'f', .type = OPT_FLAG, .dest = &r.follow,
         .help = "events: keep waiting for new events (long-polls every cell at once)"},
        {.name = "prefix", .type = OPT_STRING, .arg = "P", .dest = &prefix,
         .help = "sessions: only ids starting with P"},
        {.name = "limit", .type = OPT_U64, .arg = "N", .dest = &r.limit, .min = 1, .max = 10000,
         .help = "events or records per request to a cell", .def = "1000"},
        {.name = "server", .type = OPT_STRING, .arg = "URL", .env = "REEL_SERVER", .dest = &r.server,
         .help = "ask every cell through this URL (nginx), picked by the Reel-Cell header"},
        {.name = "token", .type = OPT_STRING, .arg = "T", .env = "REEL_TOKEN", .dest = &r.token,
         .help = "bearer token (read scope, not limited to session prefixes)"},
        OPT_END,
    };
    /* argv[0] is the verb, which cmd_cluster checked: events or sessions. */
    const opt_cmd_t cmd = {.name = "cluster", .synopsis = "events|sessions --map MAP [options]",
                           .about = about, .opts = rows};
    int ev = !strcmp(argv[0], "events");
    int st = opt_parse(&cmd, argc, argv, NULL);
    if (st != OPT_GO)
        return st;
    if (!map) {
        cmd_error(r.prog, "--map MAP is needed: the cluster map names the cells to read");
        return CMD_USAGE;
    }
    cluster_map_t *m;
    char msg[512];
    if (cluster_map_load(map, &m, msg, sizeof msg)) {
        cmd_error(r.prog, "%s", msg);
        return CMD_FAIL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = CMD_FAIL;
    if (cells_from_map(&r, m))
        cmd_error(r.prog, "out of memory");
    else
        rc = ev ? events(&r, after) : sessions(&r, m, prefix);
    reads_free(&r);
    cluster_map_free(m);
    return rc;
}
