/**
 * A cluster's whole queue (every user's jobs, per partition) and its nodes' states, from the
 * heartbeats (GET /clusters/{id}/telemetry): what a user weighs before choosing a queue.
 */
import { useState } from "react";
import type { Schemas } from "../api/client";
import { useClusterTelemetry } from "../api/queries/clusters";
import { baseState, type NodeHealth, nodeHealth, partitionSeries, stateCounts } from "../lib/clusterTelemetry";
import { ago } from "../lib/format";
import { TimeSeriesChart } from "./Charts";
import { Card, Empty, ErrorBox, Loading } from "./ui";

type Node = Schemas["ClusterNodeOut"];
const BADGE: Record<NodeHealth, string> = { ok: "badge badge-ok", warn: "badge badge-attn", bad: "badge badge-bad" };

export function ClusterTelemetry({ clusterId }: { clusterId: number }) {
  const [hours, setHours] = useState(6);
  const [shown, setShown] = useState<string | null>(null);
  const query = useClusterTelemetry(clusterId, hours);
  const t = query.data?.telemetry;
  const until = query.data?.until ?? Date.now();
  const partition = shown ?? t?.partitions[0]?.partition ?? null;
  return (
    <Card
      title="Queue and nodes (all users)"
      actions={
        <select value={hours} onChange={(e) => setHours(Number(e.target.value))} aria-label="window">
          {[1, 6, 24, 168].map((h) => (
            <option key={h} value={h}>
              last {h < 48 ? `${h} h` : `${h / 24} days`}
            </option>
          ))}
        </select>
      }
    >
      <ErrorBox error={query.error} />
      {query.isLoading ? <Loading /> : null}
      {t && !t.sampled_at ? <Empty>No heartbeat with queue figures yet.</Empty> : null}
      {t?.sampled_at ? (
        <>
          <p className="muted small">as of the heartbeat {ago(t.sampled_at)}</p>
          <table data-testid="partition-loads">
            <thead>
              <tr>
                <th>partition</th>
                <th>pending</th>
                <th>running</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {t.partitions.map((p) => (
                <tr key={p.partition} className={p.partition === partition ? "selected" : ""}>
                  <td className="mono">{p.partition}</td>
                  <td>{p.pending}</td>
                  <td>{p.running}</td>
                  <td>
                    <button type="button" className="link" onClick={() => setShown(p.partition)}>
                      graph
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {partition ? (
            <TimeSeriesChart
              testId="partition-series"
              yLabel={`jobs in ${partition}`}
              yMin={0}
              xMin={until - hours * 3600_000}
              xMax={until}
              series={partitionSeries(t.series, partition)}
            />
          ) : null}
        </>
      ) : null}
      {t && t.nodes.length > 0 ? <Nodes nodes={t.nodes} states={t.node_states} /> : null}
    </Card>
  );
}

function Nodes({ nodes, states }: { nodes: Node[]; states: Record<string, number> }) {
  return (
    <>
      <p data-testid="node-states">
        {stateCounts(states).map(([state, n]) => (
          <span key={state} className={BADGE[nodeHealth(state)]} title={state}>
            {n} {baseState(state)}
          </span>
        ))}
      </p>
      <table data-testid="cluster-nodes">
        <thead>
          <tr>
            <th>node</th>
            <th>state</th>
            <th>CPUs (allocated / total)</th>
            <th>memory</th>
            <th>partitions</th>
            <th>seen</th>
          </tr>
        </thead>
        <tbody>
          {nodes.map((n) => (
            <tr key={n.node}>
              <td className="mono">{n.node}</td>
              <td>
                <span className={BADGE[nodeHealth(n.state)]}>{n.state}</span>
              </td>
              <td>
                {n.cpus_allocated} / {n.cpus_total}
              </td>
              <td>{(n.memory_total_mb / 1024).toFixed(1)} GiB</td>
              <td className="mono">{n.partitions.join(", ")}</td>
              <td>{ago(n.seen_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
