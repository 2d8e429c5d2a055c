// compare.mjs -- reel's restore?fit=sdk against the sandbox-agent SDK's own replay text.
//
//   node compare.mjs BASE_URL [COMBINATIONS=10000] [SEED=15]
//
// Generates, deterministically from SEED, sessions of events as an SDK persisting into
// reel would send them (client_time = the SDK's createdAt, source = sender, data = payload),
// appends them to the reel server at BASE_URL, then for COMBINATIONS (session, max_events,
// max_chars) compares reel's GET /v1/sessions/{id}/restore?fit=sdk replay_text with the
// text the SDK's own code builds from the same events (sdk_replay.mjs: resumeSession ->
// buildReplayText). The SDK holds each payload as JSON.parse of the exact text reel was
// sent. Prints "N combinations, M mismatches" (and the first mismatches); exit 1 on any.
import { sdkReplayText, sdkSession } from "./sdk_replay.mjs";

const base = process.argv[2];
const combinations = +(process.argv[3] || 10000);
let seed = BigInt(process.argv[4] || 15);

// splitmix64: the same sequence on every machine.
function next() {
    seed = (seed + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
    let z = seed;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
    return z ^ (z >> 31n);
}
const rnd = n => Number(next() % BigInt(n));
const pick = a => a[rnd(a.length)];

// Payloads as raw JSON text: what reel is sent byte for byte, and what the SDK parses.
const J = s => JSON.stringify(s);
const PAYLOADS = [
    J({ jsonrpc: "2.0", method: "session/prompt", params: { prompt: [{ type: "text", text: "hello" }] }, id: 1 }),
    J({ jsonrpc: "2.0", method: "session/update", params: { update: { sessionUpdate: "agent_message_chunk",
        content: { type: "text", text: "café 中文 über ünï" } } } }),
    J({ text: "astral \u{1F600}\u{1D11E} \u{1F468}\u200D\u{1F469}\u200D\u{1F467} end" }),
    J({ ctl: "\u0001\u001f\u007f\u0080\u009f\u2028\u2029\"\\/\n\t\b\f\r" }),
    J({ nul: "a\u0000b", bom: "\uFEFF", nonchar: "\uFFFF\u{10FFFF}" }),
    // Numbers JSON.stringify rewrites (or keeps): Infinity -> null, -0 -> 0, exponents.
    '[1e21,1E2,0.1,1.50,-0,5e-324,1.7976931348623157e308,1e400,-1e400,1e-7,0.000001,' +
        '123456789012345678901234567890,9007199254740993,18446744073709551615,' +
        '-9223372036854775808,100.0,2e0,-0.0,1.0e+2,123e-20]',
    '{"n":-0,"big":1e999,"small":1e-999,"f":0.30000000000000004,"i":4294967296}',
    // Keys that are array indices: JSON.parse puts them first, in numeric order.
    '{"b":1,"2":2,"a":3,"1":4,"01":5,"4294967295":6,"4294967294":7,"-1":8,"1.5":9,"0":10}',
    // Duplicate keys: the last value, at the first one's place.
    '{"a":1,"b":2,"a":3,"3":0,"c":{"z":1,"0":2,"z":{"z":3}},"3":"three"}',
    '{"k":1,"k":2,"k":3}',
    // Nested data.
    '{"l1":{"l2":{"l3":{"l4":{"l5":{"l6":[[[[[[{"deep":true}]]]]]]}}}}}}',
    '[[],[[]],[[[]]],{},{"":{}},{"":""}]',
    // Empty and null payloads.
    "null", "{}", "[]", '""', "0", "false", "true", '" "',
    J({ escapes: "\\u0041 is not A", slash: "</script>", quote: "'\"'" }),
    '{"\\u0061":"\\u00e9\\ud83d\\ude00","\\n":"\\t"}',
];
// Lone surrogates (issue 15, item 3): half of a pair, as a stream cut in an emoji leaves
// it; JSON.stringify writes it as a \u escape and reel keeps it (WTF-8, docs/FORMAT.md).
// In keys too, and low-then-high (two lone ones, not a pair).
const LONE_SURROGATE_PAYLOADS = [
    '{"half":"\\ud83d"}',
    '["\\udc00x","a\\ud800","\\ude00\\ud83d","\\ud83d\\ude00"]',
    '{"\\udbff":"key","text":"cut \\ud83d"}',
    J({ delta: "emoji cut \ud83d", next: "\ude00 rest" }),
];
PAYLOADS.push(...LONE_SURROGATE_PAYLOADS);

const SENDERS = ["client", "agent", "agent", "client", "agént \u{1F600}", ""];
const HEADER_LEN = "Previous session history is replayed below as JSON-RPC envelopes. Use it as context before responding to the latest user prompt.\n".length;

// client_time: Unix ms (the SDK's Date.now()), or RFC 3339 forms reel reads as Date.parse.
function clientTime() {
    const ms = 1_700_000_000_000 + rnd(100_000_000_000);
    switch (rnd(12)) {
    case 0: return undefined; // none: reel uses its commit time, so does the SDK side here
    case 1: return pick([0, 1, 8_640_000_000_000_000, 253_402_300_799_999]);
    case 2: case 3: case 4: {
        const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
        const frac = pick(["0123456789", "987654321", "000000009"]).slice(0, rnd(10));
        const [date, time] = [iso.slice(0, 10), iso.slice(11, 19)];
        const sep = pick(["T", "t", " "]);
        const zone = pick(["Z", "z", "+00:00", "-00:00", "+05:30", "-08:00", "+23:59", "-23:59"]);
        return `${date}${sep}${time}${frac ? "." + frac : ""}${zone}`;
    }
    default: return ms;
    }
}

function makeEvent(large) {
    let payload;
    if (large) { // a long text; its length is set near a max_chars boundary below
        const unit = pick(["y", "\u00e9", "\u{1F600}", "\"", "\n"]);
        payload = J({ text: unit.repeat(200 + rnd(6000)) });
    } else {
        payload = pick(PAYLOADS);
    }
    return { sender: pick(SENDERS), payload, clientTime: clientTime() };
}

async function http(method, path, body) {
    for (let attempt = 0; ; attempt++) {
        try {
            const r = await fetch(base + path, { method, body,
                headers: body ? { "content-type": "application/json" } : {} });
            const text = await r.text();
            if (r.status !== 200)
                throw new Error(`${method} ${path}: ${r.status} ${text.slice(0, 300)}`);
            return JSON.parse(text);
        } catch (e) {
            if (attempt >= 3 || /: \d{3} /.test(e.message))
                throw e;
        }
    }
}

// Sessions: 0..70 events each, a few with a large text.
const sessions = [];
for (let s = 0; s < 48; s++) {
    const n = s === 0 ? 0 : s === 1 ? 1 : rnd(71);
    const events = [];
    for (let i = 0; i < n; i++)
        events.push(makeEvent(rnd(12) === 0));
    sessions.push({ id: `sdk-${s}`, events });
}
for (const s of sessions) {
    if (!s.events.length) { // a session with no events: a record only
        await http("PUT", `/v1/sessions/${s.id}`, "{}");
        continue;
    }
    const body = "[" + s.events.map(e => `{"type":"sdk.event","source":${J(e.sender)},` +
        (e.clientTime === undefined ? "" : `"client_time":${J(e.clientTime)},`) +
        `"data":${e.payload}}`).join(",") + "]";
    await http("POST", `/v1/sessions/${s.id}/events`, body);
    // The SDK's events: createdAt = client_time (Date.parse of RFC 3339), else reel's time.
    const served = (await http("GET", `/v1/sessions/${s.id}/events?limit=1000`)).events;
    if (served.length !== s.events.length)
        throw new Error(`${s.id}: ${served.length} events served, ${s.events.length} sent`);
    s.sdkEvents = s.events.map((e, i) => {
        if (served[i].client_time !== e.clientTime)
            throw new Error(`${s.id} #${i}: client_time ${J(served[i].client_time)} served, ${J(e.clientTime)} sent`);
        const t = e.clientTime === undefined ? served[i].time : e.clientTime;
        return { createdAt: typeof t === "string" ? Date.parse(t) : t, sender: e.sender,
                 payload: JSON.parse(e.payload) };
    });
    s.persist = await sdkSession(s.id, s.sdkEvents);
}
for (const s of sessions)
    if (!s.persist)
        s.persist = await sdkSession(s.id, []);

// max_chars near the boundaries: the length of the header plus the first k lines (as the
// SDK counts, UTF-16 units), -1, 0, +1; else anywhere.
function maxChars(s, maxEvents) {
    const evs = s.sdkEvents ? s.sdkEvents.slice(-maxEvents) : [];
    let len = HEADER_LEN;
    const bounds = [len];
    for (const e of evs) {
        len += J({ createdAt: e.createdAt, sender: e.sender, payload: e.payload }).length + 1;
        bounds.push(len);
    }
    if (rnd(4) === 0)
        return 1 + rnd(len + 200);
    return Math.max(1, pick(bounds) + rnd(3) - 1);
}

const combos = [];
for (let i = 0; i < combinations; i++) {
    const s = pick(sessions);
    const n = s.events.length;
    const maxEvents = rnd(5) === 0 ? 1 + rnd(3) : 1 + rnd(n + 5);
    combos.push({ s, maxEvents, maxChars: maxChars(s, maxEvents) });
}

let mismatches = 0, done = 0, shown = 0;
async function worker() {
    while (done < combos.length) {
        const c = combos[done++];
        const want = await sdkReplayText(c.s.persist, c.s.id, c.maxEvents, c.maxChars);
        const got = (await http("GET", `/v1/sessions/${c.s.id}/restore?fit=sdk&max_events=` +
                                `${c.maxEvents}&max_chars=${c.maxChars}`)).replay_text;
        if (got !== want) {
            mismatches++;
            if (shown++ < 3) {
                let at = 0;
                while (got && want && got[at] === want[at])
                    at++;
                console.log(`MISMATCH ${c.s.id} max_events=${c.maxEvents} max_chars=${c.maxChars} ` +
                            `at ${at}: reel ${J(got && got.slice(at, at + 120))} sdk ${J(want && want.slice(at, at + 120))}`);
            }
        }
    }
}
await Promise.all([worker(), worker(), worker(), worker()]);
const events = sessions.reduce((a, s) => a + s.events.length, 0);
console.log(`${combos.length} combinations (${sessions.length} sessions, ${events} events), ` +
            `${mismatches} mismatches`);
process.exit(mismatches ? 1 : 0);
