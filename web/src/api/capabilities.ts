/**
 * Which optional parts this server has, read from its own /openapi.json at start-up.
 *
 * The portal is built once but served by API versions with or without optional modules
 * (the analyses catalogue, molecules, reports, ML models); sections that need a missing
 * route are hidden or say so instead of failing.
 */
export interface Capabilities {
  paths: Set<string>;
  analysesCatalogue: boolean;
  molecules: boolean;
  /** the GET path listing ML models, when the main API offers one */
  modelsPath: string | null;
  /** GET paths that produce a calculation's report (with their parameters) */
  reportPaths: ReportRoute[];
}

export interface ReportRoute {
  path: string;
  /** where the format goes: a path parameter name, a query parameter name, or nothing */
  formatParam: { in: "path" | "query"; name: string; values: string[] } | null;
}

interface OpenApiParameter {
  name: string;
  in: string;
  schema?: { enum?: string[]; anyOf?: { enum?: string[] }[]; $ref?: string };
}

interface OpenApiDoc {
  paths?: Record<string, Record<string, { parameters?: OpenApiParameter[] }>>;
  components?: { schemas?: Record<string, { enum?: string[] }> };
}

const FORMAT_NAMES = ["format", "fmt", "kind", "file_format"];
const DEFAULT_FORMATS = ["html", "pdf", "csv"];

function enumOf(param: OpenApiParameter, doc: OpenApiDoc): string[] {
  const s = param.schema ?? {};
  if (s.enum) return s.enum;
  const nested = s.anyOf?.find((x) => x.enum)?.enum;
  if (nested) return nested;
  if (s.$ref) {
    const name = s.$ref.split("/").pop() ?? "";
    return doc.components?.schemas?.[name]?.enum ?? DEFAULT_FORMATS;
  }
  return DEFAULT_FORMATS;
}

export function detectCapabilities(doc: OpenApiDoc): Capabilities {
  const paths = doc.paths ?? {};
  const gets = Object.keys(paths).filter((p) => paths[p]?.get);
  const has = (p: string) => gets.includes(p);
  const reportPaths: ReportRoute[] = gets
    .filter((p) => /report/i.test(p) && /\{[^}]*id\}/.test(p))
    .map((p) => {
      const params = paths[p].get.parameters ?? [];
      const fmt = params.find((x) => FORMAT_NAMES.includes(x.name) && x.in !== "header");
      return {
        path: p,
        formatParam: fmt
          ? { in: fmt.in === "path" ? "path" : "query", name: fmt.name, values: enumOf(fmt, doc) }
          : null,
      };
    });
  return {
    paths: new Set(Object.keys(paths)),
    analysesCatalogue: has("/analyses"),
    molecules: has("/molecules"),
    modelsPath: ["/models", "/ml/models", "/ml-models"].find(has) ?? null,
    reportPaths,
  };
}

export const NO_CAPABILITIES: Capabilities = {
  paths: new Set(),
  analysesCatalogue: false,
  molecules: false,
  modelsPath: null,
  reportPaths: [],
};

export async function loadCapabilities(fetchImpl: typeof fetch = fetch): Promise<Capabilities> {
  try {
    const response = await fetchImpl("/openapi.json", { headers: { Accept: "application/json" } });
    if (!response.ok) return NO_CAPABILITIES;
    return detectCapabilities((await response.json()) as OpenApiDoc);
  } catch {
    return NO_CAPABILITIES;
  }
}
