"""Current through the junction at the step's bias, from TBtrans.

TBtrans prints ``Left -> Right, V [V] / I [A]: 0.250000 V / 0.769618E-05 A`` in its
stdout; sisl cannot open that file (ambiguous ``.out``), so it is parsed here. Without
a TBtrans stdout, ``<label>.TBT.nc`` is used through sisl (``current(a, b)``, bias from
the electrodes' chemical potentials). The bias the step was *asked* for
(``TS.Voltage`` in the variant) is recorded next to the one TBtrans used, and a
difference is flagged: a chain whose steps silently ran at the wrong bias would give a
wrong I-V curve.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from analyses.base import Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Table
from analyses.siesta.files import find_label_file, find_tbtrans_stdout
from analyses.siesta.tbtrans import parse_tbtrans_stdout

__all__ = ["Current", "variant_bias"]

log = logging.getLogger(__name__)

#: Bias difference (V) above which the variant and the output disagree.
BIAS_TOLERANCE_V = 1e-4
_UNIT_TO_V = {
    "v": 1.0,
    "ev": 1.0,
    "mv": 1e-3,
    "mev": 1e-3,
    "ry": 13.605693122994,
    "mry": 13.605693122994e-3,
    "hartree": 27.211386245988,
    "ha": 27.211386245988,
}


def variant_bias(variant: Mapping[str, Any]) -> float | None:
    """``TS.Voltage`` of a variant in volts (``0.25``, ``"0.25 eV"``, ``"250 meV"``)."""
    for key, value in variant.items():
        if key.replace("_", ".").replace("-", ".").lower() != "ts.voltage":
            continue
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return float(value)
        parts = str(value).split()
        try:
            number = float(parts[0])
        except (ValueError, IndexError):
            return None
        unit = parts[1].lower() if len(parts) > 1 else "ev"
        return number * _UNIT_TO_V.get(unit, 1.0) if unit in _UNIT_TO_V else None
    return None


def _from_netcdf(path: Path) -> list[JSONDict]:
    import sisl

    tbt = sisl.get_sile(str(path))
    elecs = list(tbt.elecs)
    out: list[JSONDict] = []
    for i, a in enumerate(elecs):
        for b in elecs[i + 1 :]:
            bias = float(tbt.chemical_potential(a)) - float(tbt.chemical_potential(b))
            out.append({"from": a, "to": b, "bias_V": bias, "current_A": float(tbt.current(a, b))})
    return out


class Current(Analysis):
    name: ClassVar[str] = "current"
    title: ClassVar[str] = "Current"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    description: ClassVar[str] = (
        "Bias and current between electrodes from TBtrans (stdout, or TBT.nc)."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        pairs: list[JSONDict] = []
        source = None
        stdout = find_tbtrans_stdout(run_dir, ctx)
        if stdout is not None:
            with open(stdout, encoding="utf-8", errors="replace") as fh:
                lines, _ = parse_tbtrans_stdout(fh)
            pairs = [
                {"from": c.source, "to": c.target, "bias_V": c.bias_V, "current_A": c.current_A}
                for c in lines
            ]
            source = stdout.name
        if not pairs:
            nc = find_label_file(run_dir, ctx, ".TBT.nc")
            if nc is not None:
                try:
                    pairs, source = _from_netcdf(nc), nc.name
                except Exception as exc:  # netCDF4 missing or a cut file
                    log.info("cannot read the current from %s: %s", nc, exc)
        if not pairs:
            where = stdout.name if stdout is not None else "no TBtrans stdout, no TBT.nc"
            raise ExtractionError(f"no 'V [V] / I [A]' line in the TBtrans output ({where})")
        main = pairs[0]
        asked = variant_bias(ctx.variant)
        mismatch = asked is not None and abs(asked - float(main["bias_V"])) > BIAS_TOLERANCE_V
        return {
            "source": source,
            "bias_V": main["bias_V"],
            "current_A": main["current_A"],
            "pair": f"{main['from']}->{main['to']}",
            "pairs": pairs,
            "variant_bias_V": asked,
            "bias_mismatch": mismatch,
        }

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        found = inputs.steps_with(self.name)
        rows: list[list[Scalar]] = [
            [
                step.index,
                step.display_label,
                d.get("pair"),
                d.get("bias_V"),
                d.get("current_A"),
                d.get("variant_bias_V"),
                bool(d.get("bias_mismatch")),
            ]
            for step, d in found
        ]
        notes = [
            f"{r[1]}: TBtrans bias {r[3]} V differs from the requested {r[5]} V"
            for r in rows
            if r[6]
        ]
        return self.output(
            tables=[
                Table(
                    name="current",
                    title="Current per step",
                    columns=(
                        Column("step"),
                        Column("label"),
                        Column("pair"),
                        Column("bias", "V"),
                        Column("current", "A"),
                        Column("requested bias", "V"),
                        Column("bias mismatch"),
                    ),
                    rows=rows,
                )
            ],
            summary={"steps": len(found), "current_A": rows[0][4] if len(rows) == 1 else None},
            notes=notes,
        )
