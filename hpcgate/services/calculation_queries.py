"""Reading calculations and their steps: the listing with filters, one calculation with its
owner, cluster and step graph, one step, results, stored input files.

Every query the calculation and step routes need lives here; the routes only turn these
rows into response schemas.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from hpcgate.db.models import (
    AnalysisResult,
    ArrayTask,
    Calculation,
    Cluster,
    ExtractedResult,
    Step,
    StepEdge,
    User,
)
from hpcgate.domain.states import CalculationState
from hpcgate.errors import NotFound
from hpcgate.services.calculations import get_calculation


@dataclass(frozen=True)
class CalculationFilter:
    """Every field given must match; ``text`` is a substring of the name or description."""

    state: CalculationState | None = None
    cluster_id: int | None = None
    molecule_id: int | None = None
    owner_id: int | None = None
    text: str | None = None


@dataclass(frozen=True)
class CalculationListing:
    """One page of calculations, with what the list shows of their owners and clusters."""

    rows: list[Calculation]
    total: int
    step_counts: dict[int, int]
    owner_emails: dict[int, str]
    cluster_names: dict[int, str]


@dataclass(frozen=True)
class CalculationView:
    """One calculation with its steps, the parents of each step, its owner and cluster."""

    calculation: Calculation
    steps: list[Step]
    parents: dict[int, list[int]]
    owner_email: str | None
    cluster_name: str | None


@dataclass(frozen=True)
class StepView:
    step: Step
    parents: list[int]
    tasks: list[ArrayTask]
    inherit: list[str]  # the patterns of files the step takes from its parents


@dataclass(frozen=True)
class CalculationResults:
    step_index: dict[int, int]  # step id -> index
    extracted: list[ExtractedResult]
    analyses: list[AnalysisResult]


def _escaped_like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _conditions(flt: CalculationFilter) -> list[Any]:
    conds: list[Any] = []
    if flt.state is not None:
        conds.append(Calculation.state == flt.state)
    if flt.cluster_id is not None:
        conds.append(Calculation.cluster_id == flt.cluster_id)
    if flt.molecule_id is not None:
        conds.append(Calculation.molecule_id == flt.molecule_id)
    if flt.owner_id is not None:
        conds.append(Calculation.owner_id == flt.owner_id)
    if flt.text:
        pattern = _escaped_like(flt.text)
        conds.append(or_(Calculation.name.ilike(pattern), Calculation.description.ilike(pattern)))
    return conds


def list_calculations(
    session: Session, flt: CalculationFilter, *, limit: int, offset: int
) -> CalculationListing:
    """Newest first; the step counts, owners and clusters of a page in one query each."""
    conds = _conditions(flt)
    total = session.scalar(select(func.count()).select_from(Calculation).where(*conds)) or 0
    rows = list(
        session.scalars(
            select(Calculation)
            .where(*conds)
            .order_by(Calculation.created_at.desc(), Calculation.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
    )
    if not rows:
        return CalculationListing(rows, int(total), {}, {}, {})
    return CalculationListing(
        rows=rows,
        total=int(total),
        step_counts=_step_counts(session, [c.id for c in rows]),
        owner_emails=_owner_emails(session, {c.owner_id for c in rows}),
        cluster_names=_cluster_names(session, {c.cluster_id for c in rows}),
    )


def _step_counts(session: Session, calc_ids: list[int]) -> dict[int, int]:
    counts = session.execute(
        select(Step.calculation_id, func.count())
        .where(Step.calculation_id.in_(calc_ids))
        .group_by(Step.calculation_id)
    ).all()
    return {calc_id: int(n) for calc_id, n in counts}


def _owner_emails(session: Session, user_ids: Iterable[int]) -> dict[int, str]:
    users = session.scalars(select(User).where(User.id.in_(set(user_ids))))
    return {u.id: u.email for u in users}


def _cluster_names(session: Session, cluster_ids: Iterable[int]) -> dict[int, str]:
    clusters = session.scalars(select(Cluster).where(Cluster.id.in_(set(cluster_ids))))
    return {c.id: c.name for c in clusters}


def step_parents(session: Session, step_ids: list[int]) -> dict[int, list[int]]:
    """Parent step ids by child step id (steps without parents are absent)."""
    out: dict[int, list[int]] = {}
    if step_ids:
        for edge in session.scalars(select(StepEdge).where(StepEdge.child_id.in_(step_ids))):
            out.setdefault(edge.child_id, []).append(edge.parent_id)
    return out


def view_of(session: Session, calc: Calculation) -> CalculationView:
    """What a calculation's detail shows, for a calculation already loaded."""
    steps = list(calc.steps)
    owner = session.get(User, calc.owner_id)
    cluster = session.get(Cluster, calc.cluster_id)
    return CalculationView(
        calculation=calc,
        steps=steps,
        parents=step_parents(session, [s.id for s in steps]),
        owner_email=owner.email if owner else None,
        cluster_name=cluster.name if cluster else None,
    )


def calculation_view(session: Session, calc_id: int) -> CalculationView:
    return view_of(session, get_calculation(session, calc_id))


def get_step(session: Session, step_id: int) -> Step:
    step = session.get(Step, step_id)
    if step is None:
        raise NotFound(f"step {step_id} does not exist")
    return step


def step_view(session: Session, step_id: int) -> StepView:
    """One step with its parents and the files it inherits."""
    step = get_step(session, step_id)
    parents = step_parents(session, [step.id]).get(step.id, [])
    inherit = list(step.spec.get("inherit", []))
    if step.spec.get("ladder"):  # a ladder's files are per edge (TSHS, TSDE): all of them
        edges = session.scalars(select(StepEdge).where(StepEdge.child_id == step.id))
        inherit = sorted({pattern for e in edges for pattern in e.inherit})
    return StepView(step=step, parents=parents, tasks=list(step.tasks), inherit=inherit)


def input_file(session: Session, calc_id: int, file_name: str) -> str:
    """The text of one input file a calculation was created with."""
    calc = get_calculation(session, calc_id)
    inputs = calc.configuration.get("inputs") or {}
    if file_name not in inputs:
        raise NotFound(f"calculation {calc_id} has no input file {file_name!r}")
    return str(inputs[file_name])


def calculation_results(session: Session, calc_id: int) -> CalculationResults:
    """Extracted results of every step and the calculation's analysis results."""
    calc = get_calculation(session, calc_id)
    index_of = {s.id: s.index for s in calc.steps}
    extracted = session.scalars(
        select(ExtractedResult)
        .where(ExtractedResult.step_id.in_(list(index_of)))
        .order_by(ExtractedResult.step_id, ExtractedResult.task_index, ExtractedResult.kind)
    )
    analyses = session.scalars(
        select(AnalysisResult)
        .where(AnalysisResult.calculation_id == calc_id)
        .order_by(AnalysisResult.analysis)
    )
    return CalculationResults(index_of, list(extracted), list(analyses))
