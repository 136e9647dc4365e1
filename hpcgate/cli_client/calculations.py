"""``hpcgate submit``, ``status``, ``cancel`` and ``clone``: creating and following
calculations. Ids go to standard output alone; progress goes to standard error."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from hpcgate.cli_client.common import (
    CalcId,
    Sets,
    final_exit,
    make_console,
    one_line_errors,
    parse_sets,
)
from hpcgate.cli_client.views import detail_table, list_table, watch_live
from hpcgate.client import Client
from hpcgate.client.models import CalculationCreate, CalculationSummary
from hpcgate.client.spec import Submission, load_submission


@one_line_errors
def submit(
    path: Annotated[
        Path,
        typer.Argument(
            help="A directory (with an optional hpcgate.yaml) or a YAML spec (see docs/client.md)."
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Calculation name.")] = None,
    cluster: Annotated[str | None, typer.Option(help="Cluster name or id.")] = None,
    queue: Annotated[str | None, typer.Option(help="Logical queue.")] = None,
    code: Annotated[str | None, typer.Option(help="siesta, qe or generic.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="single, chain, sweep, dag or transiesta.")
    ] = None,
    analyses: Annotated[str | None, typer.Option(help="Comma-separated analyses.")] = None,
    sets: Sets = None,
    preview: Annotated[
        bool, typer.Option("--preview", help="Show the steps and job scripts; submit nothing.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it live until it ends.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls.", min=0.2)] = 2.0,
) -> None:
    """Create a calculation from a directory or a YAML spec; prints its id.

    UTF-8 text files go into the configuration's inputs; other files (.TSHS, .DM, ...)
    are uploaded with it as binary inputs.
    """
    sub = load_submission(path)
    for attr, value in (("name", name), ("cluster", cluster), ("queue", queue), ("code", code)):
        if value is not None:
            setattr(sub, attr, value)
    if kind is not None:
        sub.configuration["kind"] = kind
    if analyses is not None:
        sub.analyses = [a.strip() for a in analyses.split(",") if a.strip()]
    with Client() as client:
        body = _with_sets(client.submission_body(sub), parse_sets(sets))
        if preview:
            _print_preview(client, body, sub)
            return
        calc = client.create(body, sub.binary or None)
        typer.echo(str(calc.id))
        if wait:
            final_exit(watch_live(client, calc.id, interval, stderr=True))


def _with_sets(body: CalculationCreate, changes: dict[str, Any]) -> CalculationCreate:
    """The submission's body with the ``--set`` changes applied (as ``clone`` does)."""
    if not changes:
        return body
    from hpcgate.client.spec import apply_changes

    return CalculationCreate.model_validate(apply_changes(body.model_dump(mode="json"), changes))


def _print_preview(client: Client, body: CalculationCreate, sub: Submission) -> None:
    """Each step's files and job script, as the server would write them."""
    if sub.binary:
        typer.echo(
            "note: the preview leaves out the binary inputs " + ", ".join(sorted(sub.binary)),
            err=True,
        )
    plan = client.preview(body)
    for step in plan.steps:
        typer.echo(f"# step {step.index} {step.label} (after {step.parents or '-'}): "
                   f"{', '.join(step.files)}")  # fmt: skip
        typer.echo(step.script)


@one_line_errors
def status(
    calc_id: Annotated[
        int | None, typer.Argument(help="One calculation (omit: your recent ones).", min=1)
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="A live view until it ends (every listed one ends).")
    ] = False,
    everyone: Annotated[bool, typer.Option("--all", help="Everyone's, not only yours.")] = False,
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls.", min=0.2)] = 2.0,
) -> None:
    """A table of calculations, or one calculation and its steps; --watch follows it live."""
    console = make_console()
    with Client() as client:
        if calc_id is not None:
            if watch:
                final_exit(watch_live(client, calc_id, interval, stderr=False))
                return
            calc = client.calculation(calc_id)
            if as_json:
                typer.echo(calc.model_dump_json(indent=2))
            else:
                console.print(detail_table(calc))
            return
        owner: Literal["me", "all"] = "all" if everyone else "me"

        def page() -> list[CalculationSummary]:
            return client.calculations(state=state, owner=owner, limit=limit).items

        items = page()
        if as_json:
            typer.echo(json.dumps([c.model_dump(mode="json") for c in items], indent=2))
            return
        if not watch:
            console.print(list_table(items))
            return
        from rich.live import Live

        with Live(list_table(items), console=console, auto_refresh=False) as live:
            while not all(c.finished for c in items):
                time.sleep(interval)
                items = page()
                live.update(list_table(items), refresh=True)


@one_line_errors
def cancel(calc_id: CalcId) -> None:
    """Cancel a calculation (its jobs are cancelled on the scheduler at the next tick)."""
    with Client() as client:
        calc = client.cancel(calc_id)
    typer.echo(f"calculation {calc.id}: {calc.state}", err=True)


@one_line_errors
def clone(
    calc_id: CalcId,
    sets: Sets = None,
    name: Annotated[str | None, typer.Option(help="Name of the new calculation.")] = None,
    cluster: Annotated[str | None, typer.Option(help="Run it on another cluster.")] = None,
    queue: Annotated[str | None, typer.Option(help="Another logical queue.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it live until it ends.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between polls.", min=0.2)] = 2.0,
) -> None:
    """Re-run a calculation with changes (--set key=value); prints the new id."""
    changes = parse_sets(sets)
    for key, value in (("name", name), ("cluster", cluster), ("queue", queue)):
        if value is not None:
            changes[key] = value
    with Client() as client:
        calc = client.clone(calc_id, changes)
        typer.echo(str(calc.id))
        if wait:
            final_exit(watch_live(client, calc.id, interval, stderr=True))
