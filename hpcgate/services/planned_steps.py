"""Writing a planned calculation's steps: one row per planned step (with its array tasks),
its stored spec (files, context, resources, what it inherits) and the edges between steps.

Called by ``services/calculations.create_calculation`` once every check has passed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from hpcgate.codes.plugin import CodePlugin, PreparedInputs
from hpcgate.codes.recovery import checkpointed
from hpcgate.db.models import ArrayTask, Calculation, Cluster, QueueMapping, Step, StepEdge
from hpcgate.domain.plan import (
    Plan,
    PlannedStep,
    array_task_dirname,
    calculation_dirname,
    job_name,
    step_dirname,
)
from hpcgate.domain.states import StepState
from hpcgate.services.input_blobs import BlobRef


@dataclass(frozen=True)
class StepsCommon:
    """What every step of one calculation has in common."""

    plan_kind: str
    resources: dict[str, int]
    queue: QueueMapping
    command: list[str]
    analyses: list[str]
    blob_refs: list[BlobRef]
    plugin: CodePlugin


def insert_steps(
    session: Session,
    calc: Calculation,
    cluster: Cluster,
    plan: Plan,
    prepared: dict[int, list[PreparedInputs]],
    shared: StepsCommon,
) -> dict[int, Step]:
    """One step row per planned step (with its array tasks), by plan index."""
    token = secrets.token_hex(4)
    calc_dir = (
        PurePosixPath(cluster.scratch_root) / "hpcgate" / calculation_dirname(calc.id, calc.name)
    )
    steps_by_index: dict[int, Step] = {}
    for planned in plan.steps:
        spec, template = _step_spec(planned, prepared[planned.index], shared)
        step = Step(
            calculation_id=calc.id,
            cluster_id=cluster.id,
            index=planned.index,
            label=planned.label[:200],
            template=template,
            spec=spec,
            state=StepState.PLANNED,
            job_name=job_name(calc.id, token, planned.index, 1),
            attempt=1,
            array_size=len(planned.array) if planned.is_array else None,
            workdir=str(calc_dir / step_dirname(planned)),
        )
        if planned.is_array:
            step.tasks = [
                ArrayTask(task_index=i, label=v.label[:200], variant=dict(v.parameters))
                for i, v in enumerate(planned.array)
            ]
        session.add(step)
        steps_by_index[planned.index] = step
    session.flush()
    return steps_by_index


def _step_files(
    planned: PlannedStep, inputs: list[PreparedInputs], blob_refs: list[BlobRef]
) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    """A step's text files, template context and binary inputs (sha256 by path); an array
    step's files go under one directory per task."""
    context = dict(inputs[0].context) if inputs else {}
    if not planned.is_array:
        files = dict(inputs[0].files) if inputs else {}
        return files, context, {ref.name: ref.sha256 for ref in blob_refs}
    files = {
        f"{array_task_dirname(i)}/{fname}": text
        for i, p in enumerate(inputs)
        for fname, text in p.files.items()
    }
    blobs = {
        f"{array_task_dirname(i)}/{ref.name}": ref.sha256
        for i in range(len(inputs))
        for ref in blob_refs
    }
    return files, context, blobs


def _step_spec(
    planned: PlannedStep, inputs: list[PreparedInputs], shared: StepsCommon
) -> tuple[dict[str, Any], str]:
    """The step's stored spec (everything its job needs) and its job template's name."""
    files, context, blobs = _step_files(planned, inputs, shared.blob_refs)
    # A code that can stop itself before the walltime is told to (QE: max_seconds), so a
    # walltime end leaves restart files for the recovery ladder (codes/recovery.py).
    files = checkpointed(
        shared.plugin.recovery,
        files,
        str(context.get("input") or ""),
        shared.resources.get("walltime_s"),
    )
    inherit = list(planned.inherit) or (
        list(shared.plugin.default_inherit) if planned.parents and not planned.edge_inherit else []
    )
    template = str(context.pop("template", shared.plugin.template))
    if shared.plan_kind == "transiesta":
        from hpcgate.codes.siesta.ladder import step_analyses

        analyses = step_analyses(planned, shared.analyses)
    else:
        analyses = shared.analyses
    spec = {
        "resources": shared.resources,
        "queue": shared.queue.partition,
        "account": shared.queue.account,
        "qos": shared.queue.qos,
        "max_concurrent": planned.max_concurrent,
        "files": files,
        "blobs": blobs,
        "context": context,
        "inherit": inherit,
        "command": list(shared.command),
        "analyses": analyses,
        "variant": dict(planned.variant.parameters) if planned.variant else {},
    }
    if planned.meta:
        spec["ladder"] = dict(planned.meta)
    return spec, template


def insert_edges(
    session: Session, plan: Plan, steps_by_index: dict[int, Step]
) -> dict[int, list[int]]:
    """``afterok`` edges; each hands over its own files on a ladder, else the child's.

    Returns the parent step ids by child step id (what the answer shows, without reading
    the edges back)."""
    parents: dict[int, list[int]] = {}
    for planned in plan.steps:
        child = steps_by_index[planned.index]
        for parent in planned.parents:
            parents.setdefault(child.id, []).append(steps_by_index[parent].id)
            session.add(
                StepEdge(
                    parent_id=steps_by_index[parent].id,
                    child_id=child.id,
                    kind="afterok",
                    inherit=list(planned.inherit_from(parent))
                    if planned.edge_inherit
                    else list(child.spec["inherit"]),
                )
            )
    return parents
