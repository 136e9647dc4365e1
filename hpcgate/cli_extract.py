"""``hpcgate extract``: run the selected analyses' extraction on a finished run directory.

Runs inside the job script right after ``hpcgate validate``. It writes one small JSON
document (default ``<run_dir>/.hpcgate/extract.json``) that the agent or the worker
sends back. Exit codes, so the job script can tell a user error from a failed parse:

* 0 - every analysis extracted;
* 1 - at least one analysis failed (the file is still written, with per-analysis
  ``errors`` and ``skipped`` entries, so what succeeded is not lost);
* 2 - bad input: unknown/incomplete selection, bad ``--variant`` JSON, missing run dir.

Errors are one line on stderr, never a traceback. The lead mounts it with
``app.command(name="extract")(extract)``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from analyses.base import ExtractContext

__all__ = ["extract"]

DEFAULT_OUT = Path(".hpcgate") / "extract.json"


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"hpcgate: error: {message}", err=True)
    raise typer.Exit(code)


def _json_object(text: str | None, what: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"{what} is not valid JSON: {exc.msg} at character {exc.pos}", 2)
    if not isinstance(value, dict):
        _fail(f"{what} must be a JSON object, got {type(value).__name__}", 2)
    return value


def _write_atomic(path: Path, document: dict[str, Any]) -> None:
    """tmp + rename, so a reader never sees half a file (the job may be killed here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".extract-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(document, fh, allow_nan=False, separators=(",", ":"))
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def extract(
    run_dir: Annotated[
        Path, typer.Argument(help="The step's run directory (outputs of the finished job).")
    ],
    code: Annotated[str, typer.Option(help="Numerical code: siesta or qe.")] = "siesta",
    analyses: Annotated[
        str, typer.Option(help="Comma-separated analyses, e.g. scf_convergence,energy.")
    ] = "",
    variant_json: Annotated[
        str | None,
        typer.Option(
            "--variant", "--variant-json", help='Step variant, e.g. {"TS.Voltage": 0.25}.'
        ),
    ] = None,
    files_json: Annotated[
        str | None,
        typer.Option("--files", help='File hints, e.g. {"stdout": "au_100.out"}.'),
    ] = None,
    options_json: Annotated[
        str | None, typer.Option("--options", help="Per-analysis options as JSON.")
    ] = None,
    step: Annotated[int, typer.Option(help="Step index within the calculation.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(help="Output file (default: RUN_DIR/.hpcgate/extract.json; '-' = stdout)."),
    ] = None,
) -> None:
    """Extract the selected analyses' small data from RUN_DIR into one JSON file."""
    from analyses.graph import InvalidSelection
    from analyses.pipeline import extract_run
    from analyses.registry import RegistryError

    if not logging.getLogger().handlers:
        # Per-analysis failures are reported below as one line each; without this,
        # Python's last-resort handler would also print log records (and tracebacks).
        logging.getLogger("analyses").addHandler(logging.NullHandler())
    if not run_dir.is_dir():
        _fail(f"run directory {run_dir} does not exist", 2)
    names = [n.strip() for n in analyses.split(",") if n.strip()]
    if not names:
        _fail("no analyses selected (--analyses a,b,c)", 2)
    ctx = _context(code, variant_json, files_json, options_json, step)
    try:
        document = extract_run(run_dir, ctx, names)
    except InvalidSelection as exc:
        _fail(exc.message, 2)
    except RegistryError as exc:
        _fail(f"analysis registry: {exc}", 1)
    _emit(document, out if out is not None else run_dir / DEFAULT_OUT)
    failed = {**document["errors"], **document["skipped"]}
    for name, why in failed.items():
        typer.echo(f"hpcgate: extract: {name}: {why}", err=True)
    if failed:
        raise typer.Exit(1)


def _context(
    code: str,
    variant_json: str | None,
    files_json: str | None,
    options_json: str | None,
    step: int,
) -> ExtractContext:
    """The extraction context from the command line's JSON options (exit 2 when bad)."""
    from analyses.base import ExtractContext

    variant = _json_object(variant_json, "--variant")
    files = _json_object(files_json, "--files")
    options = _json_object(options_json, "--options")
    return ExtractContext(
        code=code,
        variant=variant,
        step_index=step,
        files={str(k): str(v) for k, v in files.items()},
        options={str(k): v for k, v in options.items() if isinstance(v, dict)},
    )


def _emit(document: dict[str, Any], target: Path) -> None:
    """Write the document to ``target`` atomically, or to stdout for ``-``."""
    if str(target) == "-":
        json.dump(document, sys.stdout, allow_nan=False, separators=(",", ":"))
        sys.stdout.write("\n")
        return
    try:
        _write_atomic(target, document)
    except OSError as exc:
        _fail(f"cannot write {target}: {exc.strerror or exc}", 1)
