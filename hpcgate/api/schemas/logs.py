"""Log lines (service, worker, agents) as the API shows and accepts them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hpcgate.api.schemas import DbId, JsonObject, SafeStr

Level = Literal["debug", "info", "warning", "error", "critical"]


def _aware(value: datetime | None) -> datetime | None:
    """Naive timestamps from agents are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class LogLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ts: datetime
    source: str
    level: str
    message: str
    calculation_id: int | None
    cluster_id: int | None
    context: dict[str, Any]


class LogPage(BaseModel):
    items: list[LogLineOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next (older) page; null on the last page"
    )


class AgentLogLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ts: Annotated[datetime | None, AfterValidator(_aware)] = None
    level: Level = "info"
    message: Annotated[SafeStr, Field(max_length=16_000)]
    calculation_id: DbId | None = None
    context: JsonObject = Field(default_factory=dict)


class AgentLogBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lines: Annotated[list[AgentLogLine], Field(min_length=1, max_length=1000)]


class AgentLogAccepted(BaseModel):
    accepted: int


class LogsDeleted(BaseModel):
    deleted: int
