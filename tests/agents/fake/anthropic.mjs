// A scripted fake of the Anthropic Messages API on 127.0.0.1, for driving the real Claude
// Code CLI offline (tests/agents/test_claude.py). Adapted from
// tests/adapters/claude-agent-sdk/fake_anthropic.mjs; follows agentlib's Fake protocol:
//
//   node anthropic.mjs --log FILE      prints `listening http://127.0.0.1:PORT` first, then
//                                      appends one JSON line per request to FILE:
//                                      {method, path, model, stream, tools, messages, scenario,
//                                       step, answer}
//
// POST /v1/messages answers in the real streaming format when `stream: true` (message_start,
// content_block_start / content_block_delta / content_block_stop per block, message_delta with
// stop_reason and usage, message_stop), else with one JSON message.
//
// The script is chosen by the prompt: the newest user text containing `SCENARIO <name>`;
// `step` is the number of tool results sent back since that text. A request without tools
// (a title or other side request) gets the text "Side answer". Scenarios:
//   tools    Bash `ls` -> Read notes.txt -> Edit notes.txt (PELICAN -> FLAMINGO) -> text
//   fail     Read of a missing file -> Bash `exit 3` -> text
//   deny     Write new.txt (the test does not allow Write: the CLI denies it) -> text
//   err400   HTTP 400 invalid_request_error
//   err529   HTTP 529 overloaded_error (every time: the CLI retries, then gives up)
//   err500   HTTP 500 api_error (every time)
//   cut      the stream is cut after the first text delta (every time)
//   recall   text quoting every earlier user prompt the request carries (a resumed session)
//   (other)  text "ECHO <prompt>"
// Usage differs per request (input 100+n, output 10+n, cache read 40*n, cache write 7*n)
// so that totals summed twice or not at all show.
import fs from "node:fs";
import http from "node:http";

const args = process.argv.slice(2);
const logFile = args.includes("--log") ? args[args.indexOf("--log") + 1] : null;

function log(rec) {
  if (logFile) fs.appendFileSync(logFile, JSON.stringify(rec) + "\n");
}

function sse(res, event, data) {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

function blocksOf(msg) {
  if (!msg) return [];
  if (typeof msg.content === "string") return [{ type: "text", text: msg.content }];
  return Array.isArray(msg.content) ? msg.content : [];
}

function textOfToolResult(block) {
  if (typeof block.content === "string") return block.content;
  if (Array.isArray(block.content))
    return block.content.map((c) => (c.type === "text" ? c.text : "")).join("");
  return "";
}

// {scenario, step, prompt, results, prompts}: the newest SCENARIO text and what came after it.
function situation(body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  const prompts = [];
  let at = -1, scenario = null, prompt = "";
  msgs.forEach((m, i) => {
    if (m.role !== "user") return;
    for (const b of blocksOf(m)) {
      if (b.type !== "text") continue;
      const s = /SCENARIO (\w+)/.exec(b.text);
      if (s) {
        at = i; scenario = s[1]; prompt = b.text;
        prompts.push(b.text.trim());
      }
    }
  });
  const results = [];
  for (let i = at + 1; i < msgs.length; i++)
    for (const b of blocksOf(msgs[i]))
      if (b.type === "tool_result") results.push({ text: textOfToolResult(b), is_error: !!b.is_error });
  return { scenario, step: results.length, prompt, results, prompts };
}

function tool(name, input) { return { toolUse: { name, input } }; }

function script(body) {
  if (!Array.isArray(body.tools) || body.tools.length === 0) return { text: "Side answer" };
  const s = situation(body);
  const last = s.results[s.results.length - 1];
  const cwd = (/WORKDIR (\S+)/.exec(s.prompt) || [])[1] || ".";
  switch (s.scenario) {
    case "tools":
      if (s.step === 0) return tool("Bash", { command: "ls", description: "List the files" });
      if (s.step === 1) return tool("Read", { file_path: `${cwd}/notes.txt` });
      if (s.step === 2) return tool("Edit", { file_path: `${cwd}/notes.txt`,
        old_string: "PELICAN", new_string: "FLAMINGO" });
      return { text: `Done: I listed the files and replaced PELICAN with FLAMINGO in notes.txt.` };
    case "fail":
      if (s.step === 0) return tool("Read", { file_path: `${cwd}/missing.txt` });
      if (s.step === 1) return tool("Bash", { command: "echo about to fail; exit 3",
        description: "A command that fails" });
      return { text: `Both tools failed as expected.` };
    case "deny":
      if (s.step === 0) return tool("Write", { file_path: `${cwd}/new.txt`, content: "should not exist\n" });
      return { text: `The write was refused (is_error: ${!!(last && last.is_error)}).` };
    case "err400": return { status: 400, error: { type: "invalid_request_error",
      message: "fake: the model 'claude-x' does not exist" } };
    case "err529": return { status: 529, error: { type: "overloaded_error", message: "Overloaded" } };
    case "err500": return { status: 500, error: { type: "api_error", message: "fake: internal server error" } };
    case "cut": return { text: "This answer will be cut off before it ends, mid-sentence.", cut: true };
    case "recall":
      return { text: `I remember ${s.prompts.length - 1} earlier prompt(s): ` +
        s.prompts.slice(0, -1).map((p) => JSON.stringify(p)).join(", ") };
    default: return { text: `ECHO ${s.prompt}` };
  }
}

function turnBlocks(turn, n) {
  if (turn.toolUse) {
    return {
      blocks: [
        { type: "text", text: `Step ${n}: using ${turn.toolUse.name}.` },
        { type: "tool_use", id: `toolu_fake_${String(n).padStart(4, "0")}`, name: turn.toolUse.name,
          input: turn.toolUse.input },
      ],
      stop: "tool_use",
    };
  }
  return { blocks: [{ type: "text", text: turn.text }], stop: "end_turn" };
}

function usageOf(n) {
  return { input_tokens: 100 + n, output_tokens: 10 + n, cache_creation_input_tokens: 7 * n,
    cache_read_input_tokens: 40 * n };
}

function streamMessage(res, body, blocks, stop, n, cut) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache",
    "request-id": `req_fake_${n}` });
  const id = `msg_fake_${String(n).padStart(4, "0")}`;
  const u = usageOf(n);
  sse(res, "message_start", {
    type: "message_start",
    message: { id, type: "message", role: "assistant", model: body.model ?? "claude-fake",
      content: [], stop_reason: null, stop_sequence: null,
      usage: { ...u, output_tokens: 1 } },
  });
  sse(res, "ping", { type: "ping" });
  for (const [index, b] of blocks.entries()) {
    if (b.type === "text") {
      sse(res, "content_block_start", { type: "content_block_start", index,
        content_block: { type: "text", text: "" } });
      const half = Math.ceil(b.text.length / 2);
      for (const [k, part] of [b.text.slice(0, half), b.text.slice(half)].entries()) {
        if (part) sse(res, "content_block_delta", { type: "content_block_delta", index,
          delta: { type: "text_delta", text: part } });
        if (cut && k === 0) { // the connection drops mid-response
          res.socket.destroy();
          return;
        }
      }
    } else if (b.type === "tool_use") {
      sse(res, "content_block_start", { type: "content_block_start", index,
        content_block: { type: "tool_use", id: b.id, name: b.name, input: {} } });
      // two deltas, split after the first key (a path value stays whole, so the golden
      // recording can replace the sandbox path in it)
      const json = JSON.stringify(b.input);
      const cut = json.indexOf('":') + 2 || Math.ceil(json.length / 2);
      for (const part of [json.slice(0, cut), json.slice(cut)])
        sse(res, "content_block_delta", { type: "content_block_delta", index,
          delta: { type: "input_json_delta", partial_json: part } });
    }
    sse(res, "content_block_stop", { type: "content_block_stop", index });
  }
  sse(res, "message_delta", { type: "message_delta",
    delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: u.output_tokens } });
  sse(res, "message_stop", { type: "message_stop" });
  res.end();
}

let modelTurns = 0;
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const raw = Buffer.concat(chunks).toString("utf8");
    let body = null;
    try { body = raw ? JSON.parse(raw) : null; } catch { body = raw; }
    const path = req.url.split("?")[0];
    const rec = { method: req.method, path };
    if (req.method === "POST" && path === "/v1/messages/count_tokens") {
      log(rec);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ input_tokens: 100 }));
      return;
    }
    if (req.method === "POST" && path === "/v1/messages" && body && typeof body === "object") {
      const n = ++modelTurns;
      const turn = script(body);
      const s = situation(body);
      Object.assign(rec, { n, model: body.model, stream: !!body.stream,
        tools: Array.isArray(body.tools) ? body.tools.length : 0, messages: body.messages,
        scenario: s.scenario, step: s.step, answer: turn });
      log(rec);
      if (turn.status) {
        res.writeHead(turn.status, { "content-type": "application/json", "request-id": `req_fake_${n}`,
          "x-should-retry": turn.status >= 500 ? "true" : "false" });
        res.end(JSON.stringify({ type: "error", error: turn.error }));
        return;
      }
      const { blocks, stop } = turnBlocks(turn, n);
      if (body.stream) return streamMessage(res, body, blocks, stop, n, turn.cut);
      if (turn.cut) { res.socket.destroy(); return; }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ id: `msg_fake_${String(n).padStart(4, "0")}`, type: "message",
        role: "assistant", model: body.model ?? "claude-fake", content: blocks, stop_reason: stop,
        stop_sequence: null, usage: usageOf(n) }));
      return;
    }
    log(rec);
    if (req.method === "HEAD" || (req.method === "GET" && path === "/")) {
      res.writeHead(200);
      res.end();
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ type: "error", error: { type: "not_found_error",
      message: `fake-anthropic: no route ${req.method} ${path}` } }));
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
