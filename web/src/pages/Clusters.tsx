import { type FormEvent, useState } from "react";
import type { Schemas } from "../api/client";
import { usePermissions } from "../api/permissions";
import {
  type ApiKeyChange,
  useApiKeyChange,
  useApiKeys,
  useClusterChange,
  useClusterConfig,
  useClusters,
  useSaveCluster,
} from "../api/queries/clusters";
import { ClusterTelemetry } from "../components/ClusterTelemetry";
import { Card, Empty, ErrorBox, Loading, SecretOnce, StateBadge } from "../components/ui";
import { ago, fmtDate } from "../lib/format";

type Cluster = Schemas["ClusterOut"];
type AdminCluster = Schemas["ClusterAdminOut"];
type AccessMode = Schemas["AccessMode"];
type Scheduler = NonNullable<Schemas["ClusterCreate"]["scheduler"]>;

export function ClustersPage() {
  const can = usePermissions();
  const admin = can.may("cluster.manage");
  const keyAdmin = can.may("api_key.manage");
  const [adding, setAdding] = useState(false);
  const [selected, setSelected] = useState<number | null>(null);
  const clusters = useClusters({ pollMs: 15000 });
  const current = clusters.data?.find((c) => c.id === selected) ?? null;
  return (
    <div className="page" data-testid="page-clusters">
      <header className="page-head">
        <h1>Clusters</h1>
        {admin ? (
          <button type="button" data-testid="add-cluster" onClick={() => setAdding((a) => !a)}>
            {adding ? "Close" : "Add cluster"}
          </button>
        ) : null}
      </header>
      {adding ? (
        <ClusterForm
          onSaved={(c) => {
            setAdding(false);
            setSelected(c.id);
          }}
        />
      ) : null}
      <ErrorBox error={clusters.error} />
      {clusters.isLoading ? <Loading /> : null}
      {clusters.data?.length === 0 ? <Empty>No cluster yet.</Empty> : null}
      <div className="card">
        <table data-testid="clusters-table">
          <thead>
            <tr>
              <th>name</th>
              <th>state</th>
              <th>scheduler</th>
              <th>access</th>
              <th>host</th>
              <th>queues</th>
              <th>approval</th>
              <th>heartbeat</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {clusters.data?.map((c) => (
              <tr key={c.id} data-cluster={c.name} className={c.id === selected ? "selected" : ""}>
                <td>
                  <b>{c.name}</b>
                  <div className="muted small">{c.description}</div>
                </td>
                <td>
                  <StateBadge state={!c.enabled ? "maintenance" : c.online ? "online" : "offline"} />
                </td>
                <td>{c.scheduler}</td>
                <td>{c.access_mode}</td>
                <td className="mono">{c.host ? `${c.login_user ? `${c.login_user}@` : ""}${c.host}:${c.port}` : "—"}</td>
                <td>{c.queues.map((q) => q.logical_queue).join(", ") || "—"}</td>
                <td>{c.require_approval ? "required" : "no"}</td>
                <td>{ago(c.last_heartbeat_at)}</td>
                <td>
                  <button type="button" className="link" onClick={() => setSelected(c.id === selected ? null : c.id)}>
                    {c.id === selected ? "close" : admin ? "manage" : "details"}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {current ? <ClusterPanel key={current.id} cluster={current} admin={admin} keyAdmin={keyAdmin} /> : null}
    </div>
  );
}

function ClusterPanel({ cluster, admin, keyAdmin }: { cluster: Cluster; admin: boolean; keyAdmin: boolean }) {
  const [editing, setEditing] = useState(false);
  const config = useClusterConfig(cluster.id, { enabled: admin });
  const change = useClusterChange(cluster.id);
  const toggle = () => change.mutate({ action: cluster.enabled ? "disable" : "enable" });
  const remove = () => {
    if (!window.confirm(`Delete cluster ${cluster.name}? (Only possible if it never ran a calculation.)`)) return;
    change.mutate({ action: "delete" });
  };
  return (
    <div data-testid={`cluster-panel-${cluster.name}`}>
      <Card
        title={`Cluster ${cluster.name}`}
        actions={
          admin ? (
            <>
              <button type="button" className="secondary" onClick={() => setEditing((e) => !e)}>
                {editing ? "Close editor" : "Edit"}
              </button>
              <button type="button" className="secondary" data-testid="toggle-enabled" onClick={toggle}>
                {cluster.enabled ? "Disable (maintenance)" : "Enable"}
              </button>
              <button type="button" className="danger" onClick={remove}>
                Delete
              </button>
            </>
          ) : null
        }
      >
        <ErrorBox error={change.error} />
        <table className="kv">
          <tbody>
            <tr>
              <th>scratch root</th>
              <td className="mono">{cluster.scratch_root}</td>
            </tr>
            <tr>
              <th>cleanup policy</th>
              <td className="mono">{JSON.stringify(cluster.cleanup_policy)}</td>
            </tr>
            {admin && config.data ? (
              <tr>
                <th>runner options</th>
                <td className="mono">{JSON.stringify(config.data.options)}</td>
              </tr>
            ) : null}
            <tr>
              <th>created / updated</th>
              <td>
                {fmtDate(cluster.created_at)} / {fmtDate(cluster.updated_at)}
              </td>
            </tr>
          </tbody>
        </table>
        {editing && config.data ? (
          <ClusterForm existing={config.data} onSaved={() => setEditing(false)} />
        ) : null}
      </Card>
      <ClusterTelemetry clusterId={cluster.id} />
      <Queues cluster={cluster} admin={admin} />
      {keyAdmin ? <ApiKeys cluster={cluster} /> : null}
    </div>
  );
}

function ClusterForm({ existing, onSaved }: { existing?: AdminCluster; onSaved: (c: AdminCluster) => void }) {
  const save = useSaveCluster();
  const [v, setV] = useState({
    name: existing?.name ?? "",
    description: existing?.description ?? "",
    scheduler: (existing?.scheduler ?? "slurm") as Scheduler,
    access_mode: (existing?.access_mode ?? "agent") as AccessMode,
    host: existing?.host ?? "",
    port: String(existing?.port ?? 22),
    login_user: existing?.login_user ?? "",
    scratch_root: existing?.scratch_root ?? "/scratch/hpcgate",
    require_approval: existing?.require_approval ?? false,
    options: JSON.stringify(existing?.options ?? {}, null, 1),
    cleanup_policy: JSON.stringify(existing?.cleanup_policy ?? {}, null, 1),
    queue: "",
    partition: "",
  });
  const [error, setError] = useState<unknown>(null);
  const set = (changes: Partial<typeof v>) => setV((cur) => ({ ...cur, ...changes }));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      const options = JSON.parse(v.options || "{}") as Record<string, unknown>;
      const cleanup = JSON.parse(v.cleanup_policy || "{}") as Record<string, unknown>;
      const common = {
        name: v.name.trim(),
        description: v.description,
        scheduler: v.scheduler,
        access_mode: v.access_mode,
        host: v.host.trim() || null,
        port: Number(v.port) || 22,
        login_user: v.login_user.trim() || null,
        scratch_root: v.scratch_root.trim(),
        require_approval: v.require_approval,
        options,
        cleanup_policy: cleanup,
      };
      const saved = existing
        ? await save.mutateAsync({ id: existing.id, body: common })
        : await save.mutateAsync({
            id: null,
            body: {
              ...common,
              queues: v.queue.trim()
                ? [{ logical_queue: v.queue.trim(), partition: (v.partition || v.queue).trim() }]
                : [],
            },
          });
      onSaved(saved);
    } catch (err) {
      setError(err instanceof SyntaxError ? new Error(`options / cleanup policy: ${err.message}`) : err);
    }
  };
  return (
    <form className="card" onSubmit={submit} data-testid="cluster-form">
      <h2>{existing ? `Edit ${existing.name}` : "Add a cluster"}</h2>
      <div className="form-grid">
        <label>
          Name
          <input name="name" required value={v.name} onChange={(e) => set({ name: e.target.value })} />
        </label>
        <label>
          Scheduler
          <select name="scheduler" value={v.scheduler} onChange={(e) => set({ scheduler: e.target.value as Scheduler })}>
            <option value="slurm">Slurm</option>
            <option value="pbs">PBS</option>
            <option value="local">local (no scheduler)</option>
          </select>
        </label>
        <label>
          Access
          <select
            name="access_mode"
            value={v.access_mode}
            onChange={(e) => set({ access_mode: e.target.value as AccessMode })}
          >
            <option value="agent">agent on the login node (pulls work with an API key)</option>
            <option value="ssh">SSH from the service</option>
            <option value="local">local (this machine)</option>
          </select>
        </label>
        <label className="wide">
          Description
          <input name="description" value={v.description} onChange={(e) => set({ description: e.target.value })} />
        </label>
        {v.access_mode === "ssh" ? (
          <>
            <label>
              Host
              <input name="host" value={v.host} onChange={(e) => set({ host: e.target.value })} />
            </label>
            <label>
              Port
              <input name="port" type="number" value={v.port} onChange={(e) => set({ port: e.target.value })} />
            </label>
            <label>
              Login user
              <input name="login_user" value={v.login_user} onChange={(e) => set({ login_user: e.target.value })} />
            </label>
          </>
        ) : null}
        <label>
          Scratch root
          <input name="scratch_root" required value={v.scratch_root} onChange={(e) => set({ scratch_root: e.target.value })} />
        </label>
        <label className="inline">
          <input
            type="checkbox"
            name="require_approval"
            checked={v.require_approval}
            onChange={(e) => set({ require_approval: e.target.checked })}
          />{" "}
          calculations need a moderator's approval
        </label>
        {!existing ? (
          <>
            <label>
              First logical queue
              <input name="queue" placeholder="e.g. default" value={v.queue} onChange={(e) => set({ queue: e.target.value })} />
            </label>
            <label>
              …maps to partition
              <input name="partition" placeholder="e.g. debug" value={v.partition} onChange={(e) => set({ partition: e.target.value })} />
            </label>
          </>
        ) : null}
        <label className="wide">
          <span>Runner options (JSON: key_file, known_hosts, launcher, template_dirs…)</span>
          <textarea name="options" className="mono" rows={3} value={v.options} onChange={(e) => set({ options: e.target.value })} />
        </label>
        <label className="wide">
          <span>Cleanup policy (JSON)</span>
          <textarea
            name="cleanup_policy"
            className="mono"
            rows={2}
            value={v.cleanup_policy}
            onChange={(e) => set({ cleanup_policy: e.target.value })}
          />
        </label>
      </div>
      <ErrorBox error={error} />
      <button type="submit" data-testid="save-cluster">
        {existing ? "Save" : "Add cluster"}
      </button>
    </form>
  );
}

function Queues({ cluster, admin }: { cluster: Cluster; admin: boolean }) {
  const change = useClusterChange(cluster.id);
  const empty = { logical_queue: "", partition: "", qos: "", account: "", max_walltime_s: "", max_nodes: "", max_cpus: "" };
  const [q, setQ] = useState(empty);
  const num = (s: string) => (s.trim() ? Number(s) : null);
  const add = (e: FormEvent) => {
    e.preventDefault();
    change.mutate(
      {
        action: "map-queue",
        queue: {
          logical_queue: q.logical_queue.trim(),
          partition: q.partition.trim(),
          qos: q.qos.trim() || null,
          account: q.account.trim() || null,
          max_walltime_s: num(q.max_walltime_s),
          max_nodes: num(q.max_nodes),
          max_cpus: num(q.max_cpus),
        },
      },
      { onSuccess: () => setQ(empty) },
    );
  };
  const remove = (name: string) => change.mutate({ action: "unmap-queue", logicalQueue: name });
  return (
    <Card title="Queue mapping" testId="queues">
      <table>
        <thead>
          <tr>
            <th>logical queue (what users pick)</th>
            <th>partition</th>
            <th>QoS</th>
            <th>account</th>
            <th>max walltime</th>
            <th>max nodes</th>
            <th>max CPUs</th>
            {admin ? <th /> : null}
          </tr>
        </thead>
        <tbody>
          {cluster.queues.map((x) => (
            <tr key={x.logical_queue}>
              <td>
                <b>{x.logical_queue}</b>
              </td>
              <td>{x.partition}</td>
              <td>{x.qos ?? "—"}</td>
              <td>{x.account ?? "—"}</td>
              <td>{x.max_walltime_s ? `${x.max_walltime_s} s` : "—"}</td>
              <td>{x.max_nodes ?? "—"}</td>
              <td>{x.max_cpus ?? "—"}</td>
              {admin ? (
                <td>
                  <button type="button" className="link" onClick={() => remove(x.logical_queue)}>
                    remove
                  </button>
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
      {admin ? (
        <form className="row wrap" onSubmit={add} data-testid="queue-form">
          {(Object.keys(empty) as (keyof typeof empty)[]).map((k) => (
            <input
              key={k}
              name={k}
              aria-label={k}
              placeholder={k.replace(/_/g, " ")}
              required={k === "logical_queue" || k === "partition"}
              className="narrow"
              value={q[k]}
              onChange={(e) => setQ({ ...q, [k]: e.target.value })}
            />
          ))}
          <button type="submit">Map queue</button>
        </form>
      ) : null}
      <ErrorBox error={change.error} />
    </Card>
  );
}

function ApiKeys({ cluster }: { cluster: Cluster }) {
  const [name, setName] = useState("agent");
  const [secret, setSecret] = useState<string | null>(null);
  const [grace, setGrace] = useState("0");
  const keys = useApiKeys(cluster.id);
  const change = useApiKeyChange(cluster.id);
  const run = (c: ApiKeyChange) =>
    change.mutate(c, {
      onSuccess: (key) => {
        if (key) setSecret(key);
      },
    });
  return (
    <Card title="Agent API keys" testId="api-keys">
      <p className="muted">
        The cluster's agent authenticates with one of these keys (<code>X-API-Key</code>). A new key is shown once.
      </p>
      {secret ? <SecretOnce secret={secret} onDone={() => setSecret(null)} /> : null}
      <table>
        <thead>
          <tr>
            <th>name</th>
            <th>prefix</th>
            <th>created</th>
            <th>last used</th>
            <th>state</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {keys.data?.map((k) => (
            <tr key={k.id} data-key-prefix={k.prefix}>
              <td>{k.name}</td>
              <td className="mono">hpcg_{k.prefix}_…</td>
              <td>{fmtDate(k.created_at)}</td>
              <td>{k.last_used_at ? ago(k.last_used_at) : "never"}</td>
              <td>
                <StateBadge state={k.active ? "online" : k.revoked_at ? "cancelled" : "offline"} />
                {k.revoked_at && k.active ? <span className="muted small"> until {fmtDate(k.revoked_at)}</span> : null}
              </td>
              <td className="row">
                {k.active ? (
                  <>
                    <button
                      type="button"
                      className="secondary"
                      data-testid={`rotate-${k.prefix}`}
                      onClick={() => run({ action: "rotate", keyId: k.id, graceSeconds: Number(grace) || 0 })}
                    >
                      Rotate
                    </button>
                    <button
                      type="button"
                      className="danger"
                      onClick={() => run({ action: "revoke", keyId: k.id })}
                    >
                      Revoke
                    </button>
                  </>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {keys.data?.length === 0 ? <Empty>No key yet.</Empty> : null}
      <div className="row">
        <input aria-label="key name" className="narrow" value={name} onChange={(e) => setName(e.target.value)} />
        <button
          type="button"
          data-testid="generate-key"
          onClick={() => run({ action: "generate", name })}
        >
          Generate key
        </button>
        <label className="inline">
          old key keeps working for
          <input aria-label="grace seconds" type="number" min={0} max={86400} className="narrow" value={grace} onChange={(e) => setGrace(e.target.value)} />
          s after a rotation
        </label>
      </div>
      <ErrorBox error={change.error} />
    </Card>
  );
}
