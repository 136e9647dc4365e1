import { describe, expect, it } from "vitest";
import type { DagStep } from "./dag";
import { fmtCurrent, IV_ANALYSIS, ivFromDoc, ivFromResults, ivSeries, pendingFromSteps } from "./iv";

// The `data` document of `transiesta_iv.compute()` for a ladder whose +0.1 V point failed
// (TranSIESTA's FATAL) and whose +0.2 V point was therefore never run; the shape of
// analyses/siesta/transiesta_iv.py (_point, _failure, pending).
const partialDoc = {
  partial: true,
  points: [
    {
      bias_v: 0.0,
      current_a: 0.0,
      current_stdout_a: 0.0,
      relative_difference: 0.0,
      agree: true,
      tbtrans_bias_v: 0.0,
      conductance_g0: null,
      step_id: 16,
      step_index: 5,
      label: "tbtrans 0 V",
      device_step_id: 12,
      device_step_index: 1,
    },
    {
      bias_v: -0.1,
      current_a: -6.49170355e-6,
      current_stdout_a: -6.4917e-6,
      relative_difference: 5.5e-7,
      agree: true,
      tbtrans_bias_v: -0.1,
      conductance_g0: 0.8381,
      step_id: 19,
      step_index: 8,
      label: "tbtrans -0.1 V",
      device_step_id: 15,
      device_step_index: 4,
    },
  ],
  failed: [
    {
      bias_v: 0.2,
      reason: "not run: device +0.1 V did not succeed (FATAL: ts: You have to calculate the 0 V and re-use the TSDE)",
      step_id: 14,
      step_index: 3,
      label: "device +0.2 V",
      state: "cancelled",
    },
    {
      bias_v: 0.1,
      reason: "FATAL: ts: You have to calculate the 0 V and re-use the TSDE",
      step_id: 13,
      step_index: 2,
      label: "device +0.1 V",
      state: "invalid",
    },
  ],
  pending: [],
  tolerance: 0.001,
};

describe("ivFromDoc", () => {
  it("orders points, failed and pending points by bias and keeps their fields", () => {
    const curve = ivFromDoc(partialDoc)!;
    expect(curve.partial).toBe(true);
    expect(curve.points.map((p) => p.bias)).toEqual([-0.1, 0]);
    expect(curve.points[0]).toMatchObject({
      current: -6.49170355e-6,
      currentStdout: -6.4917e-6,
      agree: true,
      label: "tbtrans -0.1 V",
      stepId: 19,
    });
    expect(curve.failed.map((f) => [f.bias, f.state, f.stepId])).toEqual([
      [0.1, "invalid", 13],
      [0.2, "cancelled", 14],
    ]);
    expect(curve.failed[0].reason).toContain("FATAL: ts:");
    expect(curve.tolerance).toBe(0.001);
  });

  it("is partial whenever a point lacks a current, whatever the flag says", () => {
    const done = ivFromDoc({ ...partialDoc, partial: false, failed: [], pending: [] })!;
    expect(done.partial).toBe(false);
    expect(ivFromDoc({ ...partialDoc, partial: false, failed: [] })!.partial).toBe(false);
    expect(ivFromDoc({ partial: false, points: [], pending: [{ bias_v: 0.3, state: "running" }] })!).toMatchObject({
      partial: true,
      pending: [{ bias: 0.3, state: "running" }],
    });
  });

  it("drops malformed entries instead of trusting the document", () => {
    const curve = ivFromDoc({
      points: [
        { bias_v: "0.1", current_a: 1 },
        { bias_v: 0.2, current_a: null },
        { bias_v: 0.3, current_a: 2e-6, agree: "yes", label: 7 },
        null,
        [1, 2],
      ],
      failed: [{ reason: "no bias" }, { bias_v: 0.4 }],
      pending: "everything",
    })!;
    expect(curve.points).toEqual([
      {
        bias: 0.3,
        current: 2e-6,
        currentStdout: null,
        relativeDifference: null,
        agree: null,
        conductanceG0: null,
        label: null,
        stepId: null,
      },
    ]);
    expect(curve.failed).toEqual([{ bias: 0.4, reason: "no current", label: null, state: null, stepId: null }]);
    expect(curve.pending).toEqual([]);
    expect(ivFromDoc(null)).toBeNull();
    expect(ivFromDoc([1])).toBeNull();
    expect(ivFromDoc({ summary: {} })).toBeNull();
  });
});

describe("ivFromResults", () => {
  it("finds the I-V analysis in a results response (analyses[].data.data)", () => {
    const results = {
      extracted: [],
      analyses: [
        { analysis: "energy", status: "ok", message: null, data: { data: { points: [] } } },
        { analysis: IV_ANALYSIS, status: "ok", message: null, data: { name: IV_ANALYSIS, data: partialDoc } },
      ],
    };
    const found = ivFromResults(results)!;
    expect(found.status).toBe("ok");
    expect(found.curve!.points).toHaveLength(2);
    expect(ivFromResults({ analyses: [] })).toBeNull();
    expect(ivFromResults(undefined)).toBeNull();
    const failed = ivFromResults({ analyses: [{ analysis: IV_ANALYSIS, status: "error", message: null, data: { error: "boom" } }] })!;
    expect(failed).toEqual({ status: "error", message: "boom", curve: null });
  });
});

describe("ivSeries", () => {
  it("draws the curve, failed points as red crosses and pending points at zero current", () => {
    const curve = ivFromDoc({ ...partialDoc, pending: [{ bias_v: -0.2, state: "queued" }] })!;
    const [line, failed, pending] = ivSeries(curve);
    expect(line).toMatchObject({ x: [-0.1, 0], y: [-6.49170355e-6, 0], kind: "linepoints" });
    expect(failed).toMatchObject({ x: [0.1, 0.2], y: [0, 0], kind: "scatter", pointStyle: "crossRot", color: "#dc2626" });
    expect(pending).toMatchObject({ x: [-0.2], y: [0], kind: "scatter", hollow: true });
    expect(ivSeries(ivFromDoc({ ...partialDoc, failed: [] })!)).toHaveLength(1);
  });
});

describe("pendingFromSteps", () => {
  it("lists each device point with its state before any result exists", () => {
    const steps: DagStep[] = [
      { id: 1, index: 0, label: "electrode elec.fdf", state: "harvested", ladder: { role: "electrode" } },
      { id: 2, index: 1, label: "device 0 V", state: "running", ladder: { role: "device", bias_v: 0 } },
      { id: 3, index: 2, label: "device +0.1 V", state: "queued", ladder: { role: "device", bias_v: 0.1 } },
      { id: 4, index: 3, label: "tbtrans 0 V", state: "queued", ladder: { role: "tbtrans", bias_v: 0 } },
    ];
    expect(pendingFromSteps(steps)).toEqual({
      partial: true,
      points: [],
      failed: [],
      pending: [
        { bias: 0, state: "running" },
        { bias: 0.1, state: "queued" },
      ],
      tolerance: null,
    });
  });
});

describe("fmtCurrent", () => {
  it("prints three significant digits with an SI prefix", () => {
    expect([0, 6.4917e-6, -1.2345e-9, 0.5, 3e-13].map(fmtCurrent)).toEqual(["0 A", "6.49 µA", "-1.23 nA", "500 mA", "300 fA"]);
  });
});
