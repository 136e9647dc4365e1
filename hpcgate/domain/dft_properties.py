"""The properties a model's prediction can be checked against DFT, declared once.

For each property: its unit, the key a model answers it under (in one predicted instance),
and per code where the DFT value is in a step's extracted results (``ExtractedResult.kind``
and the path of keys into its ``data``), with the factor to the property's unit. A code
absent from a property's row has no DFT value for it. Energies are in eV.

Pure: no I/O. ``services/predictions.py`` records predicted values with
``predicted_values``; ``services/prediction_accuracy.py`` reads the DFT side with
``dft_value``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DftSource:
    """Where one code's DFT value of a property is: a result kind and a path into its data."""

    kind: str
    path: tuple[str, ...]
    factor: float = 1.0  # to the property's unit


@dataclass(frozen=True)
class PropertySpec:
    name: str
    unit: str
    predicted_key: str  # the key in a model's predicted instance
    description: str
    sources: Mapping[str, DftSource] = field(default_factory=dict)  # code -> source


# The validator's numbers (hpcgate/codes/*/verdict): SIESTA and QE both report eV
# (QE's Ry are converted by the validator).
_TOTAL_ENERGY = DftSource("validation", ("numbers", "energy_total_ev"))
_FERMI = DftSource("validation", ("numbers", "fermi_ev"))
_SCF_ITERATIONS = DftSource("validation", ("numbers", "scf_iterations_last"))

PROPERTIES: Mapping[str, PropertySpec] = {
    spec.name: spec
    for spec in (
        PropertySpec(
            "energy_total_ev",
            "eV",
            "energy_total_ev",
            "total energy of the step's final SCF",
            {"siesta": _TOTAL_ENERGY, "qe": _TOTAL_ENERGY},
        ),
        PropertySpec(
            "fermi_ev",
            "eV",
            "fermi_ev",
            "Fermi energy at the end of the step",
            {"siesta": _FERMI, "qe": _FERMI},
        ),
        PropertySpec(
            "scf_iterations",
            "",
            "scf_iterations",
            "SCF iterations of the step's last SCF cycle",
            {"siesta": _SCF_ITERATIONS, "qe": _SCF_ITERATIONS},
        ),
    )
}
DEFAULT_PROPERTY = "energy_total_ev"
# The result kinds any property reads (what the accuracy query loads).
SOURCE_KINDS = frozenset(src.kind for spec in PROPERTIES.values() for src in spec.sources.values())


def _number(value: Any) -> float | None:
    """A finite real number (never a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def instances_of(response: Mapping[str, Any]) -> list[Any]:
    """The predicted instances of a model answer: its ``predictions`` list, or the answer."""
    preds = response.get("predictions")
    return list(preds) if isinstance(preds, list) else [response]


def predicted_values(response: Mapping[str, Any]) -> list[tuple[str, int, int, float]]:
    """``(property, instance_index, instances, value)`` for every known property a model's
    answer gives a number for (instances that are not objects give none)."""
    instances = instances_of(response)
    out = []
    for index, instance in enumerate(instances):
        if not isinstance(instance, Mapping):
            continue
        for spec in PROPERTIES.values():
            value = _number(instance.get(spec.predicted_key))
            if value is not None:
                out.append((spec.name, index, len(instances), value))
    return out


def dft_value(prop: str, code: str, results: Mapping[str, Mapping[str, Any]]) -> float | None:
    """The DFT value of ``prop`` in one step's results (kind -> data) of a ``code`` run, in
    the property's unit; None when the code has no source for it or the value is absent."""
    source = PROPERTIES[prop].sources.get(code)
    if source is None:
        return None
    node: Any = results.get(source.kind)
    for key in source.path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    value = _number(node)
    return None if value is None else value * source.factor


def codes_of(prop: str) -> list[str]:
    return sorted(PROPERTIES[prop].sources)
