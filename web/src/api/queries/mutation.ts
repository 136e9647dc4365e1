/** Mutations that say which cached queries they make stale. */
import { type QueryKey, useMutation, useQueryClient } from "@tanstack/react-query";
import type { ApiClient } from "../client";
import { useApi } from "../context";

/**
 * `run(api, variables)` against the typed client; on success every key `stale(variables,
 * result)` returns is invalidated (active queries refetch before the mutation settles, so
 * the page shows the new state as soon as the button is enabled again).
 */
export function useApiMutation<V, R>(
  run: (api: ApiClient, variables: V) => Promise<R>,
  stale: (variables: V, result: R) => readonly QueryKey[],
) {
  const api = useApi();
  const client = useQueryClient();
  return useMutation({
    mutationFn: (variables: V) => run(api, variables),
    onSuccess: (result, variables) =>
      Promise.all(stale(variables, result).map((queryKey) => client.invalidateQueries({ queryKey }))),
  });
}
