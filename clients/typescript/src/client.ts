// ReelClient: append (with client-generated event ids and retries), poll, long-poll, SSE,
// sessions, restore, transcript, export. No runtime dependency beyond Node >= 20's fetch.

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
}

export class ReelError extends Error {
  status: number;
  type: string;
  detail: string;
  problem: any;
  constructor(status: number, problem: any, message?: string) {
    super(message ?? "reel error");
    this.name = "ReelError";
    this.status = status;
    this.problem = problem;
    this.type = "";
    this.detail = "";
  }
}

/** A new event id: UUID v7 layout (48-bit ms time, random rest). */
export function newEventId(): string {
  throw new Error("not implemented yet");
}

/** A session id as one path segment. */
export function encodeSessionId(id: string): string {
  return encodeURIComponent(id);
}

export class ReelClient {
  constructor(opts: ClientOptions = {}) {
    void opts;
  }
  async append(session: string, ev: NewEvent, o?: { expectedSequence?: number }): Promise<AppendResult> {
    void session; void ev; void o;
    throw new Error("not implemented yet");
  }
  async appendBatch(session: string, evs: NewEvent[], o?: { expectedSequence?: number }): Promise<AppendResult> {
    void session; void evs; void o;
    throw new Error("not implemented yet");
  }
  async events(session: string, o?: { after?: number; limit?: number; waitMs?: number }): Promise<EventPage> {
    void session; void o;
    throw new Error("not implemented yet");
  }
  async newest(session: string, n: number): Promise<ReelEvent[]> {
    void session; void n;
    throw new Error("not implemented yet");
  }
  subscribe(session: string | null, o?: SubscribeOptions): AsyncIterable<ReelEvent> {
    void session; void o;
    throw new Error("not implemented yet");
  }
  async feed(o?: { after?: number; limit?: number; waitMs?: number }): Promise<EventPage> {
    void o;
    throw new Error("not implemented yet");
  }
  async listSessions(o?: ListOptions): Promise<SessionPage> {
    void o;
    throw new Error("not implemented yet");
  }
  allSessions(o?: Omit<ListOptions, "cursor">): AsyncIterable<SessionRecord> {
    void o;
    throw new Error("not implemented yet");
  }
  async getSession(id: string): Promise<SessionRecord | null> {
    void id;
    throw new Error("not implemented yet");
  }
  async putSession(id: string, fields: SessionFields, o?: PutOptions): Promise<SessionRecord> {
    void id; void fields; void o;
    throw new Error("not implemented yet");
  }
  async deleteSession(id: string, o?: { ifMatch?: number }): Promise<boolean> {
    void id; void o;
    throw new Error("not implemented yet");
  }
  async restore(id: string, o?: RestoreOptions): Promise<RestoreResult> {
    void id; void o;
    throw new Error("not implemented yet");
  }
  async transcript(id: string, o?: TranscriptOptions): Promise<any> {
    void id; void o;
    throw new Error("not implemented yet");
  }
  async exportStream(o?: ExportOptions): Promise<ReadableStream<Uint8Array>> {
    void o;
    throw new Error("not implemented yet");
  }
  async close(): Promise<void> {}
}
