"""SCF history per geometry step: dDmax, dHmax, Etot (E_KS) per iteration, converged or not.

Extraction uses the one-pass scanner in ``analyses.siesta.stdout`` (sisl 0.20 drops the
last iteration of a TranSIESTA run's SIESTA cycle and has no convergence flag). A
TranSIESTA step has two cycles per geometry step: ``scf`` (the initial SIESTA cycle)
and ``ts-scf`` (the non-equilibrium one); both are kept and told apart by ``kind``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from analyses.base import MAX_POINTS, Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs, StepInput
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Series, Table, rounded
from analyses.siesta.files import parsed_stdout
from analyses.siesta.stdout import ScfCycle

__all__ = ["ScfConvergence"]

#: Stdout column -> name in the extracted data (E_KS is what SIESTA calls Etot).
_HISTORY_COLUMNS = {
    "E_KS": "Etot",
    "FreeEng": "FreeEng",
    "dDmax": "dDmax",
    "dHmax": "dHmax",
    "Ef": "Ef",
}
#: Rows of the per-cycle table in a report before it is left out (a 100-step relaxation
#: chain would otherwise print thousands of lines).
_MAX_CYCLE_ROWS = 400


def _final(cycle: ScfCycle) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for column, name in _HISTORY_COLUMNS.items():
        values = cycle.column(column)
        out[name] = rounded(values[-1:], 12)[0] if values else None
    return out


def _history(cycle: ScfCycle) -> dict[str, list[float | None]]:
    hist: dict[str, list[float | None]] = {"iscf": [float(r[0]) for r in cycle.rows]}
    for column, name in _HISTORY_COLUMNS.items():
        values = cycle.column(column)
        if values:
            hist[name] = rounded(values, 12)
    return hist


class ScfConvergence(Analysis):
    name: ClassVar[str] = "scf_convergence"
    title: ClassVar[str] = "SCF convergence"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    description: ClassVar[str] = (
        "SCF history per geometry step (dDmax, dHmax, Etot per iteration) and whether "
        "every SCF cycle converged."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        path, out = parsed_stdout(run_dir, ctx)
        if not out.cycles:
            raise ExtractionError(
                f"no SCF iterations in {path.name} (the run did not start, or is not SIESTA)"
            )
        budget = int(ctx.option(self.name, "max_points", MAX_POINTS))
        keep = _cycles_with_history(out.cycles, budget)
        cycles: list[JSONDict] = []
        for i, cycle in enumerate(out.cycles):
            cycles.append(
                {
                    "kind": cycle.kind,
                    "geom_step": cycle.geom_step,
                    "iterations": cycle.iterations,
                    "converged": cycle.converged,
                    "final": _final(cycle),
                    "history": _history(cycle) if i in keep else None,
                }
            )
        return {
            "stdout": path.name,
            "version": out.version,
            "n_cycles": len(out.cycles),
            "n_geometry_steps": out.n_geometry_steps,
            "total_iterations": sum(c.iterations for c in out.cycles),
            "all_converged": all(c.converged for c in out.cycles) and not out.scf_not_converged,
            "last_converged": out.cycles[-1].converged,
            "scf_not_converged_marker": out.scf_not_converged,
            "dm_tolerance": out.tolerance("DM tolerance for SCF"),
            "h_tolerance_eV": out.tolerance("Hamiltonian tolerance for SCF"),
            "history_truncated": len(keep) < len(out.cycles),
            "cycles": cycles,
        }

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        found = inputs.steps_with(self.name)
        summary_rows: list[list[Scalar]] = []
        cycle_rows: list[list[Scalar]] = []
        series: list[Series] = []
        for step, data in found:
            cycles: list[dict[str, Any]] = list(data.get("cycles", []))
            summary_rows.append(_summary_row(step, data, cycles))
            cycle_rows += [_cycle_row(step, c) for c in cycles]
            series.extend(_step_series(step.display_label, cycles, len(found) > 1))
        tables = [_summary_table(summary_rows)]
        notes: list[str] = []
        if len(cycle_rows) <= _MAX_CYCLE_ROWS:
            tables.append(_cycles_table(cycle_rows))
        else:
            notes.append(f"{len(cycle_rows)} SCF cycles: the per-cycle table is left out.")
        not_conv = [r[1] for r in summary_rows if r[7] is False]
        if not_conv:
            notes.append("SCF not converged in: " + ", ".join(str(n) for n in not_conv))
        iterations = [int(r[4]) for r in summary_rows if isinstance(r[4], int)]
        return self.output(
            tables=tables,
            series=series,
            summary={
                "steps": len(found),
                "all_converged": not not_conv and bool(found),
                "max_iterations_per_step": max(iterations) if iterations else None,
            },
            notes=notes,
        )


def _summary_row(
    step: StepInput, data: Mapping[str, Any], cycles: list[dict[str, Any]]
) -> list[Scalar]:
    final = (cycles[-1] if cycles else {}).get("final") or {}
    return [
        step.index,
        step.display_label,
        data.get("n_cycles"),
        data.get("n_geometry_steps"),
        data.get("total_iterations"),
        final.get("dDmax"),
        final.get("dHmax"),
        bool(data.get("all_converged")),
    ]


def _cycle_row(step: StepInput, cycle: Mapping[str, Any]) -> list[Scalar]:
    final = cycle.get("final") or {}
    return [
        step.index,
        cycle.get("geom_step"),
        cycle.get("kind"),
        cycle.get("iterations"),
        final.get("Etot"),
        final.get("dDmax"),
        final.get("dHmax"),
        bool(cycle.get("converged")),
    ]


def _summary_table(rows: list[list[Scalar]]) -> Table:
    return Table(
        name="scf_summary",
        title="SCF convergence per step",
        columns=(
            Column("step"),
            Column("label"),
            Column("cycles"),
            Column("geometry steps"),
            Column("iterations"),
            Column("last dDmax"),
            Column("last dHmax", "eV"),
            Column("all converged"),
        ),
        rows=rows,
    )


def _cycles_table(rows: list[list[Scalar]]) -> Table:
    return Table(
        name="scf_cycles",
        title="SCF cycles",
        columns=(
            Column("step"),
            Column("geometry step"),
            Column("kind"),
            Column("iterations"),
            Column("final Etot", "eV"),
            Column("final dDmax"),
            Column("final dHmax", "eV"),
            Column("converged"),
        ),
        rows=rows,
    )


def _cycles_with_history(cycles: list[ScfCycle], budget: int) -> set[int]:
    """Cycles whose full history fits in ``budget`` rows: all, else first + latest ones."""
    if sum(c.iterations for c in cycles) <= budget:
        return set(range(len(cycles)))
    keep = {0}
    used = cycles[0].iterations
    for i in range(len(cycles) - 1, 0, -1):
        if used + cycles[i].iterations > budget:
            break
        keep.add(i)
        used += cycles[i].iterations
    return keep


def _step_series(label: str, cycles: list[dict[str, Any]], many_steps: bool) -> list[Series]:
    """dDmax/dHmax against iteration for the last geometry step; iterations per move."""
    out: list[Series] = []
    if not cycles:
        return out
    last_geom = cycles[-1].get("geom_step")
    for c in cycles:
        hist = c.get("history")
        if c.get("geom_step") != last_geom or not hist:
            continue
        name = f"{label} {c['kind']}" if many_steps else str(c["kind"])
        for key, unit in (("dDmax", ""), ("dHmax", "eV")):
            ys = hist.get(key)
            if not ys:
                continue
            out.append(
                Series(
                    graph=f"scf_{key}",
                    graph_title=f"SCF convergence: {key} (last geometry step)",
                    label=name,
                    x=list(hist["iscf"]),
                    y=[abs(v) if v is not None and math.isfinite(v) else None for v in ys],
                    x_label="SCF iteration",
                    y_label=key,
                    y_unit=unit,
                    kind="linepoints",
                    y_scale="log",
                )
            )
    steps = sorted({int(c["geom_step"]) for c in cycles})
    if len(steps) > 1:
        per_step = {s: 0 for s in steps}
        for c in cycles:
            per_step[int(c["geom_step"])] += int(c.get("iterations", 0))
        out.append(
            Series(
                graph="scf_iterations_per_geometry_step",
                graph_title="SCF iterations per geometry step",
                label=label,
                x=[float(s) for s in steps],
                y=[float(per_step[s]) for s in steps],
                x_label="geometry step",
                y_label="SCF iterations",
                kind="step",
            )
        )
    return out
