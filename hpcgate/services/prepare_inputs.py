"""A new calculation's checks that need no database: resources against the queue's limits,
the analyses selection, and every step's prepared inputs (``services/calculations.py``).

``prepare_all`` is what the parse pool runs (``services/parse_pool.py``): a module-level
function of plain data, sent to a worker process by reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hpcgate.codes.plugin import PreparedInputs, check_binary_inputs, check_input_files
from hpcgate.codes.registry import get_plugin
from hpcgate.db.models import QueueMapping
from hpcgate.domain.plan import Plan
from hpcgate.errors import InvalidInput
from hpcgate.services.parse_pool import get_pool
from hpcgate.settings import Settings

_RESOURCE_KEYS = {"nodes", "tasks", "cpus_per_task", "memory_mb", "walltime_s", "gpus"}
#: Codes whose preparation parses no user text (``prepared_inputs``).
NO_PARSING = frozenset({"generic"})


def resolve_analyses(selection: Sequence[str], code: str) -> list[str]:
    """Refuse a selection missing a requirement (with the missing names), or unknown names."""
    if not selection:
        return []
    try:
        from analyses.graph import InvalidSelection, resolve
    except ImportError:  # pragma: no cover - analyses ship with hpcgate
        raise InvalidInput("analyses are not available on this server") from None
    try:
        ordered = resolve(list(selection), code=code if code != "generic" else None)
    except InvalidSelection as exc:
        raise InvalidInput(
            str(exc),
            missing=dict(getattr(exc, "missing", {}) or {}),
            unknown=sorted(getattr(exc, "unknown", ()) or ()),
        ) from None
    return list(ordered)


def check_resources(config: Mapping[str, Any], queue: QueueMapping) -> dict[str, int]:
    raw = config.get("resources", {}) or {}
    if not isinstance(raw, Mapping):
        raise InvalidInput("'resources' must be an object")
    unknown = set(raw) - _RESOURCE_KEYS
    if unknown:
        raise InvalidInput(f"unknown resource(s): {', '.join(sorted(unknown))}")
    out: dict[str, int] = {}
    for key, value in raw.items():
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < (0 if key == "gpus" else 1)
        ):
            raise InvalidInput(f"resource {key!r} must be a positive integer")
        out[key] = value
    if queue.max_walltime_s and out.get("walltime_s", 0) > queue.max_walltime_s:
        raise InvalidInput(
            f"walltime {out['walltime_s']} s exceeds the queue limit of {queue.max_walltime_s} s"
        )
    if queue.max_nodes and out.get("nodes", 1) > queue.max_nodes:
        raise InvalidInput(f"{out['nodes']} nodes exceed the queue limit of {queue.max_nodes}")
    cpus = out.get("tasks", 1) * out.get("cpus_per_task", 1)
    if queue.max_cpus and cpus > queue.max_cpus:
        raise InvalidInput(f"{cpus} CPUs exceed the queue limit of {queue.max_cpus}")
    return out


def prepare_all(
    plan: Plan, code: str, config: Mapping[str, Any]
) -> dict[int, list[PreparedInputs]]:
    """Prepare the inputs of every step/task now, so a bad variant is refused at creation."""
    plugin = get_plugin(code)
    files = check_input_files(config.get("inputs", {}) or {})
    binary = frozenset(check_binary_inputs(config.get("binary_inputs"), files))
    # Only when there are binary inputs: a plugin written before them still works without.
    extra: dict[str, Any] = {"binary": binary} if binary else {}
    main = str(config.get("main_input") or plugin.default_main_input)
    if plugin.name != "generic" and not files:
        raise InvalidInput(f"a {code} calculation needs its input files under 'inputs'")
    base = config.get("parameters", {}) or {}
    if not isinstance(base, Mapping):
        raise InvalidInput("'parameters' must be an object")
    if plan.kind == "transiesta":  # electrode, device and TBtrans steps from their own fdfs
        from hpcgate.codes.siesta.ladder import prepare_ladder

        return prepare_ladder(plan, code, config, binary=binary)
    prepared: dict[int, list[PreparedInputs]] = {}
    for step in plan.steps:
        variants = step.array if step.is_array else ((step.variant,) if step.variant else ())
        prepared[step.index] = [
            plugin.prepare(
                files,
                main,
                {**base, **(v.parameters if v else {})},
                bool(step.parents or config.get("start_from")),
                **extra,
            )
            for v in variants
        ]
    if plugin.name == "generic":
        command = config.get("command")
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, str) for a in command)
        ):
            raise InvalidInput("a generic calculation needs 'command': a non-empty list of strings")
    return prepared


def prepared_inputs(
    plan: Plan, code: str, config: Mapping[str, Any], settings: Settings
) -> dict[int, list[PreparedInputs]]:
    """Every step's prepared inputs. A code that parses user text (fdf, namelists) does it
    in the parse pool, a worker process with a time limit: hostile input must not stall the
    API. A code in ``NO_PARSING`` only checks names and copies text (linear in the request,
    like ``build_plan``, which already ran in the request thread), so it runs there too: no hop to a
    worker process per request (issue 16's burst of POSTs)."""
    if get_plugin(code).name in NO_PARSING and plan.kind != "transiesta":
        return prepare_all(plan, code, config)
    pool = get_pool(settings.parse_workers, settings.parse_timeout_s)
    return pool.run(prepare_all, plan, code, config)
