/**
 * A calculation's steps as a DAG (SVG): nodes coloured by state, edges = "runs after".
 * Hover shows a step's state and reason (SVG <title>); a click pins its details below.
 * The layout is `lib/dag.ts` (a bias ladder gets its own, along the bias axis).
 */
import { useMemo, useState } from "react";
import { biasLabel, type DagLayout, type DagNode, type DagStep, layoutSteps, NODE_H, NODE_W } from "../lib/dag";
import { StateBadge, STATE_CLASS } from "./ui";

const HEAD = 22; // room for the column headings
const LADDER_HEADINGS = ["electrodes", "TranSIESTA points", "TBtrans"];

export interface DagStepInfo extends DagStep {
  scheduler_job_id?: string | null;
  exit_code?: number | null;
}

function short(text: string, max = 21): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function tooltip(n: DagNode): string {
  const s = n.step;
  return [`step ${s.index}: ${s.label}`, `state: ${s.state}`, s.state_reason ? `reason: ${s.state_reason}` : ""]
    .filter(Boolean)
    .join("\n");
}

export function StepDag({ steps, testId = "dag" }: { steps: DagStepInfo[]; testId?: string }) {
  const layout: DagLayout = useMemo(() => layoutSteps(steps), [steps]);
  const [picked, setPicked] = useState<number | null>(null);
  const chosen = steps.find((s) => s.id === picked) ?? null;
  const pickedNode = layout.nodes.find((n) => n.step.id === picked) ?? null;
  if (!steps.length) return <p className="muted">No steps planned.</p>;
  const used = new Set(layout.nodes.map((n) => n.column));
  const columns = layout.kind === "ladder" ? LADDER_HEADINGS.map((h, i) => (used.has(i) ? h : "")) : [];
  return (
    <div className="dag" data-testid={testId} data-layout={layout.kind}>
      {layout.cyclic ? <p className="warn">These steps depend on each other in a cycle; shown in index order.</p> : null}
      <div className="dag-scroll">
        <svg
          width={layout.width}
          height={layout.height + HEAD}
          viewBox={`0 0 ${layout.width} ${layout.height + HEAD}`}
          role="img"
          aria-label="steps and their dependencies"
        >
          <defs>
            <marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M 0 0 L 10 5 L 0 10 z" className="dag-arrowhead" />
            </marker>
          </defs>
          {columns.map((title, i) => (
            <text key={i} className="dag-heading" x={12 + i * (NODE_W + 70) + NODE_W / 2} y={14} textAnchor="middle">
              {title}
            </text>
          ))}
          <g transform={`translate(0, ${HEAD})`}>
            {layout.edges.map((e) => (
              <polyline
                key={`${e.from}-${e.to}`}
                className={`dag-edge dag-edge-${e.kind}`}
                points={e.points.map(([x, y]) => `${x},${y}`).join(" ")}
                markerEnd="url(#dag-arrow)"
                data-testid="dag-edge"
                data-from={e.from}
                data-to={e.to}
              />
            ))}
            {layout.nodes.map((n) => {
              const s = n.step;
              const cls = STATE_CLASS[s.state] ?? "muted";
              const title = n.role === "electrode" ? s.label : n.bias !== null ? `${n.role === "tbtrans" ? "TBtrans" : "TranSIESTA"} ${biasLabel(n.bias)}` : s.label;
              return (
                <g
                  key={s.id}
                  className={`dag-node dag-${cls} dag-state-${s.state}${picked === s.id ? " dag-picked" : ""}`}
                  transform={`translate(${n.x}, ${n.y})`}
                  data-testid={`dag-node-${s.index}`}
                  data-step-id={s.id}
                  data-state={s.state}
                  data-role={n.role ?? ""}
                  data-bias={n.bias ?? ""}
                  role="button"
                  tabIndex={0}
                  onClick={() => setPicked(picked === s.id ? null : s.id)}
                  onKeyDown={(ev) => {
                    if (ev.key === "Enter" || ev.key === " ") setPicked(picked === s.id ? null : s.id);
                  }}
                >
                  <title>{tooltip(n)}</title>
                  <rect width={NODE_W} height={NODE_H} rx={6} />
                  <text x={8} y={16} className="dag-label">
                    {short(title)}
                  </text>
                  <text x={8} y={32} className="dag-state">
                    {cls === "bad" ? "✗ " : cls === "ok" ? "✓ " : ""}
                    {s.state.replace(/_/g, " ")}
                  </text>
                </g>
              );
            })}
          </g>
        </svg>
      </div>
      <Legend />
      {chosen ? (
        <div className="dag-detail" data-testid="dag-detail">
          <strong>
            step {chosen.index}: {chosen.label}
          </strong>{" "}
          <StateBadge state={chosen.state} />
          {pickedNode?.bias !== null && pickedNode?.bias !== undefined ? <span className="muted"> · bias {biasLabel(pickedNode.bias)}</span> : null}
          {chosen.scheduler_job_id ? <span className="muted"> · job {chosen.scheduler_job_id}</span> : null}
          {chosen.exit_code !== null && chosen.exit_code !== undefined ? <span className="muted"> · exit {chosen.exit_code}</span> : null}
          {chosen.state_reason ? (
            <p className={stateClass(chosen.state) === "bad" ? "warn" : "muted"} data-testid="dag-detail-reason">
              {chosen.state_reason}
            </p>
          ) : null}
          {(chosen.parents ?? []).length ? (
            <p className="muted small">
              runs after:{" "}
              {(chosen.parents ?? []).map((p) => steps.find((s) => s.id === p)?.label ?? `step id ${p}`).join(", ")}
            </p>
          ) : null}
        </div>
      ) : (
        <p className="muted small">Click a step for its state and reason.</p>
      )}
    </div>
  );
}

function stateClass(state: string): string {
  return STATE_CLASS[state] ?? "muted";
}

function Legend() {
  const items: [string, string][] = [
    ["ok", "done"],
    ["run", "running"],
    ["wait", "waiting"],
    ["bad", "failed"],
    ["muted", "cancelled / not run"],
  ];
  return (
    <div className="dag-legend small">
      {items.map(([c, text]) => (
        <span key={c} className={`dag-key dag-${c}`}>
          <svg width="12" height="12" aria-hidden="true">
            <rect width="12" height="12" rx="3" />
          </svg>{" "}
          {text}
        </span>
      ))}
    </div>
  );
}
