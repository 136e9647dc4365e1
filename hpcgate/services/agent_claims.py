"""What an agent's pull claims: only work that agent can carry out as meant.

Agents are upgraded by each site's admins, on their own schedule, so during an upgrade an
older agent may pull from a newer service. An agent says what it understands with every
pull (``features``, ``engine/work.AGENT_FEATURES``; an agent that says nothing predates
them). A calculation whose work needs a feature the agent lacks (a sweep's retry round,
``array_indices``; a step whose parent is being retried, ``withdrawn_jobs``) is released
at once for an agent that has it, with the reason on the calculation and a warning to the
cluster's admins; steps added by a refinement are offered only to agents that say
``refinements``. Without this an older agent would run the whole array again, or fail to
read the work at all, again on every pull.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, Cluster
from hpcgate.services.dispatch import claim_calculations
from hpcgate.services.events import cluster_event, timeline_line
from hpcgate.services.refinement_submit import claim_refinements
from hpcgate.services.work_items import build_work
from hpcgate.settings import Settings

log = logging.getLogger(__name__)

_WAITING = "waiting for an agent"
# Claim rounds per pull: work held back from an older agent is skipped past, but a pull
# never walks a whole backlog of it (at most limit x _ROUNDS calculations looked at).
_ROUNDS = 4


def claim_for_agent(
    s: Session,
    cluster_id: int,
    limit: int,
    claimed_by: str,
    features: Collection[str],
    settings: Settings,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """New or resumed calculations, then running ladders with added steps, as work items.
    The cluster's row is read only when something was claimed (most pulls claim nothing)."""
    have = frozenset(features)
    cluster: Cluster | None = None
    calcs: list[dict[str, Any]] = []
    seen: list[int] = []
    withheld: dict[int, frozenset[str]] = {}
    for _ in range(_ROUNDS):  # another round only after work was held back
        want = limit - len(calcs)
        if want < 1:
            break
        ids = claim_calculations(s, [cluster_id], want, claimed_by, exclude=seen)
        seen.extend(ids)
        for calc_id in ids:
            calc = s.get(Calculation, calc_id)
            cluster = cluster or s.get(Cluster, cluster_id)
            if calc is None or cluster is None:
                continue
            work = build_work(s, calc, cluster)
            missing = work.required_features() - have
            if missing:
                withheld[calc_id] = missing
                continue
            if calc.state_reason and calc.state_reason.startswith(_WAITING):
                calc.state_reason = None  # an agent that can has taken it
            calcs.append(work.to_dict())
        if len(ids) < want:
            break  # nothing more is claimable
    if withheld and cluster is not None:
        _release(s, cluster, claimed_by, withheld, settings)
    added: list[dict[str, Any]] = []
    if "refinements" in have:
        for calc_id in claim_refinements(s, cluster_id, limit - len(calcs), claimed_by):
            calc = s.get(Calculation, calc_id)
            cluster = cluster or s.get(Cluster, cluster_id)
            if calc is not None and cluster is not None:
                added.append(build_work(s, calc, cluster).to_dict())
    return calcs, added


def _release(
    s: Session,
    cluster: Cluster,
    claimed_by: str,
    withheld: dict[int, frozenset[str]],
    settings: Settings,
) -> None:
    """Give the claims back (any agent may take them at once) and say why, once."""
    s.execute(
        update(Calculation)
        .where(Calculation.id.in_(list(withheld)))
        .values(claimed_by=None, claimed_at=None)
    )
    newly: list[str] = []
    for calc_id, missing in withheld.items():
        calc = s.get(Calculation, calc_id)
        if calc is None:
            continue
        reason = (
            f"{_WAITING} of cluster {cluster.name} that supports "
            f"{', '.join(sorted(missing))}: {claimed_by} is older (upgrade it)"
        )
        if calc.state_reason == reason:
            continue
        calc.state_reason = reason
        timeline_line(s, calc, "waiting", reason, level="warning", missing=sorted(missing))
        newly.append(f"{calc.id} ({', '.join(sorted(missing))})")
    if newly:
        log.warning("agent %s is too old for calculations %s", claimed_by, ", ".join(newly))
        cluster_event(
            s,
            cluster,
            "agent_too_old",
            f"{claimed_by} cannot carry out calculations {', '.join(newly)}; they wait for "
            "an upgraded agent",
            settings=settings,
        )
