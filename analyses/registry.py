"""Which analyses exist: the built-ins plus plugins from the ``hpcgate.analyses`` entry points.

A lab adds an analysis without editing hpcgate by publishing a package with::

    [project.entry-points."hpcgate.analyses"]
    band_gap_map = "mylab_analyses.gapmap:BandGapMap"

The entry point may name an :class:`~analyses.base.Analysis` subclass or an instance.

Load rules (checked once, when the registry is built):

* a plugin that fails to import, or is not an ``Analysis``, is skipped and recorded in
  ``Registry.load_errors`` (logged): one broken lab package must not take the API down;
* a plugin whose name is already taken (a built-in or an earlier plugin) is skipped and
  recorded the same way: a plugin never silently replaces a built-in;
* a plugin requiring an analysis that is not registered, or taking part in a dependency
  cycle, is detected here and left out the same way (its dependents with it), so a
  selection is never resolved against a broken graph;
* ``build_registry(strict=True)`` raises :class:`RegistryError` on any of these instead
  (for a lab's CI), and ``Registry(...)`` itself always raises on an unknown requirement
  or a cycle. The built-ins must always form a valid graph: a problem there raises.

Importing this module is cheap: plugins import sisl/numpy inside their methods.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from graphlib import CycleError, TopologicalSorter
from importlib.metadata import entry_points
from typing import Any

from analyses.base import Analysis
from analyses.results import JSONDict

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "Registry",
    "RegistryError",
    "catalogue",
    "default_registry",
    "get",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hpcgate.analyses"

#: The built-in analyses, as ``module:Class`` (the same form an entry point uses).
BUILTINS: tuple[str, ...] = (
    "analyses.siesta.scf_convergence:ScfConvergence",
    "analyses.siesta.energy:Energy",
    "analyses.siesta.forces:Forces",
    "analyses.siesta.relaxed_geometry:RelaxedGeometry",
    "analyses.siesta.eigenvalues:Eigenvalues",
    "analyses.siesta.band_structure:BandStructure",
    "analyses.siesta.dos:Dos",
    "analyses.siesta.dos:Pdos",
    "analyses.siesta.transmission:Transmission",
    "analyses.siesta.current:Current",
    "analyses.siesta.iv_curve:IvCurve",
    "analyses.siesta.transiesta_iv:TransiestaIv",
    "analyses.qe.scf_convergence:QeScfConvergence",
    "analyses.qe.energy:QeEnergy",
)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class RegistryError(Exception):
    """The analyses graph is inconsistent (unknown requirement, cycle, bad definition)."""


def _load_object(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _instantiate(obj: Any, origin: str) -> Analysis:
    """Accept a subclass or an instance; anything else is a definition error."""
    instance = obj() if isinstance(obj, type) and issubclass(obj, Analysis) else obj
    if not isinstance(instance, Analysis):
        raise RegistryError(f"{origin}: {obj!r} is not an Analysis subclass or instance")
    for attr in ("name", "title", "codes"):
        if not hasattr(instance, attr):
            raise RegistryError(f"{origin}: analysis lacks the class attribute {attr!r}")
    if not _NAME_RE.match(instance.name):
        raise RegistryError(
            f"{origin}: analysis name {instance.name!r} must match {_NAME_RE.pattern}"
        )
    if not isinstance(instance.requires, tuple):
        raise RegistryError(f"{origin}: {instance.name}.requires must be a tuple of names")
    return instance


class Registry:
    """An immutable, validated set of analyses with their dependency order."""

    def __init__(
        self, analyses: Iterable[Analysis], *, load_errors: dict[str, str] | None = None
    ) -> None:
        self._by_name: dict[str, Analysis] = {}
        for analysis in analyses:
            if analysis.name in self._by_name:
                raise RegistryError(f"two analyses are named {analysis.name!r}")
            self._by_name[analysis.name] = analysis
        self.load_errors: dict[str, str] = dict(load_errors or {})
        self._order = self._check_graph()

    def _check_graph(self) -> tuple[str, ...]:
        for analysis in self._by_name.values():
            for req in analysis.requires:
                if req not in self._by_name:
                    raise RegistryError(
                        f"analysis {analysis.name!r} requires {req!r}, which is not registered"
                    )
                if req == analysis.name:
                    raise RegistryError(f"analysis {analysis.name!r} requires itself")
        sorter: TopologicalSorter[str] = TopologicalSorter()
        for name in sorted(self._by_name):
            sorter.add(name, *self._by_name[name].requires)
        try:
            return tuple(sorter.static_order())
        except CycleError as exc:
            cycle = exc.args[1] if len(exc.args) > 1 else []
            raise RegistryError(
                "dependency cycle among analyses: " + " -> ".join(str(n) for n in cycle)
            ) from None

    # -- queries

    def get(self, name: str) -> Analysis:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown analysis {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Analysis]:
        return iter(self._by_name[n] for n in self._order)

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    @property
    def order(self) -> tuple[str, ...]:
        """Every analysis, requirements first."""
        return self._order

    def catalogue(self) -> list[JSONDict]:
        """JSON-able list for ``GET /analyses`` and the portal (dependency order)."""
        return [self._by_name[n].describe() for n in self._order]

    def dependents(self, name: str) -> list[str]:
        return sorted(a.name for a in self._by_name.values() if name in a.requires)


def build_registry(
    builtins: Iterable[str] = BUILTINS, *, use_entry_points: bool = True, strict: bool = False
) -> Registry:
    """Load the built-ins, then the entry-point plugins, and validate the graph.

    With ``strict`` every plugin problem raises :class:`RegistryError` (for a lab's own CI);
    otherwise a bad plugin is left out and recorded in ``load_errors``.
    """
    builtin: list[Analysis] = []
    for spec in builtins:
        builtin.append(_instantiate(_load_object(spec), spec))  # a broken built-in is our bug
    Registry(builtin)  # the built-ins alone must form a valid graph
    names = {a.name for a in builtin}
    plugins: dict[str, Analysis] = {}
    origins: dict[str, str] = {}
    errors: dict[str, str] = {}

    def skip(key: str, message: str) -> None:
        if strict:
            raise RegistryError(message)
        errors[key] = message
        log.warning("analysis plugin skipped: %s", message)

    if use_entry_points:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            origin = f"entry point {ep.name} = {ep.value}"
            try:
                analysis = _instantiate(ep.load(), origin)
            except Exception as exc:  # a lab's plugin: record it and go on without it
                skip(ep.name, f"{origin}: {type(exc).__name__}: {exc}")
                continue
            if analysis.name in names or analysis.name in plugins:
                skip(ep.name, f"{origin}: name {analysis.name!r} is already registered")
                continue
            plugins[analysis.name] = analysis
            origins[analysis.name] = ep.name
    # Leave out plugins whose requirements are unknown (transitively) or that form a cycle.
    while True:
        known = names | set(plugins)
        dangling = [p for p in plugins.values() if any(r not in known for r in p.requires)]
        for p in dangling:
            missing = [r for r in p.requires if r not in known]
            del plugins[p.name]
            skip(origins[p.name], f"analysis {p.name!r} requires unknown {', '.join(missing)}")
        if dangling:
            continue
        try:
            return Registry([*builtin, *plugins.values()], load_errors=errors)
        except RegistryError as exc:
            cycle = _find_cycle(plugins)
            if not cycle:
                raise
            for name in set(cycle):
                del plugins[name]
                skip(origins[name], f"{exc} (plugin {name!r} left out)")


def _find_cycle(analyses: dict[str, Analysis]) -> list[str]:
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for name, a in analyses.items():
        sorter.add(name, *(r for r in a.requires if r in analyses))
    try:
        sorter.prepare()
    except CycleError as exc:
        return [str(n) for n in exc.args[1]]
    return []


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The process-wide registry (built-ins + installed plugins), built on first use."""
    return build_registry()


def get(name: str) -> Analysis:
    return default_registry().get(name)


def catalogue() -> list[JSONDict]:
    return default_registry().catalogue()
