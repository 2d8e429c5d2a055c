#!/usr/bin/env node
// bench/coalesce.mjs [--seconds S] [--concurrency N] [--sync full|none] [--window MS] -- single-event
// appends from one process at N-way concurrency (default 64), without and with the client's
// coalescing, against a fresh `reel serve --sync full` (durable: every answer after fsync).
// Two layouts: all workers appending to ONE session, and each worker to its own session.
// Prints events/s, POSTs, and per-append latency (p50/p99) side by side.
// REEL_BIN picks the binary (default <repo>/build/reel). Needs `npx tsc` first (dist/).
import { startServer } from "../test/server.mjs";
import { ReelClient } from "../dist/index.js";
import os from "node:os";

const arg = (name, def) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : def;
};
const SECONDS = Number(arg("--seconds", "5"));
const N = Number(arg("--concurrency", "64"));
const SYNC = arg("--sync", "full");
const WINDOW = Number(arg("--window", "2"));

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

async function run(url, coalesce, layout, tag) {
  const c = new ReelClient({ baseUrl: url, coalesce });
  let stop = false;
  let count = 0;
  const lat = [];
  const t0 = performance.now();
  const timer = setTimeout(() => (stop = true), SECONDS * 1000);
  await Promise.all(
    Array.from({ length: N }, async (_, w) => {
      const session = layout === "one" ? `bench-${tag}` : `bench-${tag}-${w}`;
      for (let i = 0; !stop; i++) {
        const a = performance.now();
        await c.append(session, { type: "item.delta", data: { w, i, delta: "hello world " } });
        lat.push(performance.now() - a);
        count++;
      }
    }),
  );
  clearTimeout(timer);
  await c.close();
  const secs = (performance.now() - t0) / 1000;
  const posts = coalesce ? c.coalesceStats.posts : count;
  return { eps: count / secs, count, posts, p50: pct(lat, 50), p99: pct(lat, 99) };
}

const srv = await startServer({ sync: SYNC });
try {
  // warm-up
  await run(srv.url, false, "one", "warm");
  const rows = [];
  for (const layout of ["one", "per-worker"]) {
    const off = await run(srv.url, false, layout, `off-${layout}`);
    const on = await run(srv.url, { windowMs: WINDOW }, layout, `on-${layout}`);
    rows.push({ layout, off, on });
  }
  const cpu = os.cpus()[0]?.model ?? "?";
  console.log(`reel-client coalescing bench: ${N}-way concurrency, single-event appends, ${SECONDS} s each, reel serve --sync ${SYNC}`);
  console.log(`machine: ${os.cpus().length} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}, ${os.platform()} ${os.release()}`);
  console.log("");
  console.log("| sessions | coalescing | events/s | POSTs | events/POST | p50 ms | p99 ms |");
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const { layout, off, on } of rows) {
    const name = layout === "one" ? "1 shared" : `${N} (one per worker)`;
    for (const [label, r] of [["off", off], [`on (${WINDOW} ms / 100)`, on]]) {
      console.log(`| ${name} | ${label} | ${Math.round(r.eps)} | ${r.posts} | ${(r.count / r.posts).toFixed(1)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} |`);
    }
  }
  console.log("");
  for (const { layout, off, on } of rows) console.log(`${layout}: coalescing ${(on.eps / off.eps).toFixed(2)}x`);
} finally {
  await srv.stop();
}
