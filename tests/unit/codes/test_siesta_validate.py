"""SIESTA/TranSIESTA/TBtrans validation on the real fixtures (4.1, MaX-1.0, 5.1).

Expected numbers are read from the files here with plain regexes over the raw lines,
independently of the validator; the verdicts are the ones documented for each case
in shared/fixtures/siesta/README.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcgate.codes import scan
from hpcgate.codes.report import ValidationReport, Verdict
from hpcgate.codes.siesta.validate import validate_siesta
from hpcgate.codes.validation import validate_path
from tests.helpers.ci import missing
from tests.helpers.fixtures_path import require_siesta_fixtures, siesta_fixtures_dir

# Every stdout of every fixture case, with the verdict its README documents.
EXPECTED: dict[str, Verdict] = {
    "h2o_scf_siesta5/RUN.out": Verdict.CONVERGED,
    "si_pdos_siesta5/RUN.out": Verdict.CONVERGED,
    "fe_bands_siesta5/RUN.out": Verdict.CONVERGED,
    "srtio3_large_siesta5/RUN.out": Verdict.CONVERGED,
    "graphene_transiesta_siesta5/RUN.out": Verdict.CONVERGED,
    "graphene_transiesta_siesta5/electrode/RUN.out": Verdict.CONVERGED,
    "graphene_transiesta_siesta5/TBT.out": Verdict.CONVERGED,
    "c60_tbtrans_projection/TBT.out": Verdict.CONVERGED,
    "ts_au_100_bias_siesta41/0.00V/au_100.out": Verdict.CONVERGED,
    "ts_au_100_bias_siesta41/0.00V/elec_au_100.out": Verdict.CONVERGED,
    "ts_au_100_bias_siesta41/0.00V/tbt_au_100.out": Verdict.CONVERGED,
    "ts_au_100_bias_siesta41/0.25V/au_100.out": Verdict.CONVERGED,
    "ts_au_100_bias_siesta41/0.25V/elec_au_100.out": Verdict.CONVERGED,
    "ts_au_100_bias_siesta41/0.25V/tbt_au_100.out": Verdict.CONVERGED,
    "graphite_relax_large_siesta41/graphite_c6_full.out": Verdict.CONVERGED,
    "si_scf_not_converged_abort_max1/aiida.out": Verdict.SCF_NOT_CONVERGED,
    "si_geom_not_converged_max1/aiida.out": Verdict.GEOMETRY_NOT_CONVERGED,
    "si_scf_converged_max1/aiida.out": Verdict.CONVERGED,
}

# Run directories (validate_path on a directory) and the stdout it must pick.
EXPECTED_DIRS: dict[str, str] = {
    "h2o_scf_siesta5": "RUN.out",
    "si_pdos_siesta5": "RUN.out",
    "fe_bands_siesta5": "RUN.out",
    "srtio3_large_siesta5": "RUN.out",
    "graphene_transiesta_siesta5": "RUN.out",  # not TBT.out: SIESTA before TBtrans
    "graphene_transiesta_siesta5/electrode": "RUN.out",
    "c60_tbtrans_projection": "TBT.out",  # only a TBtrans stdout there
    "graphite_relax_large_siesta41": "graphite_c6_full.out",
    "si_scf_not_converged_abort_max1": "aiida.out",
    "si_geom_not_converged_max1": "aiida.out",
    "si_scf_converged_max1": "aiida.out",
}

TERMINAL = re.compile(r"^(SCF_NOT_CONV|GEOM_NOT_CONV|ABNORMAL_TERMINATION|Job completed|>> End)")


# --------------------------------------------------------------------------- helpers
def fixture(rel: str) -> Path:
    path = require_siesta_fixtures() / rel
    if not path.exists():
        missing(f"fixture {path} missing")
    return path


def raw_lines(path: Path) -> list[str]:
    """Lines split on b'\\n' only (the garbage bytes of h2o contain b'\\r')."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.decode("latin-1") for line in lines]


def grep(path: Path, pattern: str) -> list[tuple[int, str]]:
    rx = re.compile(pattern)
    return [(i, line) for i, line in enumerate(raw_lines(path), start=1) if rx.search(line)]


def last_float(path: Path, pattern: str) -> float | None:
    hits = grep(path, pattern)
    if not hits:
        return None
    return float(hits[-1][1].split("=")[-1].split()[0])


def is_tbtrans(path: Path) -> bool:
    return bool(grep(path, r"WELCOME TO TBtrans"))


def expected_numbers(path: Path) -> dict[str, object]:
    """The key numbers, read with plain regexes (not the validator's)."""
    out: dict[str, object] = {}
    version = grep(path, r"^(Siesta |TBtrans )?Version\s*:")
    out["version"] = version[0][1].split(":", 1)[1].split()[0] if version else None
    if is_tbtrans(path):
        currents = {}
        for _, line in grep(path, r"V \[V\] / I \[A\]"):
            m = re.search(r"(\S+ -> \S+), V \[V\] / I \[A\]:\s*(\S+)\s*V\s*/\s*(\S+)\s*A", line)
            assert m is not None
            currents[m.group(1)] = float(m.group(3))
        out["currents_a"] = currents
        return out
    final = grep(path, r"^siesta: Final energy")
    out["energy_total_ev"] = last_float(path, r"^siesta:\s+Total =") if final else None
    out["fermi_ev"] = last_float(path, r"^siesta:\s+Fermi =") if final else None
    scf = grep(path, r"^(   |ts-)scf:\s*\d")
    out["scf_iterations_total"] = len(scf)
    out["scf_iterations_last"] = int(scf[-1][1].split(":")[1].split()[0]) if scf else None
    maxf = grep(path, r"^   Max\s+\S+\s+constrained")
    out["max_force_ev_ang"] = float(maxf[-1][1].split()[1]) if maxf else None
    begins = grep(path, r"^\s+Begin .*=\s*\d+\s*$")
    out["geometry_steps"] = len(begins) if begins else (1 if scf else 0)
    voltage = grep(path, r"^ts: Voltage\s")
    out["bias_v"] = float(voltage[-1][1].split("=")[1].split()[0]) if voltage else None
    return out


def cut_copy(src: Path, dst_dir: Path, fraction: float) -> tuple[Path, int]:
    data = src.read_bytes()
    cut = int(len(data) * fraction)
    dst = dst_dir / f"cut{int(fraction * 1000)}_{src.name}"
    dst.write_bytes(data[:cut])
    return dst, cut


def first_terminal_line(path: Path) -> tuple[int, int] | None:
    """Byte range of the first line that ends a run (abort, completion, failure)."""
    data = path.read_bytes()
    offset = 0
    for line in data.split(b"\n"):
        if TERMINAL.match(line.decode("latin-1")):
            return offset, offset + len(line)
        offset += len(line) + 1
    return None


def small_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the head+tail sampling kick in on the (small) fixtures."""
    monkeypatch.setattr(scan, "FULL_SCAN_MAX_BYTES", 1024)
    monkeypatch.setattr(scan, "HEAD_CHUNK_BYTES", 4096)
    monkeypatch.setattr(scan, "TAIL_INITIAL_BYTES", 8192)


# --------------------------------------------------------------------------- verdicts
def test_every_fixture_case_has_an_expectation() -> None:
    root = require_siesta_fixtures()
    cases = {p.name for p in root.iterdir() if p.is_dir()}
    covered = {rel.split("/")[0] for rel in EXPECTED}
    assert cases - covered == set()
    outs = {str(p.relative_to(root)) for p in root.rglob("*.out")}
    assert outs == set(EXPECTED)


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_fixture_verdict_and_numbers(rel: str) -> None:
    path = fixture(rel)
    report = validate_path(path)
    expected = expected_numbers(path)
    assert report.status == EXPECTED[rel]
    assert report.code == "siesta"
    assert report.source == str(path)
    assert report.exit_code == (0 if EXPECTED[rel] is Verdict.CONVERGED else 1)
    for key, value in expected.items():
        assert report.numbers[key] == value, key
    assert report.numbers["scan"] == "full"
    assert report.numbers["program"] == ("tbtrans" if is_tbtrans(path) else "siesta")


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_evidence_line_numbers_point_at_the_lines(rel: str) -> None:
    path = fixture(rel)
    lines = raw_lines(path)
    report = validate_path(path)
    assert report.evidence
    for line_no, text in report.evidence:
        if text.startswith(("[MESSAGES] ", "[0_NORMAL_EXIT] ")):  # side files
            continue
        assert 1 <= line_no <= len(lines)
        assert lines[line_no - 1].strip().startswith(text.strip()[:60])


def test_scf_abort_evidence_and_messages() -> None:
    path = fixture("si_scf_not_converged_abort_max1/aiida.out")
    report = validate_siesta(path)
    marker = grep(path, r"^SCF_NOT_CONV")
    assert marker[0][1].endswith("(required).")
    assert (marker[0][0], marker[0][1]) in report.evidence
    assert report.numbers["scf_must_converge"] is True
    assert report.numbers["energy_total_ev"] is None
    assert report.numbers["messages_file"] is True
    messages = (path.parent / "MESSAGES").read_text().splitlines()
    assert (1, f"[MESSAGES] {messages[0]}") in report.evidence


def test_geometry_not_converged_evidence() -> None:
    path = fixture("si_geom_not_converged_max1/aiida.out")
    report = validate_siesta(path)
    marker = grep(path, r"^GEOM_NOT_CONV")
    assert (marker[0][0], marker[0][1]) in report.evidence
    assert report.numbers["geometry_steps"] == 4
    assert report.numbers["dynamics"] == "CG coord. optimization"


def test_tbtrans_bias_and_current() -> None:
    path = fixture("ts_au_100_bias_siesta41/0.25V/tbt_au_100.out")
    report = validate_siesta(path)
    assert report.status is Verdict.CONVERGED
    assert report.numbers["bias_v"] == 0.25
    assert report.numbers["currents_a"] == {"Left -> Right": 0.769618e-05}


def test_transiesta_bias_and_two_scf_cycles() -> None:
    path = fixture("ts_au_100_bias_siesta41/0.25V/au_100.out")
    report = validate_siesta(path)
    assert report.numbers["transiesta"] is True
    assert report.numbers["bias_v"] == 0.25
    assert report.numbers["scf_cycles"] == len(grep(path, r"^\s+iscf\s+Eharris"))
    ts_lines = grep(path, r"^ts-scf:")
    assert report.numbers["scf_iterations_last"] == int(ts_lines[-1][1].split()[1])


def test_garbage_bytes_file_is_read() -> None:
    path = fixture("h2o_scf_siesta5/RUN.out")
    data = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    report = validate_siesta(path)
    assert report.status is Verdict.CONVERGED
    assert report.numbers["energy_total_ev"] == -950.957882
    json.loads(report.to_json())


# --------------------------------------------------------------------------- run directories
@pytest.mark.parametrize("rel", sorted(EXPECTED_DIRS))
def test_run_directory_picks_the_stdout(rel: str) -> None:
    directory = fixture(rel)
    report = validate_path(directory)
    assert report.source == str(directory / EXPECTED_DIRS[rel])
    assert report.status == EXPECTED[f"{rel}/{EXPECTED_DIRS[rel]}"]


def test_directory_prefers_most_recent_stdout(tmp_path: Path) -> None:
    ok = fixture("si_scf_converged_max1/aiida.out")
    bad = fixture("si_scf_not_converged_abort_max1/aiida.out")
    shutil.copy(ok, tmp_path / "old.out")
    shutil.copy(bad, tmp_path / "new.out")
    (tmp_path / "notes.out").write_text("not a siesta output\n")
    os.utime(tmp_path / "old.out", (1_000_000, 1_000_000))
    report = validate_path(tmp_path)
    assert report.source == str(tmp_path / "new.out")
    assert report.status is Verdict.SCF_NOT_CONVERGED


def test_directory_without_stdout_is_incomplete(tmp_path: Path) -> None:
    (tmp_path / "input.fdf").write_text("SystemLabel x\n")
    report = validate_path(tmp_path)
    assert report.status is Verdict.INCOMPLETE
    assert report.code == "unknown"
    assert "no stdout" in report.notes[0]


def test_stale_messages_file_is_ignored(tmp_path: Path) -> None:
    src = fixture("si_scf_not_converged_abort_max1")
    shutil.copy(src / "MESSAGES", tmp_path / "MESSAGES")
    good = fixture("si_scf_converged_max1/aiida.out")
    shutil.copy(good, tmp_path / "aiida.out")
    os.utime(tmp_path / "MESSAGES", (1_000_000, 1_000_000))
    report = validate_path(tmp_path)
    assert report.status is Verdict.CONVERGED
    assert any("MESSAGES ignored" in note for note in report.notes)


def test_fresh_messages_warning_is_folded_in(tmp_path: Path) -> None:
    good = fixture("si_scf_converged_max1/aiida.out")
    shutil.copy(good, tmp_path / "aiida.out")
    (tmp_path / "MESSAGES").write_text(
        "WARNING: SCF_NOT_CONV: SCF did not converge  in maximum number of steps.\n"
        "INFO: Job completed\n"
    )
    report = validate_path(tmp_path)
    assert report.status is Verdict.SCF_NOT_CONVERGED


# --------------------------------------------------------------------------- truncation
@pytest.mark.parametrize("rel", sorted(EXPECTED))
@pytest.mark.parametrize("fraction", [0.6, 0.05, 0.3, 0.85, 0.97])
def test_truncated_copy(rel: str, fraction: float, tmp_path: Path) -> None:
    """A stdout cut before its first terminal line (walltime kill) is incomplete.

    Cut after a fatal marker, the most specific cause still wins.
    """
    src = fixture(rel)
    dst, cut = cut_copy(src, tmp_path, fraction)
    terminal = first_terminal_line(src)
    report = validate_path(dst, "siesta")
    if terminal is None or cut <= terminal[0]:
        assert report.status is Verdict.INCOMPLETE
        assert report.exit_code == 1
    elif cut >= terminal[1] and EXPECTED[rel] is not Verdict.CONVERGED:
        assert report.status is EXPECTED[rel]


def test_cut_at_sixty_percent_numbers_are_partial(tmp_path: Path) -> None:
    src = fixture("graphite_relax_large_siesta41/graphite_c6_full.out")
    dst, _ = cut_copy(src, tmp_path, 0.6)
    report = validate_siesta(dst)
    assert report.status is Verdict.INCOMPLETE
    assert report.numbers["energy_total_ev"] is None
    assert report.numbers["geometry_steps"] == len(grep(dst, r"^\s+Begin CG opt\. move"))
    assert report.numbers["scf_iterations_total"] == len(grep(dst, r"^   scf:"))


def test_crash_after_truncation_is_aborted(tmp_path: Path) -> None:
    src = fixture("h2o_scf_siesta5/RUN.out")
    dst, _ = cut_copy(src, tmp_path, 0.6)
    with dst.open("ab") as fh:
        fh.write(
            b"\nProgram received signal SIGSEGV: Segmentation fault - invalid memory reference.\n"
        )
    report = validate_siesta(dst)
    assert report.status is Verdict.ABORTED
    crash = grep(dst, r"Program received signal")
    assert (crash[0][0], crash[0][1]) in report.evidence


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            b"slurmstepd: error: *** STEP 41.0 ON vm CANCELLED AT 2026-01-01T10:00:00 "
            b"DUE TO TIME LIMIT ***\n",
            Verdict.INCOMPLETE,
        ),
        (b"=>> PBS: job killed: walltime 3610 exceeded limit 3600\n", Verdict.INCOMPLETE),
        (
            b"slurmstepd: error: *** STEP 41.0 ON vm CANCELLED AT 2026-01-01T10:00:00 ***\n",
            Verdict.ABORTED,
        ),
        (b"slurmstepd: error: Detected 1 oom-kill event(s) in StepId=41.0.\n", Verdict.ABORTED),
    ],
)
def test_scheduler_kill_lines(tail: bytes, expected: Verdict, tmp_path: Path) -> None:
    """stderr merged into the stdout: the batch system says why the run stopped."""
    src = fixture("graphite_relax_large_siesta41/graphite_c6_full.out")
    dst, _ = cut_copy(src, tmp_path, 0.6)
    with dst.open("ab") as fh:
        fh.write(b"\n" + tail)
    report = validate_siesta(dst)
    assert report.status is expected
    kill = grep(dst, r"(TIME LIMIT|walltime|CANCELLED|oom-kill)")
    assert (kill[-1][0], kill[-1][1].strip()) in report.evidence


# --------------------------------------------------------------------------- derived variants
def _variant(src: Path, dst: Path, replacements: list[tuple[str, str]]) -> Path:
    data = src.read_bytes()
    for old, new in replacements:
        assert old.encode() in data, old
        data = data.replace(old.encode(), new.encode())
    dst.write_bytes(data)
    return dst


def test_scf_must_converge_false_that_completed_is_scf_not_converged(tmp_path: Path) -> None:
    """SCF.MustConverge false: SIESTA warns, goes on and prints 'Job completed'."""
    src = fixture("h2o_scf_siesta5/RUN.out")
    dst = _variant(
        src,
        tmp_path / "RUN.out",
        [
            ("redata: SCF convergence failure will abort job\n", ""),
            (
                "SCF cycle converged after 12 iterations",
                "SCF_NOT_CONV: SCF did not converge  in maximum number of steps.",
            ),
        ],
    )
    report = validate_siesta(dst)
    assert report.status is Verdict.SCF_NOT_CONVERGED
    assert report.numbers["scf_must_converge"] is False
    assert grep(dst, r"^Job completed")
    warn = grep(dst, r"^SCF_NOT_CONV")
    assert (warn[0][0], warn[0][1]) in report.evidence


def test_unrelaxed_final_coordinates_is_geometry_not_converged(tmp_path: Path) -> None:
    src = fixture("graphite_relax_large_siesta41/graphite_c6_full.out")
    dst = _variant(
        src,
        tmp_path / "g.out",
        [("outcoor: Relaxed atomic coordinates", "outcoor: Final (unrelaxed) atomic coordinates")],
    )
    report = validate_siesta(dst)
    assert report.status is Verdict.GEOMETRY_NOT_CONVERGED


def test_out_of_time_is_incomplete(tmp_path: Path) -> None:
    src = fixture("h2o_scf_siesta5/RUN.out")
    dst, _ = cut_copy(src, tmp_path, 0.7)
    with dst.open("ab") as fh:
        fh.write(
            b"\nSCF_NOT_CONV: SCF did not converge before wall time exhaustion\n"
            b"Geom step, scf iteration, dmax:    0     5     0.001\n"
            b"OUT_OF_TIME: Time is up.\nStopping Program from Node:    0\n"
        )
    report = validate_siesta(dst)
    assert report.status is Verdict.INCOMPLETE


def _graphite_with_midfile_warning(tmp_path: Path, *, must_converge: bool) -> Path:
    """Graphite relax whose move-3 SCF failed without aborting (SCF.MustConverge false)."""
    src = fixture("graphite_relax_large_siesta41/graphite_c6_full.out")
    text = src.read_bytes()
    anchor = b"                        Begin CG opt. move =      4"
    i = text.index(anchor)
    j = text.rindex(b"SCF cycle converged after", 0, i)
    k = text.index(b"\n", j)
    text = text[:j] + b"SCF_NOT_CONV: SCF did not converge  in maximum number of steps." + text[k:]
    if not must_converge:
        text = text.replace(b"redata: SCF convergence failure will abort job\n", b"")
    dst = tmp_path / "graphite.out"
    dst.write_bytes(text)
    return dst


def test_midfile_warning_found_when_sampling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The marker is 4 MB from the end; the head says it may exist, so all is read."""
    dst = _graphite_with_midfile_warning(tmp_path, must_converge=False)
    small_sampling(monkeypatch)
    report = validate_siesta(dst)
    assert report.status is Verdict.SCF_NOT_CONVERGED
    assert report.numbers["scan"] == "full"
    warn = grep(dst, r"^SCF_NOT_CONV")
    assert (warn[0][0], warn[0][1]) in report.evidence
    assert report.numbers["scf_not_converged_warnings"] == 1


def test_sampling_skips_middle_when_scf_must_converge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = fixture("graphite_relax_large_siesta41/graphite_c6_full.out")
    small_sampling(monkeypatch)
    report = validate_siesta(src)
    assert report.numbers["scan"] == "sampled"
    assert report.numbers["bytes_read"] < src.stat().st_size // 4
    assert report.numbers["scf_iterations_total"] is None
    assert report.numbers["geometry_steps"] == len(grep(src, r"^\s+Begin CG opt\. move"))


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_sampled_scan_agrees_with_full_scan(rel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = fixture(rel)
    full = validate_path(path)
    n_lines = len(raw_lines(path))
    small_sampling(monkeypatch)
    sampled = validate_path(path)
    assert sampled.status == full.status
    exact_only = {
        "scan",
        "bytes_read",
        "scf_iterations_total",
        "scf_cycles",
        "scf_not_converged_warnings",
    }
    for key, value in full.numbers.items():
        if key in exact_only and sampled.numbers["scan"] == "sampled":
            continue
        assert sampled.numbers[key] == value, key
    full_evidence = set(full.evidence)
    for line_no, text in sampled.evidence:
        absolute = n_lines + line_no + 1 if line_no < 0 else line_no
        assert (absolute, text) in full_evidence


# --------------------------------------------------------------------------- robustness
_FRAGMENTS = [
    b"Siesta Version  : v4.1",
    b"redata: Max. number of SCF Iter = 3",
    b"redata: SCF convergence failure will abort job",
    b"redata: Dynamics option = CG coord. optimization",
    b"                        Begin CG opt. move =      0",
    b"        iscf     Eharris(eV)        E_KS(eV)",
    b"   scf:    1     -1.0  -2.0  -2.0  0.1 -3.0  0.1",
    b"   scf: ***** nan",
    b"ts-scf:",
    b"SCF cycle converged after 1 iterations",
    b"SCF_NOT_CONV: SCF did not converge in maximum number of steps (required).",
    b"GEOM_NOT_CONV: Geometry relaxation not converged",
    b"outcoor: Final (unrelaxed) atomic coordinates",
    b"   Max    ****    constrained",
    b"siesta: Final energy (eV):",
    b"siesta:         Total =   ",
    b"Left -> Right, V [V] / I [A]: x V / y A",
    b"Job completed",
    b"ABNORMAL_TERMINATION",
    b"\xff\xfe\x00\r",
]


def _check_report(report: ValidationReport) -> None:
    assert isinstance(report, ValidationReport)
    assert report.status in set(Verdict)
    data = json.loads(report.to_json())
    assert data["status"] == report.status.value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.one_of(
        st.binary(max_size=3000),
        st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.binary(max_size=40)), max_size=60).map(
            b"\n".join
        ),
    ),
    code=st.sampled_from([None, "siesta", "qe"]),
    sampled=st.booleans(),
)
def test_arbitrary_bytes_never_crash(data: bytes, code: str | None, sampled: bool) -> None:
    saved = (
        scan.FULL_SCAN_MAX_BYTES,
        scan.HEAD_CHUNK_BYTES,
        scan.TAIL_INITIAL_BYTES,
    )
    if sampled:
        scan.FULL_SCAN_MAX_BYTES = 16
        scan.HEAD_CHUNK_BYTES = 64
        scan.TAIL_INITIAL_BYTES = 32
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "RUN.out"
            path.write_bytes(data)
            _check_report(validate_path(path, code))
            _check_report(validate_path(tmp, code))
    finally:
        (
            scan.FULL_SCAN_MAX_BYTES,
            scan.HEAD_CHUNK_BYTES,
            scan.TAIL_INITIAL_BYTES,
        ) = saved


def test_overlong_line_is_capped_and_numbering_kept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Binary junk without newlines must not grow memory nor shift line numbers."""
    monkeypatch.setattr(scan, "STREAM_CHUNK_BYTES", 1 << 16)
    monkeypatch.setattr(scan, "LINE_CAP_BYTES", 1 << 17)
    path = tmp_path / "RUN.out"
    path.write_bytes(b"Siesta Version  : v4.1\n" + b"x" * (3 << 20) + b"\nJob completed\n")
    report = validate_path(path)
    assert report.status is Verdict.CONVERGED
    assert report.evidence[0] == (3, "Job completed")


def test_empty_file_is_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "RUN.out"
    path.write_bytes(b"")
    assert validate_path(path).status is Verdict.INCOMPLETE
    assert validate_path(path, "siesta").status is Verdict.INCOMPLETE


def test_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        validate_path(tmp_path / "missing.out")
    with pytest.raises(ValueError, match="unknown code"):
        validate_path(tmp_path, "vasp")


def test_fixtures_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HPCGATE_SIESTA_FIXTURES", str(tmp_path))
    assert siesta_fixtures_dir() == tmp_path.resolve()
