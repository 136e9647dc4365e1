/** The shape of the run: single, chain or sweep over one parameter, or a TranSIESTA ladder. */
import type { Kind } from "../../lib/configBuilder";
import type { SectionProps } from "./formState";
import { LadderForm } from "./LadderForm";

const KINDS: { kind: Kind; label: string }[] = [
  { kind: "single", label: "single run" },
  { kind: "chain", label: "chain (each step starts from the previous one's files)" },
  { kind: "sweep", label: "sweep (independent variants, one job array)" },
];

export function RunKindFields({ state, dispatch }: SectionProps) {
  const ladder = state.code === "siesta" ? state.ladder : null;
  return (
    <>
      <KindChoice state={state} dispatch={dispatch} />
      {ladder ? (
        <LadderForm state={ladder} onChange={(next) => dispatch({ type: "ladder", ladder: next })} inputs={state.inputs} />
      ) : (
        <VariedFields state={state} dispatch={dispatch} />
      )}
    </>
  );
}

function KindChoice({ state, dispatch }: SectionProps) {
  const ladder = state.code === "siesta" ? state.ladder : null;
  return (
    <fieldset className="wide kind">
      <legend>Kind</legend>
      {KINDS.map(({ kind, label }) => (
        <label key={kind} className="inline">
          <input
            type="radio"
            name="kind"
            value={kind}
            checked={!ladder && state.builder.kind === kind}
            onChange={() => dispatch({ type: "kind", kind })}
          />
          {label}
        </label>
      ))}
      {state.code === "siesta" ? (
        <label className="inline">
          <input
            type="radio"
            name="kind"
            value="transiesta"
            checked={!!ladder}
            onChange={() => dispatch({ type: "kind", kind: "transiesta" })}
          />
          TranSIESTA bias ladder (electrodes, 0 V, bias branches, TBtrans per point)
        </label>
      ) : null}
    </fieldset>
  );
}

/** A chain or sweep: the varied parameter and its values, and what each kind adds. */
function VariedFields({ state, dispatch }: SectionProps) {
  const { builder, code } = state;
  const setB = (changes: Partial<typeof builder>) => dispatch({ type: "builder", changes });
  if (builder.kind === "single") return null;
  return (
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
      {builder.kind === "chain" ? (
        <label>
          Files a step takes from the previous one
          <input
            name="inherit"
            placeholder={code === "siesta" ? "default: *.DM, *.TSDE, *.TSHS" : "e.g. *.dat, restart.bin"}
            value={builder.inherit}
            onChange={(e) => setB({ inherit: e.target.value })}
          />
        </label>
      ) : (
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
      )}
    </>
  );
}
