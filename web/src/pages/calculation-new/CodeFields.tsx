/** What every step runs: fixed parameters, the command or main input, and resources. */
import type { BuilderState } from "../../lib/configBuilder";
import { CODES } from "./BasicsSection";
import type { SectionProps } from "./formState";

const RESOURCES: [keyof BuilderState["resources"], string][] = [
  ["nodes", "nodes"],
  ["tasks", "MPI tasks"],
  ["cpus_per_task", "CPUs per task"],
  ["memory_mb", "memory (MB)"],
  ["walltime_s", "walltime (s)"],
];

export function CodeFields({ state, dispatch }: SectionProps) {
  const { builder, code } = state;
  const ladder = code === "siesta" ? state.ladder : null;
  const setB = (changes: Partial<BuilderState>) => dispatch({ type: "builder", changes });
  return (
    <>
      <label className="wide">
        <span>
          Fixed parameters (one <code>name = value</code> per line)
        </span>
        <textarea name="fixed" rows={2} value={builder.fixed} onChange={(e) => setB({ fixed: e.target.value })} />
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
        {RESOURCES.map(([key, label]) => (
          <label key={key}>
            {label}
            <input
              name={`res_${key}`}
              type="number"
              min={1}
              value={builder.resources[key]}
              onChange={(e) => setB({ resources: { ...builder.resources, [key]: e.target.value } })}
            />
          </label>
        ))}
      </fieldset>
    </>
  );
}
