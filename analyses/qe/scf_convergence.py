"""pw.x SCF history: total energy and estimated SCF accuracy per iteration, per cycle.

A relaxation has one SCF cycle per ionic step. ``all_converged`` is False when pw.x
printed ``convergence NOT achieved`` (it then exits with code 2) or when a cycle ended
without ``convergence has been achieved``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from analyses.base import MAX_POINTS, Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs
from analyses.qe.files import parsed_pw_stdout
from analyses.qe.stdout import RY_EV
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Series, Table, rounded

__all__ = ["QeScfConvergence"]


class QeScfConvergence(Analysis):
    name: ClassVar[str] = "qe_scf_convergence"
    title: ClassVar[str] = "SCF convergence (Quantum ESPRESSO)"
    codes: ClassVar[frozenset[str]] = frozenset({"qe"})
    description: ClassVar[str] = (
        "pw.x estimated SCF accuracy and total energy per iteration, per SCF cycle."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        path, out = parsed_pw_stdout(run_dir, ctx)
        if not out.cycles:
            raise ExtractionError(f"no SCF iteration in {path.name} (pw.x did not start the SCF)")
        used = 0
        cycles: list[JSONDict] = []
        for cycle in reversed(out.cycles):  # the latest cycles keep their history first
            keep = used + cycle.iterations <= MAX_POINTS
            used += cycle.iterations if keep else 0
            cycles.append(
                {
                    "iterations": cycle.iterations,
                    "converged": cycle.converged,
                    "final_accuracy_Ry": cycle.accuracy_Ry[-1] if cycle.accuracy_Ry else None,
                    "accuracy_Ry": rounded(
                        (a if a is not None else float("nan") for a in cycle.accuracy_Ry), 8
                    )
                    if keep
                    else None,
                    "energy_eV": rounded(
                        (e * RY_EV if e is not None else float("nan") for e in cycle.energies_Ry),
                        12,
                    )
                    if keep
                    else None,
                }
            )
        cycles.reverse()
        return {
            "stdout": path.name,
            "version": out.version,
            "threshold_Ry": out.threshold_Ry,
            "n_cycles": len(out.cycles),
            "total_iterations": sum(c.iterations for c in out.cycles),
            "all_converged": all(c.converged for c in out.cycles) and not out.not_converged,
            "not_converged_marker": out.not_converged,
            "cycles": cycles,
        }

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        found = inputs.steps_with(self.name)
        rows: list[list[Scalar]] = []
        series: list[Series] = []
        for step, d in found:
            cycles: list[dict[str, Any]] = list(d.get("cycles", []))
            last = cycles[-1] if cycles else {}
            rows.append(
                [
                    step.index,
                    step.display_label,
                    d.get("n_cycles"),
                    d.get("total_iterations"),
                    last.get("final_accuracy_Ry"),
                    d.get("threshold_Ry"),
                    bool(d.get("all_converged")),
                ]
            )
            acc = last.get("accuracy_Ry")
            if acc:
                series.append(
                    Series(
                        graph="qe_scf_accuracy",
                        graph_title="Estimated SCF accuracy (last cycle)",
                        label=step.display_label,
                        x=[float(i + 1) for i in range(len(acc))],
                        y=list(acc),
                        x_label="SCF iteration",
                        y_label="accuracy",
                        y_unit="Ry",
                        kind="linepoints",
                        y_scale="log",
                    )
                )
        not_conv = [str(r[1]) for r in rows if r[6] is False]
        return self.output(
            tables=[
                Table(
                    name="qe_scf",
                    title="SCF convergence per step",
                    columns=(
                        Column("step"),
                        Column("label"),
                        Column("cycles"),
                        Column("iterations"),
                        Column("last accuracy", "Ry"),
                        Column("threshold", "Ry"),
                        Column("all converged"),
                    ),
                    rows=rows,
                )
            ],
            series=series,
            summary={"steps": len(found), "all_converged": bool(found) and not not_conv},
            notes=[f"SCF not converged in: {', '.join(not_conv)}"] if not_conv else [],
        )
