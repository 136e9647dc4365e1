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
import type { AnalysisInfo } from "../../lib/analysisDeps";
import { binariesOf, type FormState, initialState, reducer, requestOf } from "./formState";
import { ResourceAdvice } from "./ResourceAdvice";
import { ReviewSection } from "./ReviewSection";
import { StartFromChip } from "./StartFromChip";

export function CalculationNewPage() {
  const [params, setParams] = useSearchParams();
  const [state, dispatch] = useReducer(reducer, params.get("molecule") ?? "", initialState);
  const clusters = useClusters();
  const catalogue = useCatalogue();
  const startFromId = Number(params.get("start_from") ?? 0);
  const source = useCalculation(startFromId, { enabled: startFromId > 0 });
  const send = useSubmission(state, catalogue.data);

  useEffect(() => {
    if (clusters.data) dispatch({ type: "clusters-loaded", clusters: clusters.data });
  }, [clusters.data]);
  const sourceId = source.data?.id;
  useEffect(() => {
    if (source.data) dispatch({ type: "start-from", calc: source.data });
    // once per source calculation, not on every poll of it
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [sourceId]);
  const removeStartFrom = () => {
    const next = new URLSearchParams(params);
    next.delete("start_from");
    setParams(next, { replace: true });
  };

  return (
    <form className="page" onSubmit={send.create} data-testid="page-new-calculation">
      <header className="page-head">
        <h1>New calculation</h1>
        <Link to="/calculations">Back to the list</Link>
      </header>
      <StartFromChip state={state} dispatch={dispatch} source={source.data} onRemove={removeStartFrom} />
      {source.error ? <p className="warn">Cannot start from calculation {startFromId}: {source.error.message}</p> : null}
      <BasicsSection state={state} dispatch={dispatch} />
      <ClusterSection state={state} dispatch={dispatch} clusters={clusters.data} error={clusters.error} />
      <ConfigurationSection state={state} dispatch={dispatch} />
      <ResourceAdvice state={state} dispatch={dispatch} catalogue={catalogue.data ?? []} />
      <AnalysesSection
        state={state}
        dispatch={dispatch}
        catalogue={catalogue.data}
        loading={catalogue.isLoading}
        error={catalogue.error}
      />
      <ReviewSection
        error={send.error}
        busy={send.busy}
        canCreate={state.name.trim() !== ""}
        onPreview={send.preview}
        preview={send.planned}
      />
    </form>
  );
}

/** Preview and create: the request checked here first, then the server's answer. */
function useSubmission(state: FormState, catalogue: readonly AnalysisInfo[] | undefined) {
  const navigate = useNavigate();
  const [problem, setProblem] = useState<Error | null>(null);
  const [last, setLast] = useState<"preview" | "create" | null>(null);
  const preview = usePreviewCalculation();
  const create = useCreateCalculation();

  /** The request, or null after showing why it cannot be sent. */
  const request = () => {
    const r = requestOf(state, catalogue ?? []);
    setProblem("problem" in r ? new Error(r.problem) : null);
    return "body" in r ? r.body : null;
  };
  return {
    preview: () => {
      setLast("preview");
      const body = request();
      if (body) preview.mutate({ body, files: binariesOf(state), revision: state.revision });
    },
    create: (e: FormEvent) => {
      e.preventDefault();
      setLast("create");
      const body = request();
      if (body) create.mutate({ body, files: binariesOf(state) }, { onSuccess: (c) => navigate(`/calculations/${c.id}`) });
    },
    error: problem ?? (last === "preview" ? preview.error : last === "create" ? create.error : null),
    busy: preview.isPending ? ("preview" as const) : create.isPending ? ("create" as const) : null,
    /** the planned steps of the form as it is now */
    planned: preview.data && preview.variables?.revision === state.revision ? preview.data : null,
  };
}
