/**
 * The one calculations table: every page that lists calculations (the list, the dashboard,
 * a molecule's page, the analyses section) shows the same rows and picks its columns.
 */
import type { ReactNode } from "react";
import { Link } from "react-router";
import type { Schemas } from "../api/client";
import { between, fmtDate } from "../lib/format";
import { Empty, Loading, StateBadge } from "./ui";

type Calc = Schemas["CalculationSummary"];

export type Column =
  | "id"
  | "name"
  | "state"
  | "kind"
  | "code"
  | "cluster"
  | "cluster_queue"
  | "steps"
  | "owner"
  | "priority"
  | "created"
  | "finished"
  | "running_for"
  | "reason"
  | "report";

const COLUMNS: Record<Column, { title: string; cell: (c: Calc) => ReactNode; className?: string }> = {
  id: { title: "#", cell: (c) => c.id },
  name: { title: "name", cell: () => null }, // the link, drawn by the table (its target varies)
  state: { title: "state", cell: (c) => <StateBadge state={c.state} /> },
  kind: { title: "kind", cell: (c) => c.kind },
  code: { title: "code", cell: (c) => c.code },
  cluster: { title: "cluster", cell: (c) => c.cluster_name },
  cluster_queue: { title: "cluster / queue", cell: (c) => `${c.cluster_name} / ${c.logical_queue}` },
  steps: { title: "steps", cell: (c) => c.step_count },
  owner: { title: "owner", cell: (c) => c.owner_email },
  priority: { title: "priority", cell: (c) => c.priority },
  created: { title: "created", cell: (c) => fmtDate(c.created_at) },
  finished: { title: "finished", cell: (c) => fmtDate(c.finished_at) },
  running_for: { title: "running for", cell: (c) => between(c.submitted_at, null) },
  reason: { title: "reason", cell: (c) => c.state_reason || "—", className: "reason" },
  report: { title: "", cell: (c) => <Link to={`/analyses/${c.id}`}>report</Link> },
};

export const LIST_COLUMNS: Column[] = [
  "id",
  "name",
  "state",
  "kind",
  "code",
  "cluster_queue",
  "steps",
  "owner",
  "priority",
  "created",
];

export function CalculationsTable({
  rows,
  columns,
  empty,
  linkTo = (c) => `/calculations/${c.id}`,
  testId,
}: {
  /** undefined while loading */
  rows: readonly Calc[] | undefined;
  columns: readonly Column[];
  empty: string;
  /** where a calculation's name leads (its page by default) */
  linkTo?: (c: Calc) => string;
  testId?: string;
}) {
  if (!rows) return <Loading />;
  if (!rows.length) return <Empty>{empty}</Empty>;
  return (
    <table data-testid={testId}>
      <thead>
        <tr>
          {columns.map((col) => (
            <th key={col}>{COLUMNS[col].title}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((c) => (
          <tr key={c.id} data-calculation={c.id}>
            {columns.map((col) => (
              <td key={col} className={COLUMNS[col].className}>
                {col === "name" ? <Link to={linkTo(c)}>{c.name}</Link> : COLUMNS[col].cell(c)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}
