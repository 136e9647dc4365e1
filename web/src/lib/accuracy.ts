/**
 * Pure helpers of the model accuracy page (`/models/:id/accuracy`): the parity plot's
 * points and its y = x line, and the query the page's filters stand for.
 */

export interface ParityPair {
  predicted: number;
  dft: number;
}

/** The ends of the y = x line across every point, a little wider: the plot's range on both
 * axes (so no point sits on an edge). */
export function parityLine(pairs: ParityPair[]): { x: number; y: number }[] {
  if (pairs.length === 0) return [];
  const values = pairs.flatMap((p) => [p.predicted, p.dft]);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const pad = hi > lo ? (hi - lo) * 0.05 : Math.max(Math.abs(hi) * 0.05, 1);
  return [
    { x: lo - pad, y: lo - pad },
    { x: hi + pad, y: hi + pad },
  ];
}

/** The points of the parity plot: x = DFT, y = predicted. */
export function parityPoints(pairs: ParityPair[]): { x: number; y: number }[] {
  return pairs.map((p) => ({ x: p.dft, y: p.predicted }));
}

export type Period = "day" | "week" | "month";

export interface AccuracyFilters {
  property: string;
  code: string; // "" = every code with a DFT value of the property
  period: Period;
}

/** The query of `GET /ml/models/{id}/accuracy` for the page's filters (empty code left out). */
export function accuracyQuery(f: AccuracyFilters): { property: string; period: Period; code?: string } {
  return f.code ? { property: f.property, period: f.period, code: f.code } : { property: f.property, period: f.period };
}

/** A value with its unit, or a dash when there is none. */
export function withUnit(value: number | null | undefined, unit: string, digits = 4): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  const text = Number.parseFloat(value.toPrecision(digits)).toString();
  return unit ? `${text} ${unit}` : text;
}
