"""Quantum ESPRESSO validation on real pw.x outputs produced at test time.

pw.x (Debian's quantum-espresso 6.7, installed by scripts/services/qe.sh) runs an H2
molecule in a 12 bohr box: < 1 s per run. Expected numbers are read from the outputs
with plain regexes here, not with the validator.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hpcgate.codes import scan
from hpcgate.codes.qe.validate import validate_qe
from hpcgate.codes.report import Verdict
from hpcgate.codes.validation import validate_path
from tests.helpers.ci import missing

PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
RY_EV = 13.605693122994  # CODATA 2018, as in QE >= 6.6
RY_BOHR_EV_ANG = RY_EV / 0.529177210903

_BASE = """&control
  calculation='{calc}', prefix='{name}', pseudo_dir='{pseudo}', outdir='./tmp',
  tprnfor=.true.{control}
/
&system ibrav=1, celldm(1)=12.0, nat=2, ntyp=1, ecutwfc=25.0 /
&electrons conv_thr={thr}, mixing_beta=0.7{electrons} /
{ions}ATOMIC_SPECIES
  H 1.008 {upf}
ATOMIC_POSITIONS bohr
  H 0.0 0.0 0.0
  H {x} 0.0 0.0
K_POINTS gamma
"""

# name -> (input parameters, expected pw.x exit code, expected verdict)
RUNS: dict[str, tuple[dict[str, str], int, Verdict]] = {
    "scf": ({}, 0, Verdict.CONVERGED),
    "scf_maxstep2": (
        {"thr": "1.0d-12", "electrons": ", electron_maxstep=2"},
        2,
        Verdict.SCF_NOT_CONVERGED,
    ),
    "relax_nstep1": (
        {"calc": "relax", "control": ", nstep=1", "ions": "&ions /\n", "x": "1.6"},
        3,
        Verdict.GEOMETRY_NOT_CONVERGED,
    ),
    "relax": ({"calc": "relax", "ions": "&ions /\n", "x": "1.6"}, 0, Verdict.CONVERGED),
    "relax_tolerated": (
        {
            "calc": "relax",
            "ions": "&ions /\n",
            "x": "1.6",
            "thr": "1.0d-13",
            "electrons": ", electron_maxstep=2, scf_must_converge=.false.",
        },
        0,
        Verdict.SCF_NOT_CONVERGED,
    ),
    "missing_pseudo": ({"upf": "Missing.UPF"}, 1, Verdict.ABORTED),
    "max_seconds": ({"control": ", max_seconds=0.001"}, 255, Verdict.INCOMPLETE),
}


def _input(name: str, params: dict[str, str]) -> str:
    values = {
        "calc": "scf",
        "name": name,
        "pseudo": str(PSEUDO_DIR),
        "control": "",
        "thr": "1.0d-8",
        "electrons": "",
        "ions": "",
        "upf": "H.pz-vbc.UPF",
        "x": "1.4",
    }
    values.update(params)
    return _BASE.format(**values)


@pytest.fixture(scope="module")
def qe_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    """Run pw.x once per case; {name: (stdout path, exit code)}."""
    pw = shutil.which("pw.x")
    if pw is None:
        missing("pw.x not on PATH (install with scripts/services/qe.sh)")
    if not (PSEUDO_DIR / "H.pz-vbc.UPF").exists():
        missing(f"{PSEUDO_DIR}/H.pz-vbc.UPF missing (quantum-espresso-data)")
    root = tmp_path_factory.mktemp("qe")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out: dict[str, tuple[Path, int]] = {}
    for name, (params, _, _) in RUNS.items():
        run_dir = root / name
        run_dir.mkdir()
        (run_dir / f"{name}.in").write_text(_input(name, params))
        stdout = run_dir / f"{name}.out"
        with stdout.open("wb") as fh:
            proc = subprocess.run(
                [pw, "-in", f"{name}.in"],
                cwd=run_dir,
                stdout=fh,
                stderr=subprocess.DEVNULL,
                env=env,
                timeout=120,
                check=False,
            )
        out[name] = (stdout, proc.returncode)
    return out


def grep(path: Path, pattern: str) -> list[tuple[int, str]]:
    rx = re.compile(pattern)
    lines = path.read_bytes().decode("latin-1").split("\n")
    return [(i, line) for i, line in enumerate(lines, start=1) if rx.search(line)]


def _last_number(path: Path, pattern: str) -> float | None:
    hits = grep(path, pattern)
    if not hits:
        return None
    nums = re.findall(r"-?\d+\.\d+(?:[eE][-+]?\d+)?", hits[-1][1].split("=")[-1])
    return float(nums[0])


@pytest.mark.parametrize("name", sorted(RUNS))
def test_real_pw_outputs(name: str, qe_runs: dict[str, tuple[Path, int]]) -> None:
    stdout, rc = qe_runs[name]
    _, expected_rc, expected = RUNS[name]
    assert rc == expected_rc
    report = validate_path(stdout)  # code detected from the banner
    assert report.code == "qe"
    assert report.status is expected
    assert report.exit_code == (0 if expected is Verdict.CONVERGED else 1)
    assert (
        report.numbers["version"]
        == grep(stdout, r"Program PWSCF v\.")[0][1].split("v.")[1].split()[0]
    )
    energy = _last_number(stdout, r"^!\s+total energy")
    if energy is None:
        assert report.numbers["energy_total_ev"] is None
    else:
        assert report.numbers["energy_total_ry"] == energy
        assert report.numbers["energy_total_ev"] == pytest.approx(energy * RY_EV, rel=1e-12)
    iterations = grep(stdout, r"^\s+iteration #")
    assert report.numbers["scf_iterations_total"] == len(iterations)
    ends = grep(stdout, r"convergence (has been|NOT) achieved")
    if ends:
        assert report.numbers["scf_iterations_last"] == int(re.findall(r"\d+", ends[-1][1])[0])
    total_force = grep(stdout, r"Total force =")
    if total_force:
        value = float(total_force[-1][1].split("Total force =")[1].split()[0])
        assert report.numbers["total_force_ry_bohr"] == value
    else:
        assert report.numbers["total_force_ry_bohr"] is None
    forces = grep(stdout, r"^\s+atom\s+\d+\s+type\s+\d+\s+force =")
    if forces:
        last_block = forces[-2:]  # two atoms, only the total force block is printed
        biggest = max(abs(float(v)) for _, line in last_block for v in line.split("=")[1].split())
        assert report.numbers["max_force_ev_ang"] == pytest.approx(biggest * RY_BOHR_EV_ANG)
    assert report.numbers["geometry_steps"] == len(grep(stdout, r"Self-consistent Calculation"))


def test_scf_not_converged_evidence(qe_runs: dict[str, tuple[Path, int]]) -> None:
    stdout, _ = qe_runs["scf_maxstep2"]
    report = validate_qe(stdout)
    marker = grep(stdout, r"convergence NOT achieved after")
    assert (marker[0][0], marker[0][1].strip()) in report.evidence
    done = grep(stdout, r"JOB DONE\.")
    assert (done[0][0], done[0][1].strip()) in report.evidence


def test_geometry_not_converged_evidence(qe_runs: dict[str, tuple[Path, int]]) -> None:
    stdout, _ = qe_runs["relax_nstep1"]
    report = validate_qe(stdout)
    marker = grep(stdout, r"The maximum number of steps has been reached")
    assert (marker[0][0], marker[0][1].strip()) in report.evidence
    assert report.numbers["bfgs_steps"] == 0


def test_relax_numbers(qe_runs: dict[str, tuple[Path, int]]) -> None:
    stdout, _ = qe_runs["relax"]
    report = validate_qe(stdout)
    bfgs = grep(stdout, r"bfgs converged in")
    nums = [int(x) for x in re.findall(r"\d+", bfgs[0][1])]
    assert report.numbers["bfgs_steps"] == nums[1]
    assert report.numbers["geometry_steps"] == nums[0]
    assert report.numbers["final_energy_ry"] == _last_number(stdout, r"Final energy")


def test_tolerated_scf_is_flagged_with_accuracy(qe_runs: dict[str, tuple[Path, int]]) -> None:
    """scf_must_converge=.false.: QE prints 'achieved' though accuracy > threshold."""
    stdout, _ = qe_runs["relax_tolerated"]
    assert grep(stdout, r"convergence has been achieved")
    assert not grep(stdout, r"convergence NOT achieved")
    report = validate_qe(stdout)
    threshold = _last_number(stdout, r"scf convergence threshold")
    assert threshold is not None
    bang = [n for n, _ in grep(stdout, r"^!\s+total energy")]
    lines = stdout.read_bytes().decode("latin-1").split("\n")
    first_acc = float(lines[bang[0]].split("<")[1].split()[0])  # line right after "!"
    assert first_acc > threshold
    assert report.numbers["scf_tolerated_not_converged"] == len(bang)
    assert any("scf accuracy" in text for _, text in report.evidence)


def test_missing_pseudo_error_block(qe_runs: dict[str, tuple[Path, int]]) -> None:
    stdout, _ = qe_runs["missing_pseudo"]
    report = validate_qe(stdout)
    err = grep(stdout, r"Error in routine")
    assert err[0][0] in [n for n, _ in report.evidence]
    assert any("Missing.UPF" in text for _, text in report.evidence)


@pytest.mark.parametrize("name", ["scf", "relax", "scf_maxstep2"])
@pytest.mark.parametrize("fraction", [0.6, 0.2, 0.45])
def test_truncated_copy_is_incomplete(
    name: str, fraction: float, qe_runs: dict[str, tuple[Path, int]], tmp_path: Path
) -> None:
    stdout, _ = qe_runs[name]
    data = stdout.read_bytes()
    cut = data[: int(len(data) * fraction)]
    assert b"JOB DONE" not in cut
    assert b"NOT achieved" not in cut
    dst = tmp_path / stdout.name
    dst.write_bytes(cut)
    report = validate_path(dst)
    assert report.status is Verdict.INCOMPLETE


def test_run_directory_and_crash_tail(qe_runs: dict[str, tuple[Path, int]], tmp_path: Path) -> None:
    stdout, _ = qe_runs["scf"]
    assert validate_path(stdout.parent).source == str(stdout)
    data = stdout.read_bytes()
    dst = tmp_path / "pw.out"
    dst.write_bytes(
        data[: int(len(data) * 0.6)] + b"\nMPI_ABORT was invoked on rank 0 in communicator\n"
    )
    report = validate_path(dst, "qe")
    assert report.status is Verdict.ABORTED


@pytest.mark.parametrize("name", sorted(RUNS))
def test_sampled_scan_agrees(
    name: str, qe_runs: dict[str, tuple[Path, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdout, _ = qe_runs[name]
    full = validate_path(stdout)
    monkeypatch.setattr(scan, "FULL_SCAN_MAX_BYTES", 512)
    monkeypatch.setattr(scan, "HEAD_CHUNK_BYTES", 1024)
    monkeypatch.setattr(scan, "TAIL_INITIAL_BYTES", 1024)
    sampled = validate_path(stdout)
    assert sampled.status is full.status
    n_lines = stdout.read_bytes().count(b"\n")
    full_evidence = set(full.evidence)
    for line_no, text in sampled.evidence:
        absolute = n_lines + line_no + 1 if line_no < 0 else line_no
        assert (absolute, text) in full_evidence
    for key in ("energy_total_ry", "fermi_ev", "scf_iterations_last", "total_force_ry_bohr"):
        assert sampled.numbers[key] == full.numbers[key], key


def test_tolerated_relax_reads_middle_when_input_allows_it(
    qe_runs: dict[str, tuple[Path, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The input says scf_must_converge=.false.: an early 'achieved' may be a lie."""
    stdout, _ = qe_runs["relax_tolerated"]
    monkeypatch.setattr(scan, "FULL_SCAN_MAX_BYTES", 512)
    monkeypatch.setattr(scan, "HEAD_CHUNK_BYTES", 1024)
    report = validate_path(stdout)
    assert report.numbers["scan"] == "full"
    assert report.status is Verdict.SCF_NOT_CONVERGED
