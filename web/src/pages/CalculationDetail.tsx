import { useState } from "react";
import { Link, useParams, useSearchParams } from "react-router";
import type { Schemas } from "../api/client";
import { usePermissions } from "../api/permissions";
import {
  useCalculation,
  useCalculationAction,
  useCalculationEvents,
  useInputFile,
} from "../api/queries/calculations";
import { useStep, useStepSamples } from "../api/queries/steps";
import { ApprovalContext } from "../components/ApprovalContext";
import { TimeSeriesChart } from "../components/Charts";
import { IvCurveCard } from "../components/IvCurve";
import { StepDag } from "../components/StepDag";
import { LiveTail } from "../components/LiveTail";
import { LogsView } from "../components/LogsView";
import { OutputsPanel } from "../components/OutputsPanel";
import { ReportView } from "../components/Report";
import { Card, ErrorBox, JsonView, Loading, StateBadge } from "../components/ui";
import { between, fmtDate } from "../lib/format";

type Calc = Schemas["CalculationDetail"];
type Step = Schemas["StepOut"];

const FINAL = new Set(["completed", "failed", "cancelled", "rejected"]);
const TABS = ["overview", "results", "configuration", "logs"] as const;
type Tab = (typeof TABS)[number];

export function CalculationDetailPage() {
  const { id } = useParams();
  const calcId = Number(id);
  const [params, setParams] = useSearchParams();
  const tab = (TABS as readonly string[]).includes(params.get("tab") ?? "")
    ? (params.get("tab") as Tab)
    : "overview";
  const calc = useCalculation(calcId, { pollMs: 3000 });
  if (!Number.isInteger(calcId) || calcId < 1) return <ErrorBox error="not a calculation id" />;
  if (calc.error && !calc.data) return <ErrorBox error={calc.error} />;
  if (!calc.data) return <Loading />;
  const c = calc.data;
  return (
    <div className="page" data-testid="page-calculation">
      <header className="page-head">
        <div>
          <h1>
            <span className="muted">#{c.id}</span> {c.name} <StateBadge state={c.state} />
          </h1>
          <p className="muted">
            {c.kind} · {c.code} · {c.cluster_name} / {c.logical_queue} · owner {c.owner_email} · priority{" "}
            <span data-testid="priority">{c.priority}</span>
          </p>
          {c.state_reason ? (
            <p className={c.state === "failed" || c.state === "rejected" ? "warn" : "muted"} data-testid="state-reason">
              {c.state_reason}
            </p>
          ) : null}
        </div>
        <Actions calc={c} />
      </header>
      {c.description ? <p className="description">{c.description}</p> : null}
      <div className="tabs" role="tablist">
        {TABS.map((t) => (
          <button
            key={t}
            type="button"
            role="tab"
            aria-selected={t === tab}
            className={t === tab ? "" : "secondary"}
            onClick={() => setParams(t === "overview" ? {} : { tab: t }, { replace: true })}
          >
            {t === "results" ? "results & report" : t}
          </button>
        ))}
      </div>
      {tab === "overview" ? <LiveTail calc={c} /> : null}
      {tab === "overview" ? <Overview calc={c} /> : null}
      {tab === "overview" ? <OutputsPanel calc={c} /> : null}
      {tab === "results" ? <ReportView calc={c} /> : null}
      {tab === "configuration" ? <Configuration calc={c} /> : null}
      {tab === "logs" ? (
        <div className="card">
          <LogsView fixed={{ calculation_id: String(c.id) }} compact />
        </div>
      ) : null}
    </div>
  );
}

function Actions({ calc }: { calc: Calc }) {
  const can = usePermissions();
  const act = useCalculationAction(calc.id);
  const [priority, setPriority] = useState(String(calc.priority));
  const [reason, setReason] = useState("");
  const busy = act.isPending;
  const approver = can.may("calculation.approve");
  return (
    <div className="actions-box" data-testid="calc-actions">
      {can.may("calculation.create") ? (
        <Link to={`/calculations/new?start_from=${calc.id}`} data-testid="start-from-this">
          New calculation from this one's outputs
        </Link>
      ) : null}
      {calc.state === "pending_approval" && approver ? <ApprovalContext calcId={calc.id} /> : null}
      {calc.state === "pending_approval" && approver ? (
        <div className="row">
          <button type="button" disabled={busy} data-testid="approve" onClick={() => act.mutate({ action: "approve" })}>
            Approve
          </button>
          <input placeholder="reason" aria-label="reject reason" value={reason} onChange={(e) => setReason(e.target.value)} />
          <button
            type="button"
            className="danger"
            disabled={busy}
            data-testid="reject"
            onClick={() => act.mutate({ action: "reject", reason })}
          >
            Reject
          </button>
        </div>
      ) : null}
      {calc.state === "pending_approval" && !approver ? (
        <p className="note">Waiting for a moderator's approval.</p>
      ) : null}
      {can.may("calculation.prioritize") && !FINAL.has(calc.state) ? (
        <div className="row">
          <label className="inline">
            priority
            <input
              type="number"
              min={-1000}
              max={1000}
              className="narrow"
              aria-label="priority"
              value={priority}
              onChange={(e) => setPriority(e.target.value)}
            />
          </label>
          <button
            type="button"
            className="secondary"
            disabled={busy}
            data-testid="set-priority"
            onClick={() => act.mutate({ action: "priority", priority: Number(priority) })}
          >
            Set
          </button>
        </div>
      ) : null}
      {!FINAL.has(calc.state) && can.may("calculation.cancel", calc) ? (
        <button
          type="button"
          className="danger"
          disabled={busy}
          data-testid="cancel"
          onClick={() => {
            if (window.confirm(`Cancel calculation #${calc.id}? Its jobs are cancelled on the cluster.`)) {
              act.mutate({ action: "cancel" });
            }
          }}
        >
          Cancel calculation
        </button>
      ) : null}
      <ErrorBox error={act.error} />
    </div>
  );
}

interface TimelineEvent {
  ts: string;
  what: string;
  state?: string;
}

function timeline(calc: Calc, logs: Schemas["LogLineOut"][]): TimelineEvent[] {
  const ev: TimelineEvent[] = [{ ts: calc.created_at, what: "created", state: calc.approved ? "ready" : "pending_approval" }];
  if (calc.submitted_at) ev.push({ ts: calc.submitted_at, what: "submitted to the scheduler", state: "submitted" });
  for (const s of calc.steps) {
    if (s.started_at) ev.push({ ts: s.started_at, what: `step ${s.index} (${s.label}) started`, state: "running" });
    if (s.finished_at) ev.push({ ts: s.finished_at, what: `step ${s.index} (${s.label}) ended: ${s.state}`, state: s.state });
  }
  for (const l of logs) {
    const event = (l.context as { event?: string }).event;
    if (event) ev.push({ ts: l.ts, what: l.message, state: l.level === "error" ? "failed" : undefined });
  }
  if (calc.finished_at) ev.push({ ts: calc.finished_at, what: `ended: ${calc.state}`, state: calc.state });
  return ev.sort((a, b) => new Date(a.ts).getTime() - new Date(b.ts).getTime());
}

function Overview({ calc }: { calc: Calc }) {
  const [open, setOpen] = useState<number | null>(null);
  const events = useCalculationEvents(calc);
  const items = timeline(calc, events.data?.items ?? []);
  const ladder = calc.kind === "transiesta" || calc.analyses.includes("transiesta_iv");
  return (
    <>
    <Card title={ladder ? "Ladder: steps as a DAG" : "Steps as a DAG"} testId="steps-dag">
      <StepDag steps={calc.steps} />
    </Card>
    {ladder ? <IvCurveCard calc={calc} /> : null}
    <div className="grid detail">
      <Card title="Timeline" testId="timeline">
        <ol className="timeline">
          {items.map((e, i) => (
            <li key={i} className={e.state ? `tl-${e.state}` : ""}>
              <time>{fmtDate(e.ts)}</time> {e.what}
            </li>
          ))}
          {!FINAL.has(calc.state) ? (
            <li className="tl-now">
              now: <StateBadge state={calc.state} />
            </li>
          ) : null}
        </ol>
      </Card>
      <Card title={`Steps (${calc.steps.length})`} testId="steps">
        <table>
          <thead>
            <tr>
              <th>step</th>
              <th>label</th>
              <th>state</th>
              <th>scheduler id</th>
              <th>native</th>
              <th>exit</th>
              <th>runs after</th>
              <th>ran for</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {calc.steps.map((s) => (
              <StepRow key={s.id} step={s} all={calc.steps} open={open === s.id} onToggle={() => setOpen(open === s.id ? null : s.id)} />
            ))}
          </tbody>
        </table>
      </Card>
    </div>
    </>
  );
}

function StepRow({ step, all, open, onToggle }: { step: Step; all: Step[]; open: boolean; onToggle: () => void }) {
  const byId = new Map(all.map((s) => [s.id, s]));
  return (
    <>
      <tr data-step={step.index}>
        <td>{step.index}</td>
        <td>{step.label}</td>
        <td>
          <StateBadge state={step.state} />
          {step.state_reason ? <div className="muted small">{step.state_reason}</div> : null}
        </td>
        <td className="mono" data-testid={`job-id-${step.index}`}>
          {step.scheduler_job_id ?? "—"}
          {step.array_size ? <span className="muted"> [{step.array_size}]</span> : null}
          {step.attempt > 1 ? (
            <div className="muted small" data-testid={`attempt-${step.index}`}>
              attempt {step.attempt}
            </div>
          ) : null}
        </td>
        <td>{step.native_state ?? "—"}</td>
        <td>{step.exit_code ?? "—"}</td>
        <td>{(step.parents ?? []).map((p) => `step ${byId.get(p)?.index ?? p}`).join(", ") || "—"}</td>
        <td>{step.started_at ? between(step.started_at, step.finished_at) : "—"}</td>
        <td>
          <button type="button" className="link" onClick={onToggle} data-testid={`step-toggle-${step.index}`}>
            {open ? "hide" : "resources"}
          </button>
        </td>
      </tr>
      {open ? (
        <tr className="step-detail">
          <td colSpan={9}>
            <StepDetail step={step} />
            <Attempts attempts={step.attempts ?? []} testId={`attempts-${step.index}`} />
          </td>
        </tr>
      ) : null}
    </>
  );
}

function StepDetail({ step }: { step: Step }) {
  const live = !FINAL.has(step.state) && !["harvested", "cleaned", "invalid", "finished"].includes(step.state);
  const detail = useStep(step);
  const samples = useStepSamples(step, live);
  const pts = samples.data?.points ?? [];
  const t0 = step.started_at ?? step.submitted_at;
  const xMin = t0 ? new Date(t0).getTime() - 5000 : undefined;
  const xMax = step.finished_at ? new Date(step.finished_at).getTime() + 5000 : Date.now();
  const series = (metric: string, scale = 1) =>
    pts.map((p) => ({ t: new Date(p.ts).getTime(), y: p.values[metric] == null ? null : (p.values[metric] as number) * scale }));
  return (
    <div className="grid two" data-testid={`step-detail-${step.index}`}>
      <div>
        <h3>CPU time</h3>
        <TimeSeriesChart xMin={xMin} xMax={xMax} testId={`step-cpu-${step.index}`} yLabel="CPU seconds" series={[{ label: "cpu time", points: series("cpu_time_s") }]} />
      </div>
      <div>
        <h3>Memory (max RSS)</h3>
        <TimeSeriesChart
          xMin={xMin}
          xMax={xMax}
          testId={`step-mem-${step.index}`}
          yLabel="MiB"
          series={[{ label: "max RSS", points: series("max_rss_kb", 1 / 1024), fill: true }]}
        />
      </div>
      <div className="wide">
        <ErrorBox error={detail.error || samples.error} />
        {detail.data ? (
          <table className="kv">
            <tbody>
              <tr>
                <th>job name</th>
                <td className="mono">{detail.data.job_name}</td>
              </tr>
              <tr>
                <th>work directory</th>
                <td className="mono">{detail.data.workdir ?? "—"}</td>
              </tr>
              <tr>
                <th>template / attempt</th>
                <td>
                  {detail.data.template} / {detail.data.attempt}
                </td>
              </tr>
              <tr>
                <th>parameters</th>
                <td className="mono">{JSON.stringify(detail.data.variant)}</td>
              </tr>
              <tr>
                <th>inherits</th>
                <td className="mono">{(detail.data.inherit ?? []).join(", ") || "—"}</td>
              </tr>
              <tr>
                <th>submitted / started / finished</th>
                <td>
                  {fmtDate(detail.data.submitted_at)} / {fmtDate(detail.data.started_at)} / {fmtDate(detail.data.finished_at)}
                </td>
              </tr>
            </tbody>
          </table>
        ) : null}
        {detail.data?.tasks?.length ? (
          <table>
            <thead>
              <tr>
                <th>task</th>
                <th>label</th>
                <th>state</th>
                <th>attempt</th>
                <th>exit</th>
                <th>parameters</th>
              </tr>
            </thead>
            <tbody>
              {(detail.data.tasks ?? []).map((t) => (
                <tr key={t.task_index}>
                  <td>{t.task_index}</td>
                  <td>{t.label}</td>
                  <td>
                    <StateBadge state={t.state} />
                  </td>
                  <td>{t.attempt ?? 1}</td>
                  <td>{t.exit_code ?? "—"}</td>
                  <td className="mono">{JSON.stringify(t.variant)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        {(detail.data?.tasks ?? []).map((t) => (
          <Attempts
            key={t.task_index}
            attempts={t.attempts ?? []}
            testId={`task-attempts-${t.task_index}`}
            title={`Task ${t.task_index} (${t.label}): attempts`}
          />
        ))}
      </div>
    </div>
  );
}

function Configuration({ calc }: { calc: Calc }) {
  const [shown, setShown] = useState<string | null>(null);
  const file = useInputFile(calc.id, shown);
  const inputs = (calc.configuration.inputs ?? {}) as Record<string, { bytes: number }>;
  return (
    <div className="grid two">
      <Card title="Configuration" testId="configuration">
        <JsonView value={{ ...calc.configuration, inputs: undefined }} />
        <p>
          Analyses: {calc.analyses.length ? calc.analyses.join(", ") : "none"} ·{" "}
          <Link to={`/calculations?cluster_id=${calc.cluster_id}`}>other calculations on {calc.cluster_name}</Link>
        </p>
      </Card>
      <Card title="Input files">
        {Object.keys(inputs).length === 0 ? <p className="muted">No input file.</p> : null}
        <ul className="files">
          {Object.entries(inputs).map(([name, info]) => (
            <li key={name}>
              <button type="button" className="link" onClick={() => setShown(name)}>
                {name}
              </button>{" "}
              <span className="muted">({info.bytes.toLocaleString()} bytes)</span>
            </li>
          ))}
        </ul>
        <ErrorBox error={file.error} />
        {file.data ? (
          <>
            <h3>{file.data.name}</h3>
            <pre className="script">{file.data.text}</pre>
          </>
        ) : null}
      </Card>
    </div>
  );
}

/** The recovery ladder's attempts of a step or of one array task (docs/engine.md), shown
 * once it was retried. */
function Attempts({
  attempts,
  testId,
  title = "Attempts",
}: {
  attempts: Schemas["AttemptOut"][];
  testId: string;
  title?: string;
}) {
  if (attempts.length < 2) return null;
  return (
    <div data-testid={testId}>
      <h3>{title}</h3>
      <table>
        <thead>
          <tr>
            <th>attempt</th>
            <th>scheduler id</th>
            <th>state</th>
            <th>verdict</th>
            <th>changes</th>
            <th>work directory</th>
          </tr>
        </thead>
        <tbody>
          {attempts.map((a) => (
            <tr key={a.attempt}>
              <td>{a.attempt}</td>
              <td className="mono">{a.scheduler_job_id ?? "—"}</td>
              <td>
                <StateBadge state={a.state} />
              </td>
              <td>{a.verdict ?? "—"}</td>
              <td>
                {(a.changes ?? []).map((c) => `${c.key} ${c.old ?? "default"} → ${c.new}`).join(", ") || "—"}
              </td>
              <td className="mono small">{a.workdir ?? "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
