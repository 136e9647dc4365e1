"""Report documents for a calculation (the plain dict ``analyses.report`` renders)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models import AnalysisResult, Calculation, Cluster, ExtractedResult, Step, User


def report_document(s: Session, calc: Calculation) -> dict[str, Any]:
    owner = s.get(User, calc.owner_id)
    cluster = s.get(Cluster, calc.cluster_id)
    steps = list(s.scalars(select(Step).where(Step.calculation_id == calc.id).order_by(Step.index)))
    accounting = {
        r.step_id: r.data
        for r in s.scalars(
            select(ExtractedResult).where(
                ExtractedResult.step_id.in_([st.id for st in steps]),
                ExtractedResult.kind == "accounting",
            )
        )
    }
    validation = {
        r.step_id: r.data
        for r in s.scalars(
            select(ExtractedResult).where(
                ExtractedResult.step_id.in_([st.id for st in steps]),
                ExtractedResult.kind == "validation",
                ExtractedResult.task_index == -1,
            )
        )
    }
    version = next(
        (
            str(v.get("numbers", {}).get("version"))
            for v in validation.values()
            if v.get("numbers", {}).get("version")
        ),
        None,
    )
    cpu = sum(float(a.get("cpu_time_s") or 0) for a in accounting.values())
    elapsed = sum(int(a.get("elapsed_s") or 0) for a in accounting.values())
    rss = max((int(a.get("max_rss_kb") or 0) for a in accounting.values()), default=0)
    config = calc.configuration or {}
    return {
        "calculation": {
            "id": calc.id,
            "name": calc.name,
            "description": calc.description,
            "code": calc.code,
            "code_version": version,
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
        "resources": {
            **(config.get("resources") or {}),
            "elapsed_s": elapsed,
            "cpu_hours": round(cpu / 3600, 4),
            "max_rss_mb": round(rss / 1024, 1),
        },
        "steps": [
            {
                "index": st.index,
                "label": st.label,
                "variant": st.spec.get("variant", {}),
                "state": st.state.value,
                "job_id": st.scheduler_job_id,
                "elapsed_s": (accounting.get(st.id) or {}).get("elapsed_s"),
                "max_rss_mb": round(
                    ((accounting.get(st.id) or {}).get("max_rss_kb") or 0) / 1024, 1
                ),
                "validation": (validation.get(st.id) or {}).get("status"),
            }
            for st in steps
        ],
        "analyses": {
            r.analysis: r.data
            for r in s.scalars(
                select(AnalysisResult)
                .where(AnalysisResult.calculation_id == calc.id)
                .order_by(AnalysisResult.analysis)
            )
        },
    }
