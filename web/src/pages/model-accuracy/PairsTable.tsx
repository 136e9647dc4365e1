import { useEffect, useRef } from "react";
import { Link } from "react-router";
import { withUnit } from "../../lib/accuracy";
import { fmtDate } from "../../lib/format";
import { type Pair, pairKey } from "./types";

/** The calculations behind the points: one row per pair, the selected one highlighted. */
export function PairsTable({
  pairs,
  unit,
  selected,
  onSelect,
}: {
  pairs: Pair[];
  unit: string;
  selected: string | null;
  onSelect: (pair: Pair) => void;
}) {
  const selectedRow = useRef<HTMLTableRowElement | null>(null);
  useEffect(() => {
    selectedRow.current?.scrollIntoView({ block: "nearest" });
  }, [selected]);
  return (
    <div className="scroll">
      <table data-testid="accuracy-pairs">
        <thead>
          <tr>
            <th>calculation</th>
            <th>step</th>
            <th>code</th>
            <th>predicted</th>
            <th>DFT</th>
            <th>error (DFT − predicted)</th>
            <th>predicted at</th>
          </tr>
        </thead>
        <tbody>
          {[...pairs].reverse().map((p) => {
            const key = pairKey(p);
            const isSelected = key === selected;
            return (
              <tr
                key={key}
                data-pair={key}
                className={isSelected ? "selected" : undefined}
                ref={isSelected ? selectedRow : undefined}
                onClick={() => onSelect(p)}
              >
                <td>
                  <Link to={`/calculations/${p.calculation_id}`}>
                    #{p.calculation_id} {p.calculation_name}
                  </Link>
                </td>
                <td>{p.label}</td>
                <td>{p.code}</td>
                <td>{withUnit(p.predicted, unit, 8)}</td>
                <td>{withUnit(p.dft, unit, 8)}</td>
                <td>{withUnit(p.error, unit)}</td>
                <td>{fmtDate(p.predicted_at)}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
