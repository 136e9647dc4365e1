"""Issue 16: ``POST /agent/pull?wait=`` answers as soon as work for its cluster is committed,
and while it waits it holds no database connection and no admission slot. Real PostgreSQL
(LISTEN/NOTIFY), the real app in-process; no duration is asserted (waits are bounded only so
that a broken path fails instead of hanging)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from hpcgate.api.app import create_app
from hpcgate.api.work_signal import close_work_signal
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.services.api_keys import create_api_key
from tests.helpers.aio import run_coroutine
from tests.helpers.engine_env import EngineEnv, engine_env

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    with engine_env(tmp_path_factory.mktemp("longpoll"), "hpcgate_longpoll") as e:
        yield e


def _agent_cluster(env: EngineEnv, tmp_path: Path, name: str) -> tuple[int, str]:
    cid = env.add_cluster(
        name, scheduler="slurm", access_mode=AccessMode.AGENT, scratch_root=str(tmp_path)
    )
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="a", cluster_id=cid)
    return cid, key


def _single(env: EngineEnv, cid: int) -> int:
    return env.create(
        name="arrives later",
        cluster_id=cid,
        logical_queue="default",
        code="generic",
        configuration={"kind": "single", "command": ["true"]},
    )


async def _until(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"gave up waiting: {what}") from None


def test_a_waiting_pull_answers_when_work_arrives_and_holds_nothing(
    env: EngineEnv, tmp_path: Path
) -> None:
    cid, key = _agent_cluster(env, tmp_path, "longpoll-a")
    other_cid, _ = _agent_cluster(env, tmp_path / "b", "longpoll-b")
    # One admission slot for all agent routes: a waiting pull that kept it would block the rest.
    settings = env.settings.model_copy(update={"agent_concurrency": 1})
    app = create_app(settings, engine=env.engine)
    headers = {"X-API-Key": key}

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            try:
                # Starts the listener; its connection wakes everyone once, so let it settle.
                first = await client.post(
                    "/agent/pull", params={"wait": 1}, json={"agent": "a"}, headers=headers
                )
                assert first.status_code == 200
                assert first.json()["calculations"] == []
                signal = app.state.work_signal
                await _until("listening", lambda: signal.connects >= 1)

                waiting = asyncio.create_task(
                    client.post(
                        "/agent/pull", params={"wait": 25}, json={"agent": "a"}, headers=headers
                    )
                )
                await _until("the pull is waiting", lambda: signal.waiting(cid))
                # Holds no pooled connection ...
                assert env.engine.pool.checkedout() == 0
                # ... and no admission slot: another agent request is admitted without queueing.
                other = await asyncio.wait_for(
                    client.get("/agent/active-steps", headers=headers), 30
                )
                assert other.status_code == 200
                assert "admit;dur=0.000" in other.headers["server-timing"]
                # Work for another cluster does not answer this pull.
                await asyncio.to_thread(_single, env, other_cid)
                await asyncio.sleep(0.3)
                assert not waiting.done()
                assert signal.waiting(cid)

                calc_id = await asyncio.to_thread(_single, env, cid)
                reply = await asyncio.wait_for(waiting, 30)
                assert reply.status_code == 200
                assert [c["calculation_id"] for c in reply.json()["calculations"]] == [calc_id]
            finally:
                await close_work_signal(app)

    run_coroutine(main())


def test_a_pull_without_wait_answers_at_once(env: EngineEnv, tmp_path: Path) -> None:
    """Agents that do not long-poll (and old agents) keep the plain pull; bad waits are 422."""
    _cid, key = _agent_cluster(env, tmp_path, "longpoll-plain")
    app = create_app(env.settings, engine=env.engine)
    headers = {"X-API-Key": key}

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            r = await client.post("/agent/pull", json={"agent": "a"}, headers=headers)
            assert r.status_code == 200
            assert r.json()["calculations"] == []
            assert getattr(app.state, "work_signal", None) is None  # nothing started
            for bad in ("-1", "26", "soon"):
                r = await client.post(
                    "/agent/pull", params={"wait": bad}, json={"agent": "a"}, headers=headers
                )
                assert r.status_code == 422, bad

    run_coroutine(main())
