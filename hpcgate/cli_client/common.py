"""What every verb shares: one-line errors with an exit code, the console, ``--set``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from hpcgate.client import ApiError, ClientError
from hpcgate.client.models import CalculationDetail
from hpcgate.client.spec import parse_assignment

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


def fail(message: str, code: int) -> None:
    typer.echo(f"hpcgate: error: {message}", err=True)
    raise typer.Exit(code)


def one_line_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Client errors become the CLI's one line (the API's own message) and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            fail(str(exc), 2 if exc.status_code < 500 else 1)
        except ClientError as exc:
            fail(exc.message, 1)
        except TimeoutError as exc:
            fail(str(exc), 1)
        except OSError as exc:
            fail(f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or exc}".lstrip(": "), 1)
        raise AssertionError("unreachable")

    return wrapper


def make_console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def parse_sets(sets: list[str] | None) -> dict[str, Any]:
    return dict(parse_assignment(s) for s in (sets or []))


def final_exit(calc: CalculationDetail) -> None:
    if calc.state != "completed":
        reason = f": {calc.state_reason}" if calc.state_reason else ""
        fail(f"calculation {calc.id} ended {calc.state}{reason}", 1)
