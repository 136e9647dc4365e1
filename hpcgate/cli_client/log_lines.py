"""``hpcgate logs``: a calculation's log lines, and ``--follow`` to tail them live."""

from __future__ import annotations

from typing import Annotated

import typer

from hpcgate.cli_client.common import CalcId, one_line_errors
from hpcgate.cli_client.views import log_text
from hpcgate.client import Client
from hpcgate.client.models import LogLine


@one_line_errors
def logs(
    calc_id: CalcId,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until it ends.")
    ] = False,
    level: Annotated[str | None, typer.Option(help="This level and above.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="The last N lines.")] = 200,
) -> None:
    """A calculation's log lines, oldest first; --follow tails them live (SSE)."""
    with Client() as client:
        client.calculation(calc_id)  # a clear 404 before anything else
        lines: list[LogLine] = []
        cursor = None
        while len(lines) < limit:
            page = client.logs(
                calculation_id=calc_id, level=level, limit=min(1000, limit - len(lines)),
                cursor=cursor,
            )  # fmt: skip
            lines.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        last = 0
        for line in reversed(lines):
            typer.echo(log_text(line))
            last = max(last, line.id)
        if not follow:
            return
        if not lines:
            newest = client.logs(limit=1).items
            last = newest[0].id if newest else 0
        final_drain = False
        while True:
            for line in client.follow_logs(
                calculation_id=calc_id,
                level=level,
                after_id=last,
                max_duration_s=0 if final_drain else 3,
            ):
                typer.echo(log_text(line))
                last = line.id
            if final_drain:
                return
            final_drain = client.calculation(calc_id).finished
