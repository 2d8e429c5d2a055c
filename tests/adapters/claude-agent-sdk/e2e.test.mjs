// End to end: the real @anthropic-ai/claude-agent-sdk with its bundled Claude Code binary,
// the fake Anthropic API on 127.0.0.1 (fake_anthropic.mjs), a real reel server, and
// reel-client/claude-agent-sdk as the query's sessionStore.
//   1. a query with a Read tool use mirrors its transcript into reel, entry for entry;
//   2. the local transcript files are deleted; a query with `resume` loads the session back
//      from reel, and the model request it makes contains the earlier turns;
//   3. the SDK's store helpers (listSessions, getSessionInfo, getSessionMessages,
//      renameSession, tagSession, forkSession, importSessionToStore, deleteSession) work on
//      the reel store.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { sdk, skip } from "./install.mjs";
import { ReelSessionStore } from "../../../clients/typescript/dist/adapters/claude-agent-sdk.js";
import { startServer } from "../../../clients/typescript/test/server.mjs";
import { startFakeAnthropic, transcriptText } from "./fake_anthropic.mjs";
import { makeSandbox, queryOptions, collect } from "./sdk_env.mjs";

const {
  query, foldSessionSummary, listSessions, getSessionInfo, getSessionMessages,
  renameSession, tagSession, forkSession, deleteSession, importSessionToStore,
  listSubagents,
} = sdk ?? {};

let srv, api, sb, store;
before(async () => {
  if (skip) return;
  srv = await startServer();
  api = await startFakeAnthropic();
  sb = makeSandbox(api.url);
  // the SDK's helpers that read local transcripts (importSessionToStore) run in this process:
  // point them at the sandbox's config dir, never the real home
  process.env.CLAUDE_CONFIG_DIR = sb.config;
  store = new ReelSessionStore({ baseUrl: srv.url, foldSessionSummary });
});
after(async () => {
  await store?.close();
  await api?.close();
  await srv?.stop();
  sb?.cleanup();
});

const readJsonl = (f) => fs.readFileSync(f, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));

// the session ids this store holds, as SessionKeys
async function reelKeys() {
  const keys = [];
  for await (const rec of store.client.allSessions({ prefix: store.prefix }))
    if (rec.status !== "deleted") keys.push(store.keyOf(rec.id));
  return keys;
}

let sessionId, projectKey, firstEntries;

// deep equality entry by entry, with a short message (assert's diff of whole transcripts
// with the CLI's system prompt in them takes minutes to compute)
function sameEntries(got, want) {
  const brief = (l) => l.map((e) => `${e.type}:${e.uuid ?? "-"}`).join(" ");
  assert.equal(got.length, want.length, `reel: ${brief(got)}\nlocal: ${brief(want)}`);
  got.forEach((e, i) => assert.ok(isDeepStrictEqual(e, want[i]),
    `entry ${i} (${want[i].type} ${want[i].uuid}) differs:\n${JSON.stringify(e).slice(0, 400)}\n${JSON.stringify(want[i]).slice(0, 400)}`));
}

test("a query with the reel sessionStore mirrors the session into reel, entry for entry", { timeout: 120_000, skip }, async () => {
  const msgs = await collect(query({ prompt: `READ ${sb.notes}`, options: queryOptions(sb, { sessionStore: store }) }));
  const result = msgs.find((m) => m.type === "result");
  assert.equal(result?.subtype, "success", JSON.stringify(result));
  assert.match(result.result, /PELICAN/);
  assert.ok(!msgs.some((m) => m.type === "system" && m.subtype === "mirror_error"), "no mirror_error");
  sessionId = result.session_id;

  const keys = await reelKeys();
  assert.equal(keys.length, 1, JSON.stringify(keys));
  assert.equal(keys[0].sessionId, sessionId);
  assert.equal(keys[0].subpath, undefined);
  projectKey = keys[0].projectKey;

  // the local transcript (the CLI's own JSONL) and reel's copy are the same entries
  const [file] = sb.transcripts();
  assert.ok(file.endsWith(`${sessionId}.jsonl`), file);
  const local = readJsonl(file);
  firstEntries = await store.load({ projectKey, sessionId });
  // the CLI keeps its api-request* records (request shapes, blobs) local: it does not mirror them
  const mirrored = local.filter((e) => !e.type.startsWith("api-request"));
  assert.ok(mirrored.length < local.length, "the CLI wrote local-only api-request records");
  sameEntries(firstEntries, mirrored);
  assert.ok(firstEntries.some((e) => e.type === "assistant" && JSON.stringify(e).includes("toolu_fake_")),
    "the tool use is in the mirror");
  assert.ok(firstEntries.some((e) => e.type === "user" && JSON.stringify(e).includes("PELICAN")),
    "the tool result is in the mirror");
  // reel's record: agent, the SDK's session id, a fresh summary
  const rec = await store.client.getSession(store.idOf({ projectKey, sessionId }));
  assert.equal(rec.agent, "claude-agent-sdk");
  assert.equal(rec.native_session_id, sessionId);
  assert.equal(rec.event_count, mirrored.length);
  assert.equal(rec.metadata.claude.summary_through, rec.last_sequence);

  // importSessionToStore: the same local transcript into another reel prefix, twice
  const imported = new ReelSessionStore({ baseUrl: srv.url, prefix: "imported:", foldSessionSummary });
  await importSessionToStore(sessionId, imported, { dir: sb.workspace });
  await importSessionToStore(sessionId, imported, { dir: sb.workspace });
  const importedKeys = [];
  for await (const r of imported.client.allSessions({ prefix: "imported:" })) importedKeys.push(imported.keyOf(r.id));
  assert.deepEqual(importedKeys, [{ projectKey, sessionId }], "the same key the query's mirror used");
  const got = await imported.load(importedKeys[0]);
  // entries with a uuid once (the idempotency key); those without one once per import
  const withUuid = (l) => l.filter((e) => e.uuid);
  sameEntries(withUuid(got), withUuid(local));
  assert.equal(got.length - withUuid(got).length, 2 * (local.length - withUuid(local).length));
  await imported.close();
});

test("with the local transcripts deleted, resume loads the session from reel and the next model request carries the earlier turns",
  { timeout: 120_000, skip }, async () => {
    assert.ok(sessionId, "needs the first test");
    sb.removeTranscripts();
    assert.deepEqual(sb.transcripts(), []);
    const before = api.modelRequests().length;
    const msgs = await collect(query({ prompt: "SECOND question",
      options: queryOptions(sb, { sessionStore: store, resume: sessionId }) }));
    const result = msgs.find((m) => m.type === "result");
    assert.equal(result?.subtype, "success", JSON.stringify(result));
    assert.equal(result.session_id, sessionId, "the same session continues");
    assert.match(result.result, /^ECHO \d+: SECOND question/);

    const reqs = api.modelRequests().slice(before);
    assert.equal(reqs.length, 1);
    const text = transcriptText(reqs[0].body);
    // every earlier turn, in order, then the new prompt
    const order = [`READ ${sb.notes}`, "tool_use Read", "tool_result ", "PELICAN", "DONE ", "SECOND question"];
    let at = -1;
    for (const needle of order) {
      const i = text.indexOf(needle, at + 1);
      assert.ok(i > at, `"${needle}" after position ${at} in:\n${text}`);
      at = i;
    }
    assert.ok(reqs[0].body.messages.length >= 5, `${reqs[0].body.messages.length} messages`);

    // reel now holds both turns: the first turn's entries unchanged, then the second's
    const all = await store.load({ projectKey, sessionId });
    assert.deepEqual(all.slice(0, firstEntries.length), firstEntries);
    assert.ok(all.length > firstEntries.length);
    assert.ok(all.slice(firstEntries.length).some((e) => JSON.stringify(e).includes("SECOND question")));
  });

test("another machine (a fresh HOME and CLAUDE_CONFIG_DIR, the same project path) resumes the session from reel alone",
  { timeout: 120_000, skip }, async () => {
    assert.ok(sessionId, "needs the first tests");
    const other = makeSandbox(api.url);
    try {
      assert.deepEqual(other.transcripts(), []);
      const before = api.modelRequests().length;
      const msgs = await collect(query({ prompt: "THIRD from elsewhere",
        options: { ...queryOptions(other, { sessionStore: store, resume: sessionId }), cwd: sb.workspace } }));
      const result = msgs.find((m) => m.type === "result");
      assert.equal(result?.subtype, "success", JSON.stringify(result));
      assert.equal(result.session_id, sessionId);
      const text = transcriptText(api.modelRequests()[before].body);
      let at = -1;
      for (const needle of [`READ ${sb.notes}`, "PELICAN", "SECOND question", "ECHO", "THIRD from elsewhere"]) {
        const j = text.indexOf(needle, at + 1);
        assert.ok(j > at, `"${needle}" after position ${at} in:\n${text}`);
        at = j;
      }
    } finally {
      other.cleanup();
    }
  });

test("the SDK's store helpers work on the reel store", { timeout: 120_000, skip }, async () => {
  assert.ok(sessionId, "needs the first test");
  const dir = sb.workspace;
  const opt = { dir, sessionStore: store };

  // listSessions / getSessionInfo from the summaries kept in reel
  const listed = await listSessions(opt);
  assert.deepEqual(listed.map((s) => s.sessionId), [sessionId]);
  assert.match(listed[0].summary, /THIRD from elsewhere/, "the summary shows the last prompt");
  const rec = await store.client.getSession(store.idOf({ projectKey, sessionId }));
  assert.equal(listed[0].lastModified, Date.parse(rec.updated_at));
  const info = await getSessionInfo(sessionId, opt);
  assert.equal(info?.sessionId, sessionId);

  // getSessionMessages: the conversation, from reel
  const messages = await getSessionMessages(sessionId, opt);
  const flat = JSON.stringify(messages);
  assert.ok(messages.length >= 5, `${messages.length} messages`);
  assert.deepEqual(messages.map((m) => m.session_id), Array(messages.length).fill(sessionId));
  for (const needle of ["READ ", "PELICAN", "SECOND question", "THIRD from elsewhere"]) assert.ok(flat.includes(needle), needle);
  assert.ok(flat.indexOf("READ ") < flat.indexOf("SECOND question"));
  assert.deepEqual(await listSubagents(sessionId, opt), []);

  // renameSession / tagSession append to the session in reel; the summary shows them
  await renameSession(sessionId, "Pelican hunt", opt);
  await tagSession(sessionId, "birds", opt);
  const renamed = (await listSessions(opt)).find((s) => s.sessionId === sessionId);
  assert.equal(renamed.customTitle, "Pelican hunt");
  assert.equal(renamed.tag, "birds");

  // forkSession: a new session in reel with fresh uuids and the same conversation
  const { sessionId: forkId } = await forkSession(sessionId, { ...opt, title: "fork of pelican" });
  assert.notEqual(forkId, sessionId);
  const forked = await store.load({ projectKey, sessionId: forkId });
  assert.ok(forked && forked.length > 0);
  const srcUuids = new Set((await store.load({ projectKey, sessionId })).map((e) => e.uuid).filter(Boolean));
  assert.ok(forked.filter((e) => e.uuid).every((e) => !srcUuids.has(e.uuid)), "fresh uuids");
  const forkMessages = await getSessionMessages(forkId, opt);
  assert.equal(forkMessages.length, messages.length);
  assert.deepEqual(forkMessages.map((m) => JSON.stringify(m.message)), messages.map((m) => JSON.stringify(m.message)));
  assert.deepEqual((await listSessions(opt)).map((s) => s.sessionId).sort(), [sessionId, forkId].sort());

  // the summaries kept in reel give the SDK the same listing as loading every transcript
  // (the SDK's path for a store without listSessionSummaries)
  const noSummaries = { append: (k, e) => store.append(k, e), load: (k) => store.load(k),
    listSessions: (p) => store.listSessions(p), listSubkeys: (k) => store.listSubkeys(k) };
  const viaLoad = await listSessions({ dir, sessionStore: noSummaries });
  const viaSummaries = await listSessions(opt);
  const brief = (l) => l.map((s) => JSON.stringify([s.sessionId, s.summary, s.customTitle, s.firstPrompt, s.tag, s.cwd, s.gitBranch, s.createdAt, s.lastModified])).sort();
  assert.equal(viaLoad.length, 2);
  assert.deepEqual(brief(viaSummaries), brief(viaLoad));

  // deleteSession: gone from reel (and its listing), the fork stays
  await deleteSession(sessionId, opt);
  assert.equal(await store.load({ projectKey, sessionId }), null);
  assert.deepEqual((await listSessions(opt)).map((s) => s.sessionId), [forkId]);
  assert.deepEqual(await getSessionMessages(sessionId, opt), []);
  assert.equal((await store.client.getSession(store.idOf({ projectKey, sessionId }))).status, "deleted");
});
