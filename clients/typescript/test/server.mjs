// test/server.mjs -- start a real reel server for a test file.
//
//   import { startServer } from "./server.mjs";   // or ../../clients/typescript/test/server.mjs
//   const srv = await startServer();              // { url, port, dataDir, stop, kill9, restart }
//   ...; await srv.stop();
//
// The binary is $REEL_BIN, else <repo>/build/reel. It listens on 127.0.0.1 on a port the
// kernel picks (`--listen 127.0.0.1:0`, read back from its stderr), on a fresh temporary data
// directory, with `--sync none` unless `sync: "full"` is asked. startServer resolves once
// GET /v1/health answers 200. restart() starts it again on the same port and data directory
// (after stop() or kill9()). Every server still running is killed (SIGKILL) when the test
// process exits, and its temporary directory removed.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../../..");
export const reelBin = process.env.REEL_BIN ? resolve(process.env.REEL_BIN) : join(repoRoot, "build/reel");

const live = new Set();
process.on("exit", () => {
  for (const s of live) {
    try { s.child?.kill("SIGKILL"); } catch {}
    if (!s.keep) try { rmSync(s.tmp, { recursive: true, force: true }); } catch {}
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitHealthy(url, child, deadlineMs) {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`reel serve exited (${child.exitCode ?? child.signalCode})`);
    try {
      const r = await fetch(url + "/v1/health");
      await r.arrayBuffer();
      if (r.status === 200) return;
    } catch {}
    await sleep(20);
  }
  throw new Error("reel serve did not become healthy");
}

/**
 * @param {{ sync?: "none"|"full", args?: string[], bin?: string, env?: Record<string,string>, dataDir?: string, keep?: boolean }} [o]
 */
export async function startServer(o = {}) {
  const bin = o.bin ?? reelBin;
  if (!existsSync(bin)) throw new Error(`${bin} is not built (run make)`);
  const tmp = mkdtempSync(join(tmpdir(), "reel-client-test-"));
  const s = {
    tmp,
    keep: !!o.keep,
    dataDir: o.dataDir ?? join(tmp, "data"),
    port: 0,
    url: "",
    child: null,
    stderr: "",
  };
  live.add(s);

  async function launch() {
    const args = ["serve", "--data", s.dataDir, "--listen", `127.0.0.1:${s.port}`, "--sync", o.sync ?? "none", ...(o.args ?? [])];
    const child = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...(o.env ?? {}) } });
    s.child = child;
    s.stderr = "";
    const port = await new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error("reel serve printed no port:\n" + s.stderr)), 10000);
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (d) => {
        s.stderr += d;
        const m = /listening on http:\/\/[^ ]*:(\d+)\//.exec(s.stderr);
        if (m) { clearTimeout(t); res(Number(m[1])); }
      });
      child.on("exit", (code, sig) => { clearTimeout(t); rej(new Error(`reel serve exited (${code ?? sig}):\n${s.stderr}`)); });
    });
    child.removeAllListeners("exit");
    s.port = port;
    s.url = `http://127.0.0.1:${port}`;
    api.url = s.url;
    api.port = port;
    await waitHealthy(s.url, child, 10000);
  }

  async function waitExit(child, ms) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await Promise.race([new Promise((r) => child.once("exit", r)), sleep(ms)]);
  }

  const api = {
    url: "",
    port: 0,
    dataDir: s.dataDir,
    get stderr() { return s.stderr; },
    get pid() { return s.child?.pid; },
    /** SIGTERM (graceful), wait for the exit; removes the temp dir unless restart follows. */
    async stop({ keepData = false } = {}) {
      const c = s.child;
      if (c) {
        c.kill("SIGTERM");
        await waitExit(c, 5000);
        if (c.exitCode === null && c.signalCode === null) { c.kill("SIGKILL"); await waitExit(c, 5000); }
        s.child = null;
      }
      if (!keepData && !s.keep) {
        live.delete(s);
        rmSync(tmp, { recursive: true, force: true });
      }
    },
    /** kill -9, wait for the exit; keeps the data directory for restart(). */
    async kill9() {
      const c = s.child;
      if (!c) return;
      c.kill("SIGKILL");
      await waitExit(c, 5000);
      s.child = null;
    },
    /** Start again on the same port and data directory (stops a running one first). */
    async restart() {
      if (s.child) await api.stop({ keepData: true });
      // the port may take a moment to be free again
      const end = Date.now() + 10000;
      for (;;) {
        try { await launch(); return; } catch (e) {
          if (Date.now() > end) throw e;
          await sleep(50);
        }
      }
    },
  };
  await launch();
  return api;
}

/** A promise that rejects after ms (for bounding tests). */
export function within(ms, p, what = "operation") {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what} took more than ${ms} ms`)), ms); })]).finally(() => clearTimeout(t));
}

