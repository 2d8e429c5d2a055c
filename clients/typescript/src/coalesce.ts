// Per-session append queue: coalesces single appends into one POST and keeps call order.
//
// Every append of a session (single, batch, or one with expectedSequence) goes through the
// session's queue, and at most one POST per session is in flight, so the client's appends to
// one session commit in the order they were called. Single appends waiting in the queue are
// sent together, up to maxEvents per POST: the first one waits windowMs for company when
// nothing is in flight; whatever queued up during a POST goes right after it. A batch or an
// expectedSequence append goes alone, in its place.
//
// Each caller gets the result of its own event. When the batch's answer has duplicates == 0,
// its events took first_sequence .. last_sequence in order and consecutive positions ending
// at `position`, so event i gets first_sequence + i and position - (n - 1 - i). With
// duplicates > 0 (an event_id already stored, or given twice) that mapping is ambiguous: the
// events are then sent again one POST each, in order; every one is now a duplicate or new,
// and each answer names exactly one event. A batch refused 400/413 (one bad event makes the
// whole atomic batch fail, and nothing was stored) is also sent again one by one, so only
// the caller of the bad event gets the error. Any other failure (after the client's retries)
// rejects every caller of the batch with that error.

import type { AppendResult, NewEvent } from "./client.js";

export interface AppendSender {
  /** POST these events as one request (an array; a single object when `single`). */
  post(session: string, body: NewEvent | NewEvent[], expectedSequence: number | undefined): Promise<AppendResult>;
  /** True for errors that say "this request's content was refused, nothing stored" (400, 413). */
  isContentError(e: unknown): boolean;
}

type Item =
  | { kind: "one"; ev: NewEvent; resolve: (r: AppendResult) => void; reject: (e: unknown) => void }
  | { kind: "batch"; evs: NewEvent | NewEvent[]; expectedSequence: number | undefined; resolve: (r: AppendResult) => void; reject: (e: unknown) => void };

interface Queue {
  items: Item[];
  timer: ReturnType<typeof setTimeout> | null;
  inflight: boolean;
  idle: Array<() => void>;
}

export class Coalescer {
  private queues = new Map<string, Queue>();
  /** POSTs made, and events in them (for tests and benchmarks). */
  stats = { posts: 0, events: 0, fallbacks: 0 };

  constructor(
    private sender: AppendSender,
    private windowMs: number,
    private maxEvents: number,
  ) {}

  append(session: string, ev: NewEvent): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.enqueue(session, { kind: "one", ev, resolve, reject });
    });
  }

  appendBatch(session: string, evs: NewEvent | NewEvent[], expectedSequence: number | undefined): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.enqueue(session, { kind: "batch", evs, expectedSequence, resolve, reject });
    });
  }

  /** Resolves when every queue is empty and nothing is in flight. */
  async flush(): Promise<void> {
    for (;;) {
      const waits: Promise<void>[] = [];
      for (const [session, q] of this.queues) {
        if (q.timer) {
          clearTimeout(q.timer);
          q.timer = null;
          this.pump(session, q);
        }
        waits.push(new Promise<void>((r) => q.idle.push(r)));
      }
      if (waits.length === 0) return;
      await Promise.all(waits);
    }
  }

  private enqueue(session: string, item: Item): void {
    let q = this.queues.get(session);
    if (!q) {
      q = { items: [], timer: null, inflight: false, idle: [] };
      this.queues.set(session, q);
    }
    q.items.push(item);
    if (q.inflight) return; // goes right after the POST in flight
    const singles = q.items.length; // only "one" items can be waiting when nothing is in flight
    if (item.kind === "batch" || singles >= this.maxEvents || this.windowMs <= 0) {
      if (q.timer) {
        clearTimeout(q.timer);
        q.timer = null;
      }
      this.pump(session, q);
    } else if (!q.timer) {
      q.timer = setTimeout(() => {
        q!.timer = null;
        this.pump(session, q!);
      }, this.windowMs);
    }
  }

  /** Sends the next POST of this queue, if nothing is in flight. */
  private pump(session: string, q: Queue): void {
    if (q.inflight || q.timer) return;
    if (q.items.length === 0) {
      this.queues.delete(session);
      for (const r of q.idle.splice(0)) r();
      return;
    }
    let take: Item[];
    const first = q.items[0]!;
    if (first.kind === "batch") {
      take = q.items.splice(0, 1);
    } else {
      let n = 0;
      while (n < q.items.length && n < this.maxEvents && q.items[n]!.kind === "one") n++;
      take = q.items.splice(0, n);
    }
    q.inflight = true;
    this.send(session, take).finally(() => {
      q.inflight = false;
      this.pump(session, q);
    });
  }

  private async send(session: string, items: Item[]): Promise<void> {
    if (items.length === 1) {
      const it = items[0]!;
      this.stats.posts++;
      try {
        if (it.kind === "one") {
          this.stats.events++;
          it.resolve(await this.sender.post(session, it.ev, undefined));
        } else {
          this.stats.events += Array.isArray(it.evs) ? it.evs.length : 1;
          it.resolve(await this.sender.post(session, it.evs, it.expectedSequence));
        }
      } catch (e) {
        it.reject(e);
      }
      return;
    }
    const ones = items as Array<Extract<Item, { kind: "one" }>>;
    const evs = ones.map((it) => it.ev);
    let res: AppendResult;
    this.stats.posts++;
    this.stats.events += evs.length;
    try {
      res = await this.sender.post(session, evs, undefined);
    } catch (e) {
      if (this.sender.isContentError(e)) return this.oneByOne(session, ones);
      for (const it of ones) it.reject(e);
      return;
    }
    const n = evs.length;
    if (res.duplicates === 0 && res.last_sequence - res.first_sequence + 1 === n) {
      for (let i = 0; i < n; i++) {
        ones[i]!.resolve({
          session_id: res.session_id,
          first_sequence: res.first_sequence + i,
          last_sequence: res.first_sequence + i,
          position: res.position - (n - 1 - i),
          duplicates: 0,
        });
      }
      return;
    }
    // Ambiguous: ask again one by one (every event is now stored or a duplicate).
    return this.oneByOne(session, ones);
  }

  private async oneByOne(session: string, ones: Array<Extract<Item, { kind: "one" }>>): Promise<void> {
    this.stats.fallbacks++;
    for (const it of ones) {
      this.stats.posts++;
      try {
        it.resolve(await this.sender.post(session, it.ev, undefined));
      } catch (e) {
        it.reject(e);
      }
    }
  }
}
