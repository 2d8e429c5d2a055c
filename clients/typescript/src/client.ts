// ReelClient: append (with client-generated event ids and retries), poll, long-poll, SSE,
// sessions, restore, transcript, export. No runtime dependency beyond Node >= 20's fetch
// (any fetch with WHATWG streams works: Deno, Bun, browsers). docs/CLIENTS.md, docs/HTTP.md.

import { Coalescer } from "./coalesce.js";
import { SseParser } from "./sse.js";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** An event to append (SPEC §3). `event_id` is the idempotency key; the client makes one when absent. */
export interface NewEvent {
  type: string;
  event_id?: string;
  source?: string | null;
  synthetic?: boolean | null;
  native_session_id?: string | null;
  data?: Json;
  raw?: Json;
  /** The caller's own time: Unix ms (integer) or an RFC 3339 string. */
  client_time?: number | string | null;
}

/** An event as reel serves it (the envelope). */
export interface ReelEvent extends NewEvent {
  session_id: string;
  sequence: number;
  position: number;
  event_id: string;
  time: string;
}

export interface AppendResult {
  session_id: string;
  first_sequence: number;
  last_sequence: number;
  position: number;
  duplicates: number;
}

export type SessionStatus = "active" | "ended" | "deleted";

export interface SessionRecord {
  id: string;
  agent: string | null;
  native_session_id: string | null;
  status: SessionStatus;
  created_at: string;
  updated_at: string;
  ended_at: string | null;
  first_event_at: string | null;
  last_sequence: number;
  event_count: number;
  bytes: number;
  runs: number;
  version: number;
  metadata?: Json;
}

/** RFC 7807 problem body. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  [k: string]: unknown;
}

export interface CoalesceOptions {
  /** How long a single append waits for company before its POST (default 2 ms). */
  windowMs?: number;
  /** Most events per POST (default 100). */
  maxEvents?: number;
}

export interface ClientOptions {
  /** Default http://127.0.0.1:2469 */
  baseUrl?: string;
  token?: string;
  /** Retries on network errors and 5xx (default 5), exponential backoff with jitter. */
  retries?: number;
  /** First backoff delay in ms (default 50); doubles per attempt, capped at 2000. */
  backoffMs?: number;
  coalesce?: boolean | CoalesceOptions;
  fetch?: typeof fetch;
  /** Extra headers for every request. */
  headers?: Record<string, string>;
}

export interface EventPage {
  events: ReelEvent[];
  /** The value to pass as `after` next time (a sequence, or a position for the feed). */
  next: number;
  more: boolean;
}

export interface SessionPage {
  sessions: SessionRecord[];
  cursor: string | null;
}

export interface ListOptions {
  prefix?: string;
  order?: "id" | "recent";
  agent?: string;
  status?: string;
  limit?: number;
  cursor?: string;
}

export interface SessionFields {
  agent?: string | null;
  native_session_id?: string | null;
  metadata?: Json;
}

export interface PutOptions {
  ifMatch?: number | "*";
  ifNoneMatch?: "*";
}

export interface RestoreOptions {
  fit?: "sdk" | "newest";
  maxEvents?: number;
  maxChars?: number;
}

export interface RestoreResult {
  session: SessionRecord;
  events: ReelEvent[];
  replay_text: string;
  truncated: boolean;
  from_sequence: number;
  to_sequence: number;
  [k: string]: unknown;
}

export interface TranscriptOptions {
  format?: "json" | "markdown";
  at?: number;
}

export interface ExportOptions {
  sessions?: string[];
  compression?: "zstd" | "none";
}

export interface SubscribeOptions {
  /** Start after this sequence (session stream) or position (feed). Default 0. */
  after?: number;
  signal?: AbortSignal;
  /** Only these event types (the server's `types` filter). */
  types?: string[];
  includeRaw?: boolean;
  /** Reconnect when nothing (not even a keepalive, sent every 10 s) came for this long. Default 30000. */
  idleTimeoutMs?: number;
  /** Most reconnection attempts in a row without progress before the iterator throws (default Infinity). */
  maxReconnects?: number;
}

export interface ReadOptions {
  /** The last sequence (session) or position (feed) already seen; default 0. */
  after?: number;
  /** 1..10000, server default 100. */
  limit?: number;
  /** Long-poll: hold the request up to this long when nothing is past `after` (rounded up to whole seconds, at most 60 s). */
  waitMs?: number;
  types?: string[];
  includeRaw?: boolean;
  /** Feed only: leave out events a shard move copied into this cell (docs/CLUSTER.md "Cluster-wide reads"). */
  skipCopied?: boolean;
  signal?: AbortSignal;
}


/** An error answer of reel (RFC 7807 problem), or a network failure after the retries (status 0). */
export class ReelError extends Error {
  /** HTTP status; 0 for a network error (no answer) after every retry. */
  status: number;
  /** The problem's `type` as sent, e.g. `urn:reel:error:session_not_found`. */
  type: string;
  /** The short name: `session_not_found`, `precondition_failed`, ... (`network_error` for status 0). */
  code: string;
  detail: string;
  /** The whole problem body (or the text of a non-JSON answer). */
  problem: any;
  constructor(status: number, problem: any, cause?: unknown) {
    const p = problem && typeof problem === "object" ? problem : {};
    const type = typeof p.type === "string" ? p.type : status === 0 ? "urn:reel:error:network_error" : "about:blank";
    const detail = typeof p.detail === "string" ? p.detail : typeof problem === "string" ? problem : "";
    const title = typeof p.title === "string" ? p.title : "";
    super(`reel: ${status === 0 ? "network error" : status}${title ? " " + title : ""}${detail ? ": " + detail : ""}`, cause === undefined ? undefined : { cause });
    this.name = "ReelError";
    this.status = status;
    this.type = type;
    this.code = type.startsWith("urn:reel:error:") ? type.slice("urn:reel:error:".length) : type;
    this.detail = detail;
    this.problem = problem;
  }
}

function localError(status: number, code: string, detail: string): ReelError {
  return new ReelError(status, { type: "urn:reel:error:" + code, title: code.replace(/_/g, " "), status, detail });
}

const hex = (b: number) => b.toString(16).padStart(2, "0");

/** A new event id: the UUID v7 layout (48-bit Unix ms, version 7, 74 random bits), so ids sort by creation time. */
export function newEventId(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) {
    b[i] = ms % 256;
    ms = Math.floor(ms / 256);
  }
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, hex).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * A session id as one path segment in canonical percent-encoding (RFC 3986 6.2.2: all but
 * `A-Z a-z 0-9 - . _ ~` escaped): encodeURIComponent, with `! ' ( ) *` escaped too, so that
 * nginx in front of reel cells hashes the same bytes as reel (docs/CLUSTER.md "Shards").
 * `.`, `..` and the empty string are
 * refused here (400 invalid_session_id, locally): a URL parser would take them, or their
 * `%2E` forms, as path steps and reach another resource.
 */
export function encodeSessionId(id: string): string {
  if (typeof id !== "string" || id === "" || id === "." || id === "..") {
    throw localError(400, "invalid_session_id", `session id ${JSON.stringify(id)} is not valid ('.', '..' and '' are not ids)`);
  }
  try {
    return encodeURIComponent(id).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  } catch {
    throw localError(400, "invalid_session_id", "session id is not valid UTF-16 (a lone surrogate)");
  }
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** Statuses worth another attempt: 429 (limits, with Retry-After) and 5xx but 501/505. */
function retryableStatus(s: number): boolean {
  return s === 429 || (s >= 500 && s !== 501 && s !== 505);
}

interface RequestInit2 {
  query?: Record<string, string | number | boolean | undefined | null>;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Statuses answered to the caller instead of thrown (e.g. 404 for getSession). */
  accept?: number[];
  /** Called (once) when an attempt failed without an answer, so the request may have been applied. */
  onUncertain?: () => void;
  retry?: boolean;
}

type Query = RequestInit2["query"];

function qs(q: Query): string {
  if (!q) return "";
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null) p.set(k, String(v));
  const s = p.toString();
  return s ? "?" + s : "";
}

/** The query parameters a page read shares between a session's events and the feed. */
function readQuery(o: ReadOptions) {
  return {
    limit: o.limit,
    wait: waitSeconds(o.waitMs),
    types: o.types?.join(","),
    include_raw: o.includeRaw ? "true" : undefined,
    skip_copied: o.skipCopied ? "1" : undefined,
  };
}

function waitSeconds(ms: number | undefined): number | undefined {
  if (ms === undefined || ms <= 0) return undefined;
  return Math.min(60, Math.ceil(ms / 1000));
}

async function readProblem(r: Response): Promise<any> {
  const text = await r.text().catch(() => "");
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class ReelClient {
  readonly baseUrl: string;
  private token: string | undefined;
  private retries: number;
  private backoffMs: number;
  private fetchFn: typeof fetch;
  private headers: Record<string, string>;
  private coalescer: Coalescer | null;

  constructor(opts: ClientOptions = {}) {
    this.baseUrl = (opts.baseUrl ?? "http://127.0.0.1:2469").replace(/\/+$/, "");
    this.token = opts.token;
    this.retries = opts.retries ?? 5;
    this.backoffMs = opts.backoffMs ?? 50;
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.headers = opts.headers ?? {};
    const c = opts.coalesce;
    if (c) {
      const o = typeof c === "object" ? c : {};
      this.coalescer = new Coalescer(
        { post: (s, b, x) => this.postEvents(s, b, x), isContentError: (e) => e instanceof ReelError && (e.status === 400 || e.status === 413) },
        o.windowMs ?? 2,
        Math.max(1, Math.min(10000, o.maxEvents ?? 100)),
      );
    } else {
      this.coalescer = null;
    }
  }

  /** POSTs and events sent by the coalescer (zeros without coalescing). */
  get coalesceStats(): { posts: number; events: number; fallbacks: number } {
    return this.coalescer ? { ...this.coalescer.stats } : { posts: 0, events: 0, fallbacks: 0 };
  }

  private backoff(attempt: number): number {
    const base = Math.min(2000, this.backoffMs * 2 ** attempt);
    return base / 2 + Math.random() * (base / 2);
  }

  /** One HTTP exchange with retries on network errors, 429 and 5xx. Answers the Response (body unread) or throws ReelError. */
  private async request(method: string, path: string, o: RequestInit2 = {}): Promise<Response> {
    const url = this.baseUrl + path + qs(o.query);
    const headers: Record<string, string> = { ...this.headers, ...(o.headers ?? {}) };
    if (this.token) headers["Authorization"] = `Bearer ${this.token}`;
    let body: string | undefined;
    if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers["Content-Type"] = "application/json";
    }
    const retries = o.retry === false ? 0 : this.retries;
    for (let attempt = 0; ; attempt++) {
      let r: Response;
      try {
        r = await this.fetchFn(url, { method, headers, body, signal: o.signal });
      } catch (e) {
        if (o.signal?.aborted) throw e;
        o.onUncertain?.();
        if (attempt >= retries) throw new ReelError(0, { type: "urn:reel:error:network_error", detail: String((e as any)?.cause?.message ?? (e as any)?.message ?? e) }, e);
        await sleep(this.backoff(attempt), o.signal);
        continue;
      }
      if (r.ok || o.accept?.includes(r.status)) return r;
      if (retryableStatus(r.status) && attempt < retries) {
        await r.arrayBuffer().catch(() => undefined);
        // A 5xx other than 503 may come after the request was applied (an answer lost in a crash).
        if (r.status >= 500 && r.status !== 503) o.onUncertain?.();
        const ra = Number(r.headers.get("retry-after"));
        const wait = Number.isFinite(ra) && ra > 0 ? Math.min(ra * 1000, 10000) : this.backoff(attempt);
        await sleep(wait, o.signal);
        continue;
      }
      throw new ReelError(r.status, await readProblem(r));
    }
  }

  private async json<T>(method: string, path: string, o: RequestInit2 = {}): Promise<T> {
    const r = await this.request(method, path, o);
    return (await r.json()) as T;
  }

  private withIds(ev: NewEvent): NewEvent {
    if (!ev || typeof ev !== "object") throw localError(400, "invalid_event", "an event must be an object");
    return ev.event_id === undefined || ev.event_id === null ? { ...ev, event_id: newEventId() } : ev;
  }

  /** One POST of events (ids already set): the unit every append path ends in. */
  private postEvents(session: string, body: NewEvent | NewEvent[], expectedSequence: number | undefined): Promise<AppendResult> {
    return this.json<AppendResult>("POST", `/v1/sessions/${encodeSessionId(session)}/events`, {
      body,
      query: { expected_sequence: expectedSequence },
    });
  }

  /**
   * Appends one event. Its `event_id` is generated here when absent, before the first
   * attempt, so a retry after a lost answer is a duplicate, not a second event. With
   * coalescing on, single appends to a session within windowMs go in one POST; the result
   * is always this event's own (first_sequence == last_sequence == its sequence).
   */
  append(session: string, ev: NewEvent, o: { expectedSequence?: number } = {}): Promise<AppendResult> {
    let e: NewEvent;
    try {
      encodeSessionId(session);
      e = this.withIds(ev);
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.coalescer) {
      if (o.expectedSequence !== undefined) return this.coalescer.appendBatch(session, e, o.expectedSequence);
      return this.coalescer.append(session, e);
    }
    return this.postEvents(session, e, o.expectedSequence);
  }

  /** Appends events as one atomic batch (all or none), ids generated where absent. */
  appendBatch(session: string, evs: NewEvent[], o: { expectedSequence?: number } = {}): Promise<AppendResult> {
    let list: NewEvent[];
    try {
      encodeSessionId(session);
      if (!Array.isArray(evs)) throw localError(400, "invalid_event", "appendBatch takes an array of events");
      list = evs.map((e) => this.withIds(e));
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.coalescer) return this.coalescer.appendBatch(session, list, o.expectedSequence);
    return this.postEvents(session, list, o.expectedSequence);
  }

  /** A page of a session's events with sequence > after; `waitMs` long-polls when there are none. */
  async events(session: string, o: ReadOptions = {}): Promise<EventPage> {
    const r = await this.json<{ events: ReelEvent[]; hasMore: boolean; next_offset: number }>(
      "GET",
      `/v1/sessions/${encodeSessionId(session)}/events`,
      {
        query: { offset: o.after ?? 0, ...readQuery(o) },
        signal: o.signal,
      },
    );
    return { events: r.events, next: r.next_offset, more: r.hasMore };
  }

  /** A page of the all-sessions feed with position > after. */
  async feed(o: ReadOptions = {}): Promise<EventPage> {
    const r = await this.json<{ events: ReelEvent[]; hasMore: boolean; next_after: number }>("GET", "/v1/events", {
      query: { after: o.after ?? 0, ...readQuery(o) },
      signal: o.signal,
    });
    return { events: r.events, next: r.next_after, more: r.hasMore };
  }

  /** The newest n events of a session, oldest first (one record read, then pages from last_sequence - n). */
  async newest(session: string, n: number, o: { includeRaw?: boolean } = {}): Promise<ReelEvent[]> {
    const rec = await this.getSession(session);
    if (!rec) throw localError(404, "session_not_found", `session '${session}' does not exist`);
    const want = Math.max(0, Math.floor(n));
    if (want === 0 || rec.last_sequence === 0) return [];
    const last = rec.last_sequence;
    let after = Math.max(0, last - want);
    const out: ReelEvent[] = [];
    while (after < last) {
      const page = await this.events(session, { after, limit: Math.min(10000, last - after), includeRaw: o.includeRaw });
      for (const e of page.events) if (e.sequence <= last) out.push(e);
      if (page.events.length === 0 || page.next <= after) break;
      after = page.next;
    }
    return out;
  }

  /**
   * Server-Sent Events as an async iterator: a session's events (session id) or the
   * all-sessions feed (null), past `after`, then live. After a dropped connection or a
   * server restart it reconnects with `Last-Event-ID` (backoff with jitter), so nothing is
   * lost; it skips anything at or below the last id it yielded, so nothing is repeated.
   * Ends when `signal` aborts, when the consumer breaks, or when the session is deleted
   * (410). Other 4xx (404 unknown session, 401, ...) are thrown as ReelError.
   */
  subscribe(session: string | null, o: SubscribeOptions = {}): AsyncIterable<ReelEvent> {
    const path = session === null ? "/v1/events/sse" : `/v1/sessions/${encodeSessionId(session)}/events/sse`;
    const param = session === null ? "after" : "offset";
    const key = session === null ? ("position" as const) : ("sequence" as const);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      [Symbol.asyncIterator]() {
        return self.sseIterator(path, param, key, o);
      },
    };
  }

  private async *sseIterator(path: string, param: string, key: "sequence" | "position", o: SubscribeOptions): AsyncGenerator<ReelEvent> {
    let last = o.after ?? 0;
    const idleMs = o.idleTimeoutMs ?? 30000;
    const maxReconnects = o.maxReconnects ?? Infinity;
    let failures = 0;
    let retryCap = 2000;
    const userSignal = o.signal;
    while (!userSignal?.aborted) {
      const ctl = new AbortController();
      const onAbort = () => ctl.abort(userSignal!.reason);
      userSignal?.addEventListener("abort", onAbort, { once: true });
      let idleTimer: ReturnType<typeof setTimeout> | null = null;
      const touch = () => {
        if (idleTimer) clearTimeout(idleTimer);
        idleTimer = setTimeout(() => ctl.abort(new Error("idle")), idleMs);
      };
      let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
      try {
        const headers: Record<string, string> = { ...this.headers, Accept: "text/event-stream" };
        if (this.token) headers["Authorization"] = `Bearer ${this.token}`;
        if (last > 0) headers["Last-Event-ID"] = String(last);
        const q: Record<string, string | undefined> = { [param]: String(last), types: o.types?.join(","), include_raw: o.includeRaw ? "true" : undefined };
        touch();
        let r: Response;
        try {
          r = await this.fetchFn(this.baseUrl + path + qs(q), { headers, signal: ctl.signal });
        } catch (e) {
          if (userSignal?.aborted) return;
          throw e;
        }
        if (r.status === 410) {
          await r.arrayBuffer().catch(() => undefined);
          return; // deleted: no more events will come
        }
        if (!r.ok) {
          if (retryableStatus(r.status)) {
            await r.arrayBuffer().catch(() => undefined);
            throw new Error(`status ${r.status}`);
          }
          throw new ReelError(r.status, await readProblem(r));
        }
        if (!r.body) throw new Error("no body");
        reader = r.body.getReader();
        const decoder = new TextDecoder("utf-8");
        const ready: ReelEvent[] = [];
        let bad: unknown = null;
        const parser = new SseParser({
          onActivity: touch,
          onRetry: (ms) => {
            // The stream started: the server sends `retry:` first. Backoff starts over.
            retryCap = Math.max(100, Math.min(ms, 30000));
            failures = 0;
          },
          onMessage: (m) => {
            if (m.event !== "message") return;
            let ev: ReelEvent;
            try {
              ev = JSON.parse(m.data) as ReelEvent;
            } catch (e) {
              bad = e;
              return;
            }
            const id = m.id !== undefined && /^[0-9]+$/.test(m.id) ? Number(m.id) : ev[key];
            if (!(id > last)) return; // already yielded
            ready.push(ev);
            last = id;
          },
        });
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.push(decoder.decode(value, { stream: true }));
          if (bad) throw bad;
          if (ready.length > 0) {
            failures = 0;
            // The consumer's time is not the stream's silence: no idle clock while it holds an event.
            if (idleTimer) clearTimeout(idleTimer);
            while (ready.length > 0) yield ready.shift()!;
            touch();
          }
        }
        // The server ended the stream (stopping, or the session deleted): reconnect, which
        // answers 410 for a deleted session.
      } catch (e) {
        if (userSignal?.aborted) return;
        if (e instanceof ReelError) throw e;
        // network error, idle timeout, 5xx: reconnect below
      } finally {
        if (idleTimer) clearTimeout(idleTimer);
        userSignal?.removeEventListener("abort", onAbort);
        ctl.abort();
        reader?.releaseLock?.();
      }
      if (++failures > maxReconnects) throw localError(0, "network_error", `SSE ${path}: no progress after ${maxReconnects} reconnections`);
      const base = Math.min(retryCap, this.backoffMs * 2 ** Math.min(failures - 1, 16));
      try {
        await sleep(base / 2 + Math.random() * (base / 2), userSignal);
      } catch {
        return;
      }
    }
  }

  /** One page of session records; `cursor` is the server's `next_cursor` (null on the last page). */
  async listSessions(o: ListOptions = {}): Promise<SessionPage> {
    const r = await this.json<{ sessions: SessionRecord[]; next_cursor: string | null }>("GET", "/v1/sessions", {
      query: { prefix: o.prefix, order: o.order, agent: o.agent, status: o.status, limit: o.limit, cursor: o.cursor },
    });
    return { sessions: r.sessions, cursor: r.next_cursor ?? null };
  }

  /** Every session record matching, page after page. */
  allSessions(o: Omit<ListOptions, "cursor"> = {}): AsyncIterable<SessionRecord> {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return (async function* () {
      let cursor: string | undefined;
      for (;;) {
        const page = await self.listSessions({ ...o, cursor });
        yield* page.sessions;
        if (page.cursor === null) return;
        cursor = page.cursor;
      }
    })();
  }

  /** The session record, or null when there is none (404). */
  async getSession(id: string): Promise<SessionRecord | null> {
    const r = await this.request("GET", `/v1/sessions/${encodeSessionId(id)}`, { accept: [404] });
    if (r.status === 404) {
      await r.arrayBuffer().catch(() => undefined);
      return null;
    }
    return (await r.json()) as SessionRecord;
  }

  /**
   * Creates or updates a session record. `ifMatch` (a version or "*") and `ifNoneMatch: "*"`
   * are conditions: ReelError 412 when they do not hold. A conditional PUT retried after a
   * lost answer is recognised: when the retry gets 412 and the record is at the next version
   * with exactly these fields, the first attempt applied and its record is answered.
   */
  async putSession(id: string, fields: SessionFields, o: PutOptions = {}): Promise<SessionRecord> {
    const path = `/v1/sessions/${encodeSessionId(id)}`;
    const headers: Record<string, string> = {};
    if (o.ifMatch !== undefined) headers["If-Match"] = o.ifMatch === "*" ? "*" : `"${o.ifMatch}"`;
    if (o.ifNoneMatch !== undefined) headers["If-None-Match"] = "*";
    let uncertain = false;
    try {
      return await this.json<SessionRecord>("PUT", path, { body: fields ?? {}, headers, onUncertain: () => (uncertain = true) });
    } catch (e) {
      if (!(uncertain && e instanceof ReelError && e.status === 412)) throw e;
      const rec = await this.getSession(id);
      const applied =
        rec !== null &&
        (o.ifNoneMatch === "*" ? rec.version >= 1 : o.ifMatch === "*" || rec.version === (o.ifMatch as number) + 1) &&
        (fields.agent === undefined || rec.agent === fields.agent) &&
        (fields.native_session_id === undefined || rec.native_session_id === fields.native_session_id) &&
        (fields.metadata === undefined || sameJson(rec.metadata, fields.metadata === null ? {} : fields.metadata));
      if (applied) return rec!;
      throw e;
    }
  }

  /** Deletes a session's events (the record stays, status "deleted"). false when there was no such session. */
  async deleteSession(id: string, o: { ifMatch?: number } = {}): Promise<boolean> {
    const headers: Record<string, string> = {};
    if (o.ifMatch !== undefined) headers["If-Match"] = `"${o.ifMatch}"`;
    const r = await this.request("DELETE", `/v1/sessions/${encodeSessionId(id)}`, { headers, accept: [404, 410] });
    await r.arrayBuffer().catch(() => undefined);
    return r.status !== 404;
  }

  /** Durable session resume: `{session, events, replay_text, truncated, from_sequence, to_sequence}`. */
  async restore(id: string, o: RestoreOptions = {}): Promise<RestoreResult> {
    return this.json<RestoreResult>("GET", `/v1/sessions/${encodeSessionId(id)}/restore`, {
      query: { fit: o.fit, max_events: o.maxEvents, max_chars: o.maxChars },
    });
  }

  /** The session folded into its transcript: parsed JSON, or Markdown text with format "markdown". */
  async transcript(id: string, o: TranscriptOptions = {}): Promise<any> {
    const r = await this.request("GET", `/v1/sessions/${encodeSessionId(id)}/transcript`, { query: { format: o.format, at: o.at } });
    return o.format === "markdown" ? r.text() : r.json();
  }

  /**
   * A streamed export (JSON lines; zstd unless compression "none"): of one session, of some
   * (ids without ','), or of the whole store. The stream is the response body: read it at your pace.
   */
  async exportStream(o: ExportOptions & { signal?: AbortSignal } = {}): Promise<ReadableStream<Uint8Array>> {
    let path: string;
    const query: Query = { compression: o.compression };
    if (o.sessions && o.sessions.length === 1) {
      path = `/v1/sessions/${encodeSessionId(o.sessions[0]!)}/export`;
    } else {
      path = "/v1/export";
      if (o.sessions) {
        if (o.sessions.length === 0) throw localError(400, "invalid_parameter", "exportStream: an empty list of sessions");
        if (o.sessions.some((s) => s.includes(",")))
          throw localError(400, "invalid_parameter", "exportStream: an id holding ',' can only be exported alone");
        query.sessions = o.sessions.join(",");
      }
    }
    const r = await this.request("GET", path, { query, signal: o.signal });
    if (!r.body) throw localError(0, "network_error", "export answered no body");
    return r.body;
  }

  /** Sends every coalesced append still waiting and waits for the answers. */
  async close(): Promise<void> {
    await this.coalescer?.flush();
  }
}
