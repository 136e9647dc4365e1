import { withUnit } from "../../lib/accuracy";
import type { Accuracy } from "./types";

/** MAE, RMSE, bias and the number of pairs over every pair. */
export function MetricsSummary({ accuracy }: { accuracy: Accuracy }) {
  const { overall } = accuracy;
  const unit = accuracy.property.unit;
  const items: [string, string, string][] = [
    ["mae", "MAE", withUnit(overall.mae, unit)],
    ["rmse", "RMSE", withUnit(overall.rmse, unit)],
    ["bias", "bias (mean DFT − predicted)", withUnit(overall.bias, unit)],
    ["n", "pairs", String(overall.n)],
  ];
  return (
    <div className="stats" data-testid="accuracy-metrics">
      {items.map(([id, label, value]) => (
        <div className="stat" key={id} data-testid={`accuracy-${id}`}>
          <span className="stat-value">{value}</span>
          <span className="stat-label">{label}</span>
        </div>
      ))}
    </div>
  );
}
