"""A TranSIESTA bias ladder as one ``afterok`` DAG — pure planning, no fdf parsing.

Why this shape (TranSIESTA 4.1 facts, see docs/siesta.md):

* a device run needs each electrode's ``<label>.TSHS``, so the electrode runs
  (``siesta --electrode``) come first; identical electrodes (the same fdf file named for
  several electrodes) run once;
* a finite-bias run refuses to start without a 0 V density (``FATAL: ts: You have to
  calculate the 0 V and re-use the TSDE``), so 0 V is mandatory and comes first;
* every finite bias starts from the nearest bias already converged on its side of zero:
  positive biases climb from 0 V in ascending order, negative ones descend from 0 V. Two
  branches instead of one long chain: a failing point stops only the points further out
  on its own side, and the two branches run in parallel;
* TBtrans for a point is a separate job after that point, so it never delays the next
  bias, and a TBtrans failure never stops the ladder.

Each edge carries its own file patterns (``PlannedStep.edge_inherit``): a point takes
``*.TSHS`` from the electrodes and ``*.TSDE`` from its previous point only (never that
point's ``.TSHS``: a stale one could be read by a TBtrans run after a failure); a TBtrans
step takes ``*.TSHS`` from its point (the device's own plus the electrodes' copies).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from hpcgate.domain.plan import MAX_STEPS, Plan, PlanError, PlannedStep, Variant
from hpcgate.domain.refine import parse_refine

__all__ = [
    "BIAS_DECIMALS",
    "MAX_BIAS_V",
    "MAX_POINTS",
    "ROLE_DEVICE",
    "ROLE_ELECTRODE",
    "ROLE_TBTRANS",
    "bias_label",
    "build_transiesta_plan",
]

ROLE_ELECTRODE = "electrode"
ROLE_DEVICE = "device"
ROLE_TBTRANS = "tbtrans"
#: Two biases equal to this many decimals (of a volt) are the same point.
BIAS_DECIMALS = 6
#: A bias beyond this is a typo (mV given as V), not a transport calculation.
MAX_BIAS_V = 50.0
MAX_POINTS = (MAX_STEPS - 16) // 2
_ELECTRODE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.+-]{0,39}$")
_FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")
_KNOWN_KEYS = frozenset(
    {
        "kind",
        "inputs",
        "binary_inputs",
        "main_input",
        "resources",
        "device",
        "electrodes",
        "biases_v",
        "tbtrans",
        "parameters",
        "point_parameters",
        "refine",
    }
)


def bias_label(bias_v: float) -> str:
    """``0 V``, ``+0.1 V``, ``-0.25 V``: how a point is named in labels and messages."""
    return "0 V" if bias_v == 0 else f"{bias_v:+.6g} V"


def _bias(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(f"{where}: bias {value!r} must be a number of volts")
    v = float(value)
    if not math.isfinite(v):
        raise PlanError(f"{where}: bias {value!r} is not a finite number")
    if abs(v) > MAX_BIAS_V:
        raise PlanError(f"{where}: bias {v} V is beyond ±{MAX_BIAS_V:g} V")
    return round(v, BIAS_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def _biases(raw: Any) -> list[float]:
    if not isinstance(raw, list) or not raw:
        raise PlanError("a transiesta ladder needs 'biases_v': a non-empty list of biases in volts")
    if len(raw) > MAX_POINTS:
        raise PlanError(f"a transiesta ladder has at most {MAX_POINTS} bias points")
    seen: set[float] = set()
    out: list[float] = []
    for i, value in enumerate(raw):
        v = _bias(value, f"biases_v[{i}]")
        if v in seen:
            raise PlanError(f"bias {bias_label(v)} is listed twice in 'biases_v'")
        seen.add(v)
        out.append(v)
    if 0.0 not in seen:
        raise PlanError(
            "a transiesta ladder must include 0 V in 'biases_v': TranSIESTA refuses a finite "
            "bias that does not start from a 0 V density"
        )
    return out


def _parameters(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise PlanError(f"{where} must be an object of fdf keys and values")
    for key in raw:
        if str(key).replace("_", ".").replace("-", ".").lower() == "ts.voltage":
            raise PlanError(f"{where} must not set TS.Voltage: list the biases in 'biases_v'")
    return dict(raw)


def _electrodes(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping) or not raw:
        raise PlanError(
            "a transiesta ladder needs 'electrodes': an object mapping each electrode name "
            "of the device's TS.Elecs block to its fdf file, e.g. "
            '{"Left": "elec.fdf", "Right": "elec.fdf"}'
        )
    out: dict[str, str] = {}
    for name, fdf in raw.items():
        if not isinstance(name, str) or not _ELECTRODE_NAME_RE.match(name):
            raise PlanError(
                f"electrode name {name!r} is not allowed (a letter, then up to 39 letters, "
                "digits or _ . + -)"
            )
        if not isinstance(fdf, str) or not _FILE_RE.match(fdf):
            raise PlanError(f"electrode {name!r}: {fdf!r} is not a plain input file name")
        out[name] = fdf
    return out


def _point_parameters(raw: Any, biases: list[float]) -> dict[float, dict[str, Any]]:
    """``point_parameters``: {bias: parameters}, each bias one of the ladder's, once."""
    per_point: dict[float, dict[str, Any]] = {}
    raw_points = raw or []
    if not isinstance(raw_points, list):
        raise PlanError("'point_parameters' must be a list of {bias_v, parameters}")
    for i, item in enumerate(raw_points):
        where = f"point_parameters[{i}]"
        if not isinstance(item, Mapping) or "bias_v" not in item:
            raise PlanError(f"{where} must be an object with 'bias_v' and 'parameters'")
        v = _bias(item["bias_v"], where)
        if v not in biases:
            raise PlanError(f"{where}: {bias_label(v)} is not one of the ladder's biases")
        if v in per_point:
            raise PlanError(f"{where}: {bias_label(v)} has parameters twice")
        per_point[v] = _parameters(item.get("parameters"), f"{where}.parameters")
    return per_point


def _device_name(config: Mapping[str, Any]) -> str:
    unknown = sorted(set(config) - _KNOWN_KEYS)
    if unknown:
        raise PlanError(
            f"unknown key(s) for a transiesta ladder: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_KNOWN_KEYS - {'kind'}))})"
        )
    device = config.get("device")
    if not isinstance(device, str) or not _FILE_RE.match(device):
        raise PlanError("a transiesta ladder needs 'device': the file name of the device fdf")
    return device


def _electrode_steps(electrodes: Mapping[str, str]) -> list[PlannedStep]:
    """One step per distinct fdf, named after the electrodes that use it."""
    users: dict[str, list[str]] = {}
    for name, fdf in electrodes.items():
        users.setdefault(fdf, []).append(name)
    return [
        PlannedStep(
            index=index,
            label=f"electrode {fdf}",
            variant=Variant(f"electrode {fdf}", {}),
            meta={"role": ROLE_ELECTRODE, "fdf": fdf, "electrodes": names},
        )
        for index, (fdf, names) in enumerate(users.items())
    ]


def _ladder_order(biases: list[float]) -> tuple[list[float], dict[float, float]]:
    """0 V, the positive branch climbing, the negative one descending; and each finite
    bias's previous point on its branch."""
    positive = sorted(v for v in biases if v > 0)
    negative = sorted((v for v in biases if v < 0), reverse=True)
    previous = {
        **{v: ([0.0, *positive][i]) for i, v in enumerate(positive)},
        **{v: ([0.0, *negative][i]) for i, v in enumerate(negative)},
    }
    return [0.0, *positive, *negative], previous


def _device_steps(
    steps: list[PlannedStep],
    device: str,
    biases: list[float],
    point_params: Mapping[float, Mapping[str, Any]],
) -> dict[float, int]:
    """Append a device step per bias after the electrodes in ``steps``: {bias: index}."""
    electrode_steps = tuple(s.index for s in steps)
    electrode_edges = tuple((e, ("*.TSHS",)) for e in electrode_steps)
    order, previous = _ladder_order(biases)
    device_step: dict[float, int] = {}
    for v in order:
        index = len(steps)
        device_step[v] = index
        before = previous.get(v)
        parents = electrode_steps
        edges = electrode_edges
        if before is not None:
            parents += (device_step[before],)
            edges += ((device_step[before], ("*.TSDE",)),)
        label = f"device {bias_label(v)}"
        steps.append(
            PlannedStep(
                index=index,
                label=label,
                parents=parents,
                variant=Variant(label, dict(point_params[v])),
                edge_inherit=edges,
                meta={
                    "role": ROLE_DEVICE,
                    "fdf": device,
                    "bias_v": v,
                    "previous_bias_v": before,
                    "branch": "zero" if v == 0 else ("positive" if v > 0 else "negative"),
                },
            )
        )
    return device_step


def build_transiesta_plan(config: Mapping[str, Any]) -> Plan:
    """Electrodes, 0 V, both branches of the ladder, one TBtrans step per point."""
    device = _device_name(config)
    electrodes = _electrodes(config.get("electrodes"))
    if device in electrodes.values():
        raise PlanError(f"{device!r} is both the device and an electrode input")
    biases = _biases(config.get("biases_v"))
    tbtrans = config.get("tbtrans", True)
    if not isinstance(tbtrans, bool):
        raise PlanError("'tbtrans' must be true or false")
    if parse_refine(config.get("refine")) is not None and not tbtrans:
        raise PlanError("'refine' needs the currents: it cannot be used with 'tbtrans': false")
    common = _parameters(config.get("parameters"), "'parameters'")
    per_point = _point_parameters(config.get("point_parameters"), biases)
    params = {v: {**common, **per_point.get(v, {}), "TS.Voltage": v} for v in biases}

    steps = _electrode_steps(electrodes)
    device_step = _device_steps(steps, device, biases, params)
    if tbtrans:
        for v in device_step:  # in ladder order
            index = len(steps)
            label = f"tbtrans {bias_label(v)}"
            steps.append(
                PlannedStep(
                    index=index,
                    label=label,
                    parents=(device_step[v],),
                    variant=Variant(label, dict(params[v])),
                    edge_inherit=((device_step[v], ("*.TSHS",)),),
                    meta={"role": ROLE_TBTRANS, "fdf": device, "bias_v": v},
                )
            )
    return Plan("transiesta", tuple(steps))
