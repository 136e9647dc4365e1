"""Turn stored calculations into work items for a dispatcher (worker or agent)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.codes.generic.params import param_environment, task_environments
from hpcgate.codes.registry import get_plugin
from hpcgate.db.models import Calculation, Cluster, Step, StepEdge
from hpcgate.domain.plan import Plan, PlannedStep, array_task_dirname
from hpcgate.engine.programs import resolve_program
from hpcgate.engine.work import CalculationWork, StepWork
from hpcgate.services.job_identity import account_for, job_environment
from hpcgate.services.start_from import start_from_dirs


def _topological(steps: Sequence[Step], parents: dict[int, list[int]]) -> list[Step]:
    plan = Plan(
        "dag",
        tuple(
            PlannedStep(index=s.id, label=s.label, parents=tuple(parents.get(s.id, ())))
            for s in steps
        ),
    )
    by_id = {s.id: s for s in steps}
    return [by_id[i] for i in plan.order()]


def _parameters(calc: Calculation, step: Step) -> dict[str, Any]:
    """``HPCGATE_PARAM_*`` for the job script itself (never a sourced file: see params.py)."""
    base = dict(calc.configuration.get("parameters") or {})
    if step.array_size:
        tasks = sorted(((t.task_index, dict(t.variant)) for t in step.tasks), key=lambda t: t[0])
        return {"task_env": task_environments(base, tasks)}
    return {"param_env": param_environment({**base, **dict(step.spec.get("variant", {}))})}


def build_work(session: Session, calc: Calculation, cluster: Cluster) -> CalculationWork:
    """The calculation's steps in dependency order, each with everything its job needs."""
    steps = list(session.scalars(select(Step).where(Step.calculation_id == calc.id)))
    parents, patterns = _edges(session, steps)
    by_id = {s.id: s for s in steps}
    plugin = get_plugin(calc.code)
    items = []
    for step in _topological(steps, parents):
        # Per edge: a ladder point takes *.TSHS from an electrode, *.TSDE from its parent.
        inherit_from = [
            {"dir": by_id[p].workdir, "patterns": patterns[(p, step.id)]}
            for p in parents.get(step.id, [])
        ]
        inherit_from = inherit_from or start_from_dirs(calc.configuration)  # issue 20
        if step.spec.get("attempt_inherit"):  # a retry continues its previous attempt
            inherit_from = [*inherit_from, dict(step.spec["attempt_inherit"])]
        context = _context(calc, cluster, step, inherit_from, validates=plugin.validates)
        items.append(_step_work(step, cluster, tuple(parents.get(step.id, [])), context))
    account = account_for(session, cluster.id, calc.owner_id)
    return CalculationWork(
        calculation_id=calc.id,
        cluster=cluster.name,
        steps=tuple(items),
        run_as=account.login_name if account is not None else None,
    )


def _edges(
    session: Session, steps: Sequence[Step]
) -> tuple[dict[int, list[int]], dict[tuple[int, int], list[str]]]:
    """Parent ids by child id, and the file patterns each (parent, child) edge hands over."""
    edges = session.scalars(select(StepEdge).where(StepEdge.child_id.in_([s.id for s in steps])))
    parents: dict[int, list[int]] = {}
    patterns: dict[tuple[int, int], list[str]] = {}
    for e in edges:
        parents.setdefault(e.child_id, []).append(e.parent_id)
        patterns[(e.parent_id, e.child_id)] = list(e.inherit)
    return parents, patterns


def _context(
    calc: Calculation,
    cluster: Cluster,
    step: Step,
    inherit_from: list[dict[str, Any]],
    *,
    validates: bool,
) -> dict[str, Any]:
    """The job template's context: the step's own, plus what the calculation and the
    cluster decide (code, queue, launcher, programs, parents' files)."""
    spec: dict[str, Any] = dict(step.spec)
    context = dict(spec.get("context", {}))
    context["code"] = calc.code
    context["logical_queue"] = calc.logical_queue
    context["inherit_from"] = inherit_from
    context["per_task_dir"] = bool(step.array_size)
    context["command"] = list(spec.get("command", []))
    context["validate"] = validates
    context["analyses"] = list(spec.get("analyses", []))
    context["variant"] = dict(spec.get("variant", {}))
    context["launcher"] = cluster.options.get("launcher", "none")
    programs = dict(cluster.options.get("programs") or {})
    program = resolve_program(calc.code, context, programs)
    if program is not None:
        context["program"] = program
    context["programs"] = programs
    context["ranks"] = int(spec.get("resources", {}).get("tasks", 1))
    if calc.code == "generic":
        context.update(_parameters(calc, step))
    return context


def _of_tasks(files: dict[str, str], indices: tuple[int, ...]) -> dict[str, str]:
    """An array retried for some tasks stages only those tasks' files."""
    if not indices:
        return files
    dirs = tuple(f"{array_task_dirname(i)}/" for i in indices)
    return {path: v for path, v in files.items() if path.startswith(dirs)}


def _step_work(
    step: Step, cluster: Cluster, parents: tuple[int, ...], context: dict[str, Any]
) -> StepWork:
    spec: dict[str, Any] = dict(step.spec)
    indices = tuple(int(i) for i in spec.get("array_indices", ()))
    return StepWork(
        step_id=step.id,
        index=step.index,
        label=step.label,
        job_name=step.job_name,
        attempt=step.attempt,
        template=step.template,
        workdir=step.workdir or "",
        parents=parents,
        scheduler_job_id=step.scheduler_job_id,
        state=step.state,
        resources=dict(spec.get("resources", {})),
        queue=spec.get("queue"),
        account=spec.get("account"),
        qos=spec.get("qos"),
        array_size=step.array_size,
        max_concurrent=spec.get("max_concurrent"),
        array_indices=indices,
        environment=job_environment(cluster),
        context=context,
        files=_of_tasks(dict(spec.get("files", {})), indices),
        blobs=_of_tasks(dict(spec.get("blobs", {})), indices),
        withdrawn_jobs=tuple(spec.get("withdrawn_jobs", ())),
    )
