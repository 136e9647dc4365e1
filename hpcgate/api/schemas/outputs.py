"""Raw outputs: a step's directory listing, and the agent's answers to relay requests."""

from __future__ import annotations

from pydantic import BaseModel, Field


class OutputEntryOut(BaseModel):
    name: str
    kind: str = Field(description="file, dir, link or other")
    size: int
    mtime: float = Field(description="seconds since the epoch")


class OutputListing(BaseModel):
    calculation_id: int
    step_index: int
    path: str = Field(description="the listed directory, relative to the step's directory")
    state: str
    stdout: str = Field(description="the file the live tail follows by default")
    entries: list[OutputEntryOut]
    truncated: bool


class RelayResult(BaseModel):
    """A listing (``entries``, ``truncated``) or a refusal (``error``, ``code``)."""

    entries: list[OutputEntryOut] | None = Field(default=None, max_length=10_000)
    truncated: bool = False
    error: str | None = Field(default=None, max_length=2000)
    code: str | None = Field(default=None, max_length=40)
