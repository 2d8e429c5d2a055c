// reel-client/sandbox-agent: a SessionPersistDriver for the sandbox-agent SDK (0.4) backed by
// reel. docs/CLIENTS.md "## sandbox-agent" has the field mapping and the guarantees.
//
//   import { SandboxAgent } from "sandbox-agent";
//   import { ReelSessionPersistDriver } from "reel-client/sandbox-agent";
//   const persist = new ReelSessionPersistDriver({ baseUrl: "http://127.0.0.1:2469" });
//   const sdk = await SandboxAgent.connect({ baseUrl: sandboxUrl, persist });
//
// Mapping (no dependency on the SDK's package: its types are restated structurally):
// - SessionRecord <-> reel session `{prefix}{record.id}`: the whole record, every field as
//   given, is `metadata["sandbox_agent"]` (other metadata keys are kept); reel's `agent` and
//   `native_session_id` mirror `agent` and `agentSessionId` for listings. updateSession is a
//   read-modify-write with If-Match (If-None-Match: * for a new session), retried on 412,
//   so concurrent writers of other metadata keys lose nothing.
// - SessionEvent <-> one reel event of type "acp.envelope": event_id = id (insertEvent is
//   idempotent on it), data = payload, source = sender, client_time = createdAt (so
//   GET /v1/sessions/{id}/restore?fit=sdk is the SDK's replay text byte for byte), and
//   raw = {eventIndex, sessionId, connectionId, ...any other field}. A field that a reel
//   field cannot hold exactly (a sender that is not a string, a createdAt that is not an
//   integer in Date's range) goes to raw as well; reads take raw's value first.
// - eventIndex is the SDK's key, not reel's sequence: it is NOT sent as expected_sequence
//   (a refused event would leave every later index off by one and every later insert would
//   fail). Uniqueness of (session, eventIndex) is checked against the session's events and
//   made atomic with expected_sequence = the last sequence this driver has read: a 409
//   means someone appended meanwhile, the driver reads what they appended and checks again.
//   A taken eventIndex throws the message the SDK retries on ("UNIQUE constraint failed:
//   ... session_id, ... event_index", sandbox-agent's isSessionEventIndexConflict).
// - Cursors are opaque strings wrapping reel's: "e<sequence>" for events, "s<reel cursor>"
//   for sessions. Events come in reel's sequence (commit) order, sessions in id order.

import { ReelClient, ReelError } from "../client.js";
import type { ClientOptions, Json, NewEvent, ReelEvent, SessionRecord as ReelSessionRecord } from "../client.js";

/** sandbox-agent's SessionRecord (restated; extra fields are kept too). */
export interface SandboxSessionRecord {
  id: string;
  agent: string;
  agentSessionId: string;
  lastConnectionId: string;
  createdAt: number;
  destroyedAt?: number;
  sandboxId?: string;
  sessionInit?: any;
  configOptions?: any[];
  modes?: any | null;
  [k: string]: unknown;
}

/** sandbox-agent's SessionEvent (restated; extra fields are kept too). */
export interface SandboxSessionEvent {
  id: string;
  eventIndex: number;
  sessionId: string;
  createdAt: number;
  connectionId: string;
  sender: "client" | "agent";
  payload: any;
  [k: string]: unknown;
}

export interface ListPageRequest { cursor?: string; limit?: number }
export interface ListPage<T> { items: T[]; nextCursor?: string }
export interface ListEventsRequest extends ListPageRequest { sessionId: string }

/** The ReelClient methods the driver uses (a ReelClient is one). */
export interface ReelLike {
  append(session: string, ev: NewEvent, o?: { expectedSequence?: number }): Promise<{ last_sequence: number; duplicates: number }>;
  events(session: string, o?: { after?: number; limit?: number; includeRaw?: boolean }): Promise<{ events: ReelEvent[]; next: number; more: boolean }>;
  listSessions(o?: { prefix?: string; order?: "id" | "recent"; limit?: number; cursor?: string }): Promise<{ sessions: ReelSessionRecord[]; cursor: string | null }>;
  getSession(id: string): Promise<ReelSessionRecord | null>;
  putSession(id: string, fields: { agent?: string | null; native_session_id?: string | null; metadata?: Json },
             o?: { ifMatch?: number | "*"; ifNoneMatch?: "*" }): Promise<ReelSessionRecord>;
}

export interface ReelSessionPersistDriverOptions extends ClientOptions {
  /** A ReelClient to use (else one is made from the ClientOptions given here). */
  client?: ReelLike;
  /** Put before each SDK session id to make the reel session id (default ""). listSessions lists only this prefix. */
  prefix?: string;
  /** Attempts of updateSession's read-modify-write before it gives up (default 100). */
  maxUpdateAttempts?: number;
  /**
   * "refuse" (default): an eventIndex already taken in the session by another event id is
   * refused with the error the SDK retries on, as a store with a unique (session, eventIndex)
   * key does. "accept": it is stored anyway (ordering is reel's commit order, as listed), as
   * the SDK's in-memory driver does; with two SDK instances live on ONE session, the SDK's
   * three attempts can run out under "refuse" and it then drops the event (it logs "Failed to
   * persist observed sandbox-agent envelope"), while "accept" drops nothing.
   */
  eventIndexConflicts?: "refuse" | "accept";
}

/** The reel event type the driver writes and reads. */
export const EVENT_TYPE = "acp.envelope";
/** The metadata key that holds the SDK's SessionRecord. */
export const METADATA_KEY = "sandbox_agent";

const NATIVE_EVENT_KEYS = new Set(["id", "eventIndex", "sessionId", "createdAt", "connectionId", "sender", "payload"]);
const DEFAULT_LIMIT = 100;
const MAX_CLIENT_TIME = 8640000000000000;
const MAX_SESSION_STATES = 1024;

interface SessionState {
  lastSequence: number;          // events up to here are in byIndex
  byIndex: Map<number, string>;  // eventIndex -> event id
  loaded: Promise<void> | null;  // the first read of the session
}

function utf8Length(s: string): number { return new TextEncoder().encode(s).length; }

function status(err: unknown): number {
  return err instanceof ReelError ? err.status : (err as any)?.status ?? 0;
}

function limitOf(limit: number | undefined, max: number): number {
  if (limit === undefined || !Number.isFinite(limit) || limit < 1) return DEFAULT_LIMIT;
  return Math.min(Math.floor(limit), max);
}

function isObject(v: unknown): v is { [k: string]: any } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The error sandbox-agent retries an insert on (a new eventIndex each attempt). */
export class EventIndexConflictError extends Error {
  readonly sessionId: string;
  readonly eventIndex: number;
  readonly existingEventId: string;
  constructor(sessionId: string, eventIndex: number, existingEventId: string) {
    super(`UNIQUE constraint failed: reel_events.session_id, reel_events.event_index ` +
          `(session ${JSON.stringify(sessionId)} already has eventIndex ${eventIndex} as event ${JSON.stringify(existingEventId)})`);
    this.name = "EventIndexConflictError";
    this.sessionId = sessionId;
    this.eventIndex = eventIndex;
    this.existingEventId = existingEventId;
  }
}

export class ReelSessionPersistDriver {
  readonly client: ReelLike;
  readonly prefix: string;
  private readonly maxUpdateAttempts: number;
  private readonly refuseConflicts: boolean;
  private readonly states = new Map<string, SessionState>();

  constructor(opts: ReelSessionPersistDriverOptions = {}) {
    const { client, prefix, maxUpdateAttempts, eventIndexConflicts, ...clientOpts } = opts;
    this.client = client ?? (new ReelClient({ coalesce: true, ...clientOpts }) as unknown as ReelLike);
    this.prefix = prefix ?? "";
    this.maxUpdateAttempts = maxUpdateAttempts ?? 100;
    if (eventIndexConflicts !== undefined && eventIndexConflicts !== "refuse" && eventIndexConflicts !== "accept")
      throw new Error(`eventIndexConflicts must be "refuse" or "accept", not ${JSON.stringify(eventIndexConflicts)}`);
    this.refuseConflicts = eventIndexConflicts !== "accept";
  }

  private reelId(id: string): string { return this.prefix + id; }

  // ---- sessions ----

  async getSession(id: string): Promise<SandboxSessionRecord | undefined> {
    const rec = await this.client.getSession(this.reelId(id));
    return rec ? recordFromReel(rec) : undefined;
  }

  async listSessions(request: ListPageRequest = {}): Promise<ListPage<SandboxSessionRecord>> {
    const limit = limitOf(request.limit, 1000);
    let cursor = parseCursor(request.cursor, "s");
    const items: SandboxSessionRecord[] = [];
    // a page may hold reel sessions that are not the SDK's (or deleted ones): skip them, and
    // go on while a page gave nothing, so an empty page means the end
    for (;;) {
      const page = await this.client.listSessions({ prefix: this.prefix || undefined, order: "id", limit,
                                                    cursor: cursor ?? undefined });
      for (const s of page.sessions) {
        const r = recordFromReel(s);
        if (r && s.id === this.reelId(r.id)) items.push(r);
      }
      cursor = page.cursor;
      if (cursor === null || items.length > 0) break;
    }
    return cursor === null ? { items } : { items, nextCursor: "s" + cursor };
  }

  async updateSession(session: SandboxSessionRecord): Promise<void> {
    const id = this.reelId(session.id);
    const record = JSON.parse(JSON.stringify(session)) as Json;
    for (let attempt = 1; ; attempt++) {
      const current = await this.client.getSession(id);
      const metadata: { [k: string]: Json } = isObject(current?.metadata) ? { ...(current!.metadata as any) } : {};
      metadata[METADATA_KEY] = record;
      const fields: { agent?: string | null; native_session_id?: string | null; metadata: Json } = { metadata };
      if (typeof session.agent === "string" && utf8Length(session.agent) <= 256) fields.agent = session.agent;
      if (typeof session.agentSessionId === "string" && utf8Length(session.agentSessionId) <= 256)
        fields.native_session_id = session.agentSessionId;
      try {
        await this.client.putSession(id, fields, current ? { ifMatch: current.version } : { ifNoneMatch: "*" });
        return;
      } catch (err) {
        if (status(err) !== 412 || attempt >= this.maxUpdateAttempts) throw err;
        // someone else changed the record between our read and our write: read it again
      }
    }
  }

  // ---- events ----

  async listEvents(request: ListEventsRequest): Promise<ListPage<SandboxSessionEvent>> {
    const limit = limitOf(request.limit, 10000);
    let after = Number(parseCursor(request.cursor, "e") ?? 0);
    if (!Number.isSafeInteger(after) || after < 0) throw new Error(`invalid cursor ${JSON.stringify(request.cursor)}`);
    const items: SandboxSessionEvent[] = [];
    for (;;) {
      let page;
      try {
        page = await this.client.events(this.reelId(request.sessionId), { after, limit: limit - items.length, includeRaw: true });
      } catch (err) {
        if (status(err) === 404 || status(err) === 410) return { items };
        throw err;
      }
      for (const e of page.events) if (e.type === EVENT_TYPE) items.push(eventFromReel(e));
      after = page.next;
      if (!page.more) return { items };
      if (items.length >= limit) return { items, nextCursor: "e" + after };
    }
  }

  async insertEvent(sessionId: string, event: SandboxSessionEvent): Promise<void> {
    const id = this.reelId(sessionId);
    const reelEvent = eventToReel(event);
    if (!this.refuseConflicts) {
      await this.client.append(id, reelEvent); // idempotent on event_id; coalesced with its neighbours
      return;
    }
    const index = event.eventIndex;
    const checked = typeof index === "number" && Number.isFinite(index);
    const st = await this.state(id);
    for (;;) {
      if (checked) {
        const owner = st.byIndex.get(index);
        if (owner === event.id) return; // this very event, already stored
        if (owner !== undefined) throw new EventIndexConflictError(sessionId, index, owner);
      }
      const expected = st.lastSequence;
      let res;
      try {
        res = await this.client.append(id, reelEvent, { expectedSequence: expected });
      } catch (err) {
        if (status(err) !== 409) throw err;
        await this.catchUp(id, st); // someone appended after what we read: look at it, check again
        continue;
      }
      if (res.duplicates === 0 && st.lastSequence === expected) {
        st.lastSequence = res.last_sequence;
        if (checked) st.byIndex.set(index, event.id);
      } else if (res.duplicates === 0) {
        await this.catchUp(id, st); // another insert of this driver moved the state meanwhile
      }
      // duplicates > 0: an event with this id is stored already (a retried insert): done
      return;
    }
  }

  /** The driver's view of a session's eventIndex -> id, read once, then kept up to date. */
  private async state(id: string): Promise<SessionState> {
    let st = this.states.get(id);
    if (st) {
      this.states.delete(id); // most recently used last
      this.states.set(id, st);
    } else {
      const s: SessionState = { lastSequence: 0, byIndex: new Map(), loaded: null };
      s.loaded = this.catchUp(id, s).catch(err => { if (this.states.get(id) === s) this.states.delete(id); throw err; });
      this.states.set(id, s);
      // keep the views of the most recently used sessions only: a dropped one is read again
      // when needed (correctness never rests on the view: appends carry expected_sequence)
      while (this.states.size > MAX_SESSION_STATES) this.states.delete(this.states.keys().next().value as string);
      st = s;
    }
    await st.loaded;
    return st;
  }

  private async catchUp(id: string, st: SessionState): Promise<void> {
    for (;;) {
      let page;
      try {
        page = await this.client.events(id, { after: st.lastSequence, limit: 1000, includeRaw: true });
      } catch (err) {
        if (status(err) === 404) return; // no session yet: nothing to know
        throw err;
      }
      for (const e of page.events) {
        if (e.sequence <= st.lastSequence) continue; // a concurrent catch-up of ours got it
        st.lastSequence = e.sequence;
        if (e.type !== EVENT_TYPE) continue;
        const ev = eventFromReel(e);
        if (typeof ev.eventIndex === "number" && !st.byIndex.has(ev.eventIndex)) st.byIndex.set(ev.eventIndex, ev.id);
      }
      if (!page.more) return;
    }
  }
}

// ---- mapping ----

function parseCursor(cursor: string | undefined, kind: "e" | "s"): string | null {
  if (cursor === undefined || cursor === "") return null;
  if (typeof cursor !== "string" || cursor[0] !== kind || (kind === "e" && !/^e[0-9]{1,16}$/.test(cursor)))
    throw new Error(`invalid cursor ${JSON.stringify(cursor)}: pass back a nextCursor of this driver`);
  return cursor.slice(1);
}

function recordFromReel(rec: ReelSessionRecord): SandboxSessionRecord | undefined {
  if (rec.status === "deleted" || !isObject(rec.metadata)) return undefined;
  const r = (rec.metadata as any)[METADATA_KEY];
  return isObject(r) && typeof r.id === "string" ? (r as SandboxSessionRecord) : undefined;
}

function isClientTime(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= MAX_CLIENT_TIME;
}

/** SessionEvent -> the reel event that stores it. */
export function eventToReel(event: SandboxSessionEvent): NewEvent {
  const raw: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(event)) {
    if (v === undefined) continue;
    if (k === "id" || k === "payload") continue;
    if (k === "sender" && typeof v === "string") continue;
    if (k === "createdAt" && isClientTime(v)) continue;
    raw[k] = v as Json;
  }
  const ev: NewEvent = { type: EVENT_TYPE, event_id: event.id, raw };
  if (typeof event.sender === "string") ev.source = event.sender;
  if (isClientTime(event.createdAt)) ev.client_time = event.createdAt;
  if (event.payload !== undefined) ev.data = event.payload as Json;
  return ev;
}

/** The reel event -> the SessionEvent it stores (fields in the SDK's order, then any other). */
export function eventFromReel(e: ReelEvent): SandboxSessionEvent {
  const raw: { [k: string]: any } = isObject(e.raw) ? e.raw : {};
  const createdAt = "createdAt" in raw ? raw.createdAt
    : typeof e.client_time === "number" ? e.client_time
    : typeof e.client_time === "string" ? Date.parse(e.client_time) : Date.parse(e.time);
  const out: { [k: string]: any } = {
    id: e.event_id,
    eventIndex: raw.eventIndex,
    sessionId: raw.sessionId,
    createdAt,
    connectionId: raw.connectionId,
    sender: "sender" in raw ? raw.sender : e.source,
    payload: e.data,
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k]; // absent when stored
  for (const [k, v] of Object.entries(raw)) if (!NATIVE_EVENT_KEYS.has(k)) out[k] = v;
  return out as SandboxSessionEvent;
}
