// A scripted fake of the OpenAI Responses API on 127.0.0.1, for driving the real Codex CLI
// offline (tests/agents/test_codex.py; the agentlib Fake protocol).
//
//   node openai_responses.mjs --log FILE
//   -> first stdout line: "listening http://127.0.0.1:PORT"; every request is appended to
//      FILE as one JSON line {n, method, path, headers, body}.
//
// POST /v1/responses (or /responses) with stream: true answers with the SSE sequence of
// the real API: response.created, response.in_progress, then per output item
// response.output_item.added, its deltas (response.output_text.delta,
// response.reasoning_summary_text.delta, response.function_call_arguments.delta,
// response.custom_tool_call_input.delta), response.output_item.done, and finally
// response.completed with usage (input_tokens_details.cached_tokens,
// output_tokens_details.reasoning_tokens).
//
// The script is read from the conversation itself (deterministic, so a resumed session
// and a retried request get the same answer). The last user message, when it contains
// "STEPS:", lists steps separated by " || "; the number of tool outputs after that user
// message says which step is next. A step is one of
//   shell <command>            a function call of the shell tool Codex offers
//   escalate <command>         the same, asking to run outside the sandbox
//                              (sandbox_permissions: require_escalated)
//   patch <file> <old> <new>   an apply_patch call (custom tool when Codex offers it)
//                              replacing the line <old> by <new> in <file>
//   say <text>                 a final answer "<text>"
//   error <status>             an HTTP error status with an OpenAI error body
//   cut                        a stream that stops after some text, without
//                              response.completed (the connection is closed)
// Every answer carries a reasoning item first. After the last step (or without steps) the
// answer is "DONE <n>: <last tool output, first line of its output>" or, without tool outputs,
// "ECHO <n>: <last user text>". Other paths: GET .../models -> {data: []}, else 404.
import http from "node:http";
import fs from "node:fs";

const args = process.argv.slice(2);
let logFile = null;
for (let i = 0; i < args.length; i++) if (args[i] === "--log") logFile = args[++i];

let reqNo = 0;
let respNo = 0;

function log(entry) {
  if (logFile) fs.appendFileSync(logFile, JSON.stringify(entry) + "\n");
}

function textOf(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((c) => (typeof c.text === "string" ? c.text : "")).join("");
}

// The index of the last user message with STEPS (or the last user message at all).
function lastUserIndex(input) {
  let last = -1, steps = -1;
  input.forEach((it, i) => {
    if (it.type === "message" && it.role === "user") {
      last = i;
      if (textOf(it.content).includes("STEPS:")) steps = i;
    }
  });
  return { last, steps };
}

function toolOutputText(it) {
  const o = it.output;
  if (typeof o === "string") return o;
  if (o && typeof o.content === "string") return o.content;
  if (Array.isArray(o)) return textOf(o);
  return JSON.stringify(o);
}

function toolNames(body) {
  const names = new Map();
  for (const t of body.tools ?? []) {
    const name = t.name ?? t.function?.name;
    if (name) names.set(name, t.type);
  }
  return names;
}

function plan(body, n) {
  const input = Array.isArray(body.input) ? body.input : [];
  let { last, steps } = lastUserIndex(input);
  const at = last;
  if (steps !== last) steps = -1; // only the newest user message scripts the answer
  const outputs = input.slice(at + 1).filter((it) => /_call_output$/.test(it.type ?? ""));
  if (steps >= 0) {
    const text = textOf(input[steps].content);
    const list = text.slice(text.indexOf("STEPS:") + 6).split(" || ").map((s) => s.trim());
    const step = list[outputs.length];
    if (step) {
      const [verb, ...rest] = step.split(" ");
      if (verb === "shell") return { shell: rest.join(" ") };
      if (verb === "escalate") return { shell: rest.join(" "), escalate: true };
      if (verb === "patch") return { patch: { file: rest[0], old: rest[1], new: rest[2] } };
      if (verb === "say") return { text: rest.join(" ") };
      if (verb === "error") return { error: Number(rest[0]) };
      if (verb === "cut") return { cut: true };
    }
  }
  if (outputs.length) {
    // exec_command outputs carry a header ("Chunk ID: ...\nOutput:\n"): the output itself
    let out = toolOutputText(outputs[outputs.length - 1]);
    const o = out.indexOf("Output:\n");
    if (o >= 0) out = out.slice(o + 8);
    out = out.trim().split("\n")[0];
    return { text: `DONE ${n}: ${out}` };
  }
  const prompt = at >= 0 ? textOf(input[at].content).trim().split("\n").pop() : "";
  return { text: `ECHO ${n}: ${prompt}` };
}

function sse(res, data) {
  res.write(`event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`);
}

function chunks(s, k = 3) {
  const words = s.split(/(?<= )/);
  const out = [];
  for (let i = 0; i < words.length; i += k) out.push(words.slice(i, i + k).join(""));
  return out.length ? out : [""];
}

function stream(res, body, turn, n) {
  const id = `resp_${n}`;
  const model = body.model ?? "fake-model";
  const created_at = 1700000000 + n;
  let seq = 0;
  const ev = (o) => sse(res, { ...o, sequence_number: seq++ });
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  const base = { id, object: "response", created_at, model, output: [] };
  ev({ type: "response.created", response: { ...base, status: "in_progress" } });
  ev({ type: "response.in_progress", response: { ...base, status: "in_progress" } });
  const output = [];
  let idx = 0;
  // reasoning
  const rtext = `Thinking about step ${n}.`;
  const rs = { id: `rs_${n}`, type: "reasoning", summary: [] };
  ev({ type: "response.output_item.added", output_index: idx, item: rs });
  ev({ type: "response.reasoning_summary_part.added", item_id: rs.id, output_index: idx,
       summary_index: 0, part: { type: "summary_text", text: "" } });
  ev({ type: "response.reasoning_summary_text.delta", item_id: rs.id, output_index: idx,
       summary_index: 0, delta: rtext });
  ev({ type: "response.reasoning_summary_text.done", item_id: rs.id, output_index: idx,
       summary_index: 0, text: rtext });
  ev({ type: "response.reasoning_summary_part.done", item_id: rs.id, output_index: idx,
       summary_index: 0, part: { type: "summary_text", text: rtext } });
  const rsDone = { ...rs, summary: [{ type: "summary_text", text: rtext }] };
  ev({ type: "response.output_item.done", output_index: idx, item: rsDone });
  output.push(rsDone);
  idx++;
  const tools = toolNames(body);
  if (turn.text !== undefined || turn.cut) {
    const text = turn.cut ? `Partial answer ${n} that is cut` : turn.text;
    const msg = { id: `msg_${n}`, type: "message", status: "in_progress", role: "assistant",
                  content: [] };
    ev({ type: "response.output_item.added", output_index: idx, item: msg });
    ev({ type: "response.content_part.added", item_id: msg.id, output_index: idx,
         content_index: 0, part: { type: "output_text", text: "", annotations: [] } });
    for (const d of chunks(text))
      ev({ type: "response.output_text.delta", item_id: msg.id, output_index: idx,
           content_index: 0, delta: d, logprobs: [] });
    if (turn.cut) {
      // the connection drops mid-response, after the events above reached the client
      setTimeout(() => res.destroy(), 200);
      return;
    }
    ev({ type: "response.output_text.done", item_id: msg.id, output_index: idx,
         content_index: 0, text, logprobs: [] });
    const part = { type: "output_text", text, annotations: [] };
    ev({ type: "response.content_part.done", item_id: msg.id, output_index: idx,
         content_index: 0, part });
    const done = { ...msg, status: "completed", content: [part] };
    ev({ type: "response.output_item.done", output_index: idx, item: done });
    output.push(done);
  } else if (turn.shell !== undefined) {
    let name = "shell", args;
    if (tools.has("exec_command")) {
      name = "exec_command";
      args = { cmd: turn.shell };
      if (turn.escalate)
        Object.assign(args, { sandbox_permissions: "require_escalated",
                              justification: "The test asks to run this outside the sandbox." });
    } else if (tools.has("shell_command")) {
      name = "shell_command";
      args = { command: turn.shell };
    } else {
      args = { command: ["bash", "-lc", turn.shell] };
    }
    const a = JSON.stringify(args);
    const fc = { id: `fc_${n}`, type: "function_call", status: "in_progress", call_id: `call_${n}`,
                 name, arguments: "" };
    ev({ type: "response.output_item.added", output_index: idx, item: fc });
    ev({ type: "response.function_call_arguments.delta", item_id: fc.id, output_index: idx,
         delta: a });
    ev({ type: "response.function_call_arguments.done", item_id: fc.id, output_index: idx,
         arguments: a });
    const done = { ...fc, status: "completed", arguments: a };
    ev({ type: "response.output_item.done", output_index: idx, item: done });
    output.push(done);
  } else if (turn.patch) {
    const p = turn.patch;
    const patch = `*** Begin Patch\n*** Update File: ${p.file}\n@@\n-${p.old}\n+${p.new}\n*** End Patch\n`;
    if (tools.get("apply_patch") === "custom") {
      const ct = { id: `ctc_${n}`, type: "custom_tool_call", status: "in_progress",
                   call_id: `call_${n}`, name: "apply_patch", input: "" };
      ev({ type: "response.output_item.added", output_index: idx, item: ct });
      ev({ type: "response.custom_tool_call_input.delta", item_id: ct.id, output_index: idx,
           delta: patch });
      ev({ type: "response.custom_tool_call_input.done", item_id: ct.id, output_index: idx,
           input: patch });
      const done = { ...ct, status: "completed", input: patch };
      ev({ type: "response.output_item.done", output_index: idx, item: done });
      output.push(done);
    } else {
      const a = JSON.stringify({ input: patch });
      const fc = { id: `fc_${n}`, type: "function_call", status: "completed",
                   call_id: `call_${n}`, name: "apply_patch", arguments: a };
      ev({ type: "response.output_item.added", output_index: idx, item: { ...fc, arguments: "" } });
      ev({ type: "response.function_call_arguments.done", item_id: fc.id, output_index: idx,
           arguments: a });
      ev({ type: "response.output_item.done", output_index: idx, item: fc });
      output.push(fc);
    }
  }
  const input_tokens = 1000 + 10 * n, cached = 64 * (n % 8), output_tokens = 20 + n, reasoning = 5;
  const usage = {
    input_tokens,
    input_tokens_details: { cached_tokens: cached },
    output_tokens,
    output_tokens_details: { reasoning_tokens: reasoning },
    total_tokens: input_tokens + output_tokens,
  };
  ev({ type: "response.completed",
       response: { ...base, status: "completed", output, usage } });
  res.end();
}

const server = http.createServer((req, res) => {
  const chunksIn = [];
  req.on("data", (c) => chunksIn.push(c));
  req.on("end", () => {
    const raw = Buffer.concat(chunksIn).toString("utf8");
    let body = null;
    try {
      body = raw ? JSON.parse(raw) : null;
    } catch {
      body = raw;
    }
    const n = ++reqNo;
    log({ n, method: req.method, path: req.url, headers: req.headers, body });
    const path = req.url.split("?")[0];
    if (req.method === "GET" && path.endsWith("/models")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [], models: [] }));
      return;
    }
    if (req.method === "POST" && path.endsWith("/responses") && body && typeof body === "object") {
      const k = ++respNo;
      const turn = plan(body, k);
      if (turn.error) {
        res.writeHead(turn.error, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: {
          message: `fake error ${turn.error} for request ${k}`,
          type: turn.error >= 500 ? "server_error" : "invalid_request_error",
          param: null, code: turn.error >= 500 ? "server_error" : "invalid_request" } }));
        return;
      }
      stream(res, body, turn, k);
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { message: `no route ${req.method} ${path}` } }));
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(`listening http://127.0.0.1:${server.address().port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
