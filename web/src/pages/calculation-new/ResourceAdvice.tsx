/**
 * "Walltime and memory": the recommender's proposal for the form as it is, with its evidence
 * (similar runs, held-out error). It changes the form only when the user clicks Accept
 * (the reducer's `resources-accepted`); an answer for an earlier version of the form is
 * marked as such.
 */
import { useRecommendation } from "../../api/queries/recommendations";
import { Card, ErrorBox } from "../../components/ui";
import type { AnalysisInfo } from "../../lib/analysisDeps";
import { describeProposal, describeRecommendation } from "../../lib/recommendation";
import { requestOf, type SectionProps } from "./formState";

export function ResourceAdvice({ state, dispatch, catalogue }: SectionProps & { catalogue: readonly AnalysisInfo[] }) {
  const ask = useRecommendation();
  const answer = ask.data ?? null;
  const stale = answer !== null && ask.variables?.revision !== state.revision;
  const problem = (() => {
    const r = requestOf(state, catalogue);
    return "problem" in r ? r.problem : null;
  })();
  const recommend = () => {
    const r = requestOf(state, catalogue);
    if (!("body" in r)) return;
    const { cluster_id, logical_queue, code, configuration } = r.body;
    ask.mutate({ body: { cluster_id, logical_queue, code, configuration }, revision: state.revision });
  };
  return (
    <Card
      title="Walltime and memory"
      testId="resource-advice"
      actions={
        <button type="button" className="secondary" onClick={recommend} disabled={ask.isPending || problem !== null}>
          {ask.isPending ? "Asking…" : "Recommend from past runs"}
        </button>
      }
    >
      <ErrorBox error={ask.error} title="No recommendation" />
      {problem && !answer ? <p className="muted">{problem}</p> : null}
      {answer ? (
        <div data-testid="recommendation">
          <p>
            <strong>{describeRecommendation(answer)}</strong>
          </p>
          <p>
            Proposal: {describeProposal(answer)}
            {answer.evidence.source === "model" && answer.p50_walltime_s !== null
              ? ` (p50 ${Math.round(answer.p50_walltime_s / 60)} min)`
              : ""}
            .{stale ? " This answer is for an earlier version of the form." : ""}
          </p>
          <button
            type="button"
            data-testid="accept-recommendation"
            onClick={() => dispatch({ type: "resources-accepted", walltime_s: answer.walltime_s, memory_mb: answer.memory_mb })}
          >
            Accept: use these resources
          </button>
        </div>
      ) : null}
    </Card>
  );
}
