/** ML models registered in the main API (`/ml/models`); running them is the ML-API's job. */
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import type { QueryOf, Schemas } from "../client";
import { useApi } from "../context";
import { keys } from "./keys";
import { useApiMutation } from "./mutation";

export function useModels() {
  const api = useApi();
  return useQuery({
    queryKey: keys.models.all,
    queryFn: ({ signal }) => api.get("/ml/models", { signal }),
    refetchInterval: 10_000,
  });
}

export function useRegisterModel() {
  return useApiMutation(
    (api, body: Schemas["MlModelCreate"]) => api.post("/ml/models", { body }),
    () => [keys.models.all],
  );
}

export type AccuracyQuery = QueryOf<"/ml/models/{model_id}/accuracy", "get">;

/** A model's predictions against DFT: pairs, MAE/RMSE overall and per period. */
export function useModelAccuracy(id: number, query: AccuracyQuery) {
  const api = useApi();
  return useQuery({
    queryKey: keys.models.accuracy(id, query),
    queryFn: ({ signal }) =>
      api.get("/ml/models/{model_id}/accuracy", { path: { model_id: id }, query, signal }),
    enabled: Number.isInteger(id) && id > 0,
    placeholderData: keepPreviousData, // a filter change keeps the page until the answer
  });
}

export function useModel(id: number) {
  const api = useApi();
  return useQuery({
    queryKey: keys.models.detail(id),
    queryFn: ({ signal }) => api.get("/ml/models/{model_id}", { path: { model_id: id }, signal }),
    enabled: Number.isInteger(id) && id > 0,
  });
}
