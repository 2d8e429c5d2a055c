// Coalescing: single appends from one process share POSTs, each caller gets its own event's result.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "./server.mjs";
import { ReelClient, ReelError, newEventId, readAll, sleep } from "./helpers.mjs";

let srv;
before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv?.stop();
});

/** Checks every result against what the server stored: its own sequence, position, event. */
async function checkOwn(reader, session, calls) {
  const all = await readAll(reader, session);
  const bySeq = new Map(all.map((e) => [e.sequence, e]));
  for (const { ev, r } of calls) {
    assert.equal(r.session_id, session);
    assert.equal(r.first_sequence, r.last_sequence, "one event, one sequence");
    const stored = bySeq.get(r.first_sequence);
    assert.ok(stored, `sequence ${r.first_sequence} exists`);
    assert.equal(stored.event_id, ev.event_id ?? stored.event_id);
    assert.deepEqual(stored.data, ev.data, `the caller of ${JSON.stringify(ev.data)} got sequence ${r.first_sequence}`);
    assert.equal(stored.position, r.position, "and its position");
  }
  return all;
}

test("64-way concurrency: every caller's result maps to its own event; fewer POSTs than events", async () => {
  const c = new ReelClient({ baseUrl: srv.url, coalesce: true });
  const s = "co/64 " + newEventId();
  const other = "co/other " + newEventId();
  const calls = [];
  const otherCalls = [];
  const PER = 30;
  await Promise.all(
    Array.from({ length: 64 }, async (_, w) => {
      for (let i = 0; i < PER; i++) {
        const ev = { type: "t", data: { w, i } };
        const r = await c.append(s, ev);
        calls.push({ ev, r });
        if (w % 8 === 0) {
          const ev2 = { type: "o", data: { w, i } };
          otherCalls.push({ ev: ev2, r: await c.append(other, ev2) });
        }
      }
    }),
  );
  await c.close();
  const all = await checkOwn(c, s, calls);
  assert.equal(all.length, 64 * PER);
  assert.deepEqual(all.map((e) => e.sequence), Array.from({ length: 64 * PER }, (_, i) => i + 1));
  assert.equal(new Set(calls.map((x) => x.r.first_sequence)).size, 64 * PER, "no two callers share a sequence");
  await checkOwn(c, other, otherCalls);
  const st = c.coalesceStats;
  assert.equal(st.fallbacks, 0);
  assert.ok(st.posts * 4 < st.events, `coalesced: ${st.events} events in ${st.posts} POSTs`);
  // each worker's own events are in its call order
  for (let w = 0; w < 64; w++) {
    const mine = all.filter((e) => e.data.w === w).map((e) => e.data.i);
    assert.deepEqual(mine, Array.from({ length: PER }, (_, i) => i));
  }
});

test("calls issued without awaiting keep their call order, batches and expectedSequence included", async () => {
  const c = new ReelClient({ baseUrl: srv.url, coalesce: { windowMs: 5, maxEvents: 7 } });
  const s = "co/order-" + newEventId();
  const ps = [];
  let n = 0;
  for (let i = 0; i < 50; i++) {
    if (i === 20) ps.push(c.appendBatch(s, [{ type: "b", data: n++ }, { type: "b", data: n++ }]));
    else if (i === 30) ps.push(c.append(s, { type: "x", data: n++ }, { expectedSequence: 31 }));
    else ps.push(c.append(s, { type: "a", data: n++ }));
  }
  const rs = await Promise.all(ps);
  const all = await readAll(c, s);
  assert.deepEqual(all.map((e) => e.data), Array.from({ length: n }, (_, i) => i));
  assert.equal(rs[30].first_sequence, 32);
  assert.deepEqual([rs[20].first_sequence, rs[20].last_sequence], [21, 22]);
  assert.ok(c.coalesceStats.posts < 50);
});

test("duplicates in a coalesced batch: each caller still gets its own event's sequence", async () => {
  const c = new ReelClient({ baseUrl: srv.url, coalesce: { windowMs: 20 } });
  const s = "co/dup-" + newEventId();
  await c.append(s, { type: "t", event_id: "old-1", data: "old-1" });
  await c.append(s, { type: "t", event_id: "old-2", data: "old-2" });
  const evs = [
    { type: "t", event_id: "n-1", data: "n-1" },
    { type: "t", event_id: "old-2", data: "old-2" },
    { type: "t", event_id: "n-2", data: "n-2" },
    { type: "t", event_id: "n-2", data: "n-2" },
    { type: "t", event_id: "old-1", data: "old-1" },
    { type: "t", event_id: "n-3", data: "n-3" },
  ];
  const rs = await Promise.all(evs.map((ev) => c.append(s, ev)));
  const before = c.coalesceStats;
  assert.ok(before.fallbacks >= 1, "the ambiguous batch was asked again one by one");
  await checkOwn(c, s, evs.map((ev, i) => ({ ev, r: rs[i] })));
  assert.deepEqual(rs.map((r) => r.first_sequence), [3, 2, 4, 4, 1, 5]);
  assert.deepEqual(rs.map((r) => r.duplicates), [1, 1, 1, 1, 1, 1], "asked again: each is now a duplicate of itself");
  assert.equal((await readAll(c, s)).length, 5);
});

test("a bad event in a coalesced batch fails only its own caller; a 410 fails them all", async () => {
  const c = new ReelClient({ baseUrl: srv.url, coalesce: { windowMs: 20 } });
  const s = "co/bad-" + newEventId();
  const evs = [{ type: "ok", data: 1 }, { type: "", data: 2 }, { type: "ok", data: 3 }, { type: "ok", data: 4, client_time: 1.5 }];
  const rs = await Promise.allSettled(evs.map((ev) => c.append(s, ev)));
  assert.deepEqual(rs.map((r) => r.status), ["fulfilled", "rejected", "fulfilled", "rejected"]);
  assert.ok(rs[1].reason instanceof ReelError && rs[1].reason.status === 400);
  assert.ok(rs[3].reason instanceof ReelError && /client_time/.test(rs[3].reason.detail));
  const all = await readAll(c, s);
  assert.deepEqual(all.map((e) => e.data), [1, 3]);
  assert.equal(rs[2].value.first_sequence, 2);
  await c.deleteSession(s);
  const gone = await Promise.allSettled([1, 2, 3].map((i) => c.append(s, { type: "late", data: i })));
  for (const g of gone) assert.ok(g.status === "rejected" && g.reason.status === 410);
});

test("close() sends what is still waiting in the window", async () => {
  const c = new ReelClient({ baseUrl: srv.url, coalesce: { windowMs: 60000 } });
  const s = "co/close-" + newEventId();
  const p = Promise.all([c.append(s, { type: "a" }), c.append(s, { type: "b" })]);
  await sleep(50);
  assert.equal(c.coalesceStats.posts, 0, "still in the window");
  await c.close();
  const rs = await p;
  assert.deepEqual(rs.map((r) => r.first_sequence), [1, 2]);
  assert.equal(c.coalesceStats.posts, 1);
});
