/** Next to Approve/Reject: what the calculation may cost and what its owner used this month. */
import { useApprovalContext } from "../api/queries/usage";
import { hours } from "../lib/usage";

export function ApprovalContext({ calcId }: { calcId: number }) {
  const ctx = useApprovalContext(calcId, { enabled: true });
  if (!ctx.data) return null;
  const c = ctx.data;
  return (
    <div className="note" data-testid="approval-context">
      <p>
        Estimate: <strong data-testid="approval-estimate">{hours(c.estimated_core_hours)}</strong> core-hours
        {c.walltime_assumed ? " (a step has no walltime: one hour assumed)" : ""}.
      </p>
      <p>
        {c.owner_email} used <strong data-testid="approval-owner-cluster">{hours(c.owner_month_core_hours_cluster)}</strong>{" "}
        core-hours on {c.cluster_name} in {c.month} (
        <span data-testid="approval-owner-total">{hours(c.owner_month_core_hours_total)}</span> on all clusters)
        {c.hard_core_hours !== null ? `; hard quota ${hours(c.hard_core_hours)}` : ""}
        {c.soft_core_hours !== null ? `; soft quota ${hours(c.soft_core_hours)}` : ""}.
      </p>
    </div>
  );
}
