/**
 * The "TranSIESTA bias ladder" part of the create form: device fdf, one fdf per electrode
 * name (read from the device's TS.Elecs block), the biases, TBtrans on/off and binary
 * inputs. State and configuration rules live in `lib/ladderConfig.ts`.
 */
import { useEffect } from "react";
import { biasLabel } from "../../lib/dag";
import { electrodeRows, type LadderState, parseBiases } from "../../lib/ladderConfig";
import { BinaryUploads } from "./BinaryUploads";

export function LadderForm({
  state,
  onChange,
  inputs,
}: {
  state: LadderState;
  onChange: (next: LadderState) => void;
  /** the text inputs uploaded so far (name -> content) */
  inputs: Record<string, string>;
}) {
  const fdfs = Object.keys(inputs).filter((n) => n.toLowerCase().endsWith(".fdf"));
  const set = (changes: Partial<LadderState>) => onChange({ ...state, ...changes });
  const deviceText = state.device ? (inputs[state.device] ?? "") : "";

  // A device chosen (or uploaded) fills the electrode rows from its TS.Elecs block.
  useEffect(() => {
    if (!deviceText) return;
    const rows = electrodeRows(deviceText, state.electrodes, fdfs, state.device);
    if (JSON.stringify(rows) !== JSON.stringify(state.electrodes)) set({ electrodes: rows });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [deviceText, fdfs.join("\n")]);
  // Pick the device when exactly one uploaded fdf says SolutionMethod transiesta.
  useEffect(() => {
    if (state.device) return;
    const ts = fdfs.filter((f) => /^\s*SolutionMethod\s+transiesta\b/im.test(inputs[f] ?? ""));
    if (ts.length === 1) set({ device: ts[0] });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [fdfs.join("\n")]);

  let biasNote: { ok: boolean; text: string };
  try {
    const biases = parseBiases(state.biases);
    const sorted = [...biases].sort((a, b) => a - b);
    biasNote = { ok: true, text: `${biases.length} point(s): ${sorted.map(biasLabel).join(", ")}` };
  } catch (e) {
    biasNote = { ok: false, text: e instanceof Error ? e.message : String(e) };
  }

  const setRow = (i: number, changes: Partial<{ name: string; fdf: string }>) =>
    set({ electrodes: state.electrodes.map((r, j) => (j === i ? { ...r, ...changes } : r)) });

  return (
    <fieldset className="wide ladder" data-testid="ladder-form">
      <legend>TranSIESTA bias ladder</legend>
      <p className="muted small">
        Upload the device fdf, the electrode fdf(s) and the pseudopotentials under <i>Input files</i> below. The
        electrodes run first (<code>siesta --electrode</code>), then 0 V, then each branch of biases from the previous
        point&apos;s density; one TBtrans job per point.
      </p>
      <div className="form-grid">
        <label>
          Device fdf
          <select name="ladder_device" value={state.device} onChange={(e) => set({ device: e.target.value })}>
            <option value="">{fdfs.length ? "choose…" : "upload the fdf files first"}</option>
            {fdfs.map((f) => (
              <option key={f} value={f}>
                {f}
              </option>
            ))}
          </select>
        </label>
        <label>
          Biases (V)
          <input
            name="ladder_biases"
            placeholder="0, 0.1, 0.2, -0.1   or   -0.2:0.2:0.1"
            value={state.biases}
            onChange={(e) => set({ biases: e.target.value })}
          />
          <small className={biasNote.ok ? "muted" : "warn"} data-testid="ladder-bias-note">
            {biasNote.text}
          </small>
        </label>
        <label className="inline">
          <input
            type="checkbox"
            name="ladder_tbtrans"
            checked={state.tbtrans}
            onChange={(e) => set({ tbtrans: e.target.checked })}
          />
          TBtrans per point (the I–V curve needs it)
        </label>
      </div>
      <table className="electrodes" data-testid="ladder-electrodes">
        <thead>
          <tr>
            <th>electrode (TS.Elecs name)</th>
            <th>its fdf</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {state.electrodes.map((row, i) => (
            <tr key={i}>
              <td>
                <input
                  name={`electrode_name_${i}`}
                  aria-label={`electrode ${i + 1} name`}
                  value={row.name}
                  onChange={(e) => setRow(i, { name: e.target.value })}
                />
              </td>
              <td>
                <select
                  name={`electrode_fdf_${i}`}
                  aria-label={`electrode ${i + 1} fdf`}
                  value={row.fdf}
                  onChange={(e) => setRow(i, { fdf: e.target.value })}
                >
                  <option value="">choose…</option>
                  {fdfs
                    .filter((f) => f !== state.device)
                    .map((f) => (
                      <option key={f} value={f}>
                        {f}
                      </option>
                    ))}
                </select>
              </td>
              <td>
                <button
                  type="button"
                  className="link"
                  onClick={() => set({ electrodes: state.electrodes.filter((_, j) => j !== i) })}
                >
                  remove
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <button
        type="button"
        className="secondary"
        data-testid="ladder-add-electrode"
        onClick={() => set({ electrodes: [...state.electrodes, { name: "", fdf: "" }] })}
      >
        Add electrode
      </button>
      {deviceText && !state.electrodes.length ? (
        <p className="warn small">The device fdf has no %block TS.Elecs: add its electrodes by hand.</p>
      ) : null}
      <BinaryUploads files={state.binaries} onChange={(binaries) => set({ binaries })} />
    </fieldset>
  );
}
