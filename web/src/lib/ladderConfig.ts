/**
 * The create form's "TranSIESTA bias ladder": a few fields -> `configuration.kind =
 * "transiesta"` (keys and rules of `hpcgate/domain/ladder.py`, docs/siesta.md).
 *
 * The client checks what it can say clearly before sending (0 V present, no bias twice,
 * numbers only, every electrode mapped); the server checks everything again and its 422
 * is shown as it comes. Binary inputs (.TSHS, .DM, .TSDE, .psml, .ion.nc) are uploaded by
 * content and referenced as `binary_inputs: {name: sha256}` (`lib/uploads.ts`).
 */
import { parseValues } from "./configBuilder";

export interface ElectrodeRow {
  /** the name in the device's TS.Elecs block */
  name: string;
  /** the electrode fdf among the uploaded inputs */
  fdf: string;
}

export interface LadderState {
  device: string;
  electrodes: ElectrodeRow[];
  /** "0, 0.1, 0.2, -0.1" or a range "-0.2:0.2:0.1" (volts) */
  biases: string;
  tbtrans: boolean;
  /** binary files to upload with the calculation */
  binaries: File[];
}

export const emptyLadder = (): LadderState => ({
  device: "",
  electrodes: [],
  biases: "0, 0.1, 0.2, -0.1",
  tbtrans: true,
  binaries: [],
});

/** Two biases equal to this many decimals are one point (the server's BIAS_DECIMALS). */
const DECIMALS = 6;
const MAX_BIAS_V = 50;

function round(v: number): number {
  const r = Math.round(v * 10 ** DECIMALS) / 10 ** DECIMALS;
  return r === 0 ? 0 : r; // no -0
}

/** The ladder's biases in volts, in the order given; throws a message a user can act on. */
export function parseBiases(text: string): number[] {
  const values = parseValues(text);
  if (!values.length) throw new Error("list the biases in volts, 0 V included (e.g. 0, 0.1, 0.2, -0.1)");
  const seen = new Set<number>();
  const out: number[] = [];
  for (const value of values) {
    if (typeof value !== "number" || !Number.isFinite(value)) {
      throw new Error(`bias ${JSON.stringify(value)} is not a number of volts`);
    }
    if (Math.abs(value) > MAX_BIAS_V) throw new Error(`bias ${value} V is beyond ±${MAX_BIAS_V} V`);
    const v = round(value);
    if (seen.has(v)) throw new Error(`bias ${v} V is listed twice`);
    seen.add(v);
    out.push(v);
  }
  if (!seen.has(0)) {
    throw new Error("the ladder must include 0 V: TranSIESTA starts every finite bias from the 0 V density");
  }
  return out;
}

/**
 * The electrode names of a device fdf's `%block TS.Elecs` (one name per line, comments
 * dropped), or [] when there is none. One pass over the lines: linear in the file.
 */
export function electrodeNames(fdf: string): string[] {
  const names: string[] = [];
  let inside = false;
  for (const raw of fdf.split("\n")) {
    const line = raw.split(/[#!;]/, 1)[0].trim();
    if (!line) continue;
    const words = line.split(/\s+/);
    const key = (w: string | undefined) => (w ?? "").toLowerCase().replace(/[._-]/g, "");
    if (!inside) {
      if (key(words[0]) === "%block" && key(words[1]) === "tselecs") inside = true;
      continue;
    }
    if (key(words[0]) === "%endblock") break;
    if (!names.includes(words[0])) names.push(words[0]);
  }
  return names;
}

/** Fill the electrode rows from the device fdf, keeping what the user already mapped. */
export function electrodeRows(deviceText: string, current: ElectrodeRow[], fdfs: string[], device: string): ElectrodeRow[] {
  const names = electrodeNames(deviceText);
  if (!names.length) return current;
  const guess = fdfs.find((f) => f !== device) ?? "";
  return names.map((name) => current.find((r) => r.name === name) ?? { name, fdf: guess });
}

/**
 * The ladder's configuration. `base` holds what the rest of the form built (resources,
 * fixed `parameters`); its `kind`, `main_input` and variants are replaced.
 */
export function ladderConfiguration(state: LadderState, base: Record<string, unknown> = {}): Record<string, unknown> {
  const { kind: _k, main_input: _m, variants: _v, inherit: _i, max_concurrent: _c, ...rest } = base;
  if (!state.device) throw new Error("choose the device fdf (upload it under Input files)");
  if (!state.electrodes.length) throw new Error("a ladder needs at least one electrode (name and fdf)");
  const electrodes: Record<string, string> = {};
  for (const row of state.electrodes) {
    const name = row.name.trim();
    if (!name) throw new Error("every electrode needs its name from the device's TS.Elecs block");
    if (!row.fdf) throw new Error(`choose the fdf of electrode ${name}`);
    if (row.fdf === state.device) throw new Error(`electrode ${name}: ${row.fdf} is the device fdf`);
    if (name in electrodes) throw new Error(`electrode ${name} is listed twice`);
    electrodes[name] = row.fdf;
  }
  return {
    ...rest,
    kind: "transiesta",
    device: state.device,
    electrodes,
    biases_v: parseBiases(state.biases),
    tbtrans: state.tbtrans,
  };
}
