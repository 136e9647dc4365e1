/**
 * The New Calculation form's state: one reducer, so every section changes it through a named
 * action and the request sent is a pure function of it (`requestOf`, tested in
 * formState.test.ts). Sections render from the state and dispatch; none holds form data.
 */
import type { Schemas } from "../../api/client";
import {
  type AnalysisInfo,
  deselectAnalysis,
  missingRequirements,
  order,
  selectAnalysis,
} from "../../lib/analysisDeps";
import { type BuilderState, buildConfiguration, emptyBuilder, type Kind, withInputs } from "../../lib/configBuilder";
import { emptyLadder, ladderConfiguration, type LadderState } from "../../lib/ladderConfig";

export type Code = NonNullable<Schemas["CalculationCreate"]["code"]>;
type Cluster = Schemas["ClusterOut"];

/** `configuration.start_from`: the first steps start from that calculation's output files. */
export interface StartFrom {
  calculation: number;
  /** shown on the chip */
  name: string;
  /** a step index of that calculation (empty: its last succeeded step) */
  step: string;
  /** comma separated globs (empty: the code's defaults) */
  inherit: string;
}

export interface FormState {
  name: string;
  description: string;
  moleculeId: string;
  code: Code;
  clusterId: number | null;
  queue: string;
  mode: "form" | "json";
  builder: BuilderState;
  /** a TranSIESTA bias ladder instead of the chain/sweep builder (SIESTA only) */
  ladder: LadderState | null;
  jsonText: string;
  /** text input files: name -> content */
  inputs: Record<string, string>;
  analyses: string[];
  /** what the last analysis click did ("Energy requires …: selected too.") */
  note: string | null;
  startFrom: StartFrom | null;
  /** bumped by every change to what would be planned; a preview is for one revision */
  revision: number;
}

export function initialState(moleculeId = ""): FormState {
  return {
    name: "",
    description: "",
    moleculeId,
    code: "siesta",
    clusterId: null,
    queue: "",
    mode: "form",
    builder: emptyBuilder(),
    ladder: null,
    jsonText: "",
    inputs: {},
    analyses: [],
    note: null,
    startFrom: null,
    revision: 0,
  };
}

export type Action =
  | { type: "details"; changes: Partial<Pick<FormState, "name" | "description" | "moleculeId" | "queue">> }
  | { type: "code"; code: Code }
  | { type: "cluster"; cluster: Cluster | null }
  | { type: "clusters-loaded"; clusters: readonly Cluster[] }
  | { type: "builder"; changes: Partial<BuilderState> }
  | { type: "kind"; kind: Kind | "transiesta" }
  | { type: "ladder"; ladder: LadderState }
  | { type: "mode"; mode: "form" | "json" }
  | { type: "json"; text: string }
  | { type: "inputs-added"; files: Record<string, string> }
  | { type: "input-removed"; name: string }
  | { type: "analysis"; analysis: AnalysisInfo; checked: boolean; catalogue: readonly AnalysisInfo[] }
  | { type: "start-from"; calc: Schemas["CalculationDetail"] }
  | { type: "start-from-changed"; changes: Partial<Pick<StartFrom, "step" | "inherit">> }
  | { type: "start-from-removed" }
  /** the user accepted the recommender's proposal: it becomes the form's walltime/memory */
  | { type: "resources-accepted"; walltime_s: number; memory_mb: number | null };

/** The main input file a code reads, guessed from an uploaded file's name. */
function mainInputAmong(names: string[], code: Code): string | undefined {
  return names.find((f) => (code === "siesta" ? f.endsWith(".fdf") : code === "qe" ? f.endsWith(".in") : false));
}

function plan(state: FormState, changes: Partial<FormState>): FormState {
  return { ...state, ...changes, revision: state.revision + 1 };
}

export function reducer(state: FormState, action: Action): FormState {
  switch (action.type) {
    case "details":
      return { ...state, ...action.changes };
    case "code":
      return plan(state, { code: action.code, ladder: action.code === "siesta" ? state.ladder : null });
    case "cluster":
      return plan(state, {
        clusterId: action.cluster?.id ?? null,
        queue: action.cluster?.queues[0]?.logical_queue ?? "",
      });
    case "clusters-loaded": {
      if (state.clusterId !== null || !action.clusters.length) return state;
      const first = action.clusters.find((c) => c.enabled) ?? action.clusters[0];
      return { ...state, clusterId: first.id, queue: first.queues[0]?.logical_queue ?? "" };
    }
    case "builder":
      return plan(state, { builder: { ...state.builder, ...action.changes } });
    case "kind":
      return action.kind === "transiesta"
        ? plan(state, { ladder: emptyLadder() })
        : plan(state, { ladder: null, builder: { ...state.builder, kind: action.kind } });
    case "ladder":
      return plan(state, { ladder: action.ladder });
    case "mode":
      return plan(state, {
        mode: action.mode,
        jsonText: action.mode === "json" && state.mode === "form" ? formConfigText(state) : state.jsonText,
      });
    case "json":
      return plan(state, { jsonText: action.text });
    case "inputs-added": {
      const main = state.builder.mainInput || mainInputAmong(Object.keys(action.files), state.code) || "";
      return plan(state, {
        inputs: { ...state.inputs, ...action.files },
        builder: { ...state.builder, mainInput: main },
      });
    }
    case "input-removed": {
      const { [action.name]: _, ...rest } = state.inputs;
      return plan(state, { inputs: rest });
    }
    case "analysis":
      return plan(state, analysisChange(state, action));
    case "start-from":
      return plan(state, {
        startFrom: { calculation: action.calc.id, name: action.calc.name, step: "", inherit: "" },
        moleculeId: action.calc.molecule_id ? String(action.calc.molecule_id) : state.moleculeId,
        clusterId: action.calc.cluster_id,
        queue: action.calc.logical_queue,
      });
    case "start-from-changed":
      return state.startFrom ? plan(state, { startFrom: { ...state.startFrom, ...action.changes } }) : state;
    case "start-from-removed":
      return plan(state, { startFrom: null });
    case "resources-accepted":
      return plan(state, acceptedResources(state, action));
  }
}

/** The proposal written where the form keeps resources: the builder's fields, or the JSON. */
function acceptedResources(
  state: FormState,
  { walltime_s, memory_mb }: Extract<Action, { type: "resources-accepted" }>,
): Partial<FormState> {
  const memory = memory_mb !== null ? { memory_mb } : {};
  if (state.mode === "json") {
    try {
      const parsed: unknown = JSON.parse(state.jsonText || "{}");
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return {};
      const config = parsed as Record<string, unknown>;
      const old = config.resources && typeof config.resources === "object" ? config.resources : {};
      const resources = { ...old, walltime_s, ...memory };
      return { jsonText: JSON.stringify({ ...config, resources }, null, 2) };
    } catch {
      return {}; // not JSON yet: nothing to write into
    }
  }
  const text = memory_mb !== null ? { memory_mb: String(memory_mb) } : {};
  return {
    builder: {
      ...state.builder,
      resources: { ...state.builder.resources, walltime_s: String(walltime_s), ...text },
    },
  };
}

function analysisChange(
  state: FormState,
  { analysis: a, checked, catalogue }: Extract<Action, { type: "analysis" }>,
): Partial<FormState> {
  if (checked) {
    const r = selectAnalysis(state.analyses, a.name, catalogue);
    const titles = r.added.map((n) => catalogue.find((x) => x.name === n)?.title ?? n);
    return {
      analyses: r.selection,
      note: titles.length ? `${a.title} requires ${titles.join(", ")}: selected too.` : null,
    };
  }
  const r = deselectAnalysis(state.analyses, a.name, catalogue);
  if (r.blockedBy.length) return { note: `${a.title} is required by ${r.blockedBy.join(", ")}; unselect those first.` };
  return { analyses: r.selection, note: null };
}

/** The builder's (or the ladder's) configuration, without input files. */
function formConfiguration(state: FormState): Record<string, unknown> {
  return state.ladder && state.code === "siesta"
    ? ladderConfiguration(state.ladder, buildConfiguration({ ...state.builder, kind: "single", mainInput: "" }, state.code))
    : buildConfiguration(state.builder, state.code);
}

/** What the JSON editor starts from when switching to it. */
function formConfigText(state: FormState): string {
  let config: Record<string, unknown>;
  try {
    config = formConfiguration(state);
  } catch {
    config = { kind: state.builder.kind };
  }
  return JSON.stringify(config, null, 2);
}

function splitList(text: string): string[] {
  return text
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
}

/** `configuration.start_from` as the API takes it. */
export function startFromConfig(s: StartFrom): Record<string, unknown> {
  const out: Record<string, unknown> = { calculation: s.calculation };
  if (s.step.trim()) out.step = Number(s.step);
  const inherit = splitList(s.inherit);
  if (inherit.length) out.inherit = inherit;
  return out;
}

/** The configuration sent, or the problem that keeps it from being sent. */
export function configurationOf(state: FormState): { config: Record<string, unknown> | null; problem: string | null } {
  try {
    let config: Record<string, unknown>;
    if (state.mode === "json") {
      const parsed: unknown = JSON.parse(state.jsonText || "{}");
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
        return { config: null, problem: "the configuration must be a JSON object" };
      }
      config = parsed as Record<string, unknown>;
    } else {
      config = formConfiguration(state);
    }
    if (state.startFrom) config = { ...config, start_from: startFromConfig(state.startFrom) };
    return { config: withInputs(config, state.inputs), problem: null };
  } catch (e) {
    return { config: null, problem: e instanceof Error ? e.message : String(e) };
  }
}

/** Binary files to send with the calculation (the ladder's). */
export function binariesOf(state: FormState): File[] {
  return state.ladder && state.code === "siesta" ? state.ladder.binaries : [];
}

/** The request body, or why it cannot be sent yet. */
export function requestOf(
  state: FormState,
  catalogue: readonly AnalysisInfo[],
): { body: Schemas["CalculationCreate"] } | { problem: string } {
  const { config, problem } = configurationOf(state);
  if (!config) return { problem: problem ?? "invalid configuration" };
  if (state.clusterId === null) return { problem: "choose a cluster" };
  const missing = Object.keys(missingRequirements(state.analyses, catalogue));
  if (missing.length) return { problem: `missing analyses: ${missing.join(", ")}` };
  return {
    body: {
      name: state.name.trim(),
      description: state.description,
      molecule_id: state.moleculeId ? Number(state.moleculeId) : null,
      cluster_id: state.clusterId,
      logical_queue: state.queue,
      code: state.code,
      configuration: config,
      analyses: order(state.analyses, catalogue),
    },
  };
}

/** What every section of the form receives. */
export interface SectionProps {
  state: FormState;
  dispatch: (action: Action) => void;
}
