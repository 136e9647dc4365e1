"""ML models (registered by admins, run by the ML-API) and predictions, as the API shows them.

A registration names a container image that honours the model contract (docs/models.md:
``GET /ping`` and ``POST /invocations`` on port 8080), its resources and environment. The
ML-API reports each model's state and health here; predictions are stored against the
calculation they were made for so that a later result can be compared with them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hpcgate.api.schemas import DbId, JsonObject, SafeStr

MODEL_STATES = ("registered", "starting", "running", "restarting", "stopped", "failed")
HEALTH_STATES = ("unknown", "healthy", "unhealthy")

ModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        examples=["qe-scf-convergence"],
    ),
]
ModelVersion = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
]
# A local image reference: [host[:port]/]path[:tag][@digest]; never pulled by the ML-API.
ImageRef = Annotated[
    str,
    Field(
        min_length=1,
        max_length=500,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$",
        examples=["localhost/hpcgate-example-model:1.0.0"],
    ),
]
EnvName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
EnvValue = Annotated[SafeStr, Field(max_length=4096)]


def _env_ok(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 100:
        raise ValueError("at most 100 environment variables")
    return value


Environment = Annotated[dict[EnvName, EnvValue], AfterValidator(_env_ok)]


class MlResources(BaseModel):
    """Container limits; unset means the engine's default (no limit)."""

    model_config = ConfigDict(extra="forbid")

    cpus: float | None = Field(default=None, gt=0, le=256, examples=[1.0])
    memory_mb: int | None = Field(default=None, ge=16, le=1 << 20, examples=[512])
    pids: int | None = Field(default=None, ge=16, le=32768)


class MlModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ModelName
    version: ModelVersion
    image: ImageRef
    description: Annotated[SafeStr, Field(max_length=20000)] = ""
    resources: MlResources = Field(default_factory=MlResources)
    environment: Environment = Field(default_factory=dict)


class MlModelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageRef | None = None
    description: Annotated[SafeStr, Field(max_length=20000)] | None = None
    resources: MlResources | None = None
    environment: Environment | None = None


class MlModelOut(BaseModel):
    """What every user sees: environment *names* only (values may be credentials)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    version: str
    image: str
    description: str
    resources: dict[str, Any]
    environment_keys: list[str] = Field(default_factory=list)
    state: str
    health: str
    restarts: int
    last_error: str | None
    last_reported_at: datetime | None
    created_at: datetime
    updated_at: datetime


class MlModelConfig(MlModelOut):
    """The whole registration, environment values included (admins, the ML-API)."""

    environment: dict[str, Any]


class MlStateReport(BaseModel):
    """What the ML-API reports after every change of a model's state or health."""

    model_config = ConfigDict(extra="forbid")

    state: Literal["registered", "starting", "running", "restarting", "stopped", "failed"]
    health: Literal["unknown", "healthy", "unhealthy"] = "unknown"
    restarts: int = Field(default=0, ge=0, le=1_000_000)
    last_error: Annotated[SafeStr, Field(max_length=4000)] | None = None


class PredictionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: DbId
    calculation_id: DbId | None = None
    # The user the prediction was made for (the ML-API names its caller; an admin: default self).
    user_id: DbId | None = None
    request: JsonObject = Field(default_factory=dict)
    response: JsonObject = Field(default_factory=dict)


class PredictionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    model_id: int
    calculation_id: int | None
    user_id: int | None
    request: dict[str, Any]
    response: dict[str, Any]
    created_at: datetime


class OutcomeOut(BaseModel):
    """The observed result of one step (or array task) of a calculation."""

    step_index: int
    task_index: int
    label: str
    state: str
    status: str | None  # the validator's verdict: converged, scf_not_converged...
    converged: bool | None
    scf_iterations: int | None
    energy_total_ev: float | None


class ComparedValue(BaseModel):
    predicted: Any
    actual: Any
    agrees: bool | None = None  # booleans (converged)
    error: float | None = None  # numbers: actual - predicted


class PredictionComparison(PredictionOut):
    model_name: str | None
    model_version: str | None
    # one entry per predicted instance, paired with the outcome it is compared to
    comparison: list[dict[str, ComparedValue]]


class CalculationPredictions(BaseModel):
    calculation_id: int
    calculation_state: str
    code: str
    outcomes: list[OutcomeOut]
    predictions: list[PredictionComparison]
