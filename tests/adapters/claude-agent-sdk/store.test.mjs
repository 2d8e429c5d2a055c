// The SessionStore contract of @anthropic-ai/claude-agent-sdk (its sdk.d.ts: SessionStore,
// SessionKey, SessionStoreEntry, SessionSummaryEntry, foldSessionSummary), as tests of
// reel-client/claude-agent-sdk against a real reel server. Where the contract leaves a choice
// (entries without uuid, order of listings), the SDK's own InMemorySessionStore is the judge.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { sdk, skip } from "./install.mjs";
import { ReelSessionStore, sessionIdOf, keyOf } from "../../../clients/typescript/dist/adapters/claude-agent-sdk.js";
import { ReelClient } from "../../../clients/typescript/dist/index.js";
import { startServer } from "../../../clients/typescript/test/server.mjs";

let srv;
let store;
let foldSessionSummary, InMemorySessionStore;
before(async () => {
  if (skip) return;
  ({ foldSessionSummary, InMemorySessionStore } = sdk);
  srv = await startServer();
  store = new ReelSessionStore({ baseUrl: srv.url, foldSessionSummary });
});
after(async () => {
  await store?.close();
  await srv?.stop();
});

let n = 0;
const uid = () => `00000000-0000-4000-8000-${String(++n).padStart(12, "0")}`;
const ts = (ms) => new Date(ms).toISOString();
function entry(type, extra = {}) {
  return { type, uuid: uid(), timestamp: ts(Date.UTC(2026, 0, 1) + n * 1000), sessionId: "s", ...extra };
}
const byId = (a, b) => (a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0);

test("the key mapping is reversible, keeps projects, sessions and subpaths apart, and reel takes every id", { skip }, async () => {
  const keys = [
    { projectKey: "-work-repo", sessionId: "7b1c0d4e-0000-4000-8000-000000000001" },
    { projectKey: "-work-repo", sessionId: "7b1c0d4e-0000-4000-8000-000000000001", subpath: "subagents/agent-a1" },
    { projectKey: "a/b", sessionId: "c" },
    { projectKey: "a", sessionId: "b/c" },
    { projectKey: "a", sessionId: "b", subpath: "c" },
    { projectKey: "a%2Fb", sessionId: "100%" },
    { projectKey: "tenant ünï 🦀", sessionId: "x y", subpath: "subagents/deep/agent-z" },
    { projectKey: "ctl\u0001\u007f", sessionId: ".." },
    { projectKey: "", sessionId: "." },
  ];
  const ids = keys.map((k) => sessionIdOf(k));
  assert.equal(new Set(ids).size, keys.length, "distinct keys, distinct ids");
  assert.equal(ids[0], "claude:-work-repo/7b1c0d4e-0000-4000-8000-000000000001");
  assert.equal(ids[1], "claude:-work-repo/7b1c0d4e-0000-4000-8000-000000000001/subagents%2Fagent-a1");
  assert.equal(ids[2], "claude:a%2Fb/c");
  keys.forEach((k, i) => assert.deepEqual(keyOf(ids[i]), k));
  assert.equal(keyOf("other:a/b"), null);
  assert.equal(keyOf("claude:a/b/c/d"), null);
  assert.throws(() => sessionIdOf({ projectKey: "\ud800", sessionId: "x" }), /lone surrogate/);
  // each id is accepted by reel, loads back, and a listing by project finds exactly its own
  const s = new ReelSessionStore({ baseUrl: srv.url, prefix: "map:", foldSessionSummary });
  for (const k of keys) await s.append(k, [entry("user", { key: k })]);
  for (const k of keys) assert.deepEqual((await s.load(k)).map((e) => e.key), [k]);
  // {a, b} itself was never written (only its subkey c), so it is no session of project "a"
  assert.deepEqual((await s.listSessions("a")).map((x) => x.sessionId).sort(), ["b/c"]);
  assert.deepEqual((await s.listSessions("a/b")).map((x) => x.sessionId), ["c"]);
  assert.deepEqual(await s.listSubkeys({ projectKey: "a", sessionId: "b" }), ["c"]);
  assert.deepEqual(await s.listSubkeys({ projectKey: "a", sessionId: "b/c" }), []);
  await s.close();
});

test("load returns exactly the appended entries, deep-equal and in order, across appends", { skip }, async () => {
  const key = { projectKey: "p-order", sessionId: uid() };
  const batches = [
    [entry("user", { message: { role: "user", content: "héllo 🦀 \u2028" } })],
    [
      entry("assistant", { message: { content: [{ type: "text", text: "a" }] }, n: 0, f: 1.5, neg: -3, big: 9007199254740991, nil: null, t: true, arr: [1, [2, [3]], {}], e: "" }),
      { type: "custom-title", customTitle: "no uuid, no timestamp" },
      entry("system", { z: 1, a: 2, nested: { y: { x: "deep" } } }),
    ],
    [entry("user", { lone: "\ud83d", pair: "\ud83d\ude00", bad_ts: "x" }), { type: "tag", tag: "t1", timestamp: "not a date" }],
  ];
  for (const b of batches) await store.append(key, b);
  const loaded = await store.load(key);
  assert.deepEqual(loaded, batches.flat());
  // more than the contract asks: the same JSON text, key order included
  assert.equal(JSON.stringify(loaded), JSON.stringify(batches.flat()));
  // the events in reel: one per entry, uuid as event_id, entry timestamp as client_time
  const page = await store.client.events(sessionIdOf(key));
  assert.equal(page.events.length, 6);
  assert.deepEqual(page.events.map((e) => e.type), Array(6).fill("claude.entry"));
  assert.equal(page.events[0].event_id, batches[0][0].uuid);
  assert.equal(page.events[0].client_time, batches[0][0].timestamp);
  assert.equal(page.events[0].native_session_id, key.sessionId);
  assert.equal(page.events[5].client_time, undefined, "a timestamp reel would refuse stays only in data");
});

test("concurrent append() calls on one store keep call order", { skip }, async () => {
  const key = { projectKey: "p-concurrent", sessionId: uid() };
  const all = [];
  const calls = [];
  for (let i = 0; i < 40; i++) {
    const b = [entry("user", { i }), entry("assistant", { i })];
    all.push(...b);
    calls.push(store.append(key, b));
  }
  await Promise.all(calls);
  assert.deepEqual(await store.load(key), all);
});

test("null for a key never written; append([]) creates nothing", { skip }, async () => {
  const key = { projectKey: "p-null", sessionId: uid() };
  assert.equal(await store.load(key), null);
  assert.equal(await store.load({ ...key, subpath: "subagents/agent-x" }), null);
  await store.append(key, []);
  assert.equal(await store.load(key), null);
  assert.equal(await store.client.getSession(sessionIdOf(key)), null);
  assert.deepEqual(await store.listSessions("p-null"), []);
  assert.deepEqual(await store.listSubkeys(key), []);
  // a main key written: its unwritten subkey is still null
  await store.append(key, [entry("user")]);
  assert.equal(await store.load({ ...key, subpath: "subagents/agent-x" }), null);
});

test("uuid is the idempotency key; entries without uuid are appended without dedup (as InMemorySessionStore)", { skip }, async () => {
  const key = { projectKey: "p-idem", sessionId: uid() };
  const mem = new InMemorySessionStore();
  const a = entry("user");
  const b = entry("assistant");
  const title = { type: "custom-title", customTitle: "T" };
  await store.append(key, [a, b]);
  await store.append(key, [a, b]); // a retried batch
  await store.append(key, [b, entry("user", { uuid: a.uuid, changed: true })]); // same uuids, other content: ignored
  await store.append(key, [title]);
  await store.append(key, [title]);
  for (const x of [[a, b], [title], [title]]) await mem.append(key, x);
  const loaded = await store.load(key);
  assert.deepEqual(loaded, [a, b, title, title]);
  assert.deepEqual(loaded, await mem.load(key));
  // duplicates inside one batch: once
  const c = entry("user");
  await store.append(key, [c, c, c]);
  assert.equal((await store.load(key)).filter((e) => e.uuid === c.uuid).length, 1);
});

test("subkeys: listSubkeys lists them, listSessions does not; deleting a main key deletes its subkeys", { skip }, async () => {
  const key = { projectKey: "p-sub", sessionId: uid() };
  const other = { projectKey: "p-sub", sessionId: uid() };
  const subs = ["subagents/agent-a1", "subagents/agent-b2", "subagents/workflows/w1/agent-c3"];
  await store.append(key, [entry("user")]);
  for (const s of subs) await store.append({ ...key, subpath: s }, [entry("user", { isSidechain: true, agentId: s })]);
  await store.append(other, [entry("user")]);
  await store.append({ ...other, subpath: "subagents/agent-zz" }, [entry("user")]);
  assert.deepEqual((await store.listSubkeys(key)).sort(), subs);
  assert.deepEqual((await store.load({ ...key, subpath: subs[1] })).map((e) => e.agentId), [subs[1]]);
  assert.deepEqual((await store.listSessions("p-sub")).map((x) => x.sessionId).sort(), [key.sessionId, other.sessionId].sort());

  // deleting one subkey deletes only it
  await store.delete({ ...key, subpath: subs[0] });
  assert.equal(await store.load({ ...key, subpath: subs[0] }), null);
  assert.deepEqual((await store.listSubkeys(key)).sort(), subs.slice(1));
  assert.notEqual(await store.load(key), null);

  // deleting the main key: it and every subkey, nothing of the other session
  await store.delete(key);
  assert.equal(await store.load(key), null);
  for (const s of subs) assert.equal(await store.load({ ...key, subpath: s }), null);
  assert.deepEqual(await store.listSubkeys(key), []);
  assert.deepEqual((await store.listSessions("p-sub")).map((x) => x.sessionId), [other.sessionId]);
  assert.equal((await store.load(other)).length, 1);
  assert.deepEqual(await store.listSubkeys(other), ["subagents/agent-zz"]);
  assert.deepEqual((await store.listSessionSummaries("p-sub")).map((s) => s.sessionId), [other.sessionId]);
  // deleting a key never written, or again, is fine
  await store.delete(key);
  await store.delete({ projectKey: "p-sub", sessionId: uid() });
});

test("mtime is the session's updated_at in integer epoch ms and moves with appends", { skip }, async () => {
  const key = { projectKey: "p-mtime", sessionId: uid() };
  const t0 = Date.now();
  await store.append(key, [entry("user")]);
  const t1 = Date.now();
  const [first] = await store.listSessions("p-mtime");
  assert.ok(Number.isInteger(first.mtime));
  assert.ok(first.mtime >= t0 - 5 && first.mtime <= t1 + 5, `${t0} <= ${first.mtime} <= ${t1}`);
  const rec = await store.client.getSession(sessionIdOf(key));
  assert.equal(first.mtime, Date.parse(rec.updated_at));
  await new Promise((r) => setTimeout(r, 15));
  await store.append(key, [entry("assistant")]);
  const [second] = await store.listSessions("p-mtime");
  assert.ok(second.mtime > first.mtime, `${second.mtime} > ${first.mtime}`);
});

test("summaries: folded in append() exactly as the SDK folds them, mtime shared with listSessions, stale when not folded", { skip }, async () => {
  const pk = "p-summary";
  const mem = new InMemorySessionStore();
  const k1 = { projectKey: pk, sessionId: uid() };
  const k2 = { projectKey: pk, sessionId: uid() };
  const batches1 = [
    [entry("user", { cwd: "/w", gitBranch: "main", message: { role: "user", content: "first prompt" } })],
    [entry("assistant", { message: { role: "assistant", content: [{ type: "text", text: "ok" }] } })],
    [{ type: "custom-title", customTitle: "My title", sessionId: k1.sessionId }, { type: "tag", tag: "v1", sessionId: k1.sessionId }],
    [entry("user", { message: { role: "user", content: "second prompt" } }), { type: "tag", tag: "", sessionId: k1.sessionId }],
  ];
  const batches2 = [[entry("user", { isSidechain: false, message: { role: "user", content: "other session" } })]];
  for (const b of batches1) { await store.append(k1, b); await mem.append(k1, b); }
  for (const b of batches2) { await store.append(k2, b); await mem.append(k2, b); }
  // a subkey gets no summary of its own
  await store.append({ ...k1, subpath: "subagents/agent-q" }, [entry("user", { message: { role: "user", content: "sub" } })]);

  const got = (await store.listSessionSummaries(pk)).sort(byId);
  const want = (await mem.listSessionSummaries(pk)).sort(byId);
  assert.equal(got.length, 2);
  assert.deepEqual(got.map((s) => s.data), want.map((s) => s.data));
  assert.equal(got.find((s) => s.sessionId === k1.sessionId).data.customTitle, "My title");
  const mtimes = new Map((await store.listSessions(pk)).map((s) => [s.sessionId, s.mtime]));
  for (const s of got) assert.equal(s.mtime, mtimes.get(s.sessionId), "fresh: the same mtime as listSessions");

  // a writer without foldSessionSummary appends: the summary no longer covers the session
  const plain = new ReelSessionStore({ baseUrl: srv.url, foldSessionSummary: null });
  await plain.append(k2, [entry("user", { message: { role: "user", content: "unfolded" } })]);
  await plain.close();
  const stale = (await store.listSessionSummaries(pk)).find((s) => s.sessionId === k2.sessionId);
  const m2 = (await store.listSessions(pk)).find((s) => s.sessionId === k2.sessionId).mtime;
  assert.ok(stale.mtime < m2, "stale summary: older than the session, so the SDK reloads it");
  // the next folding append catches up
  const b = [entry("assistant")];
  await store.append(k2, b);
  const fresh = (await store.listSessionSummaries(pk)).find((s) => s.sessionId === k2.sessionId);
  assert.equal(fresh.mtime, (await store.listSessions(pk)).find((s) => s.sessionId === k2.sessionId).mtime);
});

test("two stores folding into one session at once (compare-and-set on the record version) lose no fold", { skip }, async () => {
  const key = { projectKey: "p-race", sessionId: uid() };
  const a = new ReelSessionStore({ baseUrl: srv.url, foldSessionSummary, client: new ReelClient({ baseUrl: srv.url }) });
  const b = new ReelSessionStore({ baseUrl: srv.url, foldSessionSummary, client: new ReelClient({ baseUrl: srv.url }) });
  // each batch sets gitBranch (last wins in the fold) and counts as one fold; 2 x 15 batches
  const work = [];
  for (let i = 0; i < 15; i++) {
    work.push(a.append(key, [entry("user", { gitBranch: `a${i}` })]));
    work.push(b.append(key, [entry("user", { gitBranch: `b${i}` })]));
  }
  await Promise.all(work);
  const rec = await store.client.getSession(sessionIdOf(key));
  // version 1 at creation, +1 for each of the 30 folds (each PUT changes the summary_through)
  assert.equal(rec.event_count, 30);
  assert.equal(rec.metadata.claude.summary_through, rec.last_sequence);
  assert.equal(rec.version, 31, "every fold applied once");
  const [s] = await store.listSessionSummaries("p-race");
  assert.equal(s.mtime, Date.parse(rec.updated_at));
  await a.close();
  await b.close();
});

test("a store error surfaces: append to a deleted key rejects (reel keeps deleted ids as tombstones)", { skip }, async () => {
  const key = { projectKey: "p-del", sessionId: uid() };
  await store.append(key, [entry("user")]);
  await store.delete(key);
  await assert.rejects(store.append(key, [entry("user")]), (e) => e.status === 410);
  assert.equal(await store.load(key), null);
});

test("volume: 12,000 entries in one append (12 atomic chunks) and a 5 MiB entry load back whole (paged reads)", { skip, timeout: 120_000 }, async () => {
  const key = { projectKey: "p-volume", sessionId: uid() };
  const many = [];
  for (let i = 0; i < 12000; i++) many.push(entry(i % 2 ? "assistant" : "user", { i, text: `entry ${i} ü` }));
  await store.append(key, many);
  const big = entry("assistant", { message: { content: [{ type: "text", text: "x".repeat(5 * 1024 * 1024) }] } });
  await store.append(key, [entry("user", { before: true }), big, entry("user", { after: true })]);
  const loaded = await store.load(key);
  assert.equal(loaded.length, 12003);
  assert.ok(loaded.slice(0, 12000).every((e, i) => e.i === i && e.uuid === many[i].uuid));
  assert.ok(isDeepStrictEqual(loaded[12001], big));
  assert.equal(loaded[12002].after, true);
  const rec = await store.client.getSession(sessionIdOf(key));
  assert.equal(rec.event_count, 12003);
  assert.equal(rec.metadata.claude.summary_through, rec.last_sequence);
  // sent again (the SDK's retry of a failed call): nothing new
  await store.append(key, many);
  assert.equal((await store.client.getSession(sessionIdOf(key))).event_count, 12003);
});

test("timestamps reel would refuse as client_time never fail a batch; valid ones become client_time", { skip }, async () => {
  const key = { projectKey: "p-ts", sessionId: "s".repeat(300) }; // over reel's 256-byte native_session_id
  const refused = ["2026-01-01T24:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T00:00:60Z", "1969-12-31T23:59:59Z",
    "2026-01-01T00:00:00.1234567891Z", "2026-01-01T00:00:00+24:00", "2026-1-01T00:00:00Z", "2026-01-01T00:00:00",
    "1970-01-01T00:30:00+01:00", "", 1767225600000, null];
  const kept = ["2026-01-01T00:00:00Z", "2026-01-01 00:00:00.5+05:30", "2024-02-29t23:59:59.123456789z", "1970-01-01T00:00:00Z"];
  const entries = [...refused, ...kept].map((t) => ({ type: "user", uuid: uid(), timestamp: t }));
  await store.append(key, entries);
  assert.deepEqual(await store.load(key), entries);
  const page = await store.client.events(sessionIdOf(key));
  assert.deepEqual(page.events.map((e) => e.client_time ?? null), [...refused.map(() => null), ...kept]);
  assert.ok(page.events.every((e) => e.native_session_id === undefined || e.native_session_id === null));
});

test("an entry reel refuses (over 8 MiB, nested past 512) fails only itself: the rest of its batch is stored, in order, and append rejects", { skip, timeout: 60_000 }, async () => {
  const key = { projectKey: "p-refused", sessionId: uid() };
  const a = entry("user", { a: 1 });
  const huge = entry("assistant", { text: "x".repeat(9 * 1024 * 1024) });
  const b = entry("user", { b: 1 });
  await assert.rejects(store.append(key, [a, huge, b]), (e) => e.status === 413);
  let deep = {};
  for (let i = 0; i < 600; i++) deep = { d: deep };
  const c = entry("user", { c: 1 });
  const nested = entry("user", { deep });
  const d = entry("user", { d: 1 });
  await assert.rejects(store.append(key, [c, nested, d]), (e) => e.status === 400 && e.code === "too_deep");
  assert.deepEqual(await store.load(key), [a, b, c, d]);
  // the SDK's retry of the same batch: still rejected, nothing added twice
  await assert.rejects(store.append(key, [c, nested, d]));
  assert.deepEqual(await store.load(key), [a, b, c, d]);
  // a batch of one refused entry stores nothing
  const other = { projectKey: "p-refused", sessionId: uid() };
  await assert.rejects(store.append(other, [huge]), (e) => e.status === 413);
  assert.equal(await store.load(other), null);
});
