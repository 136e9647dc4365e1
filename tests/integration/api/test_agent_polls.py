"""What an agent's polls answer and store, on the real database through the real app.

The statements behind these routes are hand-built Core (the hot path, `docs/reliability.md`),
so their contract is pinned here: a pull lists exactly its own cluster's steps to observe and
jobs to cancel; heartbeats are idempotent by key and leave the cluster at its latest time.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from hpcgate.db.models import ArrayTask, Cluster, HeartbeatSample, QueueMapping, Step
from hpcgate.settings import Settings
from tests.helpers.api import api_client, new_api_key, new_cluster, new_user

pytestmark = pytest.mark.integration


def _calculation(
    engine: Engine, settings: Settings, cluster: Cluster, config: dict[str, Any] | None = None
) -> int:
    from hpcgate.services.calculations import NewCalculation, create_calculation

    user = new_user(engine)
    with Session(engine, expire_on_commit=False) as s:
        s.add(QueueMapping(cluster_id=cluster.id, logical_queue="default", partition="debug"))
        owner = s.get(type(user), user.id)
        assert owner is not None
        calc = create_calculation(
            s,
            owner,
            NewCalculation(
                name="c",
                cluster_id=cluster.id,
                logical_queue="default",
                code="generic",
                configuration=config or {"kind": "single", "command": ["true"]},
            ),
            settings,
        )
        s.commit()
        return calc.id


def test_a_pull_lists_its_own_clusters_steps_and_cancellations(
    settings: Settings, db_engine: Engine
) -> None:
    mine, other = new_cluster(db_engine), new_cluster(db_engine)
    _calculation(db_engine, settings, mine)
    _, key = new_api_key(db_engine, cluster=mine)
    _, other_key = new_api_key(db_engine, cluster=other)
    headers, other_headers = {"X-API-Key": key}, {"X-API-Key": other_key}
    with api_client(settings, db_engine) as client:
        pulled = client.post("/agent/pull", json={"agent": "a"}, headers=headers).json()
        (work,) = pulled["calculations"]
        step_id = work["steps"][0]["step_id"]
        assert pulled["active_steps"] == []  # claimed, not submitted: no job to observe yet
        assert client.post(f"/agent/steps/{step_id}/submitting", headers=headers).is_success
        r = client.post(f"/agent/steps/{step_id}/job-id", json={"job_id": "4242"}, headers=headers)
        assert r.is_success
        # Until it is reported submitted, the same agent's next pull resumes it.
        again = client.post("/agent/pull", json={"agent": "a"}, headers=headers).json()
        assert [c["calculation_id"] for c in again["calculations"]] == [work["calculation_id"]]
        calc_id = work["calculation_id"]
        assert client.post(f"/agent/calculations/{calc_id}/submitted", headers=headers).is_success

        pulled = client.post("/agent/pull", json={"agent": "a"}, headers=headers).json()
        assert pulled["calculations"] == []
        assert [(s["step_id"], s["scheduler_job_id"]) for s in pulled["active_steps"]] == [
            (step_id, "4242")
        ]
        assert pulled["cancel"] == []
        harvest = client.get("/agent/active-steps", headers=headers).json()
        assert harvest == pulled["active_steps"]

        with Session(db_engine) as s:
            s.execute(update(Step).where(Step.id == step_id).values(cancel_pending=True))
            s.commit()
        pulled = client.post("/agent/pull", json={"agent": "a"}, headers=headers).json()
        assert pulled["cancel"] == ["4242"]
        assert [s["step_id"] for s in pulled["active_steps"]] == [step_id]

        theirs = client.post("/agent/pull", json={"agent": "b"}, headers=other_headers).json()
        assert theirs == {**theirs, "calculations": [], "cancel": [], "active_steps": []}
        assert client.get("/agent/active-steps", headers=other_headers).json() == []

        acked = client.post(
            "/agent/cancellations/ack", json={"job_ids": ["4242"]}, headers=headers
        ).json()
        assert acked == {"acknowledged": 1}
        pulled = client.post("/agent/pull", json={"agent": "a"}, headers=headers).json()
        assert pulled["cancel"] == []


def test_a_stalled_array_task_is_cancelled_and_acknowledged_on_its_own(
    settings: Settings, db_engine: Engine
) -> None:
    """An array task to cancel (``cancel_pending``, a stalled task under ``cancel_retry``)
    reaches the agent as ``<array job>_<index>``, in the pull and in the report's answer,
    until the agent acknowledges exactly that id; the array itself is never cancelled."""
    cluster = new_cluster(db_engine)
    sweep = {"kind": "sweep", "command": ["true"],
             "variants": [{"label": "a", "parameters": {}}, {"label": "b", "parameters": {}}]}
    calc_id = _calculation(db_engine, settings, cluster, sweep)  # fmt: skip
    _, key = new_api_key(db_engine, cluster=cluster)
    headers = {"X-API-Key": key}
    with api_client(settings, db_engine) as client:
        (work,) = client.post("/agent/pull", json={"agent": "a"}, headers=headers).json()[
            "calculations"
        ]
        step_id = work["steps"][0]["step_id"]
        assert client.post(f"/agent/steps/{step_id}/submitting", headers=headers).is_success
        r = client.post(f"/agent/steps/{step_id}/job-id", json={"job_id": "5151"}, headers=headers)
        assert r.is_success
        assert client.post(f"/agent/calculations/{calc_id}/submitted", headers=headers).is_success
        with Session(db_engine) as s:
            s.execute(update(ArrayTask).where(ArrayTask.step_id == step_id,
                      ArrayTask.task_index == 1).values(cancel_pending=True))  # fmt: skip
            s.commit()
        pulled = client.post("/agent/pull", json={"agent": "a"}, headers=headers).json()
        assert pulled["cancel"] == ["5151_1"]
        report = {"observations": [{"step_id": step_id, "state": "running", "tasks": []}]}
        answer = client.post("/agent/observations", json=report, headers=headers).json()
        assert answer["cancel"] == ["5151_1"]
        acked = client.post(
            "/agent/cancellations/ack", json={"job_ids": ["5151_1"]}, headers=headers
        ).json()
        assert acked == {"acknowledged": 1}
        assert client.post("/agent/pull", json={"agent": "a"}, headers=headers).json()[
            "cancel"
        ] == []
        with Session(db_engine) as s:
            step = s.get(Step, step_id)
            assert step is not None
            assert not step.cancel_pending


def _sample(ts: datetime | str, nodes: int = 4) -> dict[str, Any]:
    return {
        "ts": ts if isinstance(ts, str) else ts.isoformat(),
        "queue_depth": 3,
        "running_jobs": 2,
        "sample_key": uuid.uuid4().hex,
        "nodes": [
            {"name": f"n{i}", "cpu_load": 1.0, "cpus_allocated": 2, "cpus_total": 8}
            for i in range(nodes)
        ],
    }


def _stored(engine: Engine, cluster_id: int) -> tuple[int, int, datetime | None, bool]:
    with Session(engine) as s:
        counts = dict(
            s.execute(
                select(HeartbeatSample.scope, func.count())
                .where(HeartbeatSample.cluster_id == cluster_id)
                .group_by(HeartbeatSample.scope)
            ).all()
        )
        cluster = s.get(Cluster, cluster_id)
        assert cluster is not None
        return (
            counts.get("cluster", 0),
            counts.get("node", 0),
            cluster.last_heartbeat_at,
            cluster.online,
        )


def test_heartbeats_are_idempotent_and_keep_the_latest_time(
    settings: Settings, db_engine: Engine
) -> None:
    cluster = new_cluster(db_engine)
    _, key = new_api_key(db_engine, cluster=cluster)
    headers = {"X-API-Key": key}
    t1 = datetime.now(UTC).replace(microsecond=0)
    t2 = t1 + timedelta(seconds=30)
    batch = {"samples": [_sample(t2), _sample(t1)]}
    assert _stored(db_engine, cluster.id) == (0, 0, None, False)
    with api_client(settings, db_engine) as client:
        r = client.post("/agent/heartbeats", json=batch, headers=headers)
        assert r.json() == {"stored": 2, "duplicates": 0}
        assert _stored(db_engine, cluster.id) == (2, 8, t2, True)

        r = client.post("/agent/heartbeats", json=batch, headers=headers)  # a retried batch
        assert r.json() == {"stored": 0, "duplicates": 2}
        assert _stored(db_engine, cluster.id) == (2, 8, t2, True)

        late = {"samples": [_sample(t1 - timedelta(minutes=5), nodes=1)]}  # buffered, sent late
        assert client.post("/agent/heartbeats", json=late, headers=headers).json()["stored"] == 1
        assert _stored(db_engine, cluster.id) == (3, 9, t2, True)


@pytest.mark.parametrize(
    "sample",
    [
        {"ts": "2026-01-01T10:00:00", "sample_key": "naive"},  # no time zone: ambiguous
        {"ts": "yesterday", "sample_key": "words"},
        {"sample_key": "no-ts"},
        {"ts": "2026-01-01T10:00:00+00:00"},  # no idempotency key
    ],
)
def test_a_malformed_heartbeat_batch_is_refused_whole(
    settings: Settings, db_engine: Engine, sample: dict[str, Any]
) -> None:
    cluster = new_cluster(db_engine)
    _, key = new_api_key(db_engine, cluster=cluster)
    good = _sample(datetime.now(UTC))
    with api_client(settings, db_engine) as client:
        r = client.post(
            "/agent/heartbeats", json={"samples": [good, sample]}, headers={"X-API-Key": key}
        )
    assert r.status_code == 422, r.text
    assert "heartbeat sample" in r.json()["detail"]
    assert _stored(db_engine, cluster.id) == (0, 0, None, False)
