"""``POST /calculations/recommendation`` through the app: model, fallback and refusals.

A database of this module's own (the history is committed: the app's sessions see it).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from hpcgate.db.models import QueueMapping
from hpcgate.services.recommender import service
from hpcgate.settings import Settings
from tests.helpers.api import api_client, auth_headers, new_cluster, new_user
from tests.helpers.recommender_history import fdf_text, store_history, synthetic_runs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(isolated_engine: Engine) -> dict[str, Any]:
    """A user, a cluster with a 'batch' queue (1 day) and 60 finished SIESTA runs on it."""
    service.clear_cache()
    user = new_user(isolated_engine)
    cluster = new_cluster(isolated_engine)
    with Session(isolated_engine) as s:
        for name, limit in (("batch", 86_400), ("old", 86_400), ("empty", 7200)):
            s.add(QueueMapping(cluster_id=cluster.id, logical_queue=name, partition=name,
                               max_walltime_s=limit))  # fmt: skip
        store_history(s, user.id, cluster.id, synthetic_runs(60, seed=11))
        s.commit()
    return {"user": user, "cluster_id": cluster.id}


def _body(world: dict[str, Any], **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "the preview's body is accepted as it is",
        "cluster_id": world["cluster_id"],
        "logical_queue": "batch",
        "code": "siesta",
        "analyses": [],
        "configuration": {
            "kind": "single",
            "inputs": {"input.fdf": fdf_text(16, (2, 2, 1), 150, 3, 0)},
            "resources": {"tasks": 2},
        },
    }
    body.update(over)
    return body


def test_model_answer_with_evidence(
    world: dict[str, Any], isolated_settings: Settings, isolated_engine: Engine
) -> None:
    headers = auth_headers(world["user"], isolated_settings)
    with api_client(isolated_settings, isolated_engine) as client:
        r = client.post("/calculations/recommendation", json=_body(world), headers=headers)
        assert r.status_code == 200, r.text
        out = r.json()
    assert out["evidence"]["source"] == "model"
    assert out["evidence"]["history_runs"] == 60
    assert out["evidence"]["heldout_runs"] == 12
    assert 0 <= out["evidence"]["coverage_p90_walltime"] <= 1
    assert out["p90_walltime_s"] >= out["p50_walltime_s"] > 0
    assert out["walltime_s"] >= out["p90_walltime_s"]
    assert out["walltime_s"] % 300 == 0
    assert out["memory_mb"] >= out["p90_memory_mb"]
    assert out["queue_max_walltime_s"] == 86_400


def test_queue_default_without_history_there(
    world: dict[str, Any], isolated_settings: Settings, isolated_engine: Engine
) -> None:
    headers = auth_headers(world["user"], isolated_settings)
    with api_client(isolated_settings, isolated_engine) as client:
        r = client.post(
            "/calculations/recommendation",
            json=_body(world, logical_queue="empty"),
            headers=headers,
        )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["evidence"]["source"] == "queue_default"
    assert out["walltime_s"] == 7200
    assert out["p90_walltime_s"] is None
    assert "partition 'empty'" in out["evidence"]["reason"]


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"logical_queue": "gpu"}, 422, "has no queue 'gpu'"),
        ({"code": "fortran"}, 422, ""),
        ({"cluster_id": 0}, 422, ""),
        ({"configuration": "not an object"}, 422, ""),
        ({"configuration": {"inputs": {"../escape.fdf": "x"}}}, 422, "not allowed"),
        ({"configuration": {"inputs": {"input.fdf": 3}}}, 422, "must be text"),
        ({"configuration": {"inputs": {}, "parameters": [1]}}, 422, "'parameters'"),
        ({"cluster_id": 2**40}, 404, "does not exist"),
    ],
)
def test_refusals(
    world: dict[str, Any],
    isolated_settings: Settings,
    isolated_engine: Engine,
    change: dict[str, Any],
    status: int,
    fragment: str,
) -> None:
    headers = auth_headers(world["user"], isolated_settings)
    with api_client(isolated_settings, isolated_engine) as client:
        r = client.post(
            "/calculations/recommendation", json=_body(world, **change), headers=headers
        )
        assert r.status_code == status, r.text
        assert fragment in r.text
        assert client.post("/calculations/recommendation", json=_body(world)).status_code == 401
