"""Calculations: create, preview, list, read, rename, cancel, approve, reject, prioritize.

Roles (enforced by the dependencies, never by hand here): every logged-in user views,
creates and edits calculations; moderators approve, reject and set priorities. The rules
and queries live in ``services/calculations.py``, ``services/calculation_queries.py`` and
``services/previews.py``; steps and series have route modules of their own.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from hpcgate.api.deps import (
    CurrentUser,
    MayApproveCalculations,
    MayPrioritizeCalculations,
    SessionDep,
    SettingsDep,
)
from hpcgate.api.routes.steps import step_out
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
)
from hpcgate.db.models import Calculation
from hpcgate.domain.states import CalculationState
from hpcgate.services import calculation_queries as queries
from hpcgate.services import calculations as svc
from hpcgate.services.previews import preview_calculation as preview
from hpcgate.services.quotas import creation_warnings

router = APIRouter(prefix="/calculations", tags=["calculations"])


def _kind(calc: Calculation) -> str:
    return str(calc.configuration.get("kind", "single"))


def _detail(view: queries.CalculationView) -> CalculationDetail:
    calc = view.calculation
    summary = CalculationSummary.model_validate(calc)
    summary.kind = _kind(calc)
    summary.owner_email = view.owner_email
    summary.cluster_name = view.cluster_name
    summary.step_count = len(view.steps)
    return CalculationDetail(
        **summary.model_dump(),
        description=calc.description,
        configuration=_public_configuration(calc.configuration),
        analyses=list(calc.analyses),
        steps=[step_out(s, view.parents.get(s.id, [])) for s in view.steps],
    )


def calculation_detail(calc: Calculation, session: Session) -> CalculationDetail:
    """A calculation just loaded or changed, as every calculation route answers it."""
    return _detail(queries.view_of(session, calc))


def created_detail(calc: Calculation, session: Session) -> CalculationDetail:
    """A creation's answer: the detail, plus quota warnings for the owner."""
    detail = calculation_detail(calc, session)
    detail.warnings = creation_warnings(session, calc.owner_id, calc.cluster_id)
    return detail


def created_answer(created: svc.Created) -> CalculationDetail:
    """A creation's answer from what the creation wrote, with its quota warnings: nothing is
    read back (the server's defaults came back with the INSERT; issue 16)."""
    detail = _detail(
        queries.CalculationView(
            calculation=created.calculation,
            steps=created.steps,
            parents=created.parents,
            owner_email=created.owner_email,
            cluster_name=created.cluster_name,
        )
    )
    detail.warnings = list(created.warnings)
    return detail


def _public_configuration(config: dict[str, Any]) -> dict[str, Any]:
    """Input file contents can be large: list names and sizes, fetch contents separately."""
    out = dict(config)
    inputs = out.get("inputs")
    if isinstance(inputs, dict):
        out["inputs"] = {name: {"bytes": len(str(t).encode())} for name, t in inputs.items()}
    return out


def new_calculation(body: CalculationCreate) -> svc.NewCalculation:
    """The creation request as the service takes it (JSON and multipart routes alike)."""
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


@router.post("", response_model=CalculationDetail, status_code=201)
def create_calculation(
    body: CalculationCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> CalculationDetail:
    return created_answer(svc.create(session, user, new_calculation(body), settings))


@router.post("/preview", response_model=PreviewOut)
def preview_calculation(
    body: CalculationCreate, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> PreviewOut:
    """Plan and render every job script without saving anything (same checks as creation)."""
    found = preview(session, user, new_calculation(body), settings)
    return PreviewOut(kind=found.kind, steps=[PreviewStep(**asdict(s)) for s in found.steps])


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
    flt = queries.CalculationFilter(
        state=state,
        cluster_id=cluster_id,
        molecule_id=molecule_id,
        owner_id=user.id if owner == "me" else None,
        text=q,
    )
    page = queries.list_calculations(session, flt, limit=limit, offset=offset)
    items = [
        CalculationSummary(
            id=c.id,
            name=c.name,
            owner_id=c.owner_id,
            owner_email=page.owner_emails.get(c.owner_id),
            cluster_id=c.cluster_id,
            cluster_name=page.cluster_names.get(c.cluster_id),
            molecule_id=c.molecule_id,
            logical_queue=c.logical_queue,
            code=c.code,
            kind=_kind(c),
            state=c.state.value,
            state_reason=c.state_reason,
            approved=c.approved,
            priority=c.priority,
            created_at=c.created_at,
            submitted_at=c.submitted_at,
            finished_at=c.finished_at,
            step_count=page.step_counts.get(c.id, 0),
        )
        for c in page.rows
    ]
    return CalculationPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get("/{calc_id}", response_model=CalculationDetail)
def get_calculation(calc_id: int, user: CurrentUser, session: SessionDep) -> CalculationDetail:
    return _detail(queries.calculation_view(session, calc_id))


@router.patch("/{calc_id}", response_model=CalculationDetail)
def update_calculation(
    calc_id: int, body: CalculationUpdate, user: CurrentUser, session: SessionDep
) -> CalculationDetail:
    calc = svc.update_calculation(
        session, calc_id, user, name=body.name, description=body.description
    )
    return calculation_detail(calc, session)


@router.get("/{calc_id}/inputs/{file_name}")
def get_input_file(
    calc_id: int, file_name: str, user: CurrentUser, session: SessionDep
) -> dict[str, str]:
    return {"name": file_name, "text": queries.input_file(session, calc_id, file_name)}


@router.post("/{calc_id}/cancel", response_model=CalculationDetail)
def cancel_calculation(calc_id: int, user: CurrentUser, session: SessionDep) -> CalculationDetail:
    """Marks it cancelled now; the dispatcher cancels its jobs on the scheduler next tick."""
    calc, _job_ids = svc.request_cancel(session, calc_id, user)
    return calculation_detail(calc, session)


@router.post("/{calc_id}/approve", response_model=CalculationDetail)
def approve_calculation(
    calc_id: int, moderator: MayApproveCalculations, session: SessionDep
) -> CalculationDetail:
    return calculation_detail(svc.approve(session, calc_id, moderator), session)


@router.post("/{calc_id}/reject", response_model=CalculationDetail)
def reject_calculation(
    calc_id: int, body: RejectBody, moderator: MayApproveCalculations, session: SessionDep
) -> CalculationDetail:
    return calculation_detail(svc.reject(session, calc_id, moderator, body.reason), session)


@router.put("/{calc_id}/priority", response_model=CalculationDetail)
def set_priority(
    calc_id: int, body: PriorityUpdate, moderator: MayPrioritizeCalculations, session: SessionDep
) -> CalculationDetail:
    return calculation_detail(svc.set_priority(session, calc_id, body.priority), session)


@router.get("/{calc_id}/results", response_model=ResultsOut)
def get_results(calc_id: int, user: CurrentUser, session: SessionDep) -> ResultsOut:
    found = queries.calculation_results(session, calc_id)
    extracted = [
        ResultOut(
            step_id=r.step_id,
            step_index=found.step_index.get(r.step_id, -1),
            task_index=r.task_index,
            kind=r.kind,
            data=r.data,
        )
        for r in found.extracted
    ]
    analyses = [
        AnalysisResultOut(analysis=a.analysis, status=a.status, message=a.message, data=a.data)
        for a in found.analyses
    ]
    return ResultsOut(extracted=extracted, analyses=analyses)
