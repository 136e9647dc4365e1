/** Log lines: pages (newest first, then older ones on demand), and deleting what matches. */
import { useInfiniteQuery } from "@tanstack/react-query";
import type { QueryOf } from "../client";
import { useApi } from "../context";
import { keys, type LogQuery } from "./keys";
import { useApiMutation } from "./mutation";

/**
 * The newest page for these filters, then older pages (`fetchNextPage`). Never shared
 * structurally: every fetch of the first page is a new object, which is how the live tail
 * (`api/sse.ts`, in components/LogsView.tsx) knows to start again from it.
 */
export function useLogPages(query: Omit<LogQuery, "cursor">) {
  const api = useApi();
  return useInfiniteQuery({
    queryKey: keys.logs.page(query),
    queryFn: ({ signal, pageParam }) =>
      api.get("/logs", { query: { ...query, cursor: pageParam ?? undefined }, signal }),
    initialPageParam: null as string | null,
    getNextPageParam: (page) => page.next_cursor,
    staleTime: 0,
    refetchOnWindowFocus: false, // the tail keeps the lines current
    structuralSharing: false,
  });
}

export function useDeleteLogs() {
  return useApiMutation(
    (api, query: QueryOf<"/logs", "delete">) => api.delete("/logs", { query }),
    () => [keys.logs.all],
  );
}
