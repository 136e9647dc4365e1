"""Total DOS (``<label>.DOS``) and PDOS by species and angular momentum (``<label>.PDOS``).

sisl has no sile for ``.DOS`` (``NotImplementedError``), so it is read with
``np.loadtxt``: columns are E and one DOS column per spin. When there is no ``.DOS`` the
total comes from the PDOS file. The PDOS is streamed and summed by (species, l) in
``analyses.siesta.pdos_xml`` instead of sisl's full-array read (see there for why).
Spectra are bin-averaged to at most ``MAX_POINTS`` energies.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from analyses._numeric import bin_average, interp_at, rounded_list
from analyses.base import MAX_POINTS, Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Series, Table
from analyses.siesta.files import find_label_file, parsed_stdout
from analyses.siesta.pdos_xml import L_NAMES, read_pdos_sums

__all__ = ["Dos", "Pdos"]

_FERMI_XML = re.compile(r"<fermi_energy[^>]*>\s*([-+0-9.Ee]+)\s*<")


def _pdos_file(run_dir: Path, ctx: ExtractContext) -> Path | None:
    return find_label_file(run_dir, ctx, ".PDOS") or find_label_file(run_dir, ctx, ".PDOS.xml")


def _fermi(run_dir: Path, ctx: ExtractContext) -> float | None:
    """E_F from the PDOS header, else the EIG file's first line, else the stdout."""
    pdos = _pdos_file(run_dir, ctx)
    if pdos is not None:
        with open(pdos, encoding="utf-8", errors="replace") as fh:
            if (m := _FERMI_XML.search(fh.read(2048))) is not None:
                return float(m.group(1))
    eig = find_label_file(run_dir, ctx, ".EIG")
    if eig is not None:
        with open(eig, encoding="utf-8", errors="replace") as fh:
            try:
                return float(fh.readline().split()[0])
            except (ValueError, IndexError):
                pass
    try:
        _, out = parsed_stdout(run_dir, ctx)
    except ExtractionError:
        return None
    return out.final_energy.get("Fermi")


def _spin_labels(ncomp: int) -> list[str]:
    return ["up", "down"] if ncomp == 2 else ["total"]


def _integral_below(energies: Any, values: Any, fermi: float | None) -> float | None:
    if fermi is None:
        return None
    e = np.asarray(energies, dtype=float)
    mask = e <= fermi
    if mask.sum() < 2:
        return 0.0
    return float(np.trapezoid(np.asarray(values, dtype=float)[..., mask].sum(axis=0), e[mask]))


class Dos(Analysis):
    name: ClassVar[str] = "dos"
    title: ClassVar[str] = "Density of states"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    description: ClassVar[str] = "Total density of states (.DOS, or summed from .PDOS)."

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        fermi = _fermi(run_dir, ctx)
        path = find_label_file(run_dir, ctx, ".DOS")
        if path is not None:
            try:
                table = np.loadtxt(path, comments="#", ndmin=2)
            except ValueError as exc:
                raise ExtractionError(f"{path.name} is not a numeric table: {exc}") from None
            if table.shape[1] < 2 or table.shape[0] == 0:
                raise ExtractionError(f"{path.name} has no DOS columns")
            energies, dos = table[:, 0], table[:, 1:3].T
            source = path.name
        else:
            pdos_path = _pdos_file(run_dir, ctx)
            if pdos_path is None:
                raise ExtractionError(f"no .DOS or .PDOS file in {run_dir.name}")
            try:
                sums = read_pdos_sums(pdos_path)
            except ValueError as exc:
                raise ExtractionError(str(exc)) from None
            energies, dos, source = sums.energies, sums.total, pdos_path.name
            fermi = sums.fermi if sums.fermi is not None else fermi
        e_small, (dos_small,) = bin_average(energies, [dos], MAX_POINTS)
        at_fermi = (
            None if fermi is None else interp_at(energies, np.asarray(dos).sum(axis=0), fermi)
        )
        return {
            "source": source,
            "fermi_eV": fermi,
            "n_energies": int(np.asarray(energies).size),
            "energies_eV": rounded_list(e_small),
            "spins": _spin_labels(dos.shape[0]),
            "dos": [rounded_list(row) for row in np.atleast_2d(dos_small)],
            "dos_at_fermi": at_fermi,
            "integral_below_fermi": _integral_below(energies, dos, fermi),
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
                    d.get("source"),
                    d.get("fermi_eV"),
                    d.get("dos_at_fermi"),
                    d.get("integral_below_fermi"),
                ]
            )
            series.extend(
                _spectrum_series(
                    "dos",
                    "DOS",
                    step.display_label,
                    d,
                    [(s, v) for s, v in zip(d.get("spins", []), d.get("dos", []), strict=False)],
                    many=len(found) > 1,
                )
            )
        return self.output(
            tables=[
                Table(
                    name="dos",
                    title="Density of states",
                    columns=(
                        Column("step"),
                        Column("label"),
                        Column("source"),
                        Column("E_F", "eV"),
                        Column("DOS(E_F)", "1/eV"),
                        Column("integral up to E_F"),
                    ),
                    rows=rows,
                )
            ],
            series=series,
            summary={"steps": len(found), "dos_at_fermi": rows[0][4] if len(rows) == 1 else None},
        )


class Pdos(Analysis):
    name: ClassVar[str] = "pdos"
    title: ClassVar[str] = "Projected density of states"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    description: ClassVar[str] = (
        "PDOS summed by species and angular momentum (s, p, d, f), from .PDOS."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        path = _pdos_file(run_dir, ctx)
        if path is None:
            raise ExtractionError(f"no .PDOS file in {run_dir.name} (ProjectedDensityOfStates)")
        try:
            sums = read_pdos_sums(path)
        except ValueError as exc:
            raise ExtractionError(str(exc)) from None
        fermi = sums.fermi if sums.fermi is not None else _fermi(run_dir, ctx)
        keys = sorted(sums.groups)
        arrays = [sums.total, *(sums.groups[k] for k in keys)]
        e_small, small = bin_average(sums.energies, arrays, MAX_POINTS)
        groups = []
        for key, values in zip(keys, small[1:], strict=True):
            species, ell = key
            groups.append(
                {
                    "species": species,
                    "l": ell,
                    "label": f"{species} {L_NAMES[ell] if ell < len(L_NAMES) else ell}",
                    "values": [rounded_list(row, 5) for row in values],
                    "integral_below_fermi": _integral_below(sums.energies, sums.groups[key], fermi),
                }
            )
        return {
            "source": path.name,
            "fermi_eV": fermi,
            "nspin": sums.nspin,
            "spins": _spin_labels(sums.total.shape[0]),
            "n_orbitals": sums.n_orbitals,
            "n_energies": int(sums.energies.size),
            "energies_eV": rounded_list(e_small),
            "total": [rounded_list(row, 5) for row in small[0]],
            "groups": groups,
        }

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        found = inputs.steps_with(self.name)
        series: list[Series] = []
        rows: list[list[Scalar]] = []
        for step, d in found:
            curves: list[tuple[str, list[Any]]] = []
            for g in d.get("groups", []):
                values = g.get("values", [])
                summed = [sum(v or 0.0 for v in col) for col in zip(*values, strict=True)]
                curves.append((str(g.get("label")), summed))
                rows.append(
                    [
                        step.index,
                        step.display_label,
                        g.get("species"),
                        L_NAMES[int(g.get("l", 0))],
                        g.get("integral_below_fermi"),
                    ]
                )
            series.extend(
                _spectrum_series("pdos", "PDOS", step.display_label, d, curves, many=len(found) > 1)
            )
        return self.output(
            tables=[
                Table(
                    name="pdos",
                    title="PDOS by species and l",
                    columns=(
                        Column("step"),
                        Column("label"),
                        Column("species"),
                        Column("l"),
                        Column("integral up to E_F"),
                    ),
                    rows=rows,
                )
            ],
            series=series,
            summary={"steps": len(found)},
        )


def _spectrum_series(
    graph: str, what: str, label: str, d: Any, curves: list[tuple[str, list[Any]]], *, many: bool
) -> list[Series]:
    fermi = d.get("fermi_eV")
    shift = float(fermi) if isinstance(fermi, int | float) else 0.0
    x = [None if e is None else e - shift for e in d.get("energies_eV", [])]
    return [
        Series(
            graph=f"{graph}_{label}" if many else graph,
            graph_title=f"{what} {label}" if many else what,
            label=name,
            x=x,
            y=list(values),
            x_label="E - E_F" if fermi is not None else "E",
            x_unit="eV",
            y_label=what,
            y_unit="1/eV",
        )
        for name, values in curves
    ]
