"""The analysis plugin contract: extract on the cluster, compute centrally.

An analysis works in two phases, split by where the data lives:

* ``extract(run_dir, ctx)`` runs **on the cluster side**, inside the job script right after
  ``hpcgate validate``. It reads one step's output files and returns a *small* JSON-able
  dict (numbers, short lists: long arrays are cut to ``MAX_POINTS`` points). Only this
  dict travels back to the service; the raw outputs stay on scratch.
* ``compute(inputs)`` runs **centrally**, over the extracted dicts of every step of one
  calculation (a chain or sweep has one step per variant). It returns an
  :class:`AnalysisOutput`: tables, series for graphs and summary numbers, which the API
  stores and the report renders. It never touches files.

Analyses declare the analyses they ``require``; the selection a user makes is checked
against that graph (``analyses.graph.resolve``) before anything runs, and at extraction
time an analysis sees its requirements' data in ``ctx.upstream``.

Everything here is plain data (frozen dataclasses, dicts), so the API, the portal, the
agent and the reports can pass it around without ORM objects or sisl.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

__all__ = [
    "MAX_POINTS",
    "SCHEMA_VERSION",
    "Analysis",
    "AnalysisError",
    "AnalysisOutput",
    "Column",
    "ComputeInputs",
    "ExtractContext",
    "ExtractionError",
    "JSONDict",
    "Scalar",
    "Series",
    "StepInput",
    "Table",
]

#: Version of the extracted-data document and of ``AnalysisOutput.to_dict()``.
SCHEMA_VERSION = 1
#: Longest array an ``extract`` may return (energies of a spectrum, k-points of a band).
MAX_POINTS = 2000

JSONDict = dict[str, Any]
Scalar = float | int | str | bool | None


class AnalysisError(Exception):
    """An analysis cannot produce its result; the message is one line for a user."""


class ExtractionError(AnalysisError):
    """The run directory lacks what this analysis needs, or holds it in a form we can't read."""


# --------------------------------------------------------------------------- extraction side


def _empty() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class ExtractContext:
    """What ``extract`` knows besides the run directory.

    ``variant`` is the step's parameter set (``{"TS.Voltage": 0.25}``), ``files`` are
    optional hints naming the files the job wrote (``{"stdout": "au_100.out",
    "tbtrans_stdout": "tbt_au_100.out"}``) so plugins need not guess, ``options`` holds
    per-analysis options keyed by analysis name, ``upstream`` the data already extracted
    by the analyses this one requires. ``cache`` lets analyses of one extraction share a
    parsed file (the SIESTA stdout is scanned once for three analyses).
    """

    code: str
    variant: Mapping[str, Any] = field(default_factory=_empty)
    step_index: int = 0
    files: Mapping[str, str] = field(default_factory=_empty)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=_empty)
    upstream: Mapping[str, Mapping[str, Any]] = field(default_factory=_empty)
    cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def option(self, analysis: str, key: str, default: Any = None) -> Any:
        return self.options.get(analysis, {}).get(key, default)

    def with_upstream(self, upstream: Mapping[str, Mapping[str, Any]]) -> ExtractContext:
        """Same context (and the same cache) with the requirements' data of one analysis."""
        return ExtractContext(
            code=self.code,
            variant=self.variant,
            step_index=self.step_index,
            files=self.files,
            options=self.options,
            upstream=upstream,
            cache=self.cache,
        )


# --------------------------------------------------------------------------- compute side


@dataclass(frozen=True, slots=True)
class StepInput:
    """One step of a calculation as ``compute`` sees it: its variant and extracted data.

    ``state``/``reason`` (the step's state and why it ended so) and ``meta`` (what the plan
    says the step is, e.g. a TranSIESTA ladder's ``{"role": "device", "bias_v": 0.1}``) let
    an analysis report the steps that produced nothing, not only those that did.
    """

    index: int
    label: str = ""
    variant: Mapping[str, Any] = field(default_factory=_empty)
    data: Mapping[str, Mapping[str, Any]] = field(default_factory=_empty)
    errors: Mapping[str, str] = field(default_factory=_empty)
    step_id: int | None = None
    state: str = ""
    reason: str = ""
    meta: Mapping[str, Any] = field(default_factory=_empty)

    def get(self, analysis: str) -> Mapping[str, Any] | None:
        return self.data.get(analysis)

    @property
    def display_label(self) -> str:
        return self.label or f"step {self.index}"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StepInput:
        """Build from an API/DB dict; ``data`` may be a whole extract document."""
        data = raw.get("data") or {}
        errors = raw.get("errors") or {}
        if isinstance(data, Mapping) and "analyses" in data:  # an extract.json document
            errors = {**(data.get("errors") or {}), **errors}
            data = data.get("analyses") or {}
        step_id = raw.get("step_id")
        return cls(
            index=int(raw.get("index", 0)),
            label=str(raw.get("label") or ""),
            variant=dict(raw.get("variant") or {}),
            data=dict(data),
            errors=dict(errors),
            step_id=int(step_id) if step_id is not None else None,
            state=str(raw.get("state") or ""),
            reason=str(raw.get("reason") or ""),
            meta=dict(raw.get("meta") or {}),
        )


@dataclass(frozen=True, slots=True)
class ComputeInputs:
    """Every step of one calculation, plus the outputs of the analyses this one requires."""

    steps: tuple[StepInput, ...]
    code: str = ""
    options: Mapping[str, Any] = field(default_factory=_empty)
    upstream: Mapping[str, AnalysisOutput] = field(default_factory=_empty)

    def steps_with(self, analysis: str) -> list[tuple[StepInput, Mapping[str, Any]]]:
        """Steps that have data for ``analysis``, in step order."""
        found = [(s, d) for s in self.steps if (d := s.get(analysis)) is not None]
        return sorted(found, key=lambda pair: pair[0].index)

    def with_upstream(self, upstream: Mapping[str, AnalysisOutput]) -> ComputeInputs:
        return ComputeInputs(
            steps=self.steps, code=self.code, options=self.options, upstream=upstream
        )


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


# --------------------------------------------------------------------------- the plugin


class Analysis(ABC):
    """Base class of every analysis plugin (built-in or from the ``hpcgate.analyses`` group).

    Subclasses set the class attributes and implement both phases. ``extract`` must
    return only JSON-able values and keep arrays at or under ``MAX_POINTS``; it raises
    :class:`ExtractionError` with a one-line reason when the run lacks what it needs.
    Heavy imports (sisl, numpy) belong inside the methods so that listing the catalogue
    (API, portal) stays cheap.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    codes: ClassVar[frozenset[str]]
    requires: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    #: Bump when the extracted dict changes shape, so stored data can be told apart.
    version: ClassVar[int] = 1

    @abstractmethod
    def extract(self, run_dir: Path, ctx: ExtractContext) -> JSONDict:
        """Read one step's outputs (cluster side) into a small JSON-able dict."""

    @abstractmethod
    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        """Combine the extracted data of a calculation's steps (central side)."""

    def describe(self) -> JSONDict:
        """The catalogue entry the API and the portal show."""
        return {
            "name": self.name,
            "title": self.title,
            "codes": sorted(self.codes),
            "requires": list(self.requires),
            "description": self.description,
            "version": self.version,
        }

    def output(self, **kwargs: Any) -> AnalysisOutput:
        """An ``AnalysisOutput`` already carrying this analysis' name and title."""
        return AnalysisOutput(name=self.name, title=self.title, **kwargs)


# --------------------------------------------------------------------------- small helpers


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


def numeric_variant(variant: Mapping[str, Any]) -> tuple[str, float] | None:
    """The single numeric parameter of a variant (the x axis of a chain), if there is one."""
    numeric: list[tuple[str, float]] = []
    for key, value in variant.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            numeric.append((key, float(value)))
        elif isinstance(value, str):
            head = value.strip().split()
            if head:
                try:
                    numeric.append((key, float(head[0])))
                except ValueError:
                    continue
    return numeric[0] if len(numeric) == 1 else None


def step_axis(steps: Sequence[StepInput]) -> tuple[str, list[float]]:
    """x values for a per-step graph: the variant's numeric parameter, else the step index."""
    values: list[float] = []
    key: str | None = None
    for step in steps:
        found = numeric_variant(step.variant)
        if found is None or (key is not None and found[0] != key):
            return "step", [float(s.index) for s in steps]
        key = found[0]
        values.append(found[1])
    return (key or "step"), (values if key else [float(s.index) for s in steps])
