import { describe, expect, it } from "vitest";
import { SseParser } from "./sse";

describe("SseParser", () => {
  it("parses the log stream's events, comments and retry", () => {
    const p = new SseParser();
    const events = p.push(
      'retry: 3000\n\nid: 41\nevent: log\ndata: {"id": 41}\n\n: keepalive\n\nevent: end\ndata: {"last_id": 41}\n\n',
    );
    expect(p.retryMs).toBe(3000);
    expect(events).toEqual([
      { id: "41", event: "log", data: '{"id": 41}' },
      { id: "41", event: "end", data: '{"last_id": 41}' },
    ]);
    expect(p.lastEventId).toBe("41");
  });

  it("joins multi-line data and handles chunks split anywhere, CRLF included", () => {
    const p = new SseParser();
    const text = "id: 7\r\ndata: a\r\ndata: b\r\n\r\ndata: c\n\n";
    const out = [];
    for (const ch of text) out.push(...p.push(ch));
    expect(out).toEqual([
      { id: "7", event: "message", data: "a\nb" },
      { id: "7", event: "message", data: "c" },
    ]);
  });

  it("ignores unknown fields and events without data", () => {
    const p = new SseParser();
    expect(p.push("foo: bar\nevent: x\n\n")).toEqual([]);
    expect(p.push("data\n\n")).toEqual([{ id: null, event: "message", data: "" }]);
  });
});
