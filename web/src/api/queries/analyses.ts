/** The analyses catalogue (`GET /analyses`): what the server validates selections against. */
import { useQuery } from "@tanstack/react-query";
import { useApi } from "../context";
import { keys } from "./keys";

export function useCatalogue() {
  const api = useApi();
  return useQuery({
    queryKey: keys.analyses,
    queryFn: ({ signal }) => api.get("/analyses", { signal }),
    staleTime: 5 * 60_000, // changes only when the server's plugins do
  });
}
