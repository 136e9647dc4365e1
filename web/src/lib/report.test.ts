import { describe, expect, it } from "vitest";
import { groupGraphs, scalarFields, stepTables, tableCsv, trendRows } from "./report";

describe("report shaping", () => {
  it("groups series by graph", () => {
    const graphs = groupGraphs([
      { graph: "iv", graph_title: "I-V", label: "I", x: [0, 1], y: [0, 2], x_label: "bias", x_unit: "V", y_label: "current", y_unit: "nA" },
      { graph: "iv", label: "fit", x: [0, 1], y: [0, 1.9] },
      { graph: "t", label: "", x: [0], y: [1], y_scale: "log" },
    ]);
    expect(graphs.map((g) => [g.key, g.series.length, g.xLabel, g.yScale])).toEqual([
      ["iv", 2, "bias (V)", "linear"],
      ["t", 1, "x", "log"],
    ]);
  });

  it("flattens scalars, and tabulates steps side by side", () => {
    expect(scalarFields({ a: 1, b: { c: "x", d: [1] }, e: [1, 2] })).toEqual({ a: 1, "b.c": "x" });
    const tables = stepTables(
      [
        { step_id: 2, step_index: 1, task_index: -1, kind: "analysis:energy", data: { e: -2 } },
        { step_id: 1, step_index: 0, task_index: -1, kind: "analysis:energy", data: { e: -1, ok: true } },
        { step_id: 1, step_index: 0, task_index: -1, kind: "validation", data: { status: "converged" } },
      ],
      { 0: "V=0", 1: "V=0.1" },
    );
    expect(tables.map((t) => t.kind)).toEqual(["validation", "analysis:energy"]);
    const energy = tables[1];
    expect(energy.columns.map((c) => c.label)).toEqual(["V=0", "V=0.1"]);
    expect(energy.rows).toEqual([
      { field: "e", values: [-1, -2] },
      { field: "ok", values: [true, undefined] },
    ]);
    expect(trendRows(energy)).toEqual([{ field: "e", values: [-1, -2] }]);
    expect(tableCsv(energy)).toBe("field,V=0,V=0.1\ne,-1,-2\nok,true,\n");
  });
});
