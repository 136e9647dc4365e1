"""Output progress probe (issue 17): one ``sh`` for all steps, the same count as Python.

Run for real: ``sh``, ``wc``, ``tail``, ``head`` and ``grep -E`` of this machine through a
LocalRunner (the SSH runner and the agent run the same script).
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from hpcgate.engine.progress import (
    ProbeTarget,
    ProgressTracker,
    count_markers,
    parse_probe,
    probe_script,
)
from scheduler_adapters.runners.local import LocalRunner
from tests.helpers.fixtures_path import require_siesta_fixtures

QE_LINES = (
    b"     Self-consistent Calculation\n\n     iteration #  1     ecut=    25.00 Ry\n"
    b"     total energy              =     -15.79 Ry\n     iteration #  2     ecut=\n"
    b"     number of scf cycles    =   3\n     number of bfgs steps    =   1\n"
    b"iteration # 3 (not indented: not a marker)\n"
)
SIESTA_LINES = (
    b"   scf:    1   -2345.67  -2345.60\n   scf:    2   -2345.70\nts-scf:    3  1.0\n"
    b"                     Begin CG opt. move =      0\nscf: 9 (not indented)\n"
)


def _probe(tmp_path: Path, tracker: ProgressTracker, *dirs: Path) -> dict[int, tuple[int, int]]:
    runner = LocalRunner(str(tmp_path))
    targets = [ProbeTarget(i + 1, str(d)) for i, d in enumerate(dirs)]
    seen = tracker.probe(runner, targets)
    return {k: (v.output_bytes, v.markers) for k, v in seen.items()}


def test_python_count_of_synthetic_lines() -> None:
    assert count_markers(QE_LINES) == 3
    assert count_markers(SIESTA_LINES) == 4


def test_shell_counts_like_python_on_real_outputs(tmp_path: Path) -> None:
    fixtures = require_siesta_fixtures()
    outputs = sorted(fixtures.rglob("*.out"))[:12]
    assert outputs
    for i, out in enumerate(outputs):
        d = tmp_path / f"s{i}"
        d.mkdir()
        (d / "output.out").write_bytes(out.read_bytes())
        seen = _probe(tmp_path, ProgressTracker(), d)
        assert seen[1] == (out.stat().st_size, count_markers(out.read_bytes())), out


def test_incremental_reads_and_hostile_entries(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "output.out").write_bytes(SIESTA_LINES)
    (a / "job-12.out").write_bytes(b"hello\n")
    (a / "notes.txt").write_bytes(QE_LINES)  # not *.out: not counted
    (b / "pw.out").write_bytes(QE_LINES)
    (b / "evil name.out").write_bytes(SIESTA_LINES)  # a name outside [A-Za-z0-9._-]
    os.symlink("/etc/passwd", b / "link.out")  # a planted link
    tracker = ProgressTracker()
    first = _probe(tmp_path, tracker, a, b, tmp_path / "missing")
    assert first == {1: (len(SIESTA_LINES) + 6, 4), 2: (len(QE_LINES), 3)}
    with open(a / "output.out", "ab") as fh:
        fh.write(b"   scf:    3   -2345.71\n")
    second = _probe(tmp_path, tracker, a, b)
    assert second[1] == (len(SIESTA_LINES) + 6 + 24, 5)
    assert second[2] == first[2]
    (b / "pw.out").write_bytes(b"     iteration #  1\n")  # rewritten shorter: counted afresh
    assert _probe(tmp_path, tracker, a, b)[2] == (20, 1)
    # step 1 now runs in b (another attempt): counted afresh there, a is forgotten
    assert _probe(tmp_path, tracker, b) == {1: (20, 1)}


def test_script_quotes_paths_and_names() -> None:
    script = probe_script([ProbeTarget(5, "/scratch/x'; rm -rf /; '")], {5: {"a.out": 10}})
    assert "probe 5 '/scratch/x'\"'\"'; rm -rf /; '\"'\"'' '*.out' a.out 10" in script


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_parse_probe_ignores_anything_else(text: str) -> None:
    for files in parse_probe(text).values():
        for name, (size, new) in files.items():
            assert name
            assert size >= 0
            assert new >= 0


def test_parse_probe_lines() -> None:
    text = "S 4\nF 120 3 output.out\nF x 1 bad.out\nS 5\nF 0 0 pw.out\ngarbage\n"
    assert parse_probe(text) == {4: {"output.out": (120, 3)}, 5: {"pw.out": (0, 0)}}
