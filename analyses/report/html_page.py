"""The HTML report: one self-contained page (inline CSS, figures as data: URIs).

Every text that comes from users or files is escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
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
            f'<td class="t">{e(fmt(v))}</td>' if isinstance(v, str) else f"<td>{e(fmt(v))}</td>"
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
        f"<title>{e(report_title(doc))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(report_title(doc))}</h1>",
        "<h2>Calculation</h2>",
        _html_kv(key_values(doc.get("calculation"))),
    ]
    resources = key_values(doc.get("resources"))
    if resources:
        parts += ["<h2>Resources used</h2>", _html_kv(resources)]
    steps = steps_table(doc)
    if steps is not None:
        parts.append(_html_table(steps))
    for name, output, error in outputs(doc):
        title = output.title if output is not None else name
        parts.append(f'<h2 id="{e(name)}">{e(title)}</h2>')
        if error is not None or output is None:
            parts.append(f'<p class="error">Not available: {e(str(error))}</p>')
            continue
        if output.summary:
            parts.append(_html_kv((k, fmt(v)) for k, v in output.summary.items()))
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
    params = key_values(inputs.get("parameters"))
    files = inputs.get("files") or {}
    if params or files:
        out.append("<h2>Inputs</h2>")
    if params:
        out.append(_html_kv(params))
    for fname, text in files.items():
        shown = html.escape(input_excerpt(text))
        out.append(f"<h3>{html.escape(str(fname))}</h3><pre>{shown}</pre>")
    return out
