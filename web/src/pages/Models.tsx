import { useState } from "react";
import { useApi, useServices } from "../api/context";
import { useQuery } from "../api/hooks";
import { Card, Empty, ErrorBox, JsonView, StateBadge } from "../components/ui";

interface Model {
  id: number | string;
  name?: string;
  state?: string;
  status?: string;
  health?: string;
  image?: string;
}

/**
 * ML models, when the main API lists them (the ML-API itself is a separate service). The
 * navigation entry is hidden when the server has no models route; run/stop/delete and
 * predictions use `{modelsPath}/{id}/...` as the ML-API documents them.
 */
export function ModelsPage() {
  const { caps } = useServices();
  if (!caps.modelsPath) {
    return (
      <div className="page" data-testid="page-models">
        <h1>Models</h1>
        <Card title="Not available on this server">
          <p>This hpcgate API does not list ML models. They are served by the ML-API.</p>
        </Card>
      </div>
    );
  }
  return <ModelList base={caps.modelsPath} />;
}

function ModelList({ base }: { base: string }) {
  const api = useApi();
  const { caps } = useServices();
  const [selected, setSelected] = useState<Model | null>(null);
  const [error, setError] = useState<unknown>(null);
  const models = useQuery(
    async (signal) => {
      const raw = await api.raw<unknown>("get", base, { signal });
      return (Array.isArray(raw) ? raw : ((raw as { items?: Model[] }).items ?? [])) as Model[];
    },
    [base],
    { pollMs: 10000 },
  );
  const act = async (model: Model, action: "run" | "stop" | "delete") => {
    setError(null);
    try {
      if (action === "delete") {
        if (!window.confirm(`Delete model ${model.name ?? model.id}?`)) return;
        await api.raw("delete", `${base}/${encodeURIComponent(String(model.id))}`);
      } else {
        await api.raw("post", `${base}/${encodeURIComponent(String(model.id))}/${action}`);
      }
      models.reload();
    } catch (e) {
      setError(e);
    }
  };
  const has = (suffix: string) => [...caps.paths].some((p) => p.startsWith(base) && p.endsWith(suffix));
  return (
    <div className="page" data-testid="page-models">
      <h1>Models</h1>
      <ErrorBox error={models.error || error} />
      <Card title="Models">
        {models.data && models.data.length === 0 ? <Empty>No model.</Empty> : null}
        <table>
          <tbody>
            {models.data?.map((m) => (
              <tr key={m.id}>
                <td>{m.name ?? m.id}</td>
                <td>
                  <StateBadge state={m.state ?? m.status ?? "unknown"} />
                </td>
                <td>{m.health ?? "—"}</td>
                <td className="row">
                  {has("/run") ? <button type="button" onClick={() => void act(m, "run")}>Run</button> : null}
                  {has("/stop") ? (
                    <button type="button" className="secondary" onClick={() => void act(m, "stop")}>
                      Stop
                    </button>
                  ) : null}
                  <button type="button" className="danger" onClick={() => void act(m, "delete")}>
                    Delete
                  </button>
                  <button type="button" className="link" onClick={() => setSelected(m)}>
                    predict…
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
      {selected ? <Predict base={base} model={selected} /> : null}
    </div>
  );
}

function Predict({ base, model }: { base: string; model: Model }) {
  const api = useApi();
  const [input, setInput] = useState('{\n  "instances": []\n}');
  const [output, setOutput] = useState<unknown>(null);
  const [error, setError] = useState<unknown>(null);
  const run = async () => {
    setError(null);
    try {
      const body: unknown = JSON.parse(input);
      setOutput(await api.raw("post", `${base}/${encodeURIComponent(String(model.id))}/predict`, { body }));
    } catch (e) {
      setError(e);
    }
  };
  return (
    <Card title={`Prediction: ${model.name ?? model.id}`}>
      <div className="grid two">
        <label>
          input (JSON)
          <textarea className="mono" rows={10} value={input} onChange={(e) => setInput(e.target.value)} />
        </label>
        <div>
          output
          {output !== null ? <JsonView value={output} /> : <p className="muted">—</p>}
        </div>
      </div>
      <ErrorBox error={error} />
      <button type="button" onClick={() => void run()}>
        Predict
      </button>
    </Card>
  );
}
