import { describe, expect, it, vi } from "vitest";
import { ApiClient, ApiError, buildQuery, fillPath } from "./client";

function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

function recorder(responses: Response[]) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetchImpl = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    const next = responses.shift();
    if (!next) throw new Error("unexpected request " + String(url));
    return next;
  });
  return { calls, fetchImpl: fetchImpl as unknown as typeof fetch };
}

describe("fillPath / buildQuery", () => {
  it("substitutes and encodes path parameters", () => {
    expect(fillPath("/calculations/{calc_id}/inputs/{file_name}", { calc_id: 3, file_name: "a b/c.fdf" })).toBe(
      "/calculations/3/inputs/a%20b%2Fc.fdf",
    );
  });
  it("refuses a missing path parameter", () => {
    expect(() => fillPath("/steps/{step_id}", {})).toThrow(/step_id/);
  });
  it("drops empty values and repeats arrays", () => {
    expect(buildQuery({ a: 1, b: undefined, c: null, d: "", e: [1, 2], f: false })).toBe("?a=1&e=1&e=2&f=false");
    expect(buildQuery({})).toBe("");
    expect(buildQuery(undefined)).toBe("");
  });
});

describe("ApiClient", () => {
  it("sends typed requests with the token, JSON body and Accept header", async () => {
    const { calls, fetchImpl } = recorder([jsonResponse(200, { items: [], total: 0, limit: 25, offset: 50 })]);
    const api = new ApiClient({ fetch: fetchImpl, getToken: () => "tok-1" });
    const page = await api.get("/calculations", { query: { state: "failed", limit: 25, offset: 50 } });
    expect(page.total).toBe(0);
    expect(calls[0].url).toBe("/calculations?state=failed&limit=25&offset=50");
    const headers = calls[0].init.headers as Record<string, string>;
    expect(headers.Authorization).toBe("Bearer tok-1");
    expect(headers.Accept).toBe("application/json");
    expect(calls[0].init.method).toBe("GET");
  });

  it("posts JSON bodies to filled paths", async () => {
    const { calls, fetchImpl } = recorder([jsonResponse(200, { id: 7, priority: 5 })]);
    const api = new ApiClient({ fetch: fetchImpl });
    await api.put("/calculations/{calc_id}/priority", { path: { calc_id: 7 }, body: { priority: 5 } });
    expect(calls[0].url).toBe("/calculations/7/priority");
    expect(calls[0].init.method).toBe("PUT");
    expect(calls[0].init.body).toBe(JSON.stringify({ priority: 5 }));
    expect((calls[0].init.headers as Record<string, string>)["Content-Type"]).toBe("application/json");
  });

  it("returns undefined for 204", async () => {
    const { fetchImpl } = recorder([new Response(null, { status: 204 })]);
    const api = new ApiClient({ fetch: fetchImpl });
    await expect(api.delete("/users/{user_id}", { path: { user_id: 2 } })).resolves.toBeUndefined();
  });

  it("refreshes once on 401 and retries with the new token", async () => {
    const { calls, fetchImpl } = recorder([jsonResponse(401, { detail: "expired", code: "unauthorized" }), jsonResponse(200, { id: 1 })]);
    let token = "old";
    const onUnauthorized = vi.fn(async () => {
      token = "new";
      return token;
    });
    const api = new ApiClient({ fetch: fetchImpl, getToken: () => token, onUnauthorized });
    const me = await api.get("/auth/me");
    expect(me).toEqual({ id: 1 });
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
    expect((calls[1].init.headers as Record<string, string>).Authorization).toBe("Bearer new");
  });

  it("gives up when the refresh fails, with the server's error", async () => {
    const { calls, fetchImpl } = recorder([jsonResponse(401, { detail: "session revoked; log in again", code: "unauthorized" })]);
    const api = new ApiClient({ fetch: fetchImpl, getToken: () => "t", onUnauthorized: async () => null });
    const err = await api.get("/auth/me").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(401);
    expect((err as ApiError).message).toBe("session revoked; log in again");
    expect(calls).toHaveLength(1);
  });

  it("never retries the auth endpoints themselves", async () => {
    const { fetchImpl } = recorder([jsonResponse(401, { detail: "bad" })]);
    const onUnauthorized = vi.fn(async () => "x");
    const api = new ApiClient({ fetch: fetchImpl, onUnauthorized });
    await expect(api.post("/auth/refresh")).rejects.toBeInstanceOf(ApiError);
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it("keeps the extra fields of an error body (a refused analysis selection)", async () => {
    const body = {
      detail: "analysis selection refused: missing requirements: scf_convergence (required by energy)",
      code: "invalid_selection",
      missing: { scf_convergence: "required by energy" },
    };
    const { fetchImpl } = recorder([jsonResponse(422, body)]);
    const api = new ApiClient({ fetch: fetchImpl });
    const err = (await api
      .post("/calculations", {
        body: { name: "x", cluster_id: 1, logical_queue: "q", configuration: {}, analyses: ["energy"] },
      })
      .catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe("invalid_selection");
    expect(err.body.missing).toEqual({ scf_convergence: "required by energy" });
  });

  it("formats FastAPI's list-shaped validation errors", async () => {
    const { fetchImpl } = recorder([jsonResponse(422, { detail: [{ loc: ["body", "name"], msg: "field required" }] })]);
    const api = new ApiClient({ fetch: fetchImpl });
    const err = (await api.get("/clusters").catch((e: unknown) => e)) as ApiError;
    expect(err.message).toBe("name: field required");
  });

  it("survives a non-JSON error body", async () => {
    const { fetchImpl } = recorder([new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" })]);
    const api = new ApiClient({ fetch: fetchImpl });
    const err = (await api.get("/clusters").catch((e: unknown) => e)) as ApiError;
    expect(err.status).toBe(502);
    expect(err.message).toBe("Bad Gateway");
  });

  it("uses the base URL for the untyped ML-API calls", async () => {
    const { calls, fetchImpl } = recorder([jsonResponse(200, [{ id: 1 }])]);
    const api = new ApiClient({ fetch: fetchImpl, baseUrl: "http://ml:8100" });
    await api.raw("post", "/models/{id}/run", { path: { id: 4 } });
    expect(calls[0].url).toBe("http://ml:8100/models/4/run");
  });
});
