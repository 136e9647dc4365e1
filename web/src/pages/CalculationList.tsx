import { useEffect, useState } from "react";
import { Link, useSearchParams } from "react-router";
import type { Schemas } from "../api/client";
import { useApi } from "../api/context";
import { useDebounced, useQuery } from "../api/hooks";
import { Empty, ErrorBox, Loading, Pager, StateBadge } from "../components/ui";
import { fmtDate } from "../lib/format";

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
  const api = useApi();
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

  const clusters = useQuery((signal) => api.get("/clusters", { signal }), []);
  const page = useQuery(
    (signal) =>
      api.get("/calculations", {
        query: {
          state: (state || undefined) as Schemas["CalculationState"] | undefined,
          cluster_id: clusterId ? Number(clusterId) : undefined,
          owner: owner === "me" ? "me" : undefined,
          q: params.get("q") || undefined,
          limit: LIMIT,
          offset,
        },
        signal,
      }),
    [state, clusterId, owner, params.get("q"), offset],
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
      {page.loading && !page.data ? <Loading /> : null}
      {page.data ? (
        page.data.items.length === 0 ? (
          <Empty>No calculation matches.</Empty>
        ) : (
          <div className="card">
            <table data-testid="calculations-table">
              <thead>
                <tr>
                  <th>#</th>
                  <th>name</th>
                  <th>state</th>
                  <th>kind</th>
                  <th>code</th>
                  <th>cluster / queue</th>
                  <th>steps</th>
                  <th>owner</th>
                  <th>priority</th>
                  <th>created</th>
                </tr>
              </thead>
              <tbody>
                {page.data.items.map((c) => (
                  <tr key={c.id}>
                    <td>{c.id}</td>
                    <td>
                      <Link to={`/calculations/${c.id}`}>{c.name}</Link>
                    </td>
                    <td>
                      <StateBadge state={c.state} />
                    </td>
                    <td>{c.kind}</td>
                    <td>{c.code}</td>
                    <td>
                      {c.cluster_name} / {c.logical_queue}
                    </td>
                    <td>{c.step_count}</td>
                    <td>{c.owner_email}</td>
                    <td>{c.priority}</td>
                    <td>{fmtDate(c.created_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager
              total={page.data.total}
              limit={LIMIT}
              offset={offset}
              onChange={(o) => update({ offset: String(o) })}
            />
          </div>
        )
      ) : null}
    </div>
  );
}
