"""Reading a report document: its analyses, title, steps and key/value sections,
and the text formatting every output format shares."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analyses.results import AnalysisOutput, Column, Table

#: Rows of one table printed in the PDF/HTML; the CSV always has them all.
MAX_TABLE_ROWS = 60
#: Lines of an input file shown in the report.
MAX_INPUT_LINES = 120


@dataclass(frozen=True, slots=True)
class Figure:
    analysis: str
    graph: str
    title: str
    png: bytes


def fmt(value: Any) -> str:
    """Numbers with 10 significant digits, booleans as yes/no, None as a dash."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.10g}"  # total energies need ~10 digits (-160530.6123 eV)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={fmt(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def outputs(doc: Mapping[str, Any]) -> list[tuple[str, AnalysisOutput | None, str | None]]:
    """(name, output or None, error or None) for every analysis in the document."""
    out: list[tuple[str, AnalysisOutput | None, str | None]] = []
    for name, raw in (doc.get("analyses") or {}).items():
        if isinstance(raw, AnalysisOutput):
            out.append((name, raw, None))
        elif isinstance(raw, Mapping) and raw.get("error"):
            out.append((name, None, str(raw["error"])))
        elif isinstance(raw, Mapping):
            out.append((name, AnalysisOutput.from_dict({"name": name, **raw}), None))
    return out


def report_title(doc: Mapping[str, Any]) -> str:
    calc = doc.get("calculation") or {}
    return str(calc.get("name") or calc.get("id") or "Calculation report")


def steps_table(doc: Mapping[str, Any]) -> Table | None:
    steps = list(doc.get("steps") or [])
    if not steps:
        return None
    extra = [
        k for k in ("state", "job_id", "elapsed_s", "max_rss_mb") if any(k in s for s in steps)
    ]
    return Table(
        name="steps",
        title="Steps",
        columns=(Column("step"), Column("label"), Column("variant"), *(Column(k) for k in extra)),
        rows=[
            [
                s.get("index"),
                s.get("label", ""),
                fmt(s.get("variant") or {}),
                *(s.get(k) for k in extra),
            ]
            for s in steps
        ],
    )


def key_values(mapping: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    return [(str(k), fmt(v)) for k, v in (mapping or {}).items() if not isinstance(v, Mapping)]


def input_excerpt(text: Any) -> str:
    """The first :data:`MAX_INPUT_LINES` lines of an input file, saying how many are left."""
    lines = str(text).splitlines()
    shown = "\n".join(lines[:MAX_INPUT_LINES])
    if len(lines) > MAX_INPUT_LINES:
        shown += f"\n... ({len(lines) - MAX_INPUT_LINES} more lines)"
    return shown
