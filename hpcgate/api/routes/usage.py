"""Core-hour usage (``GET /usage``, CSV too; ``GET /calculations/{id}/usage``), quotas
(``/clusters/{id}/quotas``) and the approval context (``GET /approvals``,
``GET /calculations/{id}/approval-context``). Rules in ``services/usage.py``,
``services/quotas.py`` and ``services/approval_context.py``; see docs/accounting.md."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from hpcgate.api.deps import CurrentUser, MayApproveCalculations, SessionDep, permitted
from hpcgate.api.schemas.usage import (
    ApprovalContextOut,
    CalculationUsage,
    QuotaIn,
    QuotaOut,
    StepUsageOut,
    UsageReport,
    UsageRowOut,
)
from hpcgate.db.models import User
from hpcgate.domain import usage as math
from hpcgate.domain.access import Action, may
from hpcgate.errors import InvalidInput
from hpcgate.services import approval_context, quotas
from hpcgate.services import usage as svc
from hpcgate.services.quotas import QuotaStatus

router = APIRouter(tags=["usage"])
MayManageQuotas = Annotated[User, Depends(permitted(Action.QUOTA_MANAGE))]
Month = Annotated[str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}$")]
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
CSV_COLUMNS = ("key", "label", "core_hours", "cpu_hours", "cpu_efficiency", "steps", "calculations")


def _window(first: str | None, last: str | None) -> tuple[str, str, tuple[datetime, datetime]]:
    this = math.month_text(datetime.now(UTC))
    first, last = first or last or this, last or first or this
    try:
        return first, last, math.month_window(first, last)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


@router.get("/usage", response_model=UsageReport, responses={200: {"content": {"text/csv": {}}}})
def usage_report(
    user: CurrentUser,
    session: SessionDep,
    from_month: Annotated[Month, Query(alias="from")] = None,
    to_month: Annotated[Month, Query(alias="to")] = None,
    group_by: Literal["user", "project", "cluster", "calculation"] = "user",
    user_id: Annotated[int | None, Query(ge=1)] = None,
    cluster_id: Annotated[int | None, Query(ge=1)] = None,
    format: Literal["json", "csv"] = "json",
) -> UsageReport | Response:
    """Core-hours per user, project, cluster or calculation over whole UTC months (``from``
    and ``to`` included; default this month). Users count their own usage only."""
    first, last, window = _window(from_month, to_month)
    rows = svc.usage_totals(session, user, window, group_by, user_id=user_id, cluster_id=cluster_id)
    if format == "csv":
        return _csv(rows, f"usage-{first}-{last}-by-{group_by}.csv")
    return UsageReport(
        from_month=first,
        to_month=last,
        group_by=group_by,
        all_users=may(Action.USAGE_READ, user),
        rows=[UsageRowOut(**asdict(r)) for r in rows],
        total_core_hours=round(sum(r.core_hours for r in rows), 6),
    )


def _csv(rows: list[svc.UsageRow], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        data = asdict(r)
        writer.writerow(["" if data[c] is None else data[c] for c in CSV_COLUMNS])
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/calculations/{calc_id}/usage", response_model=CalculationUsage)
def calculation_usage(calc_id: Id, user: CurrentUser, session: SessionDep) -> CalculationUsage:
    """Per step attempt, with ``seff``-style CPU and memory efficiency (owner, moderators)."""
    steps = svc.calculation_usage(session, user, calc_id)
    core = sum(s.core_seconds for s in steps)
    measured = [s for s in steps if s.cpu_seconds is not None]
    cpu = sum(s.cpu_seconds or 0.0 for s in measured)
    return CalculationUsage(
        calculation_id=calc_id,
        core_hours=math.hours(core),
        cpu_hours=math.hours(cpu),
        cpu_efficiency=math.ratio(cpu, sum(s.core_seconds for s in measured)),
        steps=[StepUsageOut(**asdict(s)) for s in steps],
    )


def _quota_out(q: QuotaStatus) -> QuotaOut:
    return QuotaOut(**asdict(q), soft_reached=q.soft_reached, hard_reached=q.hard_reached)


@router.get("/usage/quotas", response_model=list[QuotaOut])
def my_quotas(user: CurrentUser, session: SessionDep) -> list[QuotaOut]:
    """The caller's own quotas and this month's usage against them."""
    return [_quota_out(q) for q in quotas.user_quotas(session, user.id)]


@router.get("/clusters/{cluster_id}/quotas", response_model=list[QuotaOut])
def cluster_quotas(cluster_id: Id, _: MayManageQuotas, session: SessionDep) -> list[QuotaOut]:
    return [_quota_out(q) for q in quotas.cluster_quotas(session, cluster_id)]


@router.put("/clusters/{cluster_id}/quotas/{user_id}", response_model=QuotaOut)
def set_quota(
    cluster_id: Id, user_id: Id, body: QuotaIn, _: MayManageQuotas, session: SessionDep
) -> QuotaOut:
    """Monthly core-hours: ``soft`` warns, ``hard`` refuses new calculations (null: none)."""
    quotas.set_quota(session, cluster_id, user_id, body.soft_core_hours, body.hard_core_hours)
    cluster = quotas.cluster_of(session, cluster_id)
    return _quota_out(quotas.quota_status(session, user_id, cluster))


@router.delete("/clusters/{cluster_id}/quotas/{user_id}", status_code=204)
def delete_quota(cluster_id: Id, user_id: Id, _: MayManageQuotas, session: SessionDep) -> Response:
    quotas.delete_quota(session, cluster_id, user_id)
    return Response(status_code=204)


@router.get("/approvals", response_model=list[ApprovalContextOut])
def pending_approvals(_: MayApproveCalculations, session: SessionDep) -> list[ApprovalContextOut]:
    """Calculations waiting for approval, each with its estimate and its owner's month."""
    return [ApprovalContextOut(**asdict(c)) for c in approval_context.pending_approvals(session)]


@router.get("/calculations/{calc_id}/approval-context", response_model=ApprovalContextOut)
def calculation_approval_context(
    calc_id: Id, _: MayApproveCalculations, session: SessionDep
) -> ApprovalContextOut:
    return ApprovalContextOut(**asdict(approval_context.calculation_context(session, calc_id)))
