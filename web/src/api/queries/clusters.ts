/** Clusters: the list, an admin's view of one, its heartbeats, queue telemetry and agent keys; changes to them. */
import { keepPreviousData, useQuery } from "@tanstack/react-query";
import type { Schemas } from "../client";
import { useApi } from "../context";
import { keys } from "./keys";
import { useApiMutation } from "./mutation";

export function useClusters(options: { pollMs?: number } = {}) {
  const api = useApi();
  return useQuery({
    queryKey: keys.clusters.list(),
    queryFn: ({ signal }) => api.get("/clusters", { signal }),
    refetchInterval: options.pollMs,
  });
}

/** Runner options and the rest an admin edits (`updatedAt` re-reads it after a change). */
export function useClusterConfig(id: number, options: { enabled: boolean }) {
  const api = useApi();
  return useQuery({
    queryKey: keys.clusters.config(id),
    queryFn: ({ signal }) => api.get("/clusters/{cluster_id}/config", { path: { cluster_id: id }, signal }),
    enabled: options.enabled,
  });
}

/** Heartbeats of the last `hours`, downsampled server-side; `until` is when they were asked for. */
export function useHeartbeats(id: number, hours: number) {
  const api = useApi();
  return useQuery({
    queryKey: keys.clusters.heartbeats(id, hours),
    queryFn: async ({ signal }) => {
      const until = Date.now();
      const series = await api.get("/clusters/{cluster_id}/heartbeats", {
        path: { cluster_id: id },
        query: {
          since: new Date(until - hours * 3600_000).toISOString(),
          until: new Date(until).toISOString(),
          points: 120,
        },
        signal,
      });
      return { series, until };
    },
    refetchInterval: 30_000,
    placeholderData: keepPreviousData,
  });
}

/** Every user's queue per partition (now and over the last `hours`) and the nodes' states. */
export function useClusterTelemetry(id: number, hours: number) {
  const api = useApi();
  return useQuery({
    queryKey: keys.clusters.telemetry(id, hours),
    queryFn: async ({ signal }) => {
      const until = Date.now();
      const telemetry = await api.get("/clusters/{cluster_id}/telemetry", {
        path: { cluster_id: id },
        query: {
          since: new Date(until - hours * 3600_000).toISOString(),
          until: new Date(until).toISOString(),
          points: 120,
        },
        signal,
      });
      return { telemetry, until };
    },
    refetchInterval: 30_000,
    placeholderData: keepPreviousData,
  });
}

export function useApiKeys(clusterId: number) {
  const api = useApi();
  return useQuery({
    queryKey: keys.clusters.apiKeys(clusterId),
    queryFn: ({ signal }) => api.get("/clusters/{cluster_id}/api-keys", { path: { cluster_id: clusterId }, signal }),
  });
}

type ClusterBody = Schemas["ClusterUpdate"];

export function useSaveCluster() {
  return useApiMutation(
    (api, v: { id: number; body: ClusterBody } | { id: null; body: Schemas["ClusterCreate"] }) =>
      v.id === null
        ? api.post("/clusters", { body: v.body })
        : api.patch("/clusters/{cluster_id}", { path: { cluster_id: v.id }, body: v.body }),
    () => [keys.clusters.all],
  );
}

export type ClusterChange =
  | { action: "enable" | "disable" | "delete" }
  | { action: "map-queue"; queue: Schemas["QueueCreate"] }
  | { action: "unmap-queue"; logicalQueue: string };

export function useClusterChange(clusterId: number) {
  return useApiMutation(
    (api, c: ClusterChange): Promise<unknown> => {
      const path = { cluster_id: clusterId };
      switch (c.action) {
        case "enable":
          return api.post("/clusters/{cluster_id}/enable", { path });
        case "disable":
          return api.post("/clusters/{cluster_id}/disable", { path });
        case "delete":
          return api.delete("/clusters/{cluster_id}", { path });
        case "map-queue":
          return api.post("/clusters/{cluster_id}/queues", { path, body: c.queue });
        case "unmap-queue":
          return api.delete("/clusters/{cluster_id}/queues/{logical_queue}", {
            path: { ...path, logical_queue: c.logicalQueue },
          });
      }
    },
    () => [keys.clusters.all],
  );
}

export type ApiKeyChange =
  | { action: "generate"; name: string }
  | { action: "rotate"; keyId: number; graceSeconds: number }
  | { action: "revoke"; keyId: number };

/** Generate, rotate or revoke an agent key; answers the new secret (shown once) when there is one. */
export function useApiKeyChange(clusterId: number) {
  return useApiMutation(
    async (api, c: ApiKeyChange): Promise<string | null> => {
      const path = { cluster_id: clusterId };
      switch (c.action) {
        case "generate":
          return (await api.post("/clusters/{cluster_id}/api-keys", { path, body: { name: c.name } })).key;
        case "rotate":
          return (
            await api.post("/clusters/{cluster_id}/api-keys/{key_id}/rotate", {
              path: { ...path, key_id: c.keyId },
              body: { grace_seconds: c.graceSeconds },
            })
          ).key;
        case "revoke":
          await api.delete("/clusters/{cluster_id}/api-keys/{key_id}", { path: { ...path, key_id: c.keyId } });
          return null;
      }
    },
    () => [keys.clusters.apiKeys(clusterId)],
  );
}
