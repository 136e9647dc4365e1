/**
 * A step's raw outputs: its run directory, read on the cluster (local, SSH or through the
 * agent), browsable, each file downloadable (fetched with the session's token, then saved).
 * Untyped on purpose (own small interfaces): the routes are `/calculations/{id}/steps/{i}/outputs`.
 */
import { useCallback, useEffect, useState } from "react";
import { useApi } from "../api/context";
import { Card, ErrorBox } from "./ui";

interface Entry {
  name: string;
  kind: string;
  size: number;
  mtime: number;
}
interface Listing {
  path: string;
  state: string;
  stdout: string;
  entries: Entry[];
  truncated: boolean;
}
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

function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

export function OutputsPanel({ calc }: { calc: { id: number; steps: StepRef[] } }) {
  const api = useApi();
  const started = calc.steps.filter((s) => !NOT_STARTED.has(s.state));
  const [stepIndex, setStepIndex] = useState<number | null>(null);
  const step = started.find((s) => s.index === stepIndex) ?? defaultStep(calc.steps);
  const [path, setPath] = useState("");
  const [listing, setListing] = useState<Listing | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const base = step ? `/calculations/${calc.id}/steps/${step.index}` : null;

  const load = useCallback(async () => {
    if (!base) return;
    setBusy(true);
    try {
      const query = path ? `?path=${encodeURIComponent(path)}` : "";
      const response = await api.send("get", `${base}/outputs${query}`);
      setListing((await response.json()) as Listing);
      setError(null);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }, [api, base, path]);

  useEffect(() => {
    void load();
  }, [load, step?.state]);

  const download = async (name: string) => {
    if (!base) return;
    const rel = path ? `${path}/${name}` : name;
    try {
      const response = await api.send("get", `${base}/outputs/${encodePath(rel)}`, undefined, { Accept: "*/*" });
      const url = URL.createObjectURL(await response.blob());
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
          <button type="button" className="secondary" onClick={() => void load()} disabled={busy}>
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
      {error ? <ErrorBox error={error} /> : null}
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
