"""What ``compute`` returns: tables, graph series and summary numbers, as plain data.

``AnalysisOutput.to_dict()`` is what the API stores and the reports read, so every value
is made strict JSON here (numpy scalars to Python, NaN/inf to None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "SCHEMA_VERSION",
    "AnalysisOutput",
    "Column",
    "JSONDict",
    "Scalar",
    "Series",
    "Table",
    "json_scalar",
    "rounded",
    "to_jsonable",
]

#: Version of the extracted-data document and of ``AnalysisOutput.to_dict()``.
SCHEMA_VERSION = 1

JSONDict = dict[str, Any]
Scalar = float | int | str | bool | None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    unit: str = ""

    def header(self) -> str:
        return f"{self.name} [{self.unit}]" if self.unit else self.name


@dataclass(frozen=True, slots=True)
class Table:
    """A small table: rendered in reports, exported as CSV."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[list[Scalar]]

    def to_dict(self) -> JSONDict:
        return {
            "name": self.name,
            "title": self.title,
            "columns": [{"name": c.name, "unit": c.unit} for c in self.columns],
            "rows": [[json_scalar(v) for v in row] for row in self.rows],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Table:
        return cls(
            name=str(raw["name"]),
            title=str(raw.get("title", raw["name"])),
            columns=tuple(Column(str(c["name"]), str(c.get("unit", ""))) for c in raw["columns"]),
            rows=[list(r) for r in raw.get("rows", [])],
        )


SeriesKind = Literal["line", "scatter", "linepoints", "step"]


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a graph. Series sharing ``graph`` are drawn on the same axes.

    An empty ``label`` keeps the line out of the legend (the 40 bands of a band structure).
    """

    graph: str
    label: str
    x: Sequence[float | None]
    y: Sequence[float | None]
    x_label: str = "x"
    y_label: str = "y"
    x_unit: str = ""
    y_unit: str = ""
    graph_title: str = ""
    kind: SeriesKind = "line"
    y_scale: Literal["linear", "log", "symlog"] = "linear"
    #: Named positions on the x axis (high-symmetry points of a band structure).
    x_ticks: Sequence[float] = field(default_factory=list)
    x_tick_labels: Sequence[str] = field(default_factory=list)

    def to_dict(self) -> JSONDict:
        return {
            "graph": self.graph,
            "graph_title": self.graph_title,
            "label": self.label,
            "x": [json_scalar(v) for v in self.x],
            "y": [json_scalar(v) for v in self.y],
            "x_label": self.x_label,
            "y_label": self.y_label,
            "x_unit": self.x_unit,
            "y_unit": self.y_unit,
            "kind": self.kind,
            "y_scale": self.y_scale,
            "x_ticks": [json_scalar(v) for v in self.x_ticks],
            "x_tick_labels": list(self.x_tick_labels),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Series:
        return cls(
            graph=str(raw["graph"]),
            label=str(raw.get("label", "")),
            x=list(raw.get("x", [])),
            y=list(raw.get("y", [])),
            x_label=str(raw.get("x_label", "x")),
            y_label=str(raw.get("y_label", "y")),
            x_unit=str(raw.get("x_unit", "")),
            y_unit=str(raw.get("y_unit", "")),
            graph_title=str(raw.get("graph_title", "")),
            kind=raw.get("kind", "line"),
            y_scale=raw.get("y_scale", "linear"),
            x_ticks=list(raw.get("x_ticks", [])),
            x_tick_labels=[str(t) for t in raw.get("x_tick_labels", [])],
        )


@dataclass(frozen=True, slots=True)
class AnalysisOutput:
    """What ``compute`` returns; ``to_dict()`` is what the API stores and reports read."""

    name: str
    title: str
    tables: list[Table] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    summary: dict[str, Scalar] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: Structured result for clients that need more than tables (the ladder's I-V points,
    #: failed points and their reasons); only in ``to_dict()`` when not empty.
    data: JSONDict = field(default_factory=dict)

    def to_dict(self) -> JSONDict:
        out: JSONDict = {
            "schema": SCHEMA_VERSION,
            "name": self.name,
            "title": self.title,
            "tables": [t.to_dict() for t in self.tables],
            "series": [s.to_dict() for s in self.series],
            "summary": {k: json_scalar(v) for k, v in self.summary.items()},
            "notes": list(self.notes),
        }
        if self.data:
            out["data"] = to_jsonable(self.data)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> AnalysisOutput:
        return cls(
            name=str(raw["name"]),
            title=str(raw.get("title", raw["name"])),
            tables=[Table.from_dict(t) for t in raw.get("tables", [])],
            series=[Series.from_dict(s) for s in raw.get("series", [])],
            summary=dict(raw.get("summary", {})),
            notes=[str(n) for n in raw.get("notes", [])],
            data=dict(raw.get("data") or {}),
        )


def json_scalar(value: Any) -> Any:
    """numpy scalars to Python, NaN/inf to None (strict JSON has neither)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        return json_scalar(item())
    return value


def to_jsonable(value: Any) -> Any:
    """Recursively turn numpy arrays/scalars, tuples and paths into strict-JSON values."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if all(type(v) is float for v in value):  # fast path: spectra are long float lists
            return [v if math.isfinite(v) else None for v in value]
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and not isinstance(value, str | bytes):
        return to_jsonable(tolist())
    return json_scalar(value)


def rounded(values: Iterable[float], digits: int = 6) -> list[float | None]:
    """Round for transport (a JSON float costs ~20 bytes; 6 significant digits suffice)."""
    out: list[float | None] = []
    for v in values:
        f = float(v)
        out.append(float(f"{f:.{digits}g}") if math.isfinite(f) else None)
    return out
