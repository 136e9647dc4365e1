/**
 * Binary input files (electrode `.TSHS`, `.DM`, `.TSDE`, `.psml`, `.ion.nc`) over the
 * API's multipart routes (`hpcgate/api/routes/inputs.py`), never inside JSON:
 *
 * - `POST /inputs` stores files by content and answers `{files: [{name, sha256, size}]}`;
 *   the configuration then refers to them as `binary_inputs: {name: sha256}` (the preview
 *   uses this: nothing else is saved);
 * - `POST /calculations/upload` creates a calculation with its files in one request and
 *   one transaction: a refused calculation stores none of them.
 */
import type { ApiClient, Schemas } from "../api/client";

export const BINARY_SUFFIXES = [".TSHS", ".DM", ".TSDE", ".psml", ".ion.nc", ".ion.xml", ".HSX", ".nc"];

function formOf(files: readonly File[], fields: Record<string, string> = {}): FormData {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  for (const f of files) form.append("file", f, f.name);
  return form;
}

/** Store the files by content; `{name: sha256}` for `configuration.binary_inputs`. */
export async function uploadInputs(api: ApiClient, files: readonly File[]): Promise<Record<string, string>> {
  if (!files.length) return {};
  const answer = await api.postForm("/inputs", formOf(files));
  return Object.fromEntries(answer.files.map((f) => [f.name, f.sha256]));
}

/** `POST /calculations` with its binary files in the same request. */
export function createWithFiles(
  api: ApiClient,
  body: Schemas["CalculationCreate"],
  files: readonly File[],
): Promise<Schemas["CalculationDetail"]> {
  const form = formOf(files, { calculation: JSON.stringify(body) });
  return api.postForm("/calculations/upload", form);
}

/** A configuration with these references added to its `binary_inputs`. */
export function withBinaryInputs(config: Record<string, unknown>, refs: Record<string, string>): Record<string, unknown> {
  if (!Object.keys(refs).length) return config;
  const existing = (config.binary_inputs as Record<string, string> | undefined) ?? {};
  return { ...config, binary_inputs: { ...existing, ...refs } };
}
