"""Steps of a calculation: one step with its tasks, and its resource samples over time.

Every logged-in user reads them (a lab shares results); the queries live in
``services/calculation_queries.py`` and ``services/series.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from hpcgate.api.deps import CurrentUser, SessionDep
from hpcgate.api.schemas.calculations import (
    AttemptOut,
    SeriesOut,
    StepDetail,
    StepOut,
    TaskOut,
)
from hpcgate.db.models import Step
from hpcgate.services import calculation_queries as queries
from hpcgate.services import series
from hpcgate.services.recovery import attempt_history
from hpcgate.services.task_recovery import task_attempt_history

router = APIRouter(prefix="/steps", tags=["steps"])


def step_out(step: Step, parents: list[int]) -> StepOut:
    """A step as lists show it; ``parents`` are the ids of the steps it waits for."""
    out = StepOut.model_validate(step)
    out.parents = sorted(parents)
    out.ladder = dict(step.spec["ladder"]) if step.spec.get("ladder") else None
    out.attempts = [AttemptOut.model_validate(a) for a in attempt_history(step)]
    return out


def series_out(found: series.Series) -> SeriesOut:
    return SeriesOut.model_validate(found, from_attributes=True)


@router.get("/{step_id}", response_model=StepDetail)
def get_step(step_id: int, user: CurrentUser, session: SessionDep) -> StepDetail:
    view = queries.step_view(session, step_id)
    step = view.step
    history = task_attempt_history(session, step, list(view.tasks))
    tasks = [TaskOut.model_validate(t) for t in view.tasks]
    for task in tasks:
        task.attempts = [AttemptOut.model_validate(a) for a in history.get(task.task_index, [])]
    return StepDetail(
        **step_out(step, view.parents).model_dump(),
        tasks=tasks,
        variant=dict(step.spec.get("variant", {})),
        inherit=view.inherit,
    )


@router.get("/{step_id}/samples", response_model=SeriesOut)
def step_samples(
    step_id: int,
    user: CurrentUser,
    session: SessionDep,
    since: datetime | None = None,
    until: datetime | None = None,
    points: Annotated[int, Query(ge=1, le=2000)] = 300,
) -> SeriesOut:
    return series_out(series.step_samples(session, step_id, since, until, points))
