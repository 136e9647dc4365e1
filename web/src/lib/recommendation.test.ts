import { describe, expect, it } from "vitest";
import type { Schemas } from "../api/client";
import { describeProposal, describeRecommendation, shortDuration } from "./recommendation";

const evidence: Schemas["RecommendationEvidence"] = {
  source: "model",
  reason: "p90 of 120 finished runs",
  similar_runs: 37,
  history_runs: 120,
  heldout_runs: 24,
  heldout_mae_walltime_s: 720,
  coverage_p90_walltime: 0.875,
  heldout_mae_memory_mb: 40,
  coverage_p90_memory: 0.9,
  capped_by_queue: false,
};
const model: Schemas["RecommendationOut"] = {
  walltime_s: 6000,
  memory_mb: 2048,
  p50_walltime_s: 3000,
  p90_walltime_s: 4800,
  p50_memory_mb: 900,
  p90_memory_mb: 1500,
  queue_max_walltime_s: 86400,
  evidence,
};

describe("recommendation wording", () => {
  it("formats durations briefly", () => {
    expect([shortDuration(45), shortDuration(720), shortDuration(4800), shortDuration(7200)]).toEqual([
      "45 s",
      "12 min",
      "1h20m",
      "2h",
    ]);
  });

  it("states the p90 with its evidence", () => {
    expect(describeRecommendation(model)).toBe(
      "p90 walltime 1h20m from 37 similar runs, held-out error 12 min, p90 held on 88% of held-out runs",
    );
    expect(describeProposal(model)).toBe("asks 1h40m and 2048 MB per node");
  });

  it("says when the queue's default answers, and why", () => {
    const fallback: Schemas["RecommendationOut"] = {
      ...model,
      walltime_s: 7200,
      memory_mb: null,
      p50_walltime_s: null,
      p90_walltime_s: null,
      evidence: { ...evidence, source: "queue_default", reason: "3 finished siesta run(s) on record; the model needs 20" },
    };
    expect(describeRecommendation(fallback)).toBe(
      "queue default 2h: 3 finished siesta run(s) on record; the model needs 20",
    );
    expect(describeProposal(fallback)).toBe("asks 2h (memory: the partition's default)");
  });
});
