// A text/event-stream parser over a fetch body (WHATWG HTML "Server-sent events",
// §9.2.6 "Interpreting an event stream"): lines end in CRLF, LF or CR; a blank line
// dispatches; "field: value" with one optional space after the colon; ':' starts a comment.

export interface SseMessage {
  /** The `id:` field of this message, or undefined when it had none. */
  id: string | undefined;
  event: string;
  data: string;
}

export interface SseParserHooks {
  onMessage(m: SseMessage): void;
  /** A `retry:` field (ms). */
  onRetry?(ms: number): void;
  /** Any line, comments included (used to notice keepalives). */
  onActivity?(): void;
}

/** Incremental parser: feed it decoded text chunks. */
export class SseParser {
  private buf = "";
  private data: string[] = [];
  private event = "";
  private id: string | undefined = undefined;
  private sawCR = false;
  constructor(private hooks: SseParserHooks) {}

  push(chunk: string): void {
    let text = chunk;
    // A CR at the end of the previous chunk followed by LF here is one line end.
    if (this.sawCR && text.startsWith("\n")) text = text.slice(1);
    this.sawCR = false;
    this.buf += text;
    let start = 0;
    for (;;) {
      let i = start;
      const n = this.buf.length;
      while (i < n) {
        const c = this.buf.charCodeAt(i);
        if (c === 10 || c === 13) break;
        i++;
      }
      if (i >= n) break;
      const line = this.buf.slice(start, i);
      if (this.buf.charCodeAt(i) === 13) {
        if (i + 1 < n) {
          if (this.buf.charCodeAt(i + 1) === 10) i++;
        } else {
          this.sawCR = true;
        }
      }
      start = i + 1;
      this.line(line);
    }
    this.buf = this.buf.slice(start);
  }

  private line(line: string): void {
    this.hooks.onActivity?.();
    if (line === "") {
      if (this.data.length > 0) {
        this.hooks.onMessage({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
      }
      this.data = [];
      this.event = "";
      this.id = undefined;
      return;
    }
    if (line.charCodeAt(0) === 58 /* ':' */) return;
    const colon = line.indexOf(":");
    let field = line;
    let value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.charCodeAt(0) === 32) value = value.slice(1);
    }
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.event = value;
        break;
      case "id":
        if (!value.includes("\u0000")) this.id = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.hooks.onRetry?.(Number(value));
        break;
      default:
        break;
    }
  }
}
