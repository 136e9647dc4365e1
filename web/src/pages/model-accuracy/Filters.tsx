import type { AccuracyFilters, Period } from "../../lib/accuracy";
import type { Accuracy } from "./types";

const PERIODS: Period[] = ["day", "week", "month"];

/** Property, code and period of the page (the properties and codes come from the API). */
export function Filters({
  value,
  onChange,
  properties,
}: {
  value: AccuracyFilters;
  onChange: (next: AccuracyFilters) => void;
  properties: Accuracy["properties"];
}) {
  const codes = properties.find((p) => p.name === value.property)?.codes ?? [];
  return (
    <form className="row wrap" data-testid="accuracy-filters" onSubmit={(e) => e.preventDefault()}>
      <label>
        property{" "}
        <select
          aria-label="property"
          value={value.property}
          onChange={(e) => onChange({ ...value, property: e.target.value, code: "" })}
        >
          {properties.map((p) => (
            <option key={p.name} value={p.name} title={p.description}>
              {p.name}
              {p.unit ? ` (${p.unit})` : ""}
            </option>
          ))}
        </select>
      </label>
      <label>
        code{" "}
        <select aria-label="code" value={value.code} onChange={(e) => onChange({ ...value, code: e.target.value })}>
          <option value="">all</option>
          {codes.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      </label>
      <label>
        per{" "}
        <select
          aria-label="period"
          value={value.period}
          onChange={(e) => onChange({ ...value, period: e.target.value as Period })}
        >
          {PERIODS.map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </label>
    </form>
  );
}
