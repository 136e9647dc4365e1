/**
 * "Starting from <name>": the new calculation's first steps start from that calculation's
 * output files (`configuration.start_from`, checked by the server). Removable; the step and
 * the files taken are optional.
 */
import type { Schemas } from "../../api/client";
import type { SectionProps } from "./formState";

export function StartFromChip({
  state,
  dispatch,
  source,
  onRemove,
}: SectionProps & { source: Schemas["CalculationDetail"] | undefined; onRemove: () => void }) {
  const start = state.startFrom;
  if (!start) return null;
  return (
    <div className="start-from card" data-testid="start-from">
      <span className="chip" data-testid="start-from-chip">
        Starting from {start.name}
        <button
          type="button"
          className="link"
          aria-label={`stop starting from ${start.name}`}
          data-testid="start-from-remove"
          onClick={() => {
            dispatch({ type: "start-from-removed" });
            onRemove();
          }}
        >
          ×
        </button>
      </span>
      <label className="inline">
        from step
        <select
          name="start_from_step"
          value={start.step}
          onChange={(e) => dispatch({ type: "start-from-changed", changes: { step: e.target.value } })}
        >
          <option value="">its last succeeded step</option>
          {source?.steps.map((s) => (
            <option key={s.id} value={s.index}>
              {s.index}: {s.label} ({s.state.replace(/_/g, " ")})
            </option>
          ))}
        </select>
      </label>
      <label className="inline">
        files taken
        <input
          name="start_from_inherit"
          placeholder="default: the code's restart files"
          value={start.inherit}
          onChange={(e) => dispatch({ type: "start-from-changed", changes: { inherit: e.target.value } })}
        />
      </label>
    </div>
  );
}
