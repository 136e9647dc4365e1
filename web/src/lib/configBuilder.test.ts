import { describe, expect, it } from "vitest";
import { buildConfiguration, emptyBuilder, parseFixed, parseValues, withInputs } from "./configBuilder";

describe("configuration builder", () => {
  it("parses value lists and inclusive ranges without float noise", () => {
    expect(parseValues("0, 0.1, abc, true")).toEqual([0, 0.1, "abc", true]);
    expect(parseValues("0:0.3:0.1")).toEqual([0, 0.1, 0.2, 0.3]);
    expect(parseValues("1:-1:-1")).toEqual([1, 0, -1]);
    expect(() => parseValues("0:1:-1")).toThrow(/step/);
    expect(parseValues("  ")).toEqual([]);
  });

  it("parses fixed parameters", () => {
    expect(parseFixed("MeshCutoff = 200 Ry\n# note\n\nx=1")).toEqual({ MeshCutoff: "200 Ry", x: 1 });
    expect(() => parseFixed("oops")).toThrow(/line 1/);
  });

  it("builds a chain the planner accepts", () => {
    const config = buildConfiguration(
      { ...emptyBuilder(), kind: "chain", parameter: "TS.Voltage", values: "0, 0.25", inherit: "*.DM, *.TSDE", resources: { ...emptyBuilder().resources, tasks: "4" } },
      "siesta",
    );
    expect(config).toEqual({
      kind: "chain",
      variants: [
        { label: "TS.Voltage=0", parameters: { "TS.Voltage": 0 } },
        { label: "TS.Voltage=0.25", parameters: { "TS.Voltage": 0.25 } },
      ],
      inherit: ["*.DM", "*.TSDE"],
      resources: { tasks: 4 },
    });
  });

  it("builds a generic sweep with a throttle and a command", () => {
    const config = buildConfiguration(
      { ...emptyBuilder(), kind: "sweep", parameter: "x", values: "1,2,3", maxConcurrent: "2", command: "echo $HPCGATE_PARAM_X" },
      "generic",
    );
    expect(config.max_concurrent).toBe(2);
    expect(config.command).toEqual(["bash", "-c", "echo $HPCGATE_PARAM_X"]);
    expect((config.variants as unknown[]).length).toBe(3);
  });

  it("refuses incomplete definitions with a readable reason", () => {
    expect(() => buildConfiguration({ ...emptyBuilder(), kind: "chain" }, "siesta")).toThrow(/parameter/);
    expect(() => buildConfiguration({ ...emptyBuilder(), kind: "sweep", parameter: "x", values: "1, 1" }, "qe")).toThrow(/twice/);
    expect(() => buildConfiguration({ ...emptyBuilder(), kind: "single" }, "generic")).toThrow(/command/);
    expect(buildConfiguration({ ...emptyBuilder(), kind: "single" }, "siesta")).toEqual({ kind: "single" });
  });

  it("merges uploaded input files", () => {
    expect(withInputs({ kind: "single", inputs: { "a.fdf": "1" } }, { "b.psf": "2" })).toEqual({
      kind: "single",
      inputs: { "a.fdf": "1", "b.psf": "2" },
    });
  });
});
