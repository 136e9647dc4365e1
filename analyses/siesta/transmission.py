"""Transmission T(E) between electrodes, from TBtrans.

Sources, best first: ``<label>.TBT.nc`` through sisl (``tbtncSileTBtrans.transmission``,
k-averaged, every electrode pair), then the text files sisl cannot read:
``*.TBT.AVTRANS_<A>-<B>`` (already k-averaged) and ``*.TBT.TRANS_<A>-<B>`` (k-resolved;
averaged here with the ``w=`` weights of its ``# kb=`` lines). Energies are relative to
the electrodes' reference (E = 0 is the Fermi level at zero bias).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from analyses._numeric import bin_average, interp_at, rounded_list
from analyses.base import MAX_POINTS, Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Series, Table
from analyses.siesta.files import find_label_file, run_label
from analyses.siesta.tbtrans import read_tbt_spectrum

__all__ = ["Transmission"]

log = logging.getLogger(__name__)

_TEXT_RE = re.compile(r"^(?P<label>.+)\.TBT\.(?P<kind>AVTRANS|TRANS)_(?P<a>[^-]+)-(?P<b>.+)$")


def _pair(source: str, target: str, energies: Any, values: Any, origin: str) -> JSONDict:
    e_small, (t_small,) = bin_average(energies, [values], MAX_POINTS)
    e = np.asarray(energies, dtype=float)
    t = np.asarray(values, dtype=float)
    return {
        "from": source,
        "to": target,
        "origin": origin,
        "n_energies": int(e.size),
        "energies_eV": rounded_list(e_small),
        "T": rounded_list(t_small),
        "T_at_0": interp_at(e, t, 0.0),
        "T_max": float(t.max()) if t.size else None,
    }


def _from_netcdf(path: Path) -> list[JSONDict]:
    import sisl

    tbt = sisl.get_sile(str(path))
    elecs = list(tbt.elecs)
    energies = np.asarray(tbt.E, dtype=float)
    pairs: list[JSONDict] = []
    for i, a in enumerate(elecs):
        for b in elecs[i + 1 :]:
            pairs.append(_pair(a, b, energies, tbt.transmission(a, b), path.name))
    return pairs


def _from_text(run_dir: Path, label: str | None) -> list[JSONDict]:
    """AVTRANS preferred over TRANS for each (A, B) pair; the run's label first."""
    chosen: dict[tuple[str, str], tuple[int, Path]] = {}
    for path in sorted(run_dir.glob("*.TBT.*TRANS_*")):
        m = _TEXT_RE.match(path.name)
        if m is None or not path.is_file():
            continue
        rank = (2 if m["kind"] == "AVTRANS" else 0) + (1 if m["label"] == label else 0)
        key = (m["a"], m["b"])
        if key not in chosen or rank > chosen[key][0]:
            chosen[key] = (rank, path)
    pairs: list[JSONDict] = []
    for (a, b), (_, path) in sorted(chosen.items()):
        try:
            spectrum = read_tbt_spectrum(path)
        except ValueError as exc:
            raise ExtractionError(f"{path.name}: {exc}") from None
        pair = _pair(a, b, spectrum.energies, spectrum.values, path.name)
        pair["k_points_averaged"] = spectrum.n_k
        pairs.append(pair)
    return pairs


class Transmission(Analysis):
    name: ClassVar[str] = "transmission"
    title: ClassVar[str] = "Transmission"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    description: ClassVar[str] = (
        "TBtrans transmission T(E) per electrode pair (TBT.nc, or the TBT.TRANS text files)."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        nc = find_label_file(run_dir, ctx, ".TBT.nc")
        pairs: list[JSONDict] = []
        if nc is not None:
            try:
                pairs = _from_netcdf(nc)
            except Exception as exc:  # NetCDF without netCDF4, or a cut file: try text
                log.info("cannot read %s with sisl: %s", nc, exc)
        if not pairs:
            label = nc.name.removesuffix(".TBT.nc") if nc is not None else None
            pairs = _from_text(run_dir, label or run_label(run_dir, ctx))
        if not pairs:
            raise ExtractionError(
                f"no TBtrans transmission (TBT.nc or TBT.*TRANS_*) in {run_dir.name}"
            )
        return {"pairs": pairs, "source": pairs[0]["origin"]}

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        found = inputs.steps_with(self.name)
        rows: list[list[Scalar]] = []
        series: list[Series] = []
        for step, d in found:
            for p in d.get("pairs", []):
                name = f"{p['from']}->{p['to']}"
                rows.append(
                    [
                        step.index,
                        step.display_label,
                        name,
                        p.get("origin"),
                        p.get("T_at_0"),
                        p.get("T_max"),
                    ]
                )
                many_pairs = len(d.get("pairs", [])) > 1
                series.append(
                    Series(
                        graph="transmission",
                        graph_title="Transmission",
                        label=f"{step.display_label} {name}" if many_pairs else step.display_label,
                        x=list(p.get("energies_eV", [])),
                        y=list(p.get("T", [])),
                        x_label="E - E_F",
                        x_unit="eV",
                        y_label="T(E)",
                    )
                )
        return self.output(
            tables=[
                Table(
                    name="transmission",
                    title="Transmission at E_F",
                    columns=(
                        Column("step"),
                        Column("label"),
                        Column("pair"),
                        Column("source"),
                        Column("T(E_F)"),
                        Column("max T"),
                    ),
                    rows=rows,
                )
            ],
            series=series,
            summary={"steps": len(found), "T_at_fermi": rows[0][4] if len(rows) == 1 else None},
        )
