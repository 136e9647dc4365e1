/** Core-hour usage (`GET /usage`, CSV), a calculation's usage, quotas, the approval context. */
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import type { QueryOf } from "../client";
import { useApi } from "../context";

export type UsageQuery = QueryOf<"/usage", "get">;

/** Query keys of this module (one tree: `usageKeys.all` invalidates every usage read). */
export const usageKeys = {
  all: ["usage"] as const,
  report: (query: UsageQuery) => ["usage", "report", query] as const,
  calculation: (id: number) => ["usage", "calculation", id] as const,
  quotas: () => ["usage", "quotas"] as const,
  approval: (id: number) => ["usage", "approval", id] as const,
};

export function useUsageReport(query: UsageQuery) {
  const api = useApi();
  return useQuery({
    queryKey: usageKeys.report(query),
    queryFn: ({ signal }) => api.get("/usage", { query: { ...query, format: "json" }, signal }),
    placeholderData: keepPreviousData,
  });
}

export function useCalculationUsage(id: number, options: { enabled: boolean }) {
  const api = useApi();
  return useQuery({
    queryKey: usageKeys.calculation(id),
    queryFn: ({ signal }) => api.get("/calculations/{calc_id}/usage", { path: { calc_id: id }, signal }),
    enabled: options.enabled,
  });
}

export function useMyQuotas() {
  const api = useApi();
  return useQuery({
    queryKey: usageKeys.quotas(),
    queryFn: ({ signal }) => api.get("/usage/quotas", { signal }),
  });
}

/** What a moderator sees before approving: the estimate and the owner's month. */
export function useApprovalContext(id: number, options: { enabled: boolean }) {
  const api = useApi();
  return useQuery({
    queryKey: usageKeys.approval(id),
    queryFn: ({ signal }) =>
      api.get("/calculations/{calc_id}/approval-context", { path: { calc_id: id }, signal }),
    enabled: options.enabled,
  });
}
