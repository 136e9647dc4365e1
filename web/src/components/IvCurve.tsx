/**
 * The I–V curve of a TranSIESTA ladder: current vs bias from the `transiesta_iv` analysis,
 * failed points as red crosses on the bias axis (listed with their reasons below), pending
 * points in grey, and a "partial" badge while any point lacks a current. The server
 * recomputes the analysis whenever a ladder step ends, so the curve is re-read whenever a
 * step changes state.
 */
import type { Schemas } from "../api/client";
import { useCalculationResults } from "../api/queries/calculations";
import { biasLabel } from "../lib/dag";
import { fmtCurrent, type IvCurve as Curve, ivFromResults, ivSeries, pendingFromSteps } from "../lib/iv";
import { XYChart } from "./Charts";
import { Card, ErrorBox, Loading, StateBadge } from "./ui";

type Calc = Schemas["CalculationDetail"];

export function IvCurveCard({ calc }: { calc: Calc }) {
  const results = useCalculationResults(calc);
  const found = ivFromResults(results.data as { analyses?: Record<string, unknown>[] } | undefined);
  const curve: Curve | null = found?.curve ?? (results.data ? pendingFromSteps(calc.steps) : null);
  return (
    <Card
      title={
        <>
          I–V curve{" "}
          {curve ? (
            curve.partial ? (
              <span className="badge badge-attn" data-testid="iv-partial">
                partial
              </span>
            ) : (
              <span className="badge badge-ok" data-testid="iv-complete">
                complete
              </span>
            )
          ) : null}
        </>
      }
      testId="iv-curve"
    >
      <ErrorBox error={results.error} />
      {!results.data && !results.error ? <Loading /> : null}
      {found && found.status !== "ok" ? (
        <p className="warn" data-testid="iv-status">
          I–V analysis {found.status}
          {found.message ? `: ${found.message}` : ""}
        </p>
      ) : null}
      {results.data && !found ? (
        <p className="muted" data-testid="iv-not-yet">
          No I–V result yet: it is computed as soon as a point's TBtrans step ends.
        </p>
      ) : null}
      {curve ? <CurveView curve={curve} /> : null}
    </Card>
  );
}

function CurveView({ curve }: { curve: Curve }) {
  const counts = `${curve.points.length} point(s) with a current · ${curve.failed.length} failed · ${curve.pending.length} pending`;
  return (
    <div data-testid="iv-view">
      <p className="muted" data-testid="iv-counts">
        {counts}
      </p>
      {curve.points.length || curve.failed.length || curve.pending.length ? (
        <XYChart
          testId="iv-chart"
          series={ivSeries(curve)}
          xLabel="bias (V)"
          yLabel="current"
          yTickFormat={fmtCurrent}
          height={280}
        />
      ) : null}
      {curve.points.length ? (
        <table data-testid="iv-points">
          <thead>
            <tr>
              <th>bias</th>
              <th>current</th>
              <th>current (A)</th>
              <th>TBT.nc vs stdout</th>
              <th>step</th>
            </tr>
          </thead>
          <tbody>
            {curve.points.map((p) => (
              <tr key={p.bias} data-testid="iv-point" data-bias={p.bias} data-current={p.current} data-step-id={p.stepId ?? ""}>
                <td>{biasLabel(p.bias)}</td>
                <td>{fmtCurrent(p.current)}</td>
                <td className="mono">{p.current.toExponential(6)}</td>
                <td>
                  {p.agree === null ? "—" : p.agree ? "agree" : <span className="warn">differ</span>}
                  {p.relativeDifference !== null ? <span className="muted small"> ({p.relativeDifference.toExponential(1)})</span> : null}
                </td>
                <td>{p.label ?? "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {curve.failed.length ? (
        <>
          <h3 className="warn">Failed points (red crosses on the bias axis)</h3>
          <table className="iv-failed" data-testid="iv-failed">
            <thead>
              <tr>
                <th>bias</th>
                <th>step</th>
                <th>state</th>
                <th>reason</th>
              </tr>
            </thead>
            <tbody>
              {curve.failed.map((f) => (
                <tr key={f.bias} data-testid="iv-failed-point" data-bias={f.bias} data-step-id={f.stepId ?? ""}>
                  <td>{biasLabel(f.bias)}</td>
                  <td>{f.label ?? "—"}</td>
                  <td>{f.state ? <StateBadge state={f.state} /> : "—"}</td>
                  <td className="reason">{f.reason}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
      {curve.pending.length ? (
        <p className="muted" data-testid="iv-pending">
          Pending:{" "}
          {curve.pending.map((p, i) => (
            <span key={p.bias} data-testid="iv-pending-point" data-bias={p.bias}>
              {i ? ", " : ""}
              {biasLabel(p.bias)} ({p.state.replace(/_/g, " ")})
            </span>
          ))}
        </p>
      ) : null}
    </div>
  );
}
