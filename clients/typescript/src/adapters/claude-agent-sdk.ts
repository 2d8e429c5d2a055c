// reel-client/claude-agent-sdk: a SessionStore of @anthropic-ai/claude-agent-sdk (>= 0.3)
// backed by reel (docs/CLIENTS.md "Claude Agent SDK").
//
//   import { query, foldSessionSummary } from "@anthropic-ai/claude-agent-sdk";
//   import { ReelSessionStore } from "reel-client/claude-agent-sdk";
//   const sessionStore = new ReelSessionStore({ baseUrl: "http://127.0.0.1:2469", foldSessionSummary });
//   for await (const m of query({ prompt, options: { sessionStore } })) ...
//
// The SDK's types are restated structurally here (no dependency on the SDK package).
//
// Mapping. A SessionKey {projectKey, sessionId, subpath?} is the reel session id
//   <prefix><esc(projectKey)>/<esc(sessionId)>[/<esc(subpath)>]      (prefix: "claude:")
// where esc() writes "%" as %25, "/" as %2F and the control characters reel refuses in ids
// (U+0000..U+001F, U+007F) as %XX, and keeps every other character as it is. So an id has
// exactly one or two raw "/" after the prefix, keyFromId() reverses it (decodeURIComponent),
// and the sessions of a project, or the subkeys of a session, are one prefix listing.
// Each transcript entry is one event {type: "claude.entry", data: <the entry>,
// event_id: <entry.uuid> (else a new id), client_time: <entry.timestamp>,
// native_session_id: <sessionId>, source: "claude-agent-sdk"}.
import { ReelClient, ReelError } from "../client.js";
import type { ClientOptions, Json, NewEvent, ReelEvent, SessionRecord } from "../client.js";

/** The SDK's SessionKey. */
export interface SessionKey {
  projectKey: string;
  sessionId: string;
  /** Undefined (or "") = the main transcript; e.g. "subagents/agent-<id>" for a subagent's. */
  subpath?: string;
}

/** The SDK's SessionStoreEntry: one JSONL transcript line. */
export interface SessionStoreEntry {
  type: string;
  uuid?: string;
  timestamp?: string;
  [k: string]: unknown;
}

/** The SDK's SessionSummaryEntry. */
export interface SessionSummaryEntry {
  sessionId: string;
  mtime: number;
  data: Record<string, unknown>;
}

/** The SDK's `foldSessionSummary` (pass it in, or it is imported from the SDK when installed). */
export type FoldSessionSummary = (
  prev: SessionSummaryEntry | undefined,
  key: SessionKey,
  entries: SessionStoreEntry[],
  options?: { mtime?: number },
) => SessionSummaryEntry;

export interface ReelSessionStoreOptions extends ClientOptions {
  /** A client to use instead of one made from the options (which has coalescing on). */
  client?: ReelClient;
  /** Prefix of every reel session id this store writes (default "claude:"). */
  prefix?: string;
  /**
   * The SDK's foldSessionSummary, used inside append() to keep each session's summary in its
   * reel record (listSessionSummaries). When absent, the store imports it from
   * "@anthropic-ai/claude-agent-sdk" when it can; without it, no summaries are kept and the SDK
   * falls back to listSessions() + load().
   */
  foldSessionSummary?: FoldSessionSummary | null;
  /** The record's `agent` field for sessions this store writes (default "claude-agent-sdk"). */
  agent?: string;
}

/** The event type of a transcript entry. */
export const ENTRY_TYPE = "claude.entry";
const SOURCE = "claude-agent-sdk";
/** Most entries per POST and most bytes of JSON per POST (reel allows 10000 and 16 MiB). */
const BATCH_EVENTS = 1000;
const BATCH_BYTES = 4 * 1024 * 1024;
/** Most records (and described subkeys) remembered, least recently written out first. */
const CACHE_MAX = 1000;

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Escapes one part of a key for a reel id: "%" "/" and control characters as %XX, the rest kept. */
export function escapeKeyPart(s: string): string {
  if (typeof s !== "string") throw new TypeError(`a SessionKey part must be a string, not ${typeof s}`);
  if (LONE_SURROGATE.test(s)) throw new TypeError("a SessionKey part is not well-formed UTF-16 (a lone surrogate)");
  return s.replace(/[%/\u0000-\u001f\u007f]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0"));
}

/** The reel session id of a SessionKey (see the mapping above). */
export function sessionIdOf(key: SessionKey, prefix = "claude:"): string {
  let id = prefix + escapeKeyPart(key.projectKey) + "/" + escapeKeyPart(key.sessionId);
  if (key.subpath) id += "/" + escapeKeyPart(key.subpath);
  return id;
}

/** The SessionKey of a reel session id written by this store, or null for any other id. */
export function keyOf(id: string, prefix = "claude:"): SessionKey | null {
  if (!id.startsWith(prefix)) return null;
  const parts = id.slice(prefix.length).split("/");
  if (parts.length < 2 || parts.length > 3) return null;
  try {
    const [p, s, sub] = parts.map((x) => decodeURIComponent(x));
    const key: SessionKey = { projectKey: p!, sessionId: s! };
    if (sub !== undefined) key.subpath = sub;
    return key;
  } catch {
    return null;
  }
}

// The RFC 3339 form reel takes as client_time (docs/HTTP.md "client_time"): two-digit fields,
// a real calendar day, hour 00..23, second 00..59, offset up to 23:59, 1..9 fraction digits,
// from 1970 on. Anything else would fail the whole batch (400), so it stays only in data.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

export function clientTimeOf(ts: unknown): string | undefined {
  if (typeof ts !== "string") return undefined;
  const m = RFC3339.exec(ts);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const oh = m[8] === undefined ? 0 : Number(m[8]);
  const om = m[9] === undefined ? 0 : Number(m[9]);
  if (mo < 1 || mo > 12 || d < 1 || d > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return undefined;
  if (h > 23 || mi > 59 || se > 59 || oh > 23 || om > 59) return undefined;
  const t = Date.parse(ts.replace(" ", "T"));
  if (!Number.isFinite(t) || t < 0 || y < 1970) return undefined;
  return ts;
}

const encoder = new TextEncoder();
function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

/** reel keeps a native_session_id of at most 256 bytes (the SDK's are UUIDs). */
function nativeIdOk(s: string): boolean {
  return utf8Length(s) <= 256;
}

function mtimeOf(rec: SessionRecord): number {
  return Math.floor(Date.parse(rec.updated_at));
}

function isRefusedContent(e: unknown): boolean {
  return e instanceof ReelError && (e.status === 413 || (e.status === 400 && (e.code === "invalid_event" || e.code === "too_deep" || e.code === "invalid_json")));
}

function isGone(e: unknown): boolean {
  return e instanceof ReelError && (e.status === 404 || e.status === 410);
}

/** What this store keeps in a session record's metadata, under "claude". */
interface ClaudeMeta {
  projectKey: string;
  sessionId: string;
  subpath?: string;
  /** foldSessionSummary's data, folded over the entries up to summary_through. */
  summary?: Record<string, unknown>;
  /** The session's last_sequence when the summary was folded. */
  summary_through?: number;
}

function claudeMeta(rec: SessionRecord | null): ClaudeMeta | null {
  const m = rec?.metadata as any;
  const c = m && typeof m === "object" && !Array.isArray(m) ? m.claude : undefined;
  return c && typeof c === "object" && !Array.isArray(c) ? (c as ClaudeMeta) : null;
}

/**
 * A SessionStore of the Claude Agent SDK backed by reel. Every method maps to reel's HTTP API:
 * append = one atomic POST per call (chunked past 1000 entries or 4 MiB), load = pages of the
 * session's events, listSessions / listSubkeys = prefix listings, delete = DELETE of the
 * session and of its subkeys.
 */
export class ReelSessionStore {
  readonly client: ReelClient;
  readonly prefix: string;
  private readonly agent: string;
  private fold: FoldSessionSummary | null | undefined;
  private foldLoading: Promise<FoldSessionSummary | null> | null = null;
  /** The tail of each key's append chain: appends of one key run in call order. */
  private readonly chains = new Map<string, Promise<unknown>>();
  /** The record this store last wrote per main key (its version is the next If-Match). */
  private readonly records_ = new Map<string, SessionRecord>();
  /** Subkeys whose record fields this store already set. */
  private readonly described = new Set<string>();

  constructor(opts: ReelSessionStoreOptions = {}) {
    const { client, prefix, foldSessionSummary, agent, ...clientOpts } = opts;
    this.client = client ?? new ReelClient({ coalesce: true, ...clientOpts });
    this.prefix = prefix ?? "claude:";
    this.agent = agent ?? "claude-agent-sdk";
    this.fold = foldSessionSummary;
  }

  /** The reel session id of a key. */
  idOf(key: SessionKey): string {
    return sessionIdOf(key, this.prefix);
  }

  /** The key of a reel session id this store writes, else null. */
  keyOf(id: string): SessionKey | null {
    return keyOf(id, this.prefix);
  }

  private async folder(): Promise<FoldSessionSummary | null> {
    if (this.fold !== undefined) return this.fold;
    if (!this.foldLoading) {
      const name = "@anthropic-ai/claude-agent-sdk";
      this.foldLoading = import(name).then(
        (m: any) => (typeof m?.foldSessionSummary === "function" ? m.foldSessionSummary : null),
        () => null,
      );
    }
    this.fold = await this.foldLoading;
    return this.fold;
  }

  /**
   * Mirrors a batch of entries: one event each, in order, as one atomic append (in chunks
   * for very large batches). An entry's `uuid` is its event id, so an entry sent again (a
   * retry, importSessionToStore run twice) is a duplicate and appends nothing. `append([])`
   * writes nothing. Appends of one key from this store run in call order.
   */
  append(key: SessionKey, entries: SessionStoreEntry[]): Promise<void> {
    let id: string;
    try {
      id = this.idOf(key);
      if (!Array.isArray(entries)) throw new TypeError("append takes an array of entries");
    } catch (e) {
      return Promise.reject(e);
    }
    if (entries.length === 0) return Promise.resolve();
    const prev = this.chains.get(id) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.appendNow(id, key, entries));
    this.chains.set(id, run);
    const done = () => {
      if (this.chains.get(id) === run) this.chains.delete(id);
    };
    run.then(done, done);
    return run;
  }

  private toEvent(key: SessionKey, e: SessionStoreEntry): NewEvent {
    if (!e || typeof e !== "object" || Array.isArray(e)) throw new TypeError("a SessionStoreEntry must be an object");
    const ev: NewEvent = { type: ENTRY_TYPE, source: SOURCE, data: e as unknown as Json };
    if (nativeIdOk(key.sessionId)) ev.native_session_id = key.sessionId;
    const u = e.uuid;
    if (typeof u === "string" && u.length > 0 && utf8Length(u) <= 128) ev.event_id = u;
    const t = clientTimeOf(e.timestamp);
    if (t !== undefined) ev.client_time = t;
    return ev;
  }

  private async appendNow(id: string, key: SessionKey, entries: SessionStoreEntry[]): Promise<void> {
    const events = entries.map((e) => this.toEvent(key, e));
    // chunks by count and JSON size (one POST each; one chunk in practice)
    let chunk: NewEvent[] = [];
    let bytes = 0;
    let duplicates = 0;
    let last = 0;
    // An entry reel refuses (over --max-event-bytes: 413; nested past --max-depth: 400) fails
    // its atomic chunk; the chunk's entries are then sent one by one, in order, so only that
    // entry is missing, and append() rejects with its error after the rest is stored (the SDK
    // reports a mirror_error; its retry of the batch adds nothing, the uuids being stored).
    let refused: unknown = null;
    let stored = 0;
    const post = async (evs: NewEvent[]) => {
      const r = await this.client.appendBatch(id, evs);
      duplicates += r.duplicates;
      stored += evs.length;
      last = Math.max(last, r.last_sequence);
    };
    const flush = async () => {
      if (chunk.length === 0) return;
      const evs = chunk;
      chunk = [];
      bytes = 0;
      try {
        await post(evs);
      } catch (e) {
        if (!isRefusedContent(e)) throw e;
        if (evs.length === 1) {
          refused ??= e;
          return;
        }
        for (const ev of evs) {
          try {
            await post([ev]);
          } catch (e1) {
            if (!isRefusedContent(e1)) throw e1;
            refused ??= e1;
          }
        }
      }
    };
    for (const ev of events) {
      const n = utf8Length(JSON.stringify(ev));
      if (chunk.length > 0 && (chunk.length >= BATCH_EVENTS || bytes + n > BATCH_BYTES)) await flush();
      chunk.push(ev);
      bytes += n;
    }
    await flush();
    if (stored === 0) throw refused;
    const main = !key.subpath;
    if (main) {
      // every entry a duplicate: a retry of a batch already folded
      if (duplicates < entries.length) await this.foldSummary(id, key, entries, last);
    } else if (!this.described.has(id)) {
      await this.client.putSession(id, nativeIdOk(key.sessionId) ? { agent: this.agent, native_session_id: key.sessionId } : { agent: this.agent });
      this.described.add(id);
      if (this.described.size > CACHE_MAX) this.described.delete(this.described.values().next().value!);
    }
    if (refused) throw refused;
  }

  /**
   * Folds the batch into the summary kept in the record's metadata, with a compare-and-set
   * on the record version (If-Match), so concurrent appends to one session (from several
   * processes) each fold once, none lost. The record this store wrote last is kept, so a
   * session's appends from one store cost one PUT each and no GET.
   */
  private async foldSummary(id: string, key: SessionKey, entries: SessionStoreEntry[], last: number): Promise<void> {
    const fold = await this.folder();
    let rec: SessionRecord | null = this.records_.get(id) ?? null;
    for (let attempt = 0; ; attempt++) {
      if (rec === null) {
        rec = await this.client.getSession(id);
        if (!rec) return;
      }
      const meta = claudeMeta(rec);
      const base: ClaudeMeta = { projectKey: key.projectKey, sessionId: key.sessionId };
      const md = rec.metadata;
      const other = md && typeof md === "object" && !Array.isArray(md) ? (md as { [k: string]: Json }) : {};
      let claude: ClaudeMeta = base;
      if (fold) {
        const prev = meta?.summary ? { sessionId: key.sessionId, mtime: 0, data: meta.summary } : undefined;
        const next = fold(prev, { projectKey: key.projectKey, sessionId: key.sessionId }, entries, { mtime: 0 });
        claude = { ...base, summary: next.data, summary_through: Math.max(last, meta?.summary_through ?? 0) };
      } else if (meta && meta.projectKey === key.projectKey && meta.sessionId === key.sessionId && rec.agent === this.agent) {
        return; // nothing to fold, and the record already says what it is
      }
      try {
        const put = await this.client.putSession(
          id,
          { agent: this.agent, ...(nativeIdOk(key.sessionId) ? { native_session_id: key.sessionId } : {}), metadata: { ...other, claude: claude as unknown as Json } },
          { ifMatch: rec.version },
        );
        this.records_.delete(id);
        this.records_.set(id, put);
        if (this.records_.size > CACHE_MAX) this.records_.delete(this.records_.keys().next().value!);
        return;
      } catch (e) {
        this.records_.delete(id);
        if (e instanceof ReelError && e.status === 412 && attempt < 20) {
          rec = null; // another writer changed the record: read it again and fold onto it
          continue;
        }
        if (isGone(e)) return;
        throw e;
      }
    }
  }

  /** Every entry of the key in append order, deep-equal to what was appended; null if the key was never written (or was deleted). */
  async load(key: SessionKey): Promise<SessionStoreEntry[] | null> {
    const id = this.idOf(key);
    const out: SessionStoreEntry[] = [];
    let after = 0;
    for (;;) {
      let page: { events: ReelEvent[]; next: number; more: boolean };
      try {
        page = await this.client.events(id, { after, limit: 10000, types: [ENTRY_TYPE] });
      } catch (e) {
        if (isGone(e)) return null;
        throw e;
      }
      for (const ev of page.events) out.push(ev.data as unknown as SessionStoreEntry);
      if (!page.more || page.next <= after) return out;
      after = page.next;
    }
  }

  private async *records(prefix: string): AsyncGenerator<SessionRecord> {
    for await (const rec of this.client.allSessions({ prefix, limit: 1000 })) {
      if (rec.status !== "deleted") yield rec;
    }
  }

  /** The main sessions of a project: {sessionId, mtime = the record's updated_at in epoch ms}. */
  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    const out: Array<{ sessionId: string; mtime: number }> = [];
    for await (const rec of this.records(this.prefix + escapeKeyPart(projectKey) + "/")) {
      const k = this.keyOf(rec.id);
      if (k && k.subpath === undefined && k.projectKey === projectKey) out.push({ sessionId: k.sessionId, mtime: mtimeOf(rec) });
    }
    return out;
  }

  /**
   * The summaries kept by append() (foldSessionSummary's data). A summary that covers every
   * event of its session has the session's mtime; one that does not (entries appended by a
   * writer that had no foldSessionSummary, or that stopped between its append and its fold)
   * is given mtime - 1, so the SDK sees it as stale and reads that session instead.
   */
  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    const out: SessionSummaryEntry[] = [];
    for await (const rec of this.records(this.prefix + escapeKeyPart(projectKey) + "/")) {
      const k = this.keyOf(rec.id);
      if (!k || k.subpath !== undefined || k.projectKey !== projectKey) continue;
      const meta = claudeMeta(rec);
      if (!meta?.summary) continue;
      const fresh = (meta.summary_through ?? 0) >= rec.last_sequence;
      out.push({ sessionId: k.sessionId, mtime: mtimeOf(rec) - (fresh ? 0 : 1), data: meta.summary });
    }
    return out;
  }

  /** Deletes the key; deleting a main key deletes its subkeys too. A key not there is fine. */
  async delete(key: SessionKey): Promise<void> {
    const id = this.idOf(key);
    await this.chains.get(id)?.catch(() => undefined);
    if (!key.subpath) {
      for (const sub of await this.listSubkeys(key)) {
        await this.client.deleteSession(this.idOf({ ...key, subpath: sub }));
      }
    }
    await this.client.deleteSession(id);
    this.records_.delete(id);
  }

  /** The subpaths written under a session (e.g. "subagents/agent-<id>"). */
  async listSubkeys(key: { projectKey: string; sessionId: string }): Promise<string[]> {
    const out: string[] = [];
    const main = { projectKey: key.projectKey, sessionId: key.sessionId };
    for await (const rec of this.records(this.idOf(main) + "/")) {
      const k = this.keyOf(rec.id);
      if (k && k.subpath !== undefined && k.projectKey === key.projectKey && k.sessionId === key.sessionId) out.push(k.subpath);
    }
    return out;
  }

  /** Flushes coalesced appends and waits for every append in flight. */
  async close(): Promise<void> {
    await Promise.all([...this.chains.values()].map((p) => p.catch(() => undefined)));
    await this.client.close();
  }
}

export default ReelSessionStore;
