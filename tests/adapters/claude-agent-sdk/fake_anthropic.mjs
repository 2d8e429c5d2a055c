// A scripted fake of the Anthropic Messages API on 127.0.0.1, for driving the real Claude
// Code binary (bundled with @anthropic-ai/claude-agent-sdk) offline.
//
//   const api = await startFakeAnthropic();       // api.url = http://127.0.0.1:PORT
//   env ANTHROPIC_BASE_URL=api.url ANTHROPIC_API_KEY=dummy
//   api.requests                                  // every request: {method, path, headers, body}
//   api.modelRequests()                           // the POST /v1/messages bodies of the agent loop
//   await api.close();
//
// POST /v1/messages answers with the real streaming format when `stream: true` (event:
// message_start, content_block_start / content_block_delta / content_block_stop per block,
// message_delta with stop_reason and usage, message_stop), else with one JSON message.
//
// The default script, for a request that offers tools (the agent loop):
//   - the last message is a user turn carrying a tool_result: answer text
//     "DONE <n>: <the tool result's text>" (end_turn);
//   - the last user text contains "READ <absolute path>": answer a tool_use of the Read tool
//     on that path (stop_reason tool_use), which the CLI executes and sends back;
//   - the last user text contains "DELEGATE <task>": answer a tool_use of the Agent tool
//     (a general-purpose subagent in the foreground, prompt "SUBTASK <task>"); the subagent's
//     own request (its prompt starts with "SUBTASK ") is answered "SUB DONE: <task>";
//   - otherwise: answer text "ECHO <n>: <last user text>".
// A request without tools (a title or other side request) gets the text "Side answer".
// Pass { script(body, n) => turn } to override; a turn is
//   { text } | { toolUse: { name, input } } | { blocks: [...], stop_reason }.
import http from "node:http";

function sse(res, event, data) {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

function lastUser(body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  for (let i = msgs.length - 1; i >= 0; i--) if (msgs[i].role === "user") return msgs[i];
  return null;
}

function blocksOf(msg) {
  if (!msg) return [];
  if (typeof msg.content === "string") return [{ type: "text", text: msg.content }];
  return Array.isArray(msg.content) ? msg.content : [];
}

export function textOfToolResult(block) {
  if (typeof block.content === "string") return block.content;
  if (Array.isArray(block.content))
    return block.content.map((c) => (c.type === "text" ? c.text : "")).join("");
  return "";
}

// Every text a request body carries in its messages (user and assistant, text and tool
// blocks), joined: what a test searches for "the earlier turns".
export function transcriptText(body) {
  const out = [];
  for (const m of body.messages ?? []) {
    for (const b of blocksOf(m)) {
      if (b.type === "text") out.push(`${m.role}: ${b.text}`);
      else if (b.type === "tool_use") out.push(`${m.role}: tool_use ${b.name} ${JSON.stringify(b.input)}`);
      else if (b.type === "tool_result") out.push(`${m.role}: tool_result ${textOfToolResult(b)}`);
    }
  }
  return out.join("\n");
}

export function defaultScript(body, n) {
  if (!Array.isArray(body.tools) || body.tools.length === 0) return { text: "Side answer" };
  const user = lastUser(body);
  const blocks = blocksOf(user);
  const result = blocks.find((b) => b.type === "tool_result");
  if (result) {
    const r = textOfToolResult(result);
    return { text: `DONE ${n}: ${r}` };
  }
  // The CLI may prepend reminders as extra text blocks; the prompt is the last one.
  const texts = blocks.filter((b) => b.type === "text").map((b) => b.text);
  const prompt = texts.length ? texts[texts.length - 1] : "";
  const m = /READ (\S+)/.exec(prompt);
  if (m) return { toolUse: { name: "Read", input: { file_path: m[1] } } };
  const d = /DELEGATE (.*)/s.exec(prompt);
  if (d) return { toolUse: { name: "Agent", input: { description: "delegated task",
    prompt: `SUBTASK ${d[1]}`, subagent_type: "general-purpose", run_in_background: false } } };
  if (prompt.startsWith("SUBTASK ")) return { text: `SUB DONE: ${prompt.slice(8)}` };
  return { text: `ECHO ${n}: ${prompt}` };
}

function turnBlocks(turn, n) {
  if (turn.blocks) return { blocks: turn.blocks, stop: turn.stop_reason ?? "end_turn" };
  if (turn.toolUse) {
    return {
      blocks: [
        { type: "text", text: "Let me look." },
        { type: "tool_use", id: `toolu_fake_${String(n).padStart(4, "0")}`, name: turn.toolUse.name,
          input: turn.toolUse.input },
      ],
      stop: "tool_use",
    };
  }
  return { blocks: [{ type: "text", text: turn.text }], stop: "end_turn" };
}

function streamMessage(res, body, blocks, stop, n) {
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "request-id": `req_fake_${n}`,
  });
  const id = `msg_fake_${String(n).padStart(4, "0")}`;
  sse(res, "message_start", {
    type: "message_start",
    message: { id, type: "message", role: "assistant", model: body.model ?? "claude-fake",
      content: [], stop_reason: null, stop_sequence: null,
      usage: { input_tokens: 25, output_tokens: 1, cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0 } },
  });
  sse(res, "ping", { type: "ping" });
  blocks.forEach((b, index) => {
    if (b.type === "text") {
      sse(res, "content_block_start", { type: "content_block_start", index,
        content_block: { type: "text", text: "" } });
      // two deltas, so the client really joins a stream
      const half = Math.ceil(b.text.length / 2);
      for (const part of [b.text.slice(0, half), b.text.slice(half)])
        if (part) sse(res, "content_block_delta", { type: "content_block_delta", index,
          delta: { type: "text_delta", text: part } });
    } else if (b.type === "tool_use") {
      sse(res, "content_block_start", { type: "content_block_start", index,
        content_block: { type: "tool_use", id: b.id, name: b.name, input: {} } });
      const json = JSON.stringify(b.input);
      const half = Math.ceil(json.length / 2);
      for (const part of [json.slice(0, half), json.slice(half)])
        sse(res, "content_block_delta", { type: "content_block_delta", index,
          delta: { type: "input_json_delta", partial_json: part } });
    }
    sse(res, "content_block_stop", { type: "content_block_stop", index });
  });
  sse(res, "message_delta", { type: "message_delta",
    delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: 12 } });
  sse(res, "message_stop", { type: "message_stop" });
  res.end();
}

export async function startFakeAnthropic({ script = defaultScript, log = false } = {}) {
  const requests = [];
  let modelTurns = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      let body = null;
      try { body = raw ? JSON.parse(raw) : null; } catch { body = raw; }
      const path = req.url.split("?")[0];
      const rec = { method: req.method, path, url: req.url, headers: req.headers, body };
      requests.push(rec);
      if (log) process.stderr.write(`fake-anthropic: ${req.method} ${req.url}\n`);
      if (req.method === "POST" && path === "/v1/messages/count_tokens") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ input_tokens: 100 }));
        return;
      }
      if (req.method === "POST" && path === "/v1/messages" && body && typeof body === "object") {
        const n = ++modelTurns;
        rec.turn = n;
        const turn = script(body, n);
        rec.answer = turn;
        const { blocks, stop } = turnBlocks(turn, n);
        if (body.stream) return streamMessage(res, body, blocks, stop, n);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ id: `msg_fake_${n}`, type: "message", role: "assistant",
          model: body.model ?? "claude-fake", content: blocks, stop_reason: stop,
          stop_sequence: null, usage: { input_tokens: 25, output_tokens: 12 } }));
        return;
      }
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
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    // the agent loop's model requests (those that offer tools), in order
    modelRequests: () => requests.filter((r) => r.path === "/v1/messages" && r.body &&
      Array.isArray(r.body.tools) && r.body.tools.length > 0),
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const api = await startFakeAnthropic({ log: true });
  console.log(api.url);
}
