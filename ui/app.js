/* app.js -- reel's web inspector (docs/UI.md). Plain JavaScript, no framework, no build.
 *
 * Views (hash routes, so the server only serves /ui/ and its three files):
 *   #/?agent=A&status=S&cursor=C      sessions list, live from GET /v1/events/sse
 *   #/s/ID                            transcript of one session, live from its SSE stream
 *   #/s/ID?seq=N                      ... opened at the entry holding sequence N
 *   #/s/ID/events?offset=N&limit=L    raw events, paged by offset
 *   #/overview                        store overview from /metrics
 *
 * The token (if the server wants one) is kept in sessionStorage and sent as
 * "Authorization: Bearer"; EventSource cannot send headers, so SSE URLs carry
 * ?access_token= instead (the server accepts it on SSE routes only).
 *
 * Live streams never show a gap or a duplicate: every message carries its key (sequence,
 * or position on the feed); a key at or below the last one seen is dropped, a key past
 * the next one makes the stream fetch the missing events by offset first. Reconnects
 * start from the last key seen (the browser sends Last-Event-ID; a stream that the browser
 * gave up on is reopened with ?offset= / ?after=).
 */
'use strict';

(() => {
  const TOKEN_KEY = 'reel.token';
  const PAGE_SESSIONS = 50;
  const WINDOW = 200;            /* transcript entries rendered at first, and per "earlier" */
  const LONG_LINES = 12;         /* tool output longer than this is collapsed */
  const LONG_CHARS = 1500;

  /* ---- small helpers ---- */

  const $ = (sel, root = document) => root.querySelector(sel);

  /* h('div', {class: 'x', onclick: f, 'aria-label': 'y'}, child, 'text', [more]) */
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    append(el, kids);
    return el;
  }
  function append(el, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === undefined || k === null || k === false) continue;
      el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
  }
  const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const str = (v) => (typeof v === 'string' ? v : undefined);

  function fmtBytes(n) {
    if (typeof n !== 'number') return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + ' ' + u[i];
  }
  const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '–');

  function fmtAgo(iso) {
    if (!iso) return '–';
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return iso;
    const s = Math.round((Date.now() - t) / 1000);
    if (s < 5) return 'just now';
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return new Date(t).toISOString().slice(0, 10);
  }
  function timeEl(iso) {
    return h('time', { datetime: iso || '', title: iso || '', class: 'ago', text: fmtAgo(iso) });
  }
  function refreshTimes() {
    for (const t of document.querySelectorAll('time.ago')) t.textContent = fmtAgo(t.dateTime);
  }

  function preview(v, max = 120) {
    let s = typeof v === 'string' ? v : JSON.stringify(v);
    if (s === undefined) s = '';
    s = s.replace(/\s+/g, ' ').trim();
    return s.length > max ? s.slice(0, max - 1) + '…' : s;
  }
  const pretty = (v) => (typeof v === 'string' ? v : JSON.stringify(v, null, 2));

  let toastTimer = 0;
  function toast(msg, kind = 'info') {
    const t = $('#toast');
    t.textContent = msg;
    t.dataset.kind = kind;
    t.classList.add('show');
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.classList.remove('show'), 4000);
  }

  /* ---- token and API calls ---- */

  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  /* The API is reached relative to the page, so the inspector works behind a reverse
   * proxy's path prefix: the page is at PREFIX/ui/, the API at PREFIX/v1/. */
  const BASE = location.pathname.replace(/ui(\/[^/]*)?$/, '');
  const url = (path) => BASE + path.replace(/^\//, '');
  const apiBase = () => location.origin + BASE;

  class ApiError extends Error {
    constructor(status, problem, fallback) {
      super((problem && (problem.detail || problem.title)) || fallback || 'HTTP ' + status);
      this.status = status;
      this.problem = problem;
    }
  }

  async function api(path, opts = {}) {
    const headers = Object.assign({}, opts.headers);
    if (token()) headers.Authorization = 'Bearer ' + token();
    let res;
    try {
      res = await fetch(url(path), Object.assign({}, opts, { headers, cache: 'no-store' }));
    } catch (e) {
      throw new ApiError(0, null, 'cannot reach the server (' + e.message + ')');
    }
    if (res.ok) return opts.raw ? res : res.json();
    let problem = null;
    try { problem = await res.json(); } catch (e) { /* not a problem body */ }
    if (res.status === 401 || res.status === 403) askToken(res.status);
    if (res.status === 404 && problem && problem.type === 'urn:reel:error:not_found')
      throw new ApiError(404, problem, 'this server has no route ' + path.split('?')[0]);
    throw new ApiError(res.status, problem);
  }

  function sseUrl(path, params) {
    const q = new URLSearchParams(params);
    if (token()) q.set('access_token', token());
    return url(path) + '?' + q.toString();
  }

  const enc = encodeURIComponent;

  function askToken(status) {
    const d = $('#token-dialog');
    const why = $('#token-why');
    if (status) {
      why.hidden = false;
      why.textContent = status === 401
        ? (token() ? 'The server did not accept this token.' : 'This server needs a token.')
        : 'This token\'s scope does not allow reading.';
    } else {
      why.hidden = true;
    }
    if (!d.open) {
      $('#token-input').value = token();
      d.showModal();
      $('#token-input').focus();
    }
  }

  function setupTokenDialog() {
    const d = $('#token-dialog');
    $('#token-btn').addEventListener('click', () => askToken(0));
    $('#token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const v = $('#token-input').value.trim();
      if (v) sessionStorage.setItem(TOKEN_KEY, v); else sessionStorage.removeItem(TOKEN_KEY);
      d.close();
      updateTokenButton();
      route();
    });
    $('#token-cancel').addEventListener('click', () => d.close());
    $('#token-forget').addEventListener('click', () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $('#token-input').value = '';
      d.close();
      updateTokenButton();
      route();
    });
    $('#text-form').addEventListener('submit', (e) => { e.preventDefault(); $('#text-dialog').close(); });
    updateTokenButton();
  }
  function updateTokenButton() {
    const b = $('#token-btn');
    b.textContent = token() ? 'Token ✓' : 'Token';
    b.setAttribute('aria-label', token() ? 'Access token (set)' : 'Access token (not set)');
  }

  /* ---- live indicator ---- */

  function setLive(state, text) {
    const l = $('#live');
    if (l.dataset.state === state && $('#live-text').textContent === text) return;
    l.dataset.state = state;
    $('#live-text').textContent = text;
  }

  /* ---- a gap-free, duplicate-free SSE subscription ----
   *
   * opts: path, param ('offset' or 'after'), key (event => its key), last (key seen),
   *       fill(last) async => events after 'last' by polling (used to close a gap),
   *       onEvents(events), onState(state, text), extra (more query parameters).
   */
  class Live {
    constructor(opts) {
      this.o = opts;
      this.last = opts.last;
      this.stats = { received: 0, duplicates: 0, gaps: 0, reconnects: 0, opens: 0 };
      this.es = null;
      this.timer = 0;
      this.closed = false;
      this.filling = false;
      this.queue = [];
    }
    start() {
      if (this.closed) return;
      const q = Object.assign({}, this.o.extra, { [this.o.param]: String(this.last) });
      const es = new EventSource(sseUrl(this.o.path, q));
      this.es = es;
      es.onopen = () => {
        this.stats.opens++;
        if (this.stats.opens > 1) this.stats.reconnects++;
        this.o.onState('live', 'Live');
      };
      es.onmessage = (m) => this.message(m);
      es.onerror = () => {
        if (this.closed) return;
        if (es.readyState === EventSource.CLOSED) {
          /* The browser gave up (an HTTP error while the server restarts, ...): reopen
           * from the last key seen. */
          es.close();
          this.o.onState('wait', 'Reconnecting…');
          clearTimeout(this.timer);
          this.timer = setTimeout(() => this.start(), 2000);
        } else {
          this.o.onState('wait', 'Reconnecting…');
        }
      };
    }
    message(m) {
      let ev;
      try { ev = JSON.parse(m.data); } catch (e) { return; }
      if (this.filling) { this.queue.push(ev); return; }
      this.take([ev]);
    }
    take(evs) {
      const fresh = [];
      for (const ev of evs) {
        const k = this.o.key(ev);
        if (k <= this.last) { this.stats.duplicates++; continue; }
        if (this.o.dense && k !== this.last + 1) {
          /* Never expected (the server does not skip); fetch the hole before going on. */
          this.stats.gaps++;
          this.fillGap(evs.slice(evs.indexOf(ev)));
          break;
        }
        this.last = k;
        this.stats.received++;
        fresh.push(ev);
      }
      if (fresh.length) this.o.onEvents(fresh);
    }
    async fillGap(rest) {
      this.filling = true;
      this.queue = rest.concat(this.queue);
      try {
        const evs = await this.o.fill(this.last);
        for (const ev of evs) {
          const k = this.o.key(ev);
          if (k === this.last + 1) { this.last = k; this.stats.received++; this.o.onEvents([ev]); }
        }
      } catch (e) { /* the queued events are taken below; a gap stays counted */ }
      this.filling = false;
      const q = this.queue;
      this.queue = [];
      this.take(q);
    }
    close() {
      this.closed = true;
      clearTimeout(this.timer);
      if (this.es) this.es.close();
    }
  }

  /* ---- router ---- */

  let current = null;   /* the view on screen: {dispose()} */

  function parseHash() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const qi = raw.indexOf('?');
    const path = qi < 0 ? raw : raw.slice(0, qi);
    const params = new URLSearchParams(qi < 0 ? '' : raw.slice(qi + 1));
    return { path, params };
  }

  function route() {
    if (current) current.dispose();
    current = null;
    setLive('idle', '');
    const { path, params } = parseHash();
    const main = $('#main');
    main.replaceChildren();
    let m;
    if (path === '/' || path === '') current = sessionsView(main, params);
    else if (path === '/overview') current = overviewView(main, params);
    else if ((m = /^\/s\/([^/]+)(\/events)?$/.exec(path))) {
      let id;
      try { id = decodeURIComponent(m[1]); } catch (e) { id = m[1]; }
      current = sessionView(main, id, m[2] ? 'events' : 'transcript', params);
    } else {
      main.append(h('h1', { text: 'Not found' }), h('p', {}, h('a', { href: '#/', text: 'All sessions' })));
      current = { dispose() {} };
    }
  }

  function crumbs(items) {
    const nav = $('#crumbs');
    nav.replaceChildren();
    const ol = h('ol');
    items.forEach((it, i) => {
      const last = i === items.length - 1;
      ol.append(h('li', {}, it.href && !last ? h('a', { href: it.href, text: it.text })
        : h('span', { 'aria-current': last ? 'page' : null, text: it.text })));
    });
    nav.append(ol);
  }

  function focusHeading(main) {
    const h1 = $('h1', main);
    if (h1 && document.activeElement === document.body) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); }
  }

  function errorBox(e) {
    return h('div', { class: 'problem', role: 'alert' },
      h('strong', { text: e.status ? 'Error ' + e.status + ': ' : 'Error: ' }), e.message);
  }

  /* ---- feed tail ----
   * The API has no "latest position" call. GET /v1/events?after=P&limit=1 answers the
   * first event past P and whether more follow: gallop forward, then bisect. Each probe
   * is one index seek on the server; about 2*log2(positions) probes in all. */
  async function feedTail() {
    const probe = async (p) => {
      const r = await api('/v1/events?limit=1&after=' + p);
      return { pos: r.events.length ? r.events[0].position : null, more: !!r.hasMore };
    };
    let r = await probe(0);
    if (r.pos === null) return 0;
    let lo = r.pos, hi = null, step = 1;
    if (!r.more) return lo;
    while (hi === null) {
      const p = lo + step;
      r = await probe(p);
      if (r.pos === null) hi = p;
      else { lo = r.pos; if (!r.more) return lo; step *= 2; }
      if (step > 2 ** 52) throw new Error('feed tail not found');
    }
    while (hi > lo) {
      const mid = Math.floor((lo + hi) / 2);
      r = await probe(mid);
      if (r.pos === null) hi = mid;
      else { lo = r.pos; if (!r.more) return lo; }
    }
    return lo;
  }

  /* ---- sessions list ----
   * GET /v1/sessions?order=recent: the most recently active first, paged by cursor.
   * A row's outcome: the record says active / ended / deleted; for an ended session the
   * page reads its last event (GET .../events?offset=last_sequence-1&limit=1, one key
   * seek): an ended session's last event is always the session.ended that ended it (any
   * later event makes it active again), and its `reason` says completed / error /
   * terminated. One tiny request per ended row on the page, cached by id and sequence. */

  const cursorTrail = [];  /* cursors of the pages before the current one */
  const outcomes = new Map(); /* id -> {seq, reason} */

  function fmtDuration(ms) {
    if (typeof ms !== 'number' || !(ms >= 0)) return '–';
    if (ms < 1000) return ms + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + Math.floor(s % 60) + ' s';
    const hr = Math.floor(m / 60);
    if (hr < 48) return hr + ' h ' + (m % 60) + ' min';
    return Math.floor(hr / 24) + ' d ' + (hr % 24) + ' h';
  }
  /* The usage summary the record carries (docs/FORMAT.md section 16): kept by the store
   * at append, so the list shows it without reading any event. */
  function fmtCompact(n) {
    if (n < 1000) return String(n);
    const units = [['B', 1e9], ['M', 1e6], ['k', 1e3]];
    for (const [u, d] of units) if (n >= d) return (n / d).toFixed(n / d < 10 ? 1 : 0) + u;
    return String(n);
  }
  function tokensText(rec) {
    if (rec.input_tokens === undefined && rec.output_tokens === undefined) return '–';
    return fmtCompact((rec.input_tokens || 0) + (rec.output_tokens || 0));
  }
  function tokensTitle(rec) {
    if (rec.input_tokens === undefined && rec.output_tokens === undefined) return 'no usage events';
    return fmtNum(rec.input_tokens || 0) + ' in · ' + fmtNum(rec.output_tokens || 0) + ' out';
  }
  function fmtCost(c) {
    if (c === undefined || c === null) return '–';
    const v = Number(c);
    return '$' + (v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(2) : v.toFixed(4));
  }

  function sessionSpan(rec) {
    const a = Date.parse(rec.first_event_at || rec.created_at), b = Date.parse(rec.updated_at);
    return Number.isNaN(a) || Number.isNaN(b) ? undefined : Math.max(0, b - a);
  }
  /* {label, cls, title} of a record (and its known end reason). */
  function outcomeOf(rec) {
    if (rec.status === 'active') return { label: 'active', cls: 'st-active', title: rec.ended_at ? 'running again (ended before at ' + rec.ended_at + ')' : 'events are arriving' };
    if (rec.status === 'deleted') return { label: 'deleted', cls: 'st-deleted', title: 'deleted' };
    const o = outcomes.get(rec.id);
    const reason = o && o.seq === rec.last_sequence ? o.reason : undefined;
    if (reason === undefined) return { label: 'ended', cls: 'st-ended-unknown', title: 'ended at ' + (rec.ended_at || '?') };
    if (reason === 'completed' || reason === null) return { label: 'ended ok', cls: 'st-ended', title: 'session.ended reason: ' + (reason || 'none given') };
    if (reason === 'error') return { label: 'ended with error', cls: 'st-error', title: 'session.ended reason: error' };
    return { label: 'ended: ' + reason, cls: 'st-warn', title: 'session.ended reason: ' + reason };
  }
  async function readOutcome(rec) {
    const seq = rec.last_sequence || 0;
    const o = outcomes.get(rec.id);
    if (o && o.seq === seq) return;
    const r = await api('/v1/sessions/' + enc(rec.id) + '/events?limit=1&offset=' + Math.max(0, seq - 1));
    const ev = r.events && r.events[0];
    let reason = null;
    if (ev && ev.type === 'session.ended' && isObj(ev.data)) reason = str(ev.data.reason) || null;
    else if (ev && ev.type !== 'session.ended') reason = 'unknown';
    outcomes.set(rec.id, { seq, reason });
  }

  function emptyStore(main) {
    const api0 = apiBase();
    const curl = "curl -X POST -H 'Content-Type: application/json' " +
      (token() ? "-H 'Authorization: Bearer $REEL_TOKEN' " : '') +
      "-d '{\"type\":\"note\",\"data\":{\"text\":\"hello\"}}' " + api0 + 'v1/sessions/first/events';
    const run = 'reel run --agent mock --session demo --server ' + api0.replace(/\/$/, '') + ' -- tools';
    return h('section', { class: 'empty', id: 'empty-store', 'aria-labelledby': 'empty-title' },
      h('h2', { id: 'empty-title', text: 'No sessions yet' }),
      h('p', { text: 'This store is empty. Append a first event with curl:' }),
      h('pre', {}, h('code', { text: curl })),
      h('p', { text: 'or run the mock agent through this server (it writes a session with tool calls):' }),
      h('pre', {}, h('code', { text: run })),
      h('p', { class: 'muted', text: 'The list updates by itself when the first event arrives.' }));
  }

  /* An error box; when the server cannot be reached (or answers 5xx), a Retry button. */
  function errorWithRetry(e, retry) {
    const box = errorBox(e);
    if (!e.status || e.status >= 500) {
      box.append(' ', h('button', { type: 'button', class: 'btn', id: 'retry', text: 'Retry', onclick: retry }));
    }
    return box;
  }

  function sessionsView(main, params) {
    crumbs([{ text: 'Sessions' }]);
    document.title = 'Sessions · reel';
    const agent = params.get('agent') || '';
    const status = params.get('status') || '';
    const cursor = params.get('cursor') || '';
    const prefix = params.get('prefix') || '';
    const firstPage = !cursor;
    if (!cursor) cursorTrail.length = 0;
    let live = null, disposed = false, reloadTimer = 0;
    const rows = new Map();       /* id -> {rec, tr} */
    const refreshIds = new Set();
    let refreshTimer = 0, nextCursor = null, frame = 0;
    const touched = new Set();

    const agentIn = h('input', { id: 'f-agent', name: 'agent', value: agent, placeholder: 'any', autocomplete: 'off', spellcheck: 'false' });
    const statusIn = h('select', { id: 'f-status', name: 'status' },
      ['', 'active', 'ended', 'deleted'].map((s) => h('option', { value: s, text: s || 'any', selected: s === status })));
    const findIn = h('input', { id: 'f-find', name: 'prefix', type: 'search', value: prefix, placeholder: 'id prefix', autocomplete: 'off', spellcheck: 'false', 'data-filter': '' });
    const submit = (e) => {
      if (e) e.preventDefault();
      const q = new URLSearchParams();
      if (findIn.value.trim()) q.set('prefix', findIn.value.trim());
      if (agentIn.value.trim()) q.set('agent', agentIn.value.trim());
      if (statusIn.value) q.set('status', statusIn.value);
      location.hash = '#/' + (q.toString() ? '?' + q : '');
    };
    const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter sessions', onsubmit: submit },
      h('div', { class: 'field' }, h('label', { for: 'f-find', text: 'Id starts with' }), findIn),
      h('div', { class: 'field' }, h('label', { for: 'f-agent', text: 'Agent' }), agentIn),
      h('div', { class: 'field' }, h('label', { for: 'f-status', text: 'Status' }), statusIn),
      h('button', { type: 'submit', class: 'btn primary', text: 'Apply' }));
    statusIn.addEventListener('change', () => submit());

    const openIn = h('input', { id: 'open-id', name: 'id', placeholder: 'session id', autocomplete: 'off', spellcheck: 'false', required: true });
    const openForm = h('form', { class: 'open', 'aria-label': 'Open a session by id', onsubmit: (e) => {
      e.preventDefault();
      if (openIn.value.trim()) location.hash = '#/s/' + enc(openIn.value.trim());
    } }, h('label', { for: 'open-id', text: 'Open session' }), openIn, h('button', { type: 'submit', class: 'btn', text: 'Open' }));

    const tbody = h('tbody');
    const table = h('table', { class: 'grid sessions', 'aria-describedby': 'sessions-count' },
      h('caption', { class: 'sr-only', text: 'Sessions, most recently active first' }),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col', text: 'Session' }), h('th', { scope: 'col', text: 'Status' }),
        h('th', { scope: 'col', text: 'Agent' }), h('th', { scope: 'col', text: 'Model' }),
        h('th', { scope: 'col', class: 'num', text: 'Turns' }), h('th', { scope: 'col', class: 'num', text: 'Tokens' }),
        h('th', { scope: 'col', class: 'num', text: 'Cost' }), h('th', { scope: 'col', class: 'num', text: 'Events' }),
        h('th', { scope: 'col', text: 'Last activity' }), h('th', { scope: 'col', class: 'num', text: 'Duration' }),
        h('th', { scope: 'col', class: 'num', text: 'Size' }))),
      tbody);
    const count = h('p', { id: 'sessions-count', class: 'muted', role: 'status' });
    const prev = h('button', { type: 'button', class: 'btn', text: '← Previous', disabled: !cursor, onclick: () => {
      const c = cursorTrail.pop();
      go(c || '');
    } });
    const top = h('button', { type: 'button', class: 'btn', text: '⇤ Newest', disabled: !cursor, onclick: () => { cursorTrail.length = 0; go(''); } });
    const next = h('button', { type: 'button', class: 'btn', text: 'Next →', disabled: true, onclick: () => {
      cursorTrail.push(cursor);
      go(nextCursor);
    } });
    const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of sessions' }, top, prev, next);
    const body = h('div', { class: 'table-wrap' }, table);
    const slot = h('div');
    main.append(h('div', { class: 'view-head' }, h('h1', { text: 'Sessions' }), openForm), form, count, slot, body, pager);

    function go(c) {
      const q = new URLSearchParams();
      if (prefix) q.set('prefix', prefix);
      if (agent) q.set('agent', agent);
      if (status) q.set('status', status);
      if (c) q.set('cursor', c);
      location.hash = '#/' + (q.toString() ? '?' + q : '');
    }

    function row(rec) {
      const tr = h('tr', { dataset: { id: rec.id } });
      fillRow(tr, rec);
      return tr;
    }
    function fillRow(tr, rec) {
      const o = outcomeOf(rec);
      tr.dataset.status = rec.status;
      tr.dataset.outcome = o.label;
      tr.replaceChildren(
        h('th', { scope: 'row' }, h('a', { href: '#/s/' + enc(rec.id), class: 'sid', text: rec.id })),
        h('td', { class: 'st' }, h('span', { class: 'badge ' + o.cls, title: o.title, text: o.label })),
        h('td', { class: 'agent', text: rec.agent || '–' }),
        h('td', { class: 'model', text: rec.model || '–' }),
        h('td', { class: 'num turns', text: rec.turns ? fmtNum(rec.turns) : '–' }),
        h('td', { class: 'num tokens', title: tokensTitle(rec), text: tokensText(rec) }),
        h('td', { class: 'num cost', title: rec.cost_usd ? '$' + rec.cost_usd : '', text: fmtCost(rec.cost_usd) }),
        h('td', { class: 'num events', text: fmtNum(rec.event_count) }),
        h('td', {}, timeEl(rec.updated_at)),
        h('td', { class: 'num span', title: 'first event to last activity', text: fmtDuration(sessionSpan(rec)) }),
        h('td', { class: 'num', text: fmtBytes(rec.bytes) }));
    }
    function flash(tr) {
      tr.classList.remove('flash');
      void tr.offsetWidth;
      tr.classList.add('flash');
    }
    function describe() {
      const n = rows.size;
      const filt = [prefix && 'id starting with "' + prefix + '"', agent && 'agent ' + agent, status && 'status ' + status].filter(Boolean).join(', ');
      count.textContent = (n === 0 ? 'No sessions' : n + ' session' + (n === 1 ? '' : 's')) +
        (filt ? ' (' + filt + ')' : '') + (n ? ' on this page, most recently active first' : '') +
        (cursorTrail.length ? ', page ' + (cursorTrail.length + 1) : '') + (nextCursor ? '; more on the next pages.' : '.');
    }

    async function resolveOutcomes(recs) {
      const todo = recs.filter((r) => r.status === 'ended');
      let i = 0;
      const worker = async () => {
        while (i < todo.length && !disposed) {
          const rec = todo[i++];
          try {
            await readOutcome(rec);
            const r = rows.get(rec.id);
            if (r && r.rec.last_sequence === rec.last_sequence && !disposed) fillRow(r.tr, r.rec);
          } catch (e) { /* left as "ended" */ }
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      if (!disposed) main.dataset.outcomes = '1';
    }

    async function load() {
      const q = new URLSearchParams({ order: 'recent', limit: String(PAGE_SESSIONS) });
      if (cursor) q.set('cursor', cursor);
      if (prefix) q.set('prefix', prefix);
      if (agent) q.set('agent', agent);
      if (status) q.set('status', status);
      main.setAttribute('aria-busy', 'true');
      count.textContent = 'Loading sessions…';
      let r;
      /* a filtered page may come back short, even empty, with a next_cursor: keep reading
       * (the API examines at most 20,000 records per page) until the page has rows */
      let sessions = [];
      for (let hops = 0; ; hops++) {
        r = await api('/v1/sessions?' + q);
        if (disposed) return;
        sessions = sessions.concat(r.sessions);
        if (sessions.length || !r.next_cursor || hops >= 20) break;
        q.set('cursor', r.next_cursor);
      }
      main.removeAttribute('aria-busy');
      nextCursor = r.next_cursor || null;
      next.disabled = !nextCursor;
      rows.clear();
      tbody.replaceChildren();
      for (const rec of sessions) {
        const tr = row(rec);
        rows.set(rec.id, { rec, tr });
        tbody.append(tr);
      }
      const empty = !sessions.length && firstPage && !prefix && !agent && !status;
      slot.replaceChildren(empty ? emptyStore(main) : '');
      body.hidden = empty;
      pager.hidden = empty;
      describe();
      main.dataset.loaded = '1';
      main.dataset.empty = empty ? '1' : '';
      resolveOutcomes(sessions);
    }

    function accepts() {
      /* a session not on the page: it belongs on top of the first page, unless a filter
       * the event cannot decide (agent) or a prefix excludes it */
      return firstPage && !agent && (!status || status === 'active');
    }

    function onEvents(evs) {
      for (const ev of evs) {
        const r = rows.get(ev.session_id);
        if (!r) {
          if (accepts() && (!prefix || ev.session_id.startsWith(prefix))) { clearTimeout(reloadTimer); reloadTimer = setTimeout(() => load().catch(() => {}), 400); }
          continue;
        }
        const rec = r.rec;
        if (ev.sequence <= (rec.last_sequence || 0)) continue;  /* already in the record */
        rec.event_count = (rec.event_count || 0) + (ev.sequence - (rec.last_sequence || 0));
        rec.last_sequence = ev.sequence;
        rec.updated_at = ev.time;
        /* as the store does: an end ends the session, any later event makes it active again */
        if (ev.type === 'session.ended') {
          rec.status = 'ended'; rec.ended_at = ev.time;
          outcomes.set(rec.id, { seq: ev.sequence, reason: (isObj(ev.data) && str(ev.data.reason)) || null });
        } else if (rec.status === 'ended') rec.status = 'active';
        if (ev.type === 'session.started') rec.runs = (rec.runs || 0) + 1;
        touched.add(ev.session_id);
        refreshIds.add(ev.session_id);
      }
      /* Rows are redrawn once per animation frame, however busy the feed; on the first
       * page a row with new activity moves to the top (the list's order). */
      if (!frame) frame = requestAnimationFrame(() => {
        frame = 0;
        const moved = [];
        for (const id of touched) {
          const r = rows.get(id);
          if (!r) continue;
          fillRow(r.tr, r.rec);
          flash(r.tr);
          moved.push(r);
        }
        if (firstPage) {
          moved.sort((a, b) => Date.parse(a.rec.updated_at) - Date.parse(b.rec.updated_at));
          for (const r of moved) tbody.prepend(r.tr);
        }
        touched.clear();
      });
      /* Sizes and statuses come from the records: refresh the touched ones, at most once a second. */
      if (!refreshTimer) refreshTimer = setTimeout(refreshRecords, 1000);
    }
    async function refreshRecords() {
      refreshTimer = 0;
      const ids = [...refreshIds];
      refreshIds.clear();
      for (const id of ids) {
        try {
          const rec = await api('/v1/sessions/' + enc(id));
          const r = rows.get(id);
          if (r && !disposed && (rec.last_sequence || 0) >= (r.rec.last_sequence || 0)) { r.rec = rec; fillRow(r.tr, rec); }
        } catch (e) { /* shown on the next change */ }
      }
    }

    (async () => {
      try {
        const tail = await feedTail();   /* before the list: nothing between is missed */
        await load();
        if (disposed) return;
        live = new Live({
          path: '/v1/events/sse', param: 'after', last: tail, dense: false,
          key: (ev) => ev.position,
          onEvents, onState: setLive,
        });
        live.start();
        main.dataset.live = '1';
        window.__reelLive = live;
      } catch (e) {
        main.removeAttribute('aria-busy');
        count.textContent = '';
        slot.replaceChildren(errorWithRetry(e, () => route()));
        main.dataset.failed = '1';
      }
      focusHeading(main);
    })();

    return {
      dispose() {
        disposed = true;
        if (live) live.close();
        clearTimeout(reloadTimer);
        clearTimeout(refreshTimer);
        cancelAnimationFrame(frame);
      },
    };
  }

  /* ---- store overview ----
   * GET /metrics every 2 s: rates from the difference of two scrapes (events/s from
   * reel_store_events_total, appends/s from reel_http_appends_total, commits/s), gauges as
   * read (reel_store_used_bytes, reel_sse_clients, ...), the last 90 samples drawn as a
   * plain SVG chart. Sessions active: GET /v1/sessions?status=active counted page by page
   * (capped at 10,000), every 10 s. */

  /* The Prometheus text format: unlabelled samples into the map by name; labelled ones
   * into m.series (name -> [{labels, value}]), e.g. reel_sink_lag_events{sink="pg"}.
   * Label values may hold escaped quotes, backslashes and newlines (\", \\, \n). */
  function parseLabels(s) {
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;
    let mm;
    while ((mm = re.exec(s))) labels[mm[1]] = mm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    return labels;
  }
  function parseMetrics(text) {
    const m = new Map();
    m.series = new Map();
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      const sp = line.lastIndexOf(' ');
      if (sp < 0) continue;
      const name = line.slice(0, sp), value = Number(line.slice(sp + 1));
      const br = name.indexOf('{');
      if (br < 0) { m.set(name, value); continue; }
      const base = name.slice(0, br);
      if (!m.series.has(base)) m.series.set(base, []);
      m.series.get(base).push({ labels: parseLabels(name.slice(br + 1, name.lastIndexOf('}'))), value });
    }
    return m;
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const k of kids) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
    return el;
  }
  /* A line chart of series [{name, cls, values}] (oldest first), every 'step' seconds. */
  function chart(series, step, cap) {
    const W = 600, H = 160, L = 44, B = 18, T = 8;
    let max = 1;
    for (const s of series) for (const v of s.values) if (v > max) max = v;
    const nice = (x) => { const p = 10 ** Math.floor(Math.log10(x)); for (const k of [1, 2, 5, 10]) if (k * p >= x) return k * p; return 10 * p; };
    max = nice(max);
    const n = Math.max(...series.map((s) => s.values.length), 2);
    const x = (i) => L + (W - L - 4) * (i / (cap - 1)) + (W - L - 4) * ((cap - n) / (cap - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': cap * step + ' s of ' + series.map((s) => s.name).join(' and ') });
    for (const f of [0, 0.5, 1]) {
      root.append(svg('line', { x1: L, x2: W - 4, y1: y(max * f), y2: y(max * f), class: 'grid-line' }),
        svg('text', { x: L - 6, y: y(max * f) + 4, 'text-anchor': 'end', class: 'axis' }, fmtRate(max * f)));
    }
    root.append(svg('text', { x: L, y: H - 3, class: 'axis' }, '−' + (cap * step >= 120 ? Math.round(cap * step / 60) + ' min' : cap * step + ' s')),
      svg('text', { x: W - 4, y: H - 3, 'text-anchor': 'end', class: 'axis' }, 'now'));
    for (const s of series) {
      if (s.values.length < 2) continue;
      const pts = s.values.map((v, i) => x(i + (n - s.values.length)).toFixed(1) + ',' + y(v).toFixed(1)).join(' ');
      root.append(svg('polyline', { points: pts, class: 'series ' + s.cls, fill: 'none' }));
    }
    return root;
  }
  function fmtRate(v) {
    if (!(v >= 0)) return '–';
    if (v >= 10000) return Math.round(v / 1000) + 'k';
    if (v >= 100) return Math.round(v).toLocaleString('en-US');
    if (v >= 10) return v.toFixed(0);
    return v.toFixed(v === 0 ? 0 : 1);
  }

  function overviewView(main, params) {
    crumbs([{ text: 'Sessions', href: '#/' }, { text: 'Overview' }]);
    document.title = 'Overview · reel';
    /* #/overview?every=S scrapes every S seconds (0.5..60, default 2) */
    const STEP = Math.min(60, Math.max(0.5, Number(params.get('every')) || 2)), CAP = 90;
    let disposed = false, timer = 0, activeTimer = 0;
    let prev = null;                    /* {t, m} of the previous scrape */
    const hist = { events: [], appends: [] };
    const card = (id, label, hint) => h('div', { class: 'card', id: 'ov-' + id },
      h('div', { class: 'card-label', text: label }), h('div', { class: 'card-value', text: '…' }), h('div', { class: 'card-hint muted', text: hint || '' }));
    const cards = h('div', { class: 'cards' },
      card('events', 'Events/s', 'reel_store_events_total, last ' + STEP + ' s'),
      card('appends', 'Appends/s', 'reel_http_appends_total, last ' + STEP + ' s'),
      card('active', 'Sessions active', 'GET /v1/sessions?status=active'),
      card('disk', 'Disk used', 'reel_store_used_bytes'),
      card('commit', 'Events per commit', 'group commit, last ' + STEP + ' s'),
      card('sse', 'Live streams', 'reel_sse_clients'),
      card('rss', 'Server memory', 'process_resident_memory_bytes'),
      card('total', 'Events appended', 'since the server started'));
    const chartBox = h('figure', { class: 'chart-box' }, h('figcaption', {},
      h('span', { class: 'key k-events', text: 'events/s' }), ' ', h('span', { class: 'key k-appends', text: 'appends/s' }),
      h('span', { class: 'muted', text: ' · the last ' + CAP + ' samples, one every ' + STEP + ' s' })), h('div', { id: 'ov-chart' }));
    const note = h('p', { class: 'muted', id: 'ov-note' });
    const slot = h('div');
    /* Sink lag: one card per reel_sink_lag_events series (a sink that reported where it
     * is: docs/HTTP.md "Sinks"); the section is hidden while there is none. */
    const sinkCards = h('div', { class: 'cards' });
    const sinks = h('section', { id: 'ov-sinks', 'aria-labelledby': 'ov-sinks-h', hidden: true },
      h('h2', { id: 'ov-sinks-h', text: 'Sinks' }), sinkCards,
      h('p', { class: 'muted', text: 'Events of the log each sink has not committed yet (reel_sink_lag_events).' }));
    main.append(h('div', { class: 'view-head' }, h('h1', { text: 'Store overview' })), slot, cards, sinks, chartBox, note);

    function showSinks(m) {
      const lag = (m.series.get('reel_sink_lag_events') || []).slice().sort((a, b) => String(a.labels.sink).localeCompare(String(b.labels.sink)));
      sinks.hidden = !lag.length;
      main.dataset.sinks = String(lag.length);
      sinkCards.replaceChildren(...lag.map((x) => {
        const name = x.labels.sink || Object.values(x.labels).join(' ') || 'sink';
        return h('div', { class: 'card sink' + (x.value > 0 ? ' lagging' : ''), dataset: { sink: name } },
          h('div', { class: 'card-label', text: 'Sink lag · ' + name }),
          h('div', { class: 'card-value', text: fmtNum(x.value) }),
          h('div', { class: 'card-hint muted', text: x.value > 0 ? 'events behind the tail' : 'caught up' }));
      }));
    }

    const set = (id, v, title) => { const el = $('#ov-' + id + ' .card-value', main); el.textContent = v; if (title) el.title = title; };

    async function scrape() {
      timer = 0;
      try {
        const res = await api('/metrics', { raw: true });
        const m = parseMetrics(await res.text());
        if (disposed) return;
        slot.replaceChildren();
        const t = performance.now();
        if (prev) {
          const dt = (t - prev.t) / 1000;
          const d = (k) => (m.get(k) || 0) - (prev.m.get(k) || 0);
          if (d('reel_store_events_total') >= 0 && dt > 0) {   /* a restart resets the counters: skip that pair */
            const ev = d('reel_store_events_total') / dt, ap = d('reel_http_appends_total') / dt, cm = d('reel_store_commits_total');
            hist.events.push(ev); hist.appends.push(ap);
            for (const k of Object.keys(hist)) if (hist[k].length > CAP) hist[k].shift();
            set('events', fmtRate(ev));
            set('appends', fmtRate(ap));
            set('commit', cm > 0 ? (d('reel_store_events_total') / cm).toFixed(1) : '–');
            main.dataset.samples = String(hist.events.length);
            main.dataset.eventsRate = ev.toFixed(3);
          }
        }
        prev = { t, m };
        const used = m.get('reel_store_used_bytes'), map = m.get('reel_store_map_bytes');
        set('disk', fmtBytes(used), map ? 'of a ' + fmtBytes(map) + ' map' : '');
        $('#ov-disk .card-hint', main).textContent = 'reel_store_used_bytes' + (map ? ' (map ' + fmtBytes(map) + ')' : '');
        set('sse', fmtNum(m.get('reel_sse_clients')));
        set('rss', fmtBytes(m.get('process_resident_memory_bytes')));
        set('total', fmtNum(m.get('reel_store_events_total')));
        showSinks(m);
        if (m.get('reel_store_failed') === 1) slot.replaceChildren(h('div', { class: 'problem', role: 'alert', text: 'The store is in fail-stop (reel_store_failed = 1): appends are refused; see the server log.' }));
        $('#ov-chart', main).replaceChildren(chart([
          { name: 'events per second', cls: 's-events', values: hist.events },
          { name: 'appends per second', cls: 's-appends', values: hist.appends }], STEP, CAP));
        note.textContent = 'Updated ' + new Date().toISOString().slice(11, 19) + ' UTC from /metrics.';
        main.dataset.loaded = '1';
        setLive('live', 'Live');
      } catch (e) {
        if (disposed) return;
        setLive('wait', 'Reconnecting…');
        prev = null;
        slot.replaceChildren(errorWithRetry(e, () => { clearTimeout(timer); scrape(); }));
      }
      if (!disposed) timer = setTimeout(scrape, STEP * 1000);
    }
    async function countActive() {
      activeTimer = 0;
      try {
        let n = 0, cursor = '';
        for (let i = 0; i < 50; i++) {
          const q = new URLSearchParams({ status: 'active', limit: '1000' });
          if (cursor) q.set('cursor', cursor);
          const r = await api('/v1/sessions?' + q);
          n += r.sessions.length;
          cursor = r.next_cursor;
          if (!cursor || n >= 10000 || disposed) break;
        }
        if (disposed) return;
        set('active', n >= 10000 && cursor ? '10,000+' : fmtNum(n));
        main.dataset.active = String(n);
      } catch (e) { /* shown by the metrics error */ }
      if (!disposed) activeTimer = setTimeout(countActive, 10000);
    }
    scrape();
    countActive();
    focusHeading(main);
    return { dispose() { disposed = true; clearTimeout(timer); clearTimeout(activeTimer); } };
  }

  /* ---- the transcript fold (mirrors replay/project.c for the universal model) ----
   * The page starts from GET /transcript and folds live events into it. ACP envelopes
   * (JSON-RPC) are not folded here: when one arrives the transcript is fetched again at
   * the last sequence seen. */

  class Fold {
    constructor(t) {
      this.reset(t);
    }
    reset(t) {
      this.t = t;
      this.at = t.at || 0;
      this.entries = [];          /* {key, seq, kind, obj}, in sequence order */
      this.byKey = new Map();
      this.byItem = new Map();    /* item_id -> {obj, key} */
      this.byCall = new Map();    /* call_id -> {obj, key} of the tool_call */
      this.perms = new Map();
      this.questions = new Map();
      this.acp = false;
      const add = (key, seq, kind, obj) => this.entries.push(this.entry(key, seq, kind, obj));
      for (const it of t.items || []) {
        const key = 'i:' + it.item_id;
        add(key, it.started_sequence || 0, 'item', it);
        this.byItem.set(it.item_id, { obj: it, key });
        if (it.kind === 'tool_call' && str(it.call_id) && !this.byCall.has(it.call_id)) this.byCall.set(it.call_id, { obj: it, key });
        if (isObj(it.result) && str(it.result.item_id)) this.byItem.set(it.result.item_id, { obj: it.result, key });
        if (String(it.item_id).startsWith('acp-')) this.acp = true;
      }
      for (const p of t.permissions || []) { add('p:' + p.permission_id, p.requested_sequence || p.resolved_sequence || 0, 'permission', p); this.perms.set(p.permission_id, p); }
      for (const q of t.questions || []) { add('q:' + q.question_id, q.requested_sequence || q.resolved_sequence || 0, 'question', q); this.questions.set(q.question_id, q); }
      for (const e of t.errors || []) add('e:' + e.sequence, e.sequence, 'error', e);
      for (const u of t.unparsed || []) add('u:' + u.sequence, u.sequence, 'unparsed', u);
      for (const o of t.other || []) add('o:' + o.sequence + ':' + o.type, o.sequence, 'other', o);
      this.entries.sort((a, b) => a.seq - b.seq);
      t.usage = t.usage || {};
      t.session = t.session || {};
      t.turns = t.turns || 0;
    }
    entry(key, seq, kind, obj) {
      const e = { key, seq, kind, obj };
      this.byKey.set(key, e);
      return e;
    }
    push(key, seq, kind, obj) {
      const e = this.entry(key, seq, kind, obj);
      this.entries.push(e);
      return key;
    }
    static isAcp(data) {
      return isObj(data) && data.jsonrpc !== undefined &&
        (data.method !== undefined || data.result !== undefined || data.error !== undefined);
    }
    static merge(dst, src) {
      for (const [k, v] of Object.entries(src)) {
        if (k === 'text' && v === '') continue;
        dst[k] = v;
      }
    }
    /* Folds one event. Returns the keys of the entries it changed, or null when the
     * transcript must be fetched again (an ACP envelope). */
    apply(ev) {
      const { sequence: seq, type } = ev;
      const data = ev.data;
      const t = this.t;
      if (this.acp || Fold.isAcp(data)) { this.acp = true; return null; }
      this.at = seq;
      t.at = seq;
      t.events = (t.events || 0) + 1;
      t.last_sequence = Math.max(t.last_sequence || 0, seq);
      if (type.startsWith('item.') && isObj(data)) return [this.item(type, data, seq)];
      if (type === 'permission.requested' || type === 'permission.resolved')
        return [this.request('p:', this.perms, 'permission_id', 'permission', data, seq, type.endsWith('resolved'))];
      if (type === 'question.requested' || type === 'question.resolved')
        return [this.request('q:', this.questions, 'question_id', 'question', data, seq, type.endsWith('resolved'))];
      if (type === 'usage' && isObj(data)) {
        for (const [k, v] of Object.entries(data)) if (typeof v === 'number') t.usage[k] = (t.usage[k] || 0) + v;
        if (data.turn_end === true) t.turns++;
        return ['usage'];
      }
      if (type === 'error') return [this.push('e:' + seq, seq, 'error', { sequence: seq, error: data })];
      if (type === 'session.started' || type === 'session.ended') { t.session[type.slice(8)] = data; return ['session']; }
      if (type === 'agent.unparsed') return [this.push('u:' + seq, seq, 'unparsed', { sequence: seq, data })];
      return [this.push('o:' + seq + ':' + type, seq, 'other', { sequence: seq, type, data })];
    }
    newItem(id, kind, seq) {
      const it = { item_id: id, kind: kind || 'unknown', status: 'in_progress', started_sequence: seq };
      const key = this.push('i:' + id, seq, 'item', it);
      const rec = { obj: it, key };
      this.byItem.set(id, rec);
      return rec;
    }
    item(type, data, seq) {
      const d = isObj(data.item) ? data.item : data;
      const id = str(d.item_id) || str(data.item_id) || 'seq-' + seq;
      let rec = this.byItem.get(id);
      const kind = str(d.kind) || str(d.item_kind);
      if (!rec && kind === 'tool_result' && str(d.call_id) && this.byCall.has(d.call_id)) {
        const call = this.byCall.get(d.call_id);
        if (!isObj(call.obj.result)) call.obj.result = {};
        rec = { obj: call.obj.result, key: call.key };
        this.byItem.set(id, rec);
      }
      if (type === 'item.delta') {
        if (!rec) rec = this.newItem(id, 'message', seq);
        if (typeof data.delta === 'string') rec.obj.text = (rec.obj.text || '') + data.delta;
        return rec.key;
      }
      if (!rec) rec = this.newItem(id, kind, seq);
      const it = rec.obj;
      const prev = it.text;
      const had = typeof prev === 'string' && prev.length > 0;
      Fold.merge(it, d);
      if (had) it.text = prev;
      if (!had && typeof it.text !== 'string' && Array.isArray(it.content)) {
        for (const part of it.content)
          if (isObj(part) && part.type === 'text' && typeof part.text === 'string') it.text = (it.text || '') + part.text;
      }
      if (type === 'item.completed') {
        if (typeof d.status !== 'string') it.status = 'completed';
        it.completed_sequence = seq;
      }
      if (it.kind === 'tool_call' && str(it.call_id) && !this.byCall.has(it.call_id)) this.byCall.set(it.call_id, rec);
      return rec.key;
    }
    request(prefix, index, idkey, kind, data, seq, resolved) {
      const id = (isObj(data) && str(data[idkey])) || 'seq-' + seq;
      let r = index.get(id);
      if (!r) {
        r = { [idkey]: id, status: 'requested' };
        index.set(id, r);
        this.push(prefix + id, seq, kind, r);
      }
      if (resolved) {
        r.resolution = data;
        r.status = (isObj(data) && str(data.status)) || 'resolved';
        r.resolved_sequence = seq;
      } else {
        if (isObj(data)) Fold.merge(r, data);
        r.requested_sequence = seq;
      }
      return prefix + id;
    }
  }

  /* ---- a small Markdown renderer ----
   * Agents write Markdown. This renders the common subset (headings, paragraphs, lists,
   * block quotes, fenced code, tables, inline code, bold, italic, http(s) links) by
   * building DOM nodes with text only: nothing in a message can become markup or script.
   * Headings become bold paragraphs, so a message cannot disturb the page's outline. */

  function mdInline(text) {
    const out = [];
    const re = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\*\*([^*]+)\*\*|__([^_]+)__|\*([^*\s][^*]*)\*|\b_([^_\s][^_]*)_\b|\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g;
    let last = 0, m;
    while ((m = re.exec(text))) {
      if (m.index > last) out.push(text.slice(last, m.index));
      if (m[1]) out.push(h('code', { text: m[2] }));
      else if (m[3] || m[4]) out.push(h('strong', {}, mdInline(m[3] || m[4])));
      else if (m[5] || m[6]) out.push(h('em', {}, mdInline(m[5] || m[6])));
      else if (m[7]) out.push(h('a', { href: m[8], rel: 'noopener noreferrer nofollow', target: '_blank', text: m[7] }));
      last = re.lastIndex;
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }

  function markdown(src) {
    const lines = src.replace(/\r\n?/g, '\n').split('\n');
    const root = h('div', { class: 'md' });
    let i = 0;
    const isBlockStart = (l) => /^(```|~~~|#{1,6}\s|>|\s*([-*+]|\d+[.)])\s|\s*\|)/.test(l);
    while (i < lines.length) {
      const line = lines[i];
      let m;
      if (!line.trim()) { i++; continue; }
      if ((m = /^(```|~~~)\s*([\w+-]*)/.exec(line))) {
        const fence = m[1], body = [];
        for (i++; i < lines.length && !lines[i].startsWith(fence); i++) body.push(lines[i]);
        i++;
        root.append(h('pre', { class: 'code', tabindex: '0', 'data-lang': m[2] || null }, h('code', { text: body.join('\n') })));
      } else if ((m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line))) {
        root.append(h('p', { class: 'md-h md-h' + m[1].length }, mdInline(m[2])));
        i++;
      } else if (/^>/.test(line)) {
        const body = [];
        for (; i < lines.length && /^>/.test(lines[i]); i++) body.push(lines[i].replace(/^>\s?/, ''));
        root.append(h('blockquote', {}, [...markdown(body.join('\n')).childNodes]));
      } else if ((m = /^(\s*)([-*+]|\d+[.)])\s+/.exec(line))) {
        const ordered = /\d/.test(m[2]);
        const list = h(ordered ? 'ol' : 'ul');
        if (ordered && parseInt(m[2], 10) !== 1) list.start = parseInt(m[2], 10);
        for (; i < lines.length; i++) {
          const lm = /^(\s*)([-*+]|\d+[.)])\s+(.*)$/.exec(lines[i]);
          if (lm && /\d/.test(lm[2]) === ordered) list.append(h('li', {}, mdInline(lm[3])));
          else if (lines[i].trim() && /^\s{2,}/.test(lines[i]) && list.lastChild) list.lastChild.append(' ', ...mdInline(lines[i].trim()));
          else break;
        }
        root.append(list);
      } else if (/^\s*\|.*\|\s*$/.test(line) && i + 1 < lines.length && /^\s*\|?\s*:?-{3,}/.test(lines[i + 1])) {
        const cells = (l) => l.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
        const head = cells(line);
        const table = h('table', { class: 'md-table' }, h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, mdInline(c))))));
        const body = h('tbody');
        for (i += 2; i < lines.length && /^\s*\|/.test(lines[i]); i++) body.append(h('tr', {}, cells(lines[i]).map((c) => h('td', {}, mdInline(c)))));
        table.append(body);
        root.append(h('div', { class: 'md-table-wrap' }, table));
      } else {
        const para = [];
        for (; i < lines.length && lines[i].trim() && (para.length === 0 || !isBlockStart(lines[i])); i++) para.push(lines[i]);
        const p = h('p');
        para.forEach((l, k) => { if (k) p.append(h('br')); p.append(...mdInline(l)); });
        root.append(p);
      }
    }
    return root;
  }

  /* ---- rendering transcript entries ---- */

  function seqLink(id, seq) {
    return h('a', { class: 'seq', href: '#/s/' + enc(id) + '/events?offset=' + Math.max(0, seq - 1) + '&limit=50&focus=' + seq, title: 'Event ' + seq + ' in the raw events', text: '#' + seq });
  }

  const prefs = { markdown: localStorage.getItem('reel.markdown') !== '0', native: false };
  function textBlock(text, md) {
    if (md && prefs.markdown) return h('div', { class: 'text rich' }, markdown(text));
    return h('div', { class: 'text' }, text);
  }

  function codeBlock(v, label) {
    const s = pretty(v);
    const lines = s.split('\n').length;
    const pre = h('pre', { class: 'code', tabindex: '0', 'aria-label': label }, s);
    if (lines <= LONG_LINES && s.length <= LONG_CHARS) return pre;
    return h('details', { class: 'long' },
      h('summary', {}, label + ' (' + fmtNum(lines) + ' lines, ' + fmtBytes(new Blob([s]).size) + ')'), pre);
  }

  function statusBadge(st, isError) {
    const s = isError ? 'error' : (st || 'unknown');
    return h('span', { class: 'badge it-' + s.replace(/[^a-z_]/gi, ''), text: s.replace(/_/g, ' ') });
  }

  function renderItem(sid, it, open) {
    const kind = it.kind;
    const seq = it.started_sequence;
    if (kind === 'message') {
      const role = it.role || 'assistant';
      return h('article', { class: 'msg role-' + role.replace(/[^a-z]/gi, ''), 'aria-label': role + ' message' },
        h('header', {}, h('span', { class: 'who', text: role === 'user' ? 'User' : role === 'assistant' ? 'Assistant' : role }),
          it.status === 'in_progress' ? h('span', { class: 'badge it-in_progress', text: 'streaming' }) : null,
          it.status && !['completed', 'in_progress'].includes(it.status) ? statusBadge(it.status) : null,
          seqLink(sid, seq)),
        textBlock(it.text || '', role !== 'user'));
    }
    if (kind === 'reasoning') {
      const text = it.text || '';
      return h('details', { class: 'reasoning', open: open || null },
        h('summary', {}, h('span', { class: 'who', text: 'Reasoning' }), ' ', h('span', { class: 'muted', text: preview(text, 90) }),
          it.status === 'in_progress' ? h('span', { class: 'badge it-in_progress', text: 'thinking' }) : null, seqLink(sid, seq)),
        textBlock(text));
    }
    if (kind === 'tool_call') {
      const res = isObj(it.result) ? it.result : null;
      const args = it.arguments;
      const argPrev = isObj(args) && typeof args.command === 'string' ? args.command
        : isObj(args) && typeof args.file_path === 'string' ? args.file_path : preview(args === undefined ? '' : args, 100);
      const st = res ? (res.status || 'completed') : it.status;
      const isErr = res && (res.is_error === true || res.status === 'failed');
      const out = res ? (res.output !== undefined ? res.output : res.content !== undefined ? res.content : res.text) : undefined;
      return h('details', { class: 'tool', open: open || null },
        h('summary', {}, h('span', { class: 'who', text: 'Tool' }), ' ', h('code', { class: 'tname', text: it.name || it.title || 'call' }), ' ',
          h('span', { class: 'args', text: preview(argPrev, 100) }), ' ',
          statusBadge(res ? st : it.status, isErr), seqLink(sid, seq)),
        h('div', { class: 'tool-body' },
          args !== undefined ? h('section', {}, h('h3', { text: 'Arguments' }), codeBlock(args, 'Arguments')) : null,
          res ? h('section', {}, h('h3', {}, 'Result', res.exit_code !== undefined ? ' (exit ' + res.exit_code + ')' : '',
            res.completed_sequence ? seqLink(sid, res.completed_sequence) : null),
          out !== undefined ? codeBlock(out, 'Output') : h('p', { class: 'muted', text: 'No output.' }))
            : h('p', { class: 'muted', text: it.status === 'in_progress' ? 'Running…' : 'No result.' })));
    }
    if (kind === 'tool_result') {  /* a result without its call */
      return h('details', { class: 'tool' }, h('summary', {}, h('span', { class: 'who', text: 'Tool result' }), ' ', statusBadge(it.status, it.is_error), seqLink(sid, seq)),
        codeBlock(it.output !== undefined ? it.output : it, 'Output'));
    }
    return h('details', { class: 'other' }, h('summary', {}, h('span', { class: 'who', text: 'Item · ' + kind }), seqLink(sid, seq)), codeBlock(it, 'Item'));
  }

  function renderEntry(sid, e, open) {
    const o = e.obj;
    switch (e.kind) {
      case 'item': return renderItem(sid, o, open);
      case 'permission': {
        const res = o.resolution;
        const action = o.action || (isObj(o.tool_call) && (o.tool_call.title || o.tool_call.kind)) || 'permission';
        return h('section', { class: 'perm', 'aria-label': 'Permission request' },
          h('header', {}, h('span', { class: 'who', text: 'Permission' }), ' ', h('code', { text: String(action) }), ' ',
            statusBadge(o.status), seqLink(sid, o.requested_sequence || o.resolved_sequence || 0)),
          o.input !== undefined ? codeBlock(o.input, 'Input') : null,
          res && o.resolved_sequence ? h('p', { class: 'muted' }, 'Resolved ', h('strong', { text: String(o.status) }), ' at ', seqLink(sid, o.resolved_sequence),
            res.option_id ? ' (option ' + res.option_id + ')' : '') : null);
      }
      case 'question': {
        const qs = Array.isArray(o.questions) ? o.questions : null;
        const res = o.resolution;
        return h('section', { class: 'question', 'aria-label': 'Question' },
          h('header', {}, h('span', { class: 'who', text: 'Question' }), ' ', statusBadge(o.status), seqLink(sid, o.requested_sequence || o.resolved_sequence || 0)),
          o.question ? h('p', { text: String(o.question) }) : null,
          qs ? h('ul', {}, qs.map((q) => h('li', { text: isObj(q) ? (q.question || q.header || preview(q)) : String(q) }))) : null,
          Array.isArray(o.options) ? h('p', { class: 'muted', text: 'Options: ' + o.options.map((x) => (isObj(x) ? x.label || preview(x) : String(x))).join(' · ') }) : null,
          res ? h('p', {}, 'Answer: ', h('strong', { text: preview(res.answer !== undefined ? res.answer : res.answers !== undefined ? res.answers : res.status, 300) })) : null);
      }
      case 'error': {
        const err = o.error;
        const msg = isObj(err) ? (err.message || preview(err)) : preview(err);
        return h('section', { class: 'err', 'aria-label': 'Error' },
          h('header', {}, h('span', { class: 'who', text: 'Error' }), isObj(err) && err.code !== undefined ? h('code', { text: ' ' + err.code }) : null, seqLink(sid, o.sequence)),
          h('p', { text: String(msg) }));
      }
      case 'unparsed':
        return h('details', { class: 'other' }, h('summary', {}, h('span', { class: 'who', text: 'Unparsed line' }), ' ',
          h('span', { class: 'muted', text: preview(isObj(o.data) ? o.data.line : o.data, 90) }), seqLink(sid, o.sequence)), codeBlock(o.data, 'Line'));
      default:
        return h('details', { class: 'other' }, h('summary', {}, h('code', { text: o.type }), ' ', h('span', { class: 'muted', text: preview(o.data, 90) }), seqLink(sid, o.sequence)),
          codeBlock(o.data, 'Data'));
    }
  }

  /* ---- session view ---- */

  function sessionView(main, id, tab, params) {
    crumbs([{ text: 'Sessions', href: '#/' }, { text: id, href: '#/s/' + enc(id) }].concat(tab === 'events' ? [{ text: 'Events' }] : []));
    document.title = id + ' · reel';
    let disposed = false;
    const disposers = [];
    const base = '/v1/sessions/' + enc(id);

    const meta = h('dl', { class: 'meta' });
    const exportBtn = h('button', { type: 'button', class: 'btn', id: 'export-btn', onclick: () => doExport() }, 'Export .jsonl.zst');
    const restoreBtn = h('button', { type: 'button', class: 'btn', id: 'restore-btn', onclick: () => doRestore() }, 'Copy restore text');
    const tabs = h('nav', { class: 'tabs', 'aria-label': 'Session views' },
      h('a', { href: '#/s/' + enc(id), id: 'tab-transcript', 'aria-current': tab === 'transcript' ? 'page' : null, text: 'Transcript' }),
      h('a', { href: '#/s/' + enc(id) + '/events', id: 'tab-events', 'aria-current': tab === 'events' ? 'page' : null, text: 'Events' }));
    const panel = h('div', { class: 'panel' });
    main.append(
      h('div', { class: 'view-head' }, h('h1', {}, h('span', { class: 'muted', text: 'Session ' }), h('span', { class: 'sid', text: id })),
        h('div', { class: 'actions' }, exportBtn, restoreBtn)),
      meta, tabs, panel);

    let rec = null;
    function showMeta(extra) {
      if (!rec) return;
      const rows = [
        ['Agent', rec.agent || '–'],
        ['Status', ((o) => h('span', { class: 'badge ' + o.cls, title: o.title, text: o.label }))(outcomeOf(rec))],
        ['Events', fmtNum(rec.event_count)],
        ['Size', fmtBytes(rec.bytes)],
        ['Created', timeEl(rec.created_at)],
        ['Last activity', timeEl(rec.updated_at)],
      ];
      if (rec.native_session_id) rows.push(['Native id', h('code', { text: rec.native_session_id })]);
      if (extra) rows.push(...extra);
      meta.replaceChildren(...rows.map(([k, v]) => h('div', {}, h('dt', { text: k }), h('dd', {}, v))));
    }

    async function loadRecord() {
      rec = await api(base);
      showMeta();
      return rec;
    }

    async function doExport() {
      exportBtn.disabled = true;
      try {
        const res = await api(base + '/export?format=jsonl&compression=zstd', { raw: true });
        const reader = res.body.getReader();
        const parts = [];
        let n = 0;
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          parts.push(value);
          n += value.length;
          exportBtn.textContent = 'Exporting… ' + fmtBytes(n);
        }
        const url = URL.createObjectURL(new Blob(parts, { type: 'application/zstd' }));
        const a = h('a', { href: url, download: id.replace(/[^A-Za-z0-9._-]/g, '_') + '.jsonl.zst', class: 'sr-only' });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
        toast('Exported ' + fmtBytes(n) + ' (zstd).');
      } catch (e) {
        toast('Export failed: ' + e.message, 'error');
      } finally {
        exportBtn.disabled = false;
        exportBtn.textContent = 'Export .jsonl.zst';
      }
    }

    async function doRestore() {
      restoreBtn.disabled = true;
      try {
        const r = await api(base + '/restore');
        if (r.replay_text === null || r.replay_text === undefined) { toast('This session has no events to restore.'); return; }
        const what = 'events ' + r.from_sequence + '–' + r.to_sequence + (r.truncated ? ', truncated' : '');
        try {
          await navigator.clipboard.writeText(r.replay_text);
          toast('Copied the restore text (' + fmtNum(r.replay_text.length) + ' characters, ' + what + ').');
        } catch (e) {
          const ta = $('#text-area');
          ta.value = r.replay_text;
          $('#text-dialog').showModal();
          ta.focus();
          ta.select();
        }
        main.dataset.restoreChars = String(r.replay_text.length);
      } catch (e) {
        toast('Restore failed: ' + e.message, 'error');
      } finally {
        restoreBtn.disabled = false;
      }
    }

    const view = tab === 'events' ? eventsPanel : transcriptPanel;
    (async () => {
      try {
        /* A session that does not exist yet (an agent about to start) is waited for. */
        for (;;) {
          try {
            await loadRecord();
            break;
          } catch (e) {
            if (e.status !== 404 || !e.problem || e.problem.type !== 'urn:reel:error:session_not_found') throw e;
            if (!panel.firstChild) {
              panel.append(h('p', { class: 'muted', id: 'waiting' }, 'No session ', h('code', { text: id }), ' yet: waiting for its first event…'));
              setLive('wait', 'Waiting');
              focusHeading(main);
            }
            await new Promise((r) => setTimeout(r, 1000));
            if (disposed) return;
          }
        }
        if (disposed) return;
        panel.replaceChildren();
        await view();
      } catch (e) {
        if (!disposed) panel.replaceChildren(errorBox(e));
      }
      focusHeading(main);
    })();

    /* -- transcript tab -- */
    async function transcriptPanel() {
      const t = await api(base + '/transcript');
      if (disposed) return;
      if (rec && t.at > (rec.last_sequence || 0)) {  /* events committed since the record was read */
        rec.event_count += t.at - (rec.last_sequence || 0);
        rec.last_sequence = t.at;
      }
      const fold = new Fold(t);
      let ws = 0, we = 0;               /* the rendered window: vis[ws .. we) */
      const opened = new Set();          /* keys of entries whose details the reader opened */
      const nodes = new Map();           /* key -> li */
      const times = new Map();           /* sequence -> commit time (ISO), for the entries shown */
      const marks = [];                  /* run starts and turn ends: {seq, kind, n, time, data} */
      const filt = { q: '', type: '' };
      let target = null;                 /* the entry jumped to (search, problem, sequence) */
      const list = h('ol', { class: 'timeline', 'aria-label': 'Transcript' });
      const earlier = h('button', { type: 'button', class: 'btn', id: 'earlier', onclick: () => { ws = Math.max(0, ws - WINDOW); show({ keepTop: true }); } });
      const later = h('button', { type: 'button', class: 'btn', id: 'later', onclick: () => { we = Math.min(vis.length, we + WINDOW); show({}); } });
      const follow = h('input', { type: 'checkbox', id: 'follow', checked: !params.get('seq') });
      const mdBox = h('input', { type: 'checkbox', id: 'opt-md', checked: prefs.markdown, onchange: () => {
        prefs.markdown = mdBox.checked;
        localStorage.setItem('reel.markdown', mdBox.checked ? '1' : '0');
        renderAll(false);
      } });
      const nativeBox = h('input', { type: 'checkbox', id: 'opt-native', checked: prefs.native, onchange: () => {
        prefs.native = nativeBox.checked;
        refilter();
      } });
      const summary = h('p', { class: 'summary muted', id: 'tsummary', role: 'status' });
      const tools = h('div', { class: 'tbar' }, summary, h('div', { class: 'opts' },
        h('label', { class: 'check' }, mdBox, ' Markdown'),
        h('label', { class: 'check' }, nativeBox, ' Native lines'),
        h('label', { class: 'check' }, follow, ' Follow new events')));

      /* search (text, tool name, arguments, output), type filter, jump to a sequence */
      const searchIn = h('input', { id: 't-search', type: 'search', placeholder: 'text or tool name', autocomplete: 'off', spellcheck: 'false', 'data-filter': '' });
      const typeIn = h('select', { id: 't-type' }, [['', 'all'], ['message', 'messages'], ['reasoning', 'reasoning'], ['tool_call', 'tool calls'],
        ['permission', 'permissions'], ['question', 'questions'], ['error', 'errors'], ['other', 'other events']].map(([v, l]) => h('option', { value: v, text: l })));
      const seqIn = h('input', { id: 't-seq', type: 'number', min: '1', inputmode: 'numeric', placeholder: '#', autocomplete: 'off' });
      let searchTimer = 0;
      searchIn.addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(() => { filt.q = searchIn.value.trim().toLowerCase(); refilter(); }, 200); });
      typeIn.addEventListener('change', () => { filt.type = typeIn.value; refilter(); });
      const finder = h('form', { class: 'filters tfind', role: 'search', 'aria-label': 'Search the transcript', onsubmit: (e) => {
        e.preventDefault();
        clearTimeout(searchTimer);
        filt.q = searchIn.value.trim().toLowerCase();
        refilter();
      } },
        h('div', { class: 'field' }, h('label', { for: 't-search', text: 'Search' }), searchIn),
        h('div', { class: 'field' }, h('label', { for: 't-type', text: 'Type' }), typeIn));
      const seqForm = h('form', { class: 'filters tjump', 'aria-label': 'Jump to a sequence', onsubmit: (e) => {
        e.preventDefault();
        const n = parseInt(seqIn.value, 10);
        if (n > 0) jumpSeq(n);
      } }, h('div', { class: 'field' }, h('label', { for: 't-seq', text: 'Go to event #' }), seqIn), h('button', { type: 'submit', class: 'btn', text: 'Go' }));

      /* errors and refused permissions: a gutter beside the timeline, and previous/next */
      const probCount = h('span', { id: 'prob-count' });
      const probPrev = h('button', { type: 'button', class: 'btn', id: 'prob-prev', text: '↑ Previous', onclick: () => stepProblem(-1) });
      const probNext = h('button', { type: 'button', class: 'btn', id: 'prob-next', text: '↓ Next', onclick: () => stepProblem(1) });
      const probBar = h('nav', { class: 'probbar', 'aria-label': 'Errors and refused permissions' }, probCount, probPrev, probNext);
      const gutter = h('div', { class: 'gutter', id: 'gutter', 'aria-hidden': 'true' });
      const plan = h('div', { id: 'plan' });
      /* The current run and turn, always labelled: a bar that sticks under the top bar and
       * names the run and turn of the topmost entry on screen, also when their separators
       * are above the drawn window. */
      const sticky = h('div', { class: 'tsticky', id: 'tsticky', role: 'note', 'aria-live': 'off', hidden: true });
      panel.replaceChildren(tools, h('div', { class: 'tfinders' }, finder, seqForm, probBar), plan, sticky, earlier, list, later, gutter);

      function extra() {
        const s = fold.t.session || {};
        const u = fold.t.usage || {};
        const x = [];
        if (isObj(s.started) && s.started.model) x.push(['Model', h('code', { text: String(s.started.model) })]);
        if (u.input_tokens !== undefined || u.output_tokens !== undefined)
          x.push(['Tokens', fmtNum(u.input_tokens || 0) + ' in · ' + fmtNum(u.output_tokens || 0) + ' out']);
        if (u.cost_usd !== undefined) x.push(['Cost', '$' + Number(u.cost_usd).toFixed(4)]);
        x.push(['Turns', fmtNum(fold.t.turns || 0)]);
        if (rec && rec.runs > 1) x.push(['Runs', fmtNum(rec.runs)]);
        if (isObj(s.ended)) x.push(['Ended', String(s.ended.reason || 'yes') + (s.ended.exit_code !== undefined ? ' (exit ' + s.ended.exit_code + ')' : '')]);
        return x;
      }

      /* -- times: the transcript has sequences; their commit times come from the events -- */
      function markOf(ev) {
        if (ev.type === 'session.started') return 'run';
        if (ev.type === 'usage' && isObj(ev.data) && ev.data.turn_end === true) return 'turn';
        return null;
      }
      function addMark(ev) {
        const kind = markOf(ev);
        if (!kind || marks.some((m) => m.seq === ev.sequence)) return false;
        const n = marks.filter((m) => m.kind === kind).length + 1;
        marks.push({ seq: ev.sequence, kind, n, time: ev.time, data: ev.data });
        return true;
      }
      /* Every run start and turn end, with one filtered read (the server examines up to
       * 20,000 events per request; a 100,000-event session takes 5). */
      async function loadMarks() {
        let off = 0;
        for (let i = 0; i < 10000 && off < fold.at; i++) {
          const r = await api(base + '/events?types=session.started,usage&limit=10000&offset=' + off);
          for (const ev of r.events) { if (ev.sequence <= fold.at) { times.set(ev.sequence, ev.time); addMark(ev); } }
          if (!r.hasMore || r.next_offset <= off) break;
          off = r.next_offset;
        }
        marks.sort((a, b) => a.seq - b.seq);
        const count = { run: 0, turn: 0 };
        for (const m of marks) m.n = ++count[m.kind];
      }
      /* The times of sequences lo..hi, read in pages of up to 10,000 events. */
      async function ensureTimes(lo, hi) {
        hi = Math.min(hi, fold.at);
        for (let a = Math.max(1, lo), guard = 0; a <= hi && guard < 1000; guard++) {
          if (times.has(a)) { a++; continue; }
          let b = a;
          while (b < hi && !times.has(b + 1) && b - a < 9999) b++;
          const r = await api(base + '/events?offset=' + (a - 1) + '&limit=' + (b - a + 1));
          for (const ev of r.events) times.set(ev.sequence, ev.time);
          if (!r.events.length) break;
          a = Math.max(b + 1, r.next_offset + 1);
        }
      }
      const endSeq = (e) => {
        const o = e.obj;
        if (e.kind !== 'item') return o.resolved_sequence || e.seq;
        return (isObj(o.result) && o.result.completed_sequence) || o.completed_sequence || e.seq;
      };
      async function windowTimes() {
        if (we <= ws) return;
        let hi = 0;
        for (let i = ws; i < we; i++) hi = Math.max(hi, endSeq(vis[i]));
        await ensureTimes(vis[ws].seq, hi);
      }

      const clock = (iso) => (iso ? iso.slice(11, 23) : '');
      function timeOf(seq) {
        const iso = times.get(seq);
        return iso ? h('time', { class: 'at', datetime: iso, title: iso.replace('T', ' ').replace('Z', ' UTC') + ' · event #' + seq, text: clock(iso) }) : null;
      }
      function durationOf(e) {
        const o = e.obj;
        if (e.kind !== 'item' || o.kind !== 'tool_call') return undefined;
        const end = (isObj(o.result) && o.result.completed_sequence) || (o.status !== 'in_progress' && !isObj(o.result) ? o.completed_sequence : 0);
        const a = Date.parse(times.get(o.started_sequence)), b = Date.parse(times.get(end));
        return Number.isNaN(a) || Number.isNaN(b) ? undefined : Math.max(0, b - a);
      }

      /* -- classification: type filter, search, problems -- */
      function typeOf(e) {
        if (e.kind === 'item') return e.obj.kind === 'tool_result' ? 'tool_call' : ['message', 'reasoning', 'tool_call'].includes(e.obj.kind) ? e.obj.kind : 'other';
        return e.kind === 'unparsed' ? 'other' : e.kind;
      }
      function searchText(e) {
        const o = e.obj;
        const parts = [];
        const add = (v) => { if (v !== undefined && v !== null) parts.push(typeof v === 'string' ? v : JSON.stringify(v)); };
        if (e.kind === 'item') {
          add(o.text); add(o.name); add(o.title); add(o.arguments);
          if (isObj(o.result)) { add(o.result.output); add(o.result.content); add(o.result.text); }
          if (o.kind === 'tool_result') add(o.output);
        } else if (e.kind === 'error') add(o.error);
        else if (e.kind === 'permission' || e.kind === 'question') { add(o.action); add(o.input); add(o.question); add(o.questions); add(o.tool_call); }
        else { add(o.type); add(o.data); }
        return parts.join('\n').toLowerCase();
      }
      function isProblem(e) {
        const o = e.obj;
        if (e.kind === 'error') return true;
        if (e.kind === 'permission') return /^(reject|deny|denied|cancel)/i.test(String(o.status || ''));
        if (e.kind !== 'item') return false;
        if (o.status === 'failed') return true;
        return o.kind === 'tool_call' && isObj(o.result) && (o.result.is_error === true || o.result.status === 'failed');
      }
      const base0 = (e) => prefs.native || e.kind !== 'other' || e.obj.type !== 'agent.native';
      /* agent.native events (a line with nothing universal in it) are hidden unless asked. */
      const visible = (e) => base0(e) && (!filt.type || typeOf(e) === filt.type) && (!filt.q || searchText(e).includes(filt.q));

      function li(e) {
        const el = h('li', { class: 'entry k-' + e.kind + (isProblem(e) ? ' flagged' : '') + (target === e ? ' target' : ''), dataset: { key: e.key, seq: String(e.seq) } }, renderEntry(id, e, opened.has(e.key)));
        const head = el.firstChild && el.firstChild.querySelector(':scope > summary, :scope > header');
        if (head) {
          const at = head.querySelector(':scope > a.seq');
          const d = durationOf(e);
          if (d !== undefined) head.insertBefore(h('span', { class: 'dur', title: 'tool call duration: result time minus call start time', text: fmtDuration(d) }), at);
          const tm = timeOf(e.seq);
          if (tm) head.insertBefore(tm, at);
        }
        if (filt.q) hitCount += highlight(el.firstChild, filt.q);
        if (isProblem(e)) el.prepend(h('span', { class: 'pmark', title: e.kind === 'permission' ? 'refused permission' : 'error', text: '!' }));
        el.addEventListener('toggle', (ev) => {
          if (ev.target.parentElement !== el) return;
          if (ev.target.dataset.auto) { delete ev.target.dataset.auto; return; }
          if (ev.target.open) opened.add(e.key); else opened.delete(e.key);
        }, true);
        return el;
      }
      /* Search: the words found are marked inside the entry (text nodes split around
       * each match, <mark class="hit">), and a collapsed part that holds one is opened. */
      function highlight(el, q) {
        if (!q) return 0;
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        const found = [];
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          const low = n.data.toLowerCase();
          if (low.length === n.data.length && low.includes(q) && !n.parentElement.closest('time, a.seq')) found.push(n);
        }
        let hits = 0;
        for (const n of found) {
          const low = n.data.toLowerCase(), frag = document.createDocumentFragment();
          let at = 0;
          for (let i = low.indexOf(q); i >= 0; i = low.indexOf(q, at)) {
            if (i > at) frag.append(n.data.slice(at, i));
            frag.append(h('mark', { class: 'hit', text: n.data.slice(i, i + q.length) }));
            at = i + q.length;
            hits++;
          }
          if (at < n.data.length) frag.append(n.data.slice(at));
          /* opened for the search only: not remembered as the reader's choice (toggle below) */
          for (let d = n.parentElement.closest('details'); d && el.contains(d); d = d.parentElement.closest('details')) {
            const sum = d.querySelector(':scope > summary');
            if (!d.open && !(sum && sum.contains(n))) { d.dataset.auto = '1'; d.open = true; }  /* a hit in its summary is on screen already */
          }
          n.replaceWith(frag);
        }
        return hits;
      }
      function updateSticky() {
        stickyFrame = 0;
        if (!marks.length || filt.q || filt.type) { sticky.hidden = true; return; }
        const bar = $('.top');
        const topH = bar ? bar.getBoundingClientRect().height : 0;
        sticky.style.top = topH + 'px';
        const edge = topH + sticky.offsetHeight + 2;
        let first = null;
        for (const n of list.children) {
          if (!n.classList.contains('entry')) continue;
          if (n.getBoundingClientRect().bottom > edge) { first = n; break; }
        }
        if (!first) { sticky.hidden = true; return; }
        const seq = Number(first.dataset.seq);
        let run = null, turnsDone = 0, lastEnd = null;
        for (const m of marks) {
          if (m.seq > seq) break;
          if (m.kind === 'run') run = m; else { turnsDone = m.n; lastEnd = m; }
        }
        const turn = turnsDone + 1;
        sticky.replaceChildren(
          run ? h('span', { class: 'st-run' }, 'Run ' + run.n, h('span', { class: 'muted', text: ' · started ' + clock(run.time) + ' · #' + run.seq })) : h('span', { class: 'st-run muted', text: 'Before the first run' }),
          h('span', { class: 'st-turn' }, 'Turn ' + turn, h('span', { class: 'muted', text: lastEnd ? ' · after the end of turn ' + lastEnd.n + ' at #' + lastEnd.seq : ' · from the start' })));
        sticky.hidden = false;
        sticky.dataset.run = run ? String(run.n) : '0';
        sticky.dataset.turn = String(turn);
        sticky.dataset.seq = String(seq);
      }
      let stickyFrame = 0;
      const onScroll = () => { if (!stickyFrame) stickyFrame = requestAnimationFrame(updateSticky); };
      window.addEventListener('scroll', onScroll, { passive: true });
      window.addEventListener('resize', onScroll, { passive: true });
      disposers.push(() => { window.removeEventListener('scroll', onScroll); window.removeEventListener('resize', onScroll); cancelAnimationFrame(stickyFrame); });

      function sep(m) {
        const what = m.kind === 'run' ? 'Run ' + m.n + ' started' : 'End of turn ' + m.n;
        const u = m.kind === 'turn' && isObj(m.data) ? m.data : null;
        const tok = u && (u.input_tokens !== undefined || u.output_tokens !== undefined) ? ' · ' + fmtNum(u.input_tokens || 0) + ' in, ' + fmtNum(u.output_tokens || 0) + ' out' : '';
        return h('li', { class: 'sep sep-' + m.kind, dataset: { seq: String(m.seq) } },
          h('span', {}, what + tok + ' · ', h('time', { datetime: m.time, title: m.time, text: clock(m.time) }), ' · #' + m.seq));
      }
      let vis = [];
      let marksShown = 0, hitCount = 0;
      function renderAll(keepTop) {
        const oldH = document.documentElement.scrollHeight;
        nodes.clear();
        ws = Math.max(0, Math.min(ws, vis.length));
        we = Math.max(ws, Math.min(we, vis.length));
        const frag = document.createDocumentFragment();
        hitCount = 0;
        /* separators (runs, turns) go before the first entry past them; with a filter they
         * would separate nothing, so they are left out */
        const seps = !filt.q && !filt.type;
        let mi = 0;
        const lo = ws > 0 ? vis[ws - 1].seq : 0;
        while (mi < marks.length && marks[mi].seq <= lo) mi++;
        for (let i = ws; i < we; i++) {
          const e = vis[i];
          for (; mi < marks.length && marks[mi].seq <= e.seq; mi++) if (seps) frag.append(sep(marks[mi]));
          const n = li(e); nodes.set(e.key, n); frag.append(n);
        }
        if (we === vis.length) for (; mi < marks.length; mi++) if (seps) frag.append(sep(marks[mi]));
        marksShown = marks.length;
        list.replaceChildren(frag);
        if (keepTop) window.scrollBy(0, document.documentElement.scrollHeight - oldH);
        main.dataset.hits = String(hitCount);
        updateChrome();
        onScroll();
      }
      /* Reads the times of the window, then draws it. */
      async function show({ keepTop = false } = {}) {
        await windowTimes();
        if (!disposed) renderAll(keepTop);
      }
      function newestWindow() {
        vis = fold.entries.filter(visible);
        we = vis.length;
        ws = Math.max(0, we - WINDOW);
      }
      async function refilter() {
        target = null;
        newestWindow();
        await show({});
        main.dataset.filtered = filt.q || filt.type ? vis.length + '' : '';
      }
      let problems = [];
      function updateChrome() {
        earlier.hidden = ws <= 0;
        earlier.textContent = 'Show ' + Math.min(WINDOW, ws) + ' earlier (' + fmtNum(ws) + ' not shown)';
        later.hidden = we >= vis.length;
        later.textContent = 'Show ' + Math.min(WINDOW, vis.length - we) + ' later (' + fmtNum(vis.length - we) + ' not shown)';
        const all = fold.entries.filter(base0).length;
        const natives = fold.entries.length - all;
        const filtered = filt.q || filt.type;
        summary.textContent = (filtered ? fmtNum(vis.length) + ' of ' + fmtNum(all) + ' entries match' : fmtNum(vis.length) + ' entries') +
          ' from ' + fmtNum(fold.t.events) + ' events, up to #' + fold.at +
          (we - ws < vis.length ? '; showing ' + fmtNum(ws + 1) + '–' + fmtNum(we) : '') + (natives > 0 ? '; ' + fmtNum(natives) + ' native lines hidden' : '') + '.';
        main.dataset.at = String(fold.at);
        /* an ended session's latest session.ended is the one that ended it: its reason is the outcome */
        const ended = fold.t.session && fold.t.session.ended;
        if (rec && rec.status === 'ended' && isObj(ended) && fold.at >= (rec.last_sequence || 0))
          outcomes.set(rec.id, { seq: rec.last_sequence, reason: str(ended.reason) || null });
        showMeta(extra());
        const p = fold.t.plan;
        plan.replaceChildren(Array.isArray(p) && p.length ? h('details', { class: 'plan' },
          h('summary', {}, 'Plan (' + p.length + (p.length === 1 ? ' entry)' : ' entries)')),
          h('ul', {}, p.map((x) => h('li', {}, isObj(x) ? [x.status ? statusBadge(String(x.status)) : null, ' ', String(x.content || preview(x))] : String(x))))) : '');
        updateProblems();
      }
      function updateProblems() {
        const es = fold.entries;
        problems = es.filter(isProblem);
        probCount.textContent = problems.length ? problems.length + (problems.length === 1 ? ' problem' : ' problems') + ' (errors, refused permissions)' : 'No errors';
        probPrev.disabled = probNext.disabled = !problems.length;
        main.dataset.problems = String(problems.length);
        const frag = document.createDocumentFragment();
        const idx = new Map(es.map((e, i) => [e, i]));
        for (const p of problems.slice(0, 500)) {
          const b = h('button', { type: 'button', class: 'gmark', tabindex: '-1', title: (p.kind === 'permission' ? 'refused permission' : 'error') + ' at #' + p.seq, onclick: () => jumpTo(p) });
          b.style.top = (100 * idx.get(p) / Math.max(1, es.length - 1)).toFixed(2) + '%';
          frag.append(b);
        }
        gutter.replaceChildren(frag);
        gutter.hidden = !problems.length;
      }

      /* -- jumps: to an entry (moving the window), to a sequence, through the problems -- */
      async function jumpTo(e, seq) {
        if (!visible(e)) { filt.q = ''; filt.type = ''; searchIn.value = ''; typeIn.value = ''; vis = fold.entries.filter(visible); }
        const i = vis.indexOf(e);
        if (i < 0) return;
        follow.checked = false;
        target = e;
        if (i < ws || i >= we) { ws = Math.max(0, i - WINDOW / 2); we = Math.min(vis.length, ws + WINDOW); }
        await show({});
        const n = nodes.get(e.key);
        if (!n) return;
        n.scrollIntoView({ block: 'center' });
        const f = n.querySelector('summary, article, section');
        if (f) { if (!/^SUMMARY$/.test(f.tagName)) f.tabIndex = -1; f.focus({ preventScroll: true }); }
        const s = seq || e.seq;
        history.replaceState(null, '', '#/s/' + enc(id) + '?seq=' + s);
        main.dataset.target = String(e.seq);
      }
      /* The entry that holds sequence n: the last one that starts at or before it. */
      function entryAt(n) {
        const es = fold.entries;
        let lo = 0, hi = es.length - 1, best = es.length ? es[0] : null;
        while (lo <= hi) {
          const mid = (lo + hi) >> 1;
          if (es[mid].seq <= n) { best = es[mid]; lo = mid + 1; } else hi = mid - 1;
        }
        return best;
      }
      function jumpSeq(n) {
        const e = entryAt(n);
        if (e) return jumpTo(e, n);
        toast('No entry at #' + n + '.');
        return null;
      }
      function stepProblem(dir) {
        if (!problems.length) return;
        const cur = target ? target.seq : (dir > 0 ? -1 : Infinity);
        let p = dir > 0 ? problems.find((x) => x.seq > cur) : [...problems].reverse().find((x) => x.seq < cur);
        if (!p) p = dir > 0 ? problems[0] : problems[problems.length - 1];
        jumpTo(p);
      }

      newestWindow();
      await show({});
      if (disposed) return;
      /* the separators (runs, turns) come from one more read; drawn when it is done */
      loadMarks().then(() => { if (!disposed && marks.length) renderAll(false); main.dataset.marks = String(marks.length); })
        .catch(() => { main.dataset.marks = 'failed'; });
      const want = parseInt(params.get('seq') || '', 10);
      if (want > 0) await jumpSeq(want);
      else if (follow.checked) requestAnimationFrame(() => window.scrollTo(0, document.documentElement.scrollHeight));

      /* Live: changes are collected and drawn once per animation frame. */
      const dirty = new Set();
      let frame = 0, refetchTimer = 0, recTimer = 0;
      /* The record (size, status, counts) is read again, at most once a second. */
      function refreshRecord() {
        if (recTimer) return;
        recTimer = setTimeout(async () => {
          recTimer = 0;
          try {
            const r = await api(base);
            if (!disposed && r.last_sequence >= live.last) { rec = r; updateChrome(); }
          } catch (e) { /* kept until the next event */ }
        }, 800);
      }
      function schedule() { if (!frame) frame = requestAnimationFrame(flush); }
      function flush() {
        frame = 0;
        const nearBottom = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 80;
        const before = list.children.length;
        if (marks.length !== marksShown && we === vis.length) { dirty.clear(); renderAll(false); }
        for (const key of dirty) {
          const e = fold.byKey.get(key);
          if (!e) continue;
          const old = nodes.get(key);
          if (old) { const n = li(e); old.replaceWith(n); nodes.set(key, n); }
          else if (visible(e) && !vis.includes(e)) {
            const atEnd = we === vis.length;
            vis.push(e);
            if (atEnd) { we++; const n = li(e); nodes.set(key, n); list.append(n); }
          }
        }
        dirty.clear();
        updateChrome();
        if (follow.checked && (nearBottom || list.children.length !== before)) window.scrollTo(0, document.documentElement.scrollHeight);
      }
      async function refetch() {
        refetchTimer = 0;
        try {
          const nt = await api(base + '/transcript?at=' + live.last);
          if (disposed) return;
          fold.reset(nt);
          fold.acp = true;
          newestWindow();
          await show({});
          if (follow.checked) window.scrollTo(0, document.documentElement.scrollHeight);
        } catch (e) { refetchTimer = setTimeout(refetch, 2000); }
      }
      function onEvents(evs) {
        let again = false;
        for (const ev of evs) {
          times.set(ev.sequence, ev.time);
          addMark(ev);
          const keys = fold.apply(ev);
          if (keys === null) { again = true; continue; }
          for (const k of keys) if (k !== 'usage' && k !== 'session') dirty.add(k);
        }
        if (rec) {
          const last = evs[evs.length - 1];
          rec.event_count += evs.length;
          rec.last_sequence = last.sequence;
          rec.updated_at = last.time;
          const ends = evs.filter((e) => e.type === 'session.ended');
          if (ends.length) rec.ended_at = ends[ends.length - 1].time;
          if (rec.status !== 'deleted') rec.status = last.type === 'session.ended' ? 'ended' : 'active';
          rec.runs = (rec.runs || 0) + evs.filter((e) => e.type === 'session.started').length;
        }
        if (again && !refetchTimer) refetchTimer = setTimeout(refetch, 300);
        refreshRecord();
        schedule();
        exposeStats();
      }
      const live = new Live({
        path: base + '/events/sse', param: 'offset', last: fold.at, dense: true,
        key: (ev) => ev.sequence,
        fill: async (after) => (await api(base + '/events?limit=10000&offset=' + after)).events,
        onEvents,
        onState: (s, txt) => { setLive(s, txt); exposeStats(); },
      });
      function exposeStats() {
        const st = live.stats;
        Object.assign(main.dataset, { lastSeq: String(live.last), received: String(st.received), duplicates: String(st.duplicates), gaps: String(st.gaps), reconnects: String(st.reconnects) });
      }
      live.start();
      exposeStats();
      window.__reelLive = live;
      disposers.push(() => { live.close(); cancelAnimationFrame(frame); clearTimeout(refetchTimer); clearTimeout(recTimer); });
    }

    /* -- events tab -- */
    async function eventsPanel() {
      const last = rec.last_sequence || 0;
      const limit = Math.min(10000, Math.max(1, parseInt(params.get('limit') || '100', 10) || 100));
      const hasOffset = params.has('offset');
      const offset = hasOffset ? Math.max(0, parseInt(params.get('offset'), 10) || 0) : Math.max(0, last - limit);
      const raw = params.get('raw') === '1';
      const types = params.get('types') || '';
      const q = new URLSearchParams({ offset: String(offset), limit: String(limit) });
      if (raw) q.set('include_raw', 'true');
      if (types) q.set('types', types);
      const r = await api(base + '/events?' + q);
      if (disposed) return;
      const link = (o, extra = {}) => {
        const p = new URLSearchParams({ offset: String(Math.max(0, o)), limit: String(limit) });
        if (raw) p.set('raw', '1');
        if (types) p.set('types', types);
        for (const [k, v] of Object.entries(extra)) if (v === null) p.delete(k); else p.set(k, v);
        return '#/s/' + enc(id) + '/events?' + p;
      };
      const offIn = h('input', { id: 'ev-offset', type: 'number', min: '0', value: String(offset), inputmode: 'numeric' });
      const limIn = h('select', { id: 'ev-limit' }, [20, 50, 100, 500, 1000].map((n) => h('option', { value: String(n), text: String(n), selected: n === limit })));
      const typesIn = h('input', { id: 'ev-types', value: types, placeholder: 'all types', spellcheck: 'false', 'data-filter': '' });
      const rawIn = h('input', { id: 'ev-raw', type: 'checkbox', checked: raw });
      const form = h('form', { class: 'filters', 'aria-label': 'Event page', onsubmit: (e) => {
        e.preventDefault();
        const p = new URLSearchParams({ offset: String(Math.max(0, parseInt(offIn.value, 10) || 0)), limit: limIn.value });
        if (rawIn.checked) p.set('raw', '1');
        if (typesIn.value.trim()) p.set('types', typesIn.value.trim().replace(/\s+/g, ''));
        location.hash = '#/s/' + enc(id) + '/events?' + p;
      } },
        h('div', { class: 'field' }, h('label', { for: 'ev-offset', text: 'After sequence' }), offIn),
        h('div', { class: 'field' }, h('label', { for: 'ev-limit', text: 'Per page' }), limIn),
        h('div', { class: 'field' }, h('label', { for: 'ev-types', text: 'Types (comma-separated)' }), typesIn),
        h('label', { class: 'check' }, rawIn, ' Include raw'),
        h('button', { type: 'submit', class: 'btn primary', text: 'Show' }));
      const evs = r.events;
      const tbody = h('tbody');
      /* One row per event. 'raw' (with Include raw) is the agent's own line the event was
       * made from, shown under the data; agent.native events (native lines with nothing
       * universal in them) are shown like any other, marked. */
      const evRow = (ev) => {
        const native = ev.type === 'agent.native';
        const rawText = ev.raw === undefined || ev.raw === null ? null : (typeof ev.raw === 'string' ? ev.raw : JSON.stringify(ev.raw));
        return h('tr', { id: 'ev-' + ev.sequence, class: native ? 'native' : null, dataset: { type: ev.type } },
          h('th', { scope: 'row', class: 'num' }, String(ev.sequence)),
          h('td', {}, h('time', { datetime: ev.time, title: ev.time, text: ev.time ? ev.time.slice(11, 23) : '' })),
          h('td', {}, h('details', { class: 'ev' }, h('summary', {}, h('code', { text: ev.type }), native ? h('span', { class: 'badge native', text: 'native' }) : '', ' ', h('span', { class: 'muted', text: preview(ev.data, 80) })),
            h('pre', { class: 'code', tabindex: '0', 'aria-label': 'Event ' + ev.sequence + ' as JSON' }, JSON.stringify(ev, null, 2))),
            rawText !== null ? h('div', { class: 'raw', title: 'raw: the agent\'s own line' }, h('span', { class: 'raw-label', text: 'raw' }), h('code', { text: rawText.length > 400 ? rawText.slice(0, 400) + '…' : rawText })) : ''),
          h('td', { text: (ev.source || '–') + (ev.synthetic ? ' (synthetic)' : '') }));
      };
      for (const ev of evs) tbody.append(evRow(ev));
      const first = evs.length ? evs[0].sequence : offset;
      let lastShown = evs.length ? evs[evs.length - 1].sequence : offset;
      const nav = (label, href, dis, idn) => dis ? h('span', { class: 'btn', 'aria-disabled': 'true', id: idn, text: label }) : h('a', { class: 'btn', href, id: idn, text: label });
      const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of events' },
        nav('⇤ First', link(0), offset === 0, 'ev-first'),
        nav('← Previous', link(offset - limit), offset === 0, 'ev-prev'),
        nav('Next →', link(r.next_offset), !r.hasMore, 'ev-next'),
        nav('Newest ⇥', link(Math.max(0, last - limit)), !r.hasMore && !types, 'ev-last'));
      const range = h('p', { class: 'muted', id: 'ev-range' });
      let firstShown = first, total = last;
      const describeRange = () => {
        range.textContent = tbody.rows.length ? 'Events #' + firstShown + '–#' + lastShown + ' of ' + fmtNum(total) + '.' : 'No events after #' + offset + '.';
      };
      describeRange();
      const followIn = h('input', { id: 'ev-follow', type: 'checkbox', checked: true });
      const liveBar = h('p', { class: 'live-bar', hidden: true }, h('label', { class: 'check' }, followIn, ' Follow new events'),
        h('span', { class: 'muted', id: 'ev-live-note', text: ' New events are added below as they are committed (up to 1000 rows; older rows leave the top).' }));
      panel.replaceChildren(form,
        range, liveBar,
        h('div', { class: 'table-wrap' }, h('table', { class: 'grid events' },
          h('caption', { class: 'sr-only', text: 'Events of session ' + id }),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'num', text: 'Seq' }), h('th', { scope: 'col', text: 'Time (UTC)' }),
            h('th', { scope: 'col', text: 'Type and data' }), h('th', { scope: 'col', text: 'Source' }))), tbody)),
        pager);
      main.dataset.loaded = '1';
      /* Live like the transcript: the page that reaches the session's end follows it over
       * SSE, from its last row, with the same types and include_raw; pages in the middle
       * stay still. With a types filter sequences skip, so gaps are not holes. */
      if (!r.hasMore) {
        liveBar.hidden = false;
        const live = new Live({
          path: base + '/events/sse', param: 'offset', last: lastShown, dense: !types,
          key: (ev) => ev.sequence,
          extra: Object.assign({}, raw ? { include_raw: 'true' } : {}, types ? { types } : {}),
          fill: async (after) => (await api(base + '/events?limit=1000&offset=' + after + (raw ? '&include_raw=true' : '') + (types ? '&types=' + enc(types) : ''))).events,
          onEvents: (news) => {
            for (const ev of news) tbody.append(evRow(ev));
            while (tbody.rows.length > Math.max(limit, 1000)) tbody.rows[0].remove();
            const l = news[news.length - 1];
            lastShown = l.sequence;
            total = Math.max(total, l.sequence);
            if (tbody.rows.length) firstShown = Number(tbody.rows[0].id.slice(3));
            describeRange();
            if (followIn.checked) tbody.rows[tbody.rows.length - 1].scrollIntoView({ block: 'nearest' });
            main.dataset.evLast = String(lastShown);
            main.dataset.evRows = String(tbody.rows.length);
          },
          onState: (st, txt) => { setLive(st, txt); main.dataset.evLive = st; },
        });
        live.start();
        window.__reelLive = live;
        disposers.push(() => live.close());
      }
      main.dataset.evLast = String(lastShown);
      main.dataset.evRows = String(tbody.rows.length);
      const target = params.get('focus');
      const row = target && $('#ev-' + CSS.escape(target));
      if (row) {
        row.classList.add('target');
        const d = $('details', row);
        d.open = true;
        $('summary', d).focus();
      }
    }

    return { dispose() { disposed = true; disposers.forEach((f) => f()); } };
  }

  /* ---- keyboard ---- */

  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target) || document.querySelector('dialog[open]')) return;
    const { path } = parseHash();
    const m = /^\/s\/([^/]+)/.exec(path);
    if (e.key === '/') {
      const f = document.querySelector('[data-filter]');
      if (f) { e.preventDefault(); f.focus(); f.select(); }
    } else if (e.key === 'j' || e.key === 'k') {
      const links = [...document.querySelectorAll('table.grid tbody tr:not([hidden]) th a, table.grid tbody tr:not([hidden]) summary, ol.timeline > li > * > summary, ol.timeline > li > article, ol.timeline > li > section')];
      if (!links.length) return;
      e.preventDefault();
      for (const l of links) if (!l.hasAttribute('tabindex') && !/^(A|SUMMARY)$/.test(l.tagName)) l.tabIndex = -1;
      let i = links.indexOf(document.activeElement);
      i = i < 0 ? (e.key === 'j' ? 0 : links.length - 1) : Math.max(0, Math.min(links.length - 1, i + (e.key === 'j' ? 1 : -1)));
      links[i].focus();
      links[i].scrollIntoView({ block: 'nearest' });
    } else if (m && e.key === 't') {
      location.hash = '#/s/' + m[1];
    } else if (m && e.key === 'e') {
      location.hash = '#/s/' + m[1] + '/events';
    }
  }

  /* ---- start ---- */

  document.addEventListener('DOMContentLoaded', () => {
    setupTokenDialog();
    window.addEventListener('hashchange', route);
    document.addEventListener('keydown', onKey);
    setInterval(refreshTimes, 30000);
    route();
  });
})();
