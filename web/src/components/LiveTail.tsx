/**
 * A running step's output as it grows (`GET /calculations/{id}/steps/{i}/tail`, SSE over
 * fetch: the stream needs the Authorization header). Reconnects resume by byte offset
 * (Last-Event-ID); the server sends `done` when the step ends, and the view stops there.
 * The lines arrive already cleaned (control characters stripped, bounded length).
 */
import { useEffect, useRef, useState } from "react";
import { useApi } from "../api/context";
import { openEventStream } from "../api/sse";
import { Card } from "./ui";
import { defaultStep, type StepRef } from "./OutputsPanel";

const KEEP = 1000;
const LIVE = new Set(["queued", "running"]);

export function LiveTail({ calc }: { calc: { id: number; steps: StepRef[] } }) {
  const api = useApi();
  const step = defaultStep(calc.steps);
  const [lines, setLines] = useState<string[]>([]);
  const [status, setStatus] = useState("connecting");
  const [followed, setFollowed] = useState<number | null>(null);
  const box = useRef<HTMLPreElement>(null);
  const live = step !== undefined && LIVE.has(step.state);
  const index = step?.index;

  // Follow the live step; keep following it after it ends until the server says `done`.
  useEffect(() => {
    if (live && index !== undefined && index !== followed) setFollowed(index);
  }, [live, index, followed]);

  useEffect(() => {
    if (followed === null) return;
    setLines([]);
    setStatus("connecting");
    const handle = openEventStream(api, `/calculations/${calc.id}/steps/${followed}/tail`, {
      onEvent: (ev) => {
        if (ev.event === "line") {
          setLines((old) => [...old, ev.data].slice(-KEEP));
        } else if (ev.event === "skipped") {
          setLines((old) => [...old, `… ${ev.data} bytes skipped …`].slice(-KEEP));
        } else if (ev.event === "done") {
          const state = (JSON.parse(ev.data) as { state: string }).state;
          setStatus(`step ended (${state})`);
          handle.close();
        }
      },
      onStatus: (s) => setStatus((old) => (old.startsWith("step ended") ? old : s)),
    });
    return () => handle.close();
  }, [api, calc.id, followed]);

  useEffect(() => {
    const el = box.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [lines]);

  if (followed === null) return null;
  return (
    <Card
      title={`Live output${followed !== null ? ` · step ${followed}` : ""}`}
      testId="live-tail"
      actions={<span className="muted" data-testid="live-tail-status">{status}</span>}
    >
      <pre ref={box} data-testid="live-tail-lines" style={{ maxHeight: "24rem", overflow: "auto" }}>
        {lines.join("\n")}
      </pre>
    </Card>
  );
}
