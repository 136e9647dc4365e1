"""Report documents for a calculation (the plain dict ``analyses.report`` renders)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models import AnalysisResult, Calculation, Cluster, ExtractedResult, Step, User


def report_document(s: Session, calc: Calculation) -> dict[str, Any]:
    """Everything a report shows of a calculation: who ran what where, its inputs, the
    resources it used, each step's outcome and the analyses' results."""
    owner = s.get(User, calc.owner_id)
    cluster = s.get(Cluster, calc.cluster_id)
    steps = list(s.scalars(select(Step).where(Step.calculation_id == calc.id).order_by(Step.index)))
    step_ids = [st.id for st in steps]
    accounting = _step_results(s, step_ids, ExtractedResult.kind == "accounting")
    validation = _step_results(
        s,
        step_ids,
        ExtractedResult.kind == "validation",
        ExtractedResult.task_index == -1,
    )
    config = calc.configuration or {}
    return {
        "calculation": {
            "id": calc.id,
            "name": calc.name,
            "description": calc.description,
            "code": calc.code,
            "code_version": _code_version(validation),
            "kind": config.get("kind", "single"),
            "owner": owner.email if owner else None,
            "cluster": cluster.name if cluster else None,
            "queue": calc.logical_queue,
            "state": calc.state.value,
            "created_at": calc.created_at.isoformat() if calc.created_at else None,
            "finished_at": calc.finished_at.isoformat() if calc.finished_at else None,
        },
        "inputs": {
            "parameters": config.get("parameters", {}),
            "variants": config.get("variants", []),
            "files": {k: str(v) for k, v in (config.get("inputs") or {}).items()},
        },
        "resources": _resources(config, accounting),
        "steps": [
            _step(st, accounting.get(st.id) or {}, validation.get(st.id) or {}) for st in steps
        ],
        "analyses": _analyses(s, calc.id),
    }


def _step_results(s: Session, step_ids: list[int], *where: Any) -> dict[int, dict[str, Any]]:
    """The data of the extracted results of these steps that match ``where``, by step id."""
    rows = s.scalars(select(ExtractedResult).where(ExtractedResult.step_id.in_(step_ids), *where))
    return {r.step_id: r.data for r in rows}


def _code_version(validation: dict[int, dict[str, Any]]) -> str | None:
    """The code's version as the first validated step reported it."""
    return next(
        (
            str(v.get("numbers", {}).get("version"))
            for v in validation.values()
            if v.get("numbers", {}).get("version")
        ),
        None,
    )


def _resources(config: dict[str, Any], accounting: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """What was asked for, and what the steps used together (peak memory: the largest)."""
    cpu = sum(float(a.get("cpu_time_s") or 0) for a in accounting.values())
    elapsed = sum(int(a.get("elapsed_s") or 0) for a in accounting.values())
    rss = max((int(a.get("max_rss_kb") or 0) for a in accounting.values()), default=0)
    return {
        **(config.get("resources") or {}),
        "elapsed_s": elapsed,
        "cpu_hours": round(cpu / 3600, 4),
        "max_rss_mb": round(rss / 1024, 1),
    }


def _step(st: Step, accounting: dict[str, Any], validation: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": st.index,
        "label": st.label,
        "variant": st.spec.get("variant", {}),
        "state": st.state.value,
        "job_id": st.scheduler_job_id,
        "elapsed_s": accounting.get("elapsed_s"),
        "max_rss_mb": round((accounting.get("max_rss_kb") or 0) / 1024, 1),
        "validation": validation.get("status"),
    }


def _analyses(s: Session, calc_id: int) -> dict[str, Any]:
    rows = s.scalars(
        select(AnalysisResult)
        .where(AnalysisResult.calculation_id == calc_id)
        .order_by(AnalysisResult.analysis)
    )
    return {r.analysis: r.data for r in rows}
