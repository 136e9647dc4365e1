/**
 * Laying out a calculation's steps as a DAG (pure, no DOM), drawn by `StepDag.tsx` as SVG.
 *
 * Two layouts, because a bias ladder reads best along its bias axis:
 *
 * - **ladder** (every step carries `ladder.role` electrode/device/tbtrans, see
 *   `hpcgate/domain/ladder.py`): three columns — electrodes, device points, TBtrans — and
 *   one row per bias, the highest bias on top, so the two branches climb up and down from
 *   0 V and each TBtrans step sits beside its point;
 * - **layered** (any other kind): columns in topological order (a step's column is one
 *   more than its furthest parent's), rows ordered by their parents' mean row to keep
 *   edges short.
 *
 * The step list comes from the API and is treated as untrusted: unknown parents and
 * self-edges are dropped, and a cycle (which the server never plans) does not hang the
 * page: its steps are placed after the rest and `cyclic` is set.
 */

export interface DagStep {
  id: number;
  index: number;
  label: string;
  state: string;
  state_reason?: string | null;
  parents?: number[] | null;
  ladder?: Record<string, unknown> | null;
}

export type EdgeKind = "electrode" | "chain" | "tbtrans" | "files";

export interface DagNode {
  step: DagStep;
  /** column (layered: topological layer; ladder: 0 electrodes, 1 device, 2 TBtrans) */
  column: number;
  row: number;
  x: number;
  y: number;
  role: string | null;
  bias: number | null;
}

export interface DagEdge {
  from: number;
  to: number;
  kind: EdgeKind;
  /** polyline from parent to child, in layout coordinates */
  points: [number, number][];
}

export interface DagLayout {
  kind: "ladder" | "layered";
  nodes: DagNode[];
  edges: DagEdge[];
  width: number;
  height: number;
  cyclic: boolean;
}

export const NODE_W = 150;
export const NODE_H = 40;
const GAP_X = 70;
const GAP_Y = 18;
const PAD = 12;

const ROLES = ["electrode", "device", "tbtrans"] as const;

function finite(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function roleOf(step: DagStep): string | null {
  const role = step.ladder?.role;
  return typeof role === "string" ? role : null;
}

/** Parents that exist in this calculation, without self-edges or repeats. */
function cleanParents(steps: readonly DagStep[]): Map<number, number[]> {
  const ids = new Set(steps.map((s) => s.id));
  return new Map(
    steps.map((s) => [
      s.id,
      [...new Set((s.parents ?? []).filter((p) => p !== s.id && ids.has(p)))],
    ]),
  );
}

/** Steps in topological order (Kahn, ties by index); steps on a cycle come last. */
export function topologicalOrder(steps: readonly DagStep[]): { order: DagStep[]; cyclic: boolean } {
  const parents = cleanParents(steps);
  const children = new Map<number, number[]>(steps.map((s) => [s.id, []]));
  const missing = new Map<number, number>();
  for (const s of steps) {
    const ps = parents.get(s.id) ?? [];
    missing.set(s.id, ps.length);
    for (const p of ps) children.get(p)?.push(s.id);
  }
  const byId = new Map(steps.map((s) => [s.id, s]));
  const byIndex = (a: DagStep, b: DagStep) => a.index - b.index || a.id - b.id;
  let ready = steps.filter((s) => missing.get(s.id) === 0).sort(byIndex);
  const order: DagStep[] = [];
  const placed = new Set<number>();
  while (ready.length) {
    const next: DagStep[] = [];
    for (const s of ready) {
      order.push(s);
      placed.add(s.id);
      for (const c of children.get(s.id) ?? []) {
        const left = (missing.get(c) ?? 0) - 1;
        missing.set(c, left);
        if (left === 0) next.push(byId.get(c)!);
      }
    }
    ready = next.sort(byIndex);
  }
  const rest = steps.filter((s) => !placed.has(s.id)).sort(byIndex);
  return { order: [...order, ...rest], cyclic: rest.length > 0 };
}

function isLadder(steps: readonly DagStep[]): boolean {
  return (
    steps.length > 0 &&
    steps.every((s) => {
      const role = roleOf(s);
      if (!role || !(ROLES as readonly string[]).includes(role)) return false;
      return role === "electrode" || finite(s.ladder?.bias_v) !== null;
    }) &&
    steps.some((s) => roleOf(s) === "device")
  );
}

function position(column: number, row: number, offsetRows = 0): { x: number; y: number } {
  return {
    x: PAD + column * (NODE_W + GAP_X),
    y: PAD + (row + offsetRows) * (NODE_H + GAP_Y),
  };
}

function edgePoints(a: DagNode, b: DagNode): [number, number][] {
  if (a.column === b.column) {
    // same column (a ladder branch): bottom/top middle, whichever faces the other node
    const down = b.y > a.y;
    return [
      [a.x + NODE_W / 2, down ? a.y + NODE_H : a.y],
      [b.x + NODE_W / 2, down ? b.y : b.y + NODE_H],
    ];
  }
  const forward = b.column > a.column;
  return [
    [forward ? a.x + NODE_W : a.x, a.y + NODE_H / 2],
    [forward ? b.x : b.x + NODE_W, b.y + NODE_H / 2],
  ];
}

function edgeKind(parent: DagNode, child: DagNode): EdgeKind {
  if (parent.role === "electrode") return "electrode";
  if (child.role === "tbtrans") return "tbtrans";
  if (parent.role === "device" && child.role === "device") return "chain";
  return "files";
}

function finish(kind: DagLayout["kind"], nodes: DagNode[], steps: readonly DagStep[], cyclic: boolean): DagLayout {
  const parents = cleanParents(steps);
  const byId = new Map(nodes.map((n) => [n.step.id, n]));
  const edges: DagEdge[] = [];
  for (const n of nodes) {
    for (const p of parents.get(n.step.id) ?? []) {
      const parent = byId.get(p);
      if (!parent) continue;
      edges.push({ from: p, to: n.step.id, kind: edgeKind(parent, n), points: edgePoints(parent, n) });
    }
  }
  const width = nodes.reduce((w, n) => Math.max(w, n.x + NODE_W + PAD), 0);
  const height = nodes.reduce((h, n) => Math.max(h, n.y + NODE_H + PAD), 0);
  return { kind, nodes, edges, width, height, cyclic };
}

/** Electrodes | device points | TBtrans, one row per bias (highest on top). */
export function layoutLadder(steps: readonly DagStep[]): DagLayout {
  const biases = [
    ...new Set(
      steps.filter((s) => roleOf(s) !== "electrode").map((s) => finite(s.ladder?.bias_v) as number),
    ),
  ].sort((a, b) => b - a);
  const rowOf = new Map(biases.map((b, i) => [b, i]));
  const electrodes = steps.filter((s) => roleOf(s) === "electrode").sort((a, b) => a.index - b.index);
  // electrodes stacked around the 0 V row (where the ladder starts)
  const zeroRow = rowOf.get(0) ?? Math.floor((biases.length - 1) / 2);
  const first = Math.max(0, zeroRow - (electrodes.length - 1) / 2);
  const nodes: DagNode[] = [];
  electrodes.forEach((s, i) => {
    nodes.push({ step: s, column: 0, row: first + i, ...position(0, first + i), role: "electrode", bias: null });
  });
  for (const s of steps) {
    const role = roleOf(s);
    if (role === "electrode") continue;
    const bias = finite(s.ladder?.bias_v) as number;
    const column = role === "device" ? 1 : 2;
    const row = rowOf.get(bias) ?? 0;
    nodes.push({ step: s, column, row, ...position(column, row), role, bias });
  }
  const { cyclic } = topologicalOrder(steps);
  return finish("ladder", nodes, steps, cyclic);
}

/** Topological columns; rows by the mean row of each step's parents. */
export function layoutLayered(steps: readonly DagStep[]): DagLayout {
  const { order, cyclic } = topologicalOrder(steps);
  const parents = cleanParents(steps);
  const column = new Map<number, number>();
  for (const s of order) {
    let c = 0;
    for (const p of parents.get(s.id) ?? []) {
      const pc = column.get(p);
      if (pc !== undefined) c = Math.max(c, pc + 1); // a parent later on a cycle is ignored
    }
    column.set(s.id, c);
  }
  const columns: DagStep[][] = [];
  for (const s of order) (columns[column.get(s.id)!] ??= []).push(s);
  const row = new Map<number, number>();
  for (const members of columns) {
    if (!members) continue;
    const key = (s: DagStep) => {
      const rows = (parents.get(s.id) ?? []).map((p) => row.get(p)).filter((r): r is number => r !== undefined);
      return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : -1;
    };
    members
      .map((s) => ({ s, k: key(s) }))
      .sort((a, b) => a.k - b.k || a.s.index - b.s.index)
      .forEach(({ s }, i) => row.set(s.id, i));
  }
  const tallest = Math.max(0, ...columns.map((m) => m?.length ?? 0));
  const nodes: DagNode[] = order.map((s) => {
    const c = column.get(s.id)!;
    const r = row.get(s.id)!;
    const offset = (tallest - columns[c].length) / 2; // centre short columns
    return { step: s, column: c, row: r, ...position(c, r, offset), role: roleOf(s), bias: finite(s.ladder?.bias_v) };
  });
  return finish("layered", nodes, steps, cyclic);
}

/** The ladder layout for a TranSIESTA ladder, the layered one for anything else. */
export function layoutSteps(steps: readonly DagStep[]): DagLayout {
  return isLadder(steps) ? layoutLadder(steps) : layoutLayered(steps);
}

/** `0 V`, `+0.1 V`, `-0.25 V`, `+5e-05 V`: as the server names points (`f"{v:+.6g} V"`). */
export function biasLabel(bias: number): string {
  if (bias === 0) return "0 V";
  const sign = bias > 0 ? "+" : "-";
  const [mantissa, exp] = Math.abs(bias).toExponential(5).split("e");
  const e = Number(exp);
  const strip = (t: string) => (t.includes(".") ? t.replace(/0+$/, "").replace(/\.$/, "") : t);
  if (e < -4 || e >= 6) {
    return `${sign}${strip(mantissa)}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")} V`;
  }
  return `${sign}${strip(Math.abs(bias).toFixed(Math.max(0, 5 - e)))} V`;
}
