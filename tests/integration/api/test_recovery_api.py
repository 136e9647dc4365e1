"""configuration.recovery through the HTTP API: refusals (422, nothing written), and a step's
``attempt``/``attempts`` in the read models (issue 17)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, QueueMapping, Step
from hpcgate.domain.access import Role
from hpcgate.settings import Settings
from tests.helpers.api import api_client, auth_headers, new_cluster, new_user, unique

pytestmark = pytest.mark.integration

H2 = "&control\n  calculation='scf'\n/\n&system\n  ecutwfc=25.0\n/\n&electrons\n/\n"


def _cluster(engine: Engine) -> int:
    cluster = new_cluster(engine)
    with Session(engine) as s:
        s.add(QueueMapping(cluster_id=cluster.id, logical_queue="default", partition="debug"))
        s.commit()
    return cluster.id


def _body(cluster_id: int, code: str = "qe", **config: Any) -> dict[str, Any]:
    inputs = {"pw.in": H2} if code == "qe" else {}
    extra = {"command": ["true"]} if code == "generic" else {}
    return {
        "name": "H2 with a ladder",
        "cluster_id": cluster_id,
        "logical_queue": "default",
        "code": code,
        "configuration": {"kind": "single", "inputs": inputs, **extra, **config},
    }


def _count(engine: Engine) -> tuple[int, int]:
    with Session(engine) as s:
        return (
            int(s.scalar(select(func.count()).select_from(Calculation)) or 0),
            int(s.scalar(select(func.count()).select_from(Step)) or 0),
        )


@pytest.mark.parametrize(
    ("code", "recovery", "fragment"),
    [
        ("qe", "always", "must be false or an object"),
        ("qe", {"max_attempts": 0}, "from 1 to 10"),
        ("qe", {"max_attempts": 50}, "from 1 to 10"),
        ("qe", {"retries": 3}, "unknown key(s): retries"),
        ("qe", {"ladder": ["more_scf_iterations"]}, "unknown rung(s) more_scf_iterations"),
        ("qe", {"ladder": {"aborted": ["lower_mixing"]}}, "not a recoverable verdict"),
        ("qe", {"ladder": "lower_mixing"}, "must be false, a list"),
        ("generic", {"ladder": ["lower_mixing"]}, "has no recovery ladder"),
    ],
)
def test_bad_recovery_settings_are_refused_and_nothing_is_written(
    settings: Settings, db_engine: Engine, code: str, recovery: Any, fragment: str
) -> None:
    user = new_user(db_engine)
    cid = _cluster(db_engine)
    before = _count(db_engine)
    with api_client(settings, db_engine) as client:
        r = client.post(
            "/calculations",
            json=_body(cid, code, recovery=recovery),
            headers=auth_headers(user, settings),
        )
    assert r.status_code == 422, r.text
    assert fragment in r.json()["detail"]
    assert _count(db_engine) == before


def test_a_step_shows_its_attempts(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    cid = _cluster(db_engine)
    with api_client(settings, db_engine) as client:
        r = client.post(
            "/calculations",
            json=_body(cid, recovery={"max_attempts": 3, "ladder": ["lower_mixing", "local_tf"]}),
            headers=auth_headers(user, settings),
        )
        assert r.status_code in (200, 201), r.text
        (step,) = r.json()["steps"]
        assert step["attempt"] == 1
        (only,) = step["attempts"]
        assert only["attempt"] == 1
        assert only["job_name"] == step["job_name"]
        assert only["changes"] == []
        r = client.get(f"/steps/{step['id']}", headers=auth_headers(user, settings))
        assert r.json()["attempts"][0]["state"] == "planned"


def _new_cluster_body(**options: Any) -> dict[str, Any]:
    return {
        "name": unique("ladder-"),
        "scheduler": "slurm",
        "access_mode": "agent",
        "scratch_root": "/scratch/hpcgate",
        "options": options,
        "queues": [{"logical_queue": "default", "partition": "debug"}],
    }


@pytest.mark.parametrize(
    ("recovery", "fragment"),
    [
        ("always", "must be false or an object"),
        ({"max_attempts": 0}, "from 1 to 10"),
        ({"retries": 3}, "unknown key(s): retries"),
        ({"ladder": {"aborted": ["lower_mixing"]}}, "not a recoverable verdict"),
        # SIESTA's rung: the default would reach QE calculations too, which have no such rung
        ({"ladder": ["more_scf_iterations"]}, "(for qe calculations)"),
        ({"ladder": ["more_scf_steps"]}, "(for siesta calculations)"),
    ],
)
def test_a_clusters_default_ladder_is_checked_when_saved(
    settings: Settings, db_engine: Engine, recovery: Any, fragment: str
) -> None:
    admin = auth_headers(new_user(db_engine, role=Role.ADMIN), settings)
    with api_client(settings, db_engine) as client:
        r = client.post("/clusters", json=_new_cluster_body(recovery=recovery), headers=admin)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "invalid_input"
        assert "options.recovery" in r.json()["detail"]
        assert fragment in r.json()["detail"]
        # and on update: refused, the stored options unchanged
        good = {"max_attempts": 3, "ladder": {"scf_not_converged": ["lower_mixing"]}}
        ok = client.post("/clusters", json=_new_cluster_body(recovery=good), headers=admin)
        assert ok.status_code == 201, ok.text
        cid = ok.json()["id"]
        r = client.patch(
            f"/clusters/{cid}", json={"options": {"recovery": recovery}}, headers=admin
        )
        assert r.status_code == 422, r.text
        assert fragment in r.json()["detail"]
        stored = client.get(f"/clusters/{cid}/config", headers=admin).json()["options"]
        assert stored == {"recovery": good}
        # false (never retry) and the shared rungs are fine for every code
        for fine in (False, {"ladder": {"incomplete": ["longer_walltime"]}}):
            r = client.patch(
                f"/clusters/{cid}", json={"options": {"recovery": fine}}, headers=admin
            )
            assert r.status_code == 200, r.text
