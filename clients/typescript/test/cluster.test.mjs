// ClusterReader (src/cluster.ts) against two real cells (`reel serve --cluster-map --cell`),
// compared with `reel cluster events|sessions` and with the map's owners.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "./server.mjs";
import { reelBin } from "./server.mjs";
import { ReelClient, ClusterReader, ClusterMap, parseCursor, formatCursor } from "../dist/index.js";

const freePort = () => new Promise((res) => {
  const s = net.createServer();
  s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => res(p)); });
});

let cells = {};
let mapPath;
before(async () => {
  const ports = { c1: await freePort(), c2: await freePort() };
  mapPath = join(mkdtempSync(join(tmpdir(), "reel-cluster-")), "map.json");
  writeFileSync(mapPath, execFileSync(reelBin, ["cluster", "init", "--shards", "64",
    ...Object.entries(ports).map(([c, p]) => `${c}=127.0.0.1:${p}`)]));
  for (const [c, p] of Object.entries(ports)) {
    cells[c] = await startServer({ args: ["--listen", `127.0.0.1:${p}`, "--cluster-map", mapPath, "--cell", c] });
  }
});
after(async () => {
  for (const s of Object.values(cells)) await s.stop();
});

test("vector cursor text form", () => {
  assert.deepEqual(parseCursor(""), {});
  assert.deepEqual(parseCursor("c2:5,c1:0"), { c1: 0, c2: 5 });
  assert.equal(formatCursor({ c2: 5, c1: 0 }), "c1:0,c2:5");
  for (const bad of ["c1", "c1:x", "c1:1,,c2:2", "c 1:2"]) assert.throws(() => parseCursor(bad));
});

test("every event once, in session order, resumable; every session once from its owner", async () => {
  const doc = JSON.parse(readFileSync(mapPath, "utf8"));
  const map = new ClusterMap(doc);
  const direct = Object.fromEntries(Object.entries(cells).map(([c, s]) => [c, new ReelClient({ baseUrl: s.url })]));
  const sids = [...Array.from({ length: 40 }, (_, i) => `s-${i}`), ...Array.from({ length: 5 }, (_, i) => `team/ü ${i}`), "ds:chat~2F1"];
  for (let r = 0; r < 3; r++) {
    for (const sid of sids) await direct[map.owner(sid)].appendBatch(sid, Array(r + 1).fill({ type: "n", data: { r } }));
  }
  // the owners computed here are reel's: appends direct to a non-owner would be 421
  const reader = new ClusterReader(doc);
  const got = [];
  for await (const e of reader.events({ limit: 7 })) got.push(e);
  const seen = {};
  for (const e of got) {
    const sid = e.event.session_id;
    assert.equal(e.cell, map.owner(sid));
    assert.equal(e.event.sequence, (seen[sid] ?? 0) + 1);
    seen[sid] = e.event.sequence;
  }
  assert.deepEqual(seen, Object.fromEntries(sids.map((s) => [s, 6])));
  const times = got.map((e) => e.event.time); // merged by commit time
  assert.deepEqual(times, [...times].sort());
  const cli = execFileSync(reelBin, ["cluster", "events", "--map", mapPath], { stdio: ["ignore", "pipe", "ignore"] })
    .toString().trim().split("\n").map((l) => JSON.parse(l));
  const key = (c, p) => `${c}:${p}`;
  assert.deepEqual(cli.map((e) => key(e.cell, e.position)).sort(), got.map((e) => key(e.cell, e.event.position)).sort());
  const k = Math.floor(got.length / 2);
  const rest = [];
  for await (const e of reader.events({ after: got[k].cursor })) rest.push(e);
  assert.deepEqual(rest.map((e) => key(e.cell, e.event.position)).sort(), got.slice(k + 1).map((e) => key(e.cell, e.event.position)).sort());
  const recs = [];
  for await (const [cell, rec] of reader.sessions()) {
    assert.equal(cell, map.owner(rec.id));
    recs.push(rec.id);
  }
  assert.deepEqual(recs.sort(), [...sids].sort());
  await reader.close();
  for (const c of Object.values(direct)) await c.close();
});
