"""Stored results: what each job extracted and validated, and the analyses computed over them.

The harvest stores a settled job's documents here (``store_step_results``,
``store_task_results``); the central half of the analyses runs when a calculation completes
(and on demand, e.g. after a plugin upgrade). Each analysis result is stored with its
status; one failing analysis never hides the others.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from hpcgate.db.models import AnalysisResult, ArrayTask, Calculation, ExtractedResult, Step
from hpcgate.engine.work import StepObservation, TaskObservation

log = logging.getLogger(__name__)

STEP_ROW = -1  # task_index of a whole step's results (array tasks use their own index)


def store_step_results(s: Session, step_id: int, obs: StepObservation) -> None:
    """A settled step's validation report, extracted data and accounting."""
    upsert_result(s, step_id, STEP_ROW, "validation", obs.validation)
    store_extract(s, step_id, STEP_ROW, obs.extracted)
    upsert_result(
        s,
        step_id,
        STEP_ROW,
        "accounting",
        {
            "exit_code": obs.exit_code,
            "native_state": obs.native_state,
            "cpu_time_s": obs.cpu_time_s,
            "max_rss_kb": obs.max_rss_kb,
            "elapsed_s": obs.elapsed_s,
        },
    )


def store_task_results(s: Session, step_id: int, obs: TaskObservation) -> None:
    """An array task's validation report and extracted data, once it has any."""
    if obs.validation is not None or obs.extracted is not None:
        upsert_result(s, step_id, obs.task_index, "validation", obs.validation)
        store_extract(s, step_id, obs.task_index, obs.extracted)


def store_extract(s: Session, step_id: int, task_index: int, doc: dict[str, Any] | None) -> None:
    """An ``extract.json`` document: one row per analysis, plus the per-analysis errors."""
    if not doc:
        return
    analyses = doc.get("analyses")
    if isinstance(analyses, dict):
        for name, data in analyses.items():
            upsert_result(s, step_id, task_index, f"analysis:{name}", data)
        if doc.get("errors"):
            upsert_result(s, step_id, task_index, "extract_errors", doc["errors"])
    else:
        upsert_result(s, step_id, task_index, "extract", doc)


def upsert_result(s: Session, step_id: int, task_index: int, kind: str, data: Any) -> None:
    if data is None:
        return
    payload = data if isinstance(data, dict) else {"value": data}
    stmt = insert(ExtractedResult).values(
        step_id=step_id, task_index=task_index, kind=kind[:100], data=payload
    )
    s.execute(
        stmt.on_conflict_do_update(
            index_elements=["step_id", "task_index", "kind"], set_={"data": stmt.excluded.data}
        )
    )


def compute_analyses(s: Session, calc: Calculation) -> None:
    """Central half of the analyses; failures are recorded on the result, never raised."""
    if not calc.analyses:
        return
    try:
        with s.begin_nested():  # a failure must not poison the harvest's transaction
            compute_for_calculation(s, calc)
    except Exception:
        log.exception("computing analyses of calculation %s failed", calc.id)


def step_inputs(s: Session, calc: Calculation) -> list[dict[str, Any]]:
    """One entry per job (chain step or sweep task), in order, with its extracted data."""
    steps = list(s.scalars(select(Step).where(Step.calculation_id == calc.id).order_by(Step.index)))
    rows = list(
        s.scalars(select(ExtractedResult).where(ExtractedResult.step_id.in_([x.id for x in steps])))
    )
    data: dict[tuple[int, int], dict[str, Any]] = {}
    errors: dict[tuple[int, int], dict[str, str]] = {}
    for r in rows:
        key = (r.step_id, r.task_index)
        if r.kind.startswith("analysis:"):
            data.setdefault(key, {})[r.kind.removeprefix("analysis:")] = r.data
        elif r.kind == "extract_errors":
            errors.setdefault(key, {}).update({k: str(v) for k, v in r.data.items()})
    out: list[dict[str, Any]] = []
    for step in steps:
        if step.array_size:
            tasks = s.scalars(
                select(ArrayTask).where(ArrayTask.step_id == step.id).order_by(ArrayTask.task_index)
            )
            for t in tasks:
                out.append(
                    {
                        "index": t.task_index,
                        "label": t.label,
                        "variant": dict(t.variant),
                        "data": data.get((step.id, t.task_index), {}),
                        "errors": errors.get((step.id, t.task_index), {}),
                    }
                )
        else:
            out.append(
                {
                    "index": step.index,
                    "label": step.label,
                    "variant": dict(step.spec.get("variant", {})),
                    "data": data.get((step.id, -1), {}),
                    "errors": errors.get((step.id, -1), {}),
                    "step_id": step.id,
                    "state": step.state.value,
                    "reason": step.state_reason or "",
                    "meta": dict(step.spec.get("ladder") or {}),
                }
            )
    return out


def compute_for_calculation(s: Session, calc: Calculation) -> dict[str, dict[str, Any]]:
    from analyses.pipeline import compute_all

    results = compute_all(list(calc.analyses), step_inputs(s, calc), code=calc.code)
    for name, result in results.items():
        error = result.get("error") if isinstance(result, dict) else None
        stmt = insert(AnalysisResult).values(
            calculation_id=calc.id,
            analysis=name[:100],
            status="error" if error else "ok",
            message=str(error)[:4000] if error else None,
            data=result,
        )
        s.execute(
            stmt.on_conflict_do_update(
                index_elements=["calculation_id", "analysis"],
                set_={
                    "status": stmt.excluded.status,
                    "message": stmt.excluded.message,
                    "data": stmt.excluded.data,
                },
            )
        )
    return results
