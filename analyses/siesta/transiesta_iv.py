"""The I-V curve of a TranSIESTA bias ladder (``configuration.kind = "transiesta"``).

Extraction runs in each TBtrans step: the current is read twice, independently, and the
two are compared, because a lab publishes this number:

* from ``<label>.TBT.nc`` with sisl (``current(a, b)``, which integrates the stored
  transmission between the electrodes' chemical potentials; bias = mu_a - mu_b);
* from the TBtrans stdout line ``Left -> Right, V [V] / I [A]: 0.999999E-01 V /
  0.649170E-05 A`` (6 significant digits).

They agree when ``|I_nc - I_stdout| <= REL_TOLERANCE * max(|I_nc|, |I_stdout|)`` or both
are below ``ABS_TOLERANCE_A`` (0 V). Both values and their relative difference are kept;
a disagreement is flagged, never hidden. The curve uses the TBT.nc value (more digits),
else the stdout one.

``compute`` builds the curve from the ladder's steps (``StepInput.meta`` says which step
is which: ``role`` electrode/device/tbtrans, ``bias_v``), whatever state the ladder is in:
every point with a current is on the curve; a point whose device or TBtrans step failed
is listed under ``failed`` with the step's reason; a point that never ran because an
earlier point of its branch (or an electrode) failed is listed with that cause; points
still queued or running are ``pending``. ``partial`` is true while any point lacks a
current. The service recomputes it each time a ladder step settles, so the curve grows
as points arrive. The ``data`` document is described in docs/siesta.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from analyses.base import Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs, StepInput
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Table
from analyses.siesta.current import variant_bias
from analyses.siesta.files import find_label_file, find_tbtrans_stdout
from analyses.siesta.iv_curve import G0_SIEMENS, iv_series
from analyses.siesta.ladder_steps import LadderSteps
from analyses.siesta.tbtrans import parse_tbtrans_stdout

__all__ = ["ABS_TOLERANCE_A", "REL_TOLERANCE", "TransiestaIv", "currents_agree"]

log = logging.getLogger(__name__)

#: Relative tolerance between the TBT.nc and the stdout current (stdout has 6 digits;
#: sisl and TBtrans integrate the same transmission: measured 1e-5 apart on Au chains).
REL_TOLERANCE = 1e-3
#: Currents below this (A) are zero for the comparison (the 0 V point).
ABS_TOLERANCE_A = 1e-15
#: A TBtrans bias further than this (V) from the point's bias is flagged (TBtrans prints
#: 0.999999E-01 for 0.1 V; a user's own TBT.Voltage would differ by far more).
BIAS_TOLERANCE_V = 1e-4


def currents_agree(a: float, b: float) -> tuple[bool, float]:
    """(agree, relative difference) of two currents, with the tolerances above."""
    scale = max(abs(a), abs(b))
    if scale < ABS_TOLERANCE_A:
        return True, 0.0
    rel = abs(a - b) / scale
    return rel <= REL_TOLERANCE, rel


def _from_netcdf(path: Path, pair: tuple[str, str] | None) -> JSONDict:
    import sisl

    tbt = sisl.get_sile(str(path))
    elecs = [str(e) for e in tbt.elecs]
    a, b = pair if pair and pair[0] in elecs and pair[1] in elecs else (elecs[0], elecs[1])
    bias = float(tbt.chemical_potential(a)) - float(tbt.chemical_potential(b))
    return {"pair": f"{a}->{b}", "bias_v": bias, "current_a": float(tbt.current(a, b))}


class TransiestaIv(Analysis):
    name: ClassVar[str] = "transiesta_iv"
    title: ClassVar[str] = "I-V curve (TranSIESTA ladder)"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    description: ClassVar[str] = (
        "Current per bias point of a TranSIESTA ladder, from TBT.nc (sisl) cross-checked "
        "against the TBtrans stdout; partial ladders list their failed points."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        stdout = find_tbtrans_stdout(run_dir, ctx)
        line = None
        if stdout is not None:
            with open(stdout, encoding="utf-8", errors="replace") as fh:
                lines, _ = parse_tbtrans_stdout(fh)
            line = lines[0] if lines else None
        pair = (line.source, line.target) if line is not None else None
        nc_path = find_label_file(run_dir, ctx, ".TBT.nc")
        nc: JSONDict | None = None
        nc_error = None
        if nc_path is not None:
            try:
                nc = _from_netcdf(nc_path, pair)
            except Exception as exc:  # a cut file, netCDF4 missing: say so, keep stdout
                nc_error = f"{nc_path.name}: {type(exc).__name__}: {exc}"[:300]
                log.info("cannot read %s: %s", nc_path, exc)
        if nc is None and line is None:
            where = stdout.name if stdout is not None else "no TBtrans stdout"
            raise ExtractionError(
                f"no current: no 'V [V] / I [A]' line ({where}) and no readable "
                f"TBT.nc{f' ({nc_error})' if nc_error else ''}"
            )
        stdout_current = line.current_A if line is not None else None
        agree: bool | None = None
        rel: float | None = None
        if nc is not None and stdout_current is not None:
            agree, rel = currents_agree(float(nc["current_a"]), stdout_current)
        return {
            "pair": nc["pair"] if nc is not None else f"{line.source}->{line.target}",  # type: ignore[union-attr]
            "bias_v": nc["bias_v"] if nc is not None else line.bias_V,  # type: ignore[union-attr]
            "requested_bias_v": variant_bias(ctx.variant),
            "current_a": nc["current_a"] if nc is not None else stdout_current,
            "current_nc_a": nc["current_a"] if nc is not None else None,
            "current_stdout_a": stdout_current,
            "stdout_bias_v": line.bias_V if line is not None else None,
            "relative_difference": rel,
            "agree": agree,
            "tolerance": REL_TOLERANCE,
            "sources": {
                "nc": nc_path.name if nc is not None and nc_path is not None else None,
                "stdout": stdout.name if stdout is not None else None,
            },
            "nc_error": nc_error,
        }

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        points, failed, pending = _collect(LadderSteps(inputs.steps), self.name)
        disagreements = [p for p in points if p["agree"] is False]
        partial = bool(failed or pending)
        summary: dict[str, Scalar] = {
            "points": len(points),
            "failed": len(failed),
            "pending": len(pending),
            "partial": partial,
            "disagreements": len(disagreements),
            "bias_min_V": min((p["bias_v"] for p in points), default=None),
            "bias_max_V": max((p["bias_v"] for p in points), default=None),
            "max_abs_current_A": max((abs(p["current_a"]) for p in points), default=None),
            "refined_points": sum(1 for p in points if p["refined"]),
        }
        return self.output(
            tables=_tables(points, failed),
            series=iv_series([p["bias_v"] for p in points], [p["current_a"] for p in points]),
            summary=summary,
            notes=_notes(points, failed, pending),
            data={
                "partial": partial,
                "points": points,
                "failed": failed,
                "pending": pending,
                "tolerance": REL_TOLERANCE,
            },
        )


def _collect(
    ladder: LadderSteps, name: str
) -> tuple[list[JSONDict], list[JSONDict], list[JSONDict]]:
    """(points with a current, points that will get none, points still to come)."""
    points: list[JSONDict] = []
    failed: list[JSONDict] = []
    pending: list[JSONDict] = []
    for bias in ladder.biases():
        device = ladder.device.get(bias)
        tbt = ladder.tbtrans.get(bias)
        data = tbt.get(name) if tbt is not None else None
        if data is not None and data.get("current_a") is not None and tbt is not None:
            points.append(_point(bias, tbt, device, data))
            continue
        outcome = ladder.outcome(bias, name)
        if outcome is None:
            pending.append({"bias_v": bias, "state": ladder.point_state(bias)})
        else:
            failed.append({"bias_v": bias, **outcome})
    return points, failed, pending


def _notes(points: list[JSONDict], failed: list[JSONDict], pending: list[JSONDict]) -> list[str]:
    notes = [
        f"{_v(p['bias_v'])}: TBT.nc {p['current_a']:.6g} A and stdout "
        f"{p['current_stdout_a']:.6g} A differ by {p['relative_difference']:.2e} "
        f"(tolerance {REL_TOLERANCE:g})"
        for p in points
        if p["agree"] is False
    ]
    notes += [
        f"{_v(p['bias_v'])}: TBtrans ran at {p['tbtrans_bias_v']:.6g} V, not at the "
        "point's bias"
        for p in points
        if p["bias_mismatch"]
    ]
    notes += [f"{_v(f['bias_v'])}: no current ({f['reason']})" for f in failed]
    if pending:
        notes.append(
            f"{len(pending)} point(s) not finished yet: "
            + ", ".join(_v(p["bias_v"]) for p in pending)
        )
    return notes


def _tables(points: list[JSONDict], failed: list[JSONDict]) -> list[Table]:
    rows: list[list[Scalar]] = [
        [
            p["bias_v"],
            p["current_a"],
            p["current_stdout_a"],
            p["relative_difference"],
            p["conductance_g0"],
            p["label"],
        ]
        for p in points
    ]
    tables = [
        Table(
            name="iv_points",
            title="I-V points (ordered by bias)",
            columns=(
                Column("bias", "V"),
                Column("current (TBT.nc)", "A"),
                Column("current (stdout)", "A"),
                Column("relative difference"),
                Column("I/V", "G0"),
                Column("step"),
            ),
            rows=rows,
        )
    ]
    if failed:
        tables.append(
            Table(
                name="failed_points",
                title="Points without a current",
                columns=(Column("bias", "V"), Column("step"), Column("reason")),
                rows=[[f["bias_v"], f.get("label"), f["reason"]] for f in failed],
            )
        )
    return tables


def _v(bias: float) -> str:
    return "0 V" if bias == 0 else f"{bias:+.6g} V"


def _point(
    bias: float, tbt: StepInput, device: StepInput | None, data: Mapping[str, Any]
) -> JSONDict:
    current = float(data["current_a"])
    g0 = current / bias / G0_SIEMENS if abs(bias) > 1e-9 else None
    used = data.get("bias_v")
    return {
        "bias_v": bias,
        "current_a": current,
        "current_stdout_a": data.get("current_stdout_a"),
        "relative_difference": data.get("relative_difference"),
        "agree": data.get("agree"),
        "tbtrans_bias_v": used,
        "bias_mismatch": used is not None and abs(float(used) - bias) > BIAS_TOLERANCE_V,
        "conductance_g0": g0,
        "step_id": tbt.step_id,
        "step_index": tbt.index,
        "label": tbt.display_label,
        "device_step_id": device.step_id if device is not None else None,
        "device_step_index": device.index if device is not None else None,
        # Added by adaptive refinement (not one of the configured biases).
        "refined": bool(device is not None and device.meta.get("refined")),
    }
