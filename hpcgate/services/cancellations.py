"""Cancellations waiting to be sent to a cluster's scheduler, and their acknowledgement.

A cancellation is durable before it is acted on: a step's ``cancel_pending`` (a user's
cancel, a stalled step under ``cancel_retry``), or an array task's (a stalled task of a
sweep, cancelled on its own while its siblings run). The dispatcher that reaches the cluster
(the worker's harvest, or the agent through its report) sends them and acknowledges them by
job id; until then they are sent again on every harvest (``scancel`` of an ended job is
harmless). A task's job id is ``<array job>_<index>``, the scheduler adapters' form.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import String, bindparam, cast, select, tuple_, union_all, update
from sqlalchemy.orm import Session

from hpcgate.db.base import table_of
from hpcgate.db.models import ArrayTask, Step

_step, _task = table_of(Step), table_of(ArrayTask)
_PENDING = union_all(
    select(_step.c.id, _step.c.scheduler_job_id.label("job")).where(
        _step.c.cluster_id == bindparam("cluster_id"),
        _step.c.cancel_pending.is_(True),
        _step.c.scheduler_job_id.is_not(None),
    ),
    # the partial index ix_array_tasks_cancel_pending keeps this at nothing when none wait
    select(
        _step.c.id, (_step.c.scheduler_job_id + "_" + cast(_task.c.task_index, String)).label("job")
    )
    .join(_step, _step.c.id == _task.c.step_id)
    .where(
        _task.c.cancel_pending.is_(True),
        _step.c.cluster_id == bindparam("cluster_id"),
        _step.c.scheduler_job_id.is_not(None),
    ),
)


def pending_cancellations(s: Session, cluster_id: int) -> list[tuple[int, str]]:
    """(step id, job id to cancel): steps' jobs, then array tasks' ``<job>_<index>``."""
    rows = s.connection().execute(_PENDING, {"cluster_id": cluster_id}).all()
    return [(int(r.id), str(r.job)) for r in rows]


def acknowledge_cancellations(s: Session, sent: Iterable[tuple[int, str]]) -> None:
    """The dispatcher sent these (step id, job id): nothing more to send for them."""
    sent = list(sent)
    if not sent:
        return
    rows = s.execute(
        select(Step.id, Step.scheduler_job_id).where(Step.id.in_({sid for sid, _ in sent}))
    )
    jobs = {int(sid): job for sid, job in rows}
    steps: set[int] = set()
    tasks: set[tuple[int, int]] = set()
    for sid, job in sent:
        own = jobs.get(sid)
        if own is None:
            continue
        index = job[len(own) + 1 :]
        if job.startswith(f"{own}_") and index.isdigit():
            tasks.add((sid, int(index)))
        else:
            steps.add(sid)
    if steps:
        s.execute(update(Step).where(Step.id.in_(steps)).values(cancel_pending=False))
    if tasks:
        s.execute(
            update(ArrayTask)
            .where(tuple_(ArrayTask.step_id, ArrayTask.task_index).in_(tasks))
            .values(cancel_pending=False)
        )
