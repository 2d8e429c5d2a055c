// As a user installs it: reel-client (package.json + dist/) and the SDK side by side in an
// app's node_modules; the app imports "reel-client/claude-agent-sdk" through the package's
// subpath export, and a store made without the foldSessionSummary option finds the SDK's
// by itself (dynamic import), so its summaries equal the SDK's InMemorySessionStore's.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, cpSync, symlinkSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { skip } from "./install.mjs";
import { startServer } from "../../../clients/typescript/test/server.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "../../../clients/typescript");
let srv, app;
before(async () => {
  if (skip) return;
  srv = await startServer();
  app = mkdtempSync(join(tmpdir(), "reel-claude-app-"));
  const nm = join(app, "node_modules");
  mkdirSync(join(nm, "reel-client"), { recursive: true });
  cpSync(join(pkg, "package.json"), join(nm, "reel-client/package.json"));
  cpSync(join(pkg, "dist"), join(nm, "reel-client/dist"), { recursive: true });
  mkdirSync(join(nm, "@anthropic-ai"));
  symlinkSync(join(here, "node_modules/@anthropic-ai/claude-agent-sdk"), join(nm, "@anthropic-ai/claude-agent-sdk"));
});
after(async () => {
  await srv?.stop();
  if (app) rmSync(app, { recursive: true, force: true });
});

test("an app imports reel-client/claude-agent-sdk; without the option the store folds summaries with the SDK's own function",
  { skip, timeout: 60_000 }, () => {
    writeFileSync(join(app, "app.mjs"), `
import { ReelSessionStore } from "reel-client/claude-agent-sdk";
import { InMemorySessionStore } from "@anthropic-ai/claude-agent-sdk";
const store = new ReelSessionStore({ baseUrl: process.env.REEL_URL });
const mem = new InMemorySessionStore();
const key = { projectKey: "-app", sessionId: "11111111-2222-4333-8444-555555555555" };
const batches = [
  [{ type: "user", uuid: "u1", timestamp: "2026-01-01T00:00:00.000Z", cwd: "/app", message: { role: "user", content: "hello app" } }],
  [{ type: "custom-title", customTitle: "App title", sessionId: key.sessionId }],
];
for (const b of batches) { await store.append(key, b); await mem.append(key, b); }
const got = await store.listSessionSummaries("-app");
const want = await mem.listSessionSummaries("-app");
console.log(JSON.stringify({ got: got.map((s) => s.data), want: want.map((s) => s.data) }));
await store.close();
`);
    const out = execFileSync(process.execPath, [join(app, "app.mjs")], { cwd: app, encoding: "utf8", timeout: 30000,
      env: { ...process.env, REEL_URL: srv.url } });
    const { got, want } = JSON.parse(out.trim().split("\n").at(-1));
    assert.equal(got.length, 1);
    assert.equal(got[0].customTitle, "App title");
    assert.deepEqual(got, want);
  });
