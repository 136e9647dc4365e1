/**
 * Query keys: one tree per resource, so a mutation invalidates exactly what it changed
 * (`invalidateQueries({ queryKey: keys.calculations.all })` refetches every calculation list,
 * detail and result in the cache; `keys.calculations.detail(7)` only calculation 7's).
 */
import type { QueryOf } from "../client";

export type CalcListQuery = QueryOf<"/calculations", "get">;
export type UserListQuery = QueryOf<"/users", "get">;
export type LogQuery = QueryOf<"/logs", "get">;

export const keys = {
  me: ["auth", "me"] as const,
  analyses: ["analyses"] as const,
  calculations: {
    all: ["calculations"] as const,
    list: (query: CalcListQuery) => ["calculations", "list", query] as const,
    detail: (id: number) => ["calculations", id] as const,
    results: (id: number) => ["calculations", id, "results"] as const,
    predictions: (id: number) => ["calculations", id, "predictions"] as const,
    inputFile: (id: number, name: string) => ["calculations", id, "inputs", name] as const,
    outputs: (id: number, step: number | undefined, path: string) =>
      ["calculations", id, "outputs", step ?? null, path] as const,
  },
  steps: {
    detail: (id: number) => ["steps", id] as const,
    samples: (id: number) => ["steps", id, "samples"] as const,
  },
  clusters: {
    all: ["clusters"] as const,
    list: () => ["clusters", "list"] as const,
    config: (id: number) => ["clusters", id, "config"] as const,
    apiKeys: (id: number) => ["clusters", id, "api-keys"] as const,
    heartbeats: (id: number, hours: number) => ["clusters", id, "heartbeats", hours] as const,
    telemetry: (id: number, hours: number) => ["clusters", id, "telemetry", hours] as const,
  },
  molecules: {
    all: ["molecules"] as const,
    list: () => ["molecules", "list"] as const,
    detail: (id: number) => ["molecules", id] as const,
    compare: (id: number, analysis: string) => ["molecules", id, "compare", analysis] as const,
  },
  users: {
    all: ["users"] as const,
    list: (query: UserListQuery) => ["users", "list", query] as const,
  },
  models: {
    all: ["ml-models"] as const,
    detail: (id: number) => ["ml-models", id] as const,
    accuracy: (id: number, query: object) => ["ml-models", id, "accuracy", query] as const,
  },
  logs: {
    all: ["logs"] as const,
    page: (query: LogQuery) => ["logs", "page", query] as const,
  },
};
