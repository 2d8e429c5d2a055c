// The SSE iterator: live events, resume after kill -9 and restart, abort, feed, deletion.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, within } from "./server.mjs";
import { ReelClient, ReelError, newEventId, sleep, startProxy } from "./helpers.mjs";

let srv;
before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv?.stop();
});

test("SSE: kill -9 the server mid-stream twice, restart it: sequences 1..N exactly, nothing lost, nothing repeated", async () => {
  const N = 600;
  const s = "sse/kill9 ünï " + newEventId();
  const writer = new ReelClient({ baseUrl: srv.url, retries: 12, backoffMs: 20 });
  const reader = new ReelClient({ baseUrl: srv.url, backoffMs: 20 });
  await writer.append(s, { type: "e", data: 1, event_id: "ev-1" });
  const ac = new AbortController();
  const got = [];
  let kills = 0;
  const consume = (async () => {
    for await (const ev of reader.subscribe(s, { signal: ac.signal })) {
      got.push(ev);
      if (ev.sequence === N) break;
    }
  })();
  // The writer appends N-1 more, one at a time, some in small batches; its retries carry it over the restarts.
  let k = 2;
  const write = (async () => {
    while (k <= N) {
      if (k % 7 === 0 && k + 2 <= N) {
        await writer.appendBatch(s, [0, 1, 2].map((j) => ({ type: "e", data: k + j, event_id: `ev-${k + j}` })));
        k += 3;
      } else {
        await writer.append(s, { type: "e", data: k, event_id: `ev-${k}` });
        k++;
      }
      // stay at most 50 events ahead of the reader, so the kills land while both are busy
      while (k - got.length > 50) await sleep(2);
    }
  })();
  for (const at of [150, 380]) {
    const t0 = Date.now();
    while (got.length < at) {
      if (Date.now() - t0 > 20000) throw new Error(`stalled at ${got.length} events`);
      await sleep(5);
    }
    assert.ok(k <= N, "the kill happens while the writer is still writing");
    await srv.kill9();
    kills++;
    await sleep(150);
    await srv.restart();
  }
  await within(30000, write, "writer");
  await within(30000, consume, "SSE consumer");
  ac.abort();
  assert.equal(kills, 2);
  assert.deepEqual(got.map((e) => e.sequence), Array.from({ length: N }, (_, i) => i + 1));
  assert.deepEqual(got.map((e) => e.event_id), Array.from({ length: N }, (_, i) => `ev-${i + 1}`));
  assert.deepEqual(got.map((e) => e.data), Array.from({ length: N }, (_, i) => i + 1));
});

test("SSE: starts after `after`, goes live, ends on abort and on break", async () => {
  const c = new ReelClient({ baseUrl: srv.url });
  const s = "sse-live-" + newEventId();
  await c.appendBatch(s, [{ type: "a" }, { type: "b" }, { type: "c" }]);
  const ac = new AbortController();
  const got = [];
  const done = (async () => {
    for await (const ev of c.subscribe(s, { after: 1, signal: ac.signal })) got.push(ev.sequence);
  })();
  await sleep(100);
  await c.append(s, { type: "d" });
  const t0 = Date.now();
  while (got.length < 3 && Date.now() - t0 < 5000) await sleep(5);
  assert.deepEqual(got, [2, 3, 4]);
  ac.abort();
  await within(2000, done, "abort");
  // break in for-await closes the stream
  for await (const ev of c.subscribe(s)) {
    assert.equal(ev.sequence, 1);
    break;
  }
  // an already aborted signal: no event at all
  const aborted = AbortSignal.abort();
  for await (const _ of c.subscribe(s, { signal: aborted })) assert.fail("no event after abort");
});

test("SSE: the all-sessions feed by position, resuming after a graceful restart", async () => {
  const c = new ReelClient({ baseUrl: srv.url, backoffMs: 20, retries: 10 });
  const start = (await c.feed({ after: 0, limit: 10000 })).next;
  const ac = new AbortController();
  const got = [];
  const done = (async () => {
    for await (const ev of c.subscribe(null, { after: start, signal: ac.signal })) {
      got.push(ev);
      if (got.length === 40) break;
    }
  })();
  let restarted = false;
  const a = "feed-a-" + newEventId();
  const b = "feed-b-" + newEventId();
  for (let i = 0; i < 20; i++) {
    await c.append(i % 2 ? a : b, { type: "f", data: i });
    if (i === 9) {
      const pid = srv.pid;
      await srv.restart();
      assert.notEqual(srv.pid, pid, "a new server process");
      restarted = true;
    }
  }
  await c.appendBatch(a, Array.from({ length: 20 }, (_, i) => ({ type: "g", data: i })));
  await within(15000, done, "feed consumer");
  ac.abort();
  const pos = got.map((e) => e.position);
  assert.deepEqual(pos, [...pos].sort((x, y) => x - y));
  assert.equal(new Set(pos).size, 40);
  assert.ok(pos[0] > start);
  assert.ok(restarted);
  assert.deepEqual(got.slice(0, 20).map((e) => e.data), Array.from({ length: 20 }, (_, i) => i));
});

test("SSE: an unknown session is a ReelError 404; a deleted session ends the iterator", async () => {
  const c = new ReelClient({ baseUrl: srv.url });
  await assert.rejects(
    (async () => {
      for await (const _ of c.subscribe("nobody-" + newEventId())) break;
    })(),
    (e) => e instanceof ReelError && e.status === 404,
  );
  const s = "sse-del-" + newEventId();
  await c.append(s, { type: "a" });
  const got = [];
  const done = (async () => {
    for await (const ev of c.subscribe(s)) got.push(ev.sequence);
  })();
  await sleep(100);
  await c.deleteSession(s);
  await within(5000, done, "end after delete");
  assert.deepEqual(got, [1]);
});

test("SSE: a consumer slower than idleTimeoutMs loses nothing; a silent stream is reconnected", async () => {
  const c = new ReelClient({ baseUrl: srv.url, backoffMs: 10 });
  const s = "sse-slow-" + newEventId();
  await c.appendBatch(s, Array.from({ length: 5 }, (_, i) => ({ type: "e", data: i + 1 })));
  const got = [];
  for await (const ev of c.subscribe(s, { idleTimeoutMs: 100 })) {
    got.push(ev.sequence);
    await sleep(150); // longer than the idle timeout, between reads
    if (got.length === 5) break;
  }
  assert.deepEqual(got, [1, 2, 3, 4, 5]);
  // caught up and silent (no keepalive within 300 ms): the iterator reconnects, and still yields the next event once
  const proxy = await startProxy(srv.port);
  const pc = new ReelClient({ baseUrl: proxy.url, backoffMs: 10 });
  const ac = new AbortController();
  const later = [];
  const done = (async () => {
    for await (const ev of pc.subscribe(s, { after: 5, idleTimeoutMs: 300, signal: ac.signal })) {
      later.push(ev.sequence);
      if (later.length === 1) break;
    }
  })();
  await sleep(1000);
  await c.append(s, { type: "e", data: 6 });
  await within(5000, done, "event after idle reconnects");
  const conns = proxy.stats.connections;
  await proxy.close();
  assert.ok(conns >= 3, `reconnected after silence (${conns} connections)`);
  assert.deepEqual(later, [6]);
});
