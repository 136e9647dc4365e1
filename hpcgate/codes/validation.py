"""Run validation ("did this run converge?"): find a run's stdout and dispatch it.

Everything here is independent of the code: the code is recognised from its banner (each
plugin's ``banner_at``), and its analyzer (``hpcgate/codes/<code>/validate.py``) gives
the verdict. The report types live in :mod:`hpcgate.codes.report`, the streaming scanner
in :mod:`hpcgate.codes.scan`; docs/validation.md has the design and the figures.
"""

from __future__ import annotations

import os
from pathlib import Path

from hpcgate.codes.registry import PLUGINS, validating_plugins
from hpcgate.codes.report import ValidationReport, Verdict
from hpcgate.codes.scan import scan_file

__all__ = [
    "detect_code",
    "find_stdout",
    "known_codes",
    "resolve_code",
    "validate_file",
    "validate_path",
]

#: Bytes looked at to recognise the code from its banner.
DETECT_BYTES = 64 << 10
#: Names of stdout files we look for in a run directory (besides ``*.out``).
_STDOUT_SUFFIXES = (".out", ".log", ".pwo", ".stdout")


def known_codes() -> tuple[str, ...]:
    """The codes ``hpcgate validate`` can judge."""
    return tuple(p.name for p in validating_plugins())


def resolve_code(code: str) -> str:
    """A validating code's name from a name or alias; ValueError for anything else."""
    code = code.strip().lower()
    for plugin in validating_plugins():
        if code == plugin.name or code in plugin.aliases:
            return plugin.name
    raise ValueError(f"unknown code {code!r} (expected one of: {', '.join(known_codes())})")


def detect_code(head: bytes) -> str | None:
    """Recognise the code from the banner in the first bytes of a stdout."""
    best: tuple[int, str] | None = None
    for plugin in validating_plugins():
        i = plugin.banner_at(head)
        if i is not None and (best is None or i < best[0]):
            best = (i, plugin.name)
    return best[1] if best else None


def _read_head(path: Path, n: int = DETECT_BYTES) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def find_stdout(directory: Path, code: str | None = None) -> Path | None:
    """Pick the stdout of the run in ``directory``.

    Candidates are ``*.out``/``*.log``/``*.pwo``/``*.stdout`` files whose first 64 KiB
    hold a banner of ``code`` (any known code when None). Preference: the main program
    over a post-processing one (TBtrans), then the most recently modified (the run that
    just finished in this job), then the largest.
    """
    ranked: list[tuple[bool, float, int, str]] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        name = entry.name
        if not (name.endswith(_STDOUT_SUFFIXES) or name == "stdout"):
            continue
        try:
            if not entry.is_file():
                continue
            st = entry.stat()
        except OSError:
            continue
        head = _read_head(Path(entry.path))
        found = detect_code(head)
        if found is None or (code is not None and found != code):
            continue
        main = PLUGINS[found].is_main_program(head)
        ranked.append((main, st.st_mtime, st.st_size, entry.path))
    if not ranked:
        return None
    ranked.sort(reverse=True)
    return Path(ranked[0][3])


def validate_file(path: Path, code: str, *, full_scan: bool = False) -> ValidationReport:
    """Validate one stdout file with the analyzer of ``code``."""
    analyzer = PLUGINS[code].analyzer(path)
    scan = scan_file(path, analyzer, full_scan=full_scan)
    return analyzer.report(scan)


def _no_stdout(directory: Path, code: str | None) -> ValidationReport:
    what = f"{code} " if code else ""
    return ValidationReport(
        status=Verdict.INCOMPLETE,
        code=code or "unknown",
        evidence=[],
        numbers={},
        source=str(directory),
        notes=[f"no {what}stdout (*.out, *.log, *.pwo with a known banner) in {directory}"],
        reason=f"no {what}stdout in {directory}",
    )


def _no_banner(path: Path) -> ValidationReport:
    size = path.stat().st_size
    return ValidationReport(
        status=Verdict.INCOMPLETE,
        code="unknown",
        numbers={"file_size": size},
        source=str(path),
        notes=[
            "no SIESTA, TBtrans or Quantum ESPRESSO banner in the first "
            f"{DETECT_BYTES // 1024} KiB"
            + (" (empty file)" if size == 0 else "")
            + "; pass --code to force one"
        ],
        reason="empty file" if size == 0 else "no known program banner",
    )


def validate_path(
    path: str | os.PathLike[str], code: str | None = None, *, full_scan: bool = False
) -> ValidationReport:
    """Validate a run: ``path`` is a stdout file or a run directory.

    ``code`` is ``"siesta"`` or ``"qe"`` (or an alias); None detects it from the banner.
    Raises FileNotFoundError when ``path`` does not exist and ValueError for an
    unknown ``code``: those are usage errors, not verdicts. A run directory without
    any stdout, or a file without a known banner, is ``incomplete``.
    """
    if code is not None:
        code = resolve_code(code)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"path not found: {p}")
    if p.is_dir():
        found = find_stdout(p, code)
        if found is None:
            return _no_stdout(p, code)
        p = found
    if code is None:
        code = detect_code(_read_head(p))
        if code is None:
            return _no_banner(p)
    return validate_file(p, code, full_scan=full_scan)
