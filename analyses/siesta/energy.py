"""Total and free energy and the Fermi level of a SIESTA run.

Requires ``scf_convergence``: an energy is only meaningful for a converged SCF, so each
step's energy carries the SCF verdict and the per-step graph leaves out energies from
non-converged SCF cycles (they stay in the table, flagged).

The values come from our scan of the ``siesta: Final energy (eV)`` block and the last
``siesta: FreeEng`` line, not from sisl: on a TranSIESTA output sisl 0.20's
``read_energy`` returns the ``ts: Total`` line (-177182.70 eV for ts_au_100 at 0.25 V)
as ``total`` and ``ts: Kinetic`` as ``kinetic``, because the block mixes ``siesta:`` and
``ts:`` lines; it has no free energy either, and it rescans the whole file (1.3 s on
the 4 MiB relaxation). TranSIESTA's own ``ts:`` values are kept apart under
``transiesta_eV``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from analyses.base import Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs, StepInput, step_axis
from analyses.per_step import step_rows, step_series, step_table
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Series, Table
from analyses.siesta.files import parsed_stdout

__all__ = ["Energy"]


def _key(label: str) -> str:
    """``Band Struct.`` -> ``band_struct``, ``Exch.-corr.`` -> ``exch_corr``."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


class Energy(Analysis):
    name: ClassVar[str] = "energy"
    title: ClassVar[str] = "Energy"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    requires: ClassVar[tuple[str, ...]] = ("scf_convergence",)
    description: ClassVar[str] = (
        "Total energy, free energy and Fermi level (eV); flagged when the SCF did not converge."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        path, out = parsed_stdout(run_dir, ctx)
        final = out.final_energy
        total = final.get("Total")
        if total is None:
            raise ExtractionError(
                f"no final energy block in {path.name}: the run aborted or was cut short"
            )
        components = {_key(k): v for k, v in final.items() if not k.startswith("ts ")}
        transiesta = {_key(k[3:]): v for k, v in final.items() if k.startswith("ts ")}
        scf = ctx.upstream.get("scf_convergence") or {}
        return {
            "stdout": path.name,
            "total_eV": total,
            "free_eV": out.free_energies[-1] if out.free_energies else None,
            "fermi_eV": final.get("Fermi"),
            "scf_converged": scf.get("all_converged"),
            "components_eV": components,
            "transiesta_eV": transiesta or None,
        }

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        found = inputs.steps_with(self.name)
        axis_name, axis = step_axis([s for s, _ in found])
        rows = step_rows(found, axis, ("total_eV", "free_eV", "fermi_eV", "scf_converged"))
        notes = [
            f"{step.display_label}: SCF not converged, energy not meaningful"
            for step, data in found
            if data.get("scf_converged") is False
        ]
        converged = [
            (step, data, x)
            for (step, data), x in zip(found, axis, strict=True)
            if data.get("scf_converged") is not False
            and isinstance(data.get("total_eV"), int | float)
        ]
        converged_totals = [(step.index, float(data["total_eV"])) for step, data, _ in converged]
        reference = min((t for _, t in converged_totals), default=None)
        for row in rows:
            total = row[3]
            row.append(
                float(total) - reference
                if reference is not None and isinstance(total, int | float)
                else None
            )
        return self.output(
            tables=[_energy_table(axis_name, rows)],
            series=_energy_series(axis_name, converged, reference),
            summary=_summary(found, converged_totals),
            notes=notes,
        )


def _energy_series(
    axis_name: str,
    converged: list[tuple[StepInput, Mapping[str, Any], float]],
    reference: float | None,
) -> list[Series]:
    """Total and free energy of the converged steps, relative to the lowest total."""
    if len(converged) <= 1:
        return []
    xs: list[float | None] = [x for _, _, x in converged]
    totals = [float(data["total_eV"]) for _, data, _ in converged]
    frees = [
        float(free) if isinstance(free := data.get("free_eV"), int | float) else None
        for _, data, _ in converged
    ]
    return [
        step_series(
            "energy",
            "Energy per step",
            label,
            xs,
            [None if y is None else y - (reference or 0.0) for y in ys],
            x_label=axis_name,
            y_label="E - E_min",
            y_unit="eV",
        )
        for label, ys in (("total", totals), ("free", frees))
    ]


def _summary(
    found: list[tuple[StepInput, Mapping[str, Any]]], converged_totals: list[tuple[int, float]]
) -> dict[str, Scalar]:
    summary: dict[str, Scalar] = {"steps": len(found)}
    if len(found) == 1:
        data = found[0][1]
        summary |= {
            "total_eV": data.get("total_eV"),
            "free_eV": data.get("free_eV"),
            "fermi_eV": data.get("fermi_eV"),
            "scf_converged": data.get("scf_converged"),
        }
    elif converged_totals:
        best = min(converged_totals, key=lambda p: p[1])
        summary |= {
            "min_total_eV": best[1],
            "min_step": best[0],
            "span_eV": max(t for _, t in converged_totals) - best[1],
        }
    return summary


def _energy_table(axis_name: str, rows: list[list[Scalar]]) -> Table:
    return step_table(
        "energy",
        "Energies",
        axis_name,
        (
            Column("total", "eV"),
            Column("free", "eV"),
            Column("Fermi", "eV"),
            Column("SCF converged"),
            Column("total - min", "eV"),
        ),
        rows,
    )
