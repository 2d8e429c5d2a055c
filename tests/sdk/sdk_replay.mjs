// sdk_replay.mjs -- the replay text of the real sandbox-agent SDK (package.json pins it).
//
// The SDK builds it in buildReplayText(events, maxChars), a function private to its bundled
// module (dist/chunk-*.js, not exported). It is reached through the public class instead:
// SandboxAgent.prototype.resumeSession(id) reads the session's events from the persist
// driver (collectReplayEvents: every page, then the last replayMaxEvents), calls
// buildReplayText(events, replayMaxChars), recreates the remote session and hands the text
// to the live connection's queueReplay(id, text), which prepends it to the next prompt.
// Here the persist driver is the SDK's own InMemorySessionPersistDriver holding the events,
// and the only stand-in is the live connection (the agent process behind the sandbox
// server): getLiveConnection() is replaced on the instance by an object that records the
// text queueReplay() receives. Everything between, the event selection and the text, is
// the SDK's code as published.
import { InMemorySessionPersistDriver, SandboxAgent } from "sandbox-agent";

class RecordingConnection {
    connectionId = "reel-test-connection";
    text = undefined;
    hasBoundSession() { return false; } // never bound: resumeSession always replays
    async createRemoteSession() { return { sessionId: "remote", configOptions: [], modes: null }; }
    bindSession() {}
    queueReplay(_id, text) { this.text = text; }
}

// A persist driver holding one session 'id' with 'events' ({createdAt, sender, payload}),
// in the SDK's event record shape.
export async function sdkSession(id, events) {
    const persist = new InMemorySessionPersistDriver({ maxEventsPerSession: 1e9 });
    await persist.updateSession({ id, agent: "mock", agentSessionId: "old", lastConnectionId: "old",
                                  createdAt: 0, sessionInit: { cwd: "/", mcpServers: [] } });
    let i = 0;
    for (const e of events)
        await persist.insertEvent(id, { id: `e${String(i).padStart(8, "0")}`, eventIndex: i++,
                                        sessionId: id, createdAt: e.createdAt,
                                        connectionId: "c", sender: e.sender, payload: e.payload });
    return persist;
}

// The SDK's replay text (a string, or null for no events) of session 'id' in 'persist' with
// replayMaxEvents and replayMaxChars (positive integers: the SDK takes anything else as
// its defaults, 50 and 12000).
export async function sdkReplayText(persist, id, maxEvents, maxChars) {
    const sdk = new SandboxAgent({ baseUrl: "http://127.0.0.1:9", skipHealthCheck: true, persist,
                                   replayMaxEvents: maxEvents, replayMaxChars: maxChars });
    const live = new RecordingConnection();
    sdk.getLiveConnection = async () => live;
    await sdk.resumeSession(id);
    if (live.text === undefined)
        throw new Error("the SDK did not queue a replay text");
    return live.text;
}

// CLI: node sdk_replay.mjs MAX_EVENTS MAX_CHARS < events.jsonl (reel envelopes, as `reel
// tail` prints them) -> the SDK's text on stdout (nothing for null). createdAt is the
// event's client_time (Date.parse of an RFC 3339 one), else Date.parse of its time.
if (import.meta.url === `file://${process.argv[1]}`) {
    const fs = await import("node:fs");
    const lines = fs.readFileSync(0, "utf8").split("\n").filter(Boolean).map(JSON.parse);
    const events = lines.map(e => ({
        createdAt: e.client_time === undefined ? Date.parse(e.time)
            : typeof e.client_time === "string" ? Date.parse(e.client_time) : e.client_time,
        sender: e.source, payload: e.data }));
    const persist = await sdkSession("s", events);
    const text = await sdkReplayText(persist, "s", +process.argv[2], +process.argv[3]);
    process.stdout.write(text === null ? "" : text);
}
