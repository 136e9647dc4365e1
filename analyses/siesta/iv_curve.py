"""I-V curve of a bias chain: one point per step, ordered by the step's bias.

Requires ``current``. Extraction only fixes the step's bias (TBtrans' value, else the
``ts: Voltage`` TranSIESTA used, else the requested ``TS.Voltage``) so the central side
never guesses; ``compute`` sorts the steps by that bias and derives the conductance
G = I / V, also in units of the conductance quantum G0 = 2e^2/h.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from analyses.base import Analysis, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs, StepInput
from analyses.results import AnalysisOutput, Column, JSONDict, Scalar, Series, Table
from analyses.siesta.current import variant_bias
from analyses.siesta.files import parsed_stdout

__all__ = ["G0_SIEMENS", "IvCurve"]

#: Conductance quantum 2e^2/h in siemens (CODATA 2018, exact e and h).
G0_SIEMENS = 7.748091729863649e-05
#: Below this bias (V) the conductance I/V is not computed (0/0 at zero bias).
_ZERO_BIAS_V = 1e-9


class IvCurve(Analysis):
    name: ClassVar[str] = "iv_curve"
    title: ClassVar[str] = "I-V curve"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})
    requires: ClassVar[tuple[str, ...]] = ("current",)
    description: ClassVar[str] = (
        "Current against bias across a voltage chain (one point per step), with I/V."
    )

    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        current = ctx.upstream.get("current") or {}
        ts_voltage = None
        try:
            _, out = parsed_stdout(run_dir, ctx)
            ts_voltage = out.ts_voltage
        except ExtractionError:
            pass  # a TBtrans-only step has no TranSIESTA stdout
        asked = variant_bias(ctx.variant)
        for source, value in (
            ("tbtrans", current.get("bias_V")),
            ("transiesta", ts_voltage),
            ("variant", asked),
        ):
            if value is not None:
                return {
                    "bias_V": float(value),
                    "bias_source": source,
                    "transiesta_bias_V": ts_voltage,
                    "requested_bias_V": asked,
                }
        raise ExtractionError(
            "no bias for this step: no TBtrans/TranSIESTA voltage and no TS.Voltage in the variant"
        )

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        points, notes = self._points(inputs.steps)
        biases = [p[0] for p in points]
        if len(set(biases)) != len(biases):
            notes.append("several steps share a bias: each is still one point")
        rows: list[list[Scalar]] = []
        for bias, index, label, amps in points:
            g = amps / bias if abs(bias) > _ZERO_BIAS_V else None
            rows.append([index, label, bias, amps, g, None if g is None else g / G0_SIEMENS])
        top = max(points, key=lambda p: abs(p[0]), default=None)
        summary: dict[str, Scalar] = {
            "points": len(points),
            "bias_min_V": biases[0] if biases else None,
            "bias_max_V": biases[-1] if biases else None,
            "max_abs_current_A": max((abs(p[3]) for p in points), default=None),
            "conductance_at_max_bias_G0": (
                top[3] / top[0] / G0_SIEMENS if top and abs(top[0]) > _ZERO_BIAS_V else None
            ),
        }
        columns = (
            Column("step"),
            Column("label"),
            Column("bias", "V"),
            Column("current", "A"),
            Column("I/V", "S"),
            Column("I/V", "G0"),
        )
        return self.output(
            tables=[Table("iv_curve", "I-V points (ordered by bias)", columns, rows)],
            series=iv_series(biases, [p[3] for p in points]),
            summary=summary,
            notes=notes,
        )

    def _points(
        self, steps: Sequence[StepInput]
    ) -> tuple[list[tuple[float, int, str, float]], list[str]]:
        """(bias, step index, label, current) by bias, and why steps were left out."""
        points: list[tuple[float, int, str, float]] = []
        notes: list[str] = []
        for step in steps:
            current = step.get("current")
            if current is None or current.get("current_A") is None:
                why = step.errors.get("current", "no current extracted")
                notes.append(f"{step.display_label}: left out ({why})")
                continue
            iv = step.get(self.name) or {}
            bias = iv.get("bias_V", current.get("bias_V"))
            if bias is None:
                notes.append(f"{step.display_label}: left out (no bias)")
                continue
            points.append(
                (float(bias), step.index, step.display_label, float(current["current_A"]))
            )
        points.sort()
        return points, notes


def iv_series(biases: Sequence[float], currents: Sequence[float]) -> list[Series]:
    """The I-V graph (none without points); the TranSIESTA ladder draws the same one."""
    if not biases:
        return []
    return [
        Series(
            graph="iv_curve",
            graph_title="I-V curve",
            label="I(V)",
            x=list(biases),
            y=list(currents),
            x_label="bias",
            x_unit="V",
            y_label="current",
            y_unit="A",
            kind="linepoints",
        )
    ]
