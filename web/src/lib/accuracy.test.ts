import { describe, expect, it } from "vitest";
import { accuracyQuery, parityLine, parityPoints, withUnit } from "./accuracy";

describe("parity plot", () => {
  it("spans every predicted and DFT value, slightly wider", () => {
    const line = parityLine([
      { predicted: -10, dft: -12 },
      { predicted: -2, dft: -4 },
    ]);
    expect(line).toHaveLength(2);
    expect(line[0].x).toBe(line[0].y);
    expect(line[1].x).toBe(line[1].y);
    expect(line[0].x).toBeLessThan(-12);
    expect(line[1].x).toBeGreaterThan(-2);
  });

  it("has a line for one point and none for no points", () => {
    expect(parityLine([])).toEqual([]);
    const [a, b] = parityLine([{ predicted: 5, dft: 5 }]);
    expect(a.x).toBeLessThan(5);
    expect(b.x).toBeGreaterThan(5);
  });

  it("puts DFT on x and the prediction on y", () => {
    expect(parityPoints([{ predicted: 1, dft: 2 }])).toEqual([{ x: 2, y: 1 }]);
  });
});

describe("filters and figures", () => {
  it("leaves an empty code out of the query", () => {
    expect(accuracyQuery({ property: "energy_total_ev", code: "", period: "month" })).toEqual({
      property: "energy_total_ev",
      period: "month",
    });
    expect(accuracyQuery({ property: "fermi_ev", code: "qe", period: "week" })).toEqual({
      property: "fermi_ev",
      period: "week",
      code: "qe",
    });
  });

  it("prints a value with its unit, a dash without one", () => {
    expect(withUnit(0.123456, "eV")).toBe("0.1235 eV");
    expect(withUnit(3, "")).toBe("3");
    expect(withUnit(null, "eV")).toBe("—");
  });
});
