import { useState } from "react";
import { Link } from "react-router";
import type { Schemas } from "../api/client";
import { usePermissions } from "../api/permissions";
import { useCalculations } from "../api/queries/calculations";
import { useClusters, useHeartbeats } from "../api/queries/clusters";
import { CalculationsTable } from "../components/CalculationsTable";
import { TimeSeriesChart } from "../components/Charts";
import { Card, Empty, ErrorBox, Loading, StateBadge } from "../components/ui";
import { ago, fmtNumber } from "../lib/format";

type Cluster = Schemas["ClusterOut"];
type Series = Schemas["SeriesOut"];

const WINDOWS = { "1 h": 1, "24 h": 24, "7 d": 24 * 7 } as const;
type WindowName = keyof typeof WINDOWS;

export function DashboardPage() {
  const can = usePermissions();
  const approver = can.may("calculation.approve");
  const [win, setWin] = useState<WindowName>("1 h");
  const clusters = useClusters({ pollMs: 15000 });
  const running = useCalculations({ state: "running", limit: 10 }, { pollMs: 10000 });
  const queued = useCalculations({ state: "submitted", limit: 1 }, { pollMs: 10000 });
  const failed = useCalculations({ state: "failed", limit: 8 }, { pollMs: 15000 });
  const pending = useCalculations({ state: "pending_approval", limit: 5 }, { pollMs: 15000, enabled: approver });

  return (
    <div className="page" data-testid="page-dashboard">
      <header className="page-head">
        <h1>Dashboard</h1>
        <div className="row">
          <span className="muted">window</span>
          {(Object.keys(WINDOWS) as WindowName[]).map((w) => (
            <button
              key={w}
              type="button"
              className={w === win ? "" : "secondary"}
              onClick={() => setWin(w)}
            >
              {w}
            </button>
          ))}
          <Link className="button" to="/calculations/new">
            New calculation
          </Link>
        </div>
      </header>

      <div className="stats">
        <Stat label="running" value={running.data?.total} to="/calculations?state=running" />
        <Stat label="submitted" value={queued.data?.total} to="/calculations?state=submitted" />
        <Stat label="failed" value={failed.data?.total} to="/calculations?state=failed" />
        {approver ? (
          <Stat
            label="awaiting approval"
            value={pending.data?.total}
            to="/calculations?state=pending_approval"
          />
        ) : null}
        <Stat
          label="clusters online"
          value={
            clusters.data
              ? `${clusters.data.filter((c) => c.online).length} / ${clusters.data.length}`
              : undefined
          }
          to="/clusters"
        />
      </div>

      <h2 className="section-title">Clusters</h2>
      <ErrorBox error={clusters.error} />
      {clusters.isLoading ? <Loading /> : null}
      {clusters.data && clusters.data.length === 0 ? (
        <Empty>No cluster yet. An admin adds one under Clusters.</Empty>
      ) : null}
      <div className="grid">
        {clusters.data?.map((c) => (
          <ClusterCard key={c.id} cluster={c} hours={WINDOWS[win]} />
        ))}
      </div>

      <div className="grid two">
        <Card title="Running calculations" testId="running-calculations">
          <ErrorBox error={running.error} />
          <CalculationsTable
            rows={running.data?.items}
            columns={["id", "name", "cluster", "running_for", "owner"]}
            empty="Nothing is running."
          />
        </Card>
        <Card title="Recent failures" testId="recent-failures">
          <ErrorBox error={failed.error} />
          <CalculationsTable
            rows={failed.data?.items}
            columns={["id", "name", "cluster", "reason", "finished"]}
            empty="No failures."
          />
        </Card>
      </div>
    </div>
  );
}

function Stat({ label, value, to }: { label: string; value: number | string | undefined; to: string }) {
  return (
    <Link to={to} className="stat" data-testid={`stat-${label.replace(/\s+/g, "-")}`}>
      <span className="stat-value">{value ?? "…"}</span>
      <span className="stat-label">{label}</span>
    </Link>
  );
}

export function seriesOf(data: Series | undefined, metric: string, scale = 1) {
  return (data?.points ?? []).map((p) => {
    const v = p.values[metric];
    return { t: new Date(p.ts).getTime(), y: v == null ? null : v * scale };
  });
}

function ClusterCard({ cluster, hours }: { cluster: Cluster; hours: number }) {
  const beats = useHeartbeats(cluster.id, hours);
  const series = beats.data?.series;
  const until = beats.data?.until ?? Date.now();
  const since = until - hours * 3600_000;
  // The newest bucket is an average over a few heartbeats: counts are shown rounded.
  const lastValues = series?.points.at(-1)?.values ?? {};
  const last = Object.fromEntries(
    Object.entries(lastValues).map(([k, v]) => [k, v == null ? null : k === "cpu_load" ? v : Math.round(v)]),
  );
  const memUsed = (series?.points ?? []).map((p) => {
    const total = p.values.memory_total_mb;
    const free = p.values.memory_free_mb;
    return {
      t: new Date(p.ts).getTime(),
      y: total == null || free == null ? null : (total - free) / 1024,
    };
  });
  const state = !cluster.enabled ? "maintenance" : cluster.online ? "online" : "offline";
  return (
    <Card
      className="cluster-card"
      testId={`cluster-card-${cluster.name}`}
      title={
        <>
          {cluster.name} <StateBadge state={state} />
        </>
      }
      actions={<span className="muted">heartbeat {ago(cluster.last_heartbeat_at)}</span>}
    >
      <div className="kv-row">
        <span>
          <b>{fmtNumber(last.queue_depth ?? null)}</b> queued
        </span>
        <span>
          <b>{fmtNumber(last.running_jobs ?? null)}</b> running jobs
        </span>
        <span>
          <b>
            {fmtNumber(last.cpus_allocated ?? null)} / {fmtNumber(last.cpus_total ?? null)}
          </b>{" "}
          CPUs allocated
        </span>
        <span className="muted">
          {cluster.scheduler} · {cluster.access_mode}
        </span>
      </div>
      <ErrorBox error={beats.error} />
      <div className="grid three compact">
        <div>
          <h3>CPU</h3>
          <TimeSeriesChart
            xMin={since}
            xMax={until}
            testId={`cpu-chart-${cluster.name}`}
            yLabel="CPUs"
            series={[
              { label: "load", points: seriesOf(series, "cpu_load") },
              { label: "allocated", points: seriesOf(series, "cpus_allocated") },
              { label: "total", points: seriesOf(series, "cpus_total"), color: "#9ca3af" },
            ]}
          />
        </div>
        <div>
          <h3>Memory</h3>
          <TimeSeriesChart
            xMin={since}
            xMax={until}
            testId={`memory-chart-${cluster.name}`}
            yLabel="GiB"
            series={[
              { label: "used", points: memUsed, fill: true },
              {
                label: "total",
                points: seriesOf(series, "memory_total_mb", 1 / 1024),
                color: "#9ca3af",
              },
            ]}
          />
        </div>
        <div>
          <h3>Queue</h3>
          <TimeSeriesChart
            xMin={since}
            xMax={until}
            testId={`queue-chart-${cluster.name}`}
            yLabel="jobs"
            series={[
              { label: "queued", points: seriesOf(series, "queue_depth") },
              { label: "running", points: seriesOf(series, "running_jobs") },
            ]}
          />
        </div>
      </div>
    </Card>
  );
}
