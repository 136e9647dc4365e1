"""The PDF report (reportlab): a cover page (calculation, resources, steps), then one
section per analysis starting on a new page, then the inputs.

Texts from users or files are passed as escaped plain paragraphs. The PDF uses the
DejaVu Sans font shipped with matplotlib so non-Latin-1 labels render; figures are the
same PNGs the HTML embeds.
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analyses.report.document import (
    MAX_TABLE_ROWS,
    Figure,
    fmt,
    input_excerpt,
    key_values,
    outputs,
    report_title,
    steps_table,
)
from analyses.report.figures import render_figures
from analyses.results import Table

#: A table this short is kept on one page with its heading.
_KEEP_TOGETHER_ROWS = 25


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


def _styles(font: str, bold: str) -> dict[str, Any]:
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet

    base = getSampleStyleSheet()
    body = base["BodyText"]
    return {
        "title": ParagraphStyle("t", parent=base["Title"], fontName=bold),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontName=bold),
        "h3": ParagraphStyle("h3", parent=base["Heading3"], fontName=bold),
        "body": ParagraphStyle("b", parent=body, fontName=font, fontSize=9),
        "note": ParagraphStyle(
            "n", parent=body, fontName=font, fontSize=9, textColor=colors.HexColor("#8a4b00")
        ),
        "error": ParagraphStyle(
            "e", parent=body, fontName=bold, fontSize=9, textColor=colors.HexColor("#aa0000")
        ),
        "cell": ParagraphStyle("c", parent=body, fontName=font, fontSize=7, leading=8.5),
        "code": ParagraphStyle("code", parent=base["Code"], fontSize=6.5, leading=7.5),
    }


class _Story:
    """The flowables of one PDF, built section by section."""

    def __init__(self, styles: dict[str, Any], width: float) -> None:
        self.styles = styles
        self.width = width
        self.items: list[Any] = []

    def para(self, text: str, style: str = "body") -> Any:
        from reportlab.platypus import Paragraph

        return Paragraph(html.escape(text), self.styles[style])

    def table(self, t: Table) -> list[Any]:
        from reportlab.lib import colors
        from reportlab.platypus import KeepTogether, TableStyle
        from reportlab.platypus import Table as RLTable

        rows = [[self.para(c.header(), "cell") for c in t.columns]]
        rows += [[self.para(fmt(v), "cell") for v in r] for r in t.rows[:MAX_TABLE_ROWS]]
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
        out: list[Any] = [self.para(t.title, "h3"), rl]
        if len(t.rows) > MAX_TABLE_ROWS:
            more = f"{len(t.rows) - MAX_TABLE_ROWS} more rows in the CSV export."
            out.append(self.para(more, "note"))
        if len(t.rows) <= _KEEP_TOGETHER_ROWS:
            return [KeepTogether(out)]
        return out

    def kv(self, pairs: list[tuple[str, str]]) -> list[Any]:
        from reportlab.lib import colors
        from reportlab.lib.units import cm
        from reportlab.platypus import Spacer, TableStyle
        from reportlab.platypus import Table as RLTable

        if not pairs:
            return []
        rl = RLTable(
            [[self.para(k, "cell"), self.para(v, "cell")] for k, v in pairs],
            colWidths=[5 * cm, self.width - 5 * cm],
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

    def cover(self, doc: Mapping[str, Any]) -> None:
        self.items += [self.para(report_title(doc), "title"), self.para("Calculation", "h2")]
        self.items += self.kv(key_values(doc.get("calculation")))
        resources = key_values(doc.get("resources"))
        if resources:
            self.items += [self.para("Resources used", "h2"), *self.kv(resources)]
        steps = steps_table(doc)
        if steps is not None:
            self.items += self.table(steps)

    def analyses(self, doc: Mapping[str, Any], figures: Sequence[Figure]) -> None:
        from reportlab.platypus import Image, PageBreak

        for name, output, error in outputs(doc):
            self.items.append(PageBreak())
            self.items.append(self.para(output.title if output is not None else name, "h2"))
            if error is not None or output is None:
                self.items.append(self.para(f"Not available: {error}", "error"))
                continue
            self.items += self.kv([(k, fmt(v)) for k, v in output.summary.items()])
            self.items += [self.para(n, "note") for n in output.notes]
            for fig in figures:
                if fig.analysis == name:
                    height = self.width * 3.8 / 6.4
                    self.items.append(Image(io.BytesIO(fig.png), width=self.width, height=height))
            for t in output.tables:
                self.items += self.table(t)

    def inputs(self, doc: Mapping[str, Any]) -> None:
        from reportlab.platypus import PageBreak, Preformatted

        inputs = doc.get("inputs") or {}
        params = key_values(inputs.get("parameters"))
        files = inputs.get("files") or {}
        if not params and not files:
            return
        self.items += [PageBreak(), self.para("Inputs", "h2"), *self.kv(params)]
        for fname, text in files.items():
            self.items += [
                self.para(str(fname), "h3"),
                Preformatted(input_excerpt(text), self.styles["code"]),
            ]


def render_pdf(doc: Mapping[str, Any], path: Path, figures: Sequence[Figure] | None = None) -> Path:
    """Write the PDF: a cover page (calculation, resources, steps), then one section per
    analysis starting on a new page, then the inputs."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import cm
    from reportlab.platypus import SimpleDocTemplate

    font, bold = _pdf_font()
    story = _Story(_styles(font, bold), width=A4[0] - 3 * cm)
    story.cover(doc)
    story.analyses(doc, list(figures) if figures is not None else render_figures(doc))
    story.inputs(doc)
    title = report_title(doc)

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
    ).build(story.items, onFirstPage=footer, onLaterPages=footer)
    return path
