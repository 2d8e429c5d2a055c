// lib.mjs -- helpers for the browser tests of the web inspector (docs/UI.md):
// a `reel serve` child process on a temporary data directory, HTTP helpers, and a
// headless Debian chromium driven by playwright-core (never a downloaded browser).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const REEL = path.resolve(ROOT, process.env.REEL_BIN || 'build/reel');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'build/browser-artifacts');
export const UPDATE_DOCS = process.env.UPDATE_DOCS_SCREENSHOTS === '1';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tmpdir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/* A `reel serve` on loopback. start() picks a free port the first time (--listen :0)
 * and keeps it for restarts. */
export class Server {
  constructor({ data, args = [] } = {}) {
    this.data = data || tmpdir('reel-ui-data-');
    this.args = args;
    this.port = 0;
    this.proc = null;
    this.log = '';
  }
  get url() { return `http://127.0.0.1:${this.port}`; }
  async start() {
    const argv = ['serve', '--data', this.data, '--listen', `127.0.0.1:${this.port}`, '--sync', 'none', ...this.args];
    for (let attempt = 0; ; attempt++) {
      const p = spawn(REEL, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
      this.proc = p;
      const port = await new Promise((resolve) => {
        let buf = '';
        const onData = (d) => {
          buf += d;
          this.log += d;
          const m = /listening on http:\/\/[^ ]*:(\d+)\//.exec(buf);
          if (m) resolve(Number(m[1]));
        };
        p.stderr.on('data', onData);
        p.stdout.on('data', (d) => { this.log += d; });
        p.on('exit', () => resolve(0));
      });
      if (port) { this.port = port; break; }
      if (attempt >= 20) throw new Error('reel serve did not start:\n' + this.log);
      await sleep(250); /* the port of a restart may still be held for a moment */
    }
    await this.waitHealthy();
  }
  async waitHealthy() {
    for (let i = 0; i < 100; i++) {
      try { if ((await fetch(this.url + '/v1/health')).ok) return; } catch (e) { /* not yet */ }
      await sleep(50);
    }
    throw new Error('server not healthy');
  }
  async stop() {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const done = new Promise((r) => p.on('exit', r));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(t);
    this.proc = null;
    /* Under REEL_BIN=build/address/reel a sanitizer report fails the suite. */
    if (/ERROR: AddressSanitizer|runtime error:|LeakSanitizer/.test(this.log)) throw new Error('sanitizer report from reel serve:\n' + this.log);
  }
  /* Stops the server and removes its data directory. */
  async dispose() {
    try { await this.stop(); } finally { fs.rmSync(this.data, { recursive: true, force: true }); }
  }
  async restart(downMs = 0) {
    await this.stop();
    if (downMs) await sleep(downMs);
    await this.start();
  }
  headers(extra = {}) {
    const h = Object.assign({ 'Content-Type': 'application/json' }, extra);
    if (this.token) h.Authorization = 'Bearer ' + this.token;
    return h;
  }
  async append(session, events) {
    const r = await fetch(`${this.url}/v1/sessions/${encodeURIComponent(session)}/events`, {
      method: 'POST', headers: this.headers(), body: JSON.stringify(events),
    });
    if (!r.ok) throw new Error(`append ${r.status}: ${await r.text()}`);
    return r.json();
  }
  async get(p) {
    const r = await fetch(this.url + p, { headers: this.headers() });
    if (!r.ok) throw new Error(`GET ${p}: ${r.status}`);
    return r.json();
  }
  /* `reel run --agent mock` through this server (synchronously: the run ends first). */
  runMock(session, prompt, delayMs = 1, mayFail = false) {
    const r = spawnSync(REEL, ['run', '--quiet', '--agent', 'mock', '--session', session, '--server', this.url, '--', prompt],
      { env: Object.assign({}, process.env, { REEL_MOCK_DELAY_MS: String(delayMs), REEL_TOKEN: this.token || '' }), encoding: 'utf8' });
    if (r.status !== 0 && !(mayFail && r.status === 1)) throw new Error(`reel run failed (${r.status}): ${r.stderr}`);
  }
  /* The same, in the background; resolves when the run ends. */
  runMockAsync(session, prompt, delayMs) {
    const p = spawn(REEL, ['run', '--quiet', '--agent', 'mock', '--session', session, '--server', this.url, '--', prompt],
      { env: Object.assign({}, process.env, { REEL_MOCK_DELAY_MS: String(delayMs), REEL_TOKEN: this.token || '' }), stdio: 'ignore' });
    return new Promise((resolve) => p.on('exit', resolve));
  }
}

/* Universal events of one message item (what the runners write). */
export function message(id, role, text) {
  return [
    { type: 'item.started', source: 'agent', data: { item_id: id, kind: 'message', role, status: 'in_progress' } },
    { type: 'item.delta', source: 'agent', data: { item_id: id, delta: text } },
    { type: 'item.completed', source: 'agent', data: { item_id: id, kind: 'message', role, status: 'completed' } },
  ];
}

export function toolCall(id, callId, name, args, output, isError = false) {
  return [
    { type: 'item.started', source: 'agent', data: { item_id: id, kind: 'tool_call', call_id: callId, name, arguments: args, status: 'in_progress' } },
    { type: 'item.completed', source: 'agent', data: { item_id: id, kind: 'tool_call', call_id: callId, name, arguments: args, status: 'completed' } },
    { type: 'item.started', source: 'agent', data: { item_id: id + 'r', kind: 'tool_result', call_id: callId, status: 'in_progress' } },
    { type: 'item.completed', source: 'agent', data: { item_id: id + 'r', kind: 'tool_result', call_id: callId, status: isError ? 'failed' : 'completed', output, is_error: isError } },
  ];
}

/* Headless Debian chromium with the flags the project uses and a fresh profile. */
export async function launch() {
  const { chromium } = await import('playwright-core');
  const profile = tmpdir('reel-ui-chromium-');
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1200, height: 820 },
    acceptDownloads: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const close = async () => {
    await ctx.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { ctx, close };
}

/* Saves a screenshot into build/browser-artifacts/ (and docs/ with UPDATE_DOCS_SCREENSHOTS=1). */
export async function shot(page, name, docsName) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name + '.png');
  await page.screenshot({ path: file, fullPage: false });
  if (UPDATE_DOCS && docsName) fs.copyFileSync(file, path.join(ROOT, 'docs', docsName));
  return file;
}

/* Polls 'fn(arg)' in the page until it is truthy. (page.waitForFunction evaluates strings
 * in the page, which the inspector's Content-Security-Policy forbids.) */
export async function waitUntil(page, fn, arg, { timeout = 10000 } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await page.evaluate(fn, arg);
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting for ' + String(fn).slice(0, 160));
    await sleep(50);
  }
}

/* Collects page errors and console errors, so that a test can require none. */
export function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push('pageerror: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push('console: ' + m.text()); });
  return errors;
}
