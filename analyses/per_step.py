"""The shape most ``compute`` results share: one table row and one graph point per step.

A row starts with the step's index, its label and its x value (the variant's numeric
parameter, else the step index: :func:`analyses.compute_inputs.step_axis`), then the
analysis' own values; a per-step graph plots one of them against that x.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from analyses.compute_inputs import StepInput
from analyses.results import Column, Scalar, Series, Table

__all__ = ["step_row", "step_rows", "step_series", "step_table"]


def step_row(step: StepInput, x: float, values: Iterable[Any]) -> list[Scalar]:
    return [step.index, step.display_label, x, *values]


def step_rows(
    found: Sequence[tuple[StepInput, Mapping[str, Any]]], axis: Sequence[float], keys: Sequence[str]
) -> list[list[Scalar]]:
    """One row per step: index, label, x, then ``data[key]`` for each key."""
    return [
        step_row(step, x, (data.get(k) for k in keys))
        for (step, data), x in zip(found, axis, strict=True)
    ]


def step_table(
    name: str, title: str, axis_name: str, columns: Sequence[Column], rows: list[list[Scalar]]
) -> Table:
    """A table of :func:`step_rows` rows: step, label and the x axis before ``columns``."""
    return Table(
        name=name,
        title=title,
        columns=(Column("step"), Column("label"), Column(axis_name), *columns),
        rows=rows,
    )


def step_series(
    graph: str,
    graph_title: str,
    label: str,
    x: Sequence[float | None],
    y: Sequence[float | None],
    *,
    x_label: str,
    y_label: str,
    y_unit: str = "",
) -> Series:
    """A value per step, as points joined by lines."""
    return Series(
        graph=graph,
        graph_title=graph_title,
        label=label,
        x=x,
        y=y,
        x_label=x_label,
        y_label=y_label,
        y_unit=y_unit,
        kind="linepoints",
    )
