/** Molecules: the list, one molecule, one analysis compared across its calculations; registering. */
import { useQuery } from "@tanstack/react-query";
import type { AnalysisOutputDoc } from "../../lib/report";
import type { Schemas } from "../client";
import { useApi } from "../context";
import { keys } from "./keys";
import { useApiMutation } from "./mutation";

export function useMolecules() {
  const api = useApi();
  return useQuery({
    queryKey: keys.molecules.list(),
    queryFn: ({ signal }) => api.get("/molecules", { query: { limit: 500 }, signal }),
    // Calculations are created from elsewhere too (the CLI, scripts): the counts stay live
    // while the list is open (paused while the tab is hidden).
    refetchInterval: 10_000,
  });
}

export function useMolecule(id: number) {
  const api = useApi();
  return useQuery({
    queryKey: keys.molecules.detail(id),
    queryFn: ({ signal }) => api.get("/molecules/{molecule_id}", { path: { molecule_id: id }, signal }),
    enabled: Number.isInteger(id) && id > 0,
  });
}

/**
 * One row per calculation of the molecule. The route declares its rows as free-form objects
 * (each carries the analysis' own output document), so this is their documented content.
 */
export interface CompareRow {
  calculation_id: number;
  name: string;
  state: string;
  kind?: string;
  variants?: Record<string, unknown>[];
  status?: string;
  output?: AnalysisOutputDoc | null;
}

export function useComparison(moleculeId: number, analysis: string) {
  const api = useApi();
  return useQuery({
    queryKey: keys.molecules.compare(moleculeId, analysis),
    queryFn: async ({ signal }) =>
      (await api.get("/molecules/{molecule_id}/compare", {
        path: { molecule_id: moleculeId },
        query: { analysis },
        signal,
      })) as unknown as CompareRow[],
    enabled: analysis !== "",
  });
}

export function useRegisterMolecule() {
  return useApiMutation(
    (api, body: Schemas["MoleculeCreate"]) => api.post("/molecules", { body }),
    () => [keys.molecules.all],
  );
}
