import { describe, expect, it } from "vitest";
import { normalizeAtoms, toXyz } from "./molecule";

describe("molecule geometry", () => {
  it("keeps well-formed atoms only", () => {
    const atoms = normalizeAtoms([
      { symbol: "O", xyz: [0, 0, 0] },
      { symbol: "H", xyz: ["0.757", 0.586, 0] },
      { symbol: "H", xyz: [1, 2] },
      { xyz: [0, 0, 0] },
      { symbol: "C", xyz: [0, "x", 0] },
    ]);
    expect(atoms).toEqual([
      { symbol: "O", xyz: [0, 0, 0] },
      { symbol: "H", xyz: [0.757, 0.586, 0] },
    ]);
  });

  it("writes standard xyz text (count, one-line title, atoms)", () => {
    const text = toXyz(
      [
        { symbol: "O", xyz: [0, 0, 0] },
        { symbol: "H", xyz: [0.757, 0.586, 0] },
      ],
      "water\nmolecule",
    );
    expect(text.split("\n")).toEqual(["2", "water molecule", "O 0.000000 0.000000 0.000000", "H 0.757000 0.586000 0.000000", ""]);
  });
});
