// Installs this folder's pinned @anthropic-ai/claude-agent-sdk (package.json + lockfile) with
// `npm ci --ignore-scripts` when node_modules lacks it (the SDK has no install script; its
// Claude Code binary is the platform package it lists as an optional dependency), then
// imports it. `skip` is a reason (string) only when npm could not install (offline); the
// test files pass it to test() so the runner prints why.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export let skip = false;
export let sdk = null;
try {
  if (!existsSync(join(here, "node_modules/@anthropic-ai/claude-agent-sdk/package.json"))) {
    execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--ignore-scripts"], { cwd: here, stdio: "ignore", timeout: 600000 });
  }
} catch {
  skip = "npm ci could not install @anthropic-ai/claude-agent-sdk (offline?)";
  console.log(`claude-agent-sdk: skipped: ${skip}`);
}
if (!skip) sdk = await import("@anthropic-ai/claude-agent-sdk");
