// ui.test.mjs -- the web inspector (/ui/) in headless chromium against a real `reel serve`.
// Run: tests/browser/run.sh (or `node --test tests/browser/` with playwright-core installed).
// Screenshots go to build/browser-artifacts/; UPDATE_DOCS_SCREENSHOTS=1 also refreshes
// docs/ui-*.png (sessions, session, timeline, search, events, overview, phone).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { ARTIFACTS, REEL, ROOT, Server, launch, message, shot, sleep, tmpdir, toolCall, waitUntil, watchErrors } from './lib.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { if (browser) await browser.close(); });

async function open(srv, hash, scheme = 'light') {
  const page = await browser.ctx.newPage();
  await page.emulateMedia({ colorScheme: scheme });
  const errors = watchErrors(page);
  await page.goto(srv.url + '/ui/' + hash);
  return { page, errors };
}

const liveState = (page) => page.locator('#live').getAttribute('data-state');

describe('static files', () => {
  const srv = new Server();
  before(() => srv.start());
  after(() => srv.dispose());

  test('GET /ui/ serves the page, its script and styles with a strict CSP', async () => {
    for (const [p, type] of [['/ui/', 'text/html'], ['/ui', 'text/html'], ['/ui/app.js', 'text/javascript'], ['/ui/style.css', 'text/css']]) {
      const r = await fetch(srv.url + p);
      assert.equal(r.status, 200, p);
      assert.ok(r.headers.get('content-type').startsWith(type), p);
      const csp = r.headers.get('content-security-policy');
      assert.match(csp, /default-src 'self'/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      const etag = r.headers.get('etag');
      assert.ok(etag, 'ETag on ' + p);
      const again = await fetch(srv.url + p, { headers: { 'If-None-Match': etag } });
      assert.equal(again.status, 304, p);
    }
    assert.equal((await fetch(srv.url + '/ui/nope.js')).status, 404);
    const js = await (await fetch(srv.url + '/ui/app.js')).text();
    assert.ok(!js.includes('innerHTML'), 'data is rendered with textContent only');
  });
});

describe('sessions list', () => {
  const srv = new Server();
  before(async () => {
    await srv.start();
    srv.runMock('demo-tools', 'tools');
    srv.runMock('demo-chat', 'hello there');
    srv.runMock('demo-permission', 'permission');
    await srv.append('notes', message('n1', 'user', 'a note'));
  });
  after(() => srv.dispose());

  test('lists sessions and follows the feed live', async () => {
    const { page, errors } = await open(srv, '#/');
    await page.waitForSelector('main[data-live="1"]');
    const rows = page.locator('table.sessions tbody tr');
    assert.equal(await rows.count(), 4);
    const row = page.locator('tr[data-id="notes"]');
    assert.equal((await row.locator('td.events').textContent()).trim(), '3');
    assert.equal(await liveState(page), 'live');

    // an append to a listed session updates its row
    await srv.append('notes', message('n2', 'assistant', 'more'));
    await waitUntil(page, () => document.querySelector('tr[data-id="notes"] td.events').textContent === '6');
    // a new session appears
    srv.runMock('demo-new', 'hi');
    await page.waitForSelector('tr[data-id="demo-new"]', { timeout: 5000 });
    const last = (await srv.get('/v1/sessions/demo-new')).event_count;
    await waitUntil(page, (n) => document.querySelector('tr[data-id="demo-new"] td.events')?.textContent === String(n), last);
    await waitUntil(page, () => document.querySelector('tr[data-id="demo-new"] .badge')?.textContent === 'ended ok');
    assert.equal(await page.locator('table.sessions tbody tr').first().getAttribute('data-id'), 'demo-new', 'the newest activity is on top');
    // appends by another process on the data directory (`reel ingest`) reach the page too
    const r = spawnSync(REEL, ['ingest', '--quiet', '--session', 'notes', '--data', srv.data, '--sync', 'none'],
      { input: message('n3', 'user', 'from reel ingest').map((e) => JSON.stringify(e)).join('\n') + '\n', encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    await waitUntil(page, () => document.querySelector('tr[data-id="notes"] td.events').textContent === '9');
    // the feed reconnects after a server restart and resumes after the last position
    await srv.restart();
    await srv.append('notes', message('n4', 'assistant', 'after a restart'));
    await waitUntil(page, () => document.querySelector('tr[data-id="notes"] td.events').textContent === '12', null, { timeout: 15000 });
    await waitUntil(page, () => document.querySelector('#live').dataset.state === 'live');
    assert.equal(await page.evaluate(() => window.__reelLive.stats.duplicates), 0);
    await sleep(1300); // the changed rows' highlight fades
    await shot(page, 'sessions-light');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot(page, 'sessions-dark');
    await page.emulateMedia({ colorScheme: 'light' });
    assert.deepEqual(errors.filter((e) => !/ERR_CONNECTION_REFUSED|Failed to load resource|EventSource/.test(e)), []);
    await page.close();
  });

  test('filters by status, agent and id prefix; pages with the cursor', async () => {
    for (let i = 0; i < 60; i++) await srv.append(`page-${String(i).padStart(2, '0')}`, [{ type: 'note', data: { i } }]);
    const { page } = await open(srv, '#/');
    await page.waitForSelector('main[data-live="1"]');
    const ids = () => page.locator('table.sessions tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
    let shown = await ids();
    assert.equal(shown.length, 50);
    assert.deepEqual(shown.slice(0, 3), ['page-59', 'page-58', 'page-57'], 'most recently active first');
    await page.getByRole('button', { name: 'Next →' }).click();
    await waitUntil(page, () => location.hash.includes('cursor='));
    await page.waitForSelector('main[data-loaded="1"] tr[data-id="page-00"]');
    shown = await ids();
    assert.equal(shown.length, 15);
    assert.deepEqual(shown.slice(0, 11), ['page-09', 'page-08', 'page-07', 'page-06', 'page-05', 'page-04', 'page-03', 'page-02', 'page-01', 'page-00', 'notes']);
    await page.getByRole('button', { name: '← Previous' }).click();
    await page.waitForSelector('tr[data-id="page-59"]');
    // server-side filters: status (applies on change), agent, id prefix
    await page.selectOption('#f-status', 'ended');
    await waitUntil(page, () => location.hash.includes('status=ended'));
    await page.waitForSelector('main[data-loaded="1"] tr[data-id="demo-chat"]');
    assert.equal(await page.locator('tr[data-id="notes"]').count(), 0, 'active sessions filtered out');
    assert.ok((await ids()).every((id) => id.startsWith('demo-')));
    await page.selectOption('#f-status', '');
    await page.fill('#f-agent', 'mock');
    await page.getByRole('button', { name: 'Apply' }).click();
    await waitUntil(page, () => location.hash.includes('agent=mock'));
    await page.waitForSelector('main[data-loaded="1"] tr[data-id="demo-tools"]');
    assert.deepEqual((await ids()).sort(), ['demo-chat', 'demo-new', 'demo-permission', 'demo-tools']);
    await page.fill('#f-agent', '');
    await page.fill('#f-find', 'page-0');
    await page.keyboard.press('Enter');
    await waitUntil(page, () => location.hash.includes('prefix=page-0'));
    await page.waitForSelector('main[data-loaded="1"] tr[data-id="page-00"]');
    assert.deepEqual(await ids(), ['page-09', 'page-08', 'page-07', 'page-06', 'page-05', 'page-04', 'page-03', 'page-02', 'page-01', 'page-00']);
    assert.match(await page.locator('#sessions-count').textContent(), /10 sessions \(id starting with "page-0"\)/);
    // a filter that matches nothing is not the empty-store page
    await page.fill('#f-find', 'zzz');
    await page.keyboard.press('Enter');
    await waitUntil(page, () => document.querySelector('#sessions-count').textContent.startsWith('No sessions'));
    assert.equal(await page.locator('#empty-store').count(), 0);
    await page.close();
  });

  test('keyboard: / focuses the filter, j/k move through rows, Enter opens', async () => {
    const { page } = await open(srv, '#/');
    await page.waitForSelector('main[data-live="1"]');
    await page.locator('body').click({ position: { x: 5, y: 700 } });
    await page.keyboard.press('/');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'f-find');
    await page.keyboard.press('Escape');
    await page.locator('h1').focus();
    await page.keyboard.press('j');
    await page.keyboard.press('j');
    const focused = await page.evaluate(() => document.activeElement.textContent);
    assert.equal(focused, 'page-58');
    await page.keyboard.press('Enter');
    await waitUntil(page, () => location.hash === '#/s/page-58');
    await page.waitForSelector('main[data-at]');
    await page.keyboard.press('e');
    await page.waitForSelector('#ev-range');
    await page.close();
  });

  test('controls have labels and the page has landmarks', async () => {
    const { page } = await open(srv, '#/');
    await page.waitForSelector('main[data-loaded="1"]');
    const unlabeled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map((el) => el.id || el.name));
    assert.deepEqual(unlabeled, []);
    assert.equal(await page.locator('main').count(), 1);
    assert.equal(await page.locator('h1').count(), 1);
    assert.equal(await page.locator('html').getAttribute('lang'), 'en');
    await page.close();
  });
});

describe('sessions list: outcomes, empty store, unreachable server', () => {
  const srv = new Server();
  before(() => srv.start());
  after(() => srv.dispose());

  test('an empty store shows how to add a first session, then the list fills live', async () => {
    const { page } = await open(srv, '#/');
    await page.waitForSelector('main[data-live="1"]');
    const empty = page.locator('#empty-store');
    assert.equal(await empty.count(), 1);
    const text = await empty.textContent();
    assert.ok(text.includes(`curl -X POST`) && text.includes(`${srv.url}/v1/sessions/first/events`), text);
    assert.ok(text.includes(`reel run --agent mock --session demo --server ${srv.url} -- tools`), text);
    await shot(page, 'sessions-empty');
    await srv.append('first', [{ type: 'note', data: { text: 'hello' } }]);
    await page.waitForSelector('tr[data-id="first"]', { timeout: 5000 });
    assert.equal(await empty.count(), 0);
    await page.close();
  });

  test('status with outcome: active, ended ok, ended with error, ended: terminated, deleted', async () => {
    srv.runMock('run-ok', 'tools');
    srv.runMock('run-done', 'hello');
    srv.runMock('run-failed', 'error', 1, true);
    await srv.append('run-killed', [{ type: 'session.started', data: {} }, { type: 'session.ended', data: { reason: 'terminated', terminated_by: 'runner' } }]);
    await srv.append('gone', [{ type: 'note', data: {} }]);
    assert.equal((await fetch(srv.url + '/v1/sessions/gone', { method: 'DELETE' })).status, 200);
    await srv.append('run-live', [{ type: 'session.started', data: {} }, ...message('m1', 'user', 'still going')]);
    const { page } = await open(srv, '#/');
    await page.waitForSelector('main[data-outcomes="1"]');
    const outcome = (id) => page.locator(`tr[data-id="${id}"]`).getAttribute('data-outcome');
    assert.equal(await outcome('run-ok'), 'ended ok');
    assert.equal(await outcome('run-failed'), 'ended with error');
    assert.equal(await outcome('run-killed'), 'ended: terminated');
    assert.equal(await outcome('gone'), 'deleted');
    assert.equal(await outcome('run-live'), 'active');
    assert.equal(await page.locator('tbody tr').first().getAttribute('data-id'), 'run-live');
    const cells = await page.locator('tr[data-id="run-ok"] td').allTextContents();
    assert.equal(cells[1], 'mock');
    assert.match(cells[8], /^\d+(\.\d)? (ms|s)$/, 'duration: ' + cells[8]);
    // model, turns, tokens and cost: the usage summary the record keeps (FORMAT.md 16)
    const rec = await srv.get('/v1/sessions/run-ok');
    assert.equal(rec.model, 'mock-model-1');
    assert.deepEqual(cells.slice(2, 6), [rec.model, String(rec.turns), String(rec.input_tokens + rec.output_tokens), '$' + Number(rec.cost_usd).toFixed(4)]);
    assert.equal(await page.locator('tr[data-id="run-ok"] td.tokens').getAttribute('title'), `${rec.input_tokens} in · ${rec.output_tokens} out`);
    assert.deepEqual((await page.locator('tr[data-id="run-killed"] td').allTextContents()).slice(2, 6), ['–', '–', '–', '–'], 'no usage: dashes');
    // a live usage event updates the row (the record is read again after activity)
    await srv.append('run-live', [{ type: 'usage', data: { turn_end: true, input_tokens: 1500, output_tokens: 700, cost_usd: 0.25 } }]);
    await waitUntil(page, () => document.querySelector('tr[data-id="run-live"] td.tokens')?.textContent === '2.2k');
    assert.deepEqual((await page.locator('tr[data-id="run-live"] td').allTextContents()).slice(3, 6), ['1', '2.2k', '$0.2500']);
    // a live session that ends with an error turns red without a reload, and moves to the top
    await srv.append('run-ok', [{ type: 'session.started', data: {} }, { type: 'session.ended', data: { reason: 'error' } }]);
    await waitUntil(page, () => document.querySelector('tr[data-id="run-ok"]').dataset.outcome === 'ended with error');
    await waitUntil(page, () => document.querySelector('tbody tr').dataset.id === 'run-ok');
    await srv.append('run-live', message('m2', 'assistant', 'working'));
    await waitUntil(page, () => document.querySelector('tbody tr').dataset.id === 'run-live');
    await sleep(1300);
    await shot(page, 'sessions-outcomes', 'ui-sessions.png');
    await page.close();
  });

  test('a server that cannot be reached: an error with a Retry button', async () => {
    const { page: p2 } = await open(srv, '#/?prefix=run-');
    await p2.waitForSelector('main[data-loaded="1"]');
    // a route to a server that is down: kill it, then navigate within the page
    await srv.stop();
    await p2.evaluate(() => { location.hash = '#/?prefix=run-o'; });
    await p2.waitForSelector('#retry', { timeout: 10000 });
    assert.match(await p2.locator('.problem').textContent(), /cannot reach the server/);
    await shot(p2, 'sessions-unreachable');
    await srv.start();
    await p2.click('#retry');
    await p2.waitForSelector('main[data-loaded="1"] tr[data-id="run-ok"]');
    await p2.close();
  });
});

describe('10,000 sessions', () => {
  const srv = new Server();
  const N = 10000;
  before(async () => {
    await srv.start();
    let next = 0;
    const worker = async () => {
      while (next < N) {
        const i = next++;
        await srv.append(`bulk-${String(i).padStart(5, '0')}`, [{ type: 'note', data: { i } }]);
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
  });
  after(() => srv.dispose());

  test('the first page is quick, the cursor pages through, the prefix search finds one', async () => {
    const t0 = Date.now();
    const { page } = await open(srv, '#/');
    await page.waitForSelector('main[data-loaded="1"] tbody tr');
    const firstPaint = Date.now() - t0;
    await page.waitForSelector('main[data-live="1"]');
    const seen = new Set();
    for (let p = 0; p < 4; p++) {
      const ids = await page.locator('table.sessions tbody tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
      assert.equal(ids.length, 50);
      for (const id of ids) { assert.ok(!seen.has(id), 'no session twice: ' + id); seen.add(id); }
      assert.ok(ids.every((id) => id.startsWith('bulk-')));
      if (p < 3) {
        const before = ids[0];
        await page.getByRole('button', { name: 'Next →' }).click();
        await waitUntil(page, (b) => document.querySelector('main[data-loaded="1"] tbody tr') && document.querySelector('tbody tr').dataset.id !== b, before);
      }
    }
    const t1 = Date.now();
    await page.fill('#f-find', 'bulk-04242');
    await page.keyboard.press('Enter');
    await waitUntil(page, () => location.hash.includes('prefix=bulk-04242'));
    await page.waitForSelector('main[data-loaded="1"] tr[data-id="bulk-04242"]');
    const search = Date.now() - t1;
    assert.equal(await page.locator('table.sessions tbody tr').count(), 1);
    const mem = await page.evaluate(() => (performance.memory ? performance.memory.usedJSHeapSize : 0));
    fs.writeFileSync(path.join(ARTIFACTS, 'sessions-10k.txt'),
      `sessions: ${N}\nfirst page painted: ${firstPaint} ms\nprefix search: ${search} ms\nJS heap: ${(mem / 1048576).toFixed(1)} MiB\n`);
    await page.close();
  });
});

describe('session view', () => {
  const srv = new Server();
  before(async () => {
    await srv.start();
    srv.runMock('demo-tools', 'tools');
    srv.runMock('demo-permission', 'permission');
    srv.runMock('demo-error', 'error', 1, true);
    srv.runMock('demo-markdown', 'markdown');
  });
  after(() => srv.dispose());

  test('renders the transcript: messages, tool calls with collapsed results, permissions, errors', async () => {
    const { page, errors } = await open(srv, '#/s/demo-tools');
    await page.waitForSelector('main[data-at="20"]');
    const tools = page.locator('li.k-item details.tool');
    assert.equal(await tools.count(), 2);
    assert.equal(await tools.first().getAttribute('open'), null, 'tool calls start collapsed');
    await tools.first().locator('summary').click();
    assert.match(await tools.first().locator('.tool-body').textContent(), /README\.md/);
    assert.match(await page.locator('ol.timeline').textContent(), /I'll look at the files first\./);
    assert.equal(await tools.nth(1).locator('.badge').textContent(), 'error');
    // a sequence number links to that event in the raw view, opened
    await page.locator('a.seq', { hasText: '#12' }).first().click();
    await page.waitForSelector('#ev-12.target details[open]');
    // Markdown is rendered (as text nodes only); native lines are hidden unless asked
    await page.goto(srv.url + '/ui/#/s/demo-markdown');
    await page.waitForSelector('.md .md-h1');
    assert.equal(await page.locator('.md .md-h1').textContent(), 'Build report');
    assert.equal(await page.locator('.md strong').first().textContent(), 'passed');
    assert.equal(await page.locator('.md table tbody tr').count(), 2);
    assert.match(await page.locator('.md pre code').textContent(), /int main\(void\)/);
    assert.match(await page.locator('#tsummary').textContent(), /native lines hidden/);
    assert.equal(await page.locator('li.k-other').count(), 0);
    await page.check('#opt-native');
    await page.waitForSelector('li.k-other');
    await page.uncheck('#opt-native');
    await page.uncheck('#opt-md');
    assert.match(await page.locator('article.msg.role-assistant .text').first().textContent(), /^# Build report/);
    await page.check('#opt-md');
    await page.goto(srv.url + '/ui/#/s/demo-permission');
    await page.waitForSelector('section.perm');
    await page.goto(srv.url + '/ui/#/s/demo-error');
    await page.waitForSelector('section.err');
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('follows a live run, and reconnects after a server restart with no gap or duplicate', async () => {
    await srv.append('live', message('u1', 'user', 'start'));
    const { page, errors } = await open(srv, '#/s/live');
    await page.waitForSelector('main[data-at="3"]');
    await waitUntil(page, () => document.querySelector('#live').dataset.state === 'live');

    // a live run: events appear while the page is open
    await srv.append('live', [...message('a1', 'assistant', 'first answer'), ...toolCall('t1', 'c1', 'Bash', { command: 'make test' }, 'ok\n'.repeat(40))]);
    await waitUntil(page, () => document.querySelector('main').dataset.lastSeq === '10');
    await page.waitForSelector('text=first answer');
    await page.locator('details.tool > summary').click();
    await page.waitForSelector('details.tool details.long', { state: 'attached' });  // 40-line output collapsed

    // stream a message delta by delta
    await srv.append('live', [{ type: 'item.started', data: { item_id: 'a2', kind: 'message', role: 'assistant' } }]);
    for (const w of ['Streaming ', 'word ', 'by ', 'word.']) await srv.append('live', [{ type: 'item.delta', data: { item_id: 'a2', delta: w } }]);
    await page.waitForSelector('text=Streaming word by word.');

    // restart the server while the page is open; append while it is down is impossible,
    // so append right after it is back, before the browser reconnects
    await srv.stop();
    await waitUntil(page, () => document.querySelector('#live').dataset.state === 'wait', null, { timeout: 10000 });
    await srv.start();
    await srv.append('live', [{ type: 'item.completed', data: { item_id: 'a2', kind: 'message', role: 'assistant' } }, ...message('a3', 'assistant', 'after the restart')]);
    await page.waitForSelector('text=after the restart', { timeout: 15000 });
    await waitUntil(page, () => document.querySelector('#live').dataset.state === 'live');
    await srv.append('live', message('a4', 'assistant', 'and once more'));
    await page.waitForSelector('text=and once more');

    const last = (await srv.get('/v1/sessions/live')).last_sequence;
    const ds = await page.evaluate(() => Object.assign({}, document.querySelector('main').dataset));
    assert.equal(Number(ds.lastSeq), last);
    assert.equal(Number(ds.received), last - 3, 'every event after the first page load, once');
    assert.equal(Number(ds.duplicates), 0);
    assert.equal(Number(ds.gaps), 0);
    assert.ok(Number(ds.reconnects) >= 1);
    // the rendered transcript equals the server's projection
    const t = await srv.get('/v1/sessions/live/transcript');
    const texts = await page.locator('article.msg .text').allTextContents();
    assert.deepEqual(texts, t.items.filter((i) => i.kind === 'message').map((i) => i.text));
    for (const w of ['after the restart', 'and once more']) assert.equal(texts.filter((x) => x === w).length, 1);
    assert.deepEqual(errors.filter((e) => !/ERR_CONNECTION_REFUSED|Failed to load resource|EventSource/.test(e)), []);
    await page.close();
  });

  test('screenshot of a live session with tool calls', async () => {
    const run = srv.runMockAsync('demo-live', 'tools', 150);
    const { page } = await open(srv, '#/s/demo-live');
    await page.waitForSelector('main[data-at]', { timeout: 10000 });
    // mid-run: the second tool call has its result, the last answer is still to come
    await page.waitForSelector('details.tool >> nth=1 >> .badge:text("error")', { timeout: 10000 });
    await page.locator('details.tool > summary').first().click();
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'session-light', 'ui-session.png');
    await page.emulateMedia({ colorScheme: 'dark' });
    await shot(page, 'session-dark');
    await run;
    // after the run: the header agrees with the server's record
    const rec = await srv.get('/v1/sessions/demo-live');
    await waitUntil(page, (n) => document.querySelector('dl.meta')?.textContent.includes('Events' + n), String(rec.event_count));
    await waitUntil(page, () => document.querySelector('dl.meta .badge')?.textContent === 'ended ok');
    await page.close();
  });

  test('ACP envelopes: the transcript is fetched again as they arrive', async () => {
    const lines = fs.readFileSync(path.join(ROOT, 'tests/cases/replay/acp-envelopes/events.jsonl'), 'utf8')
      .split('\n').filter(Boolean).map((l) => JSON.parse(l));
    await srv.append('acp', lines.slice(0, 3));
    const { page, errors } = await open(srv, '#/s/acp');
    await page.waitForSelector('main[data-at="3"]');
    await srv.append('acp', lines.slice(3));
    await page.waitForSelector(`main[data-at="${lines.length}"]`);
    const t = await srv.get('/v1/sessions/acp/transcript');
    const texts = await page.locator('article.msg .text').allTextContents();
    assert.deepEqual(texts, t.items.filter((i) => i.kind === 'message').map((i) => i.text));
    assert.equal(await page.locator('details.tool').count(), t.items.filter((i) => i.kind === 'tool_call').length);
    assert.equal(await page.locator('section.perm').count(), t.permissions.length);
    if (t.plan) await page.waitForSelector('details.plan');
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('raw events view pages by offset and shows the event JSON', async () => {
    const evs = [];
    for (let i = 1; i <= 250; i++) evs.push({ type: 'tick', source: 'test', data: { i } });
    await srv.append('many', evs);
    const { page } = await open(srv, '#/s/many/events?offset=0&limit=100');
    await page.waitForSelector('main[data-loaded="1"] #ev-range');
    assert.equal(await page.locator('#ev-range').textContent(), 'Events #1–#100 of 250.');
    await page.click('#ev-next');
    await waitUntil(page, () => document.querySelector('#ev-range')?.textContent === 'Events #101–#200 of 250.');
    await page.click('#ev-last');
    await waitUntil(page, () => document.querySelector('#ev-range')?.textContent === 'Events #151–#250 of 250.');
    const row = page.locator('#ev-250');
    await row.locator('summary').click();
    const json = JSON.parse(await row.locator('pre').textContent());
    assert.equal(json.sequence, 250);
    assert.deepEqual(json.data, { i: 250 });
    await page.click('#ev-prev');
    await waitUntil(page, () => document.querySelector('#ev-range')?.textContent === 'Events #51–#150 of 250.');
    await shot(page, 'events-light');
    await page.close();
  });

  test('the events view is live at the newest page, with raw and native lines', async () => {
    await srv.append('evlive', [{ type: 'session.started', source: 'runner', data: { agent: 'claude' } },
      { type: 'item.delta', source: 'agent', data: { item_id: 'x', delta: 'hi' }, raw: { type: 'stream_event', n: 1 } }]);
    const { page, errors } = await open(srv, '#/s/evlive/events?raw=1');
    await page.waitForSelector('main[data-loaded="1"][data-ev-live="live"]');
    assert.equal(await page.locator('#ev-range').textContent(), 'Events #1–#2 of 2.');
    assert.match(await page.locator('#ev-2 .raw').textContent(), /"type":"stream_event"/);
    // new events arrive without a reload: a native line (marked) and an event with its raw line
    await srv.append('evlive', [{ type: 'agent.native', source: 'agent', data: { type: 'system', subtype: 'hook' }, raw: { type: 'system', subtype: 'hook' } },
      { type: 'item.delta', source: 'agent', data: { item_id: 'x', delta: ' there' }, raw: '{"type":"stream_event","n":2}' }]);
    await page.waitForSelector('#ev-4');
    assert.equal(await page.locator('#ev-range').textContent(), 'Events #1–#4 of 4.');
    assert.equal(await page.locator('#ev-3').getAttribute('class'), 'native');
    assert.equal(await page.locator('#ev-3 .badge.native').textContent(), 'native');
    assert.match(await page.locator('#ev-3 .raw').textContent(), /"subtype":"hook"/);
    assert.match(await page.locator('#ev-4 .raw code').textContent(), /^\{"type":"stream_event","n":2\}$/);
    // across a server restart: no gap, no duplicate
    await srv.restart();
    await srv.append('evlive', Array.from({ length: 30 }, (_, i) => ({ type: 'tick', source: 'test', data: { i } })));
    await page.waitForSelector('#ev-34', { timeout: 15000 });
    const seqs = await page.locator('table.events tbody tr').evaluateAll((trs) => trs.map((tr) => Number(tr.id.slice(3))));
    assert.deepEqual(seqs, Array.from({ length: 34 }, (_, i) => i + 1));
    assert.equal(await page.evaluate(() => window.__reelLive.stats.duplicates), 0);
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'events-live', 'ui-events.png');
    // a page in the middle stays still; a types filter follows only those types
    await page.goto(srv.url + '/ui/#/s/evlive/events?offset=0&limit=20');
    await page.waitForSelector('main[data-loaded="1"] #ev-range');
    assert.equal(await page.locator('.live-bar').isHidden(), true);
    await page.goto(srv.url + '/ui/#/s/evlive/events?types=note');
    await page.waitForSelector('main[data-loaded="1"][data-ev-live="live"]');
    await srv.append('evlive', [{ type: 'tick', data: {} }, { type: 'note', data: { text: 'only me' } }]);
    await page.waitForSelector('#ev-36');
    assert.equal(await page.locator('table.events tbody tr').count(), 1);
    assert.deepEqual(errors.filter((e) => !/ERR_CONNECTION_REFUSED|Failed to load resource|EventSource/.test(e)), []);
    await page.close();
  });

  test('export downloads the zstd export; restore copies the replay text', async () => {
    await browser.ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: srv.url });
    const { page } = await open(srv, '#/s/demo-tools');
    await page.waitForSelector('main[data-at]');
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-btn')]);
    assert.equal(dl.suggestedFilename(), 'demo-tools.jsonl.zst');
    const dir = tmpdir('reel-ui-dl-');
    const file = path.join(dir, 'x.jsonl.zst');
    await dl.saveAs(file);
    const bytes = fs.readFileSync(file);
    assert.deepEqual([...bytes.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], 'zstd magic');
    const z = spawnSync('zstd', ['-dc', file], { encoding: 'utf8' });
    fs.rmSync(dir, { recursive: true, force: true });
    if (z.status === 0) assert.equal(z.stdout.trim().split('\n').filter((l) => l.includes('"sequence"')).length, 20);

    await page.click('#restore-btn');
    await waitUntil(page, () => document.querySelector('main').dataset.restoreChars);
    const expected = (await srv.get('/v1/sessions/demo-tools/restore')).replay_text;
    const got = await page.evaluate(async () => {
      const d = document.querySelector('#text-dialog');
      return d.open ? document.querySelector('#text-area').value : navigator.clipboard.readText();
    });
    assert.equal(got, expected);
    assert.match(got, /^Previous session history is replayed below/);
    await page.close();
  });
});

describe('large sessions', () => {
  const srv = new Server();
  const N = 100000;
  before(async () => {
    // 100k events (25k items) ingested directly into the data directory, before serving
    const lines = [];
    for (let i = 0; i < N / 4; i++) {
      const id = 'm' + i;
      lines.push(JSON.stringify({ type: 'item.started', data: { item_id: id, kind: 'message', role: i % 2 ? 'assistant' : 'user' } }));
      lines.push(JSON.stringify({ type: 'item.delta', data: { item_id: id, delta: 'message number ' + i + ' ' } }));
      lines.push(JSON.stringify({ type: 'item.delta', data: { item_id: id, delta: 'with a second part.' } }));
      lines.push(JSON.stringify({ type: 'item.completed', data: { item_id: id, kind: 'message' } }));
    }
    const r = spawnSync(REEL, ['ingest', '--session', 'big', '--data', srv.data, '--sync', 'none'], { input: lines.join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 26 });
    assert.equal(r.status, 0, r.stderr);
    await srv.start();
  });
  after(() => srv.dispose());

  test('a 100k-event session renders the newest items and pages back', async () => {
    const t0 = Date.now();
    const { page, errors } = await open(srv, '#/s/big');
    await page.waitForSelector(`main[data-at="${N}"] ol.timeline li.entry time.at`, { timeout: 60000 });
    const ms = Date.now() - t0;
    const heap = async () => {
      const cdp = await page.context().newCDPSession(page);
      await cdp.send('HeapProfiler.collectGarbage');
      await cdp.send('Performance.enable');
      const m = await cdp.send('Performance.getMetrics');
      await cdp.detach();
      const get = (k) => (m.metrics.find((x) => x.name === k) || {}).value || 0;
      return { js: get('JSHeapUsedSize'), nodes: get('Nodes') };
    };
    const mem = await heap();
    assert.equal(await page.locator('ol.timeline > li.entry').count(), 200);
    assert.match(await page.locator('ol.timeline > li.entry').last().textContent(), /message number 24999 with a second part\./);
    await shot(page, 'large-session-light');
    await page.click('#earlier');
    await waitUntil(page, () => document.querySelectorAll('ol.timeline > li.entry').length === 400);
    // jump to an early sequence: the window moves there (and back with the deep link)
    const tj = Date.now();
    await page.fill('#t-seq', '42');
    await page.click('.tjump button');
    await page.waitForSelector('main[data-target="41"] li.entry.target[data-seq="41"] time.at');
    const jumpMs = Date.now() - tj;
    assert.match(await page.evaluate(() => location.hash), /^#\/s\/big\?seq=42$/);
    // search across all 25,000 entries
    const ts = Date.now();
    await page.fill('#t-search', 'number 12345 ');
    await waitUntil(page, () => document.querySelector('main').dataset.filtered === '1');
    const searchMs = Date.now() - ts;
    assert.match(await page.locator('li.entry').textContent(), /message number 12345 with/);
    await page.fill('#t-search', '');
    await waitUntil(page, () => document.querySelector('main').dataset.filtered === '');
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.writeFileSync(path.join(ARTIFACTS, 'large-session.txt'),
      `100k events (25k entries): transcript with times painted ${ms} ms after navigation; JS heap ${(mem.js / 1048576).toFixed(1)} MiB, ${mem.nodes} DOM nodes (after GC)\n` +
      `jump to #42: ${jumpMs} ms; search over 25k entries: ${searchMs} ms (200 ms of it the typing debounce)\n`);
    // live appends still arrive
    await page.check('#follow');
    await srv.append('big', message('tail', 'assistant', 'the newest one'));
    await page.waitForSelector('text=the newest one');
    // the events tab opens on the newest page
    await page.locator('h1').focus();
    await page.keyboard.press('e');
    await waitUntil(page, () => document.querySelector('#ev-range')?.textContent === 'Events #99904–#100003 of 100,003.');
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('session timeline', () => {
  const srv = new Server();
  const ev = (type, data) => ({ type, source: 'agent', data });
  before(async () => {
    await srv.start();
    // run 1: a prompt, a tool call that fails after ~150 ms, a refused permission, an error
    await srv.append('tl', [ev('session.started', { model: 'm-1' }), ...message('u1', 'user', 'list the files')]);
    await srv.append('tl', toolCall('t1', 'c1', 'Bash', { command: 'ls /nope' }, 'ls: cannot access', true).slice(0, 2));
    await sleep(150);
    await srv.append('tl', toolCall('t1', 'c1', 'Bash', { command: 'ls /nope' }, 'ls: cannot access', true).slice(2));
    await srv.append('tl', [ev('permission.requested', { permission_id: 'p1', action: 'Bash', input: { command: 'rm -rf /' } }),
      ev('permission.resolved', { permission_id: 'p1', status: 'reject' }),
      ev('error', { message: 'model API answered 500', code: 'api_error' }),
      ev('usage', { turn_end: true, input_tokens: 100, output_tokens: 20 }),
      ev('session.ended', { reason: 'error' })]);
    // run 2 (resumed): a tool call that succeeds after ~60 ms
    await srv.append('tl', [ev('session.started', { model: 'm-1' }), ...message('u2', 'user', 'try again'),
      ...toolCall('t2', 'c2', 'Read', { file_path: 'README.md' }, '# readme').slice(0, 2)]);
    await sleep(60);
    await srv.append('tl', [...toolCall('t2', 'c2', 'Read', { file_path: 'README.md' }, '# readme').slice(2),
      ...message('a2', 'assistant', 'The **README** says `readme`.'),
      ev('usage', { turn_end: true, input_tokens: 50, output_tokens: 10 }),
      ev('session.ended', { reason: 'completed' })]);
  });
  after(() => srv.dispose());

  test('times, tool durations, turns and runs separated, problems in a gutter', async () => {
    const { page, errors } = await open(srv, '#/s/tl');
    await page.waitForSelector('main[data-at] li.entry time.at');
    const entries = page.locator('ol.timeline > li.entry');
    const n = await entries.count();
    assert.equal(await page.locator('ol.timeline > li.entry time.at').count(), n, 'every entry has its time');
    const title = await page.locator('li.entry time.at').first().getAttribute('title');
    assert.match(title, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC · event #2$/);
    const durs = await page.locator('li.entry .dur').allTextContents();
    assert.equal(durs.length, 2);
    const ms = durs.map((d) => (d.endsWith(' ms') ? parseFloat(d) : parseFloat(d) * 1000));
    assert.ok(ms[0] >= 150 && ms[0] < 5000, 'first tool ~150 ms: ' + durs[0]);
    assert.ok(ms[1] >= 60 && ms[1] < 5000, 'second tool ~60 ms: ' + durs[1]);
    await page.waitForSelector('main[data-marks="4"] ol.timeline > li.sep');
    const seps = await page.locator('ol.timeline > li.sep').allTextContents();
    assert.equal(seps.length, 4);
    assert.match(seps[0], /^Run 1 started/);
    assert.match(seps[1], /^End of turn 1 · 100 in, 20 out/);
    assert.match(seps[2], /^Run 2 started/);
    assert.match(seps[3], /^End of turn 2/);
    // the header's status is the outcome: run 2 ended completed
    await waitUntil(page, () => document.querySelector('dl.meta .badge')?.textContent === 'ended ok');
    // problems: the failed tool call, the refused permission, the error
    assert.equal(await page.locator('main').getAttribute('data-problems'), '3');
    assert.equal(await page.locator('li.entry.flagged').count(), 3);
    assert.equal(await page.locator('#gutter .gmark').count(), 3);
    const flagged = await page.locator('li.entry.flagged').evaluateAll((ls) => ls.map((l) => l.dataset.seq));
    await page.click('#prob-next');
    await page.waitForSelector(`li.entry.target[data-seq="${flagged[0]}"]`);
    await page.click('#prob-next');
    await page.waitForSelector(`li.entry.target[data-seq="${flagged[1]}"]`);
    await page.click('#prob-prev');
    await page.waitForSelector(`li.entry.target[data-seq="${flagged[0]}"]`);
    await page.locator('#gutter .gmark').nth(2).click();
    await page.waitForSelector(`li.entry.target[data-seq="${flagged[2]}"]`);
    await page.locator('li.entry.flagged details.tool summary').first().click();
    await page.setViewportSize({ width: 1200, height: 1350 });  // the error and both runs in one picture
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'timeline', 'ui-timeline.png');
    await page.setViewportSize({ width: 390, height: 800 });
    await shot(page, 'timeline-phone');
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no sideways scroll on a phone');
    await page.setViewportSize({ width: 1200, height: 820 });
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('the current run and turn stay labelled when their separators are above the window', async () => {
    // one run, 450 messages, a turn end after every 50: the newest 200 entries start
    // long after the run's separator and several turn ends
    const evs = [ev('session.started', { model: 'm-2' })];
    for (let i = 0; i < 450; i++) {
      evs.push(...message('s' + i, i % 2 ? 'assistant' : 'user', 'line ' + i));
      if (i % 50 === 49) evs.push(ev('usage', { turn_end: true, input_tokens: 10, output_tokens: 1 }));
    }
    await srv.append('tl-long', evs);
    const ends = (await srv.get('/v1/sessions/tl-long/events?types=usage&limit=100')).events.map((e) => e.sequence);
    const { page, errors } = await open(srv, '#/s/tl-long');
    await page.waitForSelector('main[data-marks="10"] #tsticky:not([hidden])');
    assert.equal(await page.locator('ol.timeline > li.sep-run').count(), 0, 'the run separator is above the window');
    const check = async () => {
      const st = await page.locator('#tsticky').evaluate((el) => ({ ...el.dataset, text: el.textContent, top: el.getBoundingClientRect().top, bar: document.querySelector('.top').getBoundingClientRect().bottom }));
      const seq = Number(st.seq);
      const turn = 1 + ends.filter((s) => s < seq).length;
      assert.equal(st.run, '1');
      assert.equal(st.turn, String(turn), `the entry at #${seq} is in turn ${turn}`);
      assert.match(st.text, new RegExp('^Run 1 · started \\d\\d:\\d\\d:\\d\\d\\.\\d{3} · #1Turn ' + turn));
      assert.ok(Math.abs(st.top - st.bar) <= 2, 'sticks under the top bar');
      return turn;
    };
    const atBottom = await check();
    assert.equal(atBottom, 9, 'the newest entries on screen are in turn 9 (8 ended before them)');
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.evaluate(() => document.querySelector('ol.timeline').scrollIntoView());
    await waitUntil(page, () => Number(document.querySelector('#tsticky').dataset.seq) < 1000);
    const atTop = await check();
    assert.ok(atTop < atBottom, `turn ${atTop} at the top of the window`);
    await shot(page, 'timeline-sticky');
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('search by text and tool name, type filter, jump to a sequence, deep link survives a reload', async () => {
    const { page } = await open(srv, '#/s/tl');
    await page.waitForSelector('main[data-at] li.entry time.at');
    const seqs = () => page.locator('ol.timeline > li.entry').evaluateAll((ls) => ls.map((l) => Number(l.dataset.seq)));
    await page.fill('#t-search', 'bash');
    await waitUntil(page, () => document.querySelector('main').dataset.filtered === '2');
    assert.equal(await page.locator('ol.timeline > li.sep').count(), 0);
    assert.match(await page.locator('#tsummary').textContent(), /^2 of \d+ entries match/);
    // the matched words are marked inside the entries
    const hits = await page.locator('ol.timeline mark.hit').allTextContents();
    assert.ok(hits.length >= 2, 'marks: ' + hits.length);
    assert.ok(hits.every((t) => t.toLowerCase() === 'bash'), hits.join());
    assert.equal(await page.locator('main').getAttribute('data-hits'), String(hits.length));
    assert.equal(await page.locator('li.entry details.tool[open]').count(), 0, 'a hit in the summary opens nothing');
    // a match inside a collapsed tool output opens it, so the mark can be seen
    await page.fill('#t-search', 'cannot access');
    await waitUntil(page, () => document.querySelector('main').dataset.filtered === '1');
    await page.waitForSelector('li.entry details.tool[open] pre mark.hit');
    assert.equal(await page.locator('li.entry mark.hit').first().isVisible(), true);
    // opened for the search only: with the search cleared the call is collapsed again
    await page.fill('#t-search', '');
    await waitUntil(page, () => document.querySelector('main').dataset.filtered === '');
    assert.equal(await page.locator('li.entry details.tool[open]').count(), 0);
    await page.fill('#t-search', 'bash');
    await waitUntil(page, () => document.querySelector('main').dataset.filtered === '2' && document.querySelectorAll('mark.hit').length > 0);
    await shot(page, 'search', 'ui-search.png');
    await page.fill('#t-search', 'readme');
    await waitUntil(page, () => document.querySelector('main').dataset.filtered === '2');  // the Read call and the reply
    await page.fill('#t-search', '');
    await page.selectOption('#t-type', 'error');
    await waitUntil(page, () => document.querySelector('main').dataset.filtered === '1');
    assert.equal(await page.locator('ol.timeline > li.entry.k-error').count(), 1);
    await page.selectOption('#t-type', 'tool_call');
    await waitUntil(page, () => document.querySelector('main').dataset.filtered === '2');
    await page.selectOption('#t-type', '');
    await waitUntil(page, () => document.querySelector('main').dataset.filtered === '');
    // jump to the sequence of the permission's resolution: the permission entry
    const perm = Number(await page.locator('li.entry.k-permission').getAttribute('data-seq'));
    await page.fill('#t-seq', String(perm + 1));
    await page.keyboard.press('Enter');
    await page.waitForSelector(`li.entry.k-permission.target`);
    assert.equal(await page.evaluate(() => location.hash), `#/s/tl?seq=${perm + 1}`);
    await page.reload();
    await page.waitForSelector(`main[data-target="${perm}"] li.entry.k-permission.target`);
    assert.equal(await page.locator('#follow').isChecked(), false);
    assert.ok((await seqs()).includes(perm));
    await page.close();
  });
});

describe('store overview', () => {
  const srv = new Server();
  before(async () => {
    await srv.start();
    srv.runMock('ov-done', 'tools');
    for (let i = 0; i < 3; i++) await srv.append(`ov-live-${i}`, [{ type: 'session.started', data: {} }]);
  });
  after(() => srv.dispose());

  test('events/s and appends/s from two /metrics scrapes, sessions active, disk used, a live SVG chart', async () => {
    const { page, errors } = await open(srv, '#/overview?every=0.5');
    await page.waitForSelector('main[data-loaded="1"]');
    // a steady load: 10 appends of 5 events a second
    let stop = false, sent = 0;
    const load = (async () => {
      while (!stop) {
        await srv.append('ov-live-0', Array.from({ length: 5 }, (_, i) => ({ type: 'note', data: { i } })));
        sent += 5;
        await sleep(100);
      }
    })();
    await waitUntil(page, () => Number(document.querySelector('main').dataset.samples || 0) >= 8 && Number(document.querySelector('main').dataset.eventsRate) > 0, null, { timeout: 15000 });
    stop = true;
    await load;
    const rate = Number(await page.locator('main').getAttribute('data-events-rate'));
    assert.ok(rate > 5 && rate < 200, 'events/s near the load (about 40/s): ' + rate);
    assert.equal(await page.locator('main').getAttribute('data-active'), '3');
    assert.equal((await page.locator('#ov-active .card-value').textContent()).trim(), '3');
    const m = await (await fetch(srv.url + '/metrics')).text();
    const used = Number(/^reel_store_used_bytes (\d+)$/m.exec(m)[1]);
    assert.ok(used > 0);
    assert.match(await page.locator('#ov-disk .card-value').textContent(), /^\d+(\.\d)? (KiB|MiB|GiB)$/);
    assert.ok(await page.locator('svg.chart polyline.s-events').count() === 1, 'the chart draws the events line');
    // sink lag: this server has no reel_sink_lag_events series, so the section stays hidden
    assert.doesNotMatch(m, /^reel_sink_lag_events\{/m);
    assert.equal(await page.locator('main').getAttribute('data-sinks'), '0');
    assert.equal(await page.locator('#ov-sinks').isHidden(), true);
    assert.equal(await page.locator('script[src^="http"], link[href^="http"]').count(), 0, 'nothing from other sites');
    await shot(page, 'overview', 'ui-overview.png');
    // the server goes away: an error with Retry, and the page recovers
    await srv.stop();
    await page.waitForSelector('#retry', { timeout: 10000 });
    await srv.start();
    // Retry, unless the page's own next scrape (every 0.5 s here) got there first
    await page.click('#retry', { timeout: 1000 }).catch(() => {});
    await waitUntil(page, () => !document.querySelector('#retry') && document.querySelector('#live').dataset.state === 'live');
    assert.deepEqual(errors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(e)), []);
    await page.close();
  });
});

describe('store overview: sink lag', () => {
  const srv = new Server();
  before(() => srv.start());
  after(() => srv.dispose());

  // Sinks report their position with POST /v1/sinks/{name} (the PostgreSQL sink's branch,
  // s6-sink); a server without that route answers 404 and the test is skipped, so it runs
  // as soon as the branches are merged. Real server, real metric: nothing synthetic.
  test('one card per reel_sink_lag_events series, hidden when there is none', async (t) => {
    const report = (name, position) => fetch(`${srv.url}/v1/sinks/${name}`, { method: 'POST', headers: srv.headers(), body: JSON.stringify({ position }) });
    const probe = await report('probe', 0);
    if (probe.status === 404 || probe.status === 405) { t.skip('this server has no /v1/sinks (the sink branch is not merged)'); return; }
    assert.equal(probe.status, 200, await probe.text());
    assert.equal((await fetch(`${srv.url}/v1/sinks/probe`, { method: 'DELETE', headers: srv.headers() })).status, 204);
    const { page, errors } = await open(srv, '#/overview?every=0.5');
    await page.waitForSelector('main[data-loaded="1"][data-sinks="0"]');
    assert.equal(await page.locator('#ov-sinks').isHidden(), true);
    const r = await srv.append('sunk', Array.from({ length: 10 }, (_, i) => ({ type: 'note', data: { i } })));
    assert.equal((await report('pg-main', r.position - 7)).status, 200);
    assert.equal((await report('pg-b', r.position)).status, 200);
    await page.waitForSelector('main[data-sinks="2"] #ov-sinks:not([hidden])');
    const m = await (await fetch(srv.url + '/metrics', { headers: srv.headers() })).text();
    const lag = (name) => Number(new RegExp('^reel_sink_lag_events\\{sink="' + name + '"\\} (\\d+)$', 'm').exec(m)[1]);
    assert.equal(lag('pg-main'), 7);
    assert.equal((await page.locator('.card.sink[data-sink="pg-main"] .card-value').textContent()).trim(), String(lag('pg-main')));
    assert.equal((await page.locator('.card.sink[data-sink="pg-b"] .card-hint').textContent()).trim(), 'caught up');
    await shot(page, 'overview-sinks', 'ui-overview-sinks.png');
    // a sink that is forgotten leaves the page at the next scrape
    await fetch(`${srv.url}/v1/sinks/pg-main`, { method: 'DELETE', headers: srv.headers() });
    await fetch(`${srv.url}/v1/sinks/pg-b`, { method: 'DELETE', headers: srv.headers() });
    await page.waitForSelector('main[data-sinks="0"] #ov-sinks[hidden]', { state: 'attached' });
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('a token, a path prefix, a phone', () => {
  test('behind a reverse proxy under /reel/ with a token, on a 390 px wide screen', async () => {
    const srv = new Server({ args: ['--token', 'pr3fix'] });
    await srv.start();
    srv.token = 'pr3fix';
    srv.runMock('px-tools', 'tools');
    // a tiny reverse proxy that serves the server under /reel/ (prefix stripped), SSE included
    const http = await import('node:http');
    const proxy = http.createServer((req, res) => {
      if (!req.url.startsWith('/reel/')) { res.writeHead(404); res.end('not under /reel/'); return; }
      const up = http.request({ host: '127.0.0.1', port: srv.port, method: req.method, path: req.url.slice(5), headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on('error', () => { res.writeHead(502); res.end(); });
      req.pipe(up);
    });
    await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${proxy.address().port}/reel/`;
    const page = await browser.ctx.newPage();
    const errors = watchErrors(page);
    await page.setViewportSize({ width: 390, height: 800 });
    await page.goto(base + 'ui');                    // the relative redirect keeps the prefix
    assert.equal(page.url(), base + 'ui/');
    await page.waitForSelector('#token-dialog[open]');
    await page.fill('#token-input', 'pr3fix');
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('main[data-live="1"] tr[data-id="px-tools"]');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('reel.token')), 'pr3fix');
    const wide = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
    assert.ok(await wide(), 'sessions list: no sideways scroll of the page');
    await shot(page, 'phone-sessions', 'ui-phone.png');
    await page.click('tr[data-id="px-tools"] a');
    await page.waitForSelector('main[data-at] li.entry .dur');
    assert.ok(await wide(), 'timeline: no sideways scroll of the page');
    // a reload keeps the token (sessionStorage) and the deep link
    await page.fill('#t-seq', '9');
    await page.keyboard.press('Enter');
    await waitUntil(page, () => location.hash.endsWith('?seq=9'));
    await page.reload();
    await page.waitForSelector('li.entry.target');
    assert.equal(await page.locator('#token-dialog[open]').count(), 0, 'not asked again');
    await page.click('#nav-overview');
    await page.waitForSelector('main[data-loaded="1"] #ov-disk');
    assert.ok(await wide(), 'overview: no sideways scroll of the page');
    assert.deepEqual(errors.filter((e) => !/401/.test(e)), []);
    await page.close();
    await new Promise((r) => proxy.close(r));
    await srv.dispose();
  });
});

describe('token', () => {
  const srv = new Server({ args: ['--token', 's3cret'] });
  before(async () => {
    await srv.start();
    srv.token = 's3cret';
    await srv.append('private', message('p1', 'user', 'secret stuff'));
  });
  after(() => srv.dispose());

  test('asks for the token once, keeps it in sessionStorage, and streams with ?access_token=', async () => {
    const { page } = await open(srv, '#/');
    await page.waitForSelector('#token-dialog[open]');
    assert.match(await page.locator('#token-why').textContent(), /needs a token/);
    await page.fill('#token-input', 's3cret');
    await page.click('#token-form button[type="submit"]');
    await page.waitForSelector('tr[data-id="private"]');
    await waitUntil(page, () => document.querySelector('#live').dataset.state === 'live');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('reel.token')), 's3cret');
    await page.click('a.sid');
    await page.waitForSelector('main[data-at="3"]');
    await waitUntil(page, () => document.querySelector('#live').dataset.state === 'live');
    await srv.append('private', message('p2', 'assistant', 'live with a token'));
    await page.waitForSelector('text=live with a token');
    // a reload keeps the token (same tab)
    await page.reload();
    await page.waitForSelector('text=live with a token');
    assert.equal(await page.locator('#token-dialog[open]').count(), 0);
    await page.close();
  });
});
