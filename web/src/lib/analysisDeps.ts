/**
 * The analysis selection rules of the create form, mirroring `analyses/graph.py` on the
 * server (which has the last word: a selection missing a requirement is refused with 422).
 *
 * The form never lets an invalid selection through: ticking an analysis ticks its
 * (transitive) requirements too and says so; a requirement stays ticked — and its checkbox
 * locked with "required by …" — while an analysis that needs it is selected.
 */
import type { Schemas } from "../api/client";

/** An entry of `GET /analyses` (the generated schema's type). */
export type AnalysisInfo = Schemas["AnalysisInfo"];

export type Catalogue = readonly AnalysisInfo[];

function index(catalogue: Catalogue): Map<string, AnalysisInfo> {
  return new Map(catalogue.map((a) => [a.name, a]));
}

/** The analyses a calculation of `code` may use; "generic" programs may write any format. */
export function availableFor(catalogue: Catalogue, code: string): AnalysisInfo[] {
  if (code === "generic") return [...catalogue];
  return catalogue.filter((a) => a.codes.includes(code));
}

/** `names` plus all their transitive requirements (unknown names are kept as they are). */
export function closure(names: Iterable<string>, catalogue: Catalogue): Set<string> {
  const byName = index(catalogue);
  const seen = new Set<string>();
  const todo = [...names];
  while (todo.length) {
    const name = todo.pop() as string;
    if (seen.has(name)) continue;
    seen.add(name);
    for (const req of byName.get(name)?.requires ?? []) todo.push(req);
  }
  return seen;
}

/** For each selected analysis: the selected analyses that require it directly. */
export function requiredBy(selection: readonly string[], catalogue: Catalogue): Map<string, string[]> {
  const byName = index(catalogue);
  const chosen = new Set(selection);
  const out = new Map<string, string[]>();
  for (const name of selection) {
    for (const req of byName.get(name)?.requires ?? []) {
      if (!chosen.has(req)) continue;
      const list = out.get(req) ?? [];
      if (!list.includes(name)) list.push(name);
      out.set(req, list);
    }
  }
  return out;
}

/** Requirements left out of `selection`: `{requirement: "required by X"}` (the server's shape). */
export function missingRequirements(
  selection: readonly string[],
  catalogue: Catalogue,
): Record<string, string> {
  const byName = index(catalogue);
  const chosen = new Set(selection);
  const missing: Record<string, string> = {};
  for (const name of selection) {
    for (const req of byName.get(name)?.requires ?? []) {
      if (!chosen.has(req) && !(req in missing)) missing[req] = `required by ${name}`;
    }
  }
  return missing;
}

/** Names the catalogue does not know (e.g. after a server upgrade removed a plugin). */
export function unknownNames(selection: readonly string[], catalogue: Catalogue): string[] {
  const byName = index(catalogue);
  return selection.filter((n) => !byName.has(n));
}

export interface SelectResult {
  selection: string[];
  /** requirements that were ticked along with the analysis */
  added: string[];
}

/** Tick `name` and everything it needs. */
export function selectAnalysis(
  selection: readonly string[],
  name: string,
  catalogue: Catalogue,
): SelectResult {
  const wanted = closure([name], catalogue);
  const added = [...wanted].filter((n) => n !== name && !selection.includes(n));
  const next = [...selection];
  for (const n of [name, ...added]) if (!next.includes(n)) next.push(n);
  return { selection: order(next, catalogue), added: order(added, catalogue) };
}

export interface DeselectResult {
  selection: string[];
  /** selected analyses that still need `name` (then nothing changed) */
  blockedBy: string[];
}

/** Untick `name`, unless a selected analysis requires it. */
export function deselectAnalysis(
  selection: readonly string[],
  name: string,
  catalogue: Catalogue,
): DeselectResult {
  const blockedBy = requiredBy(selection, catalogue).get(name) ?? [];
  if (blockedBy.length) return { selection: [...selection], blockedBy };
  return { selection: selection.filter((n) => n !== name), blockedBy: [] };
}

/**
 * Dependency order, requirements first; among analyses ready at the same time the order of
 * `selection` is kept (the same rule as the server's `resolve`).
 */
export function order(selection: readonly string[], catalogue: Catalogue): string[] {
  const byName = index(catalogue);
  const names = [...new Set(selection)];
  const rank = new Map(names.map((n, i) => [n, i]));
  const pending = new Set(names);
  const done = new Set<string>();
  const out: string[] = [];
  while (pending.size) {
    const ready = [...pending]
      .filter((n) => (byName.get(n)?.requires ?? []).every((r) => !pending.has(r) || done.has(r)))
      .sort((a, b) => (rank.get(a) ?? 0) - (rank.get(b) ?? 0) || a.localeCompare(b));
    if (!ready.length) {
      // a cycle (the server refuses such a registry): keep the rest in selection order
      out.push(...[...pending].sort((a, b) => (rank.get(a) ?? 0) - (rank.get(b) ?? 0)));
      break;
    }
    for (const n of ready) {
      pending.delete(n);
      done.add(n);
      out.push(n);
    }
  }
  return out;
}
