"""Find and parse a pw.x stdout in a run directory (once per extraction)."""

from __future__ import annotations

from pathlib import Path

from analyses.base import ExtractContext, ExtractionError
from analyses.qe.stdout import PwStdout, read_pw_stdout

__all__ = ["find_pw_stdout", "parsed_pw_stdout"]

_SUFFIXES = (".out", ".log", ".pwo", ".stdout")
_BANNER_BYTES = 8192


def _is_pw(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "Program PWSCF" in fh.read(_BANNER_BYTES)
    except OSError:
        return False


def find_pw_stdout(run_dir: Path, ctx: ExtractContext) -> Path:
    """The hinted stdout, else the largest file with a PWSCF banner."""
    hint = ctx.files.get("stdout")
    if hint:
        path = run_dir / hint
        if not path.is_file():
            raise ExtractionError(f"stdout file {hint} (given by the job) is not in {run_dir}")
        return path
    found = [
        p
        for p in run_dir.iterdir()
        if p.is_file() and (p.suffix in _SUFFIXES or p.name == "stdout") and _is_pw(p)
    ]
    if not found:
        raise ExtractionError(f"no pw.x stdout (a file with a PWSCF banner) in {run_dir}")
    return max(found, key=lambda p: (p.stat().st_size, p.name))


def parsed_pw_stdout(run_dir: Path, ctx: ExtractContext) -> tuple[Path, PwStdout]:
    key = f"qe.stdout:{run_dir}"
    cached: tuple[Path, PwStdout] | None = ctx.cache.get(key)
    if cached is None:
        path = find_pw_stdout(run_dir, ctx)
        cached = (path, read_pw_stdout(path))
        ctx.cache[key] = cached
    return cached
