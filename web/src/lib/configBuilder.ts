/**
 * The create form's "chain or sweep" builder: a few fields -> the `configuration` object the
 * API plans from (see `CalculationCreate.configuration` and `hpcgate/domain/plan.py`).
 * Pure functions, so the form, the JSON editor and the tests agree on one definition.
 */

export type Kind = "single" | "chain" | "sweep";
export type ParamValue = string | number | boolean;

export interface BuilderState {
  kind: Kind;
  /** the swept parameter (chain/sweep), e.g. "TS.Voltage" or "x" */
  parameter: string;
  /** its values: "0, 0.1, 0.25" or a range "start:stop:step" (stop included) */
  values: string;
  /** fixed parameters for every step, one "key = value" per line */
  fixed: string;
  /** files a chain step takes from the previous one, comma separated globs */
  inherit: string;
  /** sweep: at most this many array tasks at once (empty: no limit) */
  maxConcurrent: string;
  /** generic code: the shell command each step runs */
  command: string;
  mainInput: string;
  resources: {
    nodes: string;
    tasks: string;
    cpus_per_task: string;
    memory_mb: string;
    walltime_s: string;
  };
}

export const emptyBuilder = (): BuilderState => ({
  kind: "chain",
  parameter: "",
  values: "",
  fixed: "",
  inherit: "",
  maxConcurrent: "",
  command: "",
  mainInput: "",
  resources: { nodes: "", tasks: "", cpus_per_task: "", memory_mb: "", walltime_s: "" },
});

const NUMBER_RE = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** "1" -> 1, "true" -> true, anything else stays text. */
export function parseScalar(text: string): ParamValue {
  const t = text.trim();
  if (NUMBER_RE.test(t)) return Number(t);
  if (t === "true" || t === "false") return t === "true";
  return t;
}

/** Decimal-friendly rounding so 0.1 steps give 0.3, not 0.30000000000000004. */
function tidy(x: number): number {
  return Number.parseFloat(x.toPrecision(12));
}

/** The value list: commas (or new lines), or one numeric range "start:stop:step". */
export function parseValues(text: string): ParamValue[] {
  const t = text.trim();
  if (!t) return [];
  const range = /^\s*([^:,]+):([^:,]+):([^:,]+)\s*$/.exec(t);
  if (range && [range[1], range[2], range[3]].every((p) => NUMBER_RE.test(p.trim()))) {
    const [start, stop, step] = [range[1], range[2], range[3]].map((p) => Number(p.trim()));
    if (step === 0 || Math.sign(stop - start) * Math.sign(step) < 0) {
      throw new Error("range: the step must move from start towards stop");
    }
    const count = Math.floor(tidy((stop - start) / step)) + 1;
    if (count > 10000) throw new Error("range: more than 10000 values");
    return Array.from({ length: count }, (_, i) => tidy(start + i * step));
  }
  return t
    .split(/[,\n]/)
    .map((v) => v.trim())
    .filter((v) => v !== "")
    .map(parseScalar);
}

/** "key = value" lines -> an object (blank lines and # comments ignored). */
export function parseFixed(text: string): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`fixed parameters, line ${i + 1}: use "name = value"`);
    out[line.slice(0, eq).trim()] = parseScalar(line.slice(eq + 1));
  });
  return out;
}

export function variantLabel(parameter: string, value: ParamValue): string {
  return `${parameter}=${String(value)}`;
}

/** The configuration object, without `inputs` (the form adds uploaded files). */
export function buildConfiguration(state: BuilderState, code: string): Record<string, unknown> {
  const config: Record<string, unknown> = { kind: state.kind };
  const fixed = parseFixed(state.fixed);
  if (Object.keys(fixed).length) config.parameters = fixed;
  if (state.kind !== "single") {
    const name = state.parameter.trim();
    if (!name) throw new Error(`a ${state.kind} needs the name of the parameter it varies`);
    const values = parseValues(state.values);
    if (!values.length) throw new Error(`a ${state.kind} needs at least one value`);
    const labels = new Set<string>();
    config.variants = values.map((value) => {
      const label = variantLabel(name, value);
      if (labels.has(label)) throw new Error(`the value ${String(value)} is listed twice`);
      labels.add(label);
      return { label, parameters: { [name]: value } };
    });
  }
  if (state.kind === "chain") {
    const inherit = state.inherit
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean);
    if (inherit.length) config.inherit = inherit;
  }
  if (state.kind === "sweep" && state.maxConcurrent.trim()) {
    const n = Number(state.maxConcurrent);
    if (!Number.isInteger(n) || n < 1) throw new Error("max concurrent must be a positive integer");
    config.max_concurrent = n;
  }
  if (code === "generic") {
    if (!state.command.trim()) throw new Error("a generic calculation needs a command");
    config.command = ["bash", "-c", state.command];
  }
  if (state.mainInput.trim()) config.main_input = state.mainInput.trim();
  const resources: Record<string, number> = {};
  for (const [key, raw] of Object.entries(state.resources)) {
    if (!raw.trim()) continue;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < (key === "gpus" ? 0 : 1)) {
      throw new Error(`resource ${key} must be a positive integer`);
    }
    resources[key] = n;
  }
  if (Object.keys(resources).length) config.resources = resources;
  return config;
}

/** Merge uploaded input files into a configuration (a new object; later files win). */
export function withInputs(
  config: Record<string, unknown>,
  files: Record<string, string>,
): Record<string, unknown> {
  if (!Object.keys(files).length) return config;
  const existing = (config.inputs as Record<string, string> | undefined) ?? {};
  return { ...config, inputs: { ...existing, ...files } };
}
