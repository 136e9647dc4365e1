/** Analyses as checkboxes that keep the selection's requirements (lib/analysisDeps.ts). */
import { Card, Empty, ErrorBox, Loading } from "../../components/ui";
import { type AnalysisInfo, availableFor, requiredBy } from "../../lib/analysisDeps";
import type { SectionProps } from "./formState";

export function AnalysesSection({
  state,
  dispatch,
  catalogue,
  loading,
  error,
}: SectionProps & { catalogue: readonly AnalysisInfo[] | undefined; loading: boolean; error: unknown }) {
  const items = catalogue ?? [];
  const offered = availableFor(items, state.code);
  const locks = requiredBy(state.analyses, items);
  return (
    <Card title="Analyses">
      <ErrorBox error={error} />
      {loading ? <Loading /> : null}
      {catalogue && offered.length === 0 ? <Empty>No analysis for this code.</Empty> : null}
      <div className="analyses" data-testid="analyses">
        {offered.map((a) => {
          const lockedBy = locks.get(a.name) ?? [];
          return (
            <label
              key={a.name}
              className={`analysis ${lockedBy.length ? "locked" : ""}`}
              title={a.description}
              data-analysis={a.name}
            >
              <input
                type="checkbox"
                name={`analysis_${a.name}`}
                checked={state.analyses.includes(a.name)}
                disabled={lockedBy.length > 0}
                onChange={(e) => dispatch({ type: "analysis", analysis: a, checked: e.target.checked, catalogue: items })}
              />
              <span>
                <b>{a.title}</b> <code>{a.name}</code>
                {a.requires.length ? <span className="muted"> · needs {a.requires.join(", ")}</span> : null}
                {lockedBy.length ? (
                  <span className="lock" data-testid={`required-by-${a.name}`}>
                    {" "}
                    required by {lockedBy.join(", ")}
                  </span>
                ) : null}
                <br />
                <small className="muted">{a.description}</small>
              </span>
            </label>
          );
        })}
      </div>
      {state.note ? (
        <p className="note" role="status" data-testid="analysis-note">
          {state.note}
        </p>
      ) : null}
    </Card>
  );
}
