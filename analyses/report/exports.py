"""Data exports of a report: one CSV per table, and the whole document as JSON."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analyses.report.document import outputs, steps_table
from analyses.results import AnalysisOutput, Table, to_jsonable


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def write_csv(doc: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """One CSV per table (``<analysis>__<table>.csv``), plus ``steps.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def dump(path: Path, t: Table) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([c.header() for c in t.columns])
            for row in t.rows:
                writer.writerow(["" if v is None else v for v in row])
        written.append(path)

    steps = steps_table(doc)
    if steps is not None:
        dump(out_dir / "steps.csv", steps)
    for name, output, _ in outputs(doc):
        for t in output.tables if output is not None else []:
            dump(out_dir / f"{_safe(name)}__{_safe(t.name)}.csv", t)
    return written


def write_json(doc: Mapping[str, Any], path: Path) -> Path:
    """The whole report document as strict JSON (NaN -> null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    normalised = dict(doc)
    normalised["analyses"] = {
        name: (raw.to_dict() if isinstance(raw, AnalysisOutput) else raw)
        for name, raw in (doc.get("analyses") or {}).items()
    }
    path.write_text(
        json.dumps(to_jsonable(normalised), allow_nan=False, indent=1), encoding="utf-8"
    )
    return path
