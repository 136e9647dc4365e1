"""Issue 15 item 3 (parsers): every parser of untrusted text runs in linear time.

A 300 KB ``"&a\\n" * 100000`` pw.x input froze the API for minutes: one regex retried a
lazy group from every line start. Here each parser that reads user text (request bodies,
and the job outputs hpcgate parses) gets 300 KB built by repeating a short unit:

* hypothesis draws the unit from the characters that parser cares about (derandomized,
  so every run tries the same units);
* plus the units known to have blown up a regex here.

The bound (5 s for 300 KB) is not a performance figure: a linear parser takes
milliseconds, a quadratic one minutes. It only catches the blow-up.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SIZE = 300_000
BOUND_S = 5.0


def _qe(text: str) -> Any:
    from hpcgate.codes.qe.prepare import prepare_qe

    params = {"ecutwfc": 30, "control.calculation": "scf", "nbnd": 8}
    return prepare_qe({"pw.in": text}, "pw.in", params, True)


def _fdf_scan(text: str) -> Any:
    from hpcgate.codes.siesta.fdf import scan_syntax

    with tempfile.TemporaryDirectory() as tmp:
        return scan_syntax(Path(tmp) / "input.fdf", text)


def _molecule_fdf(text: str) -> Any:
    from hpcgate.services.molecules import parse_fdf

    return parse_fdf(text)


def _molecule_xyz(text: str) -> Any:
    from hpcgate.services.molecules import parse_xyz

    return parse_xyz(text)


def _redact(text: str) -> Any:
    from hpcgate.logging import redact

    return redact(text)


def _siesta_stdout(text: str) -> Any:
    from analyses.siesta.stdout import parse_siesta_stdout

    return parse_siesta_stdout(text.splitlines())


def _pw_stdout(text: str) -> Any:
    from analyses.qe.stdout import parse_pw_stdout

    return parse_pw_stdout(text.splitlines())


def _validate(code: str, text: str) -> Any:
    from hpcgate.codes.validation import validate_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out"
        path.write_text(text)
        return validate_file(path, code)


def _validate_siesta(text: str) -> Any:
    return _validate("siesta", text)


def _validate_qe(text: str) -> Any:
    return _validate("qe", text)


# name -> (parser, prefix put before the repeated unit, characters the units are drawn from)
PARSERS: dict[str, tuple[Callable[[str], Any], str, str]] = {
    "qe_namelists": (_qe, "", "&a/= ,\n\t'!"),
    "fdf_scan": (_fdf_scan, "", "%blockendiu <#!;a\n "),
    "molecule_fdf": (_molecule_fdf, "", "%blockend <#A1.\n "),
    "molecule_xyz": (_molecule_xyz, "3\n\n", "H 1.0\n"),
    "redact": (_redact, "", "eyJhbgG.:/@postgresql=token bearer"),
    "siesta_stdout": (_siesta_stdout, "", "siesta:redata=outcoor()scf1.2 \n"),
    "pw_stdout": (_pw_stdout, "", "!total energy=Ry iteration#1.2 \n"),
    "validate_siesta": (_validate_siesta, "Executable      : siesta\n", "scf: 1.2\n-=*"),
    "validate_qe": (_validate_qe, "Program PWSCF v.7.2\n", "iteration #1=Ry\n !"),
}

# Units that did blow up (or would, with the patterns these parsers used to have).
KNOWN: list[tuple[str, str]] = [
    ("qe_namelists", "&a\n"),
    ("qe_namelists", " \n"),
    ("qe_namelists", "&system\n ecutwfc"),
    ("fdf_scan", "%include a\n"),
    ("fdf_scan", " "),
    ("molecule_fdf", "\n"),
    ("molecule_fdf", " \n"),
    ("redact", "eyJ"),
    ("redact", "postgresql://a:"),
    ("siesta_stdout", " "),
    ("siesta_stdout", "("),
    ("pw_stdout", " "),
]


def _timed(name: str, text: str) -> float:
    """Runs in a worker process: the parser's CPU time on ``text`` (refusing it is fine).

    CPU time of this process, not wall time: other work on the machine cannot inflate it.
    """
    parser = PARSERS[name][0]
    start = time.process_time()
    try:
        parser(text)
    except (ValueError, LookupError, TypeError, OSError, RecursionError):
        pass
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in ("hpcgate", "analyses"):
            raise
    return time.process_time() - start


def _elapsed(name: str, text: str) -> float:
    """In the API's own time-limited worker pool: a blow-up is killed, not waited for."""
    from hpcgate.errors import InvalidInput
    from hpcgate.services.parse_pool import get_pool

    try:
        return get_pool(1, 3 * BOUND_S).run(_timed, name, text)
    except InvalidInput:
        return float("inf")  # killed after 3 x the bound


def _blown_up(prefix: str, unit: str) -> str:
    return prefix + unit * (SIZE // len(unit))


@pytest.mark.parametrize(("name", "unit"), KNOWN)
def test_known_pathological_inputs(name: str, unit: str) -> None:
    _, prefix, _ = PARSERS[name]
    elapsed = _elapsed(name, _blown_up(prefix, unit))
    assert elapsed < BOUND_S, f"{name}: 300 KB of {unit!r} took {elapsed:.1f} s (super-linear)"


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(
    max_examples=8,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_parsers_stay_linear_on_repetitive_input(name: str, data: st.DataObject) -> None:
    _, prefix, alphabet = PARSERS[name]
    unit = data.draw(st.text(alphabet=alphabet, min_size=1, max_size=12), label="unit")
    elapsed = _elapsed(name, _blown_up(prefix, unit))
    assert elapsed < BOUND_S, f"{name}: 300 KB of {unit!r} took {elapsed:.1f} s (super-linear)"
