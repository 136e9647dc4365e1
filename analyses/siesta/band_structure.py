"""Band structure from ``<label>.bands`` (sisl ``bandsSileSiesta``), cut to a window.

A ``.bands`` file can hold hundreds of bands on thousands of k-points; what a report
shows is the bands near the Fermi level. Extraction keeps the bands that enter the
energy window (option ``window_eV``, default [-6, 6] around E_F, at most 60 of them) on
at most ``MAX_POINTS`` k-points, with the path's high-symmetry points always kept, and
holds the total under ``_MAX_VALUES`` numbers. The gap is computed on the full data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from analyses._numeric import downsample_indices
from analyses.base import MAX_POINTS, Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Series, Table, rounded
from analyses.siesta.eigenvalues import band_edges
from analyses.siesta.files import find_label_file

__all__ = ["BandStructure"]

_MAX_BANDS = 60
_MAX_VALUES = 40_000


class BandStructure(Analysis):
    name: ClassVar[str] = "band_structure"
    title: ClassVar[str] = "Band structure"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    description: ClassVar[str] = (
        "Bands along the k-path (.bands) near the Fermi level, with high-symmetry labels."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        path = find_label_file(run_dir, ctx, ".bands")
        if path is None:
            raise ExtractionError(f"no .bands file in {run_dir.name} (BandLines/BandPoints)")
        import sisl.io.siesta as siesta_io

        sile = siesta_io.bandsSileSiesta(str(path))
        (ticks, labels), k, eig = sile.read_data()
        fermi = float(sile.read_fermi_level())
        # (nk, nspin, nbands); sisl 0.20 returns E - E_F, the file holds absolute energies.
        eig = np.asarray(eig, dtype=float) + fermi
        k = np.asarray(k, dtype=float)
        if eig.ndim != 3 or eig.shape[0] == 0:
            raise ExtractionError(f"{path.name} holds no bands")
        window = ctx.option(self.name, "window_eV", [-6.0, 6.0])
        lo, hi = fermi + float(window[0]), fermi + float(window[1])
        nk, nspin, nb = eig.shape
        bottoms, tops = eig.min(axis=(0, 1)), eig.max(axis=(0, 1))
        inside = np.flatnonzero((tops >= lo) & (bottoms <= hi))
        if inside.size > _MAX_BANDS:  # nearest to E_F first
            centre = eig.mean(axis=(0, 1))[inside]
            inside = np.sort(inside[np.argsort(np.abs(centre - fermi))[:_MAX_BANDS]])
        n_k = min(MAX_POINTS, max(100, _MAX_VALUES // max(1, inside.size * nspin)))
        kidx = downsample_indices(nk, n_k)
        tick_idx = [int(np.argmin(np.abs(k - t))) for t in ticks]
        kidx = np.unique(np.concatenate([kidx, np.asarray(tick_idx, dtype=np.intp)]))
        edges = band_edges(eig.transpose(1, 0, 2), fermi)
        return {
            "file": path.name,
            "fermi_eV": fermi,
            "nspin": nspin,
            "nk": nk,
            "nbands_total": nb,
            **edges,
            "window_eV": [float(window[0]), float(window[1])],
            "bands": [int(b) + 1 for b in inside],
            "k": rounded(k[kidx], 7),
            "ticks": rounded(ticks, 7),
            "tick_labels": [str(label) for label in labels],
            "energies_eV": [[rounded(eig[kidx, s, b], 7) for b in inside] for s in range(nspin)],
        }

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        found = inputs.steps_with(self.name)
        series: list[Series] = []
        rows: list[list[Scalar]] = []
        for step, d in found:
            rows.append(
                [
                    step.index,
                    step.display_label,
                    d.get("fermi_eV"),
                    d.get("gap_eV"),
                    d.get("metallic"),
                    d.get("nk"),
                    d.get("nbands_total"),
                ]
            )
            series.extend(_band_series(step.display_label, d, many=len(found) > 1))
        return self.output(
            tables=[
                Table(
                    name="band_structure",
                    title="Band structure",
                    columns=(
                        Column("step"),
                        Column("label"),
                        Column("E_F", "eV"),
                        Column("gap", "eV"),
                        Column("metallic"),
                        Column("k-points"),
                        Column("bands"),
                    ),
                    rows=rows,
                )
            ],
            series=series,
            summary={"steps": len(found), "gap_eV": rows[0][3] if len(rows) == 1 else None},
        )


def _band_series(label: str, d: dict[str, Any] | Any, *, many: bool) -> list[Series]:
    fermi = float(d.get("fermi_eV") or 0.0)
    k = list(d.get("k", []))
    energies: list[list[list[float | None]]] = list(d.get("energies_eV", []))
    spin_names = ["spin up", "spin down"] if len(energies) == 2 else [""]
    graph = f"bands_{label}" if many else "bands"
    out: list[Series] = []
    for s, per_band in enumerate(energies):
        for j, band in enumerate(per_band):
            out.append(
                Series(
                    graph=graph,
                    graph_title=f"Band structure {label}" if many else "Band structure",
                    label=spin_names[s % len(spin_names)] if j == 0 else "",
                    x=k,
                    y=[None if v is None else v - fermi for v in band],
                    x_label="k",
                    y_label="E - E_F",
                    x_unit="1/Ang",
                    y_unit="eV",
                    x_ticks=list(d.get("ticks", [])),
                    x_tick_labels=[str(t) for t in d.get("tick_labels", [])],
                )
            )
    return out
