"""Issue 16 in agent mode: the real agent (in a thread) against the real API (uvicorn on
loopback), PostgreSQL and Slurm. Its periodic pull and harvest are an hour apart, so the
calculation created after it started is picked up by its long-poll and settled by the job's
own end-spool announcement; nothing else could within the test's bound."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hpcgate.agent.config import AgentConfig
from hpcgate.agent.loop import Agent
from hpcgate.api.app import create_app
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.domain.states import CalculationState
from hpcgate.services.api_keys import create_api_key
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

HOUR = 3600.0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    if shutil.which("sbatch") is None:
        missing("Slurm is not installed (scripts/services/slurm.sh)")
    with engine_env(tmp_path_factory.mktemp("agent-events"), "hpcgate_agent_events") as e:
        yield e


def _until(what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


def test_the_agent_long_polls_and_harvests_from_the_end_spool(
    env: EngineEnv, tmp_path: Path
) -> None:
    scratch = tmp_path / "scratch"
    cid = env.add_cluster(
        "agent-events", scheduler="slurm", access_mode=AccessMode.AGENT,
        scratch_root=str(scratch),
    )
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="a", cluster_id=cid)
    app = create_app(env.settings, engine=env.engine)
    with live_server(app) as base:
        agent = Agent(
            AgentConfig(
                api_url=base, api_key=key, cluster="agent-events", name="events",
                scratch_root=scratch, state_dir=tmp_path / "state",
                intervals={
                    "pull_s": HOUR, "harvest_s": HOUR, "heartbeat_s": HOUR,
                    "cleanup_s": HOUR, "pull_wait_s": 20, "jitter": 0,
                },
            )
        )
        harvests = 0
        plain_harvest = agent.harvest

        def counted(full: bool = True) -> int:
            nonlocal harvests
            harvests += 1
            return plain_harvest(full)

        agent.harvest = counted  # type: ignore[method-assign]
        stop = threading.Event()
        thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        thread.start()
        try:
            _until("the agent's start-up ticks ran", lambda: harvests >= 1)
            _until(
                "the agent is long-polling",
                lambda: getattr(app.state, "work_signal", None) is not None
                and app.state.work_signal.waiting(cid),
            )
            calc_id = env.create(
                name="agent events", cluster_id=cid, logical_queue="default", code="generic",
                configuration={"kind": "single", "command": ["bash", "-c", "echo $((1+2))"],
                               "resources": {"walltime_s": 60}},
            )
            _until("completed", lambda: env.calc(calc_id).state is CalculationState.COMPLETED)
            assert harvests >= 2  # the start-up one, then the spool's
        finally:
            stop.set()
            thread.join(60)
