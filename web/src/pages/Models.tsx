import { type FormEvent, useMemo, useState } from "react";
import { Link } from "react-router";
import { ApiClient, type Schemas } from "../api/client";
import { useServices } from "../api/context";
import { usePermissions } from "../api/permissions";
import { keys } from "../api/queries/keys";
import { useModels, useRegisterModel } from "../api/queries/models";
import { useApiMutation } from "../api/queries/mutation";
import { Card, Empty, ErrorBox, JsonView, Loading, StateBadge } from "../components/ui";
import { ago } from "../lib/format";

type Model = Schemas["MlModelOut"];
const ML_URL_KEY = "hpcgate.mlApiUrl";
const ACTIVE = new Set(["starting", "running", "restarting"]);

function useMlApi(url: string): ApiClient | null {
  const { auth } = useServices();
  return useMemo(
    () =>
      url
        ? new ApiClient({ baseUrl: url.replace(/\/+$/, ""), getToken: auth.getToken, onUnauthorized: () => auth.refresh() })
        : null,
    [url, auth],
  );
}

/**
 * ML models. The registry (state, health, restarts, last error) comes from the main API
 * (`/ml/models`); running, stopping and predictions are the ML-API's job (a separate service,
 * `hpcgate ml-api`), which accepts the same access token. Its address is set here once and
 * kept in this browser; the ML-API must allow this page's origin (CORS) or sit behind the
 * same reverse proxy.
 */
export function ModelsPage() {
  const can = usePermissions();
  const admin = can.may("ml_model.manage");
  const [mlUrl, setMlUrl] = useState(() => localStorage.getItem(ML_URL_KEY) ?? "");
  const [draftUrl, setDraftUrl] = useState(mlUrl);
  const ml = useMlApi(mlUrl);
  const [selected, setSelected] = useState<Model | null>(null);
  const [adding, setAdding] = useState(false);
  const models = useModels();
  const act = useApiMutation(
    async (api, { model, action }: { model: Model; action: "run" | "stop" | "delete" }) => {
      try {
        if (action === "delete") {
          // the ML-API removes the containers only; the registration is the main API's
          if (ml) await ml.raw("delete", `/models/${model.id}`);
          await api.delete("/ml/models/{model_id}", { path: { model_id: model.id } });
        } else {
          if (!ml) throw new Error("set the ML-API address first");
          await ml.raw("post", `/models/${model.id}/${action}`);
        }
      } catch (e) {
        throw e instanceof TypeError
          ? new Error(`the ML-API at ${mlUrl} did not answer (down, or it does not allow this origin): ${e.message}`)
          : e;
      }
    },
    () => [keys.models.all],
  );
  const run = (model: Model, action: "run" | "stop" | "delete") => {
    if (action === "delete" && !window.confirm(`Delete model ${model.name} ${model.version}? Its predictions go too.`)) return;
    act.mutate({ model, action });
  };

  return (
    <div className="page" data-testid="page-models">
      <header className="page-head">
        <h1>Models</h1>
        {admin ? (
          <button type="button" onClick={() => setAdding((a) => !a)}>
            {adding ? "Close" : "Register model"}
          </button>
        ) : null}
      </header>
      {adding ? (
        <RegisterModel onDone={() => setAdding(false)} />
      ) : null}
      <Card title="ML-API">
        <form
          className="row wrap"
          onSubmit={(e: FormEvent) => {
            e.preventDefault();
            localStorage.setItem(ML_URL_KEY, draftUrl.trim());
            setMlUrl(draftUrl.trim());
          }}
        >
          <input
            aria-label="ML-API address"
            placeholder="http://127.0.0.1:8100"
            value={draftUrl}
            onChange={(e) => setDraftUrl(e.target.value)}
          />
          <button type="submit" className="secondary">
            Use
          </button>
          <span className="muted small">
            {mlUrl ? `run, stop and predictions go to ${mlUrl}` : "needed to run, stop and call models; the list below comes from the main API"}
          </span>
        </form>
      </Card>
      <ErrorBox error={models.error || act.error} />
      {models.isLoading ? <Loading /> : null}
      <Card title="Registered models" testId="models">
        {models.data && models.data.length === 0 ? <Empty>No model registered.</Empty> : null}
        {models.data?.length ? (
          <table>
            <thead>
              <tr>
                <th>model</th>
                <th>image</th>
                <th>state</th>
                <th>health</th>
                <th>restarts</th>
                <th>reported</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {models.data.map((m) => (
                <tr key={m.id} data-testid={`model-${m.id}`}>
                  <td>
                    <b>{m.name}</b> {m.version}
                    <div className="muted small">{m.description}</div>
                  </td>
                  <td className="mono small">{m.image}</td>
                  <td>
                    <StateBadge state={m.state} />
                    {m.last_error ? <div className="warn small">{m.last_error}</div> : null}
                  </td>
                  <td>
                    <StateBadge state={m.health} />
                  </td>
                  <td>{m.restarts}</td>
                  <td>{ago(m.last_reported_at)}</td>
                  <td className="row wrap">
                    {admin && !ACTIVE.has(m.state) ? (
                      <button type="button" disabled={!ml} onClick={() => run(m, "run")}>
                        Run
                      </button>
                    ) : null}
                    {admin && ACTIVE.has(m.state) ? (
                      <button type="button" className="secondary" disabled={!ml} onClick={() => run(m, "stop")}>
                        Stop
                      </button>
                    ) : null}
                    {admin ? (
                      <button type="button" className="danger" onClick={() => run(m, "delete")}>
                        Delete
                      </button>
                    ) : null}
                    <Link to={`/models/${m.id}/accuracy`} data-testid={`accuracy-link-${m.id}`}>
                      vs DFT
                    </Link>
                    <button type="button" className="link" onClick={() => setSelected(m)}>
                      predict…
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Card>
      {selected ? <Predict model={selected} ml={ml} /> : null}
    </div>
  );
}

function RegisterModel({ onDone }: { onDone: () => void }) {
  const register = useRegisterModel();
  const [v, setV] = useState({ name: "", version: "1.0.0", image: "", description: "", environment: "{}" });
  const [error, setError] = useState<unknown>(null);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    let environment: Record<string, string>;
    try {
      environment = JSON.parse(v.environment || "{}") as Record<string, string>;
    } catch (err) {
      setError(err);
      return;
    }
    register.mutate(
      { name: v.name, version: v.version, image: v.image, description: v.description, environment },
      { onSuccess: onDone },
    );
  };
  return (
    <Card title="Register a model">
      <form className="form-grid" onSubmit={submit}>
        {(["name", "version", "image", "description"] as const).map((k) => (
          <label key={k}>
            {k}
            <input name={k} required={k !== "description"} value={v[k]} onChange={(e) => setV({ ...v, [k]: e.target.value })} />
          </label>
        ))}
        <label className="wide">
          <span>environment (JSON object)</span>
          <textarea className="mono" rows={2} value={v.environment} onChange={(e) => setV({ ...v, environment: e.target.value })} />
        </label>
        <div className="wide">
          <ErrorBox error={error || register.error} />
          <button type="submit" disabled={register.isPending}>
            Register
          </button>
        </div>
      </form>
    </Card>
  );
}

function Predict({ model, ml }: { model: Model; ml: ApiClient | null }) {
  const [input, setInput] = useState('{\n  "instances": []\n}');
  const [calcId, setCalcId] = useState("");
  const [output, setOutput] = useState<unknown>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setError(null);
    setBusy(true);
    try {
      if (!ml) throw new Error("set the ML-API address first");
      const body: unknown = JSON.parse(input);
      setOutput(
        await ml.raw("post", `/models/${model.id}/invocations`, {
          body,
          query: { calculation_id: calcId ? Number(calcId) : undefined },
        }),
      );
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card title={`Prediction with ${model.name} ${model.version}`} testId="predict">
      <div className="grid two">
        <label>
          <span>input (JSON, sent to the model's /invocations)</span>
          <textarea className="mono" rows={10} value={input} onChange={(e) => setInput(e.target.value)} />
        </label>
        <div>
          <h3>output</h3>
          {output !== null ? <JsonView value={output} /> : <p className="muted">—</p>}
        </div>
      </div>
      <div className="row">
        <label className="inline">
          store against calculation #
          <input type="number" min={1} className="narrow" value={calcId} onChange={(e) => setCalcId(e.target.value)} />
        </label>
        <button type="button" disabled={busy || !ml} onClick={() => void run()}>
          Predict
        </button>
      </div>
      <ErrorBox error={error} />
    </Card>
  );
}
