import { describe, expect, it } from "vitest";
import { buildConfiguration, emptyBuilder } from "./configBuilder";
import { electrodeNames, electrodeRows, emptyLadder, ladderConfiguration, parseBiases } from "./ladderConfig";

const DEVICE = `SystemLabel device
SolutionMethod transiesta
%block TS.Elecs
  Left   # the left lead
  Right
%endblock TS.Elecs
%block TS.Elec.Left
  TSHS elec.TSHS
%endblock TS.Elec.Left
`;

describe("parseBiases", () => {
  it("takes lists and ranges, rounding like the server", () => {
    expect(parseBiases("0, 0.1, 0.2, -0.1")).toEqual([0, 0.1, 0.2, -0.1]);
    expect(parseBiases("-0.2:0.2:0.1")).toEqual([-0.2, -0.1, 0, 0.1, 0.2]);
    expect(parseBiases("-0, 0.25")).toEqual([0, 0.25]);
    expect(Object.is(parseBiases("-0, 1")[0], 0)).toBe(true);
  });

  it("refuses a ladder without 0 V, a bias twice, text and huge values", () => {
    expect(() => parseBiases("0.1, 0.2")).toThrow(/must include 0 V/);
    expect(() => parseBiases("0, 0.1, 0.10000001")).toThrow(/0.1 V is listed twice/);
    expect(() => parseBiases("0, 0.1 V")).toThrow(/not a number/);
    expect(() => parseBiases("0, 500")).toThrow(/beyond/);
    expect(() => parseBiases("  ")).toThrow(/list the biases/);
  });
});

describe("electrodeNames", () => {
  it("reads the TS.Elecs block, whatever the case and separators of its key", () => {
    expect(electrodeNames(DEVICE)).toEqual(["Left", "Right"]);
    expect(electrodeNames("%block ts.elecs\n L\n M\n R\n%endblock ts.elecs\n")).toEqual(["L", "M", "R"]);
    expect(electrodeNames("SystemLabel x\n")).toEqual([]);
    // a huge unterminated block is read in one pass
    expect(electrodeNames(`%block TS.Elecs\n${"E\n".repeat(100000)}`)).toEqual(["E"]);
  });

  it("fills rows with a guessed electrode fdf and keeps the user's mapping", () => {
    const rows = electrodeRows(DEVICE, [{ name: "Right", fdf: "right.fdf" }], ["device.fdf", "elec.fdf"], "device.fdf");
    expect(rows).toEqual([
      { name: "Left", fdf: "elec.fdf" },
      { name: "Right", fdf: "right.fdf" },
    ]);
  });
});

describe("ladderConfiguration", () => {
  const state = {
    ...emptyLadder(),
    device: "device.fdf",
    electrodes: [
      { name: "Left", fdf: "elec.fdf" },
      { name: "Right", fdf: "elec.fdf" },
    ],
  };

  it("builds the configuration the server plans a ladder from", () => {
    const base = buildConfiguration(
      { ...emptyBuilder(), kind: "single", fixed: "MeshCutoff = 80 Ry", mainInput: "device.fdf", resources: { ...emptyBuilder().resources, tasks: "1", walltime_s: "600" } },
      "siesta",
    );
    expect(ladderConfiguration(state, base)).toEqual({
      kind: "transiesta",
      device: "device.fdf",
      electrodes: { Left: "elec.fdf", Right: "elec.fdf" },
      biases_v: [0, 0.1, 0.2, -0.1],
      tbtrans: true,
      parameters: { MeshCutoff: "80 Ry" },
      resources: { tasks: 1, walltime_s: 600 },
    });
    expect(ladderConfiguration({ ...state, tbtrans: false }).tbtrans).toBe(false);
  });

  it("says what is missing before anything is sent", () => {
    expect(() => ladderConfiguration({ ...state, device: "" })).toThrow(/device fdf/);
    expect(() => ladderConfiguration({ ...state, electrodes: [] })).toThrow(/at least one electrode/);
    expect(() => ladderConfiguration({ ...state, electrodes: [{ name: "Left", fdf: "" }] })).toThrow(/fdf of electrode Left/);
    expect(() => ladderConfiguration({ ...state, electrodes: [{ name: "Left", fdf: "device.fdf" }] })).toThrow(/is the device/);
    expect(() =>
      ladderConfiguration({ ...state, electrodes: [{ name: "L", fdf: "a.fdf" }, { name: "L", fdf: "b.fdf" }] }),
    ).toThrow(/listed twice/);
    expect(() => ladderConfiguration({ ...state, biases: "0.1" })).toThrow(/0 V/);
  });
});
