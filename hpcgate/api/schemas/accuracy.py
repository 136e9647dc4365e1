"""A model's predictions against DFT (``GET /ml/models/{id}/accuracy``), as the API shows them."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


class PropertyOut(BaseModel):
    """A property predictions can be checked against DFT for, and the codes that have it."""

    name: str
    unit: str
    description: str
    codes: list[str]


class MetricsOut(BaseModel):
    """Errors are DFT - predicted; MAE, RMSE and bias are None without pairs."""

    n: int
    mae: float | None
    rmse: float | None
    bias: float | None


class PeriodMetricsOut(MetricsOut):
    start: date  # first day (UTC) of the day, ISO week or month


class PairOut(BaseModel):
    """One predicted value next to the DFT value of the step it is about."""

    prediction_id: int
    calculation_id: int
    calculation_name: str
    code: str
    molecule_id: int | None
    step_index: int
    task_index: int  # -1: not an array task
    label: str
    predicted: float
    dft: float
    error: float  # dft - predicted
    predicted_at: datetime


class ModelAccuracy(BaseModel):
    model_id: int
    model_name: str
    model_version: str
    property: PropertyOut
    code: str | None  # None: every code with a DFT value of the property
    period: str
    overall: MetricsOut
    periods: list[PeriodMetricsOut]
    pairs: list[PairOut]  # the newest ``limit`` pairs, oldest first
    pairs_total: int
    properties: list[PropertyOut]  # every property the API can check
