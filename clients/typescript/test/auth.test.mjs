// The bearer token on every route the client uses, SSE included; 401/403 are not retried.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "./server.mjs";
import { ReelClient, ReelError, startProxy, newEventId } from "./helpers.mjs";

let srv;
let dir;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "reel-client-tokens-"));
  const file = join(dir, "tokens");
  writeFileSync(file, "t-full full\nt-read read\n");
  srv = await startServer({ args: ["--tokens-file", file] });
});
after(async () => {
  await srv?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("token: appends, reads, SSE and deletes with a full token; 401 without, 403 with a read token, each answered once", async () => {
  const proxy = await startProxy(srv.port);
  try {
    const full = new ReelClient({ baseUrl: proxy.url, token: "t-full" });
    const s = "auth/" + newEventId();
    await full.appendBatch(s, [{ type: "a" }, { type: "b" }]);
    assert.equal((await full.events(s)).events.length, 2);
    const got = [];
    for await (const ev of full.subscribe(s)) {
      got.push(ev.sequence);
      if (got.length === 2) break;
    }
    assert.deepEqual(got, [1, 2]);
    const before = proxy.stats.requests;
    const none = new ReelClient({ baseUrl: proxy.url });
    await assert.rejects(none.events(s), (e) => e instanceof ReelError && e.status === 401 && e.code === "unauthorized");
    await assert.rejects(
      (async () => {
        for await (const _ of none.subscribe(s)) break;
      })(),
      (e) => e instanceof ReelError && e.status === 401,
    );
    const reader = new ReelClient({ baseUrl: proxy.url, token: "t-read" });
    assert.equal((await reader.getSession(s)).event_count, 2);
    await assert.rejects(reader.append(s, { type: "c" }), (e) => e instanceof ReelError && e.status === 403 && e.code === "forbidden");
    await assert.rejects(reader.deleteSession(s), (e) => e instanceof ReelError && e.status === 403);
    assert.equal(proxy.stats.requests - before, 5, "no retry of a 401/403");
    assert.equal(await full.deleteSession(s), true);
  } finally {
    await proxy.close();
  }
});
