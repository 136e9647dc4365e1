"""How well a model predicts DFT: its stored predictions paired with the calculations' own
numbers, and their errors (``GET /ml/models/{id}/accuracy``, docs/ml-api.md).

A pair is one predicted value (``PredictionValue``, recorded when the prediction was
stored) of a prediction made for a calculation, and the DFT value of the same property in
the extracted results of the step it is about (``domain/dft_properties.py`` says where, per
code; ``domain/accuracy.pick_unit`` which step). Only pairs where both exist count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from hpcgate.db.models import ArrayTask, Calculation, ExtractedResult, Step
from hpcgate.db.models.ml import MlModel, Prediction, PredictionValue
from hpcgate.domain.accuracy import Metrics, Period, PeriodMetrics, metrics, per_period, pick_unit
from hpcgate.domain.dft_properties import (
    PROPERTIES,
    SOURCE_KINDS,
    PropertySpec,
    codes_of,
    dft_value,
)
from hpcgate.errors import InvalidInput
from hpcgate.services.ml_models import get_model


@dataclass(frozen=True)
class Pair:
    prediction_id: int
    calculation_id: int
    calculation_name: str
    code: str
    molecule_id: int | None
    step_index: int
    task_index: int
    label: str
    predicted: float
    dft: float
    error: float  # dft - predicted
    predicted_at: datetime


@dataclass(frozen=True)
class Accuracy:
    model: MlModel
    prop: PropertySpec
    code: str | None
    period: Period
    overall: Metrics
    periods: list[PeriodMetrics]
    pairs: list[Pair]  # newest ``limit`` pairs, oldest first
    pairs_total: int


@dataclass(frozen=True)
class _Unit:
    """One step, or one array task, of a calculation, with its results (kind -> data)."""

    step_index: int
    task_index: int
    label: str
    results: dict[str, dict[str, Any]]

    @property
    def judged(self) -> bool:
        return self.results.get("validation", {}).get("status") is not None


def model_accuracy(
    session: Session,
    model_id: int,
    *,
    prop: str,
    code: str | None = None,
    period: Period = Period.MONTH,
    limit: int = 2000,
) -> Accuracy:
    """The pairs of a model's predictions of ``prop`` (for calculations of ``code``, or of
    every code with a DFT source for it) and their MAE/RMSE, overall and per ``period``."""
    model = get_model(session, model_id)
    spec = PROPERTIES.get(prop)
    if spec is None:
        raise InvalidInput(f"unknown property {prop!r}; known: {', '.join(sorted(PROPERTIES))}")
    codes = codes_of(prop)
    if code is not None and code not in codes:
        raise InvalidInput(f"no DFT value of {prop} for code {code!r}; codes: {', '.join(codes)}")
    pairs = find_pairs(session, model_id, prop, [code] if code else codes)
    errors = [(p.predicted_at, p.error) for p in pairs]
    return Accuracy(
        model=model,
        prop=spec,
        code=code,
        period=period,
        overall=metrics(e for _, e in errors),
        periods=per_period(errors, period),
        pairs=pairs[-limit:],
        pairs_total=len(pairs),
    )


def _values_query(
    model_id: int, prop: str, codes: list[str]
) -> Select[int, int, int, float, datetime, int, str, str, int | None]:
    return (
        select(
            PredictionValue.prediction_id,
            PredictionValue.instance_index,
            PredictionValue.instances,
            PredictionValue.value,
            Prediction.created_at,
            Calculation.id,
            Calculation.name,
            Calculation.code,
            Calculation.molecule_id,
        )
        .join(Prediction, Prediction.id == PredictionValue.prediction_id)
        .join(Calculation, Calculation.id == Prediction.calculation_id)
        .where(
            Prediction.model_id == model_id,
            PredictionValue.property == prop,
            Calculation.code.in_(codes),
        )
    )


def find_pairs(session: Session, model_id: int, prop: str, codes: list[str]) -> list[Pair]:
    """Every (predicted, DFT) pair of the model for ``prop``, by prediction time."""
    values = _values_query(model_id, prop, codes)
    rows = session.execute(
        values.order_by(Prediction.created_at, Prediction.id, PredictionValue.instance_index)
    ).all()
    calc_ids = values.with_only_columns(Calculation.id).distinct().scalar_subquery()
    units = _units(session, calc_ids)
    out = []
    for pred_id, index, instances, value, at, calc_id, name, code, molecule_id in rows:
        calc_units = units.get(calc_id, [])
        last = max((i for i, u in enumerate(calc_units) if u.judged), default=None)
        chosen = pick_unit(index, instances, len(calc_units), last)
        if chosen is None:
            continue
        unit = calc_units[chosen]
        dft = dft_value(prop, code, unit.results)
        if dft is None:
            continue
        out.append(
            Pair(
                prediction_id=pred_id,
                calculation_id=calc_id,
                calculation_name=name,
                code=code,
                molecule_id=molecule_id,
                step_index=unit.step_index,
                task_index=unit.task_index,
                label=unit.label,
                predicted=value,
                dft=dft,
                error=dft - value,
                predicted_at=at,
            )
        )
    return out


def _units(session: Session, calc_ids: Any) -> Mapping[int, list[_Unit]]:
    """Per calculation, its steps (array steps: their tasks) in order, with their results."""
    steps = session.execute(
        select(Step.id, Step.calculation_id, Step.index, Step.label)
        .where(Step.calculation_id.in_(calc_ids))
        .order_by(Step.calculation_id, Step.index)
    ).all()
    step_ids = select(Step.id).where(Step.calculation_id.in_(calc_ids)).scalar_subquery()
    tasks: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for step_id, task_index, label in session.execute(
        select(ArrayTask.step_id, ArrayTask.task_index, ArrayTask.label)
        .where(ArrayTask.step_id.in_(step_ids))
        .order_by(ArrayTask.step_id, ArrayTask.task_index)
    ):
        tasks[step_id].append((task_index, label))
    results: dict[tuple[int, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for step_id, task_index, kind, data in session.execute(
        select(
            ExtractedResult.step_id,
            ExtractedResult.task_index,
            ExtractedResult.kind,
            ExtractedResult.data,
        ).where(
            ExtractedResult.step_id.in_(step_ids),
            ExtractedResult.kind.in_(sorted(SOURCE_KINDS | {"validation"})),
        )
    ):
        results[(step_id, task_index)][kind] = data if isinstance(data, dict) else {}
    out: dict[int, list[_Unit]] = defaultdict(list)
    for step_id, calc_id, index, label in steps:
        for task_index, task_label in tasks.get(step_id) or [(-1, label)]:
            out[calc_id].append(
                _Unit(index, task_index, task_label, results[(step_id, task_index)])
            )
    return out
