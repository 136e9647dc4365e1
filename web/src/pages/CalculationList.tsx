import { useEffect, useState } from "react";
import { Link, useSearchParams } from "react-router";
import type { Schemas } from "../api/client";
import { useCalculations } from "../api/queries/calculations";
import { useClusters } from "../api/queries/clusters";
import { CalculationsTable, LIST_COLUMNS } from "../components/CalculationsTable";
import { ErrorBox, Loading, Pager } from "../components/ui";
import { useDebounced } from "../lib/useDebounced";

export const CALCULATION_STATES: Schemas["CalculationState"][] = [
  "pending_approval",
  "ready",
  "submitting",
  "submitted",
  "running",
  "completed",
  "failed",
  "cancelled",
  "rejected",
];

const LIMIT = 25;

export function CalculationListPage() {
  const [params, setParams] = useSearchParams();
  const state = params.get("state") ?? "";
  const clusterId = params.get("cluster_id") ?? "";
  const owner = params.get("owner") ?? "all";
  const offset = Number(params.get("offset") ?? 0) || 0;
  const [search, setSearch] = useState(params.get("q") ?? "");
  const q = useDebounced(search, 300);

  const update = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v === null || v === "" || (k === "owner" && v === "all") || (k === "offset" && v === "0")) {
        next.delete(k);
      } else next.set(k, v);
    }
    setParams(next, { replace: true });
  };

  useEffect(() => {
    if ((params.get("q") ?? "") !== q) update({ q, offset: null });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [q]);

  const clusters = useClusters();
  const page = useCalculations(
    {
      state: (state || undefined) as Schemas["CalculationState"] | undefined,
      cluster_id: clusterId ? Number(clusterId) : undefined,
      owner: owner === "me" ? "me" : undefined,
      q: params.get("q") || undefined,
      limit: LIMIT,
      offset,
    },
    { pollMs: 10000 },
  );

  return (
    <div className="page" data-testid="page-calculations">
      <header className="page-head">
        <h1>Calculations</h1>
        <Link className="button" to="/calculations/new" data-testid="new-calculation">
          New calculation
        </Link>
      </header>
      <div className="filters card">
        <input
          type="search"
          placeholder="Search name or description"
          aria-label="search"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
        />
        <select
          aria-label="state"
          value={state}
          onChange={(e) => update({ state: e.target.value, offset: null })}
        >
          <option value="">any state</option>
          {CALCULATION_STATES.map((s) => (
            <option key={s} value={s}>
              {s.replace(/_/g, " ")}
            </option>
          ))}
        </select>
        <select
          aria-label="cluster"
          value={clusterId}
          onChange={(e) => update({ cluster_id: e.target.value, offset: null })}
        >
          <option value="">any cluster</option>
          {clusters.data?.map((c) => (
            <option key={c.id} value={c.id}>
              {c.name}
            </option>
          ))}
        </select>
        <select
          aria-label="owner"
          value={owner}
          onChange={(e) => update({ owner: e.target.value, offset: null })}
        >
          <option value="all">everyone's</option>
          <option value="me">mine</option>
        </select>
      </div>
      <ErrorBox error={page.error} />
      {page.isLoading ? <Loading /> : null}
      {page.data ? (
        <div className="card">
          <CalculationsTable
            rows={page.data.items}
            columns={LIST_COLUMNS}
            empty="No calculation matches."
            testId="calculations-table"
          />
          {page.data.items.length ? (
            <Pager total={page.data.total} limit={LIMIT} offset={offset} onChange={(o) => update({ offset: String(o) })} />
          ) : null}
        </div>
      ) : null}
    </div>
  );
}
