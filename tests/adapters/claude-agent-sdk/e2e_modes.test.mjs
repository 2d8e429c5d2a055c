// The reel store under the SDK's other modes: eager flushing (an append() per transcript
// frame) mirrors the same transcript; a reel server with a bearer token works with the
// store's `token` and, with a wrong token, the SDK reports the refused appends as
// mirror_error messages (the query itself still completes: the local transcript is the
// primary copy).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { sdk, skip } from "./install.mjs";
import { ReelSessionStore } from "../../../clients/typescript/dist/adapters/claude-agent-sdk.js";
import { startServer } from "../../../clients/typescript/test/server.mjs";
import { startFakeAnthropic } from "./fake_anthropic.mjs";
import { makeSandbox, queryOptions, collect } from "./sdk_env.mjs";

const { query, foldSessionSummary } = sdk ?? {};
const TOKEN = "s3cr3t-claude-adapter";
let srv, api;
const sandboxes = [];
before(async () => {
  if (skip) return;
  srv = await startServer({ args: ["--token", TOKEN] });
  api = await startFakeAnthropic();
});
after(async () => {
  await api?.close();
  await srv?.stop();
  for (const sb of sandboxes) sb.cleanup();
});

const readJsonl = (f) => fs.readFileSync(f, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));

test("eager flushing, with a token: one append() per frame, the same transcript in reel", { timeout: 120_000, skip }, async () => {
  const sb = makeSandbox(api.url);
  sandboxes.push(sb);
  const store = new ReelSessionStore({ baseUrl: srv.url, token: TOKEN, foldSessionSummary });
  let appends = 0;
  const counting = { ...Object.fromEntries(["load", "listSessions", "listSessionSummaries", "delete", "listSubkeys"]
    .map((m) => [m, (...a) => store[m](...a)])), append: (k, e) => { appends++; return store.append(k, e); } };
  const msgs = await collect(query({ prompt: `READ ${sb.notes}`,
    options: queryOptions(sb, { sessionStore: counting, sessionStoreFlush: "eager" }) }));
  const result = msgs.find((m) => m.type === "result");
  assert.equal(result?.subtype, "success");
  assert.ok(!msgs.some((m) => m.subtype === "mirror_error"));
  const projectKey = sb.workspace.replace(/[^A-Za-z0-9]/g, "-");
  const local = readJsonl(sb.transcripts()[0]).filter((e) => !e.type.startsWith("api-request"));
  const got = await store.load({ projectKey, sessionId: result.session_id });
  assert.equal(got.length, local.length);
  got.forEach((e, i) => assert.ok(isDeepStrictEqual(e, local[i]), `entry ${i} (${local[i].type})`));
  assert.ok(appends >= 4, `${appends} append() calls`);
  await store.close();
});

test("a wrong token: the SDK reports each refused batch as mirror_error, the query completes", { timeout: 120_000, skip }, async () => {
  const sb = makeSandbox(api.url);
  sandboxes.push(sb);
  const store = new ReelSessionStore({ baseUrl: srv.url, token: "wrong", foldSessionSummary, retries: 0 });
  const msgs = await collect(query({ prompt: `READ ${sb.notes}`, options: queryOptions(sb, { sessionStore: store }) }));
  const result = msgs.find((m) => m.type === "result");
  assert.equal(result?.subtype, "success");
  const errors = msgs.filter((m) => m.type === "system" && m.subtype === "mirror_error");
  assert.ok(errors.length >= 1, "mirror_error reported");
  assert.match(errors[0].error, /401/);
  assert.equal(errors[0].key.sessionId, result.session_id);
  // nothing reached reel
  const admin = new ReelSessionStore({ baseUrl: srv.url, token: TOKEN });
  assert.equal(await admin.load(errors[0].key), null);
  await store.close();
  await admin.close();
});
