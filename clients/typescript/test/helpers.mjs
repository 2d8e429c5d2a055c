// Shared bits of the client tests: the built client, a TCP proxy that can drop answers.
import net from "node:net";

export { ReelClient, ReelError, newEventId, encodeSessionId } from "../dist/index.js";

/**
 * A TCP proxy on 127.0.0.1 in front of `port`. Its switches apply to the next requests,
 * on new or kept-alive connections alike (set them while no request is in flight):
 * `dropAnswers(n)`: the next n requests are forwarded to the server, and when the server's
 * answer starts, the client's connection is cut (the request was applied, the answer lost).
 * `refuse(...statuses)`: the next requests get these canned HTTP statuses (e.g. 503, 400),
 * one each, without reaching the server.
 */
export async function startProxy(port) {
  let drop = 0;
  let canned = [];
  const stats = { connections: 0, requests: 0, dropped: 0, canned: 0 };
  const sockets = new Set();
  const server = net.createServer((client) => {
    stats.connections++;
    sockets.add(client);
    const up = net.connect(port, "127.0.0.1");
    sockets.add(up);
    let armed = false; // drop the answer of the request in flight
    let busy = false; // a request was forwarded and its answer has not started
    client.on("data", (chunk) => {
      if (!busy) {
        stats.requests++;
        if (canned.length > 0) {
          const status = canned.shift();
          stats.canned++;
          const body = JSON.stringify({ type: "urn:test:canned", title: "canned", status, detail: "from the test proxy" });
          client.end(`HTTP/1.1 ${status} Canned\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
          up.destroy();
          return;
        }
        if (drop > 0) {
          drop--;
          armed = true;
        }
        busy = true;
      }
      up.write(chunk);
    });
    up.on("data", (chunk) => {
      busy = false;
      if (armed) {
        stats.dropped++;
        client.destroy();
        up.destroy();
        return;
      }
      client.write(chunk);
    });
    for (const [a, b] of [[client, up], [up, client]]) {
      a.on("error", () => b.destroy());
      a.on("close", () => { sockets.delete(a); b.destroy(); });
      a.on("end", () => b.end());
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    stats,
    dropAnswers(n) { drop = n; },
    refuse(...statuses) { canned = statuses; },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Every event of a session, by paging. */
export async function readAll(client, session) {
  const out = [];
  let after = 0;
  for (;;) {
    const p = await client.events(session, { after, limit: 1000 });
    out.push(...p.events);
    after = p.next;
    if (!p.more) return out;
  }
}
