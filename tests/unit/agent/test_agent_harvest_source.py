"""Where the agent's harvest gets its step list: the last pull once, else GET active-steps.

A fake API client is the seam here; the real agent against the real API and Slurm runs in
tests/integration/engine/test_slurm_qe.py and tests/integration/reliability/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hpcgate.agent import loop
from hpcgate.agent.config import AgentConfig
from hpcgate.agent.loop import Agent
from hpcgate.engine.work import ActiveStep

STEP = {
    "step_id": 7,
    "calculation_id": 3,
    "scheduler_job_id": "123",
    "workdir": "/scratch/c3/s0",
    "state": "queued",
}


class FakeClient:
    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.calls: list[str] = []

    def pull(self, agent: str) -> dict[str, Any]:
        self.calls.append("pull")
        return self.reply

    def active_steps(self) -> list[ActiveStep]:
        self.calls.append("active-steps")
        return [ActiveStep.from_dict(STEP)]

    def report_observations(self, observations: list[Any]) -> list[str]:
        self.calls.append("observations")
        return []


@pytest.fixture
def observed(monkeypatch: pytest.MonkeyPatch) -> list[list[ActiveStep]]:
    seen: list[list[ActiveStep]] = []

    def fake_observe(adapter: Any, steps: list[ActiveStep]) -> list[Any]:
        seen.append(list(steps))
        return []

    monkeypatch.setattr(loop, "observe", fake_observe)
    return seen


def _agent(client: FakeClient, tmp_path: Path) -> Agent:
    config = AgentConfig(
        api_url="http://127.0.0.1:1", api_key="hpcg_x_y", cluster="c", scratch_root=tmp_path
    )
    return Agent(config, client=client, adapter=object())  # type: ignore[arg-type]


def test_a_harvest_after_a_pull_uses_its_list_once(
    tmp_path: Path, observed: list[list[ActiveStep]]
) -> None:
    client = FakeClient({"calculations": [], "cancel": [], "active_steps": [STEP]})
    agent = _agent(client, tmp_path)
    agent.pull_and_submit()
    agent.harvest()  # from the pull: no request
    agent.harvest()  # the pulled list is used up: ask the API
    assert client.calls == ["pull", "active-steps"]
    assert [s.step_id for s in observed[0]] == [7]
    assert [s.step_id for s in observed[1]] == [7]


def test_an_empty_pulled_list_is_still_an_answer(
    tmp_path: Path, observed: list[list[ActiveStep]]
) -> None:
    client = FakeClient({"calculations": [], "cancel": [], "active_steps": []})
    agent = _agent(client, tmp_path)
    agent.pull_and_submit()
    assert agent.harvest() == 0
    assert client.calls == ["pull"]
    assert observed == []  # nothing to observe, nothing asked


def test_an_older_server_without_the_list_means_asking(
    tmp_path: Path, observed: list[list[ActiveStep]]
) -> None:
    client = FakeClient({"calculations": [], "cancel": []})
    agent = _agent(client, tmp_path)
    agent.pull_and_submit()
    agent.harvest()
    assert client.calls == ["pull", "active-steps"]


def test_an_end_woken_harvest_reports_only_changed_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job's end wakes a harvest of every active step; only steps whose state changed are
    reported (a burst of ends would otherwise resend every step per end). The periodic
    harvest reports them all, with their live samples."""
    from hpcgate.domain.states import StepState
    from hpcgate.engine.work import StepObservation

    steps = [dict(STEP, step_id=i, scheduler_job_id=str(100 + i)) for i in (1, 2, 3)]
    states = {1: StepState.RUNNING, 2: StepState.RUNNING, 3: StepState.QUEUED}

    class Client(FakeClient):
        def __init__(self) -> None:
            super().__init__({})
            self.reports: list[list[int]] = []

        def active_steps(self) -> list[ActiveStep]:
            return [ActiveStep.from_dict(s) for s in steps]

        def report_observations(self, observations: list[Any]) -> list[str]:
            self.reports.append([o.step_id for o in observations])
            return []

    sampled: list[int] = []

    def fake_observe(adapter: Any, active: list[ActiveStep]) -> list[StepObservation]:
        return [StepObservation(step_id=s.step_id, state=states[s.step_id]) for s in active]

    def fake_live(adapter: Any, active: Any, obs: list[StepObservation]) -> Any:
        sampled.append(len(obs))
        return obs

    monkeypatch.setattr(loop, "observe", fake_observe)
    monkeypatch.setattr(loop, "with_live_usage", fake_live)
    client = Client()
    agent = _agent(client, tmp_path)
    agent.harvest()  # periodic: all three, sampled
    states[2] = StepState.FINISHED
    agent.harvest(full=False)  # woken by step 2's end
    agent.harvest(full=False)  # nothing new
    states[3] = StepState.RUNNING
    agent.harvest(full=False)
    agent.harvest()  # periodic again: everything
    assert client.reports == [[1, 2, 3], [2], [3], [1, 2, 3]]
    assert sampled == [3, 3]
