"""How calculations look in a terminal: tables and live views (rich, imported lazily)."""

from __future__ import annotations

import time
from typing import Any

from hpcgate.cli_client.common import make_console
from hpcgate.client import Client
from hpcgate.client.models import CalculationDetail, CalculationSummary, LogLine


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


_STATE_STYLE = {
    "completed": "green",
    "harvested": "green",
    "cleaned": "green",
    "finished": "green",
    "running": "cyan",
    "failed": "red",
    "invalid": "red",
    "cancelled": "yellow",
    "rejected": "red",
}


def state_markup(state: str) -> str:
    style = _STATE_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


def list_table(items: list[CalculationSummary]) -> Any:
    from rich.table import Table

    table = Table(title="calculations", title_justify="left")
    for col in ("id", "name", "code", "kind", "state", "steps", "cluster", "queue", "created"):
        table.add_column(col, overflow="fold")
    for c in items:
        table.add_row(
            str(c.id), c.name, c.code, c.kind, state_markup(c.state), str(c.step_count),
            c.cluster_name or str(c.cluster_id), c.logical_queue, when(c.created_at),
        )  # fmt: skip
    return table


def detail_table(calc: CalculationDetail) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    done = sum(s.state in ("finished", "harvested", "cleaned") for s in calc.steps)
    head = Text.from_markup(
        f"calculation {calc.id} [bold]{calc.name}[/] · {calc.code}/{calc.kind} · "
        f"{state_markup(calc.state)} · {done}/{len(calc.steps)} steps done · "
        f"{calc.cluster_name or calc.cluster_id}/{calc.logical_queue}"
    )
    parts: list[Any] = [head]
    if calc.state_reason:
        parts.append(Text(f"reason: {calc.state_reason}"))
    table = Table()
    for col in ("step", "label", "state", "job", "exit", "reason"):
        table.add_column(col, overflow="fold")
    for s in calc.steps:
        table.add_row(
            str(s.index), s.label, state_markup(s.state), s.scheduler_job_id or "",
            "" if s.exit_code is None else str(s.exit_code), s.state_reason or "",
        )  # fmt: skip
    parts.append(table)
    return Group(*parts)


def watch_live(client: Client, calc_id: int, interval: float, stderr: bool) -> CalculationDetail:
    """A live view until the calculation is final (redrawn in place on a terminal)."""
    from rich.live import Live

    out = make_console(stderr=stderr)
    calc = client.calculation(calc_id)
    with Live(detail_table(calc), console=out, auto_refresh=False) as live:
        while not calc.finished:
            time.sleep(interval)
            calc = client.calculation(calc_id)
            live.update(detail_table(calc), refresh=True)
    if not out.is_terminal:
        out.line()  # rich leaves a redirected view without its last newline
    return calc


def log_text(line: LogLine) -> str:
    return f"{when(line.ts)} {line.level:<8} {line.source:<12} {line.message}"
