/** "How": the configuration, from the chain/sweep/ladder builder or a JSON editor, and input files. */
import { Card } from "../../components/ui";
import { CodeFields } from "./CodeFields";
import { configurationOf, type SectionProps } from "./formState";
import { InputFiles } from "./InputFiles";
import { RunKindFields } from "./RunKindFields";

export function ConfigurationSection({ state, dispatch }: SectionProps) {
  const { config, problem } = configurationOf(state);
  const tab = (mode: "form" | "json", label: string) => (
    <button
      type="button"
      role="tab"
      aria-selected={state.mode === mode}
      className={state.mode === mode ? "" : "secondary"}
      onClick={() => dispatch({ type: "mode", mode })}
    >
      {label}
    </button>
  );
  return (
    <Card
      title="How: configuration"
      actions={
        <div className="tabs" role="tablist">
          {tab("form", "Chain / sweep builder")}
          {tab("json", "JSON editor")}
        </div>
      }
    >
      {state.mode === "form" ? (
        <div className="form-grid">
          <RunKindFields state={state} dispatch={dispatch} />
          <CodeFields state={state} dispatch={dispatch} />
        </div>
      ) : (
        <label className="wide">
          <span>Configuration (JSON: kind, parameters, variants, inherit, resources, command…)</span>
          <textarea
            name="configuration"
            className="mono"
            rows={14}
            value={state.jsonText}
            onChange={(e) => dispatch({ type: "json", text: e.target.value })}
          />
        </label>
      )}
      <InputFiles state={state} dispatch={dispatch} />
      {problem ? (
        <p className="muted" data-testid="config-problem">
          Not ready to send: {problem}
        </p>
      ) : state.mode === "form" ? (
        <details>
          <summary>Configuration sent</summary>
          <pre className="json">{JSON.stringify({ ...config, inputs: undefined }, null, 2)}</pre>
        </details>
      ) : null}
    </Card>
  );
}
