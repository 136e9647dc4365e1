"""Reports of a calculation (a single step, a chain or a sweep): HTML, PDF, CSV, JSON.

Input is a plain dict, so the API can call this with data from its own queries and no
ORM objects::

    {
      "calculation": {"id", "name", "code", "code_version", "kind", "owner", "cluster",
                      "created_at", "state", ...},            # any scalar fields
      "inputs": {"parameters": {...}, "files": {"au_100.fdf": "text"}},
      "resources": {"nodes": 1, "cores": 4, "elapsed_s": 1234, "cpu_hours": 1.4, ...},
      "steps": [{"index": 0, "label": "0.00 V", "variant": {...}, "state": "validated",
                 "job_id": "123", "elapsed_s": 600, "max_rss_mb": 2048}, ...],
      "analyses": {"iv_curve": AnalysisOutput.to_dict() | {"error": "..."} , ...},
    }

Graphs are drawn with matplotlib's Agg backend (no display on a server) from each
analysis' ``series``, grouped by ``series.graph``; the HTML embeds them as base64 PNG so
the file is self-contained, the PDF (reportlab) embeds the same PNGs. Every text that
comes from users or files is escaped (HTML) or passed as plain paragraphs (PDF).

One module per output: ``document`` (reading the dict), ``figures``, ``html_page``,
``pdf``, ``exports`` (CSV, JSON); :func:`write_report` here writes any of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from analyses.report.exports import write_csv, write_json
from analyses.report.figures import render_figures
from analyses.report.html_page import render_html
from analyses.report.pdf import render_pdf

_FORMATS = ("html", "pdf", "csv", "json")


def write_report(
    doc: Mapping[str, Any], out_dir: Path, formats: Iterable[str] = _FORMATS
) -> dict[str, list[Path]]:
    """Write the requested formats into ``out_dir``; figures are drawn once for all."""
    wanted = list(dict.fromkeys(formats))
    unknown = [f for f in wanted if f not in _FORMATS]
    if unknown:
        raise ValueError(f"unknown report formats: {', '.join(unknown)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = render_figures(doc) if {"html", "pdf"} & set(wanted) else []
    written: dict[str, list[Path]] = {}
    if "html" in wanted:
        path = out_dir / "report.html"
        path.write_text(render_html(doc, figures), encoding="utf-8")
        written["html"] = [path]
    if "pdf" in wanted:
        written["pdf"] = [render_pdf(doc, out_dir / "report.pdf", figures)]
    if "csv" in wanted:
        written["csv"] = write_csv(doc, out_dir / "csv")
    if "json" in wanted:
        written["json"] = [write_json(doc, out_dir / "report.json")]
    return written
