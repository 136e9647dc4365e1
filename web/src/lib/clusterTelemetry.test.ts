import { describe, expect, it } from "vitest";
import { baseState, nodeHealth, partitionSeries, stateCounts } from "./clusterTelemetry";

describe("cluster telemetry helpers", () => {
  it("reduces scheduler flags to the base state", () => {
    expect(baseState("idle*")).toBe("idle");
    expect(baseState("IDLE~")).toBe("idle");
    expect(baseState("mixed+drain")).toBe("mixed");
    expect(baseState("job-busy")).toBe("job-busy");
    expect(baseState("")).toBe("unknown");
  });

  it("grades node health", () => {
    expect(nodeHealth("idle")).toBe("ok");
    expect(nodeHealth("allocated")).toBe("ok");
    expect(nodeHealth("free")).toBe("ok");
    expect(nodeHealth("drained")).toBe("warn");
    expect(nodeHealth("mixed+drain")).toBe("warn");
    expect(nodeHealth("offline")).toBe("warn");
    expect(nodeHealth("down")).toBe("bad");
    expect(nodeHealth("idle*")).toBe("bad"); // not responding
  });

  it("splits the series of one partition", () => {
    const points = [
      { ts: "2026-12-07T10:00:00Z", partition: "debug", pending: 2, running: 1 },
      { ts: "2026-12-07T10:00:00Z", partition: "long", pending: 5, running: 0 },
      { ts: "2026-12-07T10:05:00Z", partition: "debug", pending: 0, running: 3 },
    ];
    const [pending, running] = partitionSeries(points, "debug");
    expect(pending.points.map((p) => p.y)).toEqual([2, 0]);
    expect(running.points.map((p) => p.y)).toEqual([1, 3]);
    expect(running.points[1].t - running.points[0].t).toBe(300_000);
  });

  it("orders state counts", () => {
    expect(stateCounts({ idle: 2, down: 1, mixed: 2 })).toEqual([
      ["idle", 2],
      ["mixed", 2],
      ["down", 1],
    ]);
  });
});
