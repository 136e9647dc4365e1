"""The recovery ladder's continuations on the real codes and the real Slurm (issue 17 gaps).

* SIESTA 4.1 H2O relaxation (CG) capped at 3 moves: ``geometry_not_converged``; attempt 2
  reads the saved geometry (``MD.UseSaveXV``, the ``.XV``), CG history and DM, and needs
  fewer moves than an uninterrupted run, to its energy;
* pw.x told to stop itself (``max_seconds``, set small by the test so the checkpoint comes
  at once): a clean stop with restart files, ``incomplete``; attempt 2 has a longer walltime
  and ``restart_mode='restart'`` from the inherited outdir, and the direct run's energy;
* SIESTA killed by Slurm at a 1-minute time limit (TIMEOUT): ``incomplete``; attempt 2 gets
  twice the walltime (at most the queue's limit) and continues from the DM, XV and CG files.
  Slurm counts limits in minutes and checks them about every 30 s, so a walltime end takes
  60-90 s of waiting: the slowest test here (a few minutes).

Attempts and moves are counted, never timed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hpcgate.db.models import QueueMapping, StepAttempt
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.ci import missing, require_tool
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.siesta_env import (
    DM_READ_MARKER,
    final_energy_ev,
    require_siesta,
    run_siesta,
    siesta_case,
)
from tests.integration.engine.test_recovery_ladder import _attempts  # one reading of the rows

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

XV_READ_MARKER = "ioxv: Reading coordinates and velocities from file"
CG_READ_MARKER = "iocg: Reading CG continuation file"
MOVE_RE = re.compile(r"^\s+Begin CG opt\. move =", re.M)
QE_PSEUDO = Path("/usr/share/espresso/pseudo/Si.pz-vbc.UPF")
# Si (diamond), 8x8x8 k-points, slow mixing: ~30 SCF iterations, a few seconds; max_seconds=1
# makes pw.x stop itself after the first second (the checkpoint), whatever the machine.
SI = """&control
  calculation='scf', prefix='si', pseudo_dir='/usr/share/espresso/pseudo', outdir='./tmp',
  max_seconds=1
/
&system
  ibrav=2, celldm(1)=10.26, nat=2, ntyp=1, ecutwfc=30.0
/
&electrons
  conv_thr=1.0d-12, mixing_beta=0.1
/
ATOMIC_SPECIES
  Si 28.086 Si.pz-vbc.UPF
ATOMIC_POSITIONS alat
  Si 0.00 0.00 0.00
  Si 0.25 0.25 0.25
K_POINTS automatic
  8 8 8 0 0 0
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")
    with engine_env(tmp_path_factory.mktemp("continuations"), "hpcgate_rec_cont") as e:
        yield e


def _cluster(env: EngineEnv, tmp_path: Path, max_walltime_s: int | None = None) -> int:
    """A Slurm cluster the worker drives itself; its queue's walltime limit if given."""
    cid = env.add_cluster(
        f"cont-{uuid.uuid4().hex[:6]}",
        scheduler="slurm",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
    )
    with session_scope(env.factory) as s:
        queue = s.scalar(select(QueueMapping).where(QueueMapping.cluster_id == cid))
        assert queue is not None
        queue.max_walltime_s = max_walltime_s
    return cid


def _settle(env: EngineEnv, calc_id: int, timeout: float, every: float = 0.5) -> None:
    conns = ClusterConnections()

    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="cont-worker")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    try:
        env.run_until_settled(calc_id, tick, timeout=timeout, every=every)
    finally:
        conns.close()


def _changes(row: StepAttempt) -> dict[str, Any]:
    return {c["key"]: c["new"] for c in row.changes}


def _first_coordinates_bohr(out: Path) -> list[float]:
    """The geometry a SIESTA run started from (its first coordinate block, in Bohr, flat)."""
    text = out.read_text(errors="replace")
    block = text.split("siesta: Atomic coordinates (Bohr) and species", 1)[1]
    rows = []
    for line in block.splitlines()[1:]:
        words = line.split()
        if len(words) < 6 or words[0] != "siesta:":
            break
        rows += [float(words[1]), float(words[2]), float(words[3])]
    return rows


def _xv_coordinates_bohr(xv: Path) -> list[float]:
    """A SIESTA ``.XV``'s positions (Bohr, flat): 3 cell lines, the count, one line an atom."""
    lines = xv.read_text().splitlines()
    count = int(lines[3].split()[0])
    return [float(w) for line in lines[4 : 4 + count] for w in line.split()[2:5]]


def _one_step(env: EngineEnv, calc_id: int) -> Any:
    (step,) = env.steps(calc_id)
    assert env.calc(calc_id).state is CalculationState.COMPLETED, (step.state, step.state_reason)
    return step


def test_siesta_geometry_continues_from_the_saved_geometry(env: EngineEnv, tmp_path: Path) -> None:
    tools = require_siesta()
    cid = _cluster(env, tmp_path)
    files = siesta_case("h2o_relax", tools)
    calc_id = env.create(
        name="H2O relaxation capped at 3 CG moves",
        cluster_id=cid,
        logical_queue="default",
        code="siesta",
        configuration={
            "kind": "single",
            "inputs": files,
            "main_input": "h2o_relax.fdf",
            "parameters": {"MD.NumCGsteps": 3},
            "resources": {"tasks": 1, "walltime_s": 300},
        },
    )
    _settle(env, calc_id, timeout=300)
    step = _one_step(env, calc_id)
    first, second = _attempts(env, step.id)
    assert (first.verdict, first.state) == ("geometry_not_converged", StepState.INVALID.value)
    assert second.rung == "more_geometry_steps"
    assert _changes(second) == {
        "DM.UseSaveDM": "true",
        "MD.UseSaveXV": "true",
        "MD.UseSaveCG": "true",
        "MD.NumCGsteps": 50,
    }
    capped = Path(first.workdir or "") / "h2o_relax.out"
    out = Path(step.workdir or "") / "h2o_relax.out"
    text = out.read_text(errors="replace")
    for marker in (XV_READ_MARKER, CG_READ_MARKER, DM_READ_MARKER):
        assert marker in text
    # It started where attempt 1 stopped: its first geometry is attempt 1's saved XV ...
    saved = _xv_coordinates_bohr(Path(first.workdir or "") / "h2o_relax.XV")
    started = _first_coordinates_bohr(out)
    assert started == pytest.approx(saved, abs=2e-5)
    assert started != pytest.approx(_first_coordinates_bohr(capped), abs=1e-2)
    # ... and needed fewer moves than one uninterrupted run, to the same energy.
    direct = run_siesta(tmp_path / "direct", files, "h2o_relax.fdf")
    direct_moves = len(MOVE_RE.findall(direct.read_text(errors="replace")))
    assert len(MOVE_RE.findall(capped.read_text(errors="replace"))) == 4  # moves 0-3
    assert len(MOVE_RE.findall(text)) < direct_moves
    assert final_energy_ev(out) == pytest.approx(final_energy_ev(direct), abs=1e-3)


def _pw(workdir: Path, text: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "pw.in").write_text(text)
    out = workdir / "pw.out"
    with (workdir / "pw.in").open("rb") as stdin, out.open("wb") as stdout:
        subprocess.run(
            ["pw.x"], cwd=workdir, stdin=stdin, stdout=stdout, check=True, timeout=300,
            env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
    return out


def _total_energy_ry(out: Path) -> float:
    found = re.findall(r"^!\s+total energy\s+=\s+(\S+) Ry", out.read_text(), re.M)
    assert found, out
    return float(found[-1])


def test_qe_walltime_checkpoint_restarts_with_a_longer_walltime(
    env: EngineEnv, tmp_path: Path
) -> None:
    if shutil.which("pw.x") is None or not QE_PSEUDO.exists():
        missing("Quantum ESPRESSO is not installed (scripts/services/qe.sh)")
    cid = _cluster(env, tmp_path, max_walltime_s=600)
    calc_id = env.create(
        name="Si stopped by max_seconds",
        cluster_id=cid,
        logical_queue="default",
        code="qe",
        configuration={
            "kind": "single",
            "inputs": {"pw.in": SI},
            "resources": {"tasks": 1, "walltime_s": 120},
        },
    )
    (planned,) = env.steps(calc_id)
    assert "max_seconds=1" in planned.spec["files"]["pw.in"]  # the user's smaller value stays
    _settle(env, calc_id, timeout=300)
    step = _one_step(env, calc_id)
    first, second = _attempts(env, step.id)
    stopped = (Path(first.workdir or "") / "pw.out").read_text()
    assert "Maximum CPU time exceeded" in stopped  # pw.x stopped itself, cleanly
    assert (first.verdict, first.state) == ("incomplete", StepState.INVALID.value)
    assert second.rung == "longer_walltime"
    assert _changes(second) == {
        "control.restart_mode": "restart",
        "control.max_seconds": 180,  # 240 s less the 60 s margin
        "walltime_s": 240,
    }
    assert step.spec["resources"]["walltime_s"] == 240
    text = (Path(step.workdir or "") / "pw.out").read_text()
    resumed = re.search(r"Calculation restarted from scf iteration #\s*(\d+)", text)
    assert resumed is not None, text[:3000]
    assert int(resumed.group(1)) > 1
    assert "convergence has been achieved" in text
    direct = _pw(tmp_path / "direct", SI.replace("max_seconds=1", "max_seconds=10000"))
    assert _total_energy_ry(Path(step.workdir or "") / "pw.out") == pytest.approx(
        _total_energy_ry(direct), abs=1e-6
    )


def _sacct(job_id: str) -> tuple[str, str]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,Timelimit"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    state, _, limit = out[0].partition("|")
    return state, limit


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_siesta_walltime_end_continues_with_a_longer_walltime(
    env: EngineEnv, tmp_path: Path
) -> None:
    tools = require_siesta()
    cid = _cluster(env, tmp_path, max_walltime_s=240)
    calc_id = env.create(
        name="H2O relaxation past a 1-minute limit",
        cluster_id=cid,
        logical_queue="default",
        code="siesta",
        configuration={
            "kind": "single",
            "inputs": siesta_case("h2o_relax_slow", tools),
            "main_input": "h2o_relax_slow.fdf",
            "resources": {"tasks": 1, "walltime_s": 60},
        },
    )
    _settle(env, calc_id, timeout=900, every=2)
    step = _one_step(env, calc_id)
    rows = _attempts(env, step.id)
    first, second = rows[0], rows[1]
    assert first.verdict == "incomplete"
    assert first.state == StepState.FAILED.value
    assert _sacct(first.scheduler_job_id or "") == ("TIMEOUT", "00:01:00")
    assert second.rung == "longer_walltime"
    assert _changes(second) == {
        "DM.UseSaveDM": "true",
        "MD.UseSaveXV": "true",
        "MD.UseSaveCG": "true",
        "walltime_s": 120,
    }
    if second.scheduler_job_id:  # attempt 2 ended too (a loaded machine): its own limit
        assert _sacct(second.scheduler_job_id)[1] == "00:02:00"
    # Doubled each time, never beyond the queue's 240 s: at most attempts 60, 120, 240 s.
    assert [_changes(r).get("walltime_s") for r in rows[1:]] == [120, 240][: len(rows) - 1]
    assert step.spec["resources"]["walltime_s"] <= 240
    for earlier, later in pairwise(rows):
        out = (Path(later.workdir or "") / "h2o_relax_slow.out").read_text(errors="replace")
        assert XV_READ_MARKER in out  # continued, not restarted
        assert DM_READ_MARKER in out
        saved = _xv_coordinates_bohr(Path(earlier.workdir or "") / "h2o_relax_slow.XV")
        assert _first_coordinates_bohr(Path(later.workdir or "") / "h2o_relax_slow.out") == (
            pytest.approx(saved, abs=2e-5)
        )
    final = (Path(step.workdir or "") / "h2o_relax_slow.out").read_text(errors="replace")
    assert "Job completed" in final
