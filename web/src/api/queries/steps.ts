/** One step of a calculation: its detail and its CPU/memory samples. */
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import type { Schemas } from "../client";
import { useApi } from "../context";
import { keys } from "./keys";

type Step = Schemas["StepOut"];

export function useStep(step: Step) {
  const api = useApi();
  return useQuery({
    queryKey: [...keys.steps.detail(step.id), step.state],
    queryFn: ({ signal }) => api.get("/steps/{step_id}", { path: { step_id: step.id }, signal }),
    placeholderData: keepPreviousData,
  });
}

/** Samples, polled while the step may still run. */
export function useStepSamples(step: Step, live: boolean) {
  const api = useApi();
  return useQuery({
    queryKey: keys.steps.samples(step.id),
    queryFn: ({ signal }) =>
      api.get("/steps/{step_id}/samples", { path: { step_id: step.id }, query: { points: 200 }, signal }),
    refetchInterval: live ? 5000 : false,
  });
}
