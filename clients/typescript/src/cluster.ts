// Reads over every cell of a reel cluster (docs/CLUSTER.md "Cluster-wide reads").
//
// Each cell serves its own feed, with positions of its own log; there is no order across
// cells. ClusterReader.events() reads every cell's feed under a vector cursor, one position
// per cell, written "c1:120,c2:98,c3:0" (cells in id order): given back, it resumes every cell
// exactly after what was yielded, so every event of the cluster is read once, each session's
// in sequence order (a session lives on one cell). A cell the cursor does not name is read
// from its start (a cell added since); one the map does not name is carried along.
// ClusterReader.sessions() lists every session record once, from the cell the map gives its
// shard to. The text form and the rules are those of `reel cluster events`.
import { ReelClient } from "./client.js";
import type { ClientOptions, ReelEvent, SessionRecord } from "./client.js";

export type VectorCursor = Record<string, number>;

const CELL_ID = /^[A-Za-z0-9_-]{1,63}$/;

/** "c1:120,c2:98" -> { c1: 120, c2: 98 }; "" is the start. Throws naming a bad pair. */
export function parseCursor(text: string): VectorCursor {
  const out: VectorCursor = {};
  if (!text) return out;
  for (const pair of text.split(",")) {
    const i = pair.indexOf(":");
    const cell = pair.slice(0, i), pos = pair.slice(i + 1);
    if (i < 0 || !CELL_ID.test(cell) || !/^[0-9]+$/.test(pos)) {
      throw new Error(`${JSON.stringify(text)} is not a vector cursor (CELL:POSITION pairs separated by ','): bad pair ${JSON.stringify(pair)}`);
    }
    out[cell] = Number(pos);
  }
  return out;
}

export function formatCursor(c: VectorCursor): string {
  return Object.keys(c).sort().map((k) => `${k}:${c[k]}`).join(",");
}

export interface ClusterEvent {
  cell: string;
  /** The vector cursor right after this event. */
  cursor: string;
  event: ReelEvent;
}

export interface ClusterMapDoc {
  shards: number;
  epoch: number;
  cells: { id: string; address: string; shards: [number, number][] }[];
}

// ---- the shard rule (docs/CLUSTER.md "Shards") ----

function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  let h = data.length >>> 0;
  const n = data.length & ~3;
  for (let i = 0; i < n; i += 4) {
    let k = (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)) >>> 0;
    k = Math.imul(k, m) >>> 0;
    k = (k ^ (k >>> 24)) >>> 0;
    k = Math.imul(k, m) >>> 0;
    h = (Math.imul(h, m) ^ k) >>> 0;
  }
  const rest = data.length - n;
  if (rest >= 3) h = (h ^ (data[n + 2] << 16)) >>> 0;
  if (rest >= 2) h = (h ^ (data[n + 1] << 8)) >>> 0;
  if (rest >= 1) h = Math.imul(h ^ data[n], m) >>> 0;
  h = Math.imul(h ^ (h >>> 13), m) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

const pct = (bytes: Uint8Array, keep: string) =>
  Array.from(bytes, (b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9._~-]/.test(c) || keep.includes(c) ? c : "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }).join("");

/** The routing key: canonical percent-encoding; a stream session (ds:...) has its path's. */
function routingKey(id: string): string {
  const enc = new TextEncoder();
  const m = /^ds:([^:]+)(?::([0-9]+))?$/.exec(id);
  if (m) {
    const bytes: number[] = [];
    const e = m[1];
    let ok = true;
    for (let i = 0; i < e.length && ok; ) {
      if (e[i] === "~") {
        const v = parseInt(e.slice(i + 1, i + 3), 16);
        ok = /^[0-9A-Fa-f]{2}$/.test(e.slice(i + 1, i + 3));
        bytes.push(v);
        i += 3;
      } else {
        const cp = e.codePointAt(i)!;
        bytes.push(...enc.encode(String.fromCodePoint(cp)));
        i += cp > 0xffff ? 2 : 1;
      }
    }
    if (ok) return pct(Uint8Array.from(bytes), "/");
  }
  return pct(enc.encode(id), "");
}

export class ClusterMap {
  readonly v: number;
  readonly epoch: number;
  readonly cells: Record<string, string>;
  private owners: string[];
  private bounds: number[];

  constructor(doc: ClusterMapDoc) {
    this.v = doc.shards;
    this.epoch = doc.epoch;
    this.cells = Object.fromEntries(doc.cells.map((c) => [c.id, c.address]));
    this.owners = new Array<string>(this.v).fill("");
    for (const c of doc.cells) for (const [a, b] of c.shards) for (let s = a; s <= b; s++) this.owners[s] = c.id;
    this.bounds = [];
    let last = 0;
    for (let i = 0; i < this.v; i++) {
      const p = Math.floor(((i + 1) * 10000) / this.v) - Math.floor((i * 10000) / this.v);
      last = (last + Math.floor((p * 0xffffffff) / 10000)) % 2 ** 32;
      this.bounds.push(i + 1 < this.v ? last : 2 ** 32);
    }
  }

  shard(id: string): number {
    const h = murmur2(new TextEncoder().encode(routingKey(id)));
    let lo = 0, hi = this.v - 1; // the first shard whose bound is above h
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.bounds[mid] > h) hi = mid; else lo = mid + 1;
    }
    return lo;
  }

  owner(id: string): string {
    return this.owners[this.shard(id)];
  }
}

export interface ClusterReaderOptions extends Omit<ClientOptions, "baseUrl"> {
  /** Ask every cell through this URL (nginx), picked by the Reel-Cell header; default: each cell at its map address. */
  server?: string;
}

export class ClusterReader {
  readonly map: ClusterMap;
  private clients: Record<string, ReelClient> = {};

  constructor(map: ClusterMapDoc | ClusterMap, o: ClusterReaderOptions = {}) {
    this.map = map instanceof ClusterMap ? map : new ClusterMap(map);
    const { server, ...rest } = o;
    for (const [id, addr] of Object.entries(this.map.cells)) {
      this.clients[id] = new ReelClient({ ...rest, baseUrl: server ?? `http://${addr}`, headers: { ...(rest.headers ?? {}), "Reel-Cell": id } });
    }
  }

  async close(): Promise<void> {
    for (const c of Object.values(this.clients)) await c.close();
  }

  /** Every event after the vector cursor `after`, each with its cell and the cursor after it, merged by commit time as
   * `reel cluster events` does: a page of every cell that is not caught up is in hand before the earliest head is yielded
   * (so a moved session's events come in sequence order). Without `follow` it ends once every cell is caught up; with it,
   * caught-up cells are asked again every `pollMs` (500). */
  async *events(o: { after?: string; limit?: number; follow?: boolean; pollMs?: number; signal?: AbortSignal } = {}): AsyncGenerator<ClusterEvent> {
    const cur = parseCursor(o.after ?? "");
    const cells = Object.keys(this.map.cells).sort();
    const buf: Record<string, ReelEvent[]> = {}, more: Record<string, boolean> = {}, pageAfter: Record<string, number> = {}, polled: Record<string, number> = {};
    for (const c of cells) {
      cur[c] ??= 0;
      buf[c] = [];
      more[c] = true;
      pageAfter[c] = 0;
      polled[c] = 0;
    }
    const pollMs = o.pollMs ?? 500;
    const fill = async (c: string) => {
      // Moves (docs/CLUSTER.md "Cluster-wide reads"): events a move copied into this cell
      // are read at their old owner, not here (a cell without the option ignores it).
      const page = await this.clients[c].feed({ after: cur[c], limit: o.limit ?? 1000, skipCopied: true, signal: o.signal });
      buf[c] = page.events;
      more[c] = page.more;
      pageAfter[c] = page.next;
      polled[c] = Date.now();
      if (page.events.length === 0) cur[c] = Math.max(cur[c], page.next);
    };
    for (;;) {
      if (o.signal?.aborted) return;
      for (const c of cells) {
        if (buf[c].length === 0 && (more[c] || (o.follow && Date.now() - polled[c] >= pollMs))) await fill(c);
      }
      const heads = cells.filter((c) => buf[c].length > 0);
      if (heads.length === 0) {
        if (!o.follow) return;
        await new Promise((r) => setTimeout(r, pollMs));
        continue;
      }
      const t = (c: string) => String(buf[c][0].time ?? "");
      const cell = heads.reduce((a, b) => (t(b) < t(a) ? b : a));
      const e = buf[cell].shift()!;
      cur[cell] = Number(e.position);
      if (buf[cell].length === 0) cur[cell] = Math.max(cur[cell], pageAfter[cell]);
      yield { cell, cursor: formatCursor(cur), event: e };
    }
  }

  /** [cell, record] for every session of the cluster, once: a record only from the cell the map gives its shard to. */
  async *sessions(o: { prefix?: string } = {}): AsyncGenerator<[string, SessionRecord]> {
    for (const cell of Object.keys(this.map.cells).sort()) {
      let cursor: string | undefined;
      for (;;) {
        const page = await this.clients[cell].listSessions({ prefix: o.prefix, limit: 1000, cursor });
        for (const rec of page.sessions) if (this.map.owner(rec.id) === cell) yield [cell, rec];
        if (!page.cursor) break;
        cursor = page.cursor;
      }
    }
  }
}
