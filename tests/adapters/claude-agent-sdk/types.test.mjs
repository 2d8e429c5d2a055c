// TypeScript: ReelSessionStore is assignable to the SDK's own SessionStore type, and the SDK's
// foldSessionSummary to the option that takes it (tsc --strict against the SDK's sdk.d.ts
// and reel-client's dist/*.d.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { skip } from "./install.mjs";

const here = dirname(fileURLToPath(import.meta.url));

function tsc(lines) {
  const bin = join(here, "../../../clients/typescript/node_modules/.bin/tsc");
  const dir = mkdtempSync(join(here, ".typecheck-"));
  try {
    writeFileSync(join(dir, "check.ts"), lines.join("\n") + "\n");
    const args = ["--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--strict",
      "--noEmit", "--skipLibCheck", "--lib", "es2022,dom", join(dir, "check.ts")];
    try {
      execFileSync(bin, args, { cwd: dir, encoding: "utf8", timeout: 120000 });
      return null;
    } catch (e) {
      return String(e.stdout || e.message);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a ReelSessionStore is the SDK's SessionStore (tsc against the SDK's own .d.ts)", { skip, timeout: 180_000 }, () => {
  const err = tsc([
    'import { query, foldSessionSummary, type SessionStore, type Options } from "@anthropic-ai/claude-agent-sdk";',
    'import { ReelSessionStore } from "../../../../clients/typescript/dist/adapters/claude-agent-sdk.js";',
    'const store: SessionStore = new ReelSessionStore({ baseUrl: "http://127.0.0.1:2469", foldSessionSummary });',
    "const options: Options = { sessionStore: new ReelSessionStore() };",
    "void store; void options; void query;",
  ]);
  assert.equal(err, null, "tsc: " + err);
});

test("the type check can fail: a wrong store is refused", { skip, timeout: 180_000 }, () => {
  const err = tsc([
    'import type { SessionStore } from "@anthropic-ai/claude-agent-sdk";',
    "const store: SessionStore = { append: async (k: string) => {}, load: async () => 1 };",
    "void store;",
  ]);
  assert.notEqual(err, null);
});
