"""Graphs of a report: one PNG per (analysis, graph), drawn with matplotlib's Agg
backend (no display on a server) from each analysis' ``series``."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from analyses.report.document import Figure, outputs
from analyses.results import Series

#: Legend entries above which the legend is left out (it would hide the plot).
MAX_LEGEND = 12


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
    for name, output, _ in outputs(doc):
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
