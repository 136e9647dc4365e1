import { describe, expect, it } from "vitest";
import { ApiClient, ApiError, type Schemas } from "../api/client";
import { createWithFiles, uploadInputs, withBinaryInputs } from "./uploads";

// A recording fetch is the seam here; the real routes are exercised by tests/e2e/test_ladder_view.py.
function client(answers: { status: number; body: unknown }[]) {
  const calls: { url: string; init: RequestInit }[] = [];
  const api = new ApiClient({
    getToken: () => "tok",
    fetch: (async (url: RequestInfo | URL, init?: RequestInit) => {
      calls.push({ url: String(url), init: init ?? {} });
      const a = answers.shift()!;
      return new Response(JSON.stringify(a.body), { status: a.status, headers: { "Content-Type": "application/json" } });
    }) as typeof fetch,
  });
  return { api, calls };
}

const tshs = () => new File([new Uint8Array([0, 255, 1, 254, 10, 13])], "elec.TSHS");

describe("binary uploads", () => {
  it("sends files as multipart (no JSON content type) and maps names to hashes", async () => {
    const { api, calls } = client([{ status: 201, body: { files: [{ name: "elec.TSHS", sha256: "ab".repeat(32), size: 6, new: true }] } }]);
    expect(await uploadInputs(api, [tshs()])).toEqual({ "elec.TSHS": "ab".repeat(32) });
    const { url, init } = calls[0];
    expect(url).toBe("/inputs");
    expect(init.method).toBe("POST");
    expect((init.headers as Record<string, string>)["Content-Type"]).toBeUndefined();
    expect((init.headers as Record<string, string>).Authorization).toBe("Bearer tok");
    const form = init.body as FormData;
    const file = form.get("file") as File;
    expect(file.name).toBe("elec.TSHS");
    expect([...new Uint8Array(await file.arrayBuffer())]).toEqual([0, 255, 1, 254, 10, 13]);
    expect(await uploadInputs(api, [])).toEqual({});
    expect(calls).toHaveLength(1);
  });

  it("creates a calculation with its files in one request, and surfaces a 413", async () => {
    const { api, calls } = client([
      { status: 201, body: { id: 9 } },
      { status: 413, body: { detail: "file 'elec.TSHS' is larger than the 1 MiB allowed per input file", code: "too_large" } },
    ]);
    const body = { name: "ladder", cluster_id: 1, logical_queue: "default", configuration: { kind: "transiesta" } } as Schemas["CalculationCreate"];
    expect((await createWithFiles(api, body, [tshs()])).id).toBe(9);
    const form = calls[0].init.body as FormData;
    expect(calls[0].url).toBe("/calculations/upload");
    expect(JSON.parse(form.get("calculation") as string)).toEqual(body);
    expect((form.getAll("file") as File[]).map((f) => f.name)).toEqual(["elec.TSHS"]);
    const refused = await createWithFiles(api, body, [tshs()]).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).status).toBe(413);
    expect((refused as ApiError).message).toMatch(/larger than/);
  });

  it("adds references to binary_inputs ", () => {
    expect(withBinaryInputs({ kind: "x", binary_inputs: { "a.DM": "1" } }, { "b.TSDE": "2" })).toEqual({
      kind: "x",
      binary_inputs: { "a.DM": "1", "b.TSDE": "2" },
    });
    expect(withBinaryInputs({ kind: "x" }, {})).toEqual({ kind: "x" });
  });
});
