"""Cancelling takes its locks in the order of every other writer: steps (by id), then the
calculation. It used to lock the calculation first and deadlocked with a harvest or a
submission of the same calculation (seen in a test run: PostgreSQL's deadlock detector
killed the cancel, a 500). Real PostgreSQL, two transactions, no timing assertion: the
other writer holds a step, the cancel must wait for it without holding the calculation,
so the other writer can then lock the calculation and finish."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, QueueMapping, Step, User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.calculations import NewCalculation, create, request_cancel
from hpcgate.settings import Settings
from tests.helpers.api import new_cluster, new_user

pytestmark = pytest.mark.integration


def _calculation(engine: Engine, settings: Settings) -> tuple[int, int, int]:
    user = new_user(engine)
    cluster = new_cluster(engine, access_mode=AccessMode.LOCAL, scratch_root="/tmp/hpcgate-lk")
    with Session(engine) as s:
        s.add(QueueMapping(cluster_id=cluster.id, logical_queue="default", partition="debug"))
        s.commit()
        owner = s.get(User, user.id)
        assert owner is not None
        new = NewCalculation(
            name="lock order",
            cluster_id=cluster.id,
            logical_queue="default",
            code="generic",
            configuration={"kind": "single", "command": ["true"]},
        )
        calc = create(s, owner, new, settings).calculation
        s.commit()
        [step] = calc.steps
        return calc.id, step.id, user.id


def test_cancel_waits_for_a_step_holder_without_holding_the_calculation(
    settings: Settings, db_engine: Engine
) -> None:
    calc_id, step_id, user_id = _calculation(db_engine, settings)
    outcome: dict[str, object] = {}

    with Session(db_engine) as holder:  # a harvest or a submission: step, then calculation
        holder.execute(select(Step).where(Step.id == step_id).with_for_update()).scalar_one()

        def cancel() -> None:
            try:
                with Session(db_engine) as s:
                    user = s.get(User, user_id)
                    assert user is not None
                    calc, _ = request_cancel(s, calc_id, user)
                    s.commit()
                    outcome["state"] = calc.state
            except Exception as exc:  # a deadlock would land here
                outcome["error"] = exc

        thread = threading.Thread(target=cancel)
        thread.start()
        # Wait until the cancel is blocked on the step lock (PostgreSQL says so).
        with db_engine.connect() as probe:
            for _ in range(600):
                waiting = probe.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                ).scalar_one()
                if waiting:
                    break
                thread.join(0.05)
            assert waiting, "the cancel never waited for the step's lock"
        # Now the holder takes the calculation, as the harvest does: with the old order the
        # cancel held it, and one of the two was killed as a deadlock.
        calc = holder.execute(
            select(Calculation).where(Calculation.id == calc_id).with_for_update()
        ).scalar_one()
        assert calc.state is not CalculationState.CANCELLED
        holder.commit()
    thread.join(60)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["state"] is CalculationState.CANCELLED
    with Session(db_engine) as s:
        step = s.get(Step, step_id)
        assert step is not None
        assert step.state is StepState.CANCELLED
