"""The agent's own log lines reach the portal's log feed: buffered on disk while the API is
away, shipped in batches by the heartbeat tick, through the live API (uvicorn on loopback,
real PostgreSQL) into ``GET /logs``.

What it proves: lines the agent logs while the API is down (its own "API unavailable"
warnings) survive in the buffer and arrive once the API is back, in order, as
``agent:<cluster>`` with their level and calculation; batches respect the size given; a
batch the API refuses (422) is dropped instead of blocking the lines behind it; a full buffer
keeps its newest half and says how many lines it dropped.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from hpcgate.agent.client import AgentClient
from hpcgate.agent.config import AgentConfig
from hpcgate.agent.log_buffer import LogBuffer
from hpcgate.agent.loop import Agent
from hpcgate.api.app import create_app
from hpcgate.db.models import Calculation
from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.access import Role
from hpcgate.settings import Settings
from tests.helpers.api import auth_headers, new_api_key, new_cluster, new_user
from tests.helpers.live_api import free_port, live_server

pytestmark = pytest.mark.integration


class CountingClient(AgentClient):
    """The real client; remembers the size of each log batch it posted."""

    batches: list[int]

    def post_logs(self, lines: list[dict[str, Any]]) -> None:
        super().post_logs(lines)
        self.batches.append(len(lines))


@dataclass
class Stack:
    base: str
    key: str
    cluster_name: str
    calc_id: int
    headers: dict[str, str]

    def agent_lines(self) -> list[dict[str, Any]]:
        r = httpx.get(
            f"{self.base}/logs",
            params={"source": f"agent:{self.cluster_name}", "limit": 1000},
            headers=self.headers,
        )
        assert r.status_code == 200, r.text
        return list(reversed(r.json()["items"]))  # oldest first


@pytest.fixture(scope="module")
def stack(isolated_settings: Settings, isolated_engine: Engine) -> Iterator[Stack]:
    from sqlalchemy.orm import Session

    cluster = new_cluster(isolated_engine, access_mode=AccessMode.AGENT, scheduler="local")
    _, key = new_api_key(isolated_engine, cluster=cluster)
    user = new_user(isolated_engine, role=Role.ADMIN)
    with Session(isolated_engine, expire_on_commit=False) as s:
        calc = Calculation(
            name="shipped", owner_id=user.id, cluster_id=cluster.id, logical_queue="q"
        )
        s.add(calc)
        s.commit()
    app = create_app(isolated_settings, engine=isolated_engine)
    with live_server(app) as base:
        yield Stack(base, key, cluster.name, calc.id, auth_headers(user, isolated_settings))


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[LogBuffer]:
    handler = LogBuffer(tmp_path / "state")
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _agent(api: str, key: str, cluster: str, tmp_path: Path, client: AgentClient) -> Agent:
    config = AgentConfig(
        api_url=api, api_key=key, cluster=cluster, scheduler="local",
        scratch_root=tmp_path / "scratch", state_dir=tmp_path / "state", name="test",
    )  # fmt: skip
    return Agent(config, client)


def test_lines_logged_while_the_api_is_down_arrive_later(
    stack: Stack, buffer: LogBuffer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    down = f"http://127.0.0.1:{free_port()}"
    agent = _agent(down, stack.key, stack.cluster_name, tmp_path, AgentClient(down, stack.key,
                   state_dir=state))  # fmt: skip
    agent.log_buffer = buffer
    stop = threading.Event()
    runner = threading.Thread(target=agent.run, args=(stop,))
    runner.start()
    try:
        while buffer.pending() < 3:  # its own "API unavailable" warnings, on disk
            runner.join(0.1)
            assert runner.is_alive()
    finally:
        stop.set()
        runner.join(30)
    logging.getLogger("hpcgate.agent.test").warning(
        "sbatch refused for calculation %s",
        stack.calc_id,
        extra={"ctx": {"calc_id": stack.calc_id}},
    )
    buffered = [json.loads(x) for x in buffer.path.read_text().splitlines()]
    assert any("API unavailable" in x["message"] for x in buffered)
    assert stack.agent_lines() == []  # nothing reached the API yet

    client = CountingClient(stack.base, stack.key, state_dir=state)
    client.batches = []
    back = _agent(stack.base, stack.key, stack.cluster_name, tmp_path, client)
    back.log_buffer = buffer
    back.heartbeat()  # samples and log lines go out together
    assert buffer.pending() == 0
    got = stack.agent_lines()
    assert [x["message"] for x in got][: len(buffered)] == [x["message"] for x in buffered]
    down_line = next(x for x in got if "API unavailable" in x["message"])
    assert down_line["level"] == "warning"
    assert down_line["context"]["logger"] == "hpcgate.agent.loop"
    last = next(x for x in got if x["message"].startswith("sbatch refused"))
    assert last["calculation_id"] == stack.calc_id
    assert last["source"] == f"agent:{stack.cluster_name}"
    assert sum(client.batches) >= len(buffered)
    client.close()
    agent.adapter.runner.close()
    back.adapter.runner.close()


def test_batches_and_a_refused_batch_does_not_block_the_rest(stack: Stack, tmp_path: Path) -> None:
    before = len(stack.agent_lines())
    buffer = LogBuffer(tmp_path / "own")
    say = logging.getLogger("hpcgate.agent.batches")
    say.addHandler(buffer)
    say.propagate = False
    try:
        say.warning("line 1")
        say.warning("line 2")
        with buffer.path.open("a") as fh:  # a line the API refuses (no such level): 422
            fh.write(json.dumps({"message": "bad", "level": "loud"}) + "\n")
        for n in range(3, 8):
            say.error("line %s", n)
    finally:
        say.removeHandler(buffer)
        say.propagate = True
    client = CountingClient(stack.base, stack.key, state_dir=tmp_path / "state")
    client.batches = []
    assert buffer.ship(client, batch=3) == 5  # [1, 2, bad] refused; [3, 4, 5]; [6, 7]
    assert client.batches == [3, 2]
    assert buffer.pending() == 0
    messages = [x["message"] for x in stack.agent_lines()[before:]]
    assert messages == [f"line {n}" for n in range(3, 8)]
    client.close()


def test_a_full_buffer_keeps_the_newest_lines_and_says_so(tmp_path: Path) -> None:
    buffer = LogBuffer(tmp_path, max_bytes=20_000)
    say = logging.getLogger("hpcgate.agent.flood")
    say.addHandler(buffer)
    say.propagate = False
    try:
        for n in range(1000):
            say.warning("flood %04d %s", n, "x" * 100)
    finally:
        say.removeHandler(buffer)
        say.propagate = True
    assert buffer.path.stat().st_size <= 20_000 + 1000
    lines = [json.loads(x) for x in buffer.path.read_text().splitlines()]
    assert lines[-1]["message"].startswith("flood 0999")
    assert buffer.dropped > 0
    notes = [x for x in lines if x["message"].startswith("agent log buffer full")]
    assert notes
    assert sum(int(x["message"].split()[-3]) for x in notes) >= buffer.dropped - 1000
