// The text/event-stream parser on its own: line ends, chunk splits, fields, comments.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SseParser } from "../dist/sse.js";

function parse(chunks) {
  const out = [];
  const retries = [];
  const p = new SseParser({ onMessage: (m) => out.push(m), onRetry: (ms) => retries.push(ms) });
  for (const c of chunks) p.push(c);
  return { out, retries };
}

const stream = "retry: 2000\n\n: keepalive\nid: 1\ndata: {\"a\":1}\n\nid: 2\ndata: line1\ndata: line2\n\nevent: other\ndata: x\n\ndata:nospace\n\nid: 3\ndata: ünï 🎬\n\n";

test("LF, CRLF and CR line ends parse the same", () => {
  const want = parse([stream]).out;
  assert.deepEqual(want.map((m) => [m.id, m.event, m.data]), [
    ["1", "message", '{"a":1}'],
    ["2", "message", "line1\nline2"],
    [undefined, "other", "x"],
    [undefined, "message", "nospace"],
    ["3", "message", "ünï 🎬"],
  ]);
  assert.deepEqual(parse([stream.replace(/\n/g, "\r\n")]).out, want);
  assert.deepEqual(parse([stream.replace(/\n/g, "\r")]).out, want);
  assert.deepEqual(parse([stream]).retries, [2000]);
});

test("any split into chunks gives the same messages (CRLF split between chunks included)", () => {
  for (const s of [stream, stream.replace(/\n/g, "\r\n")]) {
    const want = parse([s]).out;
    for (let i = 0; i <= s.length; i++) assert.deepEqual(parse([s.slice(0, i), s.slice(i)]).out, want, `split at ${i}`);
    assert.deepEqual(parse([...s]).out, want, "one character at a time");
  }
});

test("no message without a blank line; a message without data is not dispatched", () => {
  assert.equal(parse(["id: 5\ndata: x\n"]).out.length, 0);
  assert.equal(parse(["id: 5\n\n"]).out.length, 0);
});
