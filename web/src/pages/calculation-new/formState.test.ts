import { describe, expect, it } from "vitest";
import type { Schemas } from "../../api/client";
import type { AnalysisInfo } from "../../lib/analysisDeps";
import { configurationOf, type FormState, initialState, reducer, requestOf } from "./formState";

const CATALOGUE: AnalysisInfo[] = [
  { name: "scf_convergence", title: "SCF convergence", codes: ["siesta"], requires: [] },
  { name: "energy", title: "Energy", codes: ["siesta"], requires: ["scf_convergence"] },
];

const cluster = (id: number, queues: string[], enabled = true) =>
  ({ id, name: `c${id}`, enabled, queues: queues.map((q) => ({ logical_queue: q })) }) as unknown as Schemas["ClusterOut"];

function filled(): FormState {
  let s = initialState();
  s = reducer(s, { type: "details", changes: { name: " water " } });
  s = reducer(s, { type: "clusters-loaded", clusters: [cluster(1, [], false), cluster(2, ["default", "long"])] });
  s = reducer(s, { type: "builder", changes: { parameter: "MeshCutoff", values: "40 Ry, 60 Ry" } });
  return s;
}

describe("the New Calculation form state", () => {
  it("preselects the first enabled cluster and its first queue, once", () => {
    const s = filled();
    expect([s.clusterId, s.queue]).toEqual([2, "default"]);
    const again = reducer(s, { type: "clusters-loaded", clusters: [cluster(3, ["x"])] });
    expect(again.clusterId).toBe(2);
  });

  it("builds the request from the builder, uploads and analyses", () => {
    let s = filled();
    s = reducer(s, { type: "inputs-added", files: { "h2o.fdf": "SystemName water" } });
    expect(s.builder.mainInput).toBe("h2o.fdf");
    s = reducer(s, { type: "analysis", analysis: CATALOGUE[1], checked: true, catalogue: CATALOGUE });
    expect(s.note).toBe("Energy requires SCF convergence: selected too.");
    const r = requestOf(s, CATALOGUE);
    if (!("body" in r)) throw new Error(r.problem);
    expect(r.body).toMatchObject({ name: "water", cluster_id: 2, logical_queue: "default", code: "siesta" });
    expect(r.body.analyses).toEqual(["scf_convergence", "energy"]);
    expect(r.body.configuration).toMatchObject({
      kind: "chain",
      main_input: "h2o.fdf",
      inputs: { "h2o.fdf": "SystemName water" },
    });
    // A requirement stays selected while something needs it.
    const blocked = reducer(s, { type: "analysis", analysis: CATALOGUE[0], checked: false, catalogue: CATALOGUE });
    expect(blocked.analyses).toEqual(s.analyses);
    expect(blocked.note).toMatch(/required by energy/);
  });

  it("says what keeps a request from being sent", () => {
    const s = reducer(filled(), { type: "builder", changes: { values: "" } });
    expect(requestOf(s, CATALOGUE)).toEqual({ problem: "a chain needs at least one value" });
    const json = reducer(s, { type: "json", text: "[1]" });
    expect(configurationOf({ ...json, mode: "json" }).problem).toBe("the configuration must be a JSON object");
  });

  it("switching to the JSON editor starts from the form's configuration", () => {
    const s = reducer(filled(), { type: "mode", mode: "json" });
    expect(JSON.parse(s.jsonText)).toMatchObject({ kind: "chain", variants: [{ label: "MeshCutoff=40 Ry" }, { label: "MeshCutoff=60 Ry" }] });
  });

  it("starts from another calculation: its molecule and cluster, and configuration.start_from", () => {
    const source = { id: 42, name: "relaxed", molecule_id: 7, cluster_id: 5, logical_queue: "long" } as Schemas["CalculationDetail"];
    let s = reducer(filled(), { type: "start-from", calc: source });
    expect([s.moleculeId, s.clusterId, s.queue]).toEqual(["7", 5, "long"]);
    expect(configurationOf(s).config?.start_from).toEqual({ calculation: 42 });
    s = reducer(s, { type: "start-from-changed", changes: { step: "1", inherit: "*.DM, *.XV" } });
    expect(configurationOf(s).config?.start_from).toEqual({ calculation: 42, step: 1, inherit: ["*.DM", "*.XV"] });
    s = reducer(s, { type: "start-from-removed" });
    expect(configurationOf(s).config).not.toHaveProperty("start_from");
  });

  it("counts revisions of what is planned, not of the name", () => {
    const s = filled();
    expect(reducer(s, { type: "details", changes: { name: "other" } }).revision).toBe(s.revision);
    expect(reducer(s, { type: "code", code: "qe" }).revision).toBe(s.revision + 1);
  });

  it("writes an accepted proposal into the resources, and only then", () => {
    let s = filled();
    expect(configurationOf(s).config).not.toHaveProperty("resources");
    s = reducer(s, { type: "builder", changes: { resources: { ...s.builder.resources, tasks: "4" } } });
    s = reducer(s, { type: "resources-accepted", walltime_s: 6000, memory_mb: 2048 });
    expect(configurationOf(s).config?.resources).toEqual({ tasks: 4, walltime_s: 6000, memory_mb: 2048 });
    const kept = reducer(s, { type: "resources-accepted", walltime_s: 900, memory_mb: null });
    expect(configurationOf(kept).config?.resources).toEqual({ tasks: 4, walltime_s: 900, memory_mb: 2048 });
    expect(kept.revision).toBe(s.revision + 1);
  });

  it("writes an accepted proposal into the JSON editor's configuration", () => {
    let s = reducer(filled(), { type: "mode", mode: "json" });
    s = reducer(s, { type: "resources-accepted", walltime_s: 600, memory_mb: 512 });
    expect(JSON.parse(s.jsonText).resources).toEqual({ walltime_s: 600, memory_mb: 512 });
    const broken = reducer(reducer(s, { type: "json", text: "{ not json" }), {
      type: "resources-accepted",
      walltime_s: 60,
      memory_mb: null,
    });
    expect(broken.jsonText).toBe("{ not json");
  });
});
