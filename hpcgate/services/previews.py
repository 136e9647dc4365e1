"""Previewing a calculation: plan it and render every job script, saving nothing.

The preview runs the very creation the real request would (same checks, same plan) inside
a savepoint that is always rolled back, then renders each step with the cluster's adapter
over a local runner: nothing reaches the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from hpcgate.db.models import Cluster
from hpcgate.db.models.users import User
from hpcgate.engine.work import CalculationWork, for_dispatcher
from hpcgate.errors import NotFound
from hpcgate.services.calculations import NewCalculation, create_calculation
from hpcgate.services.connections import default_hpcgate_command
from hpcgate.services.work_items import build_work
from hpcgate.settings import Settings
from scheduler_adapters.base import SchedulerAdapter


@dataclass(frozen=True)
class PreviewStep:
    index: int
    label: str
    parents: list[int]  # step indexes
    array_size: int | None
    files: list[str]
    script: str


@dataclass(frozen=True)
class Preview:
    kind: str
    steps: list[PreviewStep]


def preview_calculation(
    session: Session, owner: User, new: NewCalculation, settings: Settings
) -> Preview:
    """Every job script the calculation would submit (same refusals as creating it)."""
    nested = session.begin_nested()
    try:
        calc = create_calculation(session, owner, new, settings)
        cluster = session.get(Cluster, calc.cluster_id)
        if cluster is None:
            raise NotFound("cluster vanished")
        work = for_dispatcher(build_work(session, calc, cluster), default_hpcgate_command())
        steps = _render(work, _preview_adapter(cluster))
        kind = str(calc.configuration.get("kind", "single"))
    finally:
        nested.rollback()
    return Preview(kind=kind, steps=steps)


def _preview_adapter(cluster: Cluster) -> SchedulerAdapter:
    """The cluster's adapter over a local runner: it renders scripts, it never submits."""
    from scheduler_adapters.registry import get_adapter
    from scheduler_adapters.runners.local import LocalRunner

    return get_adapter(
        cluster.scheduler,
        LocalRunner(cluster.scratch_root),
        template_dirs=list(cluster.options.get("template_dirs", [])),
        **dict(cluster.options.get("adapter_options", {}) or {}),
    )


def _render(work: CalculationWork, adapter: SchedulerAdapter) -> list[PreviewStep]:
    index_of = {s.step_id: s.index for s in work.steps}
    return [
        PreviewStep(
            index=s.index,
            label=s.label,
            parents=[index_of[p] for p in s.parents],
            array_size=s.array_size,
            files=sorted(s.files),
            script=adapter.render(s.job_spec()),
        )
        for s in work.steps
    ]
