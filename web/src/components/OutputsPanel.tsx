/**
 * A step's raw outputs: its run directory, read on the cluster (local, SSH or through the
 * agent), browsable, each file downloadable (fetched with the session's token, then saved).
 * The listing is a cached query (`api/queries/outputs.ts`), downloads go through the typed client.
 */
import { useState } from "react";
import { useApi } from "../api/context";
import { useStepOutputs } from "../api/queries/outputs";
import { Card, ErrorBox } from "./ui";

export interface StepRef {
  index: number;
  label: string;
  state: string;
}

const NOT_STARTED = new Set(["planned", "submitting"]);

function size(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/** The step shown first: the one running, else the last one that started. */
export function defaultStep(steps: StepRef[]): StepRef | undefined {
  const started = steps.filter((s) => !NOT_STARTED.has(s.state));
  return started.find((s) => s.state === "running") ?? started[started.length - 1];
}

export function OutputsPanel({ calc }: { calc: { id: number; steps: StepRef[] } }) {
  const api = useApi();
  const started = calc.steps.filter((s) => !NOT_STARTED.has(s.state));
  const [stepIndex, setStepIndex] = useState<number | null>(null);
  const step = started.find((s) => s.index === stepIndex) ?? defaultStep(calc.steps);
  const [path, setPath] = useState("");
  const [error, setError] = useState<unknown>(null);
  const outputs = useStepOutputs(calc.id, step?.index, path, step?.state);
  const listing = outputs.data;

  const download = async (name: string) => {
    if (!step) return;
    const rel = path ? `${path}/${name}` : name;
    setError(null);
    try {
      const { blob } = await api.download("/calculations/{calc_id}/steps/{step_index}/outputs/{path}", {
        path: { calc_id: calc.id, step_index: step.index, path: rel },
      });
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      setError(e);
    }
  };

  if (!step) return null;
  return (
    <Card
      title="Raw outputs"
      testId="outputs-panel"
      actions={
        <>
          <select
            aria-label="output step"
            value={step.index}
            onChange={(e) => {
              setStepIndex(Number(e.target.value));
              setPath("");
            }}
          >
            {started.map((s) => (
              <option key={s.index} value={s.index}>
                step {s.index} · {s.label} ({s.state})
              </option>
            ))}
          </select>
          <button type="button" className="secondary" onClick={() => void outputs.refetch()} disabled={outputs.isFetching}>
            Refresh
          </button>
        </>
      }
    >
      <p className="muted" data-testid="outputs-path">
        {path ? (
          <button type="button" className="link" onClick={() => setPath(path.split("/").slice(0, -1).join("/"))}>
            ↑ up
          </button>
        ) : null}{" "}
        /{path}
      </p>
      {error || outputs.error ? <ErrorBox error={error ?? outputs.error} /> : null}
      {listing ? (
        <table className="table" data-testid="outputs-table">
          <thead>
            <tr>
              <th>name</th>
              <th>size</th>
              <th>modified</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {listing.entries.map((e) => (
              <tr key={e.name} data-testid={`output-row-${e.name}`}>
                <td>
                  {e.kind === "dir" ? (
                    <button type="button" className="link" onClick={() => setPath(path ? `${path}/${e.name}` : e.name)}>
                      {e.name}/
                    </button>
                  ) : (
                    <span className={e.kind === "file" ? "" : "muted"}>{e.name}</span>
                  )}
                </td>
                <td>{e.kind === "file" ? size(e.size) : e.kind}</td>
                <td>{new Date(e.mtime * 1000).toLocaleString()}</td>
                <td>
                  {e.kind === "file" ? (
                    <button type="button" className="secondary" data-testid={`output-download-${e.name}`} onClick={() => void download(e.name)}>
                      Download
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {listing?.truncated ? <p className="muted">(listing cut: too many files)</p> : null}
    </Card>
  );
}
