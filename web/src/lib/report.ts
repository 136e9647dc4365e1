/**
 * Shaping calculation results for display: the central analysis outputs
 * (`AnalysisOutput.to_dict()`: tables, series grouped by graph, summary, notes) and the
 * per-step extracted data (one column per step, one row per scalar field).
 */

export interface OutputSeries {
  graph: string;
  graph_title?: string;
  label: string;
  x: (number | null)[];
  y: (number | null)[];
  x_label?: string;
  y_label?: string;
  x_unit?: string;
  y_unit?: string;
  kind?: string;
  y_scale?: string;
  x_ticks?: (number | null)[];
  x_tick_labels?: string[];
}

export interface OutputTable {
  name: string;
  title?: string;
  columns: { name: string; unit?: string }[];
  rows: unknown[][];
}

export interface AnalysisOutputDoc {
  name?: string;
  title?: string;
  tables?: OutputTable[];
  series?: OutputSeries[];
  summary?: Record<string, unknown>;
  notes?: string[];
  error?: string;
}

export interface Graph {
  key: string;
  title: string;
  xLabel: string;
  yLabel: string;
  yScale: string;
  series: OutputSeries[];
  xTicks?: { values: number[]; labels: string[] };
}

function axis(label: string | undefined, unit: string | undefined, fallback: string): string {
  const l = label || fallback;
  return unit ? `${l} (${unit})` : l;
}

/** Series sharing `graph` are drawn on the same axes, in first-seen order. */
export function groupGraphs(series: readonly OutputSeries[] = []): Graph[] {
  const out = new Map<string, Graph>();
  for (const s of series) {
    let g = out.get(s.graph);
    if (!g) {
      const ticks = (s.x_ticks ?? []).filter((v): v is number => typeof v === "number");
      g = {
        key: s.graph,
        title: s.graph_title || s.graph,
        xLabel: axis(s.x_label, s.x_unit, "x"),
        yLabel: axis(s.y_label, s.y_unit, "y"),
        yScale: s.y_scale ?? "linear",
        series: [],
        xTicks:
          ticks.length && s.x_tick_labels?.length
            ? { values: ticks, labels: s.x_tick_labels.slice(0, ticks.length) }
            : undefined,
      };
      out.set(s.graph, g);
    }
    g.series.push(s);
  }
  return [...out.values()];
}

export interface ExtractedItem {
  step_id: number;
  step_index: number;
  task_index: number;
  kind: string;
  data: Record<string, unknown>;
}

export interface StepColumn {
  key: string;
  label: string;
}

export interface ScalarTable {
  kind: string;
  columns: StepColumn[];
  rows: { field: string; values: unknown[] }[];
}

const isScalar = (v: unknown) =>
  v === null || ["string", "number", "boolean"].includes(typeof v);

/** Flatten `{a: 1, b: {c: 2}}` to `{a: 1, "b.c": 2}` (scalars only, arrays left out). */
export function scalarFields(data: Record<string, unknown>, prefix = "", depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isScalar(v)) out[key] = v;
    else if (v && typeof v === "object" && !Array.isArray(v) && depth < 2) {
      Object.assign(out, scalarFields(v as Record<string, unknown>, key, depth + 1));
    }
  }
  return out;
}

/**
 * One table per result kind (`validation`, `accounting`, `analysis:energy`…): a column per
 * step (and array task), a row per scalar field — a chain's trend reads left to right.
 */
export function stepTables(
  items: readonly ExtractedItem[],
  stepLabels: Record<number, string> = {},
): ScalarTable[] {
  const kinds = [...new Set(items.map((i) => i.kind))].sort((a, b) => kindRank(a) - kindRank(b) || a.localeCompare(b));
  return kinds.map((kind) => {
    const mine = items
      .filter((i) => i.kind === kind)
      .sort((a, b) => a.step_index - b.step_index || a.task_index - b.task_index);
    const columns = mine.map((i) => ({
      key: `${i.step_index}:${i.task_index}`,
      label:
        (stepLabels[i.step_index] ?? `step ${i.step_index}`) +
        (i.task_index >= 0 ? ` · task ${i.task_index}` : ""),
    }));
    const flat = mine.map((i) => scalarFields(i.data));
    const fields: string[] = [];
    for (const f of flat) for (const k of Object.keys(f)) if (!fields.includes(k)) fields.push(k);
    return {
      kind,
      columns,
      rows: fields.map((field) => ({ field, values: flat.map((f) => (field in f ? f[field] : undefined)) })),
    };
  });
}

function kindRank(kind: string): number {
  if (kind === "validation") return 0;
  if (kind.startsWith("analysis:")) return 1;
  if (kind === "accounting") return 3;
  return 2;
}

/** Numeric rows that change across at least two columns: worth a trend graph. */
export function trendRows(table: ScalarTable): { field: string; values: (number | null)[] }[] {
  if (table.columns.length < 2) return [];
  const rows = table.rows
    .filter((r) => r.values.filter((v) => typeof v === "number").length >= 2)
    .map((r) => ({ field: r.field, values: r.values.map((v) => (typeof v === "number" ? v : null)) }));
  // rows whose value changes from step to step first: they are the interesting trends
  const varies = (r: { values: (number | null)[] }) => new Set(r.values.filter((v) => v !== null)).size > 1;
  return [...rows.filter(varies), ...rows.filter((r) => !varies(r))];
}

/** CSV of one scalar table (quoted as RFC 4180 wants). */
export function tableCsv(table: ScalarTable): string {
  const q = (v: unknown) => {
    const s = v === undefined || v === null ? "" : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [["field", ...table.columns.map((c) => c.label)].map(q).join(",")];
  for (const r of table.rows) lines.push([r.field, ...r.values].map(q).join(","));
  return lines.join("\n") + "\n";
}
