"""SIESTA's side files: ``MESSAGES`` (its own words on a failure) and ``0_NORMAL_EXIT``.

TranSIESTA writes its refusals only to ``MESSAGES`` (e.g. ``FATAL: ts: You have to
calculate the 0 V ...``) while its stdout says ``Stopping Program from Node: 0``; so the
validator folds these files into the analyzer's state before the verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpcgate.codes.report import clean_text
from hpcgate.codes.scan import iter_lines_of

if TYPE_CHECKING:
    from hpcgate.codes.siesta.validate import SiestaAnalyzer

__all__ = ["SIDE_FILE_MAX_SKEW_S", "read_side_files"]

#: Side files are trusted only when written within this many seconds of the stdout,
#: so a MESSAGES left by an earlier run in the same directory is not mixed in.
SIDE_FILE_MAX_SKEW_S = 300.0


def read_side_files(run: SiestaAnalyzer) -> dict[str, Any]:
    """Fold in ``MESSAGES`` and ``0_NORMAL_EXIT`` written next to the stdout."""
    info: dict[str, Any] = {}
    if run.program == "tbtrans":
        return info
    directory = run.source.parent
    try:
        out_mtime = run.source.stat().st_mtime
    except OSError:
        return info
    for name in ("MESSAGES", "0_NORMAL_EXIT"):
        side = directory / name
        try:
            skew = abs(side.stat().st_mtime - out_mtime)
        except OSError:
            continue
        if skew > SIDE_FILE_MAX_SKEW_S:
            run.notes.append(
                f"{name} ignored: written {skew:.0f} s apart from the stdout (left by another run?)"
            )
            continue
        if name == "0_NORMAL_EXIT":
            info["normal_exit_file"] = True
            for i, line in iter_lines_of(side, 4096):
                if line.strip():
                    run.evidence.side(name, i, line)
            if not run.completed:
                run.notes.append("0_NORMAL_EXIT exists but the stdout has no 'Job completed'")
            continue
        info["messages_file"] = True
        for i, line in iter_lines_of(side):
            _message_line(run, i, line)
    return info


def _message_line(run: SiestaAnalyzer, n: int, line: bytes) -> None:
    upper = line.upper()
    if b"SCF_NOT_CONV" in upper:
        if b"WALL TIME" in upper:
            run.out_of_time = True
        elif b"REQUIRED" in upper or upper.startswith(b"FATAL"):
            run.scf_fatal = True
        else:
            run.messages_scf_warn = True
    elif b"GEOM_NOT_CONV" in upper:
        if upper.startswith(b"FATAL"):
            run.geom_fatal = True
        else:
            run.messages_geom_warn = True
    elif b"OUT_OF_TIME" in upper:
        run.out_of_time = True
    elif not upper.startswith(b"FATAL"):
        return
    elif run.fatal_item is None and b"ABNORMAL_TERMINATION" not in upper:
        # (a bare ABNORMAL_TERMINATION states no reason: the stdout's crash line does)
        run.fatal_item = (n, f"[MESSAGES] {clean_text(line)}")
    run.evidence.side("MESSAGES", n, line)
