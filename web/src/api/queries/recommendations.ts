/** The learned walltime/memory proposal for the form as it is (`POST /calculations/recommendation`). */
import type { Schemas } from "../client";
import { useApiMutation } from "./mutation";

/** `revision` tells which state of the form the answer belongs to (nothing is cached). */
export function useRecommendation() {
  return useApiMutation(
    (api, v: { body: Schemas["RecommendationIn"]; revision: number }) =>
      api.post("/calculations/recommendation", { body: v.body }),
    () => [],
  );
}
