// sandbox_agent.test.mjs -- reel-client/sandbox-agent (clients/typescript/dist) judged by the
// real sandbox-agent SDK 0.4.2 and its @sandbox-agent/cli server binary driving the scripted
// ACP agent (scripted_acp_agent.mjs), against a real reel server (clients/typescript/test/
// server.mjs). Everything runs on 127.0.0.1; nothing reaches the network but `npm ci`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { HERE, ROOT, ensureInstalled, cliAvailable, startSandboxServer } from "./harness.mjs";
import { makeClient, makeDriver } from "./client.mjs";
import { startServer } from "../../../clients/typescript/test/server.mjs";

const skip = ensureInstalled();
if (skip) process.stdout.write(`# skipped: ${skip}\n`);
const sdkMod = skip ? null : await import("sandbox-agent");
const noCli = skip ?? cliAvailable();

// The SDK's own test for "retry this insert with a new eventIndex", read from its bundle
// (isSessionEventIndexConflict in dist/chunk-*.js), so the adapter is held to the real one.
function sdkConflictPattern() {
    const dist = path.join(HERE, "node_modules/sandbox-agent/dist");
    for (const f of fs.readdirSync(dist).filter(f => /^chunk-.*\.js$/.test(f))) {
        const m = /function isSessionEventIndexConflict\(error\)[\s\S]*?return \/(.+)\/\.test\(error\.message\)/.exec(fs.readFileSync(path.join(dist, f), "utf8"));
        if (m) return new RegExp(m[1]);
    }
    throw new Error("isSessionEventIndexConflict not found in the sandbox-agent bundle");
}

// what JSON keeps of a value (the in-memory driver's clones carry keys set to undefined)
const plain = v => JSON.parse(JSON.stringify(v));

async function allPages(fn, limit) {
    const items = [], cursors = [];
    let cursor;
    for (let i = 0; i < 10000; i++) {
        const page = await fn({ cursor, limit });
        items.push(...page.items);
        if (!page.nextCursor) return { items, cursors };
        assert.equal(typeof page.nextCursor, "string");
        cursors.push(page.nextCursor);
        cursor = page.nextCursor;
    }
    throw new Error("paging did not end");
}

let reel;
before(async () => { if (!skip) reel = await startServer(); });
after(async () => { await reel?.stop(); });

const RECORDS = [
    { id: "sess-ünï 😀/1", agent: "pi", agentSessionId: "as-1", lastConnectionId: "conn-1", createdAt: 1764900000123,
      sessionInit: { cwd: "/work/ü", mcpServers: [{ name: "fs", command: "mcp-fs", args: ["--root", "/"], env: [] }] },
      configOptions: [{ id: "model", name: "Model", category: "model", type: "select", currentValue: "m-1",
                        options: [{ value: "m-1", name: "M 1" }, { value: "m-2", name: "M 2" }] }],
      modes: null },
    { id: "s2", agent: "claude", agentSessionId: "as-2", lastConnectionId: "conn-2", createdAt: 1, destroyedAt: 1764900009999,
      sandboxId: "local/abc", sessionInit: { cwd: "/", mcpServers: [] },
      modes: { currentModeId: "code", availableModes: [{ id: "code", name: "Code", description: null }] },
      futureField: { big: 9007199254740991, frac: 0.1, neg: -5, exp: 1e21, list: [true, false, null] } },
    { id: "a%2Fb ..", agent: "codex", agentSessionId: "as-3", lastConnectionId: "conn-3", createdAt: 1764900000123 },
];

function eventsFor(sessionId) {
    const env = (i, extra) => ({ jsonrpc: "2.0", ...extra, id: i });
    const raw = [
        ["client", env(1, { method: "session/new", params: { cwd: "/work/ü", mcpServers: [] } })],
        ["agent", { jsonrpc: "2.0", id: 1, result: { sessionId: "as-1", modes: null } }],
        ["client", env(2, { method: "session/prompt", params: { sessionId: "as-1", prompt: [{ type: "text", text: "héllo 😀 \u0000 nul \ud83d lone" }] } })],
        ["agent", { jsonrpc: "2.0", method: "session/update", params: { sessionId: "as-1", update: {
            sessionUpdate: "agent_message_chunk", content: { type: "text", text: "a\n\"quoted\" \u2028 line" } } } }],
        ["agent", { jsonrpc: "2.0", method: "session/update", params: { sessionId: "as-1", update: {
            sessionUpdate: "tool_call", toolCallId: "t1", title: "Read", kind: "read", status: "pending",
            rawInput: { n: 9007199254740991, f: 1.5, e: 1e-7, z: 0, neg: -0.25, obj: {}, arr: [] } } } }],
        ["agent", { jsonrpc: "2.0", id: 2, result: { stopReason: "end_turn" } }],
    ];
    return raw.map(([sender, payload], i) => ({
        id: `${sessionId}-ev-${i}`, eventIndex: i + 1, sessionId, createdAt: 1764900000000 + i * 1111,
        connectionId: i < 3 ? "conn-1" : "conn-1b", sender, payload,
        ...(i === 4 ? { extraSdkField: { kept: ["as", "given"] } } : {}),
    }));
}

test("every SessionRecord and SessionEvent field round-trips as the SDK's InMemorySessionPersistDriver keeps it", { skip }, async () => {
    const mem = new sdkMod.InMemorySessionPersistDriver({ maxEventsPerSession: 1e9 });
    const drv = await makeDriver(reel.url, { prefix: "rt/" });
    for (const d of [mem, drv]) {
        for (const r of RECORDS) await d.updateSession(structuredClone(r));
        // a second update replaces the record: a field left out is gone, a changed one changed
        const { configOptions, ...rest } = RECORDS[0];
        await d.updateSession({ ...structuredClone(rest), lastConnectionId: "conn-1b" });
        for (const e of eventsFor(RECORDS[0].id)) await d.insertEvent(RECORDS[0].id, structuredClone(e));
    }
    for (const r of RECORDS) {
        const a = await drv.getSession(r.id), b = await mem.getSession(r.id);
        assert.equal(JSON.stringify(a), JSON.stringify(plain(b)), `record ${r.id}`);
    }
    assert.equal((await drv.getSession(RECORDS[0].id)).configOptions, undefined);
    assert.equal(typeof (await drv.getSession("s2")).createdAt, "number");
    assert.equal((await drv.getSession("s2")).futureField.big, 9007199254740991);
    assert.equal(await drv.getSession("never-written"), undefined);

    // listSessions: every record once through opaque cursors (reel lists in id order, the
    // in-memory driver by createdAt: compared as sets)
    const byId = xs => [...xs].sort((x, y) => (x.id < y.id ? -1 : 1));
    const ours = await allPages(q => drv.listSessions(q), 1);
    const theirs = await allPages(q => mem.listSessions(q), 1);
    assert.equal(ours.items.length, RECORDS.length);
    assert.equal(JSON.stringify(byId(ours.items)), JSON.stringify(byId(plain(theirs.items))));
    assert.ok(ours.cursors.every(c => !/^[0-9]+$/.test(c)), "cursors are the driver's own, not offsets");

    // listEvents, two per page: the same events, fields, order and JSON text
    const evOurs = await allPages(q => drv.listEvents({ sessionId: RECORDS[0].id, ...q }), 2);
    const evTheirs = await allPages(q => mem.listEvents({ sessionId: RECORDS[0].id, ...q }), 2);
    assert.equal(evOurs.items.length, 6);
    assert.equal(JSON.stringify(evOurs.items), JSON.stringify(evTheirs.items));
    assert.deepEqual(evOurs.items, plain(evTheirs.items));
    for (const e of evOurs.items) {
        assert.equal(typeof e.eventIndex, "number");
        assert.equal(typeof e.createdAt, "number");
    }
    assert.equal(evOurs.items[2].payload.params.prompt[0].text, "héllo 😀 \u0000 nul \ud83d lone");
    assert.deepEqual(await drv.listEvents({ sessionId: "never-written" }), { items: [] });

    // in reel: one event per SessionEvent, event_id = id, source = sender, data = payload,
    // client_time = createdAt; the session record's metadata holds the SDK record
    const client = await makeClient(reel.url);
    const rec = await client.getSession("rt/" + RECORDS[1].id);
    assert.deepEqual(rec.metadata.sandbox_agent, RECORDS[1]);
    assert.equal(rec.agent, "claude");
    assert.equal(rec.native_session_id, "as-2");
    const page = await client.events("rt/" + RECORDS[0].id, { after: 0, limit: 100 });
    assert.deepEqual(page.events.map(e => [e.event_id, e.source, e.client_time]),
                     eventsFor(RECORDS[0].id).map(e => [e.id, e.sender, e.createdAt]));
    assert.deepEqual(page.events.map(e => e.data), eventsFor(RECORDS[0].id).map(e => e.payload));
});

test("insertEvent: idempotent on the id; a taken eventIndex is the error the SDK retries on; a refusal breaks nothing after it", { skip }, async () => {
    const pattern = sdkConflictPattern();
    const sid = "idem";
    const drv = await makeDriver(reel.url);
    const evs = eventsFor(sid);
    for (const e of evs) await drv.insertEvent(sid, e);
    await drv.insertEvent(sid, evs[3]);                 // the same event again: nothing new
    const other = await makeDriver(reel.url);           // a second driver (another process)
    await other.insertEvent(sid, evs[5]);
    let count = (await drv.listEvents({ sessionId: sid, limit: 1000 })).items.length;
    assert.equal(count, 6);

    for (const d of [drv, other]) {
        await assert.rejects(d.insertEvent(sid, { ...evs[2], id: "someone-else" }), err => {
            assert.match(err.message, pattern);
            return true;
        });
    }
    // a refused event leaves no gap that breaks later inserts (the expected_sequence trap):
    // later indexes, and an index past a hole, are all accepted, from either driver
    await other.insertEvent(sid, { ...evs[0], id: "late-7", eventIndex: 7 });
    await drv.insertEvent(sid, { ...evs[0], id: "late-9", eventIndex: 9 });
    await drv.insertEvent(sid, { ...evs[0], id: "late-8", eventIndex: 8 });
    await assert.rejects(other.insertEvent(sid, { ...evs[0], id: "dup-8", eventIndex: 8 }), pattern);
    const items = (await drv.listEvents({ sessionId: sid, limit: 1000 })).items;
    assert.deepEqual(items.map(e => e.eventIndex), [1, 2, 3, 4, 5, 6, 7, 9, 8]);
    assert.deepEqual(items.map(e => e.id).slice(6), ["late-7", "late-9", "late-8"]);
});

test("updateSession is a read-modify-write: concurrent updates keep other metadata keys", { skip }, async () => {
    const client = await makeClient(reel.url);
    const drivers = await Promise.all([0, 1, 2, 3].map(() => makeDriver(reel.url)));
    await client.putSession("rmw", { metadata: { owner: "ops" } });
    // four drivers update the SDK record while another writer adds its own metadata keys
    const writer = (async () => {
        for (let i = 0; i < 20; i++) {
            for (;;) {
                const cur = await client.getSession("rmw");
                try {
                    await client.putSession("rmw", { metadata: { ...cur.metadata, [`k${i}`]: i } }, { ifMatch: cur.version });
                    break;
                } catch (err) { if (err.status !== 412) throw err; }
            }
        }
    })();
    await Promise.all([writer, ...drivers.map(async (d, n) => {
        for (let i = 0; i < 10; i++)
            await d.updateSession({ id: "rmw", agent: "pi", agentSessionId: `a${n}-${i}`, lastConnectionId: `c${n}`, createdAt: 5 });
    })]);
    const rec = await client.getSession("rmw");
    assert.equal(rec.metadata.owner, "ops");
    for (let i = 0; i < 20; i++) assert.equal(rec.metadata[`k${i}`], i);
    assert.match(rec.metadata.sandbox_agent.agentSessionId, /^a[0-3]-9$/);
    assert.equal(rec.native_session_id, rec.metadata.sandbox_agent.agentSessionId);
});

// ---- the SDK with the CLI server and the scripted agent ----

async function idle(sdk) {
    // the SDK persists observed envelopes on a per-session promise chain; wait until it is empty
    const end = Date.now() + 10000;
    while (sdk.pendingObservedEnvelopePersistenceBySession.size > 0) {
        if (Date.now() > end) throw new Error("the SDK did not finish persisting");
        await new Promise(r => setTimeout(r, 10));
    }
}

function promptsReceived(sbx) {
    return sbx.agentRequests().filter(m => m.method === "session/prompt").map(m => m.params.prompt);
}

test("prompt three times, drop the SDK, a new SDK resumes from reel: the replay text it sends equals restore?fit=sdk", { skip: noCli, timeout: 90000 }, async () => {
    const sbx = await startSandboxServer();
    try {
        const client = await makeClient(reel.url);
        const sdkA = await sdkMod.SandboxAgent.connect({ baseUrl: sbx.baseUrl, persist: await makeDriver(reel.url) });
        const session = await sdkA.createSession({ id: "resume-1", agent: "pi", cwd: "/tmp" });
        for (const text of ["first: ünï", "second 😀", "third \"quoted\""]) {
            const r = await session.prompt([{ type: "text", text }]);
            assert.equal(r.stopReason, "end_turn");
        }
        await idle(sdkA);
        await sdkA.dispose();
        // 2 events for session/new, then 7 per prompt (request, 5 updates, response)
        const before = await client.getSession("resume-1");
        assert.equal(before.event_count, 2 + 3 * 7);
        const restore = await client.restore("resume-1", { fit: "sdk", maxEvents: 50, maxChars: 12000 });
        const small = await client.restore("resume-1", { fit: "sdk", maxEvents: 10, maxChars: 1500 });
        assert.equal(small.truncated, true);

        // a new SDK instance and a new driver: nothing in memory but reel
        const sdkB = await sdkMod.SandboxAgent.connect({ baseUrl: sbx.baseUrl, persist: await makeDriver(reel.url) });
        const resumed = await sdkB.resumeSession("resume-1");
        assert.notEqual(resumed.agentSessionId, session.agentSessionId);
        const r4 = await resumed.prompt([{ type: "text", text: "fourth" }]);
        assert.equal(r4.stopReason, "end_turn");
        await idle(sdkB);
        const prompts = promptsReceived(sbx);
        assert.equal(prompts.length, 4);
        const sent = prompts[3];
        assert.equal(sent.length, 2, "the replay text is prepended to the prompt");
        assert.equal(sent[1].text, "fourth");
        assert.ok(sent[0].text.includes("you said \\\"third \\\\\\\"quoted\\\\\\\"\\\"."), "the replay holds the last turn");
        assert.equal(sent[0].text, restore.replay_text, "the SDK's replay text is reel's restore?fit=sdk");

        // the same with the SDK's limits set low: its truncation is reel's
        const sdkC = await sdkMod.SandboxAgent.connect({ baseUrl: sbx.baseUrl, persist: await makeDriver(reel.url),
                                                         replayMaxEvents: 10, replayMaxChars: 1500 });
        // restore now covers the events sdkB added too
        const small2 = await client.restore("resume-1", { fit: "sdk", maxEvents: 10, maxChars: 1500 });
        const resumedC = await sdkC.resumeSession("resume-1");
        await resumedC.prompt([{ type: "text", text: "fifth" }]);
        await idle(sdkC);
        assert.equal(promptsReceived(sbx)[4][0].text, small2.replay_text);
        assert.ok(small2.replay_text.endsWith("\n[history truncated]"));
        await sdkB.dispose();
        await sdkC.dispose();

        // every event once, eventIndex 1..N in order, each SDK continuing the previous one's count
        const all = (await (await makeDriver(reel.url)).listEvents({ sessionId: "resume-1", limit: 10000 })).items;
        assert.equal(all.length, 23 + 2 + 7 + 2 + 7);
        assert.deepEqual(all.map(e => e.eventIndex), all.map((_, i) => i + 1));
        assert.equal(new Set(all.map(e => e.connectionId)).size, 3);
        const rec = await sdkB.persist.getSession("resume-1");
        assert.equal(rec.agentSessionId, resumedC.agentSessionId);
    } finally {
        await sbx.stop();
    }
});

test("two SDK instances prompting one session at once: every event is in reel once, eventIndex unique", { skip: noCli, timeout: 90000 }, async () => {
    const sbx = await startSandboxServer();
    const errors = [];
    const origError = console.error;
    console.error = (...a) => { errors.push(a.map(String).join(" ")); };
    try {
        const persistA = await makeDriver(reel.url), persistB = await makeDriver(reel.url);
        const sdkA = await sdkMod.SandboxAgent.connect({ baseUrl: sbx.baseUrl, persist: persistA });
        const sdkB = await sdkMod.SandboxAgent.connect({ baseUrl: sbx.baseUrl, persist: persistB });
        const a = await sdkA.createSession({ id: "both", agent: "pi", cwd: "/tmp" });
        const b = await sdkB.resumeSession("both");      // B binds its own agent session to "both"
        const seen = { A: [], B: [] };                   // events the SDKs report as persisted
        a.onEvent(e => seen.A.push(e));
        b.onEvent(e => seen.B.push(e));
        const N = 6;
        await Promise.all([
            (async () => { for (let i = 0; i < N; i++) await a.prompt([{ type: "text", text: `A${i}` }]); })(),
            (async () => { for (let i = 0; i < N; i++) await b.prompt([{ type: "text", text: `B${i}` }]); })(),
        ]);
        await idle(sdkA);
        await idle(sdkB);
        await sdkA.dispose();
        await sdkB.dispose();
        const all = (await persistA.listEvents({ sessionId: "both", limit: 10000 })).items;
        // session/new of A and of B (2 each), N prompts each of 7 events
        assert.equal(all.length, 2 + 2 + 2 * N * 7, `events in reel (SDK errors: ${errors.join(" | ")})`);
        assert.equal(new Set(all.map(e => e.id)).size, all.length);
        assert.equal(new Set(all.map(e => e.eventIndex)).size, all.length, "eventIndex is unique");
        const ids = new Set(all.map(e => e.id));
        for (const e of [...seen.A, ...seen.B]) assert.ok(ids.has(e.id), `event ${e.eventIndex} reported but not stored`);
        assert.equal(seen.A.length + seen.B.length, 2 * N * 7);
        assert.deepEqual(errors, []);
        for (const who of ["A", "B"]) {
            const texts = all.filter(e => e.payload?.method === "session/prompt").map(e => e.payload.params.prompt.at(-1).text);
            for (let i = 0; i < N; i++) assert.ok(texts.includes(`${who}${i}`), `${who}${i} stored`);
        }
    } finally {
        console.error = origError;
        await sbx.stop();
    }
});
