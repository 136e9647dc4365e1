"""Input features per code for the resource recommender (``docs/recommender.md``).

Each code plugin reads its own inputs (:mod:`hpcgate.codes.siesta.features`,
:mod:`hpcgate.codes.qe.features`; a generic program has none). This module adds what
every code shares (CPUs, nodes, bias points) and finds the main input of a stored step or
of a new calculation's configuration. The per-code readers never raise; the only error
here is :class:`~hpcgate.errors.InvalidInput` from the shared input checks (bad names,
non-text, oversized inputs) for a new calculation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hpcgate.codes.plugin import check_input_files
from hpcgate.codes.qe import features as qe
from hpcgate.codes.siesta import features as siesta
from hpcgate.errors import InvalidInput

__all__ = [
    "COMMON_FEATURES",
    "calculation_features",
    "calculation_kind",
    "feature_names",
    "step_features",
]

COMMON_FEATURES = ("cpus", "nodes", "bias_points")
_READERS: dict[str, Callable[[Mapping[str, str], str, Mapping[str, Any]], dict[str, float]]] = {
    "siesta": siesta.siesta_features,
    "qe": qe.qe_features,
}
_NAMES: dict[str, tuple[str, ...]] = {"siesta": siesta.FEATURES, "qe": qe.FEATURES}
_DEFAULT_MAIN = {"siesta": "input.fdf", "qe": "pw.in"}
#: A sweep of thousands of variants is read for its first ones only.
MAX_VARIANTS = 64


def feature_names(code: str) -> tuple[str, ...]:
    """The numeric columns of ``code``'s feature vectors, in order."""
    return (*_NAMES.get(code, ()), *COMMON_FEATURES)


def _positive(value: Any, default: int = 1) -> float:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**7
    return float(value if ok else default)


def _common(resources: Any, bias_points: int) -> dict[str, float]:
    res = resources if isinstance(resources, Mapping) else {}
    return {
        "cpus": _positive(res.get("tasks")) * _positive(res.get("cpus_per_task")),
        "nodes": _positive(res.get("nodes")),
        "bias_points": float(bias_points),
    }


def calculation_kind(configuration: Mapping[str, Any], role: str | None = None) -> str:
    """``single``/``chain``/``sweep``/``dag``, or ``transiesta:<role>`` for a ladder step."""
    kind = str(configuration.get("kind") or "single")[:32]
    return f"{kind}:{role}" if kind == "transiesta" and role else kind


def _bias_points(configuration: Mapping[str, Any]) -> int:
    biases = configuration.get("biases_v")
    return min(len(biases), 10_000) if isinstance(biases, list) else 0


def _read(
    code: str, files: Mapping[str, str], main: str, params: Mapping[str, Any]
) -> dict[str, float]:
    reader = _READERS.get(code)
    return reader(files, main, params) if reader is not None else {}


def step_features(
    code: str, spec: Mapping[str, Any], configuration: Mapping[str, Any]
) -> dict[str, float]:
    """A stored step's features, from the inputs it ran with (its ``spec``)."""
    raw = spec.get("files")
    pairs = raw.items() if isinstance(raw, Mapping) else ()
    files = {str(k): v for k, v in pairs if isinstance(v, str)}
    context = spec.get("context")
    main = context.get("input") if isinstance(context, Mapping) else None
    out = _read(code, files, str(main or _DEFAULT_MAIN.get(code, "")), {})
    return {**out, **_common(spec.get("resources"), _bias_points(configuration))}


def calculation_features(code: str, configuration: Mapping[str, Any]) -> dict[str, float]:
    """A new calculation's features: the largest over its variants (the resources ask is
    one for every step, so it must fit the biggest). A ladder is read at its device."""
    files = check_input_files(configuration.get("inputs", {}) or {})
    base = configuration.get("parameters") or {}
    if not isinstance(base, Mapping):
        raise InvalidInput("'parameters' must be an object")
    if configuration.get("kind") == "transiesta":
        main = str(configuration.get("device") or "")
    else:
        main = str(configuration.get("main_input") or _DEFAULT_MAIN.get(code, ""))
    variants = configuration.get("variants")
    params_list: list[Mapping[str, Any]] = [base]
    if isinstance(variants, list) and variants:
        params_list = [
            {**base, **(v.get("parameters") or {})}
            for v in variants[:MAX_VARIANTS]
            if isinstance(v, Mapping) and isinstance(v.get("parameters") or {}, Mapping)
        ] or [base]
    out: dict[str, float] = {}
    for params in params_list:
        for name, value in _read(code, files, main, params).items():
            out[name] = max(out.get(name, value), value)
    return {**out, **_common(configuration.get("resources"), _bias_points(configuration))}
