"""Predictions of ML models, stored against the calculation they were made for and compared
with what really happened (the validator's verdict, SCF iterations, total energy per step).

Written only by the ML-API's key or an admin; read next to the calculation's outcomes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, ExtractedResult, Step, User
from hpcgate.db.models.ml import MlModel, Prediction, PredictionValue
from hpcgate.domain.dft_properties import predicted_values
from hpcgate.errors import NotFound
from hpcgate.services.ml_models import get_model

COMPARED_KEYS = ("converged", "scf_iterations", "energy_total_ev")


@dataclass(frozen=True)
class Outcome:
    """The observed result of one step (or array task) of a calculation."""

    step_index: int
    task_index: int
    label: str
    state: str
    status: str | None  # the validator's verdict: converged, scf_not_converged...
    converged: bool | None
    scf_iterations: int | None
    energy_total_ev: float | None


class ObservedOutcome(Protocol):
    """What a comparison reads of an outcome (``Outcome`` or its API schema)."""

    @property
    def status(self) -> str | None: ...


@dataclass(frozen=True)
class Compared:
    predicted: Any
    actual: Any
    agrees: bool | None = None  # booleans (converged)
    error: float | None = None  # numbers: actual - predicted


@dataclass(frozen=True)
class StoredPrediction:
    """A prediction with its model's name and version and its comparison per instance."""

    prediction: Prediction
    model_name: str | None
    model_version: str | None
    comparison: list[dict[str, Compared]]


@dataclass(frozen=True)
class CalculationPredictions:
    calculation: Calculation
    outcomes: list[Outcome]
    predictions: list[StoredPrediction]


def store_prediction(
    session: Session,
    *,
    model_id: int,
    calculation_id: int | None,
    user_id: int | None,
    request: dict[str, Any],
    response: dict[str, Any],
) -> Prediction:
    """Store a prediction; every id it names must exist. The numbers it predicts for known
    properties are recorded too (``PredictionValue``: what accuracy against DFT reads)."""
    get_model(session, model_id)
    if calculation_id is not None and session.get(Calculation, calculation_id) is None:
        raise NotFound(f"calculation {calculation_id} not found")
    if user_id is not None and session.get(User, user_id) is None:
        raise NotFound(f"user {user_id} not found")
    prediction = Prediction(
        model_id=model_id,
        calculation_id=calculation_id,
        user_id=user_id,
        request=request,
        response=response,
    )
    session.add(prediction)
    session.flush()
    session.add_all(
        PredictionValue(
            prediction_id=prediction.id,
            property=prop,
            instance_index=index,
            instances=instances,
            value=value,
        )
        for prop, index, instances, value in predicted_values(response)
    )
    session.flush()
    session.refresh(prediction)
    return prediction


def calculation_predictions(session: Session, calc_id: int, limit: int) -> CalculationPredictions:
    """Predictions made for a calculation, newest first, next to what really happened."""
    calc = session.get(Calculation, calc_id)
    if calc is None:
        raise NotFound(f"calculation {calc_id} not found")
    outcomes = calculation_outcomes(session, calc)
    rows = session.execute(
        select(Prediction, MlModel.name, MlModel.version)
        .join(MlModel, MlModel.id == Prediction.model_id)
        .where(Prediction.calculation_id == calc_id)
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
        .limit(limit)
    ).all()
    predictions = [
        StoredPrediction(p, name, version, compare_prediction(p.response, outcomes))
        for p, name, version in rows
    ]
    return CalculationPredictions(calc, outcomes, predictions)


def calculation_outcomes(session: Session, calc: Calculation) -> list[Outcome]:
    """One outcome per step, or per array task of an array step, in step order."""
    steps = list(
        session.scalars(select(Step).where(Step.calculation_id == calc.id).order_by(Step.index))
    )
    if not steps:
        return []
    results = {
        (r.step_id, r.task_index): r.data
        for r in session.scalars(
            select(ExtractedResult).where(
                ExtractedResult.step_id.in_([s.id for s in steps]),
                ExtractedResult.kind == "validation",
            )
        )
    }
    out = []
    for step in steps:
        units: list[tuple[int, str, str]] = (
            [(t.task_index, t.label, t.state.value) for t in step.tasks]
            if step.tasks
            else [(-1, step.label, step.state.value)]
        )
        for task_index, label, state in units:
            data: dict[str, Any] = results.get((step.id, task_index)) or {}
            out.append(_outcome(step.index, task_index, label, state, data))
    return out


def _outcome(
    step_index: int, task_index: int, label: str, state: str, data: dict[str, Any]
) -> Outcome:
    """An outcome from a validation result's data (absent or odd values become None)."""
    raw = data.get("numbers")
    numbers: dict[str, Any] = raw if isinstance(raw, dict) else {}
    iters = numbers.get("scf_iterations_last")
    energy = numbers.get("energy_total_ev")
    converged = data.get("converged")
    return Outcome(
        step_index=step_index,
        task_index=task_index,
        label=label,
        state=state,
        status=str(data["status"]) if data.get("status") is not None else None,
        converged=converged if isinstance(converged, bool) else None,
        scf_iterations=iters if isinstance(iters, int) else None,
        energy_total_ev=float(energy) if isinstance(energy, int | float) else None,
    )


def _instances(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The predicted instances of a model answer (``{"predictions": [...]}`` or one object)."""
    preds = response.get("predictions")
    if isinstance(preds, list):
        return [p if isinstance(p, dict) else {"value": p} for p in preds]
    return [response]


def _compare(predicted: dict[str, Any], outcome: ObservedOutcome) -> dict[str, Compared]:
    out: dict[str, Compared] = {}
    for key in COMPARED_KEYS:
        guess, actual = predicted.get(key), getattr(outcome, key)
        if guess is None or actual is None:
            continue
        if isinstance(actual, bool):
            if isinstance(guess, bool):
                out[key] = Compared(predicted=guess, actual=actual, agrees=guess == actual)
        elif isinstance(guess, int | float) and not isinstance(guess, bool):
            out[key] = Compared(
                predicted=guess, actual=actual, error=round(float(actual) - float(guess), 6)
            )
    return out


def compare_prediction(
    response: dict[str, Any], outcomes: Sequence[ObservedOutcome]
) -> list[dict[str, Compared]]:
    """Pair predicted instances with outcomes: one to one when the counts match, else
    every instance against the last step's outcome (a single-instance prediction of a chain
    is about its final result)."""
    judged = [o for o in outcomes if o.status is not None]
    instances = _instances(response)
    if not judged:
        return [{} for _ in instances]
    if len(instances) == len(outcomes):
        return [_compare(i, o) for i, o in zip(instances, outcomes, strict=True)]
    return [_compare(i, judged[-1]) for i in instances]
