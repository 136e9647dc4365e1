/** Calculations: lists, one calculation, its results and predictions; create and act on them. */
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import type { Schemas } from "../client";
import { createWithFiles, uploadInputs, withBinaryInputs } from "../../lib/uploads";
import { useApi } from "../context";
import { type CalcListQuery, keys } from "./keys";
import { useApiMutation } from "./mutation";

type Calc = Schemas["CalculationDetail"];

/** A page of calculations; the previous page stays shown while another filter loads. */
export function useCalculations(
  query: CalcListQuery,
  options: { pollMs?: number; enabled?: boolean } = {},
) {
  const api = useApi();
  return useQuery({
    queryKey: keys.calculations.list(query),
    queryFn: ({ signal }) => api.get("/calculations", { query, signal }),
    refetchInterval: options.pollMs,
    enabled: options.enabled,
    placeholderData: keepPreviousData,
  });
}

export function useCalculation(id: number, options: { pollMs?: number; enabled?: boolean } = {}) {
  const api = useApi();
  return useQuery({
    queryKey: keys.calculations.detail(id),
    queryFn: ({ signal }) => api.get("/calculations/{calc_id}", { path: { calc_id: id }, signal }),
    refetchInterval: options.pollMs,
    enabled: (options.enabled ?? true) && Number.isInteger(id) && id > 0,
  });
}

/**
 * Central analysis results and per-step data. Keyed by the calculation's progress (its state
 * and every step's), so they are re-read whenever a step moves on (the server recomputes them
 * as steps end) and never otherwise.
 */
export function useCalculationResults(calc: Calc) {
  const api = useApi();
  const progress = `${calc.state};${calc.steps.map((s) => `${s.id}:${s.state}`).join(",")}`;
  return useQuery({
    queryKey: [...keys.calculations.results(calc.id), progress],
    queryFn: ({ signal }) => api.get("/calculations/{calc_id}/results", { path: { calc_id: calc.id }, signal }),
    placeholderData: keepPreviousData,
  });
}

export function useCalculationPredictions(calc: Calc) {
  const api = useApi();
  return useQuery({
    queryKey: [...keys.calculations.predictions(calc.id), calc.state],
    queryFn: ({ signal }) =>
      api.get("/calculations/{calc_id}/predictions", { path: { calc_id: calc.id }, signal }),
  });
}

/** The engine's log lines of a calculation (its timeline), re-read when its state changes. */
export function useCalculationEvents(calc: Calc) {
  const api = useApi();
  const query = { calculation_id: calc.id, source: "engine", limit: 200 };
  return useQuery({
    queryKey: [...keys.logs.page(query), calc.state],
    queryFn: ({ signal }) => api.get("/logs", { query, signal }),
    placeholderData: keepPreviousData,
  });
}

export function useInputFile(calcId: number, name: string | null) {
  const api = useApi();
  return useQuery({
    queryKey: keys.calculations.inputFile(calcId, name ?? ""),
    queryFn: ({ signal }) =>
      api.get("/calculations/{calc_id}/inputs/{file_name}", {
        path: { calc_id: calcId, file_name: name ?? "" },
        signal,
      }),
    enabled: name !== null,
    staleTime: Infinity, // a calculation's inputs never change
  });
}

export type CalculationAction =
  | { action: "approve" }
  | { action: "reject"; reason: string }
  | { action: "priority"; priority: number }
  | { action: "cancel" };

/** Approve, reject, reprioritize or cancel: every list and this calculation are then stale. */
export function useCalculationAction(calcId: number) {
  return useApiMutation(
    (api, a: CalculationAction) => {
      const path = { calc_id: calcId };
      switch (a.action) {
        case "approve":
          return api.post("/calculations/{calc_id}/approve", { path });
        case "reject":
          return api.post("/calculations/{calc_id}/reject", { path, body: { reason: a.reason } });
        case "priority":
          return api.put("/calculations/{calc_id}/priority", { path, body: { priority: a.priority } });
        case "cancel":
          return api.post("/calculations/{calc_id}/cancel", { path });
      }
    },
    () => [keys.calculations.all],
  );
}

/** Create a calculation, with its binary input files in the same request when there are any. */
export function useCreateCalculation() {
  return useApiMutation(
    (api, v: { body: Schemas["CalculationCreate"]; files: readonly File[] }) =>
      v.files.length ? createWithFiles(api, v.body, v.files) : api.post("/calculations", { body: v.body }),
    () => [keys.calculations.all, keys.molecules.all],
  );
}

/**
 * Plan without saving (`POST /calculations/preview`); binary files are stored by content
 * first. `revision` tells which state of the form the answer belongs to.
 */
export function usePreviewCalculation() {
  return useApiMutation(
    async (api, v: { body: Schemas["CalculationCreate"]; files: readonly File[]; revision: number }) => {
      const refs = await uploadInputs(api, v.files);
      const configuration = withBinaryInputs(v.body.configuration, refs);
      return api.post("/calculations/preview", { body: { ...v.body, configuration } });
    },
    () => [],
  );
}
