"""The researcher's verbs of the ``hpcgate`` command, over the typed client (``hpcgate.client``).

``login``, ``logout``, ``submit``, ``status``, ``logs``, ``results``, ``download``,
``cancel``, ``clone``. Each talks to the server named by ``HPCGATE_URL`` or the last
``hpcgate login`` (token from ``HPCGATE_TOKEN`` or the stored login, refreshed as needed).
Ids go to standard output alone (``ID=$(hpcgate submit h2o/)``); progress and messages go to
standard error. Errors are one line and a non-zero exit: 2 when the API refused (4xx),
1 otherwise; ``--wait``/``--watch`` exit 1 when the calculation ends other than completed.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import typer

from hpcgate.client import ApiError, Client, ClientError
from hpcgate.client.models import CalculationDetail, CalculationSummary, LogLine, Results
from hpcgate.client.spec import load_submission, parse_assignment

P = ParamSpec("P")
R = TypeVar("R")

Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="key=value change (YAML value); dotted keys go into the "
        "configuration, e.g. parameters.MeshCutoff='200 Ry'. Repeatable.",
    ),
]
CalcId = Annotated[int, typer.Argument(help="The calculation's id.", min=1)]


def _fail(message: str, code: int) -> None:
    typer.echo(f"hpcgate: error: {message}", err=True)
    raise typer.Exit(code)


def _one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Client errors become the CLI's one line (the API's own message) and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            _fail(str(exc), 2 if exc.status_code < 500 else 1)
        except ClientError as exc:
            _fail(exc.message, 1)
        except TimeoutError as exc:
            _fail(str(exc), 1)
        except OSError as exc:
            _fail(f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or exc}".lstrip(": "), 1)
        raise AssertionError("unreachable")

    return wrapper


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def _changes(sets: list[str] | None) -> dict[str, Any]:
    return dict(parse_assignment(s) for s in (sets or []))


# ------------------------------------------------------------------ rendering


def _when(value: Any) -> str:
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


def _state(state: str) -> str:
    style = _STATE_STYLE.get(state)
    return f"[{style}]{state}[/]" if style else state


def _list_table(items: list[CalculationSummary]) -> Any:
    from rich.table import Table

    table = Table(title="calculations", title_justify="left")
    for col in ("id", "name", "code", "kind", "state", "steps", "cluster", "queue", "created"):
        table.add_column(col, overflow="fold")
    for c in items:
        table.add_row(
            str(c.id), c.name, c.code, c.kind, _state(c.state), str(c.step_count),
            c.cluster_name or str(c.cluster_id), c.logical_queue, _when(c.created_at),
        )  # fmt: skip
    return table


def _detail_table(calc: CalculationDetail) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    done = sum(s.state in ("finished", "harvested", "cleaned") for s in calc.steps)
    head = Text.from_markup(
        f"calculation {calc.id} [bold]{calc.name}[/] · {calc.code}/{calc.kind} · "
        f"{_state(calc.state)} · {done}/{len(calc.steps)} steps done · "
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
            str(s.index), s.label, _state(s.state), s.scheduler_job_id or "",
            "" if s.exit_code is None else str(s.exit_code), s.state_reason or "",
        )  # fmt: skip
    parts.append(table)
    return Group(*parts)


def _watch(client: Client, calc_id: int, interval: float, stderr: bool) -> CalculationDetail:
    """A live view until the calculation is final (redrawn in place on a terminal)."""
    from rich.live import Live

    console = _console(stderr=stderr)
    calc = client.calculation(calc_id)
    with Live(_detail_table(calc), console=console, auto_refresh=False) as live:
        while not calc.finished:
            time.sleep(interval)
            calc = client.calculation(calc_id)
            live.update(_detail_table(calc), refresh=True)
    if not console.is_terminal:
        console.line()  # rich leaves a redirected view without its last newline
    return calc


def _final_exit(calc: CalculationDetail) -> None:
    if calc.state != "completed":
        reason = f": {calc.state_reason}" if calc.state_reason else ""
        _fail(f"calculation {calc.id} ended {calc.state}{reason}", 1)


# ------------------------------------------------------------------ verbs


@_one_line_errors
def login(
    url: Annotated[
        str | None, typer.Option(help="Server URL (default: HPCGATE_URL, else the last one).")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Your login e-mail.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Renew the stored login's access token now.")
    ] = False,
) -> None:
    """Log in and store the token in ~/.config/hpcgate/credentials.json (mode 0600).

    The access token is renewed automatically with the stored refresh token; --refresh does
    it now.
    """
    with Client(url) as client:
        if refresh:
            renewed = client.refresh()
            left = int(renewed.expires_at - time.time())
            typer.echo(f"refreshed the login to {client.url} (valid {left} s)", err=True)
            return
        if not email:
            email = typer.prompt("E-mail")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = typer.prompt("Password", hide_input=True)
        token = client.login(email, password)
        typer.echo(f"logged in to {client.url} as {token.user.email} ({token.user.role})", err=True)


@_one_line_errors
def logout() -> None:
    """Revoke the stored login on the server and delete it here."""
    with Client() as client:
        client.logout()
        typer.echo(f"logged out of {client.url}", err=True)


@_one_line_errors
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
        body = client.submission_body(sub)
        changes = _changes(sets)
        if changes:
            from hpcgate.client.models import CalculationCreate
            from hpcgate.client.spec import apply_changes

            body = CalculationCreate.model_validate(
                apply_changes(body.model_dump(mode="json"), changes)
            )
        if preview:
            if sub.binary:
                typer.echo(
                    "note: the preview leaves out the binary inputs "
                    + ", ".join(sorted(sub.binary)),
                    err=True,
                )
            plan = client.preview(body)
            for step in plan.steps:
                typer.echo(f"# step {step.index} {step.label} (after {step.parents or '-'}): "
                           f"{', '.join(step.files)}")  # fmt: skip
                typer.echo(step.script)
            return
        calc = client.create(body, sub.binary or None)
        typer.echo(str(calc.id))
        if wait:
            _final_exit(_watch(client, calc.id, interval, stderr=True))


@_one_line_errors
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
    console = _console()
    with Client() as client:
        if calc_id is not None:
            if watch:
                _final_exit(_watch(client, calc_id, interval, stderr=False))
                return
            calc = client.calculation(calc_id)
            if as_json:
                typer.echo(calc.model_dump_json(indent=2))
            else:
                console.print(_detail_table(calc))
            return
        owner: Literal["me", "all"] = "all" if everyone else "me"

        def page() -> list[CalculationSummary]:
            return client.calculations(state=state, owner=owner, limit=limit).items

        items = page()
        if as_json:
            typer.echo(json.dumps([c.model_dump(mode="json") for c in items], indent=2))
            return
        if not watch:
            console.print(_list_table(items))
            return
        from rich.live import Live

        with Live(_list_table(items), console=console, auto_refresh=False) as live:
            while not all(c.finished for c in items):
                time.sleep(interval)
                items = page()
                live.update(_list_table(items), refresh=True)


def _log_text(line: LogLine) -> str:
    return f"{_when(line.ts)} {line.level:<8} {line.source:<12} {line.message}"


@_one_line_errors
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
            typer.echo(_log_text(line))
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
                typer.echo(_log_text(line))
                last = line.id
            if final_drain:
                return
            final_drain = client.calculation(calc_id).finished


def _flat(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flat(f"{prefix}.{k}" if prefix else str(k), v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flat(f"{prefix}[{i}]", v)
    else:
        yield prefix, value


def results_csv(res: Results) -> str:
    """One row per value (long format: any analysis's shape fits)."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["source", "step_index", "task_index", "kind", "key", "value"])
    for r in res.extracted:
        for key, value in _flat("", r.data):
            out.writerow(["extracted", r.step_index, r.task_index, r.kind, key, value])
    for a in res.analyses:
        out.writerow(["analysis", "", "", a.analysis, "status", a.status])
        for key, value in _flat("", a.data):
            out.writerow(["analysis", "", "", a.analysis, key, value])
    return buf.getvalue()


def _write_atomically(target: Path, data: bytes) -> None:
    """Whole or not at all: a half-written report never carries the final name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@_one_line_errors
def results(
    calc_id: CalcId,
    fmt: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
) -> None:
    """Extracted data and analysis results, as JSON or CSV (one row per value)."""
    if fmt not in ("json", "csv"):
        _fail(f"--format {fmt!r}: choose json or csv", 2)
    with Client() as client:
        res = client.results(calc_id)
    text = res.model_dump_json(indent=2) + "\n" if fmt == "json" else results_csv(res)
    if output is None:
        sys.stdout.write(text)
    else:
        _write_atomically(output, text.encode())
        typer.echo(str(output), err=True)


@_one_line_errors
def download(
    calc_id: CalcId,
    files: Annotated[
        list[str] | None,
        typer.Argument(help="Raw output files of the step (paths inside its directory).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="html, pdf, csv (a zip) or json.")] = "html",
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory to write into.")
    ] = Path(),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    step: Annotated[int, typer.Option("--step", help="The step (raw outputs).", min=0)] = 0,
    listing: Annotated[
        bool, typer.Option("--list", help="List the step's run directory instead.")
    ] = False,
) -> None:
    """Download the calculation's report, or raw output FILES of a step; prints each file
    written (--list: the step's files with their sizes)."""
    if listing or files:
        _raw_outputs(calc_id, step, files or [], output, force, listing)
        return
    if fmt not in ("html", "pdf", "csv", "json"):
        _fail(f"--format {fmt!r}: choose html, pdf, csv or json", 2)
    if not output.is_dir():
        _fail(f"{output} is not a directory", 2)
    target = output / f"calculation-{calc_id}-report.{'zip' if fmt == 'csv' else fmt}"
    if target.exists() and not force:
        _fail(f"{target} exists (use --force to overwrite)", 2)
    with Client() as client:
        data = client.report(calc_id, fmt)  # type: ignore[arg-type]
    _write_atomically(target, data)
    typer.echo(str(target))


def _raw_outputs(
    calc_id: int, step: int, files: list[str], output: Path, force: bool, listing: bool
) -> None:
    """Raw outputs (issue 20), fetched from the cluster through the API, streamed to disk."""
    with Client() as client:
        if listing:
            found = client.list_outputs(calc_id, step)
            for e in found.entries:
                typer.echo(f"{e.kind:4}  {e.size:>12}  {e.name}")
            return
        if not output.is_dir():
            _fail(f"{output} is not a directory", 2)
        for name in files:
            target = output / Path(name).name
            if target.exists() and not force:
                _fail(f"{target} exists (use --force to overwrite)", 2)
            typer.echo(str(client.download_output(calc_id, step, name, target)))


@_one_line_errors
def cancel(calc_id: CalcId) -> None:
    """Cancel a calculation (its jobs are cancelled on the scheduler at the next tick)."""
    with Client() as client:
        calc = client.cancel(calc_id)
    typer.echo(f"calculation {calc.id}: {calc.state}", err=True)


@_one_line_errors
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
    changes = _changes(sets)
    for key, value in (("name", name), ("cluster", cluster), ("queue", queue)):
        if value is not None:
            changes[key] = value
    with Client() as client:
        calc = client.clone(calc_id, changes)
        typer.echo(str(calc.id))
        if wait:
            _final_exit(_watch(client, calc.id, interval, stderr=True))


def register(app: typer.Typer) -> None:
    for fn in (login, logout, submit, status, logs, results, download, cancel, clone):
        app.command(name=fn.__name__)(fn)
