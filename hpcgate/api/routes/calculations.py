"""Calculations, their steps, results and resource series — for researchers and moderators.

Roles (enforced by the dependencies, never by hand here): every logged-in user views,
creates and edits calculations; moderators approve, reject and set priorities.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from hpcgate.api.deps import (
    CurrentUser,
    MayApproveCalculations,
    MayPrioritizeCalculations,
    SessionDep,
    SettingsDep,
)
from hpcgate.api.schemas.calculations import (
    AnalysisResultOut,
    CalculationCreate,
    CalculationDetail,
    CalculationPage,
    CalculationSummary,
    CalculationUpdate,
    PreviewOut,
    PreviewStep,
    PriorityUpdate,
    RejectBody,
    ResultOut,
    ResultsOut,
    SeriesOut,
    SeriesPoint,
    StepDetail,
    StepOut,
    TaskOut,
)
from hpcgate.db.models import (
    AnalysisResult,
    Calculation,
    Cluster,
    ExtractedResult,
    Step,
    StepEdge,
    User,
)
from hpcgate.db.models.telemetry import CLUSTER_METRICS
from hpcgate.domain.access import Action
from hpcgate.domain.states import CalculationState
from hpcgate.engine.work import for_dispatcher
from hpcgate.errors import InvalidInput, NotFound
from hpcgate.services import calculations as svc
from hpcgate.services.connections import default_hpcgate_command
from hpcgate.services.work_items import build_work

router = APIRouter(prefix="/calculations", tags=["calculations"])
steps_router = APIRouter(prefix="/steps", tags=["steps"])
series_router = APIRouter(tags=["series"])


def _parents(session: Session, step_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    if step_ids:
        for edge in session.scalars(select(StepEdge).where(StepEdge.child_id.in_(step_ids))):
            out.setdefault(edge.child_id, []).append(edge.parent_id)
    return out


def _step_out(step: Step, parents: dict[int, list[int]]) -> StepOut:
    out = StepOut.model_validate(step)
    out.parents = sorted(parents.get(step.id, []))
    out.ladder = dict(step.spec["ladder"]) if step.spec.get("ladder") else None
    return out


def _summary(calc: Calculation, session: Session) -> CalculationSummary:
    out = CalculationSummary.model_validate(calc)
    out.kind = str(calc.configuration.get("kind", "single"))
    owner = session.get(User, calc.owner_id)
    cluster = session.get(Cluster, calc.cluster_id)
    out.owner_email = owner.email if owner else None
    out.cluster_name = cluster.name if cluster else None
    out.step_count = len(calc.steps)
    return out


def _detail(calc: Calculation, session: Session) -> CalculationDetail:
    parents = _parents(session, [s.id for s in calc.steps])
    base = _summary(calc, session).model_dump()
    return CalculationDetail(
        **base,
        description=calc.description,
        configuration=_public_configuration(calc.configuration),
        analyses=list(calc.analyses),
        steps=[_step_out(s, parents) for s in calc.steps],
    )


def _public_configuration(config: dict[str, Any]) -> dict[str, Any]:
    """Input file contents can be large: list names and sizes, fetch contents separately."""
    out = dict(config)
    inputs = out.get("inputs")
    if isinstance(inputs, dict):
        out["inputs"] = {name: {"bytes": len(str(t).encode())} for name, t in inputs.items()}
    return out


@router.post("", response_model=CalculationDetail, status_code=201)
def create_calculation(
    body: CalculationCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> CalculationDetail:
    calc = svc.create_calculation(session, user, _new(body), settings)
    session.refresh(calc)
    return _detail(calc, session)


def _new(body: CalculationCreate) -> svc.NewCalculation:
    return svc.NewCalculation(
        name=body.name,
        description=body.description,
        molecule_id=body.molecule_id,
        cluster_id=body.cluster_id,
        logical_queue=body.logical_queue,
        code=body.code,
        configuration=body.configuration,
        analyses=body.analyses,
        priority=body.priority,
    )


@router.post("/preview", response_model=PreviewOut)
def preview_calculation(
    body: CalculationCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> PreviewOut:
    """Plan and render every job script without saving anything (same checks as creation)."""
    from scheduler_adapters.registry import get_adapter
    from scheduler_adapters.runners.local import LocalRunner

    nested = session.begin_nested()
    try:
        calc = svc.create_calculation(session, user, _new(body), settings)
        cluster = session.get(Cluster, calc.cluster_id)
        if cluster is None:
            raise NotFound("cluster vanished")
        work = for_dispatcher(build_work(session, calc, cluster), default_hpcgate_command())
        adapter = get_adapter(
            cluster.scheduler,
            LocalRunner(cluster.scratch_root),
            template_dirs=list(cluster.options.get("template_dirs", [])),
            **dict(cluster.options.get("adapter_options", {}) or {}),
        )
        steps = [
            PreviewStep(
                index=s.index,
                label=s.label,
                parents=[next(x.index for x in work.steps if x.step_id == p) for p in s.parents],
                array_size=s.array_size,
                files=sorted(s.files),
                script=adapter.render(s.job_spec()),
            )
            for s in work.steps
        ]
        kind = str(calc.configuration.get("kind", "single"))
    finally:
        nested.rollback()
    return PreviewOut(kind=kind, steps=steps)


@router.get("", response_model=CalculationPage)
def list_calculations(
    user: CurrentUser,
    session: SessionDep,
    state: Annotated[CalculationState | None, Query()] = None,
    cluster_id: Annotated[int | None, Query(ge=1)] = None,
    molecule_id: Annotated[int | None, Query(ge=1)] = None,
    owner: Annotated[str | None, Query(pattern="^(me|all)$")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> CalculationPage:
    conds = []
    if state is not None:
        conds.append(Calculation.state == state)
    if cluster_id is not None:
        conds.append(Calculation.cluster_id == cluster_id)
    if molecule_id is not None:
        conds.append(Calculation.molecule_id == molecule_id)
    if owner == "me":
        conds.append(Calculation.owner_id == user.id)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append(or_(Calculation.name.ilike(pattern), Calculation.description.ilike(pattern)))
    total = session.scalar(select(func.count()).select_from(Calculation).where(*conds)) or 0
    rows = session.scalars(
        select(Calculation)
        .where(*conds)
        .order_by(Calculation.created_at.desc(), Calculation.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    counts = (
        dict(
            session.execute(
                select(Step.calculation_id, func.count())
                .where(Step.calculation_id.in_([c.id for c in rows]))
                .group_by(Step.calculation_id)
            ).all()
        )
        if rows
        else {}
    )
    users = (
        {
            u.id: u.email
            for u in session.scalars(select(User).where(User.id.in_({c.owner_id for c in rows})))
        }
        if rows
        else {}
    )
    clusters = (
        {
            c.id: c.name
            for c in session.scalars(
                select(Cluster).where(Cluster.id.in_({c.cluster_id for c in rows}))
            )
        }
        if rows
        else {}
    )
    items = []
    for c in rows:
        item = CalculationSummary(
            id=c.id,
            name=c.name,
            owner_id=c.owner_id,
            owner_email=users.get(c.owner_id),
            cluster_id=c.cluster_id,
            cluster_name=clusters.get(c.cluster_id),
            molecule_id=c.molecule_id,
            logical_queue=c.logical_queue,
            code=c.code,
            kind=str(c.configuration.get("kind", "single")),
            state=c.state.value,
            state_reason=c.state_reason,
            approved=c.approved,
            priority=c.priority,
            created_at=c.created_at,
            submitted_at=c.submitted_at,
            finished_at=c.finished_at,
            step_count=int(counts.get(c.id, 0)),
        )
        items.append(item)
    return CalculationPage(items=items, total=int(total), limit=limit, offset=offset)


@router.get("/{calc_id}", response_model=CalculationDetail)
def get_calculation(calc_id: int, user: CurrentUser, session: SessionDep) -> CalculationDetail:
    return _detail(svc.get_calculation(session, calc_id), session)


@router.patch("/{calc_id}", response_model=CalculationDetail)
def update_calculation(
    calc_id: int, body: CalculationUpdate, user: CurrentUser, session: SessionDep
) -> CalculationDetail:
    calc = svc.get_calculation(session, calc_id)
    svc.ensure_may_change(calc, user, Action.CALCULATION_UPDATE)
    if body.name is not None:
        calc.name = body.name.strip() or calc.name
    if body.description is not None:
        calc.description = body.description
    session.flush()
    return _detail(calc, session)


@router.get("/{calc_id}/inputs/{file_name}")
def get_input_file(
    calc_id: int, file_name: str, user: CurrentUser, session: SessionDep
) -> dict[str, str]:
    calc = svc.get_calculation(session, calc_id)
    inputs = calc.configuration.get("inputs") or {}
    if file_name not in inputs:
        raise NotFound(f"calculation {calc_id} has no input file {file_name!r}")
    return {"name": file_name, "text": str(inputs[file_name])}


@router.post("/{calc_id}/cancel", response_model=CalculationDetail)
def cancel_calculation(calc_id: int, user: CurrentUser, session: SessionDep) -> CalculationDetail:
    """Marks it cancelled now; the dispatcher cancels its jobs on the scheduler next tick."""
    calc, _job_ids = svc.request_cancel(session, calc_id, user)
    return _detail(calc, session)


@router.post("/{calc_id}/approve", response_model=CalculationDetail)
def approve_calculation(
    calc_id: int, moderator: MayApproveCalculations, session: SessionDep
) -> CalculationDetail:
    return _detail(svc.approve(session, calc_id, moderator), session)


@router.post("/{calc_id}/reject", response_model=CalculationDetail)
def reject_calculation(
    calc_id: int, body: RejectBody, moderator: MayApproveCalculations, session: SessionDep
) -> CalculationDetail:
    return _detail(svc.reject(session, calc_id, moderator, body.reason), session)


@router.put("/{calc_id}/priority", response_model=CalculationDetail)
def set_priority(
    calc_id: int, body: PriorityUpdate, moderator: MayPrioritizeCalculations, session: SessionDep
) -> CalculationDetail:
    return _detail(svc.set_priority(session, calc_id, body.priority), session)


@router.get("/{calc_id}/results", response_model=ResultsOut)
def get_results(calc_id: int, user: CurrentUser, session: SessionDep) -> ResultsOut:
    calc = svc.get_calculation(session, calc_id)
    index_of = {s.id: s.index for s in calc.steps}
    extracted = [
        ResultOut(
            step_id=r.step_id,
            step_index=index_of.get(r.step_id, -1),
            task_index=r.task_index,
            kind=r.kind,
            data=r.data,
        )
        for r in session.scalars(
            select(ExtractedResult)
            .where(ExtractedResult.step_id.in_(list(index_of)))
            .order_by(ExtractedResult.step_id, ExtractedResult.task_index, ExtractedResult.kind)
        )
    ]
    analyses = [
        AnalysisResultOut(analysis=a.analysis, status=a.status, message=a.message, data=a.data)
        for a in session.scalars(
            select(AnalysisResult)
            .where(AnalysisResult.calculation_id == calc_id)
            .order_by(AnalysisResult.analysis)
        )
    ]
    return ResultsOut(extracted=extracted, analyses=analyses)


@steps_router.get("/{step_id}", response_model=StepDetail)
def get_step(step_id: int, user: CurrentUser, session: SessionDep) -> StepDetail:
    step = session.get(Step, step_id)
    if step is None:
        raise NotFound(f"step {step_id} does not exist")
    base = _step_out(step, _parents(session, [step.id])).model_dump()
    inherit = list(step.spec.get("inherit", []))
    if step.spec.get("ladder"):  # a ladder's files are per edge (TSHS, TSDE): all of them
        edges = session.scalars(select(StepEdge).where(StepEdge.child_id == step.id))
        inherit = sorted({pattern for e in edges for pattern in e.inherit})
    return StepDetail(
        **base,
        tasks=[TaskOut.model_validate(t) for t in step.tasks],
        variant=dict(step.spec.get("variant", {})),
        inherit=inherit,
    )


_STEP_METRICS = ("cpu_time_s", "max_rss_kb")


def _series(
    session: Session,
    where_sql: str,
    params: dict[str, Any],
    metrics: tuple[str, ...],
    since: datetime,
    until: datetime,
    points: int,
) -> SeriesOut:
    """Downsample server-side with ``date_bin``: a week of 30 s heartbeats -> ``points`` rows."""
    span = max((until - since).total_seconds(), 1.0)
    bucket = max(1, int(span // points) + (1 if span % points else 0))
    aggs = ", ".join(
        f"avg({m}) AS {m}" if m not in ("cpu_time_s", "max_rss_kb") else f"max({m}) AS {m}"
        for m in metrics
    )
    sql = text(
        f"SELECT date_bin(make_interval(secs => :bucket), ts, :since) AS b, {aggs} "  # noqa: S608
        f"FROM heartbeat_samples WHERE {where_sql} AND ts >= :since AND ts < :until "
        "GROUP BY b ORDER BY b"
    )
    rows = session.execute(sql, {**params, "bucket": bucket, "since": since, "until": until})
    out = [
        SeriesPoint(
            ts=row[0],
            values={
                m: (float(v) if v is not None else None)
                for m, v in zip(metrics, row[1:], strict=True)
            },
        )
        for row in rows
    ]
    return SeriesOut(bucket_s=bucket, points=out)


def _window(
    since: datetime | None, until: datetime | None, default_hours: float
) -> tuple[datetime, datetime]:
    until = until or datetime.now(UTC)
    since = since or until - timedelta(hours=default_hours)
    if since >= until:
        raise InvalidInput("'since' must be before 'until'")
    if until - since > timedelta(days=400):
        raise InvalidInput("the window is limited to 400 days")
    return since, until


@steps_router.get("/{step_id}/samples", response_model=SeriesOut)
def step_samples(
    step_id: int,
    user: CurrentUser,
    session: SessionDep,
    since: datetime | None = None,
    until: datetime | None = None,
    points: Annotated[int, Query(ge=1, le=2000)] = 300,
) -> SeriesOut:
    step = session.get(Step, step_id)
    if step is None:
        raise NotFound(f"step {step_id} does not exist")
    start = since or (step.submitted_at or step.created_at) - timedelta(minutes=1)
    lo, hi = _window(start, until, 24)
    return _series(
        session,
        "step_id = :sid AND scope = 'step'",
        {"sid": step_id},
        _STEP_METRICS,
        lo,
        hi,
        points,
    )


@series_router.get("/clusters/{cluster_id}/heartbeats", response_model=SeriesOut)
def cluster_heartbeats(
    cluster_id: int,
    user: CurrentUser,
    session: SessionDep,
    since: datetime | None = None,
    until: datetime | None = None,
    points: Annotated[int, Query(ge=1, le=2000)] = 300,
) -> SeriesOut:
    if session.get(Cluster, cluster_id) is None:
        raise NotFound(f"cluster {cluster_id} does not exist")
    lo, hi = _window(since, until, 24)
    return _series(
        session,
        "cluster_id = :cid AND scope = 'cluster'",
        {"cid": cluster_id},
        CLUSTER_METRICS,
        lo,
        hi,
        points,
    )
