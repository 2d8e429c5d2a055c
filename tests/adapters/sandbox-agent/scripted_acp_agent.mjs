#!/usr/bin/env node
// scripted_acp_agent.mjs -- a scripted ACP agent (Agent Client Protocol: JSON-RPC 2.0, one
// message per line on stdin/stdout), launched by the @sandbox-agent/cli server as the ACP
// process of an agent (tests/adapters/sandbox-agent/harness.mjs puts it on PATH as `pi-acp`).
//
// It answers initialize, session/new (and session/load), and session/prompt with a scripted
// turn: an agent_thought_chunk, a tool_call (pending) and its tool_call_update (completed,
// with output), two agent_message_chunk notifications, then the prompt result
// {stopReason: "end_turn"}. The reply names the turn number and the prompt's last text part,
// so tests can see which prompt an answer belongs to.
//
// Every request it receives is appended as one JSON line to $SCRIPTED_AGENT_LOG (when set):
// the tests read the prompts there, including the replay text the SDK prepends to the first
// prompt after a resume.
import fs from "node:fs";
import readline from "node:readline";

const LOG = process.env.SCRIPTED_AGENT_LOG || "";
const sessions = new Map(); // sessionId -> turns answered
let nextSession = 1;

function send(msg) { process.stdout.write(JSON.stringify(msg) + "\n"); }
function log(msg) { if (LOG) fs.appendFileSync(LOG, JSON.stringify({ pid: process.pid, msg }) + "\n"); }
function update(sessionId, u) { send({ jsonrpc: "2.0", method: "session/update", params: { sessionId, update: u } }); }

function promptText(prompt) {
    const texts = (Array.isArray(prompt) ? prompt : []).filter(p => p && p.type === "text").map(p => p.text);
    return texts.length ? texts[texts.length - 1] : "";
}

async function handle(msg) {
    const { id, method, params } = msg;
    if (method === undefined) return; // a response to something we never ask
    log(msg);
    const reply = result => { if (id !== undefined) send({ jsonrpc: "2.0", id, result }); };
    switch (method) {
    case "initialize":
        return reply({ protocolVersion: params?.protocolVersion ?? 1,
                       agentCapabilities: { loadSession: true,
                                            promptCapabilities: { image: false, audio: false, embeddedContext: true } },
                       authMethods: [], agentInfo: { name: "reel-scripted-agent", version: "1.0.0" } });
    case "session/new": {
        const sessionId = `scripted-${process.pid}-${nextSession++}`;
        sessions.set(sessionId, 0);
        return reply({ sessionId });
    }
    case "session/load":
        sessions.set(params.sessionId, sessions.get(params.sessionId) ?? 0);
        return reply({});
    case "session/prompt": {
        const sid = params.sessionId;
        const turn = (sessions.get(sid) ?? 0) + 1;
        sessions.set(sid, turn);
        const asked = promptText(params.prompt);
        const toolCallId = `call-${turn}`;
        update(sid, { sessionUpdate: "agent_thought_chunk", content: { type: "text", text: `Thinking about turn ${turn}.` } });
        update(sid, { sessionUpdate: "tool_call", toolCallId, title: `Read notes-${turn}.md`, kind: "read",
                      status: "pending", rawInput: { path: `notes-${turn}.md` } });
        update(sid, { sessionUpdate: "tool_call_update", toolCallId, status: "completed",
                      content: [{ type: "content", content: { type: "text", text: `notes for turn ${turn}: ünï ✓ 😀` } }],
                      rawOutput: { bytes: 42 + turn } });
        update(sid, { sessionUpdate: "agent_message_chunk", content: { type: "text", text: `Turn ${turn}: ` } });
        update(sid, { sessionUpdate: "agent_message_chunk", content: { type: "text", text: `you said "${asked}".` } });
        return reply({ stopReason: "end_turn" });
    }
    case "session/cancel":
        return; // a notification
    case "session/set_mode":
    case "session/set_config_option":
        return reply({});
    default:
        if (id !== undefined) send({ jsonrpc: "2.0", id, error: { code: -32601, message: `method not found: ${method}` } });
    }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", line => {
    if (!line.trim()) return;
    let msg;
    try { msg = JSON.parse(line); } catch { return; }
    handle(msg).catch(err => process.stderr.write(`scripted agent: ${err.stack}\n`));
});
rl.on("close", () => process.exit(0));
