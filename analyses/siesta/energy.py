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
from pathlib import Path
from typing import ClassVar

from analyses.base import Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs, step_axis
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
        rows: list[list[Scalar]] = []
        xs: list[float | None] = []
        totals: list[float | None] = []
        frees: list[float | None] = []
        notes: list[str] = []
        converged_totals: list[tuple[int, float]] = []
        for (step, data), x in zip(found, axis, strict=True):
            total = data.get("total_eV")
            ok = data.get("scf_converged")
            rows.append(
                [
                    step.index,
                    step.display_label,
                    x,
                    total,
                    data.get("free_eV"),
                    data.get("fermi_eV"),
                    ok,
                ]
            )
            if ok is False:
                notes.append(f"{step.display_label}: SCF not converged, energy not meaningful")
                continue
            if isinstance(total, int | float):
                converged_totals.append((step.index, float(total)))
                xs.append(x)
                totals.append(float(total))
                free = data.get("free_eV")
                frees.append(float(free) if isinstance(free, int | float) else None)
        reference = min((t for _, t in converged_totals), default=None)
        for row in rows:
            total = row[3]
            row.append(
                float(total) - reference
                if reference is not None and isinstance(total, int | float)
                else None
            )
        series: list[Series] = []
        if len(xs) > 1:
            for label, ys in (("total", totals), ("free", frees)):
                series.append(
                    Series(
                        graph="energy",
                        graph_title="Energy per step",
                        label=label,
                        x=xs,
                        y=[None if y is None else y - (reference or 0.0) for y in ys],
                        x_label=axis_name,
                        y_label="E - E_min",
                        y_unit="eV",
                        kind="linepoints",
                    )
                )
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
        return self.output(
            tables=[
                Table(
                    name="energy",
                    title="Energies",
                    columns=(
                        Column("step"),
                        Column("label"),
                        Column(axis_name),
                        Column("total", "eV"),
                        Column("free", "eV"),
                        Column("Fermi", "eV"),
                        Column("SCF converged"),
                        Column("total - min", "eV"),
                    ),
                    rows=rows,
                )
            ],
            series=series,
            summary=summary,
            notes=notes,
        )
