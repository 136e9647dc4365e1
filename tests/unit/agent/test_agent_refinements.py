"""The agent submits the steps a refinement added to a running ladder (``refinements`` in
the pull's answer) with the worker's ``engine/added_steps``, the API as its durable store.

Fakes for the API client and the scheduler show the order of the reports and what reaches
``sbatch``; the real agent process against the real API, Slurm and TranSIESTA runs in
tests/integration/transiesta/test_ladder_refine.py (agent mode) and, killed at each crash
point, in tests/integration/transiesta/test_ladder_refine_restart.py.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from hpcgate.agent.config import AgentConfig
from hpcgate.agent.loop import Agent
from hpcgate.domain.states import StepState
from hpcgate.engine.work import CalculationWork
from tests.unit.services.test_refinement_submit import _Adapter, _step


class _Client:
    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.calls: list[str] = []

    def pull(self, agent: str) -> dict[str, Any]:
        return self.reply

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        self.calls.append(path + (f" {kw['json']['job_id']}" if "job-id" in path else ""))
        return {"fresh": True} if path.endswith("/submitting") else {}


def _ladder() -> dict[str, Any]:
    steps = (
        _step(1, StepState.HARVESTED, job="11"),  # electrode
        _step(2, StepState.HARVESTED, (1,), job="12"),  # device 0 V, converged
        _step(3, StepState.RUNNING, (1, 2), job="13"),  # a configured point still running
        _step(5, StepState.PLANNED, (1, 2)),  # device +0.1 V, added
        _step(6, StepState.PLANNED, (5,)),  # tbtrans +0.1 V, added
    )
    work = asdict(CalculationWork(calculation_id=9, cluster="c", steps=steps))
    for s in work["steps"]:
        s["state"] = s["state"].value  # as on the wire
    return work


def test_pulled_refinements_are_submitted_step_by_step_reported_first(tmp_path: Path) -> None:
    client = _Client({"calculations": [], "refinements": [_ladder()], "cancel": []})
    adapter = _Adapter()
    agent = Agent(_config(tmp_path), client=client, adapter=adapter)  # type: ignore[arg-type]
    assert agent.pull_and_submit() == 1  # one calculation's added steps: pull again at once
    # The running point and the converged ones are left alone; the new point needs no
    # dependency (its start succeeded) and is not held; its TBtrans waits on it.
    assert adapter.submitted == [("job-5", [], False), ("job-6", ["101"], False)]
    assert adapter.released == []
    # Each step committed as submitting before its sbatch, its id recorded after.
    # The calculation keeps its state: nothing else is reported.
    assert client.calls == [
        "/agent/steps/5/submitting",
        "/agent/steps/5/job-id 101",
        "/agent/steps/6/submitting",
        "/agent/steps/6/job-id 102",
    ]


def test_a_ladder_whose_added_steps_must_wait_is_not_work_brought(tmp_path: Path) -> None:
    """Its device point's start failed meanwhile: nothing to submit, so the agent does not
    pull again at once (a pull that brought work is repeated immediately)."""
    work = _ladder()
    work["steps"][1]["state"] = StepState.INVALID.value
    client = _Client({"calculations": [], "refinements": [work], "cancel": []})
    adapter = _Adapter()
    agent = Agent(_config(tmp_path), client=client, adapter=adapter)  # type: ignore[arg-type]
    assert agent.pull_and_submit() == 0
    assert adapter.submitted == []
    assert client.calls == []


def _config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(
        api_url="http://127.0.0.1:1",
        api_key="hpcg_x_y",
        cluster="c",
        scratch_root=tmp_path,
        state_dir=tmp_path / "state",
    )


def test_an_older_server_without_refinements_is_still_understood(tmp_path: Path) -> None:
    client = _Client({"calculations": [], "cancel": []})
    adapter = _Adapter()
    agent = Agent(_config(tmp_path), client=client, adapter=adapter)  # type: ignore[arg-type]
    assert agent.pull_and_submit() == 0
    assert adapter.submitted == []
