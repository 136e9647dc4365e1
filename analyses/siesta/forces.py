"""Forces per atom (last geometry step) and the maximum force per geometry step.

Per-atom forces come from ``<label>.FA`` (sisl ``faSileSiesta``, full precision) when it
matches the run, else from the last per-atom ``Atomic forces`` block of the stdout: sisl's
``read_force`` returns None for SIESTA 5 outputs, whose final block has a ``siesta:``
prefix, so the stdout block is read by our scanner. Two maxima are reported because
they differ: SIESTA's own ``Max`` is the largest Cartesian *component* (what
``MD.MaxForceTol`` is compared with), ``max_norm`` the largest per-atom |F|.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from analyses.base import MAX_POINTS, Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs, StepInput, step_axis
from analyses.per_step import step_row, step_series, step_table
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Series, Table, rounded
from analyses.siesta.files import find_label_file, parsed_stdout
from analyses.siesta.stdout import ForceBlock

__all__ = ["Forces"]

log = logging.getLogger(__name__)

_MAX_ATOM_ROWS = 300


def _read_fa(path: Path) -> list[tuple[float, float, float]] | None:
    try:
        import sisl.io.siesta as siesta_io

        forces = siesta_io.faSileSiesta(str(path)).read_force()
    except Exception as exc:  # unreadable FA: the stdout block is used instead
        log.info("cannot read %s with sisl: %s", path, exc)
        return None
    return [(float(f[0]), float(f[1]), float(f[2])) for f in forces]


def _step_maxima(blocks: list[ForceBlock]) -> list[tuple[int, float]]:
    """The last reported maximum of each geometry step (constrained if printed)."""
    by_step: dict[int, float] = {}
    for block in blocks:
        value = block.max_constrained if block.max_constrained is not None else block.max_component
        if value is None and block.forces:
            value = max(abs(c) for f in block.forces for c in f)
        if value is not None:
            by_step[block.geom_step] = value
    return sorted(by_step.items())


class Forces(Analysis):
    name: ClassVar[str] = "forces"
    title: ClassVar[str] = "Forces"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    description: ClassVar[str] = (
        "Forces per atom (eV/Ang) at the last geometry step and the maximum force per step."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        path, out = parsed_stdout(run_dir, ctx)
        with_atoms = [b for b in out.force_blocks if b.forces]
        last = with_atoms[-1] if with_atoms else None
        forces: list[tuple[float, float, float]] | None = None
        source = None
        fa = find_label_file(run_dir, ctx, ".FA")
        if fa is not None:
            forces = _read_fa(fa)
            if forces is not None and last is not None and len(forces) != len(last.forces):
                forces = None  # an FA from another run in the same directory
            source = fa.name if forces is not None else None
        if forces is None and last is not None:
            forces, source = list(last.forces), path.name
        maxima = _step_maxima(out.force_blocks)
        if len(maxima) > MAX_POINTS:
            stride = math.ceil(len(maxima) / MAX_POINTS)
            maxima = maxima[::stride] + ([maxima[-1]] if (len(maxima) - 1) % stride else [])
        history = [[s, v] for s, v in maxima]
        if not forces:
            if not maxima:
                raise ExtractionError(f"no forces in {path.name} (and no matching .FA file)")
            # Some builds print only the Tot/Max/Res summary: keep what there is.
            return {
                "source": path.name,
                "n_atoms": None,
                "per_atom": False,
                "max_component_eV_Ang": maxima[-1][1],
                "max_per_geometry_step": history,
            }
        norms = [math.sqrt(fx * fx + fy * fy + fz * fz) for fx, fy, fz in forces]
        order = list(range(len(forces)))
        if len(order) > MAX_POINTS:  # keep the largest forces; their indices say which
            order = sorted(sorted(order, key=lambda i: -norms[i])[:MAX_POINTS])
        worst = max(range(len(norms)), key=lambda i: norms[i])
        total = [sum(f[k] for f in forces) for k in range(3)]
        return {
            "source": source,
            "n_atoms": len(forces),
            "per_atom": True,
            "atoms": [i + 1 for i in order],
            "forces_eV_Ang": [rounded(forces[i], 7) for i in order],
            "norms_eV_Ang": rounded((norms[i] for i in order), 7),
            "max_norm_eV_Ang": norms[worst],
            "max_norm_atom": worst + 1,
            "max_component_eV_Ang": max(abs(c) for f in forces for c in f),
            "residual_eV_Ang": math.sqrt(sum(n * n for n in norms) / (3 * len(forces))),
            "total_eV_Ang": rounded(total, 7),
            "max_per_geometry_step": history,
        }

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        found = inputs.steps_with(self.name)
        axis_name, axis = step_axis([s for s, _ in found])
        rows: list[list[Scalar]] = []
        series: list[Series] = []
        for (step, data), x in zip(found, axis, strict=True):
            history: list[list[Any]] = list(data.get("max_per_geometry_step", []))
            rows.append(_step_row(step, data, x, len(history)))
            if len(history) > 1:
                series.append(_history_series(step, history))
        if len(found) > 1:
            series.append(_max_force_series(axis_name, axis, rows))
        tables = [_forces_table(axis_name, rows)]
        if len(found) == 1 and found[0][1].get("per_atom"):
            tables.append(_per_atom_table(found[0][1]))
        worst = max(
            (r for r in rows if isinstance(r[4], float)),
            key=lambda r: float(r[4] or 0),
            default=None,
        )
        return self.output(
            tables=tables,
            series=series,
            summary={
                "steps": len(found),
                "max_norm_eV_Ang": worst[4] if worst else None,
                "max_norm_step": worst[0] if worst else None,
            },
        )


def _step_row(
    step: StepInput, data: Mapping[str, Any], x: float, geometry_steps: int
) -> list[Scalar]:
    keys = ("n_atoms", "max_norm_eV_Ang", "max_norm_atom", "max_component_eV_Ang")
    return step_row(
        step, x, (*(data.get(k) for k in keys), data.get("residual_eV_Ang"), geometry_steps)
    )


def _history_series(step: StepInput, history: list[list[Any]]) -> Series:
    return Series(
        graph="max_force_history",
        graph_title="Maximum force per geometry step",
        label=step.display_label,
        x=[float(h[0]) for h in history],
        y=[float(h[1]) for h in history],
        x_label="geometry step",
        y_label="max force",
        y_unit="eV/Ang",
        kind="linepoints",
        y_scale="log",
    )


def _max_force_series(axis_name: str, axis: list[float], rows: list[list[Scalar]]) -> Series:
    return step_series(
        "max_force",
        "Maximum force per step",
        "max |F|",
        list(axis),
        [r[4] if isinstance(r[4], float) else None for r in rows],
        x_label=axis_name,
        y_label="max |F|",
        y_unit="eV/Ang",
    )


def _forces_table(axis_name: str, rows: list[list[Scalar]]) -> Table:
    columns = (
        Column("atoms"),
        Column("max |F|", "eV/Ang"),
        Column("atom of max"),
        Column("max component", "eV/Ang"),
        Column("residual", "eV/Ang"),
        Column("geometry steps"),
    )
    return step_table("forces", "Forces", axis_name, columns, rows)


def _per_atom_table(data: Mapping[str, Any]) -> Table:
    atoms = list(data.get("atoms", []))[:_MAX_ATOM_ROWS]
    vectors = list(data.get("forces_eV_Ang", []))
    norms = list(data.get("norms_eV_Ang", []))
    return Table(
        name="forces_per_atom",
        title="Forces per atom (last geometry step)",
        columns=(
            Column("atom"),
            Column("Fx", "eV/Ang"),
            Column("Fy", "eV/Ang"),
            Column("Fz", "eV/Ang"),
            Column("|F|", "eV/Ang"),
        ),
        rows=[[a, *vectors[i], norms[i]] for i, a in enumerate(atoms)],
    )
