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

The data types live in ``analyses.results`` (what ``compute`` returns) and
``analyses.compute_inputs`` (what it is given); this module is the plugin contract itself.
Everything passed around is plain data (frozen dataclasses, dicts), so the API, the portal, the
agent and the reports can pass it around without ORM objects or sisl.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from analyses.compute_inputs import ComputeInputs
from analyses.results import AnalysisOutput, JSONDict

__all__ = [
    "MAX_POINTS",
    "Analysis",
    "AnalysisError",
    "ExtractContext",
    "ExtractionError",
]

#: Longest array an ``extract`` may return (energies of a spectrum, k-points of a band).
MAX_POINTS = 2000


class AnalysisError(Exception):
    """An analysis cannot produce its result; the message is one line for a user."""


class ExtractionError(AnalysisError):
    """The run directory lacks what this analysis needs, or holds it in a form we can't read."""


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
