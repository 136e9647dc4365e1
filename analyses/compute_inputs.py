"""What ``compute`` is given: every step of one calculation with its extracted data.

A step that produced nothing is still there (with its state and reason), so an analysis
can report it; :func:`step_axis` picks the x axis of a per-step graph.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analyses.results import AnalysisOutput

__all__ = ["ComputeInputs", "StepInput", "numeric_variant", "step_axis"]


def _empty() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class StepInput:
    """One step of a calculation as ``compute`` sees it: its variant and extracted data.

    ``state``/``reason`` (the step's state and why it ended so) and ``meta`` (what the plan
    says the step is, e.g. a TranSIESTA ladder's ``{"role": "device", "bias_v": 0.1}``) let
    an analysis report the steps that produced nothing, not only those that did.
    """

    index: int
    label: str = ""
    variant: Mapping[str, Any] = field(default_factory=_empty)
    data: Mapping[str, Mapping[str, Any]] = field(default_factory=_empty)
    errors: Mapping[str, str] = field(default_factory=_empty)
    step_id: int | None = None
    state: str = ""
    reason: str = ""
    meta: Mapping[str, Any] = field(default_factory=_empty)

    def get(self, analysis: str) -> Mapping[str, Any] | None:
        return self.data.get(analysis)

    @property
    def display_label(self) -> str:
        return self.label or f"step {self.index}"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StepInput:
        """Build from an API/DB dict; ``data`` may be a whole extract document."""
        data = raw.get("data") or {}
        errors = raw.get("errors") or {}
        if isinstance(data, Mapping) and "analyses" in data:  # an extract.json document
            errors = {**(data.get("errors") or {}), **errors}
            data = data.get("analyses") or {}
        step_id = raw.get("step_id")
        return cls(
            index=int(raw.get("index", 0)),
            label=str(raw.get("label") or ""),
            variant=dict(raw.get("variant") or {}),
            data=dict(data),
            errors=dict(errors),
            step_id=int(step_id) if step_id is not None else None,
            state=str(raw.get("state") or ""),
            reason=str(raw.get("reason") or ""),
            meta=dict(raw.get("meta") or {}),
        )


@dataclass(frozen=True, slots=True)
class ComputeInputs:
    """Every step of one calculation, plus the outputs of the analyses this one requires."""

    steps: tuple[StepInput, ...]
    code: str = ""
    options: Mapping[str, Any] = field(default_factory=_empty)
    upstream: Mapping[str, AnalysisOutput] = field(default_factory=_empty)

    def steps_with(self, analysis: str) -> list[tuple[StepInput, Mapping[str, Any]]]:
        """Steps that have data for ``analysis``, in step order."""
        found = [(s, d) for s in self.steps if (d := s.get(analysis)) is not None]
        return sorted(found, key=lambda pair: pair[0].index)

    def with_upstream(self, upstream: Mapping[str, AnalysisOutput]) -> ComputeInputs:
        return ComputeInputs(
            steps=self.steps, code=self.code, options=self.options, upstream=upstream
        )


def numeric_variant(variant: Mapping[str, Any]) -> tuple[str, float] | None:
    """The single numeric parameter of a variant (the x axis of a chain), if there is one."""
    numeric: list[tuple[str, float]] = []
    for key, value in variant.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            numeric.append((key, float(value)))
        elif isinstance(value, str):
            head = value.strip().split()
            if head:
                try:
                    numeric.append((key, float(head[0])))
                except ValueError:
                    continue
    return numeric[0] if len(numeric) == 1 else None


def step_axis(steps: Sequence[StepInput]) -> tuple[str, list[float]]:
    """x values for a per-step graph: the variant's numeric parameter, else the step index."""
    values: list[float] = []
    key: str | None = None
    for step in steps:
        found = numeric_variant(step.variant)
        if found is None or (key is not None and found[0] != key):
            return "step", [float(s.index) for s in steps]
        key = found[0]
        values.append(found[1])
    return (key or "step"), (values if key else [float(s.index) for s in steps])
