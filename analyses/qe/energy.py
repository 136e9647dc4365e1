"""pw.x total energy (eV) and the Fermi level, or HOMO/LUMO for fixed occupations.

Requires ``qe_scf_convergence`` for the same reason as SIESTA's ``energy``: an energy
from a non-converged SCF is flagged and kept off the per-step graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from analyses.base import Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs, step_axis
from analyses.per_step import step_rows, step_series, step_table
from analyses.qe.files import parsed_pw_stdout
from analyses.qe.stdout import RY_EV
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar

__all__ = ["QeEnergy"]


class QeEnergy(Analysis):
    name: ClassVar[str] = "qe_energy"
    title: ClassVar[str] = "Energy (Quantum ESPRESSO)"
    codes: ClassVar[frozenset[str]] = frozenset({"qe"})
    requires: ClassVar[tuple[str, ...]] = ("qe_scf_convergence",)
    description: ClassVar[str] = "pw.x total energy, and the Fermi energy or HOMO/LUMO (eV)."

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        path, out = parsed_pw_stdout(run_dir, ctx)
        total_ry = out.total_energy_Ry
        if total_ry is None:
            raise ExtractionError(f"no converged total energy ('!' line) in {path.name}")
        scf = ctx.upstream.get("qe_scf_convergence") or {}
        return {
            "stdout": path.name,
            "total_Ry": total_ry,
            "total_eV": total_ry * RY_EV,
            "fermi_eV": out.fermi_eV,
            "fermi_spin_eV": list(out.fermi_spin_eV) if out.fermi_spin_eV else None,
            "homo_eV": out.homo_eV,
            "lumo_eV": out.lumo_eV,
            "relaxation_final": out.final_relax_Ry is not None,
            "scf_converged": scf.get("all_converged"),
        }

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        found = inputs.steps_with(self.name)
        axis_name, axis = step_axis([s for s, _ in found])
        rows = step_rows(
            found, axis, ("total_eV", "fermi_eV", "homo_eV", "lumo_eV", "scf_converged")
        )
        notes: list[str] = []
        xs: list[float | None] = []
        ys: list[float | None] = []
        for (step, d), x in zip(found, axis, strict=True):
            if d.get("scf_converged") is False:
                notes.append(f"{step.display_label}: SCF not converged, energy not meaningful")
            elif isinstance(d.get("total_eV"), int | float):
                xs.append(x)
                ys.append(float(d["total_eV"]))
        series = []
        if len(xs) > 1:
            ref = min(y for y in ys if y is not None)
            series.append(
                step_series(
                    "qe_energy",
                    "Total energy per step",
                    "total",
                    xs,
                    [None if y is None else y - ref for y in ys],
                    x_label=axis_name,
                    y_label="E - E_min",
                    y_unit="eV",
                )
            )
        summary: dict[str, Scalar] = {"steps": len(found)}
        if len(found) == 1:
            d = found[0][1]
            summary |= {k: d.get(k) for k in ("total_eV", "fermi_eV", "homo_eV")}
        columns = (
            Column("total", "eV"),
            Column("Fermi", "eV"),
            Column("HOMO", "eV"),
            Column("LUMO", "eV"),
            Column("SCF converged"),
        )
        return self.output(
            tables=[step_table("qe_energy", "Energies", axis_name, columns, rows)],
            series=series,
            summary=summary,
            notes=notes,
        )
