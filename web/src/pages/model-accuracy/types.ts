import type { Schemas } from "../../api/client";

export type Accuracy = Schemas["ModelAccuracy"];
export type Pair = Schemas["PairOut"];
export type PeriodMetrics = Schemas["PeriodMetricsOut"];

/** A pair's identity on the page (a prediction may give several instances). */
export function pairKey(p: Pair): string {
  return `${p.prediction_id}:${p.step_index}:${p.task_index}`;
}
