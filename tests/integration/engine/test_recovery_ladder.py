"""The recovery ladder (issue 17) on real codes, the real Slurm and the real PostgreSQL.

* SIESTA H2O capped at 3 SCF iterations: attempt 1 ends ``scf_not_converged``, a later
  attempt continues from its DM and converges, with the energy of an uncapped direct run;
  each attempt kept its own job id and directory;
* the same with pw.x capped at 3 ``electron_maxstep`` (restart from the charge density);
* a chain whose middle step needs a retry: its dependent is withdrawn, waits for the
  successful attempt and runs exactly once;
* the worker is SIGKILLed right after ``sbatch`` of a retry (id not recorded), restarted:
  every attempt's job exists exactly once in Slurm; the same with the real agent process
  (``hpcgate agent --once``), which also proves the ladder in agent mode.

Attempts are counted, never timed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hpcgate.api.app import create_app
from hpcgate.db.models import ServiceLog, StepAttempt
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.agent_env import agent_config
from tests.helpers.ci import missing, require_tool
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server
from tests.helpers.siesta_env import (
    DM_READ_MARKER,
    SiestaTools,
    final_energy_ev,
    require_siesta,
    run_siesta,
    siesta_case,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[3]
QE_PSEUDO = Path("/usr/share/espresso/pseudo/H.pz-vbc.UPF")
H2 = """&control
  calculation='scf', prefix='h2', pseudo_dir='/usr/share/espresso/pseudo', outdir='./tmp'
/
&system
  ibrav=1, celldm(1)=12.0, nat=2, ntyp=1, ecutwfc=25.0
/
&electrons
  conv_thr=1.0d-8, mixing_beta=0.7, electron_maxstep=3
/
ATOMIC_SPECIES
  H 1.008 H.pz-vbc.UPF
ATOMIC_POSITIONS bohr
  H 0.0 0.0 0.0
  H 1.4 0.0 0.0
K_POINTS gamma
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")
    with engine_env(tmp_path_factory.mktemp("recovery"), "hpcgate_recovery") as e:
        yield e


def _cluster(env: EngineEnv, tmp_path: Path) -> int:
    """A Slurm cluster the worker drives itself (local runner)."""
    return env.add_cluster(
        f"recovery-{uuid.uuid4().hex[:6]}",
        scheduler="slurm",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
    )


def _worker(env: EngineEnv) -> tuple[Callable[[], None], ClusterConnections]:
    conns = ClusterConnections()

    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="recovery-worker")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    return tick, conns


def _attempts(env: EngineEnv, step_id: int) -> list[StepAttempt]:
    with session_scope(env.factory) as s:
        rows = list(
            s.scalars(
                select(StepAttempt)
                .where(StepAttempt.step_id == step_id)
                .order_by(StepAttempt.attempt)
            )
        )
        for r in rows:
            s.expunge(r)
        return rows


def _recovery_events(env: EngineEnv, calc_id: int) -> list[str]:
    with session_scope(env.factory) as s:
        return [
            m
            for m in s.scalars(
                select(ServiceLog.message)
                .where(ServiceLog.calculation_id == calc_id)
                .order_by(ServiceLog.id)
            )
            if " recovery: " in m
        ]


def slurm_jobs_named(names: list[str]) -> Counter[str]:
    """Every job Slurm knows (queue + accounting) by name, counted by distinct job id."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-2hours", "--name", ",".join(names),
         "-o", "JobIDRaw,JobName"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    out += subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%j", "-n", ",".join(names)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    seen: dict[str, set[str]] = {}
    for line in out.splitlines():
        jid, _, name = line.partition("|")
        if name in names:
            seen.setdefault(name, set()).add(jid)
    return Counter({n: len(ids) for n, ids in seen.items()})


def _siesta_calc(env: EngineEnv, cid: int, tools: SiestaTools, **config: Any) -> int:
    return env.create(
        name="H2O capped SCF",
        cluster_id=cid,
        logical_queue="default",
        code="siesta",
        configuration={
            "inputs": siesta_case("h2o", tools),
            "main_input": "h2o.fdf",
            "resources": {"tasks": 1, "walltime_s": 300},
            **config,
        },
    )


def _check_attempt_history(env: EngineEnv, step_id: int, final_attempt: int) -> None:
    rows = _attempts(env, step_id)
    assert [r.attempt for r in rows] == list(range(1, final_attempt + 1))
    assert rows[0].verdict == "scf_not_converged"
    assert rows[0].state == StepState.INVALID.value
    assert all(r.changes for r in rows[1:])
    ended = rows[:-1]
    job_ids = [r.scheduler_job_id for r in ended]
    assert all(job_ids)
    assert len(set(job_ids)) == len(job_ids)
    workdirs = [r.workdir for r in rows]
    assert len(set(workdirs)) == len(workdirs)
    for r in ended:  # the failed attempts' files are still there, untouched
        assert any(Path(r.workdir or "").glob("*.out")), r.workdir


def test_siesta_scf_retried_until_converged_with_the_uncapped_energy(
    env: EngineEnv, tmp_path: Path
) -> None:
    tools = require_siesta()
    cid = _cluster(env, tmp_path)
    calc_id = _siesta_calc(env, cid, tools, kind="single", parameters={"MaxSCFIterations": 3})
    tick, conns = _worker(env)
    try:
        calc = env.run_until_settled(calc_id, tick, timeout=300)
    finally:
        conns.close()
    (step,) = env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, (step.state, step.state_reason)
    assert step.attempt >= 2
    _check_attempt_history(env, step.id, step.attempt)
    rows = _attempts(env, step.id)
    assert rows[-1].scheduler_job_id in (None, step.scheduler_job_id)
    assert step.workdir == rows[-1].workdir
    assert step.workdir.endswith(f".a{step.attempt}")
    out = Path(step.workdir) / "h2o.out"
    assert DM_READ_MARKER in out.read_text(errors="replace")  # continued from the saved DM
    # The first rung doubled MaxSCFIterations (3 -> 6), and it is in the timeline.
    assert {"key": "MaxSCFIterations", "old": "3", "new": 6} in rows[1].changes
    events = _recovery_events(env, calc_id)
    assert any("attempt 2" in e and "MaxSCFIterations 3 \u2192 6" in e for e in events), events
    reference = final_energy_ev(
        run_siesta(tmp_path / "direct", siesta_case("h2o", tools), "h2o.fdf")
    )
    assert final_energy_ev(out) == pytest.approx(reference, abs=1e-3)


def test_qe_scf_retried_from_the_charge_density(env: EngineEnv, tmp_path: Path) -> None:
    if shutil.which("pw.x") is None or not QE_PSEUDO.exists():
        missing("Quantum ESPRESSO is not installed (scripts/services/qe.sh)")
    cid = _cluster(env, tmp_path)
    calc_id = env.create(
        name="H2 capped SCF",
        cluster_id=cid,
        logical_queue="default",
        code="qe",
        configuration={
            "kind": "single",
            "inputs": {"pw.in": H2},
            "resources": {"tasks": 1, "walltime_s": 300},
            "recovery": {"ladder": ["more_scf_steps", "more_scf_steps", "more_scf_steps"]},
        },
    )
    tick, conns = _worker(env)
    try:
        calc = env.run_until_settled(calc_id, tick, timeout=300)
    finally:
        conns.close()
    (step,) = env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, (step.state, step.state_reason)
    assert step.attempt >= 2
    _check_attempt_history(env, step.id, step.attempt)
    text = (Path(step.workdir or "") / "pw.out").read_text(errors="replace")
    assert "The initial density is read from file" in text
    assert "convergence has been achieved" in text
    rows = _attempts(env, step.id)
    assert {"key": "electrons.electron_maxstep", "old": "3", "new": 6} in rows[1].changes


def test_chain_middle_step_retried_dependents_run_once(env: EngineEnv, tmp_path: Path) -> None:
    tools = require_siesta()
    cid = _cluster(env, tmp_path)
    calc_id = _siesta_calc(
        env,
        cid,
        tools,
        kind="chain",
        inherit=["*.none"],  # nothing handed over: each step converges from scratch
        variants=[
            {"label": "first", "parameters": {"MeshCutoff": "40 Ry"}},
            {"label": "capped", "parameters": {"MeshCutoff": "50 Ry", "MaxSCFIterations": 3}},
            {"label": "last", "parameters": {"MeshCutoff": "60 Ry"}},
        ],
    )
    tick, conns = _worker(env)
    try:
        calc = env.run_until_settled(calc_id, tick, timeout=300)
    finally:
        conns.close()
    first, middle, last = env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, [
        (s.state, s.state_reason) for s in (first, middle, last)
    ]
    assert (first.attempt, last.attempt) == (1, 1)
    assert middle.attempt >= 2
    _check_attempt_history(env, middle.id, middle.attempt)
    assert _attempts(env, first.id) == []
    assert _attempts(env, last.id) == []
    # The dependent was withdrawn from the failed attempt and ran once, after the good one.
    assert "w1" in last.job_name
    starts = list((Path(last.workdir or "") / ".hpcgate").glob("*.start"))
    assert len(starts) == 1, starts
    job_ids = [first.scheduler_job_id, middle.scheduler_job_id, last.scheduler_job_id]
    job_ids += [r.scheduler_job_id for r in _attempts(env, middle.id)[:-1]]
    assert len(set(job_ids)) == len(job_ids), job_ids
    assert int(last.scheduler_job_id or 0) > int(middle.scheduler_job_id or 0)


def test_worker_killed_after_submitting_a_retry(env: EngineEnv, tmp_path: Path) -> None:
    tools = require_siesta()
    cid = _cluster(env, tmp_path)
    calc_id = _siesta_calc(env, cid, tools, kind="single", parameters={"MaxSCFIterations": 3})
    tick, conns = _worker(env)
    try:
        # Run until the retry is scheduled (committed: PLANNED, attempt 2), not submitted.
        def retry_scheduled() -> bool:
            (st,) = env.steps(calc_id)
            return st.attempt == 2 and st.state is StepState.PLANNED

        for _ in range(600):
            harvest_tick(env.engine, env.factory, conns, env.settings)
            if retry_scheduled():
                break
            dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
            import time

            time.sleep(0.5)
        assert retry_scheduled()
        assert env.calc(calc_id).state is CalculationState.SUBMITTING
        cmd = [sys.executable, "-m", "tests.helpers.crash_worker", env.url, str(tmp_path)]
        crashed = subprocess.run(
            cmd, cwd=REPO, env={**os.environ, "HPCGATE_FAULT_CRASH_AT": "after_submit"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert crashed.returncode == -9, crashed.stderr[-2000:]
        (step,) = env.steps(calc_id)
        assert step.scheduler_job_id is None  # sbatch ran, the id was never recorded
        restarted = subprocess.run(
            cmd, cwd=REPO, env=os.environ, capture_output=True, text=True, timeout=120
        )
        assert restarted.returncode == 0, restarted.stderr[-2000:]
        calc = env.run_until_settled(calc_id, tick, timeout=300)
    finally:
        conns.close()
    (step,) = env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, (step.state, step.state_reason)
    rows = _attempts(env, step.id)
    assert [r.attempt for r in rows] == list(range(1, step.attempt + 1))
    names = [r.job_name for r in rows]
    assert len(set(names)) == len(names)
    assert slurm_jobs_named(names) == Counter(dict.fromkeys(names, 1))


def _agent_config(env: EngineEnv, tmp_path: Path, base: str, cid: int, name: str) -> Path:
    return agent_config(env, tmp_path, base, cid, name)


def test_agent_killed_after_submitting_a_retry(env: EngineEnv, tmp_path: Path) -> None:
    """Agent mode end to end: the agent's harvest report schedules the retry, its next pull
    submits it; SIGKILLed right after that sbatch, the restarted agent adopts the job."""
    tools = require_siesta()
    name = f"agent-{uuid.uuid4().hex[:6]}"
    cid = env.add_cluster(
        name,
        scheduler="slurm",
        access_mode=AccessMode.AGENT,
        scratch_root=str(tmp_path / "scratch"),
    )
    calc_id = _siesta_calc(env, cid, tools, kind="single", parameters={"MaxSCFIterations": 3})
    app = create_app(env.settings, engine=env.engine)
    with live_server(app) as base:
        cfg = _agent_config(env, tmp_path, base, cid, name)
        cmd = [sys.executable, "-m", "hpcgate.cli", "agent", "--config", str(cfg), "--once"]

        def once(**extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                env={**os.environ, **extra},
            )  # fmt: skip

        def retry_scheduled() -> bool:
            (st,) = env.steps(calc_id)
            return st.attempt == 2 and st.state is StepState.PLANNED

        for _ in range(100):  # pull, submit, harvest until the first attempt has failed
            assert once().returncode == 0
            if retry_scheduled():
                break
        assert retry_scheduled()
        crashed = once(HPCGATE_FAULT_CRASH_AT="after_submit")
        assert crashed.returncode == -9, crashed.stderr[-2000:]
        (step,) = env.steps(calc_id)
        assert step.scheduler_job_id is None

        def tick() -> None:
            assert once().returncode == 0

        calc = env.run_until_settled(calc_id, tick, timeout=300, every=0.2)
    (step,) = env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, (step.state, step.state_reason)
    _check_attempt_history(env, step.id, step.attempt)
    names = [r.job_name for r in _attempts(env, step.id)]
    assert slurm_jobs_named(names) == Counter(dict.fromkeys(names, 1))
    assert DM_READ_MARKER in (Path(step.workdir or "") / "h2o.out").read_text(errors="replace")


def _job_ended(job_id: str) -> bool:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return bool(out) and out[0] not in ("PENDING", "RUNNING", "REQUEUED", "SUSPENDED")


def test_worker_killed_while_deciding_a_retry(env: EngineEnv, tmp_path: Path) -> None:
    """SIGKILL inside the harvest's transaction, after the retry was decided and flushed but
    before the commit: nothing of it survives, and the next harvest decides it once."""
    tools = require_siesta()
    cid = _cluster(env, tmp_path)
    calc_id = _siesta_calc(env, cid, tools, kind="single", parameters={"MaxSCFIterations": 3})
    tick, conns = _worker(env)
    try:
        while env.steps(calc_id)[0].scheduler_job_id is None:  # submit, never harvest
            dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
        (step,) = env.steps(calc_id)
        job = step.scheduler_job_id or ""
        while not _job_ended(job):
            subprocess.run(["sleep", "0.5"], check=True)
        cmd = [sys.executable, "-m", "tests.helpers.crash_harvest", env.url, str(tmp_path)]
        crashed = subprocess.run(
            cmd, cwd=REPO, env={**os.environ, "HPCGATE_FAULT_CRASH_AT": "after_retry_decided"},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert crashed.returncode == -9, crashed.stderr[-2000:]
        (after,) = env.steps(calc_id)
        assert (after.attempt, after.scheduler_job_id) == (1, job)  # nothing was committed
        assert after.state in (StepState.QUEUED, StepState.RUNNING)
        assert _attempts(env, step.id) == []
        calc = env.run_until_settled(calc_id, tick, timeout=300)
    finally:
        conns.close()
    (step,) = env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, (step.state, step.state_reason)
    _check_attempt_history(env, step.id, step.attempt)
    rows = _attempts(env, step.id)
    assert rows[0].scheduler_job_id == job
    names = [r.job_name for r in rows]
    assert slurm_jobs_named(names) == Counter(dict.fromkeys(names, 1))
    events = _recovery_events(env, calc_id)
    assert sum("attempt 2 " in e for e in events) == 1, events
