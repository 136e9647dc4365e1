"""Refinement is durable and idempotent (PostgreSQL, the real harvest; no scheduler).

The harvest is driven with ``apply_observations`` (what the worker and the agent endpoints
call) on a ladder the test marks queued, with TBtrans observations whose currents the test
chooses (the physics is checked against real runs in test_ladder_refine.py; here the
subject is the bookkeeping):

* a crash between the decision and the commit (the session is rolled back, as a kill -9
  would) leaves nothing; the next harvest decides again and writes the points once;
* re-running the decision afterwards (a restarted worker) adds nothing;
* the new steps are PLANNED with the next indices, edges on the electrodes (``*.TSHS``) and
  the nearest converged point (``*.TSDE``), and the point's own fdf;
* the calculation stays running while points can be added, and completes once the budget
  is spent and every step ended;
* the dispatcher (a separate process, SIGKILLed at a crash point of the durable submission,
  then started again) submits each added step to the real Slurm exactly once: the worker,
  and the real agent process against a live API (agent mode);
* an agent's claim of a running ladder's added points is the dispatch lease, and a
  refusal it reports fails only those points.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from hpcgate.api.app import create_app
from hpcgate.db.models import Calculation, Step, StepEdge
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.domain.states import SUCCESSFUL_STEP_STATES, CalculationState, StepState
from hpcgate.engine.work import StepObservation
from hpcgate.services.api_keys import create_api_key
from hpcgate.services.dispatch import CLAIM_LEASE
from hpcgate.services.harvest import apply_observations
from hpcgate.services.refinement import refine_ladder
from hpcgate.services.refinement_submit import claim_refinements, refining_calculations
from tests.helpers.agent_env import agent_config
from tests.helpers.api import api_client
from tests.helpers.ci import require_tool
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server
from tests.integration.engine.test_crash_recovery import REPO, slurm_jobs_named

pytestmark = pytest.mark.integration

REFINE = {"max_points": 2, "max_delta_current": 1e-6, "min_step_v": 0.01}


@pytest.fixture
def env(tmp_path: Path, postgres_available: str) -> Iterator[EngineEnv]:
    with engine_env(tmp_path, "hpcgate_ladder_refine") as e:
        yield e


def _ladder(
    env: EngineEnv,
    tmp_path: Path,
    files: dict[str, str],
    scheduler: str = "local",
    access_mode: AccessMode = AccessMode.LOCAL,
    options: dict[str, Any] | None = None,
) -> tuple[int, int]:
    cid = env.add_cluster(
        f"laptop-{uuid.uuid4().hex[:6]}",
        scheduler=scheduler,
        access_mode=access_mode,
        options=options or {},
        scratch_root=str(tmp_path / "scratch"),
        **({"queues": {"default": "local"}} if scheduler == "local" else {}),
    )
    calc_id = env.create(
        name="Au chain refined",
        cluster_id=cid,
        logical_queue="default",
        code="siesta",
        configuration={
            "kind": "transiesta",
            "inputs": files,
            "device": "device.fdf",
            "electrodes": {"Left": "elec.fdf", "Right": "elec.fdf"},
            "biases_v": [0.0, 0.2],
            "parameters": {"MaxSCFIterations": 150},
            "refine": REFINE,
        },
    )
    _queue_planned(env, calc_id)
    with session_scope(env.factory) as s:
        s.execute(
            update(Calculation)
            .where(Calculation.id == calc_id)
            .values(state=CalculationState.SUBMITTED)
        )
    return cid, calc_id


def _queue_planned(env: EngineEnv, calc_id: int) -> None:
    """What the dispatcher does to PLANNED steps: a job id each, queued."""
    with session_scope(env.factory) as s:
        for step in s.scalars(select(Step).where(Step.calculation_id == calc_id)):
            if step.state is StepState.PLANNED:
                step.state = StepState.QUEUED
                step.scheduler_job_id = f"L{step.id}"


def _done(
    env: EngineEnv, calc_id: int, label: str, current: float | None = None
) -> StepObservation:
    (step,) = [st for st in env.steps(calc_id) if st.label == label]
    extracted = None
    if current is not None:
        bias = float(step.spec["ladder"]["bias_v"])
        extracted = {"analyses": {"transiesta_iv": {"current_a": current, "bias_v": bias}}}
    return StepObservation(
        step.id,
        StepState.FINISHED,
        exit_code=0,
        validation={"status": "converged"},
        extracted=extracted,
    )


def _report(env: EngineEnv, cid: int, *obs: StepObservation) -> None:
    with session_scope(env.factory) as s:
        apply_observations(s, cid, list(obs), lost_after=3, settings=env.settings)


def test_points_are_written_once_across_crashes_and_restarts(
    env: EngineEnv, tmp_path: Path, au_chain: dict[str, str]
) -> None:
    cid, calc_id = _ladder(env, tmp_path, au_chain)
    _report(
        env,
        cid,
        _done(env, calc_id, "electrode elec.fdf"),
        _done(env, calc_id, "device 0 V"),
        _done(env, calc_id, "device +0.2 V"),
        _done(env, calc_id, "tbtrans 0 V", 0.0),
    )
    assert len(env.steps(calc_id)) == 5  # one converged point: nothing to refine yet
    last = _done(env, calc_id, "tbtrans +0.2 V", 1e-5)

    # kill -9 after the decision, before the commit: the transaction is lost.
    with env.factory() as s:
        apply_observations(s, cid, [last], lost_after=3, settings=env.settings)
        assert len(list(s.scalars(select(Step).where(Step.calculation_id == calc_id)))) == 7
        s.rollback()
    assert len(env.steps(calc_id)) == 5

    _report(env, cid, last)  # the next harvest sees the same end and decides again
    steps = {st.label: st for st in env.steps(calc_id)}
    assert sorted(steps) == sorted(
        [
            "electrode elec.fdf",
            "device 0 V",
            "device +0.2 V",
            "tbtrans 0 V",
            "tbtrans +0.2 V",
            "device +0.1 V",
            "tbtrans +0.1 V",
        ]
    )
    device, tbtrans = steps["device +0.1 V"], steps["tbtrans +0.1 V"]
    assert (device.index, tbtrans.index) == (5, 6)
    assert device.state is StepState.PLANNED
    assert tbtrans.state is StepState.PLANNED
    assert device.spec["ladder"] == {
        "role": "device",
        "fdf": "device.fdf",
        "bias_v": 0.1,
        "previous_bias_v": 0.0,  # 0 and +0.2 V are as near: the one closer to 0 V
        "branch": "positive",
        "refined": True,
    }
    fdf = device.spec["files"]["device.fdf"]
    assert "TS.Voltage 0.1 eV" in fdf or "TS.Voltage 0.1" in fdf, fdf
    assert "DM.UseSaveDM" in fdf
    assert "MaxSCFIterations 150" in fdf
    assert "Au.psf" in device.spec["files"]
    assert "Au.psf" not in tbtrans.spec["files"]
    with session_scope(env.factory) as s:
        edges = {
            (e.parent_id, e.child_id): list(e.inherit)
            for e in s.scalars(
                select(StepEdge).where(StepEdge.child_id.in_([device.id, tbtrans.id]))
            )
        }
        assert edges == {
            (steps["electrode elec.fdf"].id, device.id): ["*.TSHS"],
            (steps["device 0 V"].id, device.id): ["*.TSDE"],
            (device.id, tbtrans.id): ["*.TSHS"],
        }
        assert refining_calculations(s, [cid]) == [calc_id]
    assert env.calc(calc_id).state is CalculationState.RUNNING  # not done: points to run

    # A restarted worker runs the decision again: nothing new.
    with session_scope(env.factory) as s:
        calc = s.get(Calculation, calc_id, with_for_update=True)
        assert calc is not None
        rows = list(s.scalars(select(Step).where(Step.calculation_id == calc_id)))
        assert refine_ladder(s, calc, rows) == []
    assert len(env.steps(calc_id)) == 7

    # The new point converges: I(0.1) = 8e-6 A. (0, 0.1) changes by 8e-6 A, (0.1, 0.2) by
    # 2e-6 A: both exceed 1e-6 A, one point of budget is left: the larger change wins.
    _queue_planned(env, calc_id)
    _report(env, cid, _done(env, calc_id, "device +0.1 V"))
    _report(env, cid, _done(env, calc_id, "tbtrans +0.1 V", 8e-6))
    labels = [st.label for st in env.steps(calc_id)]
    assert labels[7:] == ["device +0.05 V", "tbtrans +0.05 V"]
    assert env.calc(calc_id).state is CalculationState.RUNNING

    _queue_planned(env, calc_id)
    _report(env, cid, _done(env, calc_id, "device +0.05 V"))
    _report(env, cid, _done(env, calc_id, "tbtrans +0.05 V", 6e-6))
    assert len(env.steps(calc_id)) == 9  # the budget is spent
    assert env.calc(calc_id).state is CalculationState.COMPLETED


def _refined_ladder(
    env: EngineEnv,
    tmp_path: Path,
    files: dict[str, str],
    access_mode: AccessMode = AccessMode.LOCAL,
    options: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """A ladder on the real Slurm whose configured points all converged (reported), so
    that refinement has just added +0.1 V (PLANNED, nothing submitted yet)."""
    cid, calc_id = _ladder(env, tmp_path, files, "slurm", access_mode, options)
    _report(
        env,
        cid,
        _done(env, calc_id, "electrode elec.fdf"),
        _done(env, calc_id, "device 0 V"),
        _done(env, calc_id, "device +0.2 V"),
        _done(env, calc_id, "tbtrans 0 V", 0.0),
        _done(env, calc_id, "tbtrans +0.2 V", 1e-5),
    )
    planned = [st for st in env.steps(calc_id) if st.state is StepState.PLANNED]
    assert [st.label for st in planned] == ["device +0.1 V", "tbtrans +0.1 V"]
    return cid, calc_id


@pytest.mark.slurm
@pytest.mark.parametrize("point", ["after_mark_submitting", "after_submit", "after_record"])
def test_a_worker_killed_while_submitting_points_never_duplicates_them(
    env: EngineEnv, tmp_path: Path, au_chain: dict[str, str], point: str
) -> None:
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")
    _, calc_id = _refined_ladder(env, tmp_path, au_chain)
    cmd = [sys.executable, "-m", "tests.helpers.crash_worker", env.url, str(tmp_path)]
    crashed = subprocess.run(
        cmd,
        cwd=REPO,
        env={**os.environ, "HPCGATE_FAULT_CRASH_AT": point},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    restarted = subprocess.run(
        cmd, cwd=REPO, env=os.environ, capture_output=True, text=True, timeout=180
    )
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    _each_added_step_once_in_slurm(env, calc_id)


def _each_added_step_once_in_slurm(
    env: EngineEnv, calc_id: int, states: tuple[StepState, ...] = (StepState.QUEUED,)
) -> None:
    added = [st for st in env.steps(calc_id) if st.spec["ladder"].get("refined")]
    try:
        assert len(added) == 2
        assert all(st.state in states and st.scheduler_job_id for st in added), added
        names = [st.job_name for st in added]
        assert slurm_jobs_named(names) == Counter(dict.fromkeys(names, 1))
        assert env.calc(calc_id).state is CalculationState.RUNNING
    finally:  # the start point never ran here: take the jobs back (ours, by id)
        ids = [st.scheduler_job_id for st in added if st.scheduler_job_id]
        if ids:
            subprocess.run(["scancel", *ids], check=False, capture_output=True)


@pytest.mark.slurm
@pytest.mark.parametrize("point", ["after_mark_submitting", "after_submit", "after_record"])
def test_an_agent_killed_while_submitting_points_never_duplicates_them(
    env: EngineEnv, tmp_path: Path, au_chain: dict[str, str], point: str
) -> None:
    """The real agent process (``hpcgate agent --once``: pull, submit, nothing else) against
    a live API: the pull hands it the added points, it is SIGKILLed at the crash point and
    started again; each added step has exactly one real Slurm job, and the calculation
    stayed running."""
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")
    # The agent harvests after it submits: the device point runs a stand-in that waits
    # (the start point never ran here), so its TBtrans stays queued on it until cancelled.
    waits = tmp_path / "siesta-waits"
    waits.write_text("#!/bin/sh\nexec sleep 300\n")
    waits.chmod(0o755)
    cid, calc_id = _refined_ladder(
        env, tmp_path, au_chain, AccessMode.AGENT, {"programs": {"siesta": str(waits)}}
    )
    app = create_app(env.settings, engine=env.engine)
    with live_server(app) as base:
        cfg = agent_config(env, tmp_path, base, cid, "refine-agent")
        cmd = [sys.executable, "-m", "hpcgate.cli", "agent", "--config", str(cfg), "--once"]
        crashed = subprocess.run(
            cmd, cwd=REPO, env={**os.environ, "HPCGATE_FAULT_CRASH_AT": point},
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert crashed.returncode == -9, crashed.stderr[-2000:]
        added = [st for st in env.steps(calc_id) if st.spec["ladder"].get("refined")]
        assert any(st.scheduler_job_id is None for st in added)  # killed mid-submission
        restarted = subprocess.run(
            cmd, cwd=REPO, env=os.environ, capture_output=True, text=True, timeout=180
        )
        assert restarted.returncode == 0, restarted.stderr[-2000:]
    _each_added_step_once_in_slurm(env, calc_id, (StepState.QUEUED, StepState.RUNNING))
    device, tbtrans = (st for st in env.steps(calc_id) if st.spec["ladder"].get("refined"))
    assert f"afterok:{device.scheduler_job_id}" in _dependency(tbtrans.scheduler_job_id or "")


def _dependency(job_id: str) -> str:
    """Slurm's own record of a pending job's dependency."""
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout
    return next((w for w in out.split() if w.startswith("Dependency=")), "")


def test_one_agent_at_a_time_submits_a_ladders_added_points(
    env: EngineEnv, tmp_path: Path, au_chain: dict[str, str]
) -> None:
    """The pull's claim of a running ladder is the dispatch lease: the agent holding it (or
    its restart, same name) gets the added points again, another agent of the cluster not
    until the lease expired; a ladder with nothing to add is never handed out."""
    cid, calc_id = _refined_ladder(env, tmp_path, au_chain, access_mode=AccessMode.AGENT)
    with session_scope(env.factory) as s:
        assert claim_refinements(s, cid, 10, "agent:a") == [calc_id]
    with session_scope(env.factory) as s:
        assert claim_refinements(s, cid, 10, "agent:b") == []
        assert claim_refinements(s, cid, 10, "agent:a") == [calc_id]
        assert claim_refinements(s, cid, 0, "agent:a") == []
    with session_scope(env.factory) as s:
        s.execute(
            update(Calculation)
            .where(Calculation.id == calc_id)
            .values(claimed_at=datetime.now(UTC) - CLAIM_LEASE - timedelta(seconds=1))
        )
    with session_scope(env.factory) as s:
        assert claim_refinements(s, cid, 10, "agent:b") == [calc_id]
    _queue_planned(env, calc_id)
    with session_scope(env.factory) as s:
        assert claim_refinements(s, cid, 10, "agent:b") == []


def test_an_agents_refused_point_fails_only_the_added_steps(
    env: EngineEnv, tmp_path: Path, au_chain: dict[str, str]
) -> None:
    """Through the agent's own endpoints: the pull answers the ladder under
    ``refinements`` (not as new work, and only to an agent that says it knows them), and a
    permanent refusal reported for it fails the added steps only; the configured points keep
    their results and the ladder settles."""
    cid, calc_id = _refined_ladder(env, tmp_path, au_chain, access_mode=AccessMode.AGENT)
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="k", cluster_id=cid)
    headers = {"X-API-Key": key}
    with api_client(env.settings, env.engine) as client:
        r = client.post("/agent/pull", json={"agent": "a"}, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["refinements"] == []  # an agent that predates refinements
        r = client.post(
            "/agent/pull", json={"agent": "a", "features": ["refinements"]}, headers=headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["calculations"] == []
        (work,) = r.json()["refinements"]
        assert work["calculation_id"] == calc_id
        added = [st for st in env.steps(calc_id) if st.spec["ladder"].get("refined")]
        r = client.post(f"/agent/steps/{added[0].id}/submitting", headers=headers)
        assert r.json() == {"state": "submitting", "fresh": True}
        r = client.post(
            f"/agent/calculations/{calc_id}/failed",
            json={"message": "sbatch: error: Batch job submission failed"},
            headers=headers,
        )
        assert r.status_code == 200, r.text
    steps = {st.label: st for st in env.steps(calc_id)}
    assert steps["device +0.1 V"].state is StepState.FAILED
    assert steps["tbtrans +0.1 V"].state is StepState.CANCELLED
    reason = "submission refused: sbatch: error: Batch job submission failed"
    assert steps["device +0.1 V"].state_reason == reason
    kept = [st.state for st in steps.values() if "+0.1" not in st.label]
    assert len(kept) == 5
    assert all(state in SUCCESSFUL_STEP_STATES for state in kept), kept
    calc = env.calc(calc_id)
    assert calc.state is CalculationState.FAILED
    assert calc.state_reason == reason
