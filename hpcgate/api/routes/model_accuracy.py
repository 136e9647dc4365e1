"""``GET /ml/models/{id}/accuracy``: a model's stored predictions against the DFT values of
the calculations they were made for (MAE/RMSE overall and per period, and the pairs).

Read like the model itself (``ml_model.read``); the pairing and the metrics live in
``services/prediction_accuracy.py``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path, Query

from hpcgate.api.deps import MayReadModels, SessionDep
from hpcgate.api.schemas.accuracy import (
    MetricsOut,
    ModelAccuracy,
    PairOut,
    PeriodMetricsOut,
    PropertyOut,
)
from hpcgate.domain.accuracy import Period
from hpcgate.domain.dft_properties import DEFAULT_PROPERTY, PROPERTIES, PropertySpec, codes_of
from hpcgate.services import prediction_accuracy

router = APIRouter(prefix="/ml/models", tags=["ml-models"])

ModelId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _property(spec: PropertySpec) -> PropertyOut:
    return PropertyOut(
        name=spec.name, unit=spec.unit, description=spec.description, codes=codes_of(spec.name)
    )


@router.get("/{model_id}/accuracy", response_model=ModelAccuracy)
def model_accuracy(
    model_id: ModelId,
    user: MayReadModels,
    session: SessionDep,
    property: Annotated[
        str, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
    ] = DEFAULT_PROPERTY,
    code: Annotated[
        str | None, Query(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")
    ] = None,
    period: Period = Period.MONTH,
    limit: Annotated[int, Query(ge=1, le=20_000)] = 2000,
) -> ModelAccuracy:
    """Pairs of (predicted, DFT) values of ``property`` for the model's predictions made for
    calculations (of ``code``), errors = DFT - predicted; 422 for a property or code without
    a DFT value."""
    found = prediction_accuracy.model_accuracy(
        session, model_id, prop=property, code=code, period=period, limit=limit
    )
    return ModelAccuracy(
        model_id=found.model.id,
        model_name=found.model.name,
        model_version=found.model.version,
        property=_property(found.prop),
        code=found.code,
        period=found.period.value,
        overall=MetricsOut(**asdict(found.overall)),
        periods=[PeriodMetricsOut(start=p.start, **asdict(p.metrics)) for p in found.periods],
        pairs=[PairOut(**asdict(p)) for p in found.pairs],
        pairs_total=found.pairs_total,
        properties=[_property(spec) for spec in PROPERTIES.values()],
    )
