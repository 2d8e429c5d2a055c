// Minimal scripted Anthropic Messages API (streaming and not) for the real ACP agent
// (claude-code-acp driving Claude Code, tests/agents/test_acp.py); agentlib's Fake
// protocol: `--log FILE`, first stdout line `listening http://127.0.0.1:PORT`.
import http from "node:http";
import fs from "node:fs";
const at = process.argv.indexOf("--log");
const log = at > 0 ? fs.createWriteStream(process.argv[at + 1], { flags: "a" }) : null;
let n = 0;
function sse(res, events) {
  res.writeHead(200, { "content-type": "text/event-stream" });
  for (const [t, d] of events) res.write(`event: ${t}\ndata: ${JSON.stringify({ type: t, ...d })}\n\n`);
  res.end();
}
function plan(body) {
  const msgs = body.messages || [];
  const last = msgs[msgs.length - 1] || {};
  const content = Array.isArray(last.content) ? last.content : [{ type: "text", text: String(last.content) }];
  const results = content.filter((c) => c.type === "tool_result");
  const hasTools = (body.tools || []).some((t) => t.name === "Bash");
  if (!hasTools) return { text: "ok" };
  const first = JSON.stringify(msgs[0] || {});
  const toolTurns0 = msgs.filter((m) => Array.isArray(m.content) && m.content.some((c) => c.type === "tool_result")).length;
  if (first.includes("Delete a.txt")) {
    if (!results.length && toolTurns0 === 0) return { tool: { name: "Bash", input: { command: "rm a.txt", description: "Delete a.txt" } } };
    return { text: "I was not allowed to delete a.txt." };
  }
  const toolTurns = msgs.filter((m) => Array.isArray(m.content) && m.content.some((c) => c.type === "tool_result")).length;
  if (!results.length) return { tool: { name: "Bash", input: { command: "ls -la", description: "List files" } } };
  if (toolTurns === 1) return { tool: { name: "Bash", input: { command: "cat missing.txt", description: "Read a missing file" } } };
  return { text: "The folder holds a.txt; missing.txt does not exist." };
}
http.createServer((req, res) => {
  let b = "";
  req.on("data", (c) => (b += c));
  req.on("end", () => {
    let body = {};
    try { body = JSON.parse(b || "{}"); } catch {}
    log && log.write(JSON.stringify({ method: req.method, url: req.url, model: body.model, stream: body.stream, n: (body.messages||[]).length }) + "\n");
    if (!req.url.startsWith("/v1/messages") || req.url.includes("count_tokens")) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ input_tokens: 10 }));
    }
    const p = plan(body), id = "msg_" + ++n, model = body.model || "claude-sonnet-4-5";
    const usage = { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
    const block = p.tool ? { type: "tool_use", id: "toolu_" + n, name: p.tool.name, input: p.tool.input } : { type: "text", text: p.text };
    if (!body.stream) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ id, type: "message", role: "assistant", model, content: [block], stop_reason: p.tool ? "tool_use" : "end_turn", stop_sequence: null, usage }));
    }
    const ev = [["message_start", { message: { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } } }]];
    if (p.tool) {
      ev.push(["content_block_start", { index: 0, content_block: { type: "tool_use", id: block.id, name: block.name, input: {} } }]);
      ev.push(["content_block_delta", { index: 0, delta: { type: "input_json_delta", partial_json: JSON.stringify(block.input) } }]);
    } else {
      ev.push(["content_block_start", { index: 0, content_block: { type: "text", text: "" } }]);
      ev.push(["content_block_delta", { index: 0, delta: { type: "text_delta", text: p.text } }]);
    }
    ev.push(["content_block_stop", { index: 0 }]);
    ev.push(["message_delta", { delta: { stop_reason: p.tool ? "tool_use" : "end_turn", stop_sequence: null }, usage: { output_tokens: 20 } }]);
    ev.push(["message_stop", {}]);
    sse(res, ev);
  });
}).listen(0, "127.0.0.1", function () { console.log("listening http://127.0.0.1:" + this.address().port); });
