// ReelClient against a real reel server: appends, ids, retries, polling, sessions, restore.
import { describe, test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, within } from "./server.mjs";
import { ReelClient, ReelError, newEventId, encodeSessionId, startProxy, readAll, sleep } from "./helpers.mjs";

let srv;
let c;
before(async () => {
  srv = await startServer();
  c = new ReelClient({ baseUrl: srv.url });
});
after(async () => {
  await c?.close();
  await srv?.stop();
});

const IDS = ["team/alpha", "ünï", "my session", "a%2Fb", "100% done?#frag", "emoji 🎬 reel", "plus+sign&x=y"];

describe("ids and appends", () => {
  test("newEventId is a UUID v7 and unique", () => {
    const ids = new Set();
    for (let i = 0; i < 1000; i++) ids.add(newEventId());
    assert.equal(ids.size, 1000);
    const id = [...ids][0];
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // the first 48 bits are the time in ms
    const ms = parseInt(id.replace(/-/g, "").slice(0, 12), 16);
    assert.ok(Math.abs(ms - Date.now()) < 10000);
  });

  test("'.', '..' and '' are refused locally, before any URL is built", () => {
    for (const bad of [".", "..", ""]) {
      assert.throws(() => encodeSessionId(bad), (e) => e instanceof ReelError && e.status === 400 && e.code === "invalid_session_id");
    }
    assert.equal(encodeSessionId("team/alpha"), "team%2Falpha");
    assert.equal(encodeSessionId("a!(b)*'~"), "a%21%28b%29%2A%27~"); // canonical: nginx hashes these bytes
  });

  for (const id of IDS) {
    test(`session id ${JSON.stringify(id)}: append, read, record, list by prefix`, async () => {
      const r = await c.append(id, { type: "note", data: { id } });
      assert.equal(r.session_id, id);
      assert.equal(r.first_sequence, 1);
      assert.equal(r.last_sequence, 1);
      assert.equal(r.duplicates, 0);
      const page = await c.events(id);
      assert.equal(page.events.length, 1);
      assert.equal(page.events[0].session_id, id);
      assert.deepEqual(page.events[0].data, { id });
      assert.match(page.events[0].event_id, /^[0-9a-f-]{36}$/);
      const rec = await c.getSession(id);
      assert.equal(rec.id, id);
      const list = await c.listSessions({ prefix: id });
      assert.deepEqual(list.sessions.map((s) => s.id), [id]);
    });
  }

  test("append returns its own sequence; appendBatch is atomic and in order", async () => {
    const s = "batch-" + newEventId();
    const a = await c.append(s, { type: "one" });
    assert.equal(a.first_sequence, 1);
    const b = await c.appendBatch(s, [{ type: "two" }, { type: "three", data: { n: 3 } }, { type: "four", client_time: 1700000000123 }]);
    assert.deepEqual([b.first_sequence, b.last_sequence, b.duplicates], [2, 4, 0]);
    const all = await readAll(c, s);
    assert.deepEqual(all.map((e) => e.type), ["one", "two", "three", "four"]);
    assert.deepEqual(all.map((e) => e.sequence), [1, 2, 3, 4]);
    assert.equal(all[3].client_time, 1700000000123);
    // a bad event makes the whole batch fail, nothing stored
    await assert.rejects(c.appendBatch(s, [{ type: "five" }, { type: "" }]), (e) => e instanceof ReelError && e.status === 400 && e.code === "invalid_event");
    assert.equal((await readAll(c, s)).length, 4);
  });

  test("a given event_id is the idempotency key: the same event again is a duplicate", async () => {
    const s = "idem-" + newEventId();
    const ev = { type: "x", event_id: "fixed-1", data: { v: 1 } };
    const r1 = await c.append(s, ev);
    const r2 = await c.append(s, ev);
    assert.equal(r1.first_sequence, 1);
    assert.equal(r2.first_sequence, 1);
    assert.equal(r2.duplicates, 1);
    assert.equal((await readAll(c, s)).length, 1);
  });

  test("expectedSequence: 409 on mismatch (ReelError), not retried", async () => {
    const s = "exp-" + newEventId();
    await c.append(s, { type: "a" }, { expectedSequence: 0 });
    await assert.rejects(c.append(s, { type: "b" }, { expectedSequence: 0 }), (e) => e instanceof ReelError && e.status === 409 && e.code === "sequence_conflict" && /1/.test(e.detail));
    const r = await c.appendBatch(s, [{ type: "b" }], { expectedSequence: 1 });
    assert.equal(r.first_sequence, 2);
  });
});

describe("retries", () => {
  test("a lost answer: the retry hits a server that already has the event, and no duplicate is stored", async () => {
    const proxy = await startProxy(srv.port);
    try {
      const pc = new ReelClient({ baseUrl: proxy.url, backoffMs: 10 });
      const s = "retry-" + newEventId();
      await pc.append(s, { type: "before" });
      proxy.dropAnswers(1);
      const r = await pc.append(s, { type: "once", data: { k: 1 } });
      assert.equal(proxy.stats.dropped, 1, "the first attempt's answer was cut");
      assert.equal(r.first_sequence, 2);
      assert.equal(r.duplicates, 1, "the retry found the event already stored");
      proxy.dropAnswers(2);
      const b = await pc.appendBatch(s, [{ type: "b1" }, { type: "b2" }]);
      assert.equal(proxy.stats.dropped, 3);
      assert.deepEqual([b.first_sequence, b.last_sequence, b.duplicates], [3, 4, 2]);
      const all = await readAll(c, s);
      assert.deepEqual(all.map((e) => e.type), ["before", "once", "b1", "b2"]);
    } finally {
      await proxy.close();
    }
  });

  test("503 and network errors are retried with backoff; 4xx is not", async () => {
    const proxy = await startProxy(srv.port);
    try {
      const pc = new ReelClient({ baseUrl: proxy.url, backoffMs: 10, retries: 3 });
      const s = "r503-" + newEventId();
      proxy.refuse(503, 502);
      const r = await pc.append(s, { type: "x" });
      assert.equal(r.first_sequence, 1);
      assert.equal(proxy.stats.canned, 2);
      const before = proxy.stats.requests;
      proxy.refuse(400);
      await assert.rejects(pc.append(s, { type: "y" }), (e) => e instanceof ReelError && e.status === 400 && e.type === "urn:test:canned");
      assert.equal(proxy.stats.requests - before, 1, "a 4xx is answered at once");
      proxy.refuse(503, 503, 503, 503);
      await assert.rejects(pc.append(s, { type: "z" }), (e) => e instanceof ReelError && e.status === 503);
      assert.equal(proxy.stats.canned, 2 + 1 + 4, "1 try + 3 retries");
      // no server at all: a network ReelError with status 0
      const dead = new ReelClient({ baseUrl: "http://127.0.0.1:1", backoffMs: 1, retries: 2 });
      await assert.rejects(dead.getSession("x"), (e) => e instanceof ReelError && e.status === 0 && e.code === "network_error");
    } finally {
      await proxy.close();
    }
  });

  test("a conditional PUT whose answer was lost is recognised as applied", async () => {
    const proxy = await startProxy(srv.port);
    try {
      const pc = new ReelClient({ baseUrl: proxy.url, backoffMs: 10 });
      const s = "put-" + newEventId();
      const r0 = await pc.putSession(s, { agent: "a" }, { ifNoneMatch: "*" });
      assert.equal(r0.version, 1);
      proxy.dropAnswers(1);
      const r1 = await pc.putSession(s, { metadata: { k: 1 } }, { ifMatch: 1 });
      assert.equal(proxy.stats.dropped, 1);
      assert.equal(r1.version, 2);
      assert.deepEqual(r1.metadata, { k: 1 });
      // and a real conflict is still a 412
      await assert.rejects(pc.putSession(s, { metadata: { k: 2 } }, { ifMatch: 1 }), (e) => e instanceof ReelError && e.status === 412);
    } finally {
      await proxy.close();
    }
  });
});

describe("reads", () => {
  test("polling pages with after/limit/next/more, types filter", async () => {
    const s = "poll-" + newEventId();
    await c.appendBatch(s, Array.from({ length: 25 }, (_, i) => ({ type: i % 2 ? "odd" : "even", data: i })));
    const seen = [];
    let after = 0;
    let pages = 0;
    for (;;) {
      const p = await c.events(s, { after, limit: 10 });
      pages++;
      seen.push(...p.events.map((e) => e.data));
      after = p.next;
      if (!p.more) break;
    }
    assert.equal(pages, 3);
    assert.deepEqual(seen, Array.from({ length: 25 }, (_, i) => i));
    const odd = await c.events(s, { types: ["odd"], limit: 100 });
    assert.equal(odd.events.length, 12);
    assert.ok(odd.events.every((e) => e.type === "odd"));
    const last3 = await c.newest(s, 3);
    assert.deepEqual(last3.map((e) => e.sequence), [23, 24, 25]);
    assert.deepEqual((await c.newest(s, 100)).length, 25);
    await assert.rejects(c.events("never-" + newEventId()), (e) => e instanceof ReelError && e.status === 404 && e.code === "session_not_found");
  });

  test("long-poll answers as soon as an event commits, and empty at the deadline", async () => {
    const s = "lp-" + newEventId();
    await c.append(s, { type: "first" });
    const t0 = Date.now();
    const waiting = c.events(s, { after: 1, waitMs: 5000 });
    await sleep(200);
    await c.append(s, { type: "second" });
    const p = await within(3000, waiting, "long-poll");
    const took = Date.now() - t0;
    assert.deepEqual(p.events.map((e) => e.type), ["second"]);
    assert.ok(took >= 150 && took < 2500, `answered after ${took} ms`);
    const t1 = Date.now();
    const empty = await c.events(s, { after: 2, waitMs: 1000 });
    assert.equal(empty.events.length, 0);
    assert.equal(empty.next, 2);
    assert.ok(Date.now() - t1 >= 900);
  });

  test("feed pages by position, long-polls too", async () => {
    const f0 = await c.feed({ after: 0, limit: 1 });
    assert.equal(f0.events.length, 1);
    let after = 0;
    let count = 0;
    for (;;) {
      const p = await c.feed({ after, limit: 500 });
      count += p.events.length;
      for (const e of p.events) assert.ok(e.position > after);
      after = p.next;
      if (!p.more) break;
    }
    assert.ok(count > 10);
    const s = "feed-" + newEventId();
    const waiting = c.feed({ after, waitMs: 5000 });
    await sleep(100);
    const r = await c.append(s, { type: "fed" });
    const p = await within(3000, waiting, "feed long-poll");
    assert.deepEqual(p.events.map((e) => [e.session_id, e.position]), [[s, r.position]]);
  });

  test("restore, transcript (json, markdown), export stream", async () => {
    const s = "proj/" + newEventId();
    await c.appendBatch(s, [
      { type: "session.started", source: "agent", data: {} },
      { type: "item.completed", source: "agent", data: { item: { kind: "message", role: "user", content: [{ type: "text", text: "hello" }] } } },
    ]);
    const r = await c.restore(s, { maxEvents: 1 });
    assert.equal(r.session.id, s);
    assert.equal(r.events.length, 1);
    assert.equal(r.to_sequence, 2);
    assert.equal(typeof r.replay_text, "string");
    const sdk = await c.restore(s, { fit: "sdk", maxEvents: 10, maxChars: 100000 });
    assert.ok(sdk.replay_text.startsWith("Previous session history"));
    const tj = await c.transcript(s);
    assert.equal(tj.session_id, s);
    const md = await c.transcript(s, { format: "markdown" });
    assert.equal(typeof md, "string");
    const stream = await c.exportStream({ sessions: [s], compression: "none" });
    const text = await new Response(stream).text();
    const lines = text.trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(lines.length >= 4);
    assert.ok(lines.some((l) => l.event_id !== undefined || l.type === "item.completed" || JSON.stringify(l).includes("hello")));
    const zst = await c.exportStream({ sessions: [s, "ünï"] });
    const bytes = new Uint8Array(await new Response(zst).arrayBuffer());
    assert.deepEqual([...bytes.slice(0, 4)], [0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");
    await assert.rejects(c.exportStream({ sessions: ["a,b", "c"] }), (e) => e instanceof ReelError && e.status === 400);
  });
});

describe("sessions", () => {
  test("put with If-None-Match / If-Match: 412 as ReelError; get null on 404; delete", async () => {
    const s = "rec/" + newEventId();
    assert.equal(await c.getSession(s), null);
    const r1 = await c.putSession(s, { agent: "claude", metadata: { team: "infra" } }, { ifNoneMatch: "*" });
    assert.equal(r1.version, 1);
    assert.equal(r1.agent, "claude");
    await assert.rejects(c.putSession(s, { agent: "x" }, { ifNoneMatch: "*" }), (e) => e instanceof ReelError && e.status === 412 && e.code === "precondition_failed");
    const r2 = await c.putSession(s, { metadata: { team: "infra", b: 2 } }, { ifMatch: 1 });
    assert.equal(r2.version, 2);
    await assert.rejects(c.putSession(s, { metadata: {} }, { ifMatch: 1 }), (e) => e instanceof ReelError && e.status === 412 && /version 1/.test(e.detail));
    const r3 = await c.putSession(s, { native_session_id: "n1" }, { ifMatch: "*" });
    assert.equal(r3.version, 3);
    assert.deepEqual((await c.getSession(s)).metadata, { team: "infra", b: 2 });
    await assert.rejects(c.deleteSession(s, { ifMatch: 1 }), (e) => e instanceof ReelError && e.status === 412);
    assert.equal(await c.deleteSession(s, { ifMatch: 3 }), true);
    assert.equal((await c.getSession(s)).status, "deleted");
    assert.equal(await c.deleteSession(s), true, "deleting again answers the record");
    assert.equal(await c.deleteSession("nope-" + newEventId()), false);
    await assert.rejects(c.append(s, { type: "late" }), (e) => e instanceof ReelError && e.status === 410 && e.code === "session_deleted");
  });

  test("list by prefix, order=recent, agent/status filters, cursor paging, allSessions", async () => {
    const p = "list-" + newEventId() + "/";
    const ids = [];
    for (let i = 0; i < 7; i++) {
      const id = `${p}${String(i).padStart(2, "0")}`;
      ids.push(id);
      await c.putSession(id, { agent: i % 2 ? "codex" : "claude" });
      await sleep(3); // distinct updated_at
    }
    await c.append(ids[2], { type: "session.ended" });
    // id order, paged by 3
    const pages = [];
    let cursor;
    for (;;) {
      const pg = await c.listSessions({ prefix: p, limit: 3, cursor });
      pages.push(pg.sessions.map((s) => s.id));
      if (pg.cursor === null) break;
      cursor = pg.cursor;
    }
    assert.deepEqual(pages.flat(), ids);
    assert.ok(pages.length >= 3);
    // recent: the appended-to session first, then newest created first
    const recent = await c.listSessions({ prefix: p, order: "recent" });
    assert.equal(recent.sessions[0].id, ids[2]);
    assert.deepEqual(recent.sessions.slice(1).map((s) => s.id), ids.filter((_, i) => i !== 2).reverse());
    const codex = [];
    for await (const s of c.allSessions({ prefix: p, agent: "codex", limit: 2 })) codex.push(s.id);
    assert.deepEqual(codex, [ids[1], ids[3], ids[5]]);
    const ended = await c.listSessions({ prefix: p, status: "ended" });
    assert.deepEqual(ended.sessions.map((s) => s.id), [ids[2]]);
    const recentAll = [];
    for await (const s of c.allSessions({ prefix: p, order: "recent", limit: 2 })) recentAll.push(s.id);
    assert.equal(recentAll.length, 7);
    assert.equal(new Set(recentAll).size, 7);
  });
});
