"""Check a user's analysis selection against the dependency graph.

``resolve(["scf_convergence", "energy"])`` returns the selection in dependency order
(requirements first). A selection that names an unknown analysis, leaves out a
requirement, or picks an analysis the calculation's code does not support is
**refused** with :class:`InvalidSelection` (HTTP 422 through ``hpcgate.errors``), which
carries the names so the portal can point at them. Requirements are not added silently
by default: a user who asked for ``energy`` alone should learn that it depends on
``scf_convergence`` (and pay for its extraction knowingly). ``auto_complete=True`` adds
the missing requirements instead, for callers that have already shown that choice.

The order uses :class:`graphlib.TopologicalSorter`, like the step plans, so the two graphs
are ordered by the same code path. Among analyses that are ready at the same time the
order of the selection is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from graphlib import TopologicalSorter

from analyses.registry import Registry, default_registry
from hpcgate.errors import InvalidInput

__all__ = ["InvalidSelection", "closure", "resolve"]


class InvalidSelection(InvalidInput):
    """The selection cannot run as given. ``missing`` maps a name to why it is needed."""

    code = "invalid_selection"

    def __init__(
        self,
        *,
        missing: Mapping[str, str] | None = None,
        unknown: Sequence[str] = (),
        unsupported: Mapping[str, str] | None = None,
    ) -> None:
        self.missing = dict(missing or {})
        self.unknown = list(unknown)
        self.unsupported = dict(unsupported or {})
        parts: list[str] = []
        if self.unknown:
            parts.append("unknown analyses: " + ", ".join(self.unknown))
        if self.missing:
            parts.append(
                "missing requirements: "
                + ", ".join(f"{name} ({why})" for name, why in self.missing.items())
            )
        if self.unsupported:
            parts.append(
                "not available: "
                + ", ".join(f"{name} ({why})" for name, why in self.unsupported.items())
            )
        super().__init__(
            "analysis selection refused: " + "; ".join(parts),
            missing=self.missing,
            unknown=self.unknown,
            unsupported=self.unsupported,
        )


def closure(names: Iterable[str], registry: Registry) -> set[str]:
    """``names`` with all their (transitive) requirements."""
    todo = list(names)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(registry.get(name).requires)
    return seen


def resolve(
    selection: Iterable[str],
    *,
    registry: Registry | None = None,
    auto_complete: bool = False,
    code: str | None = None,
) -> list[str]:
    """Return the selection in dependency order, or raise :class:`InvalidSelection`.

    ``code`` (``"siesta"``, ``"qe"``), when given, refuses analyses that don't support it.
    Duplicates are ignored; an empty selection resolves to ``[]``.
    """
    reg = registry if registry is not None else default_registry()
    chosen: list[str] = []
    for name in selection:
        if name not in chosen:
            chosen.append(name)
    unknown = [n for n in chosen if n not in reg]
    known = [n for n in chosen if n in reg]
    missing: dict[str, str] = {}
    if not auto_complete:
        for name in known:
            for req in reg.get(name).requires:
                if req not in chosen and req not in missing:
                    missing[req] = f"required by {name}"
    unsupported: dict[str, str] = {}
    wanted = closure(known, reg) if auto_complete else set(known)
    if code is not None:
        for name in sorted(wanted):
            codes = reg.get(name).codes
            if code not in codes:
                unsupported[name] = f"supports {', '.join(sorted(codes))}, not {code}"
    if unknown or missing or unsupported:
        raise InvalidSelection(missing=missing, unknown=unknown, unsupported=unsupported)
    return _ordered(wanted, chosen, reg)


def _ordered(names: set[str], preference: Sequence[str], reg: Registry) -> list[str]:
    rank = {n: i for i, n in enumerate(preference)}
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for name in names:
        sorter.add(name, *(r for r in reg.get(name).requires if r in names))
    sorter.prepare()  # the registry has no cycles, so this cannot raise
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda n: (rank.get(n, len(rank)), n))
        order.extend(ready)
        sorter.done(*ready)
    return order
