"""``hpcgate validate PATH [--code siesta|qe] [--json]``: did this run converge?

Runs at the end of generated batch scripts, so the exit code is the interface:

* 0 - converged;
* 1 - any other verdict (scf_not_converged, geometry_not_converged, aborted,
  incomplete), so that a Slurm/PBS ``afterok`` dependency chain stops;
* 2 - no verdict could be given (path missing, unknown ``--code``, unreadable file):
  one line on stderr, no traceback.

The lead mounts it with ``app.command("validate")(validate)``; ``app`` below is a
stand-alone single-command Typer app (used by the tests).
"""

from __future__ import annotations

import json as jsonlib
import sys
from typing import Any

import typer

from hpcgate.codes.report import ValidationReport
from hpcgate.codes.validation import validate_path

__all__ = ["app", "format_report", "validate"]

EXIT_CONVERGED = 0
EXIT_NOT_CONVERGED = 1
EXIT_USAGE = 2

app = typer.Typer(add_completion=False, help="Check whether a SIESTA or QE run converged.")

#: Human labels and units of the numbers, in display order.
_LABELS: tuple[tuple[str, str, str], ...] = (
    ("energy_total_ev", "final total energy", "eV"),
    ("fermi_ev", "Fermi level", "eV"),
    ("highest_occupied_ev", "highest occupied level", "eV"),
    ("last_scf_energy_ev", "last SCF energy (E_KS)", "eV"),
    ("scf_iterations_last", "SCF iterations (last cycle)", ""),
    ("scf_iterations_total", "SCF iterations (total)", ""),
    ("max_force_ev_ang", "max force", "eV/Ang"),
    ("geometry_steps", "geometry steps", ""),
    ("bias_v", "bias voltage", "V"),
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}" if 1e-4 <= abs(value) < 1e7 or value == 0 else f"{value:.6e}"
    return str(value)


def format_report(report: ValidationReport) -> str:
    """Plain-text summary: verdict, key numbers, evidence lines with their numbers."""
    n = report.numbers
    program = n.get("program") or report.code
    version = n.get("version")
    head = f"{report.status.value}  ({program}{' ' + version if version else ''})"
    lines = [head, f"source: {report.source}"]
    if "scan" in n:
        lines.append(
            f"scan:   {n['scan']}, {n.get('bytes_read')} of {n.get('file_size')} bytes read"
        )
    for key, label, unit in _LABELS:
        value = n.get(key)
        if value is None:
            continue
        lines.append(f"  {label:<28} {_fmt(value)}{' ' + unit if unit else ''}")
    for pair, current in (n.get("currents_a") or {}).items():
        lines.append(f"  {'current ' + pair:<28} {_fmt(current)} A")
    if report.reason:
        lines.append(f"reason: {report.reason}")
    if report.evidence:
        lines.append("evidence (* = decisive line; end-N = N-th line from the end):")
        for i, (line_no, text) in enumerate(report.evidence):
            where = f"{line_no:>8}" if line_no > 0 else f"{'end' + str(line_no):>8}"
            lines.append(f"  {'*' if i == 0 else ' '}{where}: {text}")
    for note in report.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _usage_error(message: str) -> typer.Exit:
    sys.stderr.write(f"hpcgate validate: error: {message}\n")
    return typer.Exit(EXIT_USAGE)


@app.command()
def validate(
    path: str = typer.Argument(..., help="Run directory or stdout file of the run."),
    code: str | None = typer.Option(
        None, "--code", help="siesta or qe; detected from the banner when omitted."
    ),
    json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    full_scan: bool = typer.Option(
        False,
        "--full-scan",
        help="Read every byte of a large output (exact line numbers and totals; slower).",
    ),
) -> None:
    """Validate a SIESTA/TranSIESTA/TBtrans or Quantum ESPRESSO run.

    Exit 0 only when converged, 1 for any other verdict, 2 for usage errors.
    """
    try:
        report = validate_path(path, code, full_scan=full_scan)
    except FileNotFoundError:
        raise _usage_error(f"path not found: {path}") from None
    except ValueError as exc:
        raise _usage_error(str(exc)) from None
    except OSError as exc:
        raise _usage_error(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # a validator bug must not look like "not converged"
        raise _usage_error(f"internal error while validating {path}: {exc!r}") from None
    if json:
        typer.echo(jsonlib.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(format_report(report))
    raise typer.Exit(EXIT_CONVERGED if report.converged else EXIT_NOT_CONVERGED)


def main() -> None:  # pragma: no cover - convenience entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
