// reel-client/openai-agents against the real @openai/agents (pinned in package.json here)
// and a real reel server: the same calls on the SDK's MemorySession and on ReelSession give
// the same answers; a multi-turn run() keeps its history across processes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startServer } from "../../../clients/typescript/test/server.mjs";
import { ReelClient } from "../../../clients/typescript/dist/index.js";
import { ReelSession, ITEM_TYPE, POP_TYPE, CLEAR_TYPE } from "../../../clients/typescript/dist/adapters/openai-agents.js";

const here = dirname(fileURLToPath(import.meta.url));
let skip = false;
try {
  if (!existsSync(join(here, "node_modules/@openai/agents/package.json"))) {
    execFileSync("npm", ["ci", "--no-audit", "--no-fund", "--ignore-scripts"], { cwd: here, stdio: "ignore", timeout: 300000 });
  }
} catch {
  skip = "npm ci could not install @openai/agents (offline?)";
  console.log(`openai-agents: skipped: ${skip}`);
}

let sdk, agentMod, srv, client;
before(async () => {
  if (skip) return;
  sdk = await import("@openai/agents");
  agentMod = await import("./agent.mjs");
  srv = await startServer();
  client = new ReelClient({ baseUrl: srv.url });
});
after(async () => {
  await srv?.stop();
});

const norm = (x) => (x === undefined ? undefined : JSON.parse(JSON.stringify(x)));
const msg = (role, text) =>
  role === "assistant"
    ? { type: "message", role, status: "completed", content: [{ type: "output_text", text }] }
    : { type: "message", role, content: text };

/** Runs the same operation on both sessions and compares what they answer. */
async function both(mem, reel, op, ...args) {
  const a = await mem[op](...args.map((x) => structuredClone(x)));
  const b = await reel[op](...args.map((x) => structuredClone(x)));
  assert.deepStrictEqual(norm(b), norm(a), `${op}(${args.map((x) => JSON.stringify(x)).join(", ")})`);
  return b;
}

test("the same calls on MemorySession and ReelSession answer the same (add, getItems(limit), pop, clear)", { skip }, async () => {
  const id = "oa/same ünï " + Date.now();
  const mem = new sdk.MemorySession({ sessionId: id });
  const reel = new ReelSession({ baseUrl: srv.url, sessionId: id });
  assert.equal(await reel.getSessionId(), await mem.getSessionId());
  await both(mem, reel, "getItems");
  await both(mem, reel, "popItem");
  await both(mem, reel, "clearSession");
  await both(mem, reel, "addItems", []);
  assert.equal(await client.getSession(id), null, "nothing written creates nothing");
  await both(mem, reel, "addItems", [msg("user", "hi"), msg("assistant", "hello"), { type: "function_call", callId: "c1", name: "f", arguments: "{\"n\":1}", status: "completed" }]);
  for (const l of [undefined, 0, -1, 1, 2, 3, 10]) await both(mem, reel, "getItems", l);
  await both(mem, reel, "popItem");
  await both(mem, reel, "getItems");
  await both(mem, reel, "addItems", [{ type: "function_call_result", callId: "c1", name: "f", status: "completed", output: { type: "text", text: "r" } }, msg("user", "big 18446744073709551615 ünï 🎬")]);
  await both(mem, reel, "popItem");
  await both(mem, reel, "popItem");
  await both(mem, reel, "getItems", 2);
  await both(mem, reel, "clearSession");
  await both(mem, reel, "getItems");
  await both(mem, reel, "popItem");
  await both(mem, reel, "addItems", [msg("user", "after clear")]);
  await both(mem, reel, "getItems");
  // A new instance (a new process) folds the same log to the same items.
  const again = new ReelSession({ baseUrl: srv.url, sessionId: id });
  assert.deepStrictEqual(norm(await again.getItems()), norm(await mem.getItems()));
  // The log stayed append-only: every item ever added is still there, with the markers.
  const types = [];
  let after = 0;
  for (;;) {
    const p = await client.events(id, { after, limit: 1000 });
    types.push(...p.events.map((e) => e.type));
    after = p.next;
    if (!p.more) break;
  }
  assert.equal(types.filter((t) => t === ITEM_TYPE).length, 6);
  assert.equal(types.filter((t) => t === POP_TYPE).length, 3);
  assert.equal(types.filter((t) => t === CLEAR_TYPE).length, 1);
  assert.equal((await client.getSession(id)).agent, "openai-agents");
});

test("300 random operations: MemorySession and ReelSession agree at every step", { skip }, async () => {
  let seed = 12345;
  const rnd = (n) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const id = "oa/random-" + Date.now();
  const mem = new sdk.MemorySession({ sessionId: id });
  const reel = new ReelSession({ baseUrl: srv.url, sessionId: id });
  let k = 0;
  for (let step = 0; step < 300; step++) {
    const r = rnd(100);
    if (r < 40) await both(mem, reel, "addItems", Array.from({ length: rnd(4) }, () => msg(rnd(2) ? "user" : "assistant", `m${k++}`)));
    else if (r < 65) await both(mem, reel, "popItem");
    else if (r < 70) await both(mem, reel, "clearSession");
    else await both(mem, reel, "getItems", rnd(3) === 0 ? undefined : rnd(8) - 1);
  }
  await both(mem, reel, "getItems");
});

test("two ReelSession instances on one session: concurrent pops remove distinct items, adds are all kept", { skip }, async () => {
  const id = "oa/concurrent-" + Date.now();
  const a = new ReelSession({ baseUrl: srv.url, sessionId: id });
  const b = new ReelSession({ baseUrl: srv.url, sessionId: id });
  await a.addItems(Array.from({ length: 20 }, (_, i) => msg("user", `x${i}`)));
  const popped = await Promise.all([...Array(6)].flatMap(() => [a.popItem(), b.popItem()]));
  const texts = popped.map((p) => p.content);
  assert.equal(new Set(texts).size, 12, "every pop removed a different item");
  assert.deepEqual(texts.sort(), Array.from({ length: 12 }, (_, i) => `x${i + 8}`).sort());
  await Promise.all([a.addItems([msg("user", "from a")]), b.addItems([msg("user", "from b")])]);
  const items = (await a.getItems()).map((i) => i.content);
  assert.deepEqual(items.slice(0, 8), Array.from({ length: 8 }, (_, i) => `x${i}`));
  assert.deepEqual(items.slice(8).sort(), ["from a", "from b"]);
  assert.deepEqual((await b.getItems()).map((i) => i.content), items);
});

test("a multi-turn run() with a scripted model keeps its history across new processes, as MemorySession does in one", { skip }, async () => {
  const run = promisify(execFile);
  const id = "oa/run " + Date.now();
  const turns = [];
  for (const n of [1, 2, 3]) {
    const { stdout } = await run(process.execPath, [join(here, "agent.mjs"), srv.url, id, String(n)], { timeout: 60000 });
    turns.push(JSON.parse(stdout));
  }
  // The same three turns in one process with the SDK's own in-memory session.
  const mem = new sdk.MemorySession();
  const memTurns = [];
  for (const n of [1, 2, 3]) memTurns.push(await agentMod.turn(mem, n));
  assert.deepStrictEqual(turns.map((t) => t.output), memTurns.map((t) => t.output));
  assert.deepStrictEqual(turns.map((t) => t.inputs), norm(memTurns.map((t) => t.inputs)), "the model saw the same inputs");
  // Turn 2's (new process) first model call carries turn 1: question, tool call, tool result, answer.
  const seen = JSON.stringify(turns[1].inputs[0]);
  for (const s of ["What's the weather in Paris?", "call_weather_1", "sunny in Paris, 21 °C", "It is sunny in Paris, 21 °C.", "What did I just ask you?"]) {
    assert.ok(seen.includes(JSON.stringify(s).slice(1, -1)), `turn 2 input has ${s}`);
  }
  assert.equal(turns[2].inputs[0].length, memTurns[2].inputs[0].length);
  const stored = await new ReelSession({ baseUrl: srv.url, sessionId: id }).getItems();
  assert.deepStrictEqual(stored, norm(await mem.getItems()));
});

test("TypeScript: a ReelSession is assignable to the SDK's Session type (tsc against the SDK's own .d.ts)", { skip }, () => {
  const tsc = join(here, "../../../clients/typescript/node_modules/.bin/tsc");
  const dir = mkdtempSync(join(here, ".typecheck-"));
  try {
    writeFileSync(
      join(dir, "check.ts"),
      [
        'import type { Session, AgentInputItem } from "@openai/agents";',
        'import { ReelSession } from "../../../../clients/typescript/dist/adapters/openai-agents.js";',
        'const a: Session = new ReelSession({ sessionId: "x" });',
        'const b: Session = new ReelSession<AgentInputItem>({ sessionId: "x" });',
        "void a; void b;",
        "",
      ].join("\n"),
    );
    const args = ["--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022", "--strict", "--noEmit", "--skipLibCheck", "--lib", "es2022,dom", join(dir, "check.ts")];
    try {
      execFileSync(tsc, args, { cwd: dir, encoding: "utf8", timeout: 120000 });
    } catch (e) {
      assert.fail("tsc: " + (e.stdout || e.message));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
