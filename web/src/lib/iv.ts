/**
 * The I–V curve of a TranSIESTA ladder, from the `transiesta_iv` analysis result.
 *
 * `GET /calculations/{id}/results` lists the analyses; the I–V one carries, in its output's
 * `data` (see `analyses/siesta/transiesta_iv.py` `compute()` and docs/siesta.md):
 * `{partial, points: [{bias_v, current_a, …}], failed: [{bias_v, reason, label, state, …}],
 * pending: [{bias_v, state}], tolerance}`. This module turns that into what the page draws,
 * dropping malformed entries rather than trusting the document. Before the analysis has
 * run at all, `pendingFromSteps` lists the ladder's points from its steps instead.
 */
import type { XYSeries } from "../components/Charts";
import type { DagStep } from "./dag";

export const IV_ANALYSIS = "transiesta_iv";

export interface IvPoint {
  bias: number;
  current: number;
  currentStdout: number | null;
  relativeDifference: number | null;
  agree: boolean | null;
  conductanceG0: number | null;
  label: string | null;
  stepId: number | null;
}

export interface IvFailed {
  bias: number;
  reason: string;
  label: string | null;
  state: string | null;
  stepId: number | null;
}

export interface IvPending {
  bias: number;
  state: string;
}

export interface IvCurve {
  partial: boolean;
  points: IvPoint[];
  failed: IvFailed[];
  pending: IvPending[];
  tolerance: number | null;
}

type Loose = Record<string, unknown>;

function num(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

function list(v: unknown): Loose[] {
  return Array.isArray(v) ? v.filter((x): x is Loose => !!x && typeof x === "object" && !Array.isArray(x)) : [];
}

const byBias = <T extends { bias: number }>(a: T, b: T) => a.bias - b.bias;

/** The analysis' `data` document -> a curve; null when it is not one. */
export function ivFromDoc(doc: unknown): IvCurve | null {
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) return null;
  const d = doc as Loose;
  if (!Array.isArray(d.points) && !Array.isArray(d.failed) && !Array.isArray(d.pending)) return null;
  const points: IvPoint[] = [];
  for (const p of list(d.points)) {
    const bias = num(p.bias_v);
    const current = num(p.current_a);
    if (bias === null || current === null) continue;
    points.push({
      bias,
      current,
      currentStdout: num(p.current_stdout_a),
      relativeDifference: num(p.relative_difference),
      agree: typeof p.agree === "boolean" ? p.agree : null,
      conductanceG0: num(p.conductance_g0),
      label: str(p.label),
      stepId: num(p.step_id),
    });
  }
  const failed: IvFailed[] = [];
  for (const f of list(d.failed)) {
    const bias = num(f.bias_v);
    if (bias === null) continue;
    failed.push({
      bias,
      reason: str(f.reason) ?? "no current",
      label: str(f.label),
      state: str(f.state),
      stepId: num(f.step_id),
    });
  }
  const pending: IvPending[] = [];
  for (const p of list(d.pending)) {
    const bias = num(p.bias_v);
    if (bias !== null) pending.push({ bias, state: str(p.state) ?? "pending" });
  }
  return {
    // the server's flag, but never "complete" while a point is missing
    partial: d.partial === true || failed.length > 0 || pending.length > 0,
    points: points.sort(byBias),
    failed: failed.sort(byBias),
    pending: pending.sort(byBias),
    tolerance: num(d.tolerance),
  };
}

export interface IvResult {
  status: string;
  message: string | null;
  curve: IvCurve | null;
}

/** The I–V analysis out of a results response (`analyses[].data.data`), if it is there. */
export function ivFromResults(results: { analyses?: readonly Loose[] } | null | undefined): IvResult | null {
  const entry = (results?.analyses ?? []).find((a) => a && a.analysis === IV_ANALYSIS);
  if (!entry) return null;
  const output = entry.data && typeof entry.data === "object" ? (entry.data as Loose) : {};
  return {
    status: str(entry.status) ?? "unknown",
    message: str(entry.message) ?? str(output.error),
    curve: ivFromDoc(output.data),
  };
}

/** Before any result: every bias point of the ladder, with its device step's state. */
export function pendingFromSteps(steps: readonly DagStep[]): IvCurve {
  const seen = new Map<number, string>();
  for (const s of steps) {
    const bias = num(s.ladder?.bias_v);
    if (bias === null || s.ladder?.role !== "device") continue;
    seen.set(bias, s.state);
  }
  const pending = [...seen].map(([bias, state]) => ({ bias, state })).sort(byBias);
  return { partial: pending.length > 0, points: [], failed: [], pending, tolerance: null };
}

/** Points of the curve, failed points (red crosses on the bias axis), pending ones (grey). */
export function ivSeries(curve: IvCurve): XYSeries[] {
  const out: XYSeries[] = [
    {
      label: "I(V)",
      x: curve.points.map((p) => p.bias),
      y: curve.points.map((p) => p.current),
      kind: "linepoints",
    },
  ];
  if (curve.failed.length) {
    out.push({
      label: "failed (no current)",
      x: curve.failed.map((f) => f.bias),
      y: curve.failed.map(() => 0),
      kind: "scatter",
      color: "#dc2626",
      pointStyle: "crossRot",
      pointRadius: 7,
    });
  }
  if (curve.pending.length) {
    out.push({
      label: "pending",
      x: curve.pending.map((p) => p.bias),
      y: curve.pending.map(() => 0),
      kind: "scatter",
      color: "#9ca3af",
      pointStyle: "circle",
      pointRadius: 5,
      hollow: true,
    });
  }
  return out;
}

/** A current as the page prints it: 3 significant digits with an SI prefix (`6.49 µA`). */
export function fmtCurrent(amps: number): string {
  if (amps === 0) return "0 A";
  const prefixes: [number, string][] = [
    [1, ""],
    [1e-3, "m"],
    [1e-6, "µ"],
    [1e-9, "n"],
    [1e-12, "p"],
    [1e-15, "f"],
  ];
  const abs = Math.abs(amps);
  const [scale, prefix] = prefixes.find(([s]) => abs >= s) ?? [1e-15, "f"];
  return `${Number((amps / scale).toPrecision(3))} ${prefix}A`;
}
