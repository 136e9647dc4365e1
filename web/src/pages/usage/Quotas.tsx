import { useMyQuotas } from "../../api/queries/usage";
import { hours } from "../../lib/usage";

/** The signed-in user's own quotas this month (nothing when none is set). */
export function MyQuotas() {
  const quotas = useMyQuotas();
  const rows = quotas.data ?? [];
  if (rows.length === 0) return null;
  return (
    <div className="card" data-testid="my-quotas">
      <h2>Your quotas this month</h2>
      <ul>
        {rows.map((q) => (
          <li key={q.cluster_id} className={q.hard_reached ? "error" : q.soft_reached ? "attn" : undefined}>
            {q.cluster_name}: {hours(q.used_core_hours)} core-hours used
            {q.soft_core_hours !== null ? `, soft ${hours(q.soft_core_hours)}` : ""}
            {q.hard_core_hours !== null ? `, hard ${hours(q.hard_core_hours)}` : ""}
            {q.hard_reached ? " — new calculations are refused" : ""}
          </li>
        ))}
      </ul>
    </div>
  );
}
