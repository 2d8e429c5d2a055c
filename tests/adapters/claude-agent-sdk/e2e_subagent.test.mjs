// A subagent's transcript through reel: the real CLI runs a foreground general-purpose
// subagent (the fake API answers the main loop with an Agent tool use); the SDK mirrors the
// subagent's transcript to its subkey ("subagents/agent-<id>"), a separate reel session;
// listSubkeys finds it, the SDK's listSubagents / getSubagentMessages read it from reel,
// resume (local files deleted) materializes it through listSubkeys + load, and deleting the
// session deletes it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { sdk, skip } from "./install.mjs";
import { ReelSessionStore } from "../../../clients/typescript/dist/adapters/claude-agent-sdk.js";
import { startServer } from "../../../clients/typescript/test/server.mjs";
import { startFakeAnthropic, transcriptText } from "./fake_anthropic.mjs";
import { makeSandbox, queryOptions, collect } from "./sdk_env.mjs";

const { query, foldSessionSummary, listSubagents, getSubagentMessages, deleteSession } = sdk ?? {};
let srv, api, sb, store;
const calls = [];
// the store as the SDK sees it, recording which keys it loads and lists
let spy;
before(async () => {
  if (skip) return;
  srv = await startServer();
  api = await startFakeAnthropic();
  sb = makeSandbox(api.url);
  process.env.CLAUDE_CONFIG_DIR = sb.config;
  store = new ReelSessionStore({ baseUrl: srv.url, foldSessionSummary });
  spy = {
    append: (k, e) => store.append(k, e),
    load: (k) => { calls.push(["load", k]); return store.load(k); },
    listSessions: (p) => store.listSessions(p),
    listSessionSummaries: (p) => store.listSessionSummaries(p),
    delete: (k) => store.delete(k),
    listSubkeys: (k) => { calls.push(["listSubkeys", k]); return store.listSubkeys(k); },
  };
});
after(async () => {
  await store?.close();
  await api?.close();
  await srv?.stop();
  sb?.cleanup();
});

const readJsonl = (f) => fs.readFileSync(f, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
const mirroredOnly = (l) => l.filter((e) => !e.type.startsWith("api-request"));

test("a subagent's transcript is a subkey in reel, read back by the SDK, materialized on resume, deleted with its session",
  { timeout: 180_000, skip }, async () => {
    const opts = queryOptions(sb, { sessionStore: spy, allowedTools: ["Read", "Agent"] });
    const msgs = await collect(query({ prompt: "DELEGATE count the birds", options: opts }));
    const result = msgs.find((m) => m.type === "result");
    assert.equal(result?.subtype, "success", JSON.stringify(result));
    assert.match(result.result, /SUB DONE: count the birds/);
    const sessionId = result.session_id;
    const projectKey = sb.workspace.replace(/[^A-Za-z0-9]/g, "-");
    const dir = sb.workspace;

    // reel: the main session and one subkey, the subagent's transcript equal to the local one
    const subkeys = await store.listSubkeys({ projectKey, sessionId });
    assert.equal(subkeys.length, 1, JSON.stringify(subkeys));
    assert.match(subkeys[0], /^subagents\/agent-[0-9a-f]+$/);
    const agentId = subkeys[0].slice("subagents/agent-".length);
    const localSub = sb.transcripts().find((f) => f.endsWith(`agent-${agentId}.jsonl`));
    assert.ok(localSub, "the CLI wrote the subagent's transcript locally");
    const loadedSub = await store.load({ projectKey, sessionId, subpath: subkeys[0] });
    // the SDK mirrors the subagent's sidecar (agent-<id>.meta.json) as agent_metadata entries
    const metas = loadedSub.filter((e) => e.type === "agent_metadata");
    assert.ok(metas.length >= 1);
    const { type: _t, ...lastMeta } = metas.at(-1);
    assert.deepEqual(lastMeta, JSON.parse(fs.readFileSync(localSub.replace(/\.jsonl$/, ".meta.json"), "utf8")));
    const reelSub = loadedSub.filter((e) => e.type !== "agent_metadata");
    const want = mirroredOnly(readJsonl(localSub));
    assert.equal(reelSub.length, want.length, reelSub.map((e) => e.type).join(" "));
    reelSub.forEach((e, i) => assert.ok(isDeepStrictEqual(e, want[i]), `subagent entry ${i} (${want[i].type})`));
    assert.ok(reelSub.some((e) => JSON.stringify(e).includes("SUBTASK count the birds")));
    assert.ok(reelSub.every((e) => e.isSidechain !== false));
    assert.deepEqual((await store.listSessions(projectKey)).map((s) => s.sessionId), [sessionId],
      "a subkey is no session of its own");
    const rec = await store.client.getSession(store.idOf({ projectKey, sessionId, subpath: subkeys[0] }));
    assert.equal(rec.native_session_id, sessionId);

    // the SDK's subagent helpers on the reel store
    assert.deepEqual(await listSubagents(sessionId, { dir, sessionStore: spy }), [agentId]);
    const subMsgs = await getSubagentMessages(sessionId, agentId, { dir, sessionStore: spy });
    assert.ok(subMsgs.length >= 2, `${subMsgs.length} subagent messages`);
    assert.ok(JSON.stringify(subMsgs).includes("SUB DONE: count the birds"));

    // resume with the local files gone: the SDK lists the subkeys and loads them from reel
    sb.removeTranscripts();
    calls.length = 0;
    const before = api.modelRequests().length;
    const again = await collect(query({ prompt: "SECOND after the subagent", options: { ...opts, resume: sessionId } }));
    assert.equal(again.find((m) => m.type === "result")?.subtype, "success");
    assert.ok(calls.some(([op, k]) => op === "load" && k.sessionId === sessionId && k.subpath === undefined), "main transcript loaded");
    assert.ok(calls.some(([op, k]) => op === "listSubkeys" && k.sessionId === sessionId), "subkeys listed");
    assert.ok(calls.some(([op, k]) => op === "load" && k.subpath === subkeys[0]), "subagent transcript loaded");
    const text = transcriptText(api.modelRequests()[before].body);
    for (const needle of ["DELEGATE count the birds", "tool_use Agent", "SUB DONE: count the birds", "SECOND after the subagent"])
      assert.ok(text.includes(needle), `${needle} in:\n${text}`);

    // deleteSession: the main key and its subkey
    await deleteSession(sessionId, { dir, sessionStore: spy });
    assert.equal(await store.load({ projectKey, sessionId }), null);
    assert.equal(await store.load({ projectKey, sessionId, subpath: subkeys[0] }), null);
    assert.deepEqual(await store.listSubkeys({ projectKey, sessionId }), []);
    assert.deepEqual(await listSubagents(sessionId, { dir, sessionStore: spy }), []);
  });
