"""ML models and predictions on the main API.

* ``/ml/models``: the registry the portal lists. Every user reads it (environment names
  only); admins register, edit and delete models, and read the whole registration.
* ``/ml-api/...``: what the ML-API calls with its own API key (``MlApiKey``): read the
  registrations (environment included) and report each model's state and health.
* ``/predictions`` and ``/calculations/{id}/predictions``: predictions stored against the
  calculation they were made for (written only by the ML-API's key or an admin), returned
  next to that calculation's observed outcome with a comparison.

The rules and queries live in ``services/ml_models.py`` and ``services/predictions.py``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from hpcgate.api.deps import CurrentUser, MayManageModels, MlApiKey, PredictionWriter, SessionDep
from hpcgate.api.schemas.ml import (
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
from hpcgate.db.models.ml import MlModel, Prediction
from hpcgate.services import ml_models as svc
from hpcgate.services import predictions

router = APIRouter(prefix="/ml/models", tags=["ml-models"])
ml_api_router = APIRouter(prefix="/ml-api", tags=["ml-api"])
predictions_router = APIRouter(tags=["predictions"])

ModelId = Annotated[int, Path(ge=1, le=2**63 - 1)]
CalcId = Annotated[int, Path(ge=1, le=2**63 - 1)]


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
    return [_out(m) for m in svc.list_models(session, name)]


@router.post("", response_model=MlModelConfig, status_code=201)
def register_model(
    body: MlModelCreate, admin: MayManageModels, session: SessionDep
) -> MlModelConfig:
    model = svc.register_model(
        session,
        name=body.name,
        version=body.version,
        image=body.image,
        description=body.description,
        resources=body.resources.model_dump(exclude_none=True),
        environment=body.environment,
    )
    return _config(model)


@router.get("/{model_id}", response_model=MlModelOut)
def get_model(model_id: ModelId, user: CurrentUser, session: SessionDep) -> MlModelOut:
    return _out(svc.get_model(session, model_id))


@router.get("/{model_id}/config", response_model=MlModelConfig)
def get_model_config(
    model_id: ModelId, admin: MayManageModels, session: SessionDep
) -> MlModelConfig:
    return _config(svc.get_model(session, model_id))


@router.patch("/{model_id}", response_model=MlModelConfig)
def update_model(
    model_id: ModelId, body: MlModelUpdate, admin: MayManageModels, session: SessionDep
) -> MlModelConfig:
    """Takes effect at the model's next run (the ML-API reads the registration then)."""
    model = svc.update_model(
        session,
        model_id,
        image=body.image,
        description=body.description,
        resources=(
            body.resources.model_dump(exclude_none=True) if body.resources is not None else None
        ),
        environment=body.environment,
    )
    return _config(model)


@router.delete("/{model_id}", status_code=204)
def delete_model(model_id: ModelId, admin: MayManageModels, session: SessionDep) -> Response:
    """Refused while the ML-API runs it (stop it there first); its predictions go too."""
    svc.delete_model(session, model_id)
    return Response(status_code=204)


# ------------------------------------------------------------------------ the ML-API's side
@ml_api_router.get("/models", response_model=list[MlModelConfig])
def ml_api_models(key: MlApiKey, session: SessionDep) -> list[MlModelConfig]:
    return [_config(m) for m in svc.all_models(session)]


@ml_api_router.get("/models/{model_id}", response_model=MlModelConfig)
def ml_api_model(model_id: ModelId, key: MlApiKey, session: SessionDep) -> MlModelConfig:
    return _config(svc.get_model(session, model_id))


@ml_api_router.put("/models/{model_id}/state", response_model=MlModelOut)
def report_state(
    model_id: ModelId, body: MlStateReport, key: MlApiKey, session: SessionDep
) -> MlModelOut:
    model = svc.report_state(
        session,
        model_id,
        state=body.state,
        health=body.health,
        restarts=body.restarts,
        last_error=body.last_error,
    )
    return _out(model)


# ------------------------------------------------------------------------ predictions
@predictions_router.post("/predictions", response_model=PredictionOut, status_code=201)
def store_prediction(
    body: PredictionCreate, author: PredictionWriter, session: SessionDep
) -> Prediction:
    """Written by the ML-API (for the user it names) or an admin, never by a user directly."""
    return predictions.store_prediction(
        session,
        model_id=body.model_id,
        calculation_id=body.calculation_id,
        user_id=body.user_id if body.user_id is not None else author.admin_id,
        request=body.request,
        response=body.response,
    )


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
    found = predictions.calculation_predictions(session, calc_id, limit)
    calc = found.calculation
    return CalculationPredictions(
        calculation_id=calc.id,
        calculation_state=calc.state.value,
        code=calc.code,
        outcomes=[OutcomeOut.model_validate(asdict(o)) for o in found.outcomes],
        predictions=[
            PredictionComparison(
                **PredictionOut.model_validate(p.prediction).model_dump(),
                model_name=p.model_name,
                model_version=p.model_version,
                comparison=[
                    {key: ComparedValue(**asdict(v)) for key, v in pair.items()}
                    for pair in p.comparison
                ],
            )
            for p in found.predictions
        ],
    )
