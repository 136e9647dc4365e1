/** "Where": the cluster and its logical queue. */
import type { Schemas } from "../../api/client";
import { Card, ErrorBox } from "../../components/ui";
import type { SectionProps } from "./formState";

export function ClusterSection({
  state,
  dispatch,
  clusters,
  error,
}: SectionProps & { clusters: readonly Schemas["ClusterOut"][] | undefined; error: unknown }) {
  const cluster = clusters?.find((c) => c.id === state.clusterId) ?? null;
  return (
    <Card title="Where">
      <ErrorBox error={error} />
      <div className="form-grid">
        <label>
          Cluster
          <select
            name="cluster"
            value={state.clusterId ?? ""}
            onChange={(e) =>
              dispatch({ type: "cluster", cluster: clusters?.find((x) => x.id === Number(e.target.value)) ?? null })
            }
          >
            {clusters?.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
                {c.enabled ? "" : " (maintenance)"}
                {c.require_approval ? " — needs approval" : ""}
              </option>
            ))}
          </select>
        </label>
        <label>
          Queue
          <select
            name="queue"
            value={state.queue}
            onChange={(e) => dispatch({ type: "details", changes: { queue: e.target.value } })}
          >
            {cluster?.queues.map((q) => (
              <option key={q.logical_queue} value={q.logical_queue}>
                {q.logical_queue} → {q.partition}
                {q.max_walltime_s ? ` (≤ ${Math.round(q.max_walltime_s / 3600)} h)` : ""}
              </option>
            ))}
          </select>
        </label>
      </div>
      {cluster && cluster.queues.length === 0 ? (
        <p className="warn">This cluster has no queue mapped yet; an admin adds one under Clusters.</p>
      ) : null}
    </Card>
  );
}
