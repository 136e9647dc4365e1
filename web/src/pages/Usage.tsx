/** Core-hour usage over a range of months: a table by user, project, cluster or calculation
 * and its CSV. Users see their own usage; moderators and admins everyone's (the server
 * decides, `usage.read`). */
import { useState } from "react";
import { useApi } from "../api/context";
import { type UsageQuery, useUsageReport } from "../api/queries/usage";
import { ErrorBox } from "../components/ui";
import { hours, monthOf, monthsBefore, validRange } from "../lib/usage";
import { MyQuotas } from "./usage/Quotas";
import { UsageTable } from "./usage/UsageTable";

type GroupBy = NonNullable<UsageQuery["group_by"]>;
const GROUPS: GroupBy[] = ["user", "project", "cluster", "calculation"];

export function UsagePage() {
  const thisMonth = monthOf(new Date());
  const [from, setFrom] = useState(monthsBefore(thisMonth, 2));
  const [to, setTo] = useState(thisMonth);
  const [groupBy, setGroupBy] = useState<GroupBy>("user");
  const valid = validRange(from, to);
  const query: UsageQuery = valid ? { from, to, group_by: groupBy } : { group_by: groupBy };
  const report = useUsageReport(query);
  return (
    <div className="page" data-testid="usage-page">
      <h1>Usage</h1>
      <MyQuotas />
      <div className="card">
        <div className="row">
          <label className="inline">
            from
            <input type="month" aria-label="from month" data-testid="usage-from" value={from}
              onChange={(e) => setFrom(e.target.value)} />
          </label>
          <label className="inline">
            to
            <input type="month" aria-label="to month" data-testid="usage-to" value={to}
              onChange={(e) => setTo(e.target.value)} />
          </label>
          <label className="inline">
            by
            <select aria-label="group by" data-testid="usage-group" value={groupBy}
              onChange={(e) => setGroupBy(e.target.value as GroupBy)}>
              {GROUPS.map((g) => (
                <option key={g} value={g}>{g}</option>
              ))}
            </select>
          </label>
          <CsvButton query={query} disabled={!valid} />
        </div>
        {!valid ? <p className="error">Pick a range whose first month is not after its last.</p> : null}
        {report.error ? <ErrorBox error={report.error} /> : null}
        {report.data ? (
          <>
            <p className="note" data-testid="usage-scope">
              {report.data.all_users ? "Everyone's usage" : "Your usage"}, {report.data.from_month} to{" "}
              {report.data.to_month}: {hours(report.data.total_core_hours)} core-hours
            </p>
            <UsageTable rows={report.data.rows} groupBy={report.data.group_by} />
          </>
        ) : null}
      </div>
    </div>
  );
}

function CsvButton({ query, disabled }: { query: UsageQuery; disabled: boolean }) {
  const api = useApi();
  const [error, setError] = useState<unknown>(null);
  const download = async () => {
    setError(null);
    try {
      const { blob, filename } = await api.download("/usage", { query: { ...query, format: "csv" } });
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = filename ?? "usage.csv";
      a.click();
      URL.revokeObjectURL(url);
    } catch (e) {
      setError(e);
    }
  };
  return (
    <>
      <button type="button" className="secondary" data-testid="usage-csv" disabled={disabled}
        onClick={() => void download()}>
        Download CSV
      </button>
      {error ? <ErrorBox error={error} /> : null}
    </>
  );
}
