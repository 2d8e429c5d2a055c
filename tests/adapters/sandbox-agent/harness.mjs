// harness.mjs -- real processes for the sandbox-agent adapter tests, all on 127.0.0.1:
//
// - startSandboxServer(): the @sandbox-agent/cli server binary (the linux-x64 build that npm
//   installs as an optional dependency of @sandbox-agent/cli, pinned in package.json) as
//   `sandbox-agent server --no-token --no-telemetry --host 127.0.0.1 --port P`, with HOME and
//   XDG_DATA_HOME in a temp dir (so it installs and reads nothing of the user's) and PATH
//   starting with a temp bin dir holding `pi-acp`, a launcher for scripted_acp_agent.mjs.
//   sandbox-agent resolves the ACP process of its `pi` agent as a `pi-acp` on PATH
//   ("resolve_agent_process: resolved PATH binary hint") and `pi` needs no native binary, so
//   `createSession({agent: "pi"})` runs the scripted agent: no download, no network.
// - ensureInstalled(): `npm ci` of this folder's pinned packages when node_modules is missing.
// reel itself is started by clients/typescript/test/server.mjs.
//
// Every process is killed when the test process exits.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, "../../..");
export const CLI_BIN = path.join(HERE, "node_modules/@sandbox-agent/cli-linux-x64/bin/sandbox-agent");
export const AGENT = path.join(HERE, "scripted_acp_agent.mjs");

const children = new Set();
function killAll() { for (const c of children) { try { c.kill("SIGKILL"); } catch {} } children.clear(); }
process.on("exit", killAll);

export async function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.on("error", reject);
        s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
    });
}

async function waitHttp(url, child, what, ms = 15000) {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
        if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${child.errText ?? ""}`);
        try { const r = await fetch(url); if (r.ok) { await r.arrayBuffer(); return; } } catch {}
        await new Promise(r => setTimeout(r, 50));
    }
    throw new Error(`${what} did not answer ${url} within ${ms} ms: ${child.errText ?? ""}`);
}

function track(child) {
    children.add(child);
    child.errText = "";
    child.stderr?.on("data", d => { child.errText = (child.errText + d).slice(-4000); });
    child.on("exit", () => children.delete(child));
    return child;
}

async function stop(child) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const done = new Promise(r => child.once("exit", r));
    child.kill("SIGTERM");
    const t = setTimeout(() => child.kill("SIGKILL"), 3000);
    await done;
    clearTimeout(t);
}

// null when this folder's packages are installed (npm ci --ignore-scripts when missing), else why not
export function ensureInstalled() {
    if (fs.existsSync(path.join(HERE, "node_modules/sandbox-agent/package.json"))) return null;
    const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund", "--ignore-scripts"], { cwd: HERE, encoding: "utf8", timeout: 300000 });
    if (r.status !== 0) return `npm ci could not install sandbox-agent and @sandbox-agent/cli (offline?): ${(r.stderr || r.error || "").toString().slice(-300)}`;
    return null;
}

export function cliAvailable() {
    if (process.platform !== "linux" || process.arch !== "x64") return `no sandbox-agent binary for ${process.platform}-${process.arch} in this test`;
    if (!fs.existsSync(CLI_BIN)) return `${CLI_BIN} is missing (npm ci did not install @sandbox-agent/cli-linux-x64)`;
    try { fs.accessSync(CLI_BIN, fs.constants.X_OK); } catch { fs.chmodSync(CLI_BIN, 0o755); } // npm ci --ignore-scripts skips its postinstall chmod
    return null;
}

export async function startSandboxServer() {
    const why = cliAvailable();
    if (why) throw new Error(why);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reel-sbx-"));
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    fs.mkdirSync(path.join(dir, "home"));
    const log = path.join(dir, "agent.jsonl");
    fs.writeFileSync(path.join(bin, "pi-acp"), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(AGENT)} "$@"\n`, { mode: 0o755 });
    const port = await freePort();
    const child = track(spawn(CLI_BIN, ["server", "--no-token", "--no-telemetry", "--host", "127.0.0.1", "--port", String(port)], {
        stdio: ["ignore", "ignore", "pipe"],
        env: { PATH: `${bin}:${process.env.PATH}`, HOME: path.join(dir, "home"), XDG_DATA_HOME: path.join(dir, "data"),
               XDG_STATE_HOME: path.join(dir, "state"), SCRIPTED_AGENT_LOG: log, RUST_LOG: "warn" },
    }));
    const baseUrl = `http://127.0.0.1:${port}`;
    await waitHttp(`${baseUrl}/v1/health`, child, "sandbox-agent server");
    return {
        baseUrl, dir, agentLog: log,
        // the requests the scripted agent received, in order
        agentRequests() {
            if (!fs.existsSync(log)) return [];
            return fs.readFileSync(log, "utf8").split("\n").filter(Boolean).map(l => JSON.parse(l).msg);
        },
        async stop() { await stop(child); fs.rmSync(dir, { recursive: true, force: true }); },
    };
}
