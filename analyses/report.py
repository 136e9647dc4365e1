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
The PDF uses the DejaVu Sans font shipped with matplotlib so non-Latin-1 labels render.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyses.base import AnalysisOutput, Column, Series, Table, to_jsonable

__all__ = [
    "Figure",
    "render_figures",
    "render_html",
    "render_pdf",
    "write_csv",
    "write_json",
    "write_report",
]

#: Rows of one table printed in the PDF/HTML; the CSV always has them all.
MAX_TABLE_ROWS = 60
#: Lines of an input file shown in the report.
MAX_INPUT_LINES = 120
#: Legend entries above which the legend is left out (it would hide the plot).
MAX_LEGEND = 12

_FORMATS = ("html", "pdf", "csv", "json")


@dataclass(frozen=True, slots=True)
class Figure:
    analysis: str
    graph: str
    title: str
    png: bytes


# --------------------------------------------------------------------------- helpers


def _fmt(value: Any) -> str:
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
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _outputs(doc: Mapping[str, Any]) -> list[tuple[str, AnalysisOutput | None, str | None]]:
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


def _title(doc: Mapping[str, Any]) -> str:
    calc = doc.get("calculation") or {}
    return str(calc.get("name") or calc.get("id") or "Calculation report")


def _steps_table(doc: Mapping[str, Any]) -> Table | None:
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
                _fmt(s.get("variant") or {}),
                *(s.get(k) for k in extra),
            ]
            for s in steps
        ],
    )


def _key_values(mapping: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    return [(str(k), _fmt(v)) for k, v in (mapping or {}).items() if not isinstance(v, Mapping)]


# --------------------------------------------------------------------------- figures


def _plot(ax: Any, series: Sequence[Series]) -> None:
    import numpy as np

    colour = "C0"
    n_colour = 0
    labelled = 0
    log_y = any(s.y_scale == "log" for s in series)
    for s in series:
        if s.label:
            colour = f"C{n_colour % 10}"
            n_colour += 1
            labelled += 1
        x = np.array([math.nan if v is None else float(v) for v in s.x], dtype=float)
        y = np.array([math.nan if v is None else float(v) for v in s.y], dtype=float)
        if s.kind != "scatter" and np.all(np.isfinite(x)) and np.any(np.diff(x) < 0):
            order = np.argsort(x, kind="stable")  # steps of a chain may come in any order
            x, y = x[order], y[order]
        if log_y:
            y = np.where(y > 0, y, np.nan)
        label = s.label or "_nolegend_"
        if s.kind == "scatter":
            ax.scatter(x, y, s=12, color=colour, label=label)
        elif s.kind == "linepoints":
            ax.plot(x, y, marker="o", markersize=4, linewidth=1.2, color=colour, label=label)
        elif s.kind == "step":
            ax.step(x, y, where="mid", linewidth=1.2, color=colour, label=label)
        else:
            ax.plot(x, y, linewidth=1.0, color=colour, label=label)
    first = series[0]
    ax.set_xlabel(f"{first.x_label} [{first.x_unit}]" if first.x_unit else first.x_label)
    ax.set_ylabel(f"{first.y_label} [{first.y_unit}]" if first.y_unit else first.y_label)
    if log_y:
        ax.set_yscale("log")
    elif first.y_scale == "symlog":
        ax.set_yscale("symlog")
    if first.x_ticks:
        ax.set_xticks(first.x_ticks)
        if first.x_tick_labels:
            ax.set_xticklabels([t.replace("Gamma", "Γ") for t in first.x_tick_labels])
        for t in first.x_ticks:
            ax.axvline(t, color="0.8", linewidth=0.6, zorder=0)
        ax.axhline(0.0, color="0.6", linewidth=0.6, linestyle="--", zorder=0)
    if 0 < labelled <= MAX_LEGEND:
        ax.legend(fontsize=8, frameon=False)
    ax.grid(True, alpha=0.3)


def render_figures(doc: Mapping[str, Any], *, dpi: int = 110) -> list[Figure]:
    """One PNG per (analysis, graph), in the order the series appear."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure as MplFigure

    figures: list[Figure] = []
    for name, output, _ in _outputs(doc):
        if output is None:
            continue
        graphs: dict[str, list[Series]] = {}
        for s in output.series:
            graphs.setdefault(s.graph, []).append(s)
        for graph, series in graphs.items():
            fig = MplFigure(figsize=(6.4, 3.8), dpi=dpi)  # no pyplot: no global state
            ax = fig.add_subplot(1, 1, 1)
            title = series[0].graph_title or graph
            ax.set_title(title, fontsize=10)
            _plot(ax, series)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            figures.append(Figure(analysis=name, graph=graph, title=title, png=buf.getvalue()))
    return figures


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:2em auto;
max-width:60em;color:#222}
h1{font-size:1.6em;border-bottom:2px solid #345}h2{font-size:1.25em;margin-top:2em;
border-bottom:1px solid #ccc}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.85em}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}
th{background:#eef}td.t,th.t{text-align:left}
.note{color:#8a4b00}.error{color:#a00;font-weight:bold}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
pre{background:#f6f6f6;padding:.5em;font-size:.8em;overflow-x:auto}
dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}dt{font-weight:bold}
"""


def _html_table(table: Table) -> str:
    e = html.escape
    head = "".join(
        f'<th class="t">{e(c.header())}</th>' if i < 2 else f"<th>{e(c.header())}</th>"
        for i, c in enumerate(table.columns)
    )
    body = []
    for row in table.rows[:MAX_TABLE_ROWS]:
        cells = "".join(
            f'<td class="t">{e(_fmt(v))}</td>' if isinstance(v, str) else f"<td>{e(_fmt(v))}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    more = ""
    if len(table.rows) > MAX_TABLE_ROWS:
        more = (
            f'<p class="note">{len(table.rows) - MAX_TABLE_ROWS} more rows in the CSV export.</p>'
        )
    return (
        f"<h3>{e(table.title)}</h3><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>{more}"
    )


def _html_kv(pairs: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in pairs)
    return f"<dl>{items}</dl>" if items else ""


def render_html(doc: Mapping[str, Any], figures: Sequence[Figure] | None = None) -> str:
    """A self-contained HTML page (inline CSS, images as data: URIs)."""
    e = html.escape
    figs = list(figures) if figures is not None else render_figures(doc)
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(_title(doc))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(_title(doc))}</h1>",
        "<h2>Calculation</h2>",
        _html_kv(_key_values(doc.get("calculation"))),
    ]
    resources = _key_values(doc.get("resources"))
    if resources:
        parts += ["<h2>Resources used</h2>", _html_kv(resources)]
    steps = _steps_table(doc)
    if steps is not None:
        parts.append(_html_table(steps))
    for name, output, error in _outputs(doc):
        title = output.title if output is not None else name
        parts.append(f'<h2 id="{e(name)}">{e(title)}</h2>')
        if error is not None or output is None:
            parts.append(f'<p class="error">Not available: {e(str(error))}</p>')
            continue
        if output.summary:
            parts.append(_html_kv((k, _fmt(v)) for k, v in output.summary.items()))
        parts.extend(f'<p class="note">{e(n)}</p>' for n in output.notes)
        for fig in figs:
            if fig.analysis == name:
                data = base64.b64encode(fig.png).decode("ascii")
                parts.append(f'<img alt="{e(fig.title)}" src="data:image/png;base64,{data}">')
        parts.extend(_html_table(t) for t in output.tables)
    parts += _html_inputs(doc)
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_inputs(doc: Mapping[str, Any]) -> list[str]:
    inputs = doc.get("inputs") or {}
    out: list[str] = []
    params = _key_values(inputs.get("parameters"))
    files = inputs.get("files") or {}
    if params or files:
        out.append("<h2>Inputs</h2>")
    if params:
        out.append(_html_kv(params))
    for fname, text in files.items():
        lines = str(text).splitlines()
        shown = "\n".join(lines[:MAX_INPUT_LINES])
        more = (
            f"\n... ({len(lines) - MAX_INPUT_LINES} more lines)"
            if len(lines) > MAX_INPUT_LINES
            else ""
        )
        out.append(f"<h3>{html.escape(str(fname))}</h3><pre>{html.escape(shown + more)}</pre>")
    return out


# --------------------------------------------------------------------------- PDF


def _pdf_font() -> tuple[str, str]:
    """Register DejaVu Sans (from matplotlib's data) once; fall back to Helvetica."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if "HpcgateSans" in pdfmetrics.getRegisteredFontNames():
        return "HpcgateSans", "HpcgateSans-Bold"
    try:
        import matplotlib

        ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        pdfmetrics.registerFont(TTFont("HpcgateSans", str(ttf / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("HpcgateSans-Bold", str(ttf / "DejaVuSans-Bold.ttf")))
    except Exception:  # a missing font file only costs non-Latin-1 glyphs
        return "Helvetica", "Helvetica-Bold"
    return "HpcgateSans", "HpcgateSans-Bold"


def render_pdf(doc: Mapping[str, Any], path: Path, figures: Sequence[Figure] | None = None) -> Path:
    """Write the PDF: a cover page (calculation, resources, steps), then one section per
    analysis starting on a new page, then the inputs."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import (
        Image,
        KeepTogether,
        PageBreak,
        Paragraph,
        Preformatted,
        SimpleDocTemplate,
        Spacer,
        TableStyle,
    )
    from reportlab.platypus import Table as RLTable

    font, bold = _pdf_font()
    base = getSampleStyleSheet()
    styles = {
        "title": ParagraphStyle("t", parent=base["Title"], fontName=bold),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontName=bold),
        "h3": ParagraphStyle("h3", parent=base["Heading3"], fontName=bold),
        "body": ParagraphStyle("b", parent=base["BodyText"], fontName=font, fontSize=9),
        "note": ParagraphStyle(
            "n",
            parent=base["BodyText"],
            fontName=font,
            fontSize=9,
            textColor=colors.HexColor("#8a4b00"),
        ),
        "error": ParagraphStyle(
            "e",
            parent=base["BodyText"],
            fontName=bold,
            fontSize=9,
            textColor=colors.HexColor("#aa0000"),
        ),
        "cell": ParagraphStyle(
            "c", parent=base["BodyText"], fontName=font, fontSize=7, leading=8.5
        ),
        "code": ParagraphStyle("code", parent=base["Code"], fontSize=6.5, leading=7.5),
    }
    figs = list(figures) if figures is not None else render_figures(doc)
    width = A4[0] - 3 * cm

    def para(text: str, style: str = "body") -> Paragraph:
        return Paragraph(html.escape(text), styles[style])

    def table(t: Table) -> list[Any]:
        rows = [[para(c.header(), "cell") for c in t.columns]]
        rows += [[para(_fmt(v), "cell") for v in r] for r in t.rows[:MAX_TABLE_ROWS]]
        rl = RLTable(rows, repeatRows=1, hAlign="LEFT")
        rl.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeff")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        out: list[Any] = [para(t.title, "h3"), rl]
        if len(t.rows) > MAX_TABLE_ROWS:
            out.append(para(f"{len(t.rows) - MAX_TABLE_ROWS} more rows in the CSV export.", "note"))
        if len(t.rows) <= 25:  # keep a short table with its heading on one page
            return [KeepTogether(out)]
        return out

    def kv(pairs: list[tuple[str, str]]) -> list[Any]:
        if not pairs:
            return []
        rl = RLTable(
            [[para(k, "cell"), para(v, "cell")] for k, v in pairs],
            colWidths=[5 * cm, width - 5 * cm],
            hAlign="LEFT",
        )
        rl.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.3, colors.lightgrey),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return [rl, Spacer(1, 6)]

    story: list[Any] = [para(_title(doc), "title"), para("Calculation", "h2")]
    story += kv(_key_values(doc.get("calculation")))
    resources = _key_values(doc.get("resources"))
    if resources:
        story += [para("Resources used", "h2"), *kv(resources)]
    steps = _steps_table(doc)
    if steps is not None:
        story += table(steps)
    for name, output, error in _outputs(doc):
        story.append(PageBreak())
        story.append(para(output.title if output is not None else name, "h2"))
        if error is not None or output is None:
            story.append(para(f"Not available: {error}", "error"))
            continue
        story += kv([(k, _fmt(v)) for k, v in output.summary.items()])
        story += [para(n, "note") for n in output.notes]
        for fig in figs:
            if fig.analysis == name:
                story.append(Image(io.BytesIO(fig.png), width=width, height=width * 3.8 / 6.4))
        for t in output.tables:
            story += table(t)
    inputs = doc.get("inputs") or {}
    params = _key_values(inputs.get("parameters"))
    files = inputs.get("files") or {}
    if params or files:
        story += [PageBreak(), para("Inputs", "h2"), *kv(params)]
        for fname, text in files.items():
            lines = str(text).splitlines()
            shown = "\n".join(lines[:MAX_INPUT_LINES])
            if len(lines) > MAX_INPUT_LINES:
                shown += f"\n... ({len(lines) - MAX_INPUT_LINES} more lines)"
            story += [para(str(fname), "h3"), Preformatted(shown, styles["code"])]

    title = _title(doc)

    def footer(canvas: Any, pdf: Any) -> None:
        canvas.saveState()
        canvas.setFont(font, 7)
        canvas.drawString(1.5 * cm, 1 * cm, f"{title} - hpcgate report")
        canvas.drawRightString(A4[0] - 1.5 * cm, 1 * cm, f"Page {pdf.page}")
        canvas.restoreState()

    path.parent.mkdir(parents=True, exist_ok=True)
    SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=1.5 * cm,
        rightMargin=1.5 * cm,
        topMargin=1.5 * cm,
        bottomMargin=1.8 * cm,
        title=title,
        author="hpcgate",
    ).build(story, onFirstPage=footer, onLaterPages=footer)
    return path


# --------------------------------------------------------------------------- data exports


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

    steps = _steps_table(doc)
    if steps is not None:
        dump(out_dir / "steps.csv", steps)
    for name, output, _ in _outputs(doc):
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
