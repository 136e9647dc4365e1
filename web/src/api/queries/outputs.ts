/** A step's raw outputs (its run directory on the cluster): one directory listing at a time. */
import { useQuery } from "@tanstack/react-query";
import { useApi } from "../context";
import { keys } from "./keys";

/** Re-read when the step's state changes (files appear as it runs) or on `refetch`. */
export function useStepOutputs(calcId: number, stepIndex: number | undefined, path: string, stepState: string | undefined) {
  const api = useApi();
  return useQuery({
    queryKey: [...keys.calculations.outputs(calcId, stepIndex, path), stepState],
    queryFn: ({ signal }) =>
      api.get("/calculations/{calc_id}/steps/{step_index}/outputs", {
        path: { calc_id: calcId, step_index: stepIndex ?? 0 },
        query: { path: path || undefined },
        signal,
      }),
    enabled: stepIndex !== undefined,
    staleTime: 0,
  });
}
