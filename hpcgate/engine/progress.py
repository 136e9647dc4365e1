"""Is a running step's output still moving? Sizes of its ``*.out`` files and a marker count.

Stall detection (``services/stall.py``) needs, per running step and harvest, the total size
of the run directory's ``*.out`` files (SIESTA's ``output.out``, pw.x's ``pw.out``, the
scheduler's ``<job>-<id>.out``) and how many progress markers they hold: SCF iterations
and geometry steps, the ``Marker``\\ s of the codes' tables (``PROGRESS_MARKERS``; one
union for every code: a SIESTA output never prints pw.x's ``iteration #`` lines).

One ``sh -s`` command per runner and harvest covers every running step (local runner,
SSH runner, the agent's login node alike: O(1) remote calls per cluster). The dispatcher
remembers how far it read each file (``ProgressTracker``), so a harvest reads only what
was appended since the last one (at most ``CAP`` bytes per file; beyond that the rest is
skipped, not counted). The shell side counts with ``grep -c -E PROGRESS_ERE``; the
Python side (``count_markers``) with the tables' own pattern; a test holds them equal on
the SIESTA and pw.x fixtures. The job's account owns the directory: a symlinked directory
or file is skipped, and a file name with anything but ``[A-Za-z0-9._-]`` is neither read
nor printed. A process restart re-reads from the start: the count is of the whole file.
"""

from __future__ import annotations

import logging
import re
import shlex
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hpcgate.codes.markers import MarkerTable
from hpcgate.codes.qe import markers as qe
from hpcgate.codes.siesta import markers as siesta
from scheduler_adapters.runners.base import Runner

log = logging.getLogger(__name__)

PROGRESS_MARKERS = MarkerTable(siesta.SCF, siesta.TS_SCF, siesta.BEGIN, qe.ITERATION, qe.SCF_CYCLES)
#: The same lines as POSIX ERE, for ``grep -c -E`` on the cluster.
PROGRESS_ERE = (
    r"^( +(scf: *[0-9]|Begin [^=]*=|iteration # *[0-9]|number of scf cycles +=)|ts-scf: *[0-9])"
)
_GLOB = re.compile(r"[A-Za-z0-9._*-]{1,64}")
CAP = 16 << 20  # bytes read per file and harvest
MAX_FILES = 64  # *.out files per step

_SCRIPT_HEAD = f"""P={shlex.quote(PROGRESS_ERE)}
probe() {{
  id=$1; d=$2; g=$3; shift 3
  [ -d "$d" ] && [ ! -L "$d" ] || return 0
  echo "S $id"
  m=0
  for f in "$d"/$g; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    n=${{f##*/}}
    case $n in *[!A-Za-z0-9._-]*) continue;; esac
    m=$((m+1)); [ "$m" -le {MAX_FILES} ] || break
    s=$(wc -c < "$f" | tr -d ' ') || continue
    o=0; k=
    for a in "$@"; do
      if [ -z "$k" ]; then k=$a; else [ "$k" = "$n" ] && o=$a; k=; fi
    done
    [ "$o" -le "$s" ] || o=0
    c=0
    if [ "$s" -gt "$o" ]; then
      c=$(tail -c +$((o+1)) "$f" | head -c {CAP} | grep -c -E -e "$P")
    fi
    echo "F $s $c $n"
  done
}}
"""


def count_markers(data: bytes) -> int:
    """Progress markers in ``data`` (read from a line start), as the shell side counts."""
    return len(PROGRESS_MARKERS.pattern.findall(b"\n" + data))


@dataclass(frozen=True)
class OutputProgress:
    """A step's ``*.out`` files as one probe saw them: total bytes and markers so far."""

    output_bytes: int
    markers: int
    files: int = 0  # how many files were read


@dataclass(frozen=True)
class ProbeTarget:
    step_id: int  # any key: an array task has two (engine/live_usage.py)
    workdir: str
    # Which files of the directory: ``*.out``, or one array task's ``*_<k>.out``.
    glob: str = "*.out"

    def __post_init__(self) -> None:
        if not _GLOB.fullmatch(self.glob):
            raise ValueError(f"probe glob {self.glob!r}: letters, digits, '._-*' only")


def probe_script(targets: Iterable[ProbeTarget], read: Mapping[int, Mapping[str, int]]) -> str:
    """The ``sh`` program for all targets; ``read``: bytes already read per step and file."""
    lines = [_SCRIPT_HEAD]
    for t in targets:
        pairs = [f"{shlex.quote(name)} {int(off)}" for name, off in read.get(t.step_id, {}).items()]
        head = ["probe", str(int(t.step_id)), shlex.quote(t.workdir), shlex.quote(t.glob)]
        lines.append(" ".join([*head, *pairs]))
    return "\n".join(lines) + "\n"


def parse_probe(text: str) -> dict[int, dict[str, tuple[int, int]]]:
    """``S <id>`` / ``F <size> <new markers> <name>`` lines -> {step: {file: (size, new)}}.

    Lines that do not have that exact shape are ignored (the script prints nothing else)."""
    out: dict[int, dict[str, tuple[int, int]]] = {}
    current: dict[str, tuple[int, int]] | None = None
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) == 2 and parts[0] == "S" and _digits(parts[1]):
            current = out.setdefault(int(parts[1]), {})
        elif len(parts) == 4 and parts[0] == "F" and current is not None:
            _, size, new, name = parts
            if _digits(size) and _digits(new) and name:
                current[name] = (int(size), int(new))
    return out


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) < 19


class ProgressTracker:
    """Per step and file: bytes read and markers counted so far (this process's memory)."""

    def __init__(self) -> None:
        # step id -> (its directory, {file: (bytes read, markers counted)}); a new attempt
        # of a step (recovery ladder) runs in another directory and starts afresh.
        self._files: dict[int, tuple[str, dict[str, tuple[int, int]]]] = {}
        self._lock = threading.Lock()

    def probe(self, runner: Runner, targets: list[ProbeTarget]) -> dict[int, OutputProgress]:
        """One command for every target; a step whose directory could not be read is absent."""
        if not targets:
            return {}
        dirs = {t.step_id: t.workdir for t in targets}
        with self._lock:
            for step_id in list(self._files):
                if self._files[step_id][0] != dirs.get(step_id):
                    del self._files[step_id]  # no longer running, or another attempt
            read = {sid: {n: o for n, (o, _) in f.items()} for sid, (_, f) in self._files.items()}
        script = probe_script(targets, read)
        try:
            result = runner.run(["sh", "-s"], stdin=script, timeout=60)
        except Exception as exc:  # no progress figures this tick; never a failed harvest
            log.warning("output probe failed: %s", exc)
            return {}
        if result.returncode != 0:
            log.warning("output probe exited %s: %s", result.returncode, result.stderr[:300])
        return self._merge(parse_probe(result.stdout), dirs)

    def _merge(
        self, seen: dict[int, dict[str, tuple[int, int]]], dirs: dict[int, str]
    ) -> dict[int, OutputProgress]:
        out: dict[int, OutputProgress] = {}
        with self._lock:
            for step_id, files in seen.items():
                if step_id not in dirs:
                    continue
                known = self._files.setdefault(step_id, (dirs[step_id], {}))[1]
                for name, (size, new) in files.items():
                    offset, count = known.get(name, (0, 0))
                    known[name] = (size, (count if size >= offset else 0) + new)
                out[step_id] = OutputProgress(
                    sum(size for size, _ in known.values()),
                    sum(c for _, c in known.values()),
                    len(known),
                )
        return out


TRACKER = ProgressTracker()
