"""LOST jobs, offline clusters and maintenance (disable/enable), on real Slurm and PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from hpcgate.db.models import Calculation, Cluster, NotificationOutbox, Step
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import Role
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.cluster_health import mark_offline_clusters
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from hpcgate.services.users import create_user
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    if shutil.which("sbatch") is None:
        missing("Slurm is not installed (scripts/services/slurm.sh)")
    with engine_env(tmp_path_factory.mktemp("life"), "hpcgate_life") as e:
        with session_scope(e.factory) as s:
            create_user(s, email="admin@example.org", password="a-good-password", role=Role.ADMIN)
        yield e


def _cluster(env: EngineEnv, tmp_path: Path, name: str) -> int:
    return env.add_cluster(
        name,
        scheduler="slurm",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
    )


def _one(env: EngineEnv, cid: int, command: list[str]) -> int:
    return env.create(
        name="one",
        cluster_id=cid,
        logical_queue="default",
        code="generic",
        configuration={"kind": "single", "command": command, "resources": {"walltime_s": 120}},
    )


def test_a_job_unknown_to_slurm_becomes_lost_and_notifies(env: EngineEnv, tmp_path: Path) -> None:
    cid = _cluster(env, tmp_path, "lost-cluster")
    calc_id = _one(env, cid, ["true"])
    with session_scope(env.factory) as s:
        # As if it had been submitted, with an id Slurm never issued.
        s.execute(
            update(Calculation)
            .where(Calculation.id == calc_id)
            .values(state=CalculationState.SUBMITTED)
        )
        s.execute(
            update(Step)
            .where(Step.calculation_id == calc_id)
            .values(state=StepState.QUEUED, scheduler_job_id="66000001")
        )
    conns = ClusterConnections()
    for expected_ticks in (1, 2):
        harvest_tick(env.engine, env.factory, conns, env.settings)
        (step,) = env.steps(calc_id)
        assert step.state is StepState.QUEUED  # not yet: unknown is not completed
        assert step.unknown_ticks == expected_ticks
    harvest_tick(env.engine, env.factory, conns, env.settings)
    conns.close()
    (step,) = env.steps(calc_id)
    assert step.state is StepState.LOST
    with session_scope(env.factory) as s:
        events = {
            (m.recipient, m.event)
            for m in s.scalars(
                select(NotificationOutbox).where(NotificationOutbox.calculation_id == calc_id)
            )
        }
    assert ("researcher@example.org", "lost") in events
    assert ("admin@example.org", "lost") in events


def test_silent_cluster_goes_offline_and_admins_hear_of_it(env: EngineEnv, tmp_path: Path) -> None:
    cid = _cluster(env, tmp_path, "quiet-cluster")
    with session_scope(env.factory) as s:
        s.execute(
            update(Cluster)
            .where(Cluster.id == cid)
            .values(online=True, last_heartbeat_at=datetime.now(UTC) - timedelta(minutes=10))
        )
    with session_scope(env.factory) as s:
        names = mark_offline_clusters(s, 120, env.settings)
    assert "quiet-cluster" in names
    with session_scope(env.factory) as s:
        cluster = s.get(Cluster, cid)
        assert cluster is not None
        assert cluster.online is False
        mails = list(
            s.scalars(
                select(NotificationOutbox).where(NotificationOutbox.event == "cluster_offline")
            )
        )
    assert any(m.recipient == "admin@example.org" and "quiet-cluster" in m.subject for m in mails)
    with session_scope(env.factory) as s:  # once, not every tick
        assert "quiet-cluster" not in mark_offline_clusters(s, 120, env.settings)


def test_disabled_cluster_gets_no_new_work_but_is_still_harvested(
    env: EngineEnv, tmp_path: Path
) -> None:
    cid = _cluster(env, tmp_path, "maint-cluster")
    running = _one(env, cid, ["sleep", "3"])
    conns = ClusterConnections()
    dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
    assert env.calc(running).state is CalculationState.SUBMITTED
    with session_scope(env.factory) as s:
        s.execute(update(Cluster).where(Cluster.id == cid).values(enabled=False))
    waiting = _one(env, cid, ["true"])

    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    assert env.run_until_settled(running, tick, timeout=90).state is CalculationState.COMPLETED
    assert env.calc(waiting).state is CalculationState.READY  # maintenance: not dispatched
    with session_scope(env.factory) as s:
        s.execute(update(Cluster).where(Cluster.id == cid).values(enabled=True))
    assert env.run_until_settled(waiting, tick, timeout=90).state is CalculationState.COMPLETED
    conns.close()


def test_user_cancel_reaches_slurm(env: EngineEnv, tmp_path: Path) -> None:
    import subprocess

    from hpcgate.db.models import User
    from hpcgate.services.calculations import request_cancel

    cid = _cluster(env, tmp_path, "cancel-cluster")
    calc_id = _one(env, cid, ["sleep", "120"])
    conns = ClusterConnections()
    dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
    (step,) = env.steps(calc_id)
    job = step.scheduler_job_id or ""
    assert (
        subprocess.run(
            ["squeue", "-h", "-j", job, "-o", "%i"], capture_output=True, text=True
        ).stdout.strip()
        == job
    )
    with session_scope(env.factory) as s:
        user = s.get(User, env.user_id)
        assert user is not None
        _, job_ids = request_cancel(s, calc_id, user)
    assert job_ids == [job]
    harvest_tick(env.engine, env.factory, conns, env.settings)
    conns.close()
    (step,) = env.steps(calc_id)
    assert step.state is StepState.CANCELLED
    assert step.cancel_pending is False
    state = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", job, "-o", "State"], capture_output=True, text=True
    ).stdout.strip()
    queue = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True
    ).stdout.strip()
    assert state.startswith("CANCELLED") or queue in ("", "COMPLETING", "CANCELLED")
