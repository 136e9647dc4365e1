import { describe, expect, it } from "vitest";
import builtin from "../api/analyses-catalogue.json";
import {
  type AnalysisInfo,
  availableFor,
  closure,
  deselectAnalysis,
  missingRequirements,
  order,
  requiredBy,
  selectAnalysis,
  unknownNames,
} from "./analysisDeps";

const cat: AnalysisInfo[] = [
  { name: "scf", title: "SCF", codes: ["siesta"], requires: [] },
  { name: "energy", title: "Energy", codes: ["siesta"], requires: ["scf"] },
  { name: "current", title: "Current", codes: ["siesta"], requires: [] },
  { name: "iv", title: "I-V", codes: ["siesta"], requires: ["current"] },
  { name: "report", title: "Report", codes: ["siesta"], requires: ["energy", "iv"] },
  { name: "qe_scf", title: "QE SCF", codes: ["qe"], requires: [] },
];

describe("analysis dependencies", () => {
  it("closes over transitive requirements", () => {
    expect([...closure(["report"], cat)].sort()).toEqual(["current", "energy", "iv", "report", "scf"]);
  });

  it("ticks the requirements along and says which", () => {
    const r = selectAnalysis([], "energy", cat);
    expect(r.selection).toEqual(["scf", "energy"]);
    expect(r.added).toEqual(["scf"]);
    const again = selectAnalysis(r.selection, "report", cat);
    expect(again.added).toEqual(["current", "iv"]);
    expect(missingRequirements(again.selection, cat)).toEqual({});
  });

  it("locks a requirement while a dependent is selected", () => {
    const sel = selectAnalysis([], "energy", cat).selection;
    expect(requiredBy(sel, cat).get("scf")).toEqual(["energy"]);
    const blocked = deselectAnalysis(sel, "scf", cat);
    expect(blocked.blockedBy).toEqual(["energy"]);
    expect(blocked.selection).toEqual(sel);
    const freed = deselectAnalysis(deselectAnalysis(sel, "energy", cat).selection, "scf", cat);
    expect(freed).toEqual({ selection: [], blockedBy: [] });
  });

  it("reports missing requirements in the server's shape", () => {
    expect(missingRequirements(["energy", "iv"], cat)).toEqual({
      scf: "required by energy",
      current: "required by iv",
    });
  });

  it("orders requirements first, keeping the user's order otherwise", () => {
    expect(order(["report", "iv", "energy", "scf", "current"], cat)).toEqual(["scf", "current", "iv", "energy", "report"]);
    expect(order(["current", "scf"], cat)).toEqual(["current", "scf"]);
  });

  it("filters by code; a generic program may write any format", () => {
    expect(availableFor(cat, "qe").map((a) => a.name)).toEqual(["qe_scf"]);
    expect(availableFor(cat, "generic")).toHaveLength(cat.length);
  });

  it("flags names the catalogue does not know", () => {
    expect(unknownNames(["scf", "gone"], cat)).toEqual(["gone"]);
  });

  it("matches the server's built-in graph (energy needs scf_convergence)", () => {
    const items = builtin as AnalysisInfo[];
    expect(items.length).toBeGreaterThan(5);
    const r = selectAnalysis([], "energy", items);
    expect(r.added).toEqual(["scf_convergence"]);
    expect(selectAnalysis([], "iv_curve", items).added).toEqual(["current"]);
    expect(availableFor(items, "qe").every((a) => a.codes.includes("qe"))).toBe(true);
  });
});
