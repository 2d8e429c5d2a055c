// A sandbox for running the real Claude Code binary (bundled with the SDK) offline: a temp
// HOME and CLAUDE_CONFIG_DIR (nothing touches the real home), a workspace with a file for
// the scripted Read tool use, and an environment that points the CLI at the fake API and
// turns off telemetry, auto-update and other nonessential traffic.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export function makeSandbox(apiUrl) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "reel-claude-sdk-"));
  const home = path.join(root, "home");
  const config = path.join(root, "config");
  const workspace = path.join(root, "workspace");
  const tmp = path.join(root, "tmp");
  for (const d of [home, config, workspace, tmp]) fs.mkdirSync(d, { recursive: true });
  const notes = path.join(workspace, "notes.txt");
  fs.writeFileSync(notes, "the secret word is PELICAN\n");
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    CLAUDE_CONFIG_DIR: config,
    TMPDIR: tmp,
    ANTHROPIC_BASE_URL: apiUrl,
    ANTHROPIC_API_KEY: "dummy",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_AUTOUPDATER: "1",
    DISABLE_TELEMETRY: "1",
    DISABLE_ERROR_REPORTING: "1",
    DISABLE_BUG_COMMAND: "1",
    CLAUDE_CODE_ENABLE_TELEMETRY: "0",
  };
  return {
    root, home, config, workspace, notes, env,
    // the CLI's local transcript files: config/projects/<sanitized cwd>/<session>.jsonl
    transcripts() {
      const dir = path.join(config, "projects");
      if (!fs.existsSync(dir)) return [];
      return fs.readdirSync(dir, { recursive: true }).map(String)
        .filter((f) => f.endsWith(".jsonl")).map((f) => path.join(dir, f));
    },
    removeTranscripts() {
      fs.rmSync(path.join(config, "projects"), { recursive: true, force: true });
    },
    cleanup() { fs.rmSync(root, { recursive: true, force: true }); },
  };
}

// The options every test's query() uses: the sandbox's cwd and env, only the Read tool
// pre-approved (the scripted tool use), no filesystem settings, a bounded number of turns.
export function queryOptions(sb, extra = {}) {
  return {
    cwd: sb.workspace,
    env: sb.env,
    allowedTools: ["Read"],
    settingSources: [],
    model: "claude-sonnet-4-5",
    maxTurns: 6,
    ...extra,
  };
}

export async function collect(q) {
  const msgs = [];
  for await (const m of q) msgs.push(m);
  return msgs;
}
