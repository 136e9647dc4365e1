import { describe, expect, it } from "vitest";
import { biasLabel, type DagStep, layoutLayered, layoutSteps, NODE_H, NODE_W, topologicalOrder } from "./dag";

function step(index: number, label: string, parents: number[] = [], ladder?: Record<string, unknown>, state = "harvested"): DagStep {
  return { id: 100 + index, index, label, state, parents: parents.map((p) => 100 + p), ladder: ladder ?? null };
}

/** The steps `build_transiesta_plan` makes for biases 0, +0.1, +0.2, -0.1 with TBtrans. */
function ladderSteps(states: Record<string, string> = {}): DagStep[] {
  const s = (index: number, label: string, parents: number[], ladder: Record<string, unknown>) =>
    step(index, label, parents, ladder, states[label] ?? "harvested");
  return [
    s(0, "electrode elec.fdf", [], { role: "electrode", fdf: "elec.fdf", electrodes: ["Left", "Right"] }),
    s(1, "device 0 V", [0], { role: "device", bias_v: 0, previous_bias_v: null, branch: "zero" }),
    s(2, "device +0.1 V", [0, 1], { role: "device", bias_v: 0.1, previous_bias_v: 0, branch: "positive" }),
    s(3, "device +0.2 V", [0, 2], { role: "device", bias_v: 0.2, previous_bias_v: 0.1, branch: "positive" }),
    s(4, "device -0.1 V", [0, 1], { role: "device", bias_v: -0.1, previous_bias_v: 0, branch: "negative" }),
    s(5, "tbtrans 0 V", [1], { role: "tbtrans", bias_v: 0 }),
    s(6, "tbtrans +0.1 V", [2], { role: "tbtrans", bias_v: 0.1 }),
    s(7, "tbtrans +0.2 V", [3], { role: "tbtrans", bias_v: 0.2 }),
    s(8, "tbtrans -0.1 V", [4], { role: "tbtrans", bias_v: -0.1 }),
  ];
}

const overlap = (a: { x: number; y: number }, b: { x: number; y: number }) =>
  Math.abs(a.x - b.x) < NODE_W && Math.abs(a.y - b.y) < NODE_H;

describe("topologicalOrder", () => {
  it("puts every parent before its children", () => {
    const steps = ladderSteps().reverse();
    const { order, cyclic } = topologicalOrder(steps);
    expect(cyclic).toBe(false);
    const at = new Map(order.map((s, i) => [s.id, i]));
    for (const s of steps) for (const p of s.parents ?? []) expect(at.get(p)!).toBeLessThan(at.get(s.id)!);
  });

  it("survives a cycle, unknown parents and self-edges", () => {
    const steps = [step(0, "a", [1]), step(1, "b", [0]), step(2, "c", [2, 99])];
    const { order, cyclic } = topologicalOrder(steps);
    expect(cyclic).toBe(true);
    expect(order.map((s) => s.label)).toEqual(["c", "a", "b"]);
    const layout = layoutSteps(steps);
    expect(layout.nodes).toHaveLength(3);
    expect(layout.edges.every((e) => e.from !== e.to)).toBe(true);
  });
});

describe("layered layout (chains, sweeps, any DAG)", () => {
  it("gives a chain one column per step, left to right", () => {
    const layout = layoutSteps([step(0, "a"), step(1, "b", [0]), step(2, "c", [1])]);
    expect(layout.kind).toBe("layered");
    expect(layout.nodes.map((n) => n.column)).toEqual([0, 1, 2]);
    expect(new Set(layout.nodes.map((n) => n.y)).size).toBe(1);
    expect(layout.edges.map((e) => [e.from, e.to])).toEqual([
      [100, 101],
      [101, 102],
    ]);
    for (const e of layout.edges) expect(e.points[0][0]).toBeLessThan(e.points[1][0]);
  });

  it("places a step one column after its furthest parent, without overlaps", () => {
    // a -> b -> d, a -> c -> d, a -> d
    const layout = layoutLayered([step(0, "a"), step(1, "b", [0]), step(2, "c", [0]), step(3, "d", [0, 1, 2])]);
    const col = Object.fromEntries(layout.nodes.map((n) => [n.step.label, n.column]));
    expect(col).toEqual({ a: 0, b: 1, c: 1, d: 2 });
    for (const a of layout.nodes) for (const b of layout.nodes) if (a !== b) expect(overlap(a, b)).toBe(false);
    expect(layout.width).toBeGreaterThanOrEqual(Math.max(...layout.nodes.map((n) => n.x + NODE_W)));
    expect(layout.height).toBeGreaterThanOrEqual(Math.max(...layout.nodes.map((n) => n.y + NODE_H)));
  });

  it("is used when only some steps carry ladder roles", () => {
    const steps = ladderSteps();
    steps[3] = { ...steps[3], ladder: null };
    expect(layoutSteps(steps).kind).toBe("layered");
  });
});

describe("ladder layout", () => {
  const layout = layoutSteps(ladderSteps());
  const node = (label: string) => layout.nodes.find((n) => n.step.label === label)!;

  it("puts electrodes, device points and TBtrans steps in three columns", () => {
    expect(layout.kind).toBe("ladder");
    expect(node("electrode elec.fdf").column).toBe(0);
    for (const n of layout.nodes) {
      expect(n.column).toBe({ electrode: 0, device: 1, tbtrans: 2 }[n.role!]);
    }
    expect(layout.nodes).toHaveLength(9);
    for (const a of layout.nodes) for (const b of layout.nodes) if (a !== b) expect(overlap(a, b)).toBe(false);
  });

  it("orders points by bias, highest on top, TBtrans beside its point", () => {
    const ys = ["device +0.2 V", "device +0.1 V", "device 0 V", "device -0.1 V"].map((l) => node(l).y);
    expect([...ys].sort((a, b) => a - b)).toEqual(ys);
    expect(new Set(ys).size).toBe(4);
    for (const bias of ["0 V", "+0.1 V", "+0.2 V", "-0.1 V"]) {
      expect(node(`tbtrans ${bias}`).y).toBe(node(`device ${bias}`).y);
      expect(node(`tbtrans ${bias}`).bias).toBe(node(`device ${bias}`).bias);
    }
    // the electrode sits level with 0 V, where the ladder starts
    expect(node("electrode elec.fdf").y).toBe(node("device 0 V").y);
  });

  it("draws every dependency once, with its kind", () => {
    const expected = ladderSteps().reduce((n, s) => n + (s.parents?.length ?? 0), 0);
    expect(layout.edges).toHaveLength(expected);
    const kinds = (k: string) => layout.edges.filter((e) => e.kind === k).length;
    expect(kinds("electrode")).toBe(4);
    expect(kinds("chain")).toBe(3);
    expect(kinds("tbtrans")).toBe(4);
    // a branch edge runs vertically from the earlier point towards the later one
    const up = layout.edges.find((e) => e.from === node("device 0 V").step.id && e.to === node("device +0.1 V").step.id)!;
    expect(up.points[0][0]).toBe(up.points[1][0]);
    expect(up.points[0][1]).toBeGreaterThan(up.points[1][1]);
    const down = layout.edges.find((e) => e.to === node("device -0.1 V").step.id && e.kind === "chain")!;
    expect(down.points[0][1]).toBeLessThan(down.points[1][1]);
  });

  it("centres two electrodes around 0 V and keeps failed states on their nodes", () => {
    const steps = ladderSteps({ "device +0.1 V": "invalid", "device +0.2 V": "cancelled" });
    steps.splice(1, 0, step(9, "electrode right.fdf", [], { role: "electrode", fdf: "right.fdf" }));
    steps[2] = { ...steps[2], parents: [100, 109] };
    const l = layoutSteps(steps);
    const at = (label: string) => l.nodes.find((n) => n.step.label === label)!;
    const zero = at("device 0 V").y;
    expect((at("electrode elec.fdf").y + at("electrode right.fdf").y) / 2).toBe(zero);
    expect(at("device +0.1 V").step.state).toBe("invalid");
    expect(at("device +0.2 V").step.state).toBe("cancelled");
  });
});

describe("biasLabel", () => {
  it("names points as the server does", () => {
    // Python: [f"{v:+.6g} V" for v in (0.1, -0.1, 0.25, 5e-05, 1.234567, -12.5, 1e6)]
    expect([0, 0.1, -0.1, 0.25, 5e-5, 1.234567, -12.5, 1e6].map(biasLabel)).toEqual([
      "0 V",
      "+0.1 V",
      "-0.1 V",
      "+0.25 V",
      "+5e-05 V",
      "+1.23457 V",
      "-12.5 V",
      "+1e+06 V",
    ]);
  });
});
