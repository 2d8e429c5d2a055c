// reel-client/openai-agents: a `Session` of the OpenAI Agents SDK (@openai/agents) on reel.
//
//   import { Agent, run } from "@openai/agents";
//   import { ReelSession } from "reel-client/openai-agents";
//   const session = new ReelSession({ sessionId: "support/ticket-42", baseUrl: "http://127.0.0.1:2469" });
//   await run(agent, "hello", { session });
//
// The reel session's log stays append-only. Every item the SDK adds is one event
// `openai_agents.item` (data = the item, exactly); popItem() appends `openai_agents.pop`
// naming the sequence of the item it removes, conditional on the session's last sequence
// (expected_sequence, so a concurrent add makes it read again instead of popping the wrong
// item); clearSession() appends `openai_agents.clear`. Reads fold the log: items in sequence
// order, minus popped ones, after the last clear. Each instance keeps its fold and reads only
// the events past what it has seen (other writers' included), so getItems costs the new
// events, not the whole log. docs/CLIENTS.md "OpenAI Agents".
//
// No import of @openai/agents: the SDK's Session is an interface, matched structurally.

import { ReelClient, ReelError, newEventId, type ClientOptions, type Json, type NewEvent } from "../index.js";

/**
 * An SDK item (the SDK's AgentInputItem): a JSON object, kept as JSON (undefined-valued keys
 * are dropped, as any remote store drops them). `any` by default so that a ReelSession is
 * assignable to the SDK's `Session` without this package depending on the SDK; write
 * `new ReelSession<AgentInputItem>(...)` for the SDK's own item type.
 */
export type AgentItem = any;

export const ITEM_TYPE = "openai_agents.item";
export const POP_TYPE = "openai_agents.pop";
export const CLEAR_TYPE = "openai_agents.clear";
const SOURCE = "openai-agents";

export interface ReelSessionOptions extends ClientOptions {
  /** The reel session id (any UTF-8 string). Default: a new UUID, as the SDK's MemorySession does. */
  sessionId?: string;
  /** A client to share (else one is made from the other options, with coalescing on). */
  client?: ReelClient;
  /** Written to the session record's `agent` when this instance first adds items (create only); null: leave the record alone. Default "openai-agents". */
  agent?: string | null;
}

interface Live {
  seq: number;
  item: any;
}

export class ReelSession<TItem = AgentItem> {
  readonly client: ReelClient;
  private readonly sessionId: string;
  private readonly agent: string | null;
  private live: Live[] = [];
  private seen = 0;
  private recordWritten = false;
  private syncing: Promise<void> | null = null;

  constructor(opts: ReelSessionOptions = {}) {
    this.client = opts.client ?? new ReelClient({ coalesce: true, ...opts });
    this.sessionId = opts.sessionId ?? globalThis.crypto.randomUUID();
    this.agent = opts.agent === undefined ? "openai-agents" : opts.agent;
  }

  async getSessionId(): Promise<string> {
    return this.sessionId;
  }

  /** The newest `limit` items (all when undefined), oldest first. */
  async getItems(limit?: number): Promise<TItem[]> {
    await this.sync();
    if (limit !== undefined && limit <= 0) return [];
    const from = limit === undefined ? 0 : Math.max(0, this.live.length - limit);
    return this.live.slice(from).map((l) => structuredClone(l.item));
  }

  /** Appends the items as one atomic batch (one event each); nothing for an empty list. */
  async addItems(items: TItem[]): Promise<void> {
    if (!items || items.length === 0) return;
    await this.writeRecord();
    const evs: NewEvent[] = items.map((item) => ({ type: ITEM_TYPE, source: SOURCE, data: toJson(item) }));
    await this.client.appendBatch(this.sessionId, evs);
  }

  /** Removes and returns the newest item (undefined when there is none). */
  async popItem(): Promise<TItem | undefined> {
    for (let attempt = 0; ; attempt++) {
      await this.sync();
      const last = this.live[this.live.length - 1];
      if (!last) return undefined;
      const ev: NewEvent = { type: POP_TYPE, source: SOURCE, event_id: newEventId(), data: { sequence: last.seq } };
      try {
        await this.client.append(this.sessionId, ev, { expectedSequence: this.seen });
        return structuredClone(last.item);
      } catch (e) {
        // Another writer appended since our read: read again and pop what is newest now.
        if (e instanceof ReelError && e.status === 409 && attempt < 100) continue;
        throw e;
      }
    }
  }

  /** Empties the history (a marker event; the log keeps what was there). */
  async clearSession(): Promise<void> {
    await this.sync();
    if (this.seen === 0) return; // nothing was ever written: create nothing
    await this.client.append(this.sessionId, { type: CLEAR_TYPE, source: SOURCE, data: {} });
  }

  private async writeRecord(): Promise<void> {
    if (this.recordWritten || this.agent === null) return;
    try {
      await this.client.putSession(this.sessionId, { agent: this.agent }, { ifNoneMatch: "*" });
    } catch (e) {
      if (!(e instanceof ReelError && e.status === 412)) throw e; // exists already: keep its record
    }
    this.recordWritten = true;
  }

  /**
   * Folds the events past `seen` into `live`. Folds run one after another, and each call
   * gets a read that starts after it was made (read-your-writes).
   */
  private sync(): Promise<void> {
    const p = (this.syncing ?? Promise.resolve()).then(() => this.readNew());
    this.syncing = p.catch(() => undefined);
    return p;
  }

  private async readNew(): Promise<void> {
    for (;;) {
      let page;
      try {
        page = await this.client.events(this.sessionId, { after: this.seen, limit: 10000 });
      } catch (e) {
        if (e instanceof ReelError && e.status === 404) return; // no session yet: no items
        throw e;
      }
      for (const ev of page.events) {
        if (ev.type === ITEM_TYPE) {
          this.live.push({ seq: ev.sequence, item: ev.data });
        } else if (ev.type === POP_TYPE) {
          const target = (ev.data as { sequence?: number } | null)?.sequence;
          for (let i = this.live.length - 1; i >= 0; i--) {
            if (this.live[i]!.seq === target) {
              this.live.splice(i, 1);
              break;
            }
          }
        } else if (ev.type === CLEAR_TYPE) {
          this.live = [];
        }
        this.seen = ev.sequence;
      }
      if (page.next > this.seen) this.seen = page.next;
      if (!page.more) return;
    }
  }
}

function toJson(item: unknown): Json {
  return JSON.parse(JSON.stringify(item)) as Json;
}
