// openai_chat.mjs -- a scripted fake of the OpenAI Chat Completions API on 127.0.0.1, for
// driving real agent CLIs (OpenCode through @ai-sdk/openai-compatible) offline.
//
//   node openai_chat.mjs --log FILE [--port N]
//   first stdout line: `listening http://127.0.0.1:PORT`; every request is appended to FILE
//   as one JSON line {n, method, path, body, status, turn}.
//
// POST /v1/chat/completions (or /chat/completions) with `stream: true` answers with real
// SSE chunks: `data: {"id","object":"chat.completion.chunk","choices":[{"index":0,
// "delta":{...},"finish_reason":null}]}` (role first, reasoning_content, content in two
// pieces, tool_calls with the arguments split over two deltas), a last chunk with
// finish_reason, then (stream_options.include_usage) a chunk with `choices: []` and
// `usage`, then `data: [DONE]`. Without `stream` it answers one chat.completion object.
// GET /v1/models lists the model.
//
// The script is stateless, read from the conversation: the LAST user message's text may
// hold `PLAN: [step, ...]` (JSON, to the end of the text). The number of assistant
// messages after that user message picks the step (each tool round adds one). A step is
//   {"tool": NAME, "input": {...}, "text"?: "said before the call", "think"?: "..."}
//   {"tools": [{"tool","input"}, ...]}        several calls in one response
//   {"text": "...", "think"?: "..."}          a final answer (finish_reason stop)
//   {"http": STATUS, "times"?: N, "message"?}  an API error (N times for this step, then the
//                                             next step: counted per prompt+step)
//   {"cut": true, "text": "...", "times"?: N}  a stream cut after half the text (socket
//                                             destroyed, no finish chunk, no [DONE]); N
//                                             times like http, then the next step
// HTTP errors carry `retry-after-ms: 50`, so clients that honour it retry at once.
// Past the last step, or without a PLAN: "ECHO <n>: <last user text>". The text of an
// answer may use {{last_tool}} for the last tool result's content. A request without tools
// (a title or summary request) gets "Side answer" ("Fake title" when asked for a title).
// Usage per response: prompt_tokens = 100 + 10*messages, completion_tokens = 7 + 3*steps,
// cached 40, cache writes 12, reasoning 5 when there is a "think".
import fs from "node:fs";
import http from "node:http";

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const logFile = opt("--log", null);
const port = Number(opt("--port", "0"));
const MODEL = "fake-model";
let nreq = 0;
const errorCounts = new Map(); // prompt+step -> errors already given

function log(entry) {
  if (logFile) fs.appendFileSync(logFile, JSON.stringify(entry) + "\n");
}

function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content))
    return content.map((c) => (c && c.type === "text" ? c.text : "")).join("");
  return "";
}

function plan(body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  let u = -1;
  for (let i = msgs.length - 1; i >= 0; i--)
    if (msgs[i].role === "user") { u = i; break; }
  let prompt = u >= 0 ? textOf(msgs[u].content) : "";
  // `opencode run` quotes a message argument that holds spaces: "...\"..."
  if (prompt.length > 1 && prompt.startsWith('"') && prompt.endsWith('"'))
    prompt = prompt.slice(1, -1).replaceAll('\\"', '"');
  const after = msgs.slice(u + 1);
  const step = after.filter((m) => m.role === "assistant").length;
  let lastTool = "";
  for (const m of after) if (m.role === "tool") lastTool = textOf(m.content);
  let steps = null;
  const k = prompt.indexOf("PLAN:");
  if (k >= 0) {
    try {
      steps = JSON.parse(prompt.slice(k + 5).trim());
    } catch {
      steps = null;
    }
  }
  return { prompt, step, steps, lastTool, nmsgs: msgs.length };
}

function chooseTurn(body, n) {
  if (!Array.isArray(body.tools) || body.tools.length === 0) {
    const sys = msgsText(body);
    return { text: /title/i.test(sys) ? "Fake title" : "Side answer", side: true };
  }
  const p = plan(body);
  let turn = p.steps && p.step < p.steps.length ? p.steps[p.step] : null;
  if (turn && (turn.http || turn.cut)) {
    const key = `${p.prompt}\u0000${p.step}`;
    const done = errorCounts.get(key) ?? 0;
    const times = turn.times ?? Infinity;
    if (done < times) {
      errorCounts.set(key, done + 1);
      return turn;
    }
    turn = p.steps[p.step + 1] ?? null; // the error is over: the step after it
  }
  if (!turn) turn = { text: `ECHO ${n}: ${p.prompt.split("PLAN:")[0].trim()}` };
  const fill = (s) => (typeof s === "string" ? s.replaceAll("{{last_tool}}", p.lastTool.trim()) : s);
  return { ...turn, text: fill(turn.text), step: p.step, nmsgs: p.nmsgs };
}

function msgsText(body) {
  return (body.messages ?? []).map((m) => textOf(m.content)).join("\n");
}

function usageOf(turn) {
  const prompt = 100 + 10 * (turn.nmsgs ?? 1);
  const completion = 7 + 3 * ((turn.step ?? 0) + 1);
  const reasoning = turn.think ? 5 : 0;
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    // cache_write_tokens: not OpenAI's own, but what @ai-sdk/openai-compatible reads
    // (OpenRouter and others report it)
    prompt_tokens_details: { cached_tokens: 40, cache_write_tokens: 12 },
    completion_tokens_details: { reasoning_tokens: reasoning },
  };
}

function toolCalls(turn, n) {
  const list = turn.tools ?? (turn.tool ? [{ tool: turn.tool, input: turn.input }] : []);
  return list.map((t, i) => ({
    id: `call_fake_${n}_${i}`,
    name: t.tool,
    args: JSON.stringify(t.input ?? {}),
  }));
}

function stream(res, body, turn, n) {
  const id = `chatcmpl-fake-${n}`;
  const created = Math.floor(Date.now() / 1000);
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  const chunk = (delta, finish = null, extra = {}) =>
    res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created,
      model: body.model ?? MODEL, choices: [{ index: 0, delta, finish_reason: finish }],
      ...extra })}\n\n`);
  chunk({ role: "assistant", content: "" });
  if (turn.think) {
    const half = Math.ceil(turn.think.length / 2);
    chunk({ reasoning_content: turn.think.slice(0, half) });
    chunk({ reasoning_content: turn.think.slice(half) });
  }
  const text = turn.text ?? "";
  if (turn.cut) {
    chunk({ content: text.slice(0, Math.ceil(text.length / 2)) });
    setTimeout(() => res.socket?.destroy(), 50);
    return;
  }
  if (text) {
    const half = Math.ceil(text.length / 2);
    chunk({ content: text.slice(0, half) });
    if (text.slice(half)) chunk({ content: text.slice(half) });
  }
  const calls = toolCalls(turn, n);
  calls.forEach((c, index) => {
    const half = Math.ceil(c.args.length / 2);
    chunk({ tool_calls: [{ index, id: c.id, type: "function",
      function: { name: c.name, arguments: c.args.slice(0, half) } }] });
    chunk({ tool_calls: [{ index, function: { arguments: c.args.slice(half) } }] });
  });
  chunk({}, calls.length ? "tool_calls" : "stop");
  if (body.stream_options?.include_usage)
    res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created,
      model: body.model ?? MODEL, choices: [], usage: usageOf(turn) })}\n\n`);
  res.write("data: [DONE]\n\n");
  res.end();
}

function whole(res, body, turn, n) {
  const calls = toolCalls(turn, n);
  const message = { role: "assistant", content: turn.text ?? null };
  if (turn.think) message.reasoning_content = turn.think;
  if (calls.length)
    message.tool_calls = calls.map((c) => ({ id: c.id, type: "function",
      function: { name: c.name, arguments: c.args } }));
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ id: `chatcmpl-fake-${n}`, object: "chat.completion",
    created: Math.floor(Date.now() / 1000), model: body.model ?? MODEL,
    choices: [{ index: 0, message, finish_reason: calls.length ? "tool_calls" : "stop" }],
    usage: usageOf(turn) }));
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const n = ++nreq;
    const raw = Buffer.concat(chunks).toString("utf8");
    let body = null;
    try {
      body = raw ? JSON.parse(raw) : null;
    } catch {
      body = raw;
    }
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && /\/models$/.test(path)) {
      log({ n, method: req.method, path, body, status: 200 });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [{ id: MODEL, object: "model", owned_by: "fake" }] }));
      return;
    }
    if (req.method !== "POST" || !/\/chat\/completions$/.test(path) || !body || typeof body !== "object") {
      log({ n, method: req.method, path, body, status: 404 });
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `no route ${req.method} ${path}`, type: "not_found" } }));
      return;
    }
    const turn = chooseTurn(body, n);
    if (turn.http) {
      log({ n, method: req.method, path, body, status: turn.http, turn });
      // retry-after-ms keeps a client's retries short (OpenCode honours it)
      res.writeHead(turn.http, { "content-type": "application/json", "retry-after-ms": "50" });
      res.end(JSON.stringify({ error: { message: turn.message ?? `fake error ${turn.http}`,
        type: turn.http >= 500 ? "server_error" : "invalid_request_error", code: String(turn.http) } }));
      return;
    }
    log({ n, method: req.method, path, body, status: 200, turn });
    if (body.stream) stream(res, body, turn, n);
    else whole(res, body, turn, n);
  });
});

server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.close(() => process.exit(0)));
