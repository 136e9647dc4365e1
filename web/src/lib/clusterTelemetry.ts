/**
 * Cluster-wide telemetry for the Clusters page (GET /clusters/{id}/telemetry): every user's
 * queue per partition, its series, and the nodes' states.
 */
import type { TimeSeries } from "../components/Charts";

export interface PartitionPoint {
  ts: string;
  partition: string;
  pending: number;
  running: number;
}

export type NodeHealth = "ok" | "warn" | "bad";

/**
 * The base state without the scheduler's flags (Slurm `idle*`, `idle~`, `mixed+drain`;
 * PBS `job-busy`), lower-cased: what the legend and the Prometheus gauge show.
 */
export function baseState(state: string): string {
  const base = state.trim().toLowerCase().split("+", 1)[0].replace(/[*~#!%$@^-]+$/, "");
  return base || "unknown";
}

const WARN = new Set(["drain", "drained", "draining", "offline", "reserved", "maint", "planned", "reboot"]);
const BAD = new Set(["down", "fail", "failing", "unknown", "not_responding", "state-unknown", "future"]);

/** ok: serving jobs; warn: taken out by an admin; bad: the scheduler cannot reach it. */
export function nodeHealth(state: string): NodeHealth {
  const base = baseState(state);
  if (state.trim().endsWith("*") || BAD.has(base)) return "bad";
  if (WARN.has(base) || state.toLowerCase().includes("drain")) return "warn";
  return "ok";
}

/** Pending and running of one partition as two chart series (epoch ms). */
export function partitionSeries(points: PartitionPoint[], partition: string): TimeSeries[] {
  const mine = points.filter((p) => p.partition === partition);
  const at = (p: PartitionPoint) => new Date(p.ts).getTime();
  return [
    { label: "pending", points: mine.map((p) => ({ t: at(p), y: p.pending })) },
    { label: "running", points: mine.map((p) => ({ t: at(p), y: p.running })), fill: true },
  ];
}

/** Node states sorted by how many nodes are in them (most first, then by name). */
export function stateCounts(states: Record<string, number>): [string, number][] {
  return Object.entries(states).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}
