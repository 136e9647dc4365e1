/** Formatting for core-hour figures and month ranges (pure; unit-tested). */

/** `2026-12` for a date (UTC, like the server's months). */
export function monthOf(date: Date): string {
  return `${date.getUTCFullYear()}-${String(date.getUTCMonth() + 1).padStart(2, "0")}`;
}

/** A month `n` months before `month` (`YYYY-MM`). */
export function monthsBefore(month: string, n: number): string {
  const [y, m] = month.split("-").map(Number);
  const index = y * 12 + (m - 1) - n;
  return `${Math.floor(index / 12)}-${String((index % 12) + 1).padStart(2, "0")}`;
}

/** Whether `from..to` is a valid range (both `YYYY-MM`, `from` not after `to`). */
export function validRange(from: string, to: string): boolean {
  const ok = /^\d{4}-(0[1-9]|1[0-2])$/;
  return ok.test(from) && ok.test(to) && from <= to;
}

export function hours(value: number): string {
  if (value === 0) return "0";
  return value < 0.01 ? value.toFixed(4) : value.toFixed(2);
}

/** An efficiency (0..1) as a percentage; "—" when unknown. */
export function percent(value: number | null | undefined): string {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)} %`;
}

/** kB as MB/GB; "—" when unknown. */
export function memory(kb: number | null | undefined): string {
  if (kb === null || kb === undefined) return "—";
  if (kb >= 1024 * 1024) return `${(kb / 1024 / 1024).toFixed(2)} GB`;
  return `${(kb / 1024).toFixed(1)} MB`;
}
