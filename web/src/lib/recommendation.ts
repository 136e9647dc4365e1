/** How the New Calculation form words a walltime/memory proposal and its evidence. */
import type { Schemas } from "../api/client";

type Recommendation = Schemas["RecommendationOut"];

/** 4800 -> "1h20m", 720 -> "12 min", 45 -> "45 s". */
export function shortDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  const h = Math.floor(s / 3600);
  const m = Math.round((s % 3600) / 60);
  return m ? `${h}h${String(m).padStart(2, "0")}m` : `${h}h`;
}

/** "p90 walltime 1h20m from 37 similar runs, held-out error 12 min", or why the queue's default. */
export function describeRecommendation(r: Recommendation): string {
  const e = r.evidence;
  if (e.source === "queue_default" || r.p90_walltime_s === null) {
    return `queue default ${shortDuration(r.walltime_s)}: ${e.reason}`;
  }
  const parts = [
    `p90 walltime ${shortDuration(r.p90_walltime_s)} from ${e.similar_runs} similar run${e.similar_runs === 1 ? "" : "s"}`,
  ];
  if (e.heldout_mae_walltime_s !== null) parts.push(`held-out error ${shortDuration(e.heldout_mae_walltime_s)}`);
  if (e.coverage_p90_walltime !== null) parts.push(`p90 held on ${Math.round(e.coverage_p90_walltime * 100)}% of held-out runs`);
  return parts.join(", ");
}

/** "asks 1h40m and 2048 MB per node (p90 × 1.2, capped by the queue)". */
export function describeProposal(r: Recommendation): string {
  const memory = r.memory_mb !== null ? ` and ${r.memory_mb} MB per node` : " (memory: the partition's default)";
  const capped = r.evidence.capped_by_queue ? ", capped by the queue's limit" : "";
  return `asks ${shortDuration(r.walltime_s)}${memory}${capped}`;
}
