"""The engine end to end on the local executor (no cluster): chain, sweep, failures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.engine_env import EngineEnv, engine_env

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path, postgres_available: str) -> Iterator[EngineEnv]:
    with engine_env(tmp_path) as e:
        yield e


def _ticker(env: EngineEnv) -> tuple[ClusterConnections, object]:
    conns = ClusterConnections()

    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="test-worker")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    return conns, tick


def test_chain_hands_files_over_and_completes(env: EngineEnv, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    cid = env.add_cluster(
        "laptop",
        scheduler="local",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(scratch),
        queues={"default": "local"},
    )
    # Each step appends its label to carry.txt inherited from the previous step.
    calc_id = env.create(
        name="carry chain",
        cluster_id=cid,
        logical_queue="default",
        code="generic",
        configuration={
            "kind": "chain",
            "variants": [{"label": f"s{i}", "parameters": {"x": i}} for i in range(3)],
            "inherit": ["carry.txt"],
            "command": ["bash", "-c", 'echo "x=$HPCGATE_PARAM_X" >> carry.txt'],
        },
    )
    conns, tick = _ticker(env)
    calc = env.run_until_settled(calc_id, tick)  # type: ignore[arg-type]
    conns.close()
    assert calc.state is CalculationState.COMPLETED
    steps = env.steps(calc_id)
    assert [s.state for s in steps] == [StepState.HARVESTED] * 3
    last = Path(steps[-1].workdir or "") / "carry.txt"
    assert last.read_text().split() == ["x=0", "x=1", "x=2"]
    assert all(s.scheduler_job_id for s in steps)


def test_chain_stops_at_a_failing_step(env: EngineEnv, tmp_path: Path) -> None:
    cid = env.add_cluster(
        "laptop",
        scheduler="local",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
        queues={"default": "local"},
    )
    calc_id = env.create(
        name="breaks in the middle",
        cluster_id=cid,
        logical_queue="default",
        code="generic",
        configuration={
            "kind": "chain",
            "variants": [{"label": f"s{i}", "parameters": {"x": i}} for i in range(3)],
            "command": ["bash", "-c", '[ "$HPCGATE_PARAM_X" != 1 ] || exit 3'],
        },
    )
    conns, tick = _ticker(env)
    calc = env.run_until_settled(calc_id, tick)  # type: ignore[arg-type]
    conns.close()
    assert calc.state is CalculationState.FAILED
    states = [s.state for s in env.steps(calc_id)]
    assert states == [StepState.HARVESTED, StepState.FAILED, StepState.CANCELLED]
    assert "step 1" in (calc.state_reason or "")
    assert "exit code 3" in (calc.state_reason or "")


def test_sweep_is_one_array(env: EngineEnv, tmp_path: Path) -> None:
    cid = env.add_cluster(
        "laptop",
        scheduler="local",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
        queues={"default": "local"},
    )
    calc_id = env.create(
        name="sweep",
        cluster_id=cid,
        logical_queue="default",
        code="generic",
        configuration={
            "kind": "sweep",
            "max_concurrent": 3,
            "variants": [{"label": f"p{i}", "parameters": {"x": i}} for i in range(6)],
            "command": [
                "bash",
                "-c",
                'echo "$HPCGATE_PARAM_X squared is $((HPCGATE_PARAM_X**2))" > out.txt',
            ],
        },
    )
    conns, tick = _ticker(env)
    calc = env.run_until_settled(calc_id, tick)  # type: ignore[arg-type]
    conns.close()
    assert calc.state is CalculationState.COMPLETED
    (step,) = env.steps(calc_id)
    assert step.array_size == 6
    assert [t.state for t in step.tasks] == [StepState.FINISHED] * 6
    for i in range(6):
        out = Path(step.workdir or "") / f"task-{i}" / "out.txt"
        assert out.read_text().strip() == f"{i} squared is {i * i}"
    assert os.path.isdir(step.workdir or "")
