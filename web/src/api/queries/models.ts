/** ML models registered in the main API (`/ml/models`); running them is the ML-API's job. */
import { useQuery } from "@tanstack/react-query";
import type { Schemas } from "../client";
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
