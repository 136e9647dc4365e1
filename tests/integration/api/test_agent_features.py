"""Mixed versions during an upgrade: an agent is handed only work it can carry out as meant
(real database, real app). An agent that says no ``features`` predates them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, Cluster, QueueMapping, ServiceLog, Step
from hpcgate.engine.work import AGENT_FEATURES, CalculationWork
from hpcgate.settings import Settings
from tests.helpers.api import api_client, new_api_key, new_cluster, new_user

pytestmark = pytest.mark.integration


def _calculations(engine: Engine, settings: Settings, cluster: Cluster, n: int) -> list[int]:
    from hpcgate.services.calculations import NewCalculation, create_calculation

    user = new_user(engine)
    ids = []
    with Session(engine, expire_on_commit=False) as s:
        s.add(QueueMapping(cluster_id=cluster.id, logical_queue="default", partition="debug"))
        owner = s.get(type(user), user.id)
        assert owner is not None
        for i in range(n):
            new = NewCalculation(
                name=f"c{i}", cluster_id=cluster.id, logical_queue="default", code="generic",
                configuration={"kind": "single", "command": ["true"]},
            )  # fmt: skip
            ids.append(create_calculation(s, owner, new, settings).id)
        s.commit()
    return ids


def _needs_withdrawal(engine: Engine, calc_id: int) -> None:
    """The calculation's step waits to withdraw a job first (as after a parent's retry),
    and it comes first in the queue."""
    with Session(engine) as s:
        step = s.scalars(select(Step).where(Step.calculation_id == calc_id)).one()
        step.spec = {**step.spec, "withdrawn_jobs": ["424242"]}
        s.execute(update(Calculation).where(Calculation.id == calc_id).values(priority=5))
        s.commit()


def _agent_too_old_lines(engine: Engine, cluster_id: int) -> int:
    with Session(engine) as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(ServiceLog)
                .where(ServiceLog.cluster_id == cluster_id, ServiceLog.message.contains("upgrade"))
            )
            or 0
        )


def _pull(client: Any, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = client.post("/agent/pull", json={"agent": "a", **body}, headers=headers)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def test_an_older_agent_gets_only_the_work_it_can_carry_out(
    settings: Settings, db_engine: Engine
) -> None:
    cluster = new_cluster(db_engine)
    special, ordinary = _calculations(db_engine, settings, cluster, 2)
    _needs_withdrawal(db_engine, special)
    _, key = new_api_key(db_engine, cluster=cluster)
    headers = {"X-API-Key": key}
    with api_client(settings, db_engine) as client:
        # limit 1: the special one comes first and is held back; the ordinary one is still
        # reached in the same pull (no starvation behind work this agent cannot do).
        old = _pull(client, headers, limit=1)
        (work,) = old["calculations"]
        assert work["calculation_id"] == ordinary
        assert not {"array_indices", "withdrawn_jobs"} & set(work["steps"][0])  # readable
        assert CalculationWork.from_dict(work).required_features() == frozenset()
        with Session(db_engine) as s:
            held = s.get(Calculation, special)
            assert held is not None
            assert held.claimed_by is None
            assert held.claimed_at is None
            assert held.state_reason
            assert "withdrawn_jobs" in held.state_reason
        assert _agent_too_old_lines(db_engine, cluster.id) == 2  # timeline + admins' warning
        again = _pull(client, headers)["calculations"]  # (its own in-flight one resumes)
        assert [w["calculation_id"] for w in again] == [ordinary]
        assert _agent_too_old_lines(db_engine, cluster.id) == 2  # said once, not every pull

        new = _pull(client, headers, features=sorted(AGENT_FEATURES))
        (work,) = [w for w in new["calculations"] if w["calculation_id"] == special]
        assert work["steps"][0]["withdrawn_jobs"] == ["424242"]
        with Session(db_engine) as s:
            taken = s.get(Calculation, special)
            assert taken is not None
            assert taken.claimed_by == "agent:a"
            assert taken.state_reason is None


def test_features_are_validated(settings: Settings, db_engine: Engine) -> None:
    cluster = new_cluster(db_engine)
    _, key = new_api_key(db_engine, cluster=cluster)
    with api_client(settings, db_engine) as client:
        r = client.post(
            "/agent/pull", json={"agent": "a", "features": ["x" * 41]}, headers={"X-API-Key": key}
        )
        assert r.status_code == 422, r.text
