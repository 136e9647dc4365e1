"""Find an adapter class by name through the ``hpcgate.scheduler_adapters`` entry points.

Entry points (declared in pyproject) let a site ship its own adapter as a
separate distribution without touching this package. A source checkout that was
never installed has no entry-point metadata, so the three built-in adapters are
also known by import path as a fallback.

Every adapter is constructed the same way::

    Adapter(runner: Runner, *, template_dirs: Sequence[str | Path] = (), **options)
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.errors import SchedulerError
from scheduler_adapters.runners.base import Runner

GROUP = "hpcgate.scheduler_adapters"

BUILTIN: dict[str, str] = {
    "slurm": "scheduler_adapters.slurm.adapter:SlurmAdapter",
    "pbs": "scheduler_adapters.pbs.adapter:PbsAdapter",
    "local": "scheduler_adapters.local.adapter:LocalAdapter",
}


class UnknownAdapter(SchedulerError, LookupError):
    """No adapter is registered under the requested name (a configuration error)."""

    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(
            f"unknown scheduler adapter {name!r}; available: {', '.join(available) or 'none'} "
            f"(entry point group {GROUP!r})",
            transient=False,
        )
        self.name = name
        self.available = available


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available_adapters() -> list[str]:
    """Registered names (entry points plus the built-ins), sorted."""
    return sorted(set(_entry_points()) | set(BUILTIN))


def adapter_class(name: str) -> type[Any]:
    """The class registered as ``name``; ``UnknownAdapter`` lists what exists."""
    eps = _entry_points()
    if name in eps:
        loaded: type[Any] = eps[name].load()
        return loaded
    if name in BUILTIN:
        module, _, attr = BUILTIN[name].partition(":")
        cls: type[Any] = getattr(importlib.import_module(module), attr)
        return cls
    raise UnknownAdapter(name, available_adapters())


def get_adapter(name: str, runner: Runner, **cfg: Any) -> SchedulerAdapter:
    """Build the adapter ``name`` for ``runner``; ``cfg`` goes to its constructor."""
    adapter: SchedulerAdapter = adapter_class(name)(runner, **cfg)
    return adapter
