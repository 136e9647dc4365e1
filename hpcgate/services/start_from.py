"""Start a new calculation from an earlier one's outputs (``configuration.start_from``).

::

    "start_from": {"calculation": 42,            # the source (same cluster, readable)
                   "step": 1,                    # optional: default its last succeeded step
                   "inherit": ["*.DM", "*.XV"]}  # optional: default the code's restart
                                                 # files (SIESTA *.DM, *.TSDE), else all

Checked at creation (a 422 naming the problem), then stored normalized: the source step's
directory and the patterns. The files reach the new calculation's root steps through the
chain hand-over that already exists (``context.inherit_from``, ``_inherit.j2``): copied into
the step's directory at job start, before the program runs, so the source must still be on
the cluster's scratch (not cleaned) and readable by the new job's account. A code that
restarts from them is told to (SIESTA: ``DM.UseSaveDM``, as for a chain's second step).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from hpcgate.codes.registry import get_plugin
from hpcgate.db.models import Calculation, Cluster, Step, User
from hpcgate.domain.access import Action, Owned, may
from hpcgate.domain.plan import PlanError, _inherit
from hpcgate.domain.states import StepState
from hpcgate.errors import InvalidInput

SUCCEEDED = frozenset({StepState.FINISHED, StepState.HARVESTED})
_KEYS = frozenset({"calculation", "step", "inherit", "dir"})  # "dir": ours, recomputed


def _source_id(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
        raise InvalidInput("start_from.calculation must be a calculation id")
    return int(raw)


def _source_step(calc: Calculation, raw: Any) -> Step:
    steps = sorted(calc.steps, key=lambda s: s.index)
    if raw is None:
        done = [s for s in steps if s.state in SUCCEEDED]
        if not done:
            raise InvalidInput(
                f"start_from: calculation {calc.id} has no succeeded step to start from"
            )
        return done[-1]
    step = next((s for s in steps if s.index == raw or s.label == raw), None)
    if step is None:
        raise InvalidInput(f"start_from: calculation {calc.id} has no step {raw!r}")
    if step.state not in SUCCEEDED:
        why = "its files were cleaned" if step.state is StepState.CLEANED else "not succeeded"
        raise InvalidInput(
            f"start_from: step {step.index} of calculation {calc.id} is {step.state.value} "
            f"({why})"
        )
    return step


def check_start_from(
    session: Session, owner: User, cluster: Cluster, code: str, raw: Any
) -> dict[str, Any]:
    """The normalized ``start_from`` (with the source directory), or a 422 saying why not."""
    if not isinstance(raw, Mapping):
        raise InvalidInput('start_from must be an object: {"calculation": <id>, ...}')
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise InvalidInput(f"start_from: unknown key(s) {', '.join(map(str, unknown))}")
    source_id = _source_id(raw.get("calculation"))
    source = session.get(Calculation, source_id)
    if source is None or not may(Action.CALCULATION_READ, owner, Owned(source.owner_id)):
        raise InvalidInput(
            f"start_from: calculation {source_id} does not exist or is not yours to read"
        )
    if source.cluster_id != cluster.id:
        raise InvalidInput(
            f"start_from: calculation {source_id} ran on another cluster; "
            f"its files are not on {cluster.name}"
        )
    step = _source_step(source, raw.get("step"))
    try:
        patterns = _inherit(raw.get("inherit"))
    except PlanError as exc:
        raise InvalidInput(f"start_from: {exc}") from None
    if not patterns:
        patterns = tuple(get_plugin(code).default_inherit) or ("*",)
    if not step.workdir:
        raise InvalidInput(
            f"start_from: step {step.index} of calculation {source_id} has no directory"
        )
    return {
        "calculation": source_id,
        "step": step.index,
        "inherit": list(patterns),
        "dir": step.workdir,
    }


def start_from_dirs(configuration: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a root step inherits (``context.inherit_from`` entries): [] without start_from."""
    start = configuration.get("start_from")
    if not isinstance(start, Mapping) or not start.get("dir"):
        return []
    return [{"dir": str(start["dir"]), "patterns": list(start.get("inherit") or [])}]
