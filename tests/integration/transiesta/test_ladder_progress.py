"""The ladder's I-V is recomputed each time a step ends, not only when the ladder is done.

The harvest is driven directly (``apply_observations``, the code both the worker and the
agent endpoints use) with what real jobs report: validation verdicts and ``extract``
documents produced from the session's reference runs (real SIESTA/TBtrans outputs), so
the curve is seen growing point by point, then a failure turning it partial.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from analyses.base import ExtractContext
from analyses.pipeline import extract_run
from hpcgate.codes.validation import validate_path
from hpcgate.db.models import AnalysisResult, Calculation, Step
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.engine.observe import classify
from hpcgate.engine.work import StepObservation
from hpcgate.services.harvest import apply_observations
from scheduler_adapters.types import JobState
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.integration.transiesta.conftest import BIASES, Reference

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path, postgres_available: str) -> Iterator[EngineEnv]:
    with engine_env(tmp_path, "hpcgate_ladder_progress") as e:
        yield e


def _submitted_ladder(env: EngineEnv, tmp_path: Path, files: dict[str, str]) -> tuple[int, int]:
    """A ladder as the dispatcher leaves it: every step queued with a job id."""
    cid = env.add_cluster(
        "laptop",
        scheduler="local",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
        queues={"default": "local"},
    )
    calc_id = env.create(
        name="Au chain ladder",
        cluster_id=cid,
        logical_queue="default",
        code="siesta",
        configuration={
            "kind": "transiesta",
            "inputs": files,
            "device": "device.fdf",
            "electrodes": {"Left": "elec.fdf", "Right": "elec.fdf"},
            "biases_v": list(BIASES),
        },
    )
    with session_scope(env.factory) as s:
        for step in s.scalars(select(Step).where(Step.calculation_id == calc_id)):
            step.state = StepState.QUEUED
            step.scheduler_job_id = f"L{step.id}"
        s.execute(
            update(Calculation)
            .where(Calculation.id == calc_id)
            .values(state=CalculationState.SUBMITTED)
        )
    return cid, calc_id


def _report(env: EngineEnv, cid: int, calc_id: int, observations: list[StepObservation]) -> None:
    with session_scope(env.factory) as s:
        apply_observations(s, cid, observations, lost_after=3, settings=env.settings)


def _iv(env: EngineEnv, calc_id: int) -> dict[str, Any] | None:
    with session_scope(env.factory) as s:
        row = s.scalar(
            select(AnalysisResult).where(
                AnalysisResult.calculation_id == calc_id,
                AnalysisResult.analysis == "transiesta_iv",
            )
        )
        return None if row is None else dict(row.data["data"])


def test_the_curve_grows_as_points_arrive_and_turns_partial(
    env: EngineEnv, tmp_path: Path, au_chain: dict[str, str], reference: Reference
) -> None:
    cid, calc_id = _submitted_ladder(env, tmp_path, au_chain)
    ids = {st.label: st.id for st in env.steps(calc_id)}

    def done(label: str, run_dir: Path, stdout: str, bias: float | None = None) -> StepObservation:
        verdict = validate_path(run_dir / stdout, "siesta").to_dict()
        extracted = None
        if label.startswith("tbtrans"):
            extracted = extract_run(
                run_dir,
                ExtractContext(code="siesta", variant={"TS.Voltage": bias}),
                ["transiesta_iv"],
            )
        return StepObservation(
            ids[label], StepState.FINISHED, exit_code=0, validation=verdict, extracted=extracted
        )

    point = reference.points
    _report(
        env,
        cid,
        calc_id,
        [
            done("electrode elec.fdf", reference.electrode, "elec.out"),
            done("device 0 V", point[0.0].directory, "device.out"),
        ],
    )
    first = _iv(env, calc_id)
    assert first is not None  # computed although no point has a current yet
    assert first["points"] == []
    assert [p["bias_v"] for p in first["pending"]] == sorted(BIASES)
    assert first["partial"] is True

    _report(env, cid, calc_id, [done("tbtrans 0 V", point[0.0].directory, "tbtrans.out", 0.0)])
    _report(env, cid, calc_id, [done("device +0.1 V", point[0.1].directory, "device.out")])
    _report(env, cid, calc_id, [done("tbtrans +0.1 V", point[0.1].directory, "tbtrans.out", 0.1)])
    grown = _iv(env, calc_id)
    assert grown is not None
    assert [p["bias_v"] for p in grown["points"]] == [0.0, 0.1]
    assert grown["points"][1]["current_stdout_a"] == point[0.1].current_stdout_a
    assert [p["bias_v"] for p in grown["pending"]] == [-0.1, 0.2]

    # -0.1 V fails the way TranSIESTA fails without a 0 V density.
    bad = validate_path(reference.no_tsde, "siesta").to_dict()
    state, reason = classify(JobState.FAILED, "FAILED", 1, bad)  # what the harvester says
    _report(
        env,
        cid,
        calc_id,
        [StepObservation(ids["device -0.1 V"], state, exit_code=1, reason=reason, validation=bad)],
    )
    steps = {st.label: st for st in env.steps(calc_id)}
    assert steps["device -0.1 V"].state is StepState.INVALID
    assert steps["tbtrans -0.1 V"].state is StepState.CANCELLED  # its dependent, durably
    failing = _iv(env, calc_id)
    assert failing is not None
    assert [f["bias_v"] for f in failing["failed"]] == [-0.1]
    assert "FATAL: ts: You have to calculate the 0 V" in failing["failed"][0]["reason"]
    assert [p["bias_v"] for p in failing["pending"]] == [0.2]

    _report(env, cid, calc_id, [done("device +0.2 V", point[0.2].directory, "device.out")])
    _report(env, cid, calc_id, [done("tbtrans +0.2 V", point[0.2].directory, "tbtrans.out", 0.2)])
    assert env.calc(calc_id).state is CalculationState.FAILED
    final = _iv(env, calc_id)
    assert final is not None
    assert [p["bias_v"] for p in final["points"]] == [0.0, 0.1, 0.2]
    assert [f["bias_v"] for f in final["failed"]] == [-0.1]
    assert final["pending"] == []
    assert final["partial"] is True
