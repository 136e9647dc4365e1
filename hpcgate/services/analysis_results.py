"""The central half of the analyses: compute over a calculation's extracted data, store it.

Runs when a calculation completes (and on demand, e.g. after a plugin upgrade). Each
analysis result is stored with its status; one failing analysis never hides the others.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from hpcgate.db.models import AnalysisResult, ArrayTask, Calculation, ExtractedResult, Step


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
