import { type ChangeEvent, type FormEvent, useEffect, useMemo, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import type { Schemas } from "../api/client";
import { loadCatalogue } from "../api/catalogue";
import { useApi, useServices } from "../api/context";
import { useQuery } from "../api/hooks";
import { LadderForm } from "../components/LadderForm";
import { Card, Empty, ErrorBox, Loading } from "../components/ui";
import {
  type AnalysisInfo,
  availableFor,
  deselectAnalysis,
  missingRequirements,
  order,
  requiredBy,
  selectAnalysis,
} from "../lib/analysisDeps";
import {
  type BuilderState,
  buildConfiguration,
  emptyBuilder,
  type Kind,
  withInputs,
} from "../lib/configBuilder";
import { emptyLadder, ladderConfiguration, type LadderState } from "../lib/ladderConfig";
import { createWithFiles, hasUploads, uploadInputs, withBinaryInputs } from "../lib/uploads";

type Code = Schemas["CalculationCreate"]["code"];
type Preview = Schemas["PreviewOut"];

const CODES: { value: NonNullable<Code>; label: string; main: string }[] = [
  { value: "siesta", label: "SIESTA / TranSIESTA", main: "input.fdf" },
  { value: "qe", label: "Quantum ESPRESSO (pw.x)", main: "pw.in" },
  { value: "generic", label: "any program (generic)", main: "" },
];

async function readFiles(list: FileList | null): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const file of Array.from(list ?? [])) out[file.name] = await file.text();
  return out;
}

export function CalculationNewPage() {
  const api = useApi();
  const { caps } = useServices();
  const navigate = useNavigate();

  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [params] = useSearchParams();
  const [moleculeId, setMoleculeId] = useState(params.get("molecule") ?? "");
  const [code, setCode] = useState<NonNullable<Code>>("siesta");
  const [clusterId, setClusterId] = useState<number | null>(null);
  const [queue, setQueue] = useState("");
  const [builder, setBuilder] = useState<BuilderState>(emptyBuilder);
  // a TranSIESTA bias ladder instead of the chain/sweep builder (components/LadderForm.tsx)
  const [ladder, setLadder] = useState<LadderState | null>(null);
  const configOf = (b: BuilderState) =>
    ladder && code === "siesta"
      ? ladderConfiguration(ladder, buildConfiguration({ ...b, kind: "single", mainInput: "" }, code))
      : buildConfiguration(b, code);
  const [mode, setMode] = useState<"form" | "json">("form");
  const [jsonText, setJsonText] = useState("");
  const [inputs, setInputs] = useState<Record<string, string>>({});
  const [analyses, setAnalyses] = useState<string[]>([]);
  const [note, setNote] = useState<string | null>(null);
  const [preview, setPreview] = useState<Preview | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<"preview" | "create" | null>(null);

  const clusters = useQuery((signal) => api.get("/clusters", { signal }), []);
  const molecules = useQuery(
    (signal) => api.get("/molecules", { query: { limit: 500 }, signal }),
    [],
    { enabled: caps.molecules },
  );
  const catalogue = useQuery((signal) => loadCatalogue(api, caps, signal), []);

  const cluster = clusters.data?.find((c) => c.id === clusterId) ?? null;
  useEffect(() => {
    if (clusters.data && clusterId === null && clusters.data.length) {
      const first = clusters.data.find((c) => c.enabled) ?? clusters.data[0];
      setClusterId(first.id);
      setQueue(first.queues[0]?.logical_queue ?? "");
    }
  }, [clusters.data, clusterId]);

  const offered: AnalysisInfo[] = useMemo(
    () => availableFor(catalogue.data?.items ?? [], code),
    [catalogue.data, code],
  );
  const items = catalogue.data?.items ?? [];
  const locks = requiredBy(analyses, items);

  // The configuration sent: the form's, or the JSON editor's text.
  const built = useMemo((): { config: Record<string, unknown> | null; problem: string | null } => {
    try {
      if (mode === "json") {
        const parsed: unknown = JSON.parse(jsonText || "{}");
        if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
          return { config: null, problem: "the configuration must be a JSON object" };
        }
        return { config: withInputs(parsed as Record<string, unknown>, inputs), problem: null };
      }
      return { config: withInputs(configOf(builder), inputs), problem: null };
    } catch (e) {
      return { config: null, problem: e instanceof Error ? e.message : String(e) };
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [mode, jsonText, builder, code, inputs, ladder]);
  const binaries = ladder && code === "siesta" ? ladder.binaries : [];

  const setB = (changes: Partial<BuilderState>) => {
    setBuilder((b) => ({ ...b, ...changes }));
    setPreview(null);
  };
  const setRes = (key: keyof BuilderState["resources"], value: string) =>
    setB({ resources: { ...builder.resources, [key]: value } });

  const toggle = (a: AnalysisInfo, checked: boolean) => {
    if (checked) {
      const r = selectAnalysis(analyses, a.name, items);
      setAnalyses(r.selection);
      const titles = r.added.map((n) => items.find((x) => x.name === n)?.title ?? n);
      setNote(titles.length ? `${a.title} requires ${titles.join(", ")}: selected too.` : null);
    } else {
      const r = deselectAnalysis(analyses, a.name, items);
      if (r.blockedBy.length) {
        setNote(`${a.title} is required by ${r.blockedBy.join(", ")}; unselect those first.`);
      } else {
        setAnalyses(r.selection);
        setNote(null);
      }
    }
    setPreview(null);
  };

  const body = (): Schemas["CalculationCreate"] | null => {
    if (!built.config) {
      setError(new Error(built.problem ?? "invalid configuration"));
      return null;
    }
    if (!cluster) {
      setError(new Error("choose a cluster"));
      return null;
    }
    const missing = missingRequirements(analyses, items);
    if (Object.keys(missing).length) {
      setError(new Error(`missing analyses: ${Object.keys(missing).join(", ")}`));
      return null;
    }
    return {
      name: name.trim(),
      description,
      molecule_id: moleculeId ? Number(moleculeId) : null,
      cluster_id: cluster.id,
      logical_queue: queue,
      code,
      configuration: built.config,
      analyses: order(analyses, items),
    };
  };

  const runPreview = async () => {
    const b = body();
    if (!b) return;
    setBusy("preview");
    setError(null);
    try {
      const refs = await uploadInputs(api, binaries); // stored by content; nothing else saved
      setPreview(await api.post("/calculations/preview", { body: { ...b, configuration: withBinaryInputs(b.configuration, refs) } }));
    } catch (e) {
      setError(e);
      setPreview(null);
    } finally {
      setBusy(null);
    }
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const b = body();
    if (!b) return;
    setBusy("create");
    setError(null);
    try {
      const calc = binaries.length ? await createWithFiles(api, b, binaries) : await api.post("/calculations", { body: b });
      navigate(`/calculations/${calc.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(null);
    }
  };

  const onInputFiles = async (e: ChangeEvent<HTMLInputElement>) => {
    const files = await readFiles(e.target.files);
    setInputs((cur) => ({ ...cur, ...files }));
    if (!builder.mainInput) {
      const main = Object.keys(files).find((f) =>
        code === "siesta" ? f.endsWith(".fdf") : code === "qe" ? f.endsWith(".in") : false,
      );
      if (main) setB({ mainInput: main });
    }
    e.target.value = "";
    setPreview(null);
  };

  const onConfigFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (!file) return;
    setJsonText(await file.text());
    setMode("json");
    e.target.value = "";
    setPreview(null);
  };

  const switchMode = (next: "form" | "json") => {
    if (next === "json" && mode === "form") {
      let config: Record<string, unknown> = {};
      try {
        config = configOf(builder);
      } catch {
        config = { kind: builder.kind };
      }
      setJsonText(JSON.stringify(config, null, 2));
    }
    setMode(next);
    setPreview(null);
  };

  const moleculeList = normalizeMolecules(molecules.data);

  return (
    <form className="page" onSubmit={submit} data-testid="page-new-calculation">
      <header className="page-head">
        <h1>New calculation</h1>
        <Link to="/calculations">Back to the list</Link>
      </header>

      <Card title="What">
        <div className="form-grid">
          <label>
            Name
            <input name="name" required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <label>
            Code
            <select
              name="code"
              value={code}
              onChange={(e) => {
                setCode(e.target.value as NonNullable<Code>);
                if (e.target.value !== "siesta") setLadder(null);
                setPreview(null);
              }}
            >
              {CODES.map((c) => (
                <option key={c.value} value={c.value}>
                  {c.label}
                </option>
              ))}
            </select>
          </label>
          <label className="wide">
            Description
            <textarea
              name="description"
              rows={2}
              value={description}
              onChange={(e) => setDescription(e.target.value)}
            />
          </label>
          <label>
            Molecule
            {caps.molecules ? (
              <select name="molecule" value={moleculeId} onChange={(e) => setMoleculeId(e.target.value)}>
                <option value="">none</option>
                {moleculeList.map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.name}
                  </option>
                ))}
              </select>
            ) : (
              <input
                name="molecule"
                type="number"
                min={1}
                placeholder="molecule id (optional)"
                value={moleculeId}
                onChange={(e) => setMoleculeId(e.target.value)}
              />
            )}
          </label>
        </div>
      </Card>

      <Card title="Where">
        <ErrorBox error={clusters.error} />
        <div className="form-grid">
          <label>
            Cluster
            <select
              name="cluster"
              value={clusterId ?? ""}
              onChange={(e) => {
                const c = clusters.data?.find((x) => x.id === Number(e.target.value));
                setClusterId(c?.id ?? null);
                setQueue(c?.queues[0]?.logical_queue ?? "");
                setPreview(null);
              }}
            >
              {clusters.data?.map((c) => (
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
            <select name="queue" value={queue} onChange={(e) => setQueue(e.target.value)}>
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

      <Card
        title="How: configuration"
        actions={
          <div className="tabs" role="tablist">
            <button
              type="button"
              role="tab"
              aria-selected={mode === "form"}
              className={mode === "form" ? "" : "secondary"}
              onClick={() => switchMode("form")}
            >
              Chain / sweep builder
            </button>
            <button
              type="button"
              role="tab"
              aria-selected={mode === "json"}
              className={mode === "json" ? "" : "secondary"}
              onClick={() => switchMode("json")}
            >
              JSON editor
            </button>
          </div>
        }
      >
        {mode === "form" ? (
          <div className="form-grid">
            <fieldset className="wide kind">
              <legend>Kind</legend>
              {(["single", "chain", "sweep"] as Kind[]).map((k) => (
                <label key={k} className="inline">
                  <input
                    type="radio"
                    name="kind"
                    value={k}
                    checked={!ladder && builder.kind === k}
                    onChange={() => {
                      setLadder(null);
                      setB({ kind: k });
                    }}
                  />
                  {k === "single"
                    ? "single run"
                    : k === "chain"
                      ? "chain (each step starts from the previous one's files)"
                      : "sweep (independent variants, one job array)"}
                </label>
              ))}
              {code === "siesta" ? (
                <label className="inline">
                  <input
                    type="radio"
                    name="kind"
                    value="transiesta"
                    checked={!!ladder}
                    onChange={() => {
                      setLadder(emptyLadder());
                      setPreview(null);
                    }}
                  />
                  TranSIESTA bias ladder (electrodes, 0 V, bias branches, TBtrans per point)
                </label>
              ) : null}
            </fieldset>
            {ladder && code === "siesta" ? (
              <LadderForm
                state={ladder}
                onChange={(next) => {
                  setLadder(next);
                  setPreview(null);
                }}
                inputs={inputs}
                uploads={hasUploads(caps.paths)}
              />
            ) : null}
            {!ladder && builder.kind !== "single" ? (
              <>
                <label>
                  Varied parameter
                  <input
                    name="parameter"
                    placeholder={code === "siesta" ? "TS.Voltage" : code === "qe" ? "system.ecutwfc" : "x"}
                    value={builder.parameter}
                    onChange={(e) => setB({ parameter: e.target.value })}
                  />
                </label>
                <label>
                  Values
                  <input
                    name="values"
                    placeholder="0, 0.1, 0.2   or   0:1:0.25"
                    value={builder.values}
                    onChange={(e) => setB({ values: e.target.value })}
                  />
                </label>
              </>
            ) : null}
            {!ladder && builder.kind === "chain" ? (
              <label>
                Files a step takes from the previous one
                <input
                  name="inherit"
                  placeholder={code === "siesta" ? "default: *.DM, *.TSDE, *.TSHS" : "e.g. *.dat, restart.bin"}
                  value={builder.inherit}
                  onChange={(e) => setB({ inherit: e.target.value })}
                />
              </label>
            ) : null}
            {!ladder && builder.kind === "sweep" ? (
              <label>
                At most this many at once
                <input
                  name="max_concurrent"
                  type="number"
                  min={1}
                  value={builder.maxConcurrent}
                  onChange={(e) => setB({ maxConcurrent: e.target.value })}
                />
              </label>
            ) : null}
            <label className="wide">
              <span>
                Fixed parameters (one <code>name = value</code> per line)
              </span>
              <textarea
                name="fixed"
                rows={2}
                value={builder.fixed}
                onChange={(e) => setB({ fixed: e.target.value })}
              />
            </label>
            {code === "generic" ? (
              <label className="wide">
                <span>
                  Command (bash; parameters arrive as <code>$HPCGATE_PARAM_&lt;NAME&gt;</code>)
                </span>
                <textarea
                  name="command"
                  rows={2}
                  className="mono"
                  value={builder.command}
                  onChange={(e) => setB({ command: e.target.value })}
                />
              </label>
            ) : ladder ? null : (
              <label>
                Main input file
                <input
                  name="main_input"
                  placeholder={CODES.find((c) => c.value === code)?.main}
                  value={builder.mainInput}
                  onChange={(e) => setB({ mainInput: e.target.value })}
                />
              </label>
            )}
            <fieldset className="wide resources">
              <legend>Resources (empty: the template's defaults)</legend>
              {(
                [
                  ["nodes", "nodes"],
                  ["tasks", "MPI tasks"],
                  ["cpus_per_task", "CPUs per task"],
                  ["memory_mb", "memory (MB)"],
                  ["walltime_s", "walltime (s)"],
                ] as [keyof BuilderState["resources"], string][]
              ).map(([key, label]) => (
                <label key={key}>
                  {label}
                  <input
                    name={`res_${key}`}
                    type="number"
                    min={1}
                    value={builder.resources[key]}
                    onChange={(e) => setRes(key, e.target.value)}
                  />
                </label>
              ))}
            </fieldset>
          </div>
        ) : (
          <label className="wide">
            <span>Configuration (JSON: kind, parameters, variants, inherit, resources, command…)</span>
            <textarea
              name="configuration"
              className="mono"
              rows={14}
              value={jsonText}
              onChange={(e) => {
                setJsonText(e.target.value);
                setPreview(null);
              }}
            />
          </label>
        )}
        <div className="row uploads">
          <label className="file">
            Input files
            <input type="file" multiple name="input_files" onChange={onInputFiles} />
          </label>
          <label className="file">
            Load a configuration (.json)
            <input type="file" accept=".json,application/json" name="config_file" onChange={onConfigFile} />
          </label>
        </div>
        {Object.keys(inputs).length ? (
          <ul className="files" data-testid="input-files">
            {Object.entries(inputs).map(([fname, text]) => (
              <li key={fname}>
                <code>{fname}</code> ({text.length.toLocaleString()} bytes){" "}
                <button
                  type="button"
                  className="link"
                  onClick={() => {
                    const { [fname]: _, ...rest } = inputs;
                    setInputs(rest);
                    setPreview(null);
                  }}
                >
                  remove
                </button>
              </li>
            ))}
          </ul>
        ) : null}
        {built.problem ? (
          <p className="muted" data-testid="config-problem">
            Not ready to send: {built.problem}
          </p>
        ) : mode === "form" ? (
          <details>
            <summary>Configuration sent</summary>
            <pre className="json">{JSON.stringify({ ...built.config, inputs: undefined }, null, 2)}</pre>
          </details>
        ) : null}
      </Card>

      <Card
        title="Analyses"
        actions={
          catalogue.data ? (
            <span className="muted" data-testid="catalogue-source">
              catalogue: {catalogue.data.source}
            </span>
          ) : null
        }
      >
        <ErrorBox error={catalogue.error} />
        {catalogue.loading && !catalogue.data ? <Loading /> : null}
        {catalogue.data && offered.length === 0 ? <Empty>No analysis for this code.</Empty> : null}
        <div className="analyses" data-testid="analyses">
          {offered.map((a) => {
            const lockedBy = locks.get(a.name) ?? [];
            const checked = analyses.includes(a.name);
            return (
              <label
                key={a.name}
                className={`analysis ${lockedBy.length ? "locked" : ""}`}
                title={a.description}
                data-analysis={a.name}
              >
                <input
                  type="checkbox"
                  name={`analysis_${a.name}`}
                  checked={checked}
                  disabled={lockedBy.length > 0}
                  onChange={(e) => toggle(a, e.target.checked)}
                />
                <span>
                  <b>{a.title}</b> <code>{a.name}</code>
                  {a.requires.length ? (
                    <span className="muted"> · needs {a.requires.join(", ")}</span>
                  ) : null}
                  {lockedBy.length ? (
                    <span className="lock" data-testid={`required-by-${a.name}`}>
                      {" "}
                      required by {lockedBy.join(", ")}
                    </span>
                  ) : null}
                  <br />
                  <small className="muted">{a.description}</small>
                </span>
              </label>
            );
          })}
        </div>
        {note ? (
          <p className="note" role="status" data-testid="analysis-note">
            {note}
          </p>
        ) : null}
      </Card>

      <ErrorBox error={error} title="Refused" />
      <div className="row actions">
        <button type="button" className="secondary" disabled={busy !== null} onClick={runPreview} data-testid="preview">
          {busy === "preview" ? "Planning…" : "Preview steps and job scripts"}
        </button>
        <button type="submit" disabled={busy !== null || !name.trim()} data-testid="create">
          {busy === "create" ? "Creating…" : "Create calculation"}
        </button>
      </div>

      {preview ? <PreviewView preview={preview} /> : null}
    </form>
  );
}

function PreviewView({ preview }: { preview: Preview }) {
  return (
    <Card title={`Preview: ${preview.kind}, ${preview.steps.length} step(s)`} testId="preview-result">
      <table>
        <thead>
          <tr>
            <th>step</th>
            <th>label</th>
            <th>runs after</th>
            <th>array</th>
            <th>files</th>
          </tr>
        </thead>
        <tbody>
          {preview.steps.map((s) => (
            <tr key={s.index}>
              <td>{s.index}</td>
              <td>{s.label}</td>
              <td>{s.parents.length ? s.parents.map((p) => `step ${p}`).join(", ") : "—"}</td>
              <td>{s.array_size ?? "—"}</td>
              <td className="files-cell">{s.files.join(", ")}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {preview.steps.map((s, i) => (
        <details key={s.index} open={i === 0}>
          <summary>
            Job script of step {s.index} ({s.label})
          </summary>
          <pre className="script" data-testid={`script-${s.index}`}>
            {s.script}
          </pre>
        </details>
      ))}
    </Card>
  );
}

export function normalizeMolecules(raw: unknown): { id: number; name: string }[] {
  const list = Array.isArray(raw)
    ? raw
    : raw && typeof raw === "object" && Array.isArray((raw as { items?: unknown }).items)
      ? (raw as { items: unknown[] }).items
      : [];
  return list
    .filter((m): m is Record<string, unknown> => !!m && typeof m === "object" && "id" in m)
    .map((m) => ({ id: Number(m.id), name: String(m.name ?? m.formula ?? `molecule ${String(m.id)}`) }));
}
