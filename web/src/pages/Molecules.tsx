import { type ChangeEvent, type FormEvent, lazy, Suspense, useMemo, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { useCatalogue } from "../api/queries/analyses";
import { useCalculations } from "../api/queries/calculations";
import { useComparison, useMolecule, useMolecules, useRegisterMolecule } from "../api/queries/molecules";
import { CalculationsTable } from "../components/CalculationsTable";
import { XYChart } from "../components/Charts";
import { Card, Empty, ErrorBox, Loading, StateBadge } from "../components/ui";
import { fmtDate, fmtNumber } from "../lib/format";
import { normalizeAtoms } from "../lib/molecule";
import { groupGraphs, type OutputSeries } from "../lib/report";

// 3Dmol.js is only loaded on a molecule's page (its own chunk, see MoleculeViewer.tsx).
const MoleculeViewer = lazy(() => import("../components/MoleculeViewer").then((m) => ({ default: m.MoleculeViewer })));

/**
 * Molecules: the list (formula, calculation counts), registering one from an xyz or fdf
 * geometry, and a molecule's page (3D structure, its calculations, one analysis compared
 * across them).
 */
export function MoleculesPage() {
  const { id } = useParams();
  if (id) return <MoleculeDetail id={Number(id)} />;
  return (
    <div className="page" data-testid="page-molecules">
      <header className="page-head">
        <h1>Molecules</h1>
      </header>
      <MoleculeIndex />
    </div>
  );
}

function MoleculeIndex() {
  const list = useMolecules();
  return (
    <div className="grid two">
      <Card title={`Molecules${list.data ? ` (${list.data.length})` : ""}`} testId="molecule-list">
        <ErrorBox error={list.error} />
        {list.isLoading ? <Loading /> : null}
        {list.data && list.data.length === 0 ? <Empty>No molecule registered yet.</Empty> : null}
        {list.data && list.data.length ? (
          <table>
            <thead>
              <tr>
                <th>name</th>
                <th>formula</th>
                <th>atoms</th>
                <th>calculations</th>
                <th>registered</th>
              </tr>
            </thead>
            <tbody>
              {list.data.map((m) => (
                <tr key={m.id} data-molecule={m.name}>
                  <td>
                    <Link to={`/molecules/${m.id}`}>{m.name}</Link>
                  </td>
                  <td>
                    <Formula formula={m.formula} />
                  </td>
                  <td>{m.atoms.length}</td>
                  <td data-testid={`calc-count-${m.id}`}>{m.calculation_count ?? 0}</td>
                  <td>{fmtDate(m.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </Card>
      <RegisterMolecule />
    </div>
  );
}

/** H2O -> H<sub>2</sub>O */
function Formula({ formula }: { formula: string }) {
  const parts = formula.split(/(\d+)/).filter(Boolean);
  return (
    <span className="formula" data-formula={formula}>
      {parts.map((p, i) => (/^\d+$/.test(p) ? <sub key={i}>{p}</sub> : <span key={i}>{p}</span>))}
    </span>
  );
}

function guessFormat(filename: string, text: string): "xyz" | "fdf" {
  if (/\.fdf$/i.test(filename) || /%block/i.test(text)) return "fdf";
  return "xyz";
}

function RegisterMolecule() {
  const register = useRegisterMolecule();
  const navigate = useNavigate();
  const [name, setName] = useState("");
  const [format, setFormat] = useState<"xyz" | "fdf">("xyz");
  const [text, setText] = useState("");

  const onFile = async (e: ChangeEvent<HTMLInputElement>) => {
    const file = e.target.files?.[0];
    if (!file) return;
    const content = await file.text();
    setText(content);
    setFormat(guessFormat(file.name, content));
    if (!name.trim()) setName(file.name.replace(/\.(xyz|fdf)$/i, ""));
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    register.mutate({ name: name.trim(), format, text }, { onSuccess: (m) => navigate(`/molecules/${m.id}`) });
  };

  return (
    <Card title="Register a molecule" testId="register-molecule">
      <form onSubmit={submit} aria-label="register molecule" className="form-grid">
        <label>
          Name
          <input name="molecule_name" required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Format
          <select name="molecule_format" value={format} onChange={(e) => setFormat(e.target.value as "xyz" | "fdf")}>
            <option value="xyz">xyz (Å)</option>
            <option value="fdf">SIESTA fdf (coordinates block)</option>
          </select>
        </label>
        <label className="wide">
          <span>Geometry (paste, or load a file below)</span>
          <textarea
            name="molecule_text"
            className="mono"
            rows={8}
            required
            placeholder={"3\nwater\nO 0.000 0.000 0.000\nH 0.757 0.586 0.000\nH -0.757 0.586 0.000"}
            value={text}
            onChange={(e) => setText(e.target.value)}
          />
        </label>
        <label className="file wide">
          Load a .xyz or .fdf file
          <input type="file" name="molecule_file" accept=".xyz,.fdf,text/plain" onChange={(e) => void onFile(e)} />
        </label>
        <div className="wide">
          <ErrorBox error={register.error} title="Refused" />
          <button type="submit" disabled={register.isPending || !name.trim() || !text.trim()} data-testid="register">
            {register.isPending ? "Registering…" : "Register"}
          </button>
        </div>
      </form>
    </Card>
  );
}

function MoleculeDetail({ id }: { id: number }) {
  const valid = Number.isInteger(id) && id > 0;
  const molecule = useMolecule(id);
  const calcs = useCalculations({ molecule_id: id, limit: 100 }, { enabled: valid });
  const m = molecule.data;
  const atoms = useMemo(() => normalizeAtoms(m?.atoms), [m]);
  if (!valid) return <ErrorBox error="not a molecule id" />;
  if (molecule.error && !m) return <ErrorBox error={molecule.error} />;
  if (!m) return <Loading />;
  return (
    <div className="page" data-testid="page-molecule">
      <header className="page-head">
        <div>
          <h1>
            <span className="muted">#{m.id}</span> {m.name}
          </h1>
          <p className="muted">
            <Formula formula={m.formula} /> · {atoms.length} atom(s) · from {m.format || "?"} · registered{" "}
            {fmtDate(m.created_at)}
          </p>
        </div>
        <div className="row">
          <Link to={`/calculations/new?molecule=${m.id}`}>New calculation of this molecule</Link>
          <Link to="/molecules">All molecules</Link>
        </div>
      </header>
      <div className="grid two">
        <Card title="Structure" testId="structure">
          {atoms.length ? (
            <Suspense fallback={<Loading what="Loading the 3D viewer" />}>
              <MoleculeViewer atoms={atoms} title={m.name} />
            </Suspense>
          ) : (
            <Empty>No atoms.</Empty>
          )}
        </Card>
        <Card title={`Atoms (${atoms.length})`} testId="atoms">
          <div style={{ maxHeight: 460, overflow: "auto" }}>
            <table>
              <thead>
                <tr>
                  <th>#</th>
                  <th>element</th>
                  <th>x (Å)</th>
                  <th>y (Å)</th>
                  <th>z (Å)</th>
                </tr>
              </thead>
              <tbody>
                {atoms.map((a, i) => (
                  <tr key={i}>
                    <td>{i + 1}</td>
                    <td>{a.symbol}</td>
                    {a.xyz.map((v, j) => (
                      <td key={j} className="num">
                        {v.toFixed(4)}
                      </td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </Card>
      </div>
      <Card title={`Calculations (${m.calculation_count ?? 0})`} testId="molecule-calculations">
        <ErrorBox error={calcs.error} />
        {calcs.data ? (
          <CalculationsTable
            rows={calcs.data.items}
            columns={["id", "name", "state", "code", "kind", "created", "report"]}
            empty="No calculation of this molecule yet."
          />
        ) : null}
      </Card>
      <Comparison moleculeId={m.id} codes={[...new Set(calcs.data?.items.map((c) => c.code) ?? [])]} />
    </div>
  );
}

function isScalar(v: unknown): v is string | number | boolean {
  return typeof v === "number" || typeof v === "string" || typeof v === "boolean";
}

function Comparison({ moleculeId, codes }: { moleculeId: number; codes: string[] }) {
  const [analysis, setAnalysis] = useState("");
  const catalogue = useCatalogue();
  const offered = (catalogue.data ?? []).filter(
    (a) => codes.length === 0 || a.codes.length === 0 || a.codes.some((c) => codes.includes(c)) || codes.includes("generic"),
  );
  const compare = useComparison(moleculeId, analysis);
  const rows = compare.data ?? [];

  // Every calculation's series on shared axes: one chart per graph key, series labelled by calculation.
  const graphs = useMemo(() => {
    const all: OutputSeries[] = [];
    for (const r of rows) {
      for (const s of r.output?.series ?? []) {
        all.push({ ...s, label: `#${r.calculation_id} ${r.name}${s.label ? ` · ${s.label}` : ""}` });
      }
    }
    return groupGraphs(all);
  }, [rows]);
  const summaryKeys = useMemo(() => {
    const keys: string[] = [];
    for (const r of rows) {
      for (const [k, v] of Object.entries(r.output?.summary ?? {})) {
        if (isScalar(v) && !keys.includes(k)) keys.push(k);
      }
    }
    return keys.slice(0, 12);
  }, [rows]);

  return (
    <Card
      title="Compare an analysis across these calculations"
      testId="comparison"
      actions={
        <select aria-label="compare analysis" value={analysis} onChange={(e) => setAnalysis(e.target.value)}>
          <option value="">choose an analysis…</option>
          {offered.map((a) => (
            <option key={a.name} value={a.name}>
              {a.title} ({a.name})
            </option>
          ))}
        </select>
      }
    >
      <ErrorBox error={catalogue.error ?? compare.error} />
      {analysis === "" ? <p className="muted">Choose an analysis to see each calculation's result side by side.</p> : null}
      {compare.isLoading ? <Loading /> : null}
      {analysis !== "" && compare.data && rows.length === 0 ? (
        <Empty>No calculation of this molecule has a result for {analysis} yet.</Empty>
      ) : null}
      {rows.length ? (
        <>
          <div className="grid two" data-testid="comparison-charts">
            {graphs.map((g) => (
              <div key={g.key}>
                <h3>{g.title}</h3>
                <XYChart
                  series={g.series}
                  xLabel={g.xLabel}
                  yLabel={g.yLabel}
                  yScale={g.yScale}
                  xTicks={g.xTicks}
                  testId={`comparison-chart-${g.key}`}
                />
              </div>
            ))}
          </div>
          <table data-testid="comparison-table">
            <thead>
              <tr>
                <th>calculation</th>
                <th>state</th>
                <th>analysis</th>
                {summaryKeys.map((k) => (
                  <th key={k}>{k}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.calculation_id} data-calculation={r.calculation_id}>
                  <td>
                    <Link to={`/calculations/${r.calculation_id}`}>
                      #{r.calculation_id} {r.name}
                    </Link>
                    {r.variants && r.variants.length > 1 ? (
                      <span className="muted small"> · {r.variants.length} variants</span>
                    ) : null}
                  </td>
                  <td>
                    <StateBadge state={r.state} />
                  </td>
                  <td>{r.output?.error ? <span className="warn">{r.output.error}</span> : (r.status ?? "")}</td>
                  {summaryKeys.map((k) => {
                    const v = r.output?.summary?.[k];
                    return (
                      <td key={k} className="num">
                        {typeof v === "number" ? fmtNumber(v) : isScalar(v) ? String(v) : "—"}
                      </td>
                    );
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </Card>
  );
}
