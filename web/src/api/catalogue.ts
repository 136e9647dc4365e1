/**
 * The analyses catalogue: the live `GET /analyses` (typed, in the generated client) when the
 * server has it, otherwise the built-in catalogue snapshot generated next to the API types (web/scripts/gen-api.sh), which is what
 * the server validates selections against when no plugin is installed.
 */
import type { AnalysisInfo } from "../lib/analysisDeps";
import builtin from "./analyses-catalogue.json";
import type { ApiClient } from "./client";
import type { Capabilities } from "./capabilities";

export interface LoadedCatalogue {
  items: AnalysisInfo[];
  source: "server" | "built-in snapshot";
}

function normalize(raw: unknown): AnalysisInfo[] {
  const list = Array.isArray(raw)
    ? raw
    : raw && typeof raw === "object" && Array.isArray((raw as { items?: unknown }).items)
      ? (raw as { items: unknown[] }).items
      : [];
  return list
    .filter((a): a is Record<string, unknown> => !!a && typeof a === "object" && "name" in a)
    .map((a) => ({
      name: String(a.name),
      title: String(a.title ?? a.name),
      codes: Array.isArray(a.codes) ? a.codes.map(String) : [],
      requires: Array.isArray(a.requires) ? a.requires.map(String) : [],
      description: typeof a.description === "string" ? a.description : "",
      version: typeof a.version === "number" ? a.version : undefined,
    }));
}

export async function loadCatalogue(
  api: ApiClient,
  caps: Capabilities,
  signal?: AbortSignal,
): Promise<LoadedCatalogue> {
  if (caps.analysesCatalogue) {
    try {
      return { items: normalize(await api.get("/analyses", { signal })), source: "server" };
    } catch (e) {
      // An aborted load stays aborted; any other failure falls back to the snapshot below.
      if (signal?.aborted) throw e;
    }
  }
  return { items: normalize(builtin), source: "built-in snapshot" };
}
