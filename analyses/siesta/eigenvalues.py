"""Eigenvalues from ``<label>.EIG``: band edges, gap and the levels at the first k-point.

Read with sisl's ``eigSileSiesta`` (``read_data`` -> (nspin, nk, nbands), plus the Fermi
level). Note: sisl 0.20 returns the eigenvalues *relative to E_F* while the file holds
absolute energies; E_F is added back so every energy we report is absolute. The full
array (e.g. 2 x 365 x 19 for bcc Fe) is reduced to what a report shows: per band its
range over k, the highest occupied and lowest unoccupied levels, the gap (0 when a band
crosses the Fermi level), and the levels at the first k-point.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from analyses.base import MAX_POINTS, Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs, step_axis
from analyses.per_step import step_rows, step_series, step_table
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Series, rounded
from analyses.siesta.files import find_label_file

__all__ = ["Eigenvalues", "band_edges"]


def band_edges(eig: Any, fermi: float) -> JSONDict:
    """HOMO/LUMO/gap of an (nspin, nk, nbands) array; ``metallic`` when a band crosses E_F."""
    e = np.asarray(eig, dtype=float)
    below = e[e <= fermi]
    above = e[e > fermi]
    lo = e.min(axis=1)  # (nspin, nbands): band bottoms
    hi = e.max(axis=1)
    metallic = bool(np.any((lo <= fermi) & (hi > fermi)))
    homo = float(below.max()) if below.size else None
    lumo = float(above.min()) if above.size else None
    gap = 0.0 if metallic else (lumo - homo if homo is not None and lumo is not None else None)
    return {"homo_eV": homo, "lumo_eV": lumo, "gap_eV": gap, "metallic": metallic}


class Eigenvalues(Analysis):
    name: ClassVar[str] = "eigenvalues"
    title: ClassVar[str] = "Eigenvalues"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    description: ClassVar[str] = (
        "Eigenvalues (.EIG): highest occupied / lowest unoccupied levels, gap, band ranges."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        path = find_label_file(run_dir, ctx, ".EIG")
        if path is None:
            raise ExtractionError(f"no .EIG file in {run_dir.name} (WriteEigenvalues / SaveEIG)")
        import sisl.io.siesta as siesta_io

        sile = siesta_io.eigSileSiesta(str(path))
        fermi = float(sile.read_fermi_level())
        # sisl 0.20 returns E - E_F; the file (and everything we report) is absolute.
        eig = np.asarray(sile.read_data(), dtype=float) + fermi
        if eig.ndim != 3 or eig.size == 0:
            raise ExtractionError(f"{path.name} holds no eigenvalues")
        nspin, nk, nb = eig.shape
        edges = band_edges(eig, fermi)
        per_spin = [band_edges(eig[s : s + 1], fermi) for s in range(nspin)]
        # Bands nearest E_F first if there are more than MAX_POINTS of them.
        centre = eig.mean(axis=(0, 1))
        bands = np.sort(np.argsort(np.abs(centre - fermi))[: max(1, MAX_POINTS // (2 * nspin))])
        return {
            "file": path.name,
            "fermi_eV": fermi,
            "nspin": nspin,
            "nk": nk,
            "nbands": nb,
            **edges,
            "per_spin": per_spin,
            "bands": [int(b) + 1 for b in bands],
            "band_min_eV": [rounded(eig[s][:, bands].min(axis=0), 7) for s in range(nspin)],
            "band_max_eV": [rounded(eig[s][:, bands].max(axis=0), 7) for s in range(nspin)],
            "first_k_eV": [rounded(eig[s][0, bands], 7) for s in range(nspin)],
        }

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        found = inputs.steps_with(self.name)
        axis_name, axis = step_axis([s for s, _ in found])
        keys = ("fermi_eV", "homo_eV", "lumo_eV", "gap_eV", "metallic", "nk", "nbands")
        rows = step_rows(found, axis, keys)
        series: list[Series] = []
        if len(found) > 1:
            gaps = [r[6] if isinstance(r[6], float) else None for r in rows]
            series.append(
                step_series(
                    "gap",
                    "Gap per step",
                    "gap",
                    list(axis),
                    gaps,
                    x_label=axis_name,
                    y_label="gap",
                    y_unit="eV",
                )
            )
        elif found:
            series = _levels_series(found[0][1])
        columns = (
            Column("E_F", "eV"),
            Column("HOMO", "eV"),
            Column("LUMO", "eV"),
            Column("gap", "eV"),
            Column("metallic"),
            Column("k-points"),
            Column("bands"),
        )
        summary: dict[str, Scalar] = {"steps": len(found)}
        if len(found) == 1:
            d: dict[str, Any] = dict(found[0][1])
            summary |= {
                k: d.get(k) for k in ("fermi_eV", "homo_eV", "lumo_eV", "gap_eV", "metallic")
            }
        return self.output(
            tables=[step_table("eigenvalues", "Band edges", axis_name, columns, rows)],
            series=series,
            summary=summary,
        )


def _levels_series(data: Mapping[str, Any]) -> list[Series]:
    """The levels at the first k-point of a single step, per spin, relative to E_F."""
    fermi = float(data.get("fermi_eV") or 0.0)
    bands = [float(b) for b in data.get("bands", [])]
    levels_by_spin = list(data.get("first_k_eV", []))
    return [
        Series(
            graph="levels",
            graph_title="Levels at the first k-point",
            label=f"spin {s + 1}" if len(levels_by_spin) > 1 else "levels",
            x=bands,
            y=[None if v is None else v - fermi for v in levels],
            x_label="band",
            y_label="E - E_F",
            y_unit="eV",
            kind="scatter",
        )
        for s, levels in enumerate(levels_by_spin)
    ]
