/** "What": name, code, description and the molecule. */
import { useMolecules } from "../../api/queries/molecules";
import { Card } from "../../components/ui";
import type { Code, SectionProps } from "./formState";

export const CODES: { value: Code; label: string; main: string }[] = [
  { value: "siesta", label: "SIESTA / TranSIESTA", main: "input.fdf" },
  { value: "qe", label: "Quantum ESPRESSO (pw.x)", main: "pw.in" },
  { value: "generic", label: "any program (generic)", main: "" },
];

export function BasicsSection({ state, dispatch }: SectionProps) {
  return (
    <Card title="What">
      <div className="form-grid">
        <label>
          Name
          <input
            name="name"
            required
            maxLength={200}
            value={state.name}
            onChange={(e) => dispatch({ type: "details", changes: { name: e.target.value } })}
          />
        </label>
        <label>
          Code
          <select name="code" value={state.code} onChange={(e) => dispatch({ type: "code", code: e.target.value as Code })}>
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
            value={state.description}
            onChange={(e) => dispatch({ type: "details", changes: { description: e.target.value } })}
          />
        </label>
        <MoleculeField state={state} dispatch={dispatch} />
      </div>
    </Card>
  );
}

function MoleculeField({ state, dispatch }: SectionProps) {
  const molecules = useMolecules();
  return (
    <label>
      Molecule
      <select
        name="molecule"
        value={state.moleculeId}
        onChange={(e) => dispatch({ type: "details", changes: { moleculeId: e.target.value } })}
      >
        <option value="">none</option>
        {molecules.data?.map((m) => (
          <option key={m.id} value={m.id}>
            {m.name}
          </option>
        ))}
      </select>
    </label>
  );
}
