"""Find a SIESTA run's files in its directory, and open them the way sisl can read them.

A TranSIESTA step directory holds several stdouts (device, electrode, TBtrans) and
several fdf files, so "the ``*.out``" is ambiguous in two ways: for sisl
(``get_sile("x.out")`` matches GULP, ORCA and SIESTA siles) and for us. The rules:

1. a hint in ``ctx.files`` (``stdout``, ``tbtrans_stdout``, ``fdf``, ``label``) wins: the
   job script knows what it ran;
2. otherwise the *main* fdf is the one no other fdf names as an electrode (``TS.Elec.*``
   blocks point at ``<electrode label>.TSHS``); its ``SystemLabel`` names the outputs;
3. stdouts are recognised by their banner (``Siesta Version``/``Executable : siesta``
   vs ``TBtrans Version``/``Executable : tbtrans``), preferring ``<label>.out``, then
   files that are not an electrode's, then the largest.

Text is always read with ``errors="replace"``: SIESTA 5 outputs can contain bytes that
are not UTF-8 and sisl raises ``UnicodeDecodeError`` on them when it opens the file
itself; handing sisl an already-open handle avoids it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from analyses.base import ExtractContext, ExtractionError
from analyses.siesta.stdout import SiestaStdout, read_siesta_stdout

__all__ = [
    "electrode_labels",
    "find_fdf",
    "find_label_file",
    "find_siesta_stdout",
    "find_tbtrans_stdout",
    "open_stdout_sile",
    "parsed_stdout",
    "run_label",
    "system_label",
]

_STDOUT_SUFFIXES = (".out", ".log", ".stdout")
_BANNER_BYTES = 4096
_LABEL_RE = re.compile(r"^\s*SystemLabel\s+(\S+)", re.IGNORECASE | re.MULTILINE)
_ELEC_TSHS_RE = re.compile(r"^\s*(?:TSHS|HS|HS-file)\s+(\S+)", re.IGNORECASE | re.MULTILINE)
_ELEC_BLOCK_RE = re.compile(
    r"^\s*%block\s+TS[._-]?Elec[._-]?\S*\s*$(.*?)^\s*%endblock", re.IGNORECASE | re.MULTILINE | re.S
)


def _hint(run_dir: Path, ctx: ExtractContext, key: str) -> Path | None:
    name = ctx.files.get(key)
    if not name:
        return None
    path = run_dir / name
    if not path.is_file():
        raise ExtractionError(f"{key} file {name} (given by the job) is not in {run_dir}")
    return path


def _read_text(path: Path, limit: int | None = None) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read(limit) if limit is not None else fh.read()


def _banner(path: Path) -> str | None:
    """``siesta``, ``tbtrans`` or None, from the first lines of a file."""
    try:
        head = _read_text(path, _BANNER_BYTES)
    except OSError:
        return None
    lowered = head.lower()
    if "tbtrans version" in lowered or re.search(r"executable\s*:\s*tbtrans", lowered):
        return "tbtrans"
    if "siesta version" in lowered or re.search(r"executable\s*:\s*siesta", lowered):
        return "siesta"
    if "welcome to siesta" in lowered:
        return "siesta"
    return None


def system_label(fdf: Path) -> str | None:
    """``SystemLabel`` of an fdf file, read as text (no sisl: cheap and tolerant)."""
    match = _LABEL_RE.search(_read_text(fdf))
    return match.group(1) if match else None


def electrode_labels(fdf: Path) -> set[str]:
    """Labels of the electrodes an fdf uses (``TSHS ./elec_au_100.TSHS`` -> elec_au_100)."""
    labels: set[str] = set()
    for block in _ELEC_BLOCK_RE.findall(_read_text(fdf)):
        for ref in _ELEC_TSHS_RE.findall(block):
            labels.add(Path(ref).name.rsplit(".", 1)[0])
    return labels


def find_fdf(run_dir: Path, ctx: ExtractContext) -> Path | None:
    """The main input: the hinted one, else the fdf no other fdf uses as an electrode."""
    hinted = _hint(run_dir, ctx, "fdf")
    if hinted is not None:
        return hinted
    fdfs = sorted(p for p in run_dir.glob("*.fdf") if p.is_file())
    if len(fdfs) <= 1:
        return fdfs[0] if fdfs else None
    used_as_electrode: set[str] = set()
    for fdf in fdfs:
        used_as_electrode |= electrode_labels(fdf)
    main = [f for f in fdfs if (system_label(f) or f.stem) not in used_as_electrode]
    candidates = main or fdfs
    return max(candidates, key=lambda p: (p.stat().st_size, p.name))


def run_label(run_dir: Path, ctx: ExtractContext) -> str | None:
    """The run's SystemLabel: the hint, else the main fdf's (SIESTA's default ``siesta``)."""
    if ctx.files.get("label"):
        return ctx.files["label"]
    fdf = find_fdf(run_dir, ctx)
    if fdf is None:
        return None
    return system_label(fdf) or "siesta"  # SIESTA's default label


def _electrodes(run_dir: Path) -> set[str]:
    found: set[str] = set()
    for fdf in run_dir.glob("*.fdf"):
        found |= electrode_labels(fdf)
    return found


def _find_stdout(run_dir: Path, ctx: ExtractContext, program: str, hint: str) -> Path | None:
    hinted = _hint(run_dir, ctx, hint)
    if hinted is not None:
        return hinted
    candidates = [
        p
        for p in run_dir.iterdir()
        if p.is_file() and (p.suffix in _STDOUT_SUFFIXES or p.name == "stdout")
    ]
    matching = [p for p in candidates if _banner(p) == program]
    if not matching:
        return None
    label = run_label(run_dir, ctx)
    electrodes = _electrodes(run_dir)
    preferred = {f"{label}.out", "RUN.out", "stdout"} if label else {"RUN.out", "stdout"}
    if program == "tbtrans" and label:
        preferred |= {f"tbt_{label}.out", "TBT.out"}

    def rank(p: Path) -> tuple[bool, bool, int, str]:
        return (p.name in preferred, p.stem not in electrodes, p.stat().st_size, p.name)

    return max(matching, key=rank)


def find_siesta_stdout(run_dir: Path, ctx: ExtractContext) -> Path:
    path = _find_stdout(run_dir, ctx, "siesta", "stdout")
    if path is None:
        raise ExtractionError(f"no SIESTA stdout (a *.out with a SIESTA banner) in {run_dir}")
    return path


def find_tbtrans_stdout(run_dir: Path, ctx: ExtractContext) -> Path | None:
    return _find_stdout(run_dir, ctx, "tbtrans", "tbtrans_stdout")


def find_label_file(run_dir: Path, ctx: ExtractContext, suffix: str) -> Path | None:
    """``<SystemLabel><suffix>`` if present, else the only ``*<suffix>`` in the directory."""
    label = run_label(run_dir, ctx)
    if label:
        exact = run_dir / f"{label}{suffix}"
        if exact.is_file():
            return exact
    matches = sorted(p for p in run_dir.glob(f"*{suffix}") if p.is_file())
    electrodes = _electrodes(run_dir)
    matches = [p for p in matches if p.name[: -len(suffix)] not in electrodes] or matches
    if len(matches) == 1:
        return matches[0]
    return None


@contextmanager
def open_stdout_sile(path: Path) -> Iterator[Any]:
    """A sisl ``stdoutSileSiesta`` over a lossy-decoded handle (one per read: sisl does not
    rewind a handle it did not open)."""
    import sisl.io.siesta as siesta_io

    with open(path, encoding="utf-8", errors="replace") as fh:
        yield siesta_io.stdoutSileSiesta(fh)


def parsed_stdout(run_dir: Path, ctx: ExtractContext) -> tuple[Path, SiestaStdout]:
    """The main stdout, scanned once per extraction and shared through ``ctx.cache``."""
    key = f"siesta.stdout:{run_dir}"
    cached: tuple[Path, SiestaStdout] | None = ctx.cache.get(key)
    if cached is None:
        path = find_siesta_stdout(run_dir, ctx)
        cached = (path, read_siesta_stdout(path))
        ctx.cache[key] = cached
    return cached
