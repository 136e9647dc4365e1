import { describe, expect, it } from "vitest";
import spec from "../../openapi.json";
import { detectCapabilities } from "./capabilities";

describe("capabilities", () => {
  it("reads optional modules from the OpenAPI document", () => {
    const caps = detectCapabilities({
      paths: {
        "/analyses": { get: {} },
        "/calculations/{calc_id}/report": {
          get: { parameters: [{ name: "format", in: "query", schema: { enum: ["html", "pdf", "csv"] } }] },
        },
        "/ml/models": { get: {} },
      },
    });
    expect(caps.analysesCatalogue).toBe(true);
    expect(caps.molecules).toBe(false);
    expect(caps.modelsPath).toBe("/ml/models");
    expect(caps.reportPaths).toEqual([
      { path: "/calculations/{calc_id}/report", formatParam: { in: "query", name: "format", values: ["html", "pdf", "csv"] } },
    ]);
  });

  it("handles this server's schema", () => {
    const caps = detectCapabilities(spec as Parameters<typeof detectCapabilities>[0]);
    expect(caps.paths.has("/calculations")).toBe(true);
  });
});
