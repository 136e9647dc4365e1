"""``hpcgate results`` and ``hpcgate download``: data, reports and raw outputs to disk."""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from hpcgate.cli_client.common import CalcId, fail, one_line_errors
from hpcgate.client import Client
from hpcgate.client.models import Results


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


@one_line_errors
def results(
    calc_id: CalcId,
    fmt: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
) -> None:
    """Extracted data and analysis results, as JSON or CSV (one row per value)."""
    if fmt not in ("json", "csv"):
        fail(f"--format {fmt!r}: choose json or csv", 2)
    with Client() as client:
        res = client.results(calc_id)
    text = res.model_dump_json(indent=2) + "\n" if fmt == "json" else results_csv(res)
    if output is None:
        sys.stdout.write(text)
    else:
        _write_atomically(output, text.encode())
        typer.echo(str(output), err=True)


@one_line_errors
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
        fail(f"--format {fmt!r}: choose html, pdf, csv or json", 2)
    if not output.is_dir():
        fail(f"{output} is not a directory", 2)
    target = output / f"calculation-{calc_id}-report.{'zip' if fmt == 'csv' else fmt}"
    if target.exists() and not force:
        fail(f"{target} exists (use --force to overwrite)", 2)
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
            fail(f"{output} is not a directory", 2)
        for name in files:
            target = output / Path(name).name
            if target.exists() and not force:
                fail(f"{target} exists (use --force to overwrite)", 2)
            typer.echo(str(client.download_output(calc_id, step, name, target)))
