"""A TranSIESTA ladder's steps by role and bias, and why a point has no current.

``StepInput.meta`` says which step is which (``role`` electrode/device/tbtrans,
``bias_v``, ``previous_bias_v``); the step states say how far each point got. Used by
the ``transiesta_iv`` analysis, whatever state the ladder is in.
"""

from __future__ import annotations

from collections.abc import Sequence

from analyses.compute_inputs import StepInput
from analyses.results import JSONDict
from analyses.siesta.current import variant_bias

__all__ = ["LadderSteps"]

_SUCCESS = frozenset({"finished", "harvested", "cleaned"})
_FAILED = frozenset({"failed", "invalid", "lost"})


class LadderSteps:
    """The ladder's steps by role and bias, and why a point has no current."""

    def __init__(self, steps: Sequence[StepInput]) -> None:
        self.electrodes: list[StepInput] = []
        self.device: dict[float, StepInput] = {}
        self.tbtrans: dict[float, StepInput] = {}
        for step in steps:
            role = step.meta.get("role")
            if role == "electrode":
                self.electrodes.append(step)
            elif role in ("device", "tbtrans") and step.meta.get("bias_v") is not None:
                target = self.device if role == "device" else self.tbtrans
                target[float(step.meta["bias_v"])] = step
        if not self.device and not self.tbtrans:
            # Not a ladder (a plain chain selected this analysis): every step is a point.
            for step in steps:
                bias = variant_bias(step.variant)
                if bias is not None:
                    self.tbtrans.setdefault(bias, step)

    def biases(self) -> list[float]:
        return sorted(set(self.device) | set(self.tbtrans))

    def point_state(self, bias: float) -> str:
        tbt = self.tbtrans.get(bias)
        device = self.device.get(bias)
        if device is not None and device.state not in _SUCCESS:
            return device.state or "unknown"
        return (tbt.state if tbt is not None else "") or "unknown"

    def outcome(self, bias: float, name: str) -> JSONDict | None:
        """``{"reason", "step_id", "label", "state"}`` of a point that will get no
        current, or None while it may still get one."""
        device = self.device.get(bias)
        tbt = self.tbtrans.get(bias)
        for step in (device, tbt):
            if step is not None and step.state in _FAILED:
                return _failure(step, step.reason or f"step {step.state}")
        if device is not None and device.state == "cancelled":
            return _failure(device, self._cause(device))
        if tbt is None:
            if device is not None and device.state in _SUCCESS:
                return _failure(device, "no TBtrans step in this ladder ('tbtrans': false)")
            return None
        if tbt.state == "cancelled":
            return _failure(tbt, self._cause(tbt))
        if tbt.state in _SUCCESS:
            why = tbt.errors.get(name) or "TBtrans finished but no current was extracted"
            return _failure(tbt, why)
        return None

    def _cause(self, cancelled: StepInput) -> str:
        """Why a cancelled step never ran: the failed step upstream of it, if any."""
        bias = cancelled.meta.get("bias_v")
        seen: set[float] = set()
        while bias is not None and float(bias) not in seen:
            seen.add(float(bias))
            device = self.device.get(float(bias))
            if device is None:
                break
            if device.state in _FAILED:
                why = device.reason or device.state
                return f"not run: {device.display_label} did not succeed ({why})"
            bias = device.meta.get("previous_bias_v")
        for electrode in self.electrodes:
            if electrode.state in _FAILED:
                return (
                    f"not run: {electrode.display_label} did not succeed "
                    f"({electrode.reason or electrode.state})"
                )
        return cancelled.reason or "cancelled"


def _failure(step: StepInput, reason: str) -> JSONDict:
    return {
        "reason": reason,
        "step_id": step.step_id,
        "step_index": step.index,
        "label": step.display_label,
        "state": step.state,
    }
