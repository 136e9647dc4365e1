/**
 * New calculation: sections over one reducer (formState.ts). `?molecule=<id>` preselects a
 * molecule; `?start_from=<id>` starts from that calculation's outputs (its molecule and
 * cluster, and `configuration.start_from`), shown as a removable chip.
 */
import { type FormEvent, useEffect, useReducer, useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { useCatalogue } from "../../api/queries/analyses";
import { useCalculation, useCreateCalculation, usePreviewCalculation } from "../../api/queries/calculations";
import { useClusters } from "../../api/queries/clusters";
import { AnalysesSection } from "./AnalysesSection";
import { BasicsSection } from "./BasicsSection";
import { ClusterSection } from "./ClusterSection";
import { ConfigurationSection } from "./ConfigurationSection";
import { binariesOf, initialState, reducer, requestOf } from "./formState";
import { ReviewSection } from "./ReviewSection";
import { StartFromChip } from "./StartFromChip";

export function CalculationNewPage() {
  const navigate = useNavigate();
  const [params, setParams] = useSearchParams();
  const [state, dispatch] = useReducer(reducer, params.get("molecule") ?? "", initialState);
  const [problem, setProblem] = useState<Error | null>(null);
  const [last, setLast] = useState<"preview" | "create" | null>(null);

  const clusters = useClusters();
  const catalogue = useCatalogue();
  const startFromId = Number(params.get("start_from") ?? 0);
  const source = useCalculation(startFromId, { enabled: startFromId > 0 });
  const preview = usePreviewCalculation();
  const create = useCreateCalculation();

  useEffect(() => {
    if (clusters.data) dispatch({ type: "clusters-loaded", clusters: clusters.data });
  }, [clusters.data]);
  const sourceId = source.data?.id;
  useEffect(() => {
    if (source.data) dispatch({ type: "start-from", calc: source.data });
    // once per source calculation, not on every poll of it
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [sourceId]);

  /** The request, or null after showing why it cannot be sent. */
  const request = () => {
    const r = requestOf(state, catalogue.data ?? []);
    if ("problem" in r) {
      setProblem(new Error(r.problem));
      return null;
    }
    setProblem(null);
    return r.body;
  };
  const runPreview = () => {
    setLast("preview");
    const body = request();
    if (body) preview.mutate({ body, files: binariesOf(state), revision: state.revision });
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setLast("create");
    const body = request();
    if (body) create.mutate({ body, files: binariesOf(state) }, { onSuccess: (calc) => navigate(`/calculations/${calc.id}`) });
  };
  const removeStartFrom = () => {
    const next = new URLSearchParams(params);
    next.delete("start_from");
    setParams(next, { replace: true });
  };

  const error = problem ?? (last === "preview" ? preview.error : last === "create" ? create.error : null);
  const planned = preview.data && preview.variables?.revision === state.revision ? preview.data : null;
  return (
    <form className="page" onSubmit={submit} data-testid="page-new-calculation">
      <header className="page-head">
        <h1>New calculation</h1>
        <Link to="/calculations">Back to the list</Link>
      </header>
      <StartFromChip state={state} dispatch={dispatch} source={source.data} onRemove={removeStartFrom} />
      {source.error ? <p className="warn">Cannot start from calculation {startFromId}: {source.error.message}</p> : null}
      <BasicsSection state={state} dispatch={dispatch} />
      <ClusterSection state={state} dispatch={dispatch} clusters={clusters.data} error={clusters.error} />
      <ConfigurationSection state={state} dispatch={dispatch} />
      <AnalysesSection
        state={state}
        dispatch={dispatch}
        catalogue={catalogue.data}
        loading={catalogue.isLoading}
        error={catalogue.error}
      />
      <ReviewSection
        error={error}
        busy={preview.isPending ? "preview" : create.isPending ? "create" : null}
        canCreate={state.name.trim() !== ""}
        onPreview={runPreview}
        preview={planned}
      />
    </form>
  );
}
