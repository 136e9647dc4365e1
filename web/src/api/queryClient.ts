/**
 * The one TanStack Query cache of the portal: every piece of server state goes through it
 * (hooks in `api/queries/`), keyed by `api/queries/keys.ts`.
 *
 * - Data stays fresh for a few seconds, so moving between pages shows what was loaded and
 *   refetches in the background instead of flashing a spinner.
 * - A refusal (4xx) is an answer, not a glitch: it is shown at once, never retried; a
 *   network error or 5xx is retried once.
 * - Polling (`refetchInterval`) pauses while the tab is hidden (TanStack's default).
 */
import { QueryClient } from "@tanstack/react-query";
import { ApiError } from "./client";

export function createQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 5_000,
        retry: (failures, error) => failures < 1 && !(error instanceof ApiError && error.status < 500),
      },
      mutations: { retry: false },
    },
  });
}
