"""A calculation's configuration becomes a plan of steps and ``afterok`` edges — data first.

Pure: no I/O. The plan is persisted before anything is submitted ("durable before acted
on"), and ``graphlib`` gives the submission order and rejects cycles.

* **single** — one step.
* **chain** — ordered variants of one molecule (voltages, rotations, any parameter); step
  *i* starts after step *i-1* succeeded and inherits files from it (``inherit`` globs).
* **sweep** — independent variants run as ONE array step (``max_concurrent`` throttle).
* **dag** — named steps with explicit ``after`` lists (a chain with a fork, say).
* **transiesta** — a TranSIESTA bias ladder as one DAG: electrode runs, then the device
  at 0 V, then two branches (positive biases upwards, negative ones downwards), each
  point starting from the previous point's ``.TSDE``, and one TBtrans job per point
  (see :func:`build_transiesta_plan`). Each edge says which files the child takes from
  that parent (``PlannedStep.edge_inherit``).
"""

from __future__ import annotations

import graphlib
import heapq
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

PlanKind = Literal["single", "chain", "sweep", "dag", "transiesta"]
MAX_STEPS = 1000
MAX_ARRAY = 1000
_LABEL_RE = re.compile(r"[^A-Za-z0-9_.+-]+")
_GLOB_RE = re.compile(r"^[A-Za-z0-9_.*?\[\]+-]{1,128}$")


class PlanError(ValueError):
    """The configuration cannot be planned; the message says why, for a 422."""


@dataclass(frozen=True)
class Variant:
    label: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedStep:
    index: int
    label: str
    parents: tuple[int, ...] = ()
    inherit: tuple[str, ...] = ()
    variant: Variant | None = None  # one job
    array: tuple[Variant, ...] = ()  # an array step: one variant per task
    max_concurrent: int | None = None
    # Per-parent file patterns, overriding ``inherit`` for that edge: a ladder point takes
    # only ``*.TSHS`` from an electrode but ``*.TSDE`` from the previous point.
    edge_inherit: tuple[tuple[int, tuple[str, ...]], ...] = ()
    # What the step is in a structured workflow (TranSIESTA: role, bias, electrodes).
    meta: Mapping[str, Any] = field(default_factory=dict)

    def inherit_from(self, parent: int) -> tuple[str, ...]:
        """The patterns this step copies from ``parent``'s directory."""
        return dict(self.edge_inherit).get(parent, self.inherit)

    @property
    def is_array(self) -> bool:
        return bool(self.array)


@dataclass(frozen=True)
class Plan:
    kind: PlanKind
    steps: tuple[PlannedStep, ...]

    @property
    def edges(self) -> tuple[tuple[int, int], ...]:
        return tuple((p, s.index) for s in self.steps for p in s.parents)

    def order(self) -> list[int]:
        """Step indices, every parent before its children, lowest index first among ready ones.

        This is the submission order, so it decides scheduler priority (FIFO: earlier job,
        higher priority). A ladder numbers its device points before its TBtrans steps, so
        every point outranks every TBtrans job: TBtrans never takes the core the next bias
        is waiting for.
        """
        sorter = graphlib.TopologicalSorter({s.index: set(s.parents) for s in self.steps})
        sorter.prepare()
        ready: list[int] = []
        out: list[int] = []
        while sorter.is_active():
            for node in sorter.get_ready():
                heapq.heappush(ready, node)
            node = heapq.heappop(ready)
            out.append(node)
            sorter.done(node)
        return out

    def heads(self) -> list[int]:
        return [s.index for s in self.steps if not s.parents]


def slug(text: str, limit: int = 40) -> str:
    """A filesystem- and job-name-safe rendering of a free-text label."""
    out = _LABEL_RE.sub("_", text).strip("_.")
    return (out or "x")[:limit]


def _variants(raw: Any, what: str) -> list[Variant]:
    if not isinstance(raw, list) or not raw:
        raise PlanError(f"a {what} needs a non-empty list of variants")
    out: list[Variant] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise PlanError(f"variant {i} must be an object with 'label' and 'parameters'")
        params = item.get("parameters", {})
        if not isinstance(params, Mapping):
            raise PlanError(f"variant {i}: 'parameters' must be an object")
        label = str(item.get("label") or f"v{i}")
        if len(label) > 200:
            raise PlanError(f"variant {i}: label is longer than 200 characters")
        if label in seen:
            raise PlanError(f"variant label {label!r} is used twice")
        seen.add(label)
        out.append(Variant(label=label, parameters=dict(params)))
    return out


def _inherit(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise PlanError("'inherit' must be a list of file patterns")
    for pattern in raw:
        if "/" in pattern or pattern in (".", "..") or not _GLOB_RE.match(pattern):
            raise PlanError(f"inherit pattern {pattern!r} must be a plain file name or glob")
    return tuple(raw)


def build_plan(config: Mapping[str, Any]) -> Plan:
    """Turn a calculation configuration into a plan, or raise ``PlanError``."""
    kind = config.get("kind", "single")
    if kind == "single":
        params = config.get("parameters", {})
        if not isinstance(params, Mapping):
            raise PlanError("'parameters' must be an object")
        return Plan("single", (PlannedStep(0, "main", variant=Variant("main", dict(params))),))
    if kind == "chain":
        variants = _variants(config.get("variants"), "chain")
        if len(variants) > MAX_STEPS:
            raise PlanError(f"a chain has at most {MAX_STEPS} steps")
        inherit = _inherit(config.get("inherit"))
        steps = tuple(
            PlannedStep(
                index=i,
                label=v.label,
                parents=(i - 1,) if i else (),
                inherit=inherit if i else (),
                variant=v,
            )
            for i, v in enumerate(variants)
        )
        return Plan("chain", steps)
    if kind == "sweep":
        variants = _variants(config.get("variants"), "sweep")
        if len(variants) > MAX_ARRAY:
            raise PlanError(f"a sweep has at most {MAX_ARRAY} variants")
        throttle = config.get("max_concurrent")
        if throttle is not None and (not isinstance(throttle, int) or throttle < 1):
            raise PlanError("'max_concurrent' must be a positive integer")
        return Plan(
            "sweep", (PlannedStep(0, "sweep", array=tuple(variants), max_concurrent=throttle),)
        )
    if kind == "dag":
        return _build_dag(config.get("steps"))
    if kind == "transiesta":
        from hpcgate.domain.ladder import build_transiesta_plan

        return build_transiesta_plan(config)
    raise PlanError(
        f"unknown calculation kind {kind!r}: use single, chain, sweep, dag or transiesta"
    )


def _build_dag(raw: Any) -> Plan:
    if not isinstance(raw, list) or not raw:
        raise PlanError("a dag needs a non-empty list of 'steps'")
    if len(raw) > MAX_STEPS:
        raise PlanError(f"a dag has at most {MAX_STEPS} steps")
    names: dict[str, int] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise PlanError(f"step {i} must be an object with a 'name'")
        if item["name"] in names:
            raise PlanError(f"step name {item['name']!r} is used twice")
        names[item["name"]] = i
    graph: dict[str, set[str]] = {}
    for item in raw:
        after = item.get("after", [])
        if not isinstance(after, list) or not all(isinstance(a, str) for a in after):
            raise PlanError(f"step {item['name']!r}: 'after' must be a list of step names")
        unknown = sorted(set(after) - set(names))
        if unknown:
            raise PlanError(
                f"step {item['name']!r} runs after unknown step(s): {', '.join(unknown)}"
            )
        graph[item["name"]] = set(after)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(str(n) for n in exc.args[1])
        raise PlanError(f"the steps form a cycle: {cycle}") from None
    # Re-index in topological order so parents always have smaller indices.
    index_of = {name: i for i, name in enumerate(order)}
    by_name = {item["name"]: item for item in raw}
    steps = []
    for name in order:
        item = by_name[name]
        params = item.get("parameters", {})
        if not isinstance(params, Mapping):
            raise PlanError(f"step {name!r}: 'parameters' must be an object")
        steps.append(
            PlannedStep(
                index=index_of[name],
                label=name,
                parents=tuple(sorted(index_of[a] for a in graph[name])),
                inherit=_inherit(item.get("inherit")) if graph[name] else (),
                variant=Variant(name, dict(params)),
            )
        )
    return Plan("dag", tuple(steps))


def job_name(calculation_id: int, token: str, step_index: int, attempt: int) -> str:
    """Stored at creation, so a restarted dispatcher finds a job it submitted before crashing.

    ``token`` (random per calculation) keeps names unique across installations and database
    resets that share a cluster account — otherwise ``find_by_name`` could adopt a stranger's job.
    """
    if not re.fullmatch(r"[a-z0-9]{4,12}", token):
        raise ValueError("token must be 4-12 lowercase letters or digits")
    return f"hpcg-{calculation_id}-{token}-{step_index}-a{attempt}"


def step_dirname(step: PlannedStep | int, label: str = "") -> str:
    index = step.index if isinstance(step, PlannedStep) else step
    lab = step.label if isinstance(step, PlannedStep) else label
    return f"step-{index:03d}-{slug(lab, 24)}"


def calculation_dirname(calculation_id: int, name: str) -> str:
    return f"calc-{calculation_id:06d}-{slug(name, 32)}"


def array_task_dirname(task_index: int) -> str:
    return f"task-{task_index}"  # must match the prologue: task-$HPCGATE_TASK_INDEX


def parents_of(steps: Sequence[PlannedStep], index: int) -> tuple[int, ...]:
    return next(s.parents for s in steps if s.index == index)
