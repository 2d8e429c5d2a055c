import { test } from "node:test";
import assert from "node:assert/strict";
import { startServer } from "./server.mjs";

test("server.mjs starts, restarts on the same port, stops", async () => {
  const srv = await startServer();
  const r = await fetch(srv.url + "/v1/health");
  assert.equal(r.status, 200);
  const port = srv.port;
  await srv.kill9();
  await srv.restart();
  assert.equal(srv.port, port);
  assert.equal((await fetch(srv.url + "/v1/health")).status, 200);
  await srv.stop();
});
