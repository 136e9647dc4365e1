/**
 * Server-Sent Events over fetch (EventSource cannot send the Authorization header).
 *
 * `SseParser` is the pure part (text chunks in, events out, per the WHATWG rules: fields
 * `id`, `event`, `data`, `retry`, comments start with ":", an empty line dispatches).
 * `openEventStream` connects, reconnects after the server's `end` event or a network
 * error with `Last-Event-ID` so nothing is lost, and stops on `close()`.
 */
import type { ApiClient } from "./client";

export interface SseEvent {
  id: string | null;
  event: string;
  data: string;
}

export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private eventType = "";
  private pendingId: string | null = null;
  /** The last event id seen (what a reconnect sends as Last-Event-ID). */
  lastEventId: string | null = null;
  /** Reconnection delay the server asked for, in ms. */
  retryMs: number | null = null;

  /** Feed a chunk of text; returns the events completed by it. */
  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (!match) break;
      // A lone "\r" at the end may be the first half of "\r\n": wait for more text.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.line(line);
      if (event) out.push(event);
    }
    return out;
  }

  private line(line: string): SseEvent | null {
    if (line === "") {
      if (this.pendingId !== null) this.lastEventId = this.pendingId;
      if (this.data.length === 0) {
        this.eventType = "";
        return null;
      }
      const event = {
        id: this.lastEventId,
        event: this.eventType || "message",
        data: this.data.join("\n"),
      };
      this.data = [];
      this.eventType = "";
      this.pendingId = null;
      return event;
    }
    if (line.startsWith(":")) return null; // comment / keepalive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        break;
      case "event":
        this.eventType = value;
        break;
      case "id":
        if (!value.includes("\0")) this.pendingId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        break;
    }
    return null;
  }
}

export interface StreamHandle {
  close(): void;
}

export interface StreamOptions {
  onEvent: (event: SseEvent) => void;
  onStatus?: (status: "connecting" | "open" | "retrying" | "closed", error?: unknown) => void;
  /** Starting point (only lines after this id); later reconnects use the last id seen. */
  afterId?: number | null;
}

/** Follow an SSE endpoint (`url` includes its query string) until `close()`. */
export function openEventStream(
  client: ApiClient,
  url: string,
  options: StreamOptions,
): StreamHandle {
  const controller = new AbortController();
  let closed = false;
  const parser = new SseParser();
  if (options.afterId != null) parser.lastEventId = String(options.afterId);

  const run = async () => {
    while (!closed) {
      let ended = false; // the server closed the stream on purpose: reconnect at once
      options.onStatus?.("connecting");
      try {
        const headers: Record<string, string> = { Accept: "text/event-stream" };
        if (parser.lastEventId) headers["Last-Event-ID"] = parser.lastEventId;
        const response = await client.send("get", url, undefined, headers, controller.signal);
        options.onStatus?.("open");
        const reader = response.body?.getReader();
        if (!reader) throw new Error("no response body");
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const ev of parser.push(decoder.decode(value, { stream: true }))) {
            if (ev.event === "end") ended = true;
            else options.onEvent(ev);
          }
        }
      } catch (error) {
        if (closed) break;
        options.onStatus?.("retrying", error);
      }
      if (closed) break;
      if (!ended) await new Promise((r) => setTimeout(r, parser.retryMs ?? 3000));
    }
    options.onStatus?.("closed");
  };
  void run();
  return {
    close() {
      closed = true;
      controller.abort();
    },
  };
}
