import type { Schemas } from "../../api/client";
import { hours, percent } from "../../lib/usage";

type Row = Schemas["UsageRowOut"];

const HEADINGS: Record<string, string> = {
  user: "User",
  project: "Project",
  cluster: "Cluster",
  calculation: "Calculation",
};

/** Core-hours per user, project, cluster or calculation (one row each). */
export function UsageTable({ rows, groupBy }: { rows: Row[]; groupBy: string }) {
  if (rows.length === 0) return <p className="note" data-testid="usage-empty">No usage in this range.</p>;
  return (
    <table className="table" data-testid="usage-table">
      <thead>
        <tr>
          <th>{HEADINGS[groupBy] ?? groupBy}</th>
          <th className="num">core-hours</th>
          <th className="num">CPU hours</th>
          <th className="num">CPU efficiency</th>
          <th className="num">steps</th>
          <th className="num">calculations</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.key} data-testid="usage-row">
            <td>{r.label}</td>
            <td className="num">{hours(r.core_hours)}</td>
            <td className="num">{hours(r.cpu_hours)}</td>
            <td className="num">{percent(r.cpu_efficiency)}</td>
            <td className="num">{r.steps}</td>
            <td className="num">{r.calculations}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
