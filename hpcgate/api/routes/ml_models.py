"""ML models and predictions on the main API.

* ``/ml/models``: the registry the portal lists. Every user reads it (environment names
  only); admins register, edit and delete models, and read the whole registration.
* ``/ml-api/...``: what the ML-API calls with its own API key (``MlApiKey``): read the
  registrations (environment included) and report each model's state and health.
* ``/predictions`` and ``/calculations/{id}/predictions``: predictions stored against the
  calculation they were made for (written only by the ML-API's key or an admin), returned
  next to that calculation's observed outcome (the validator's verdict, SCF iterations and
  total energy per step) with a comparison.

The main API owns these rows; the containers themselves are the ML-API's business
(docs/ml-api.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from hpcgate.api.deps import CurrentUser, MayManageModels, MlApiKey, PredictionWriter, SessionDep
from hpcgate.api.schemas.ml import (
    ACTIVE_MODEL_STATES,
    CalculationPredictions,
    ComparedValue,
    MlModelConfig,
    MlModelCreate,
    MlModelOut,
    MlModelUpdate,
    MlStateReport,
    OutcomeOut,
    PredictionComparison,
    PredictionCreate,
    PredictionOut,
)
from hpcgate.db.models import Calculation, ExtractedResult, Step, User
from hpcgate.db.models.ml import MlModel, Prediction
from hpcgate.errors import Conflict, NotFound

router = APIRouter(prefix="/ml/models", tags=["ml-models"])
ml_api_router = APIRouter(prefix="/ml-api", tags=["ml-api"])
predictions_router = APIRouter(tags=["predictions"])
# mounted by hpcgate/api/routes/engine_routers.py
ROUTERS = [router, ml_api_router, predictions_router]

ModelId = Annotated[int, Path(ge=1, le=2**63 - 1)]
CalcId = Annotated[int, Path(ge=1, le=2**63 - 1)]
COMPARED_KEYS = ("converged", "scf_iterations", "energy_total_ev")


def _get_model(session: Session, model_id: int) -> MlModel:
    model = session.get(MlModel, model_id)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    return model


def _out(model: MlModel) -> MlModelOut:
    out = MlModelOut.model_validate(model)
    out.environment_keys = sorted(model.environment)
    return out


def _config(model: MlModel) -> MlModelConfig:
    return MlModelConfig(**_out(model).model_dump(), environment=dict(model.environment))


# ------------------------------------------------------------------------ the registry
@router.get("", response_model=list[MlModelOut])
def list_models(
    user: CurrentUser,
    session: SessionDep,
    name: Annotated[str | None, Query(max_length=100)] = None,
) -> list[MlModelOut]:
    stmt = select(MlModel).order_by(MlModel.name, MlModel.version, MlModel.id)
    if name:
        stmt = stmt.where(MlModel.name == name.replace("\x00", ""))
    return [_out(m) for m in session.scalars(stmt)]


@router.post("", response_model=MlModelConfig, status_code=201)
def register_model(
    body: MlModelCreate, admin: MayManageModels, session: SessionDep
) -> MlModelConfig:
    exists = session.scalar(
        select(MlModel.id).where(MlModel.name == body.name, MlModel.version == body.version)
    )
    if exists is not None:
        raise Conflict(f"model {body.name} {body.version} is already registered (id {exists})")
    model = MlModel(
        name=body.name,
        version=body.version,
        image=body.image,
        description=body.description,
        resources=body.resources.model_dump(exclude_none=True),
        environment=dict(body.environment),
    )
    session.add(model)
    session.flush()
    session.refresh(model)
    return _config(model)


@router.get("/{model_id}", response_model=MlModelOut)
def get_model(model_id: ModelId, user: CurrentUser, session: SessionDep) -> MlModelOut:
    return _out(_get_model(session, model_id))


@router.get("/{model_id}/config", response_model=MlModelConfig)
def get_model_config(
    model_id: ModelId, admin: MayManageModels, session: SessionDep
) -> MlModelConfig:
    return _config(_get_model(session, model_id))


@router.patch("/{model_id}", response_model=MlModelConfig)
def update_model(
    model_id: ModelId, body: MlModelUpdate, admin: MayManageModels, session: SessionDep
) -> MlModelConfig:
    """Takes effect at the model's next run (the ML-API reads the registration then)."""
    model = _get_model(session, model_id)
    if body.image is not None:
        model.image = body.image
    if body.description is not None:
        model.description = body.description
    if body.resources is not None:
        model.resources = body.resources.model_dump(exclude_none=True)
    if body.environment is not None:
        model.environment = dict(body.environment)
    session.flush()
    session.refresh(model)
    return _config(model)


@router.delete("/{model_id}", status_code=204)
def delete_model(model_id: ModelId, admin: MayManageModels, session: SessionDep) -> Response:
    """Refused while the ML-API runs it (stop it there first); its predictions go too."""
    model = _get_model(session, model_id)
    if model.state in ACTIVE_MODEL_STATES:
        raise Conflict(f"model {model_id} is {model.state}: stop it in the ML-API first")
    session.delete(model)
    return Response(status_code=204)


# ------------------------------------------------------------------------ the ML-API's side
@ml_api_router.get("/models", response_model=list[MlModelConfig])
def ml_api_models(key: MlApiKey, session: SessionDep) -> list[MlModelConfig]:
    return [_config(m) for m in session.scalars(select(MlModel).order_by(MlModel.id))]


@ml_api_router.get("/models/{model_id}", response_model=MlModelConfig)
def ml_api_model(model_id: ModelId, key: MlApiKey, session: SessionDep) -> MlModelConfig:
    return _config(_get_model(session, model_id))


@ml_api_router.put("/models/{model_id}/state", response_model=MlModelOut)
def report_state(
    model_id: ModelId, body: MlStateReport, key: MlApiKey, session: SessionDep
) -> MlModelOut:
    model = session.get(MlModel, model_id, with_for_update=True)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    model.state = body.state
    model.health = body.health
    model.restarts = body.restarts
    model.last_error = body.last_error
    model.last_reported_at = datetime.now(UTC)
    session.flush()
    session.refresh(model)
    return _out(model)


# ------------------------------------------------------------------------ predictions
@predictions_router.post("/predictions", response_model=PredictionOut, status_code=201)
def store_prediction(
    body: PredictionCreate, author: PredictionWriter, session: SessionDep
) -> Prediction:
    """Written by the ML-API (for the user it names) or an admin, never by a user directly."""
    _get_model(session, body.model_id)
    if body.calculation_id is not None and session.get(Calculation, body.calculation_id) is None:
        raise NotFound(f"calculation {body.calculation_id} not found")
    user_id = body.user_id if body.user_id is not None else author.admin_id
    if user_id is not None and session.get(User, user_id) is None:
        raise NotFound(f"user {user_id} not found")
    prediction = Prediction(
        model_id=body.model_id,
        calculation_id=body.calculation_id,
        user_id=user_id,
        request=body.request,
        response=body.response,
    )
    session.add(prediction)
    session.flush()
    session.refresh(prediction)
    return prediction


def _outcomes(session: Session, calc: Calculation) -> list[OutcomeOut]:
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
            raw = data.get("numbers")
            numbers: dict[str, Any] = raw if isinstance(raw, dict) else {}
            iters = numbers.get("scf_iterations_last")
            energy = numbers.get("energy_total_ev")
            converged = data.get("converged")
            out.append(
                OutcomeOut(
                    step_index=step.index,
                    task_index=task_index,
                    label=label,
                    state=state,
                    status=str(data["status"]) if data.get("status") is not None else None,
                    converged=converged if isinstance(converged, bool) else None,
                    scf_iterations=iters if isinstance(iters, int) else None,
                    energy_total_ev=float(energy) if isinstance(energy, int | float) else None,
                )
            )
    return out


def _instances(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The predicted instances of a model answer (``{"predictions": [...]}`` or one object)."""
    preds = response.get("predictions")
    if isinstance(preds, list):
        return [p if isinstance(p, dict) else {"value": p} for p in preds]
    return [response]


def _compare(predicted: dict[str, Any], outcome: OutcomeOut) -> dict[str, ComparedValue]:
    out: dict[str, ComparedValue] = {}
    for key in COMPARED_KEYS:
        guess, actual = predicted.get(key), getattr(outcome, key)
        if guess is None or actual is None:
            continue
        if isinstance(actual, bool):
            if isinstance(guess, bool):
                out[key] = ComparedValue(predicted=guess, actual=actual, agrees=guess == actual)
        elif isinstance(guess, int | float) and not isinstance(guess, bool):
            out[key] = ComparedValue(
                predicted=guess, actual=actual, error=round(float(actual) - float(guess), 6)
            )
    return out


def compare_prediction(
    response: dict[str, Any], outcomes: list[OutcomeOut]
) -> list[dict[str, ComparedValue]]:
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


@predictions_router.get(
    "/calculations/{calc_id}/predictions", response_model=CalculationPredictions
)
def calculation_predictions(
    calc_id: CalcId,
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> CalculationPredictions:
    """Predictions made for a calculation, newest first, next to what really happened."""
    calc = session.get(Calculation, calc_id)
    if calc is None:
        raise NotFound(f"calculation {calc_id} not found")
    outcomes = _outcomes(session, calc)
    rows = session.execute(
        select(Prediction, MlModel.name, MlModel.version)
        .join(MlModel, MlModel.id == Prediction.model_id)
        .where(Prediction.calculation_id == calc_id)
        .order_by(Prediction.created_at.desc(), Prediction.id.desc())
        .limit(limit)
    ).all()
    predictions = [
        PredictionComparison(
            **PredictionOut.model_validate(p).model_dump(),
            model_name=name,
            model_version=version,
            comparison=compare_prediction(p.response, outcomes),
        )
        for p, name, version in rows
    ]
    return CalculationPredictions(
        calculation_id=calc.id,
        calculation_state=calc.state.value,
        code=calc.code,
        outcomes=outcomes,
        predictions=predictions,
    )
