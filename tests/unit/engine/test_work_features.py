"""Work items across agent versions: what an older agent can read, what it must refuse,
and what the service must know an agent understands (``required_features``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hpcgate.agent.loop import Agent
from hpcgate.domain.states import StepState
from hpcgate.engine.work import CalculationWork, StepWork, UnsupportedWork
from tests.unit.agent.test_agent_refinements import _Client, _config
from tests.unit.services.test_refinement_submit import _Adapter, _step


def _work(calc_id: int, **fields: Any) -> CalculationWork:
    step = StepWork(**{**_step(calc_id, StepState.PLANNED).__dict__, **fields})
    return CalculationWork(calculation_id=calc_id, cluster="c", steps=(step,))


def _wire(work: CalculationWork) -> dict[str, Any]:
    data = work.to_dict()
    for s in data["steps"]:
        s["state"] = s["state"].value
    return data


def test_empty_feature_fields_stay_off_the_wire_and_the_round_trip_is_exact() -> None:
    plain = _work(1)
    assert not {"array_indices", "withdrawn_jobs"} & set(_wire(plain)["steps"][0])
    assert plain.required_features() == frozenset()
    assert CalculationWork.from_dict(_wire(plain)) == plain
    retry = _work(2, array_indices=(3, 7), array_size=8, withdrawn_jobs=("41",))
    assert retry.required_features() == {"array_indices", "withdrawn_jobs"}
    assert CalculationWork.from_dict(_wire(retry)) == retry


def test_a_field_this_agent_does_not_know_is_refused_by_name() -> None:
    data = _wire(_work(1))
    data["steps"][0]["placement"] = {"nodes": 2}
    with pytest.raises(UnsupportedWork, match="placement"):
        CalculationWork.from_dict(data)


def test_the_agent_skips_work_it_cannot_read_and_carries_out_the_rest(tmp_path: Path) -> None:
    unknown = _wire(_work(1))
    unknown["steps"][0]["placement"] = {"nodes": 2}
    client = _Client({"calculations": [unknown, _wire(_work(2))], "cancel": []})
    adapter = _Adapter()
    agent = Agent(_config(tmp_path), client=client, adapter=adapter)  # type: ignore[arg-type]
    assert agent.pull_and_submit() == 1
    assert adapter.submitted == [("job-2", [], False)]
    assert "/agent/steps/1/submitting" not in client.calls
