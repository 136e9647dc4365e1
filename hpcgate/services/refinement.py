"""Adaptive bias refinement of a running TranSIESTA ladder: applying the decision.

Called by the harvest (``services/harvest._settle_calculation``) each time a step of a
ladder with ``refine`` ends, inside the harvest's transaction and under its lock on the
calculation row. The decision itself is pure (``hpcgate.domain.refine``); here:

1. the converged points are read back: each TBtrans step that succeeded and whose
   ``transiesta_iv`` extraction holds a current;
2. each new bias becomes two steps, planned exactly like the ladder's own points: a device
   step with ``afterok`` edges on every electrode (``*.TSHS``) and on the device step of
   the **nearest converged bias** (``*.TSDE``, so it starts from that density with
   ``DM.UseSaveDM``), and its TBtrans step (``*.TSHS`` from the new point);
3. the steps are written PLANNED with the next free step indices, in the same transaction
   as the harvest that triggered them: durable before anything is submitted, and a crash
   before the commit forgets both the harvest and the decision, which the next tick
   repeats identically. The decision counts every point already added (``refined`` in the
   step's ``ladder`` meta) against the budget and never re-adds a bias the ladder has, and
   ``UNIQUE (calculation_id, index)`` refuses a second writer of the same index;
4. the dispatcher is woken (``notify_work``): the worker's dispatcher thread for an SSH or
   local cluster, the cluster agent's long-poll (``pull?wait=``) for an agent's cluster.
   ``services/refinement_submit`` hands the planned steps of running ladders to the same
   ``engine/added_steps`` in both (the calculation stays RUNNING: its new steps are not
   settled, so the harvest does not complete it).

Every access mode refines; for an agent's cluster this runs in the API, inside the
transaction of ``POST /agent/observations`` that reported the step's end.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.codes.registry import get_plugin
from hpcgate.db.models import Calculation, Cluster, ExtractedResult, ServiceLog, Step
from hpcgate.domain.ladder import ROLE_DEVICE, ROLE_ELECTRODE, ROLE_TBTRANS, bias_label
from hpcgate.domain.plan import Plan, PlanError, PlannedStep, Variant
from hpcgate.domain.refine import nearest_converged, parse_refine, refine_biases
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.input_blobs import BlobRef
from hpcgate.services.planned_steps import StepsCommon, insert_edges, insert_steps
from hpcgate.services.wakeup import notify_work

__all__ = ["converged_points", "refine_ladder"]

log = logging.getLogger(__name__)

_IV_KIND = "analysis:transiesta_iv"
_SUCCESS = (StepState.FINISHED, StepState.HARVESTED, StepState.CLEANED)
_REFINING = (CalculationState.SUBMITTED, CalculationState.RUNNING)


def _meta(step: Step) -> dict[str, Any]:
    return dict(step.spec.get("ladder") or {})


def converged_points(s: Session, steps: Sequence[Step]) -> dict[float, float]:
    """{bias: current} of every point whose TBtrans step succeeded with a current."""
    tbtrans = {
        st.id: float(_meta(st)["bias_v"])
        for st in steps
        if _meta(st).get("role") == ROLE_TBTRANS and st.state in _SUCCESS
    }
    if not tbtrans:
        return {}
    rows = s.scalars(
        select(ExtractedResult).where(
            ExtractedResult.step_id.in_(list(tbtrans)),
            ExtractedResult.task_index == -1,
            ExtractedResult.kind == _IV_KIND,
        )
    )
    return {
        tbtrans[r.step_id]: float(r.data["current_a"])
        for r in rows
        if isinstance(r.data.get("current_a"), int | float)
    }


def refine_ladder(s: Session, calc: Calculation, steps: Sequence[Step]) -> list[Step]:
    """Add the points the decision asks for now; return the new step rows (maybe none)."""
    try:
        config = parse_refine(calc.configuration.get("refine"))
    except PlanError:  # checked at creation; a harvest must never fail on it
        log.warning("calculation %s: unreadable 'refine'", calc.id, exc_info=True)
        return []
    if config is None or calc.state not in _REFINING:
        return []
    points = converged_points(s, steps)
    devices = {
        float(_meta(st)["bias_v"]): st for st in steps if _meta(st).get("role") == ROLE_DEVICE
    }
    added = sum(1 for st in devices.values() if _meta(st).get("refined"))
    others = [v for v in devices if v not in points]
    new = [
        v
        for v in refine_biases(points.items(), config, added=added, others=others)
        if v not in devices
    ]
    if not new:
        return []
    cluster = s.get(Cluster, calc.cluster_id)
    if cluster is None:
        return []
    # A start point must still have its .TSDE on scratch (cleanup removes old steps' files).
    starts = {v: devices[v] for v in points if devices[v].state is not StepState.CLEANED}
    if not starts:
        return []
    try:
        with s.begin_nested():  # a failure here must not undo the harvest
            rows = _add_points(s, calc, cluster, steps, new, starts)
    except Exception:
        log.exception("calculation %s: adding refinement points %s failed", calc.id, new)
        return []
    s.add(
        ServiceLog(
            source="engine",
            level="info",
            message=f"calculation {calc.id} ({calc.name}) refined: added "
            + ", ".join(bias_label(v) for v in new),
            calculation_id=calc.id,
            cluster_id=calc.cluster_id,
            context={"event": "refined", "biases_v": new},
        )
    )
    notify_work(s, calc.cluster_id)  # delivered at commit: the dispatcher submits them
    log.info("calculation %s: refinement adds %s", calc.id, new)
    return rows


def _planned(
    steps: Sequence[Step],
    new: Sequence[float],
    converged: dict[float, Step],
    base: dict[str, Any],
) -> tuple[list[PlannedStep], list[PlannedStep]]:
    """(electrode steps, new device + TBtrans steps) as plan steps; indices continue the
    calculation's, device points before TBtrans steps (earlier jobs, higher priority).
    ``base`` is the ladder's common ``parameters`` (a new bias has no point parameters)."""
    electrodes = [st for st in steps if _meta(st).get("role") == ROLE_ELECTRODE]
    elec_planned = [
        PlannedStep(index=st.index, label=st.label, meta=_meta(st)) for st in electrodes
    ]
    fdf = str(_meta(next(iter(converged.values())))["fdf"])
    first = max(st.index for st in steps) + 1
    out: list[PlannedStep] = []
    for k, v in enumerate(new):
        start = nearest_converged(v, converged)
        label = f"device {bias_label(v)}"
        edges = [(e.index, ("*.TSHS",)) for e in electrodes]
        edges.append((converged[start].index, ("*.TSDE",)))
        out.append(
            PlannedStep(
                index=first + k,
                label=label,
                parents=tuple(i for i, _ in edges),
                variant=Variant(label, {**base, "TS.Voltage": v}),
                edge_inherit=tuple(edges),
                meta={
                    "role": ROLE_DEVICE,
                    "fdf": fdf,
                    "bias_v": v,
                    "previous_bias_v": start,
                    "branch": "positive" if v > 0 else "negative",
                    "refined": True,
                },
            )
        )
    for k, v in enumerate(new):
        label = f"tbtrans {bias_label(v)}"
        device_index = first + k
        out.append(
            PlannedStep(
                index=first + len(new) + k,
                label=label,
                parents=(device_index,),
                variant=Variant(label, {**base, "TS.Voltage": v}),
                edge_inherit=((device_index, ("*.TSHS",)),),
                meta={"role": ROLE_TBTRANS, "fdf": fdf, "bias_v": v, "refined": True},
            )
        )
    return elec_planned, out


def _add_points(
    s: Session,
    calc: Calculation,
    cluster: Cluster,
    steps: Sequence[Step],
    new: Sequence[float],
    converged: dict[float, Step],
) -> list[Step]:
    """Inputs prepared like the ladder's own points, then steps and edges written."""
    from hpcgate.codes.siesta.ladder import prepare_ladder

    base = dict(calc.configuration.get("parameters") or {})
    electrodes, added = _planned(steps, new, converged, base)
    template = converged[nearest_converged(new[0], converged)]
    blobs = dict(template.spec.get("blobs") or {})
    prepared = prepare_ladder(
        Plan("transiesta", (*electrodes, *added)),
        calc.code,
        calc.configuration,
        binary=frozenset(blobs),
    )
    queue = next(q for q in cluster.queues if q.logical_queue == calc.logical_queue)
    shared = StepsCommon(
        plan_kind="transiesta",
        resources=dict(template.spec.get("resources") or {}),
        queue=queue,
        command=[],
        analyses=list(calc.analyses),
        blob_refs=[BlobRef(name, sha, 0) for name, sha in blobs.items()],
        plugin=get_plugin(calc.code),
    )
    plan = Plan("transiesta", tuple(added))
    rows = insert_steps(s, calc, cluster, plan, {p.index: prepared[p.index] for p in added}, shared)
    insert_edges(s, plan, {**{st.index: st for st in steps}, **rows})
    s.flush()
    return [rows[p.index] for p in added]
