/**
 * A small typed fetch wrapper over the generated OpenAPI types (`schema.d.ts`).
 *
 *   const page = await api.get("/calculations", { query: { limit: 25, state: "failed" } });
 *   const calc = await api.post("/calculations/{calc_id}/approve", { path: { calc_id: 3 } });
 *
 * Paths, path/query parameters, JSON bodies and success responses are all checked by the
 * compiler against the API's own schema. Every request sends `Accept: application/json`
 * (the server tells API calls from page navigations by that header, see docs/web.md) and the
 * in-memory access token. A 401 triggers one token refresh through `onUnauthorized` and a
 * single retry; errors become `ApiError` with the server's `detail`, `code` and extra fields
 * (e.g. `missing` of a refused analysis selection).
 */
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type HttpMethod = "get" | "post" | "put" | "patch" | "delete";

type Operation<P extends keyof paths, M extends HttpMethod> = NonNullable<paths[P][M]>;

/** Paths that declare an operation for method `M`. */
export type PathsWith<M extends HttpMethod> = {
  [P in keyof paths]: [NonNullable<paths[P][M]>] extends [never] ? never : P;
}[keyof paths];

type IsEmpty<T> = [T] extends [never] ? true : [T] extends [undefined] ? true : false;

type PathPart<O> = O extends { parameters: { path: infer X } }
  ? IsEmpty<X> extends true
    ? { path?: undefined }
    : { path: X }
  : { path?: undefined };

type QueryPart<O> = O extends { parameters: { query?: infer Q } }
  ? IsEmpty<Q> extends true
    ? { query?: undefined }
    : { query?: Q }
  : { query?: undefined };

type BodyPart<O> = O extends { requestBody: { content: { "application/json": infer B } } }
  ? { body: B }
  : O extends { requestBody?: { content: { "application/json": infer B } } }
    ? { body?: B }
    : { body?: undefined };

export type RequestOptions<P extends keyof paths, M extends HttpMethod> = PathPart<
  Operation<P, M>
> &
  QueryPart<Operation<P, M>> &
  BodyPart<Operation<P, M>> & { signal?: AbortSignal; headers?: Record<string, string> };

type JsonOf<R> = R extends { content: { "application/json": infer J } } ? J : never;

/** The JSON body of the 200/201/202 response, or `void` for a 204. */
export type ResponseOf<P extends keyof paths, M extends HttpMethod> =
  Operation<P, M> extends { responses: infer R }
    ? [JsonOf<R[Extract<keyof R, 200 | 201 | 202>]>] extends [never]
      ? void
      : JsonOf<R[Extract<keyof R, 200 | 201 | 202>]>
    : never;

/** The query parameters of an operation (`QueryOf<"/calculations", "get">`). */
export type QueryOf<P extends keyof paths, M extends HttpMethod> =
  Operation<P, M> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

/** The path parameters of an operation. */
export type PathParamsOf<P extends keyof paths, M extends HttpMethod> =
  Operation<P, M> extends { parameters: { path: infer X } } ? NonNullable<X> : never;

/** Paths whose POST takes a multipart form (file uploads). */
export type FormPaths = {
  [P in PathsWith<"post">]: NonNullable<paths[P]["post"]> extends {
    requestBody: { content: { "multipart/form-data": unknown } };
  }
    ? P
    : never;
}[PathsWith<"post">];

// An options argument is required only when something in it is.
type Args<P extends keyof paths, M extends HttpMethod> =
  object extends RequestOptions<P, M>
    ? [options?: RequestOptions<P, M>]
    : [options: RequestOptions<P, M>];

export interface ErrorBody {
  detail?: unknown;
  code?: string;
  [extra: string]: unknown;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody) {
    super(describeDetail(body.detail) || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = typeof body.code === "string" ? body.code : `http_${status}`;
    this.body = body;
  }
}

function describeDetail(detail: unknown): string {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    // FastAPI's own 422 shape: [{loc, msg}]
    return detail
      .map((d) => {
        const item = d as { loc?: unknown[]; msg?: string };
        const where = (item.loc ?? []).filter((p) => p !== "body").join(".");
        return where ? `${where}: ${item.msg ?? ""}` : String(item.msg ?? "");
      })
      .join("; ");
  }
  return detail == null ? "" : JSON.stringify(detail);
}

/** `/calculations/{calc_id}` + `{calc_id: 3}` -> `/calculations/3` (each value URL-encoded). */
export function fillPath(template: string, params?: Record<string, unknown>): string {
  return template.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = params?.[name];
    if (value === undefined || value === null || value === "") {
      throw new Error(`missing path parameter "${name}" for ${template}`);
    }
    return encodeURIComponent(String(value));
  });
}

/** Query string without empty values; arrays repeat the key (`?a=1&a=2`). */
export function buildQuery(query?: Record<string, unknown>): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) {
      for (const v of value) params.append(key, String(v));
    } else {
      params.append(key, String(value));
    }
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

export interface ClientOptions {
  /** Prefix of every path; "" means the page's own origin (the portal is served by the API). */
  baseUrl?: string;
  fetch?: typeof fetch;
  /** The current access token (kept in memory only). */
  getToken?: () => string | null;
  /** Called on a 401; resolves to a fresh token (retry once) or null (give up). */
  onUnauthorized?: () => Promise<string | null>;
}

const NO_RETRY = new Set(["/auth/login", "/auth/refresh", "/auth/logout"]);

export class ApiClient {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;
  private readonly getToken: () => string | null;
  private readonly onUnauthorized?: () => Promise<string | null>;

  constructor(options: ClientOptions = {}) {
    this.baseUrl = options.baseUrl ?? "";
    this.fetchImpl = options.fetch ?? ((...a) => globalThis.fetch(...a));
    this.getToken = options.getToken ?? (() => null);
    this.onUnauthorized = options.onUnauthorized;
  }

  get<P extends PathsWith<"get">>(path: P, ...args: Args<P, "get">): Promise<ResponseOf<P, "get">> {
    return this.request("get", path, args[0]) as Promise<ResponseOf<P, "get">>;
  }

  post<P extends PathsWith<"post">>(
    path: P,
    ...args: Args<P, "post">
  ): Promise<ResponseOf<P, "post">> {
    return this.request("post", path, args[0]) as Promise<ResponseOf<P, "post">>;
  }

  put<P extends PathsWith<"put">>(path: P, ...args: Args<P, "put">): Promise<ResponseOf<P, "put">> {
    return this.request("put", path, args[0]) as Promise<ResponseOf<P, "put">>;
  }

  patch<P extends PathsWith<"patch">>(
    path: P,
    ...args: Args<P, "patch">
  ): Promise<ResponseOf<P, "patch">> {
    return this.request("patch", path, args[0]) as Promise<ResponseOf<P, "patch">>;
  }

  delete<P extends PathsWith<"delete">>(
    path: P,
    ...args: Args<P, "delete">
  ): Promise<ResponseOf<P, "delete">> {
    return this.request("delete", path, args[0]) as Promise<ResponseOf<P, "delete">>;
  }

  /**
   * Untyped calls for another service that accepts the same token (the ML-API, `hpcgate
   * ml-api`), whose routes are not part of this API's schema. Never for this API's routes.
   */
  raw<T = unknown>(
    method: HttpMethod,
    path: string,
    options: {
      path?: Record<string, unknown>;
      query?: Record<string, unknown>;
      body?: unknown;
      signal?: AbortSignal;
    } = {},
  ): Promise<T> {
    return this.request(method, path, options) as Promise<T>;
  }

  /** A multipart upload (binary input files): `form`'s fields and files, the JSON answer. */
  async postForm<P extends FormPaths>(
    path: P,
    form: FormData,
    signal?: AbortSignal,
  ): Promise<ResponseOf<P, "post">> {
    const response = await this.send("post", path, form, {}, signal);
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as ResponseOf<P, "post">;
  }

  /** A binary download (reports): the body as a Blob plus its file name, if the server sent one. */
  async download<P extends PathsWith<"get">>(
    path: P,
    ...args: Args<P, "get">
  ): Promise<{ blob: Blob; filename: string | null }> {
    const options = args[0] as { path?: Record<string, unknown>; query?: Record<string, unknown> } | undefined;
    const url = fillPath(path, options?.path) + buildQuery(options?.query);
    const response = await this.send("get", url, undefined, { Accept: "*/*" });
    const disposition = response.headers.get("Content-Disposition") ?? "";
    const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
    return { blob: await response.blob(), filename: match ? decodeURIComponent(match[1]) : null };
  }

  /** Low level: a Response (not parsed) with auth and the 401 retry; used by the SSE reader. */
  async send(
    method: HttpMethod,
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ): Promise<Response> {
    const pathOnly = url.split("?")[0];
    // A FormData body goes as multipart/form-data (fetch sets the boundary itself).
    const form = typeof FormData !== "undefined" && body instanceof FormData;
    const attempt = (token: string | null) => {
      const h: Record<string, string> = { Accept: "application/json", ...headers };
      if (token) h.Authorization = `Bearer ${token}`;
      if (body !== undefined && !form) h["Content-Type"] = "application/json";
      return this.fetchImpl(this.baseUrl + url, {
        method: method.toUpperCase(),
        headers: h,
        body: body === undefined ? undefined : form ? (body as FormData) : JSON.stringify(body),
        credentials: "same-origin",
        signal,
      });
    };
    let response = await attempt(this.getToken());
    if (response.status === 401 && this.onUnauthorized && !NO_RETRY.has(pathOnly)) {
      const fresh = await this.onUnauthorized();
      if (fresh) response = await attempt(fresh);
    }
    if (!response.ok) {
      throw new ApiError(response.status, await readErrorBody(response));
    }
    return response;
  }

  private async request(
    method: HttpMethod,
    template: string,
    options?: {
      path?: unknown;
      query?: unknown;
      body?: unknown;
      signal?: AbortSignal;
      headers?: Record<string, string>;
    },
  ): Promise<unknown> {
    const url =
      fillPath(template, options?.path as Record<string, unknown> | undefined) +
      buildQuery(options?.query as Record<string, unknown> | undefined);
    const response = await this.send(method, url, options?.body, options?.headers, options?.signal);
    if (response.status === 204) return undefined;
    const text = await response.text();
    return text ? JSON.parse(text) : undefined;
  }
}

async function readErrorBody(response: Response): Promise<ErrorBody> {
  try {
    const text = await response.text();
    if (!text) return { detail: response.statusText || `HTTP ${response.status}` };
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === "object" && parsed !== null
      ? (parsed as ErrorBody)
      : { detail: String(parsed) };
  } catch {
    return { detail: response.statusText || `HTTP ${response.status}` };
  }
}
