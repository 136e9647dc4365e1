/** A calculation's results: central analysis outputs (graphs, tables) and per-step data. */
import { useState } from "react";
import type { PathParamsOf, Schemas } from "../api/client";
import { useApi } from "../api/context";
import { useCalculationPredictions, useCalculationResults } from "../api/queries/calculations";
import { fmtNumber } from "../lib/format";
import {
  type AnalysisOutputDoc,
  groupGraphs,
  type ScalarTable,
  stepTables,
  tableCsv,
  trendRows,
} from "../lib/report";
import { XYChart } from "./Charts";
import { Card, Empty, ErrorBox, Loading, StateBadge } from "./ui";

type Calc = Schemas["CalculationDetail"];

function saveBlob(blob: Blob, filename: string) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

type Format = PathParamsOf<"/calculations/{calc_id}/report.{fmt}", "get">["fmt"];
// Every `fmt` the route has (tsc flags one added or removed), in the order of the buttons.
const LABELS: Record<Format, string> = { html: "HTML", pdf: "PDF", csv: "CSV (zip)", json: "JSON" };
const FORMATS = Object.keys(LABELS) as Format[];

/**
 * The server's report in each format. A plain link would not carry the access token (it
 * lives in memory, not in a cookie), so the file is fetched with the Authorization header and
 * saved through a blob URL.
 */
export function ReportDownloads({ calc }: { calc: Calc }) {
  const api = useApi();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<Format | null>(null);
  const get = async (fmt: Format) => {
    setBusy(fmt);
    setError(null);
    try {
      const { blob, filename } = await api.download("/calculations/{calc_id}/report.{fmt}", {
        path: { calc_id: calc.id, fmt },
      });
      saveBlob(blob, filename ?? `calculation-${calc.id}-report.${fmt}`);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  return (
    <div className="row downloads" data-testid="report-downloads">
      {FORMATS.map((fmt) => (
        <button
          key={fmt}
          type="button"
          className="secondary"
          disabled={busy !== null}
          data-testid={`download-${fmt}`}
          title={`the report as ${LABELS[fmt]}, downloaded with your access token`}
          onClick={() => void get(fmt)}
        >
          {busy === fmt ? "Preparing…" : `Download ${LABELS[fmt]}`}
        </button>
      ))}
      <ErrorBox error={error} />
    </div>
  );
}

export function ReportView({ calc }: { calc: Calc }) {
  const results = useCalculationResults(calc);
  if (results.error) return <ErrorBox error={results.error} />;
  if (!results.data) return <Loading />;
  const labels = Object.fromEntries(calc.steps.map((s) => [s.index, s.label]));
  const tables = stepTables(results.data.extracted, labels);
  const analyses = results.data.analyses;
  return (
    <div className="report" data-testid="report">
      <Card
        title="Report"
        actions={
          <button
            type="button"
            className="secondary"
            onClick={() =>
              saveBlob(
                new Blob([JSON.stringify(results.data, null, 2)], { type: "application/json" }),
                `calculation-${calc.id}-results.json`,
              )
            }
            title="the results as shown on this page (analyses and per-step data)"
          >
            Results JSON
          </button>
        }
      >
        <ReportDownloads calc={calc} />
        {calc.analyses.length ? (
          <p>
            Selected analyses: {calc.analyses.map((a) => <code key={a}>{a}</code>).reduce<React.ReactNode[]>((acc, el, i) => (i ? [...acc, ", ", el] : [el]), [])}
          </p>
        ) : (
          <p className="muted">No analysis was selected for this calculation.</p>
        )}
      </Card>
      {analyses.map((a) => (
        <AnalysisOutputCard key={a.analysis} result={a} />
      ))}
      {analyses.length === 0 && calc.analyses.length > 0 ? (
        <p className="muted" data-testid="no-central-analyses">
          {calc.state === "completed"
            ? "The central analysis results are not available; the data extracted on the cluster is below."
            : "Analysis results appear when the calculation has completed; data extracted so far is below."}
        </p>
      ) : null}
      {tables.length === 0 ? <Empty>No data has come back from the cluster yet.</Empty> : <StepData tables={tables} />}
      <Predictions calc={calc} />
    </div>
  );
}

/** ML predictions made for this calculation, next to what really happened. */
function Predictions({ calc }: { calc: Calc }) {
  const data = useCalculationPredictions(calc);
  if (!data.data || data.data.predictions.length === 0) return null;
  return (
    <Card title="ML predictions vs outcome" testId="predictions">
      <table>
        <thead>
          <tr>
            <th>model</th>
            <th>made</th>
            <th>compared</th>
          </tr>
        </thead>
        <tbody>
          {data.data.predictions.map((p) => (
            <tr key={p.id}>
              <td>
                {p.model_name} {p.model_version}
              </td>
              <td>{new Date(p.created_at).toLocaleString()}</td>
              <td>
                {p.comparison.map((c, i) => (
                  <div key={i}>
                    {Object.entries(c).map(([k, v]) => (
                      <span key={k} className="small">
                        {k}: predicted {fmtNumber(v.predicted)} · actual {fmtNumber(v.actual)}
                        {v.error != null ? ` · error ${fmtNumber(v.error)}` : ""}
                        {v.agrees != null ? (v.agrees ? " ✓" : " ✗") : ""}{" "}
                      </span>
                    ))}
                  </div>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Card>
  );
}

function AnalysisOutputCard({ result }: { result: Schemas["AnalysisResultOut"] }) {
  const doc = result.data as AnalysisOutputDoc;
  const graphs = groupGraphs(doc.series ?? []);
  return (
    <Card
      title={
        <>
          {doc.title || result.analysis} <StateBadge state={result.status === "ok" ? "completed" : result.status} />
        </>
      }
      testId={`analysis-${result.analysis}`}
    >
      {result.message ? <p className="warn">{result.message}</p> : null}
      {doc.error ? <p className="warn">{doc.error}</p> : null}
      {doc.summary && Object.keys(doc.summary).length ? (
        <table className="kv">
          <tbody>
            {Object.entries(doc.summary).map(([k, v]) => (
              <tr key={k}>
                <th>{k}</th>
                <td>{fmtNumber(v, 6)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <div className="grid two">
        {graphs.map((g) => (
          <div key={g.key}>
            <h3>{g.title}</h3>
            <XYChart
              testId={`graph-${result.analysis}-${g.key}`}
              series={g.series}
              xLabel={g.xLabel}
              yLabel={g.yLabel}
              yScale={g.yScale}
              xTicks={g.xTicks}
            />
          </div>
        ))}
      </div>
      {(doc.tables ?? []).map((t) => (
        <details key={t.name} open={(doc.tables ?? []).length === 1}>
          <summary>
            {t.title || t.name} ({t.rows.length} rows)
          </summary>
          <div className="scroll">
            <table>
              <thead>
                <tr>
                  {t.columns.map((c) => (
                    <th key={c.name}>
                      {c.name}
                      {c.unit ? ` (${c.unit})` : ""}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {t.rows.slice(0, 500).map((row, i) => (
                  <tr key={i}>
                    {row.map((v, j) => (
                      <td key={j}>{fmtNumber(v, 6)}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </details>
      ))}
      {(doc.notes ?? []).map((n, i) => (
        <p key={i} className="muted">
          {n}
        </p>
      ))}
    </Card>
  );
}

function kindTitle(kind: string): string {
  if (kind.startsWith("analysis:")) return `extracted: ${kind.slice("analysis:".length)}`;
  if (kind === "validation") return "convergence check (hpcgate validate)";
  if (kind === "accounting") return "scheduler accounting";
  return kind;
}

/** Everything that came back from the cluster, one result kind at a time, steps side by side. */
function StepData({ tables }: { tables: ScalarTable[] }) {
  const [kind, setKind] = useState(tables[0].kind);
  const table = tables.find((t) => t.kind === kind) ?? tables[0];
  return (
    <Card
      title="Per-step data from the cluster"
      testId="step-data"
      actions={
        <>
          <select aria-label="result kind" value={table.kind} onChange={(e) => setKind(e.target.value)}>
            {tables.map((t) => (
              <option key={t.kind} value={t.kind}>
                {kindTitle(t.kind)}
              </option>
            ))}
          </select>
          <button
            type="button"
            className="secondary"
            onClick={() =>
              saveBlob(new Blob([tableCsv(table)], { type: "text/csv" }), `${table.kind.replace(":", "-")}.csv`)
            }
          >
            CSV
          </button>
        </>
      }
    >
      <StepTable key={table.kind} table={table} />
    </Card>
  );
}

function StepTable({ table }: { table: ScalarTable }) {
  const trends = trendRows(table);
  const [field, setField] = useState<string>("");
  const chosen = trends.find((t) => t.field === field) ?? trends[0];
  return (
    <div data-testid={`results-${table.kind.replace(":", "-")}`}>
      <div className="scroll">
        <table className="steps-table">
          <thead>
            <tr>
              <th>field</th>
              {table.columns.map((c) => (
                <th key={c.key}>{c.label}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {table.rows.slice(0, 80).map((r) => (
              <tr key={r.field}>
                <th>{r.field}</th>
                {r.values.map((v, i) => (
                  <td key={i}>{fmtNumber(v, 6)}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {chosen ? (
        <div className="trend">
          <label className="inline">
            Trend across steps:{" "}
            <select value={chosen.field} onChange={(e) => setField(e.target.value)}>
              {trends.map((t) => (
                <option key={t.field} value={t.field}>
                  {t.field}
                </option>
              ))}
            </select>
          </label>
          <XYChart
            height={200}
            series={[{ label: chosen.field, x: chosen.values.map((_, i) => i), y: chosen.values, kind: "linepoints" }]}
            xLabel="step"
            yLabel={chosen.field}
            xTicks={{ values: table.columns.map((_, i) => i), labels: table.columns.map((c) => c.label) }}
          />
        </div>
      ) : null}
    </div>
  );
}
