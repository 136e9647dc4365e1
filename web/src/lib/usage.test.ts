import { describe, expect, it } from "vitest";
import { hours, memory, monthOf, monthsBefore, percent, validRange } from "./usage";

describe("usage formatting", () => {
  it("months", () => {
    expect(monthOf(new Date(Date.UTC(2026, 11, 7)))).toBe("2026-12");
    expect(monthsBefore("2026-12", 0)).toBe("2026-12");
    expect(monthsBefore("2026-02", 2)).toBe("2025-12");
    expect(monthsBefore("2026-01", 12)).toBe("2025-01");
  });
  it("ranges", () => {
    expect(validRange("2026-01", "2026-12")).toBe(true);
    expect(validRange("2026-12", "2026-01")).toBe(false);
    expect(validRange("2026-13", "2026-13")).toBe(false);
    expect(validRange("", "2026-01")).toBe(false);
  });
  it("figures", () => {
    expect(hours(0)).toBe("0");
    expect(hours(0.001667)).toBe("0.0017");
    expect(hours(12.345)).toBe("12.35");
    expect(percent(0.4096)).toBe("41.0 %");
    expect(percent(null)).toBe("—");
    expect(memory(204800)).toBe("200.0 MB");
    expect(memory(4 * 1024 * 1024)).toBe("4.00 GB");
    expect(memory(undefined)).toBe("—");
  });
});
