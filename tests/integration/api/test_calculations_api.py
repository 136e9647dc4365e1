"""Calculations through the HTTP API: creation rules, refusals, approval, preview, listing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, QueueMapping, Step
from hpcgate.domain.access import Role
from hpcgate.settings import Settings
from tests.helpers.api import api_client, auth_headers, new_cluster, new_user

pytestmark = pytest.mark.integration

H2 = "&control\n  calculation='scf'\n/\n&system\n  ecutwfc=25.0\n/\n&electrons\n/\n"


def _cluster(engine: Engine, **kw: Any) -> int:
    cluster = new_cluster(engine, **kw)
    with Session(engine) as s:
        s.add(
            QueueMapping(
                cluster_id=cluster.id,
                logical_queue="default",
                partition="debug",
                max_walltime_s=3600,
                max_cpus=16,
            )
        )
        s.commit()
    return cluster.id


def _body(cluster_id: int, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "H2 chain",
        "cluster_id": cluster_id,
        "logical_queue": "default",
        "code": "qe",
        "configuration": {
            "kind": "chain",
            "inputs": {"pw.in": H2},
            "variants": [{"label": f"E{i}", "parameters": {"ecutwfc": 20 + i}} for i in range(3)],
            "resources": {"tasks": 1, "walltime_s": 600},
        },
    }
    body.update(over)
    return body


def _count(engine: Engine, model: Any) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_create_chain_plans_steps_and_edges(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    cid = _cluster(db_engine)
    with api_client(settings, db_engine) as client:
        r = client.post("/calculations", json=_body(cid), headers=auth_headers(user, settings))
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["state"] == "ready"
        assert body["kind"] == "chain"
        assert [s["index"] for s in body["steps"]] == [0, 1, 2]
        assert body["steps"][2]["parents"] == [body["steps"][1]["id"]]
        assert body["configuration"]["inputs"] == {"pw.in": {"bytes": len(H2)}}
        r = client.get(
            f"/calculations/{body['id']}/inputs/pw.in", headers=auth_headers(user, settings)
        )
        assert r.json()["text"] == H2


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"logical_queue": "gpu"}, 422, "has no queue 'gpu'"),
        ({"cluster_id": 999999}, 404, "does not exist"),
        ({"code": "vasp"}, 422, ""),
        (
            {
                "configuration": {
                    "kind": "dag",
                    "inputs": {"pw.in": H2},
                    "steps": [{"name": "a", "after": ["b"]}, {"name": "b", "after": ["a"]}],
                }
            },
            422,
            "cycle",
        ),
        (
            {"configuration": {"kind": "single", "inputs": {"../../etc/passwd": "x"}}},
            422,
            "not allowed",
        ),
        (
            {
                "configuration": {
                    "kind": "single",
                    "inputs": {"pw.in": H2},
                    "resources": {"walltime_s": 999999},
                }
            },
            422,
            "exceeds the queue limit",
        ),
        (
            {
                "configuration": {
                    "kind": "single",
                    "inputs": {"pw.in": H2},
                    "resources": {"tasks": 64},
                }
            },
            422,
            "exceed the queue limit",
        ),
        (
            {
                "configuration": {
                    "kind": "single",
                    "inputs": {"pw.in": H2},
                    "parameters": {"bad key; rm -rf /": 1},
                }
            },
            422,
            "not allowed",
        ),
        (
            {
                "configuration": {
                    "kind": "single",
                    "inputs": {"pw.in": H2},
                    "parameters": {"ecutwfc": "1\n/\n&evil"},
                }
            },
            422,
            "single line",
        ),
        ({"configuration": {"kind": "single", "inputs": {"other.in": H2}}}, 422, "main input"),
        ({"configuration": {"kind": "single", "inputs": {}}}, 422, "needs its input files"),
        ({"analyses": ["no_such_analysis"]}, 422, "no_such_analysis"),
        ({"name": ""}, 422, "name"),
        ({"unexpected": 1}, 422, "unexpected"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    settings: Settings, db_engine: Engine, change: dict[str, Any], status: int, fragment: str
) -> None:
    user = new_user(db_engine)
    cid = _cluster(db_engine)
    before = (_count(db_engine, Calculation), _count(db_engine, Step))
    with api_client(settings, db_engine) as client:
        r = client.post(
            "/calculations", json={**_body(cid), **change}, headers=auth_headers(user, settings)
        )
    assert r.status_code == status, r.text
    assert fragment in r.json()["detail"]
    assert (_count(db_engine, Calculation), _count(db_engine, Step)) == before


def test_approval_flow_and_roles(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    moderator = new_user(db_engine, role=Role.MODERATOR)
    cid = _cluster(db_engine, require_approval=True)
    with api_client(settings, db_engine) as client:
        calc = client.post(
            "/calculations", json=_body(cid), headers=auth_headers(user, settings)
        ).json()
        assert calc["state"] == "pending_approval"
        assert calc["approved"] is False
        r = client.post(f"/calculations/{calc['id']}/approve", headers=auth_headers(user, settings))
        assert r.status_code == 403
        r = client.put(
            f"/calculations/{calc['id']}/priority",
            json={"priority": 50},
            headers=auth_headers(moderator, settings),
        )
        assert r.json()["priority"] == 50
        r = client.post(
            f"/calculations/{calc['id']}/approve", headers=auth_headers(moderator, settings)
        )
        assert r.status_code == 200
        assert r.json()["state"] == "ready"
        r = client.post(
            f"/calculations/{calc['id']}/approve", headers=auth_headers(moderator, settings)
        )
        assert r.status_code == 409
        r = client.post(f"/calculations/{calc['id']}/cancel", headers=auth_headers(user, settings))
        assert r.json()["state"] == "cancelled"
        assert {s["state"] for s in r.json()["steps"]} == {"cancelled"}
        r = client.post(f"/calculations/{calc['id']}/cancel", headers=auth_headers(user, settings))
        assert r.status_code == 409


def test_preview_renders_scripts_and_saves_nothing(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    cid = _cluster(db_engine)
    before = _count(db_engine, Calculation)
    with api_client(settings, db_engine) as client:
        r = client.post(
            "/calculations/preview", json=_body(cid), headers=auth_headers(user, settings)
        )
    assert r.status_code == 200, r.text
    steps = r.json()["steps"]
    assert [s["parents"] for s in steps] == [[], [0], [1]]
    assert all(s["script"].startswith("#!/bin/bash") for s in steps)
    assert "#SBATCH --partition=debug" in steps[0]["script"]
    assert "pw.x" in steps[1]["script"]
    assert "tmp" in steps[1]["script"]  # the inherited QE outdir
    assert _count(db_engine, Calculation) == before


def test_list_filters_search_and_pagination(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    other = new_user(db_engine)
    cid = _cluster(db_engine)
    with api_client(settings, db_engine) as client:
        for i in range(5):
            client.post(
                "/calculations",
                json=_body(cid, name=f"mine {i} needle"),
                headers=auth_headers(user, settings),
            )
        client.post(
            "/calculations", json=_body(cid, name="theirs"), headers=auth_headers(other, settings)
        )
        h = auth_headers(user, settings)
        page = client.get("/calculations", params={"owner": "me", "limit": 2}, headers=h).json()
        assert page["total"] == 5
        assert len(page["items"]) == 2
        assert page["items"][0]["name"] == "mine 4 needle"  # newest first
        page2 = client.get(
            "/calculations", params={"owner": "me", "limit": 2, "offset": 4}, headers=h
        ).json()
        assert [c["name"] for c in page2["items"]] == ["mine 0 needle"]
        found = client.get(
            "/calculations", params={"q": "needle", "cluster_id": cid}, headers=h
        ).json()
        assert found["total"] == 5
        everyone = client.get("/calculations", params={"cluster_id": cid}, headers=h).json()
        assert everyone["total"] == 6  # users see the lab's calculations
        assert client.get("/calculations", params={"limit": 0}, headers=h).status_code == 422
        assert client.get("/calculations", params={"state": "bogus"}, headers=h).status_code == 422
        assert client.get("/calculations").status_code == 401


def test_oversized_requests_are_refused_with_413(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    cid = _cluster(db_engine)
    big_input = "x" * (9 << 20)  # above the 8 MiB input budget, below the body limit
    with api_client(settings, db_engine) as client:
        body = _body(cid)
        body["configuration"] = {"kind": "single", "inputs": {"pw.in": big_input}}
        r = client.post("/calculations", json=body, headers=auth_headers(user, settings))
        assert r.status_code == 413, r.text[:300]
        assert "MiB" in r.json()["detail"]
        huge = b"{" + b" " * ((settings.max_body_mb << 20) + 10) + b"}"
        r = client.post(
            "/calculations",
            content=huge,
            headers={**auth_headers(user, settings), "Content-Type": "application/json"},
        )
        assert r.status_code == 413


def test_analysis_selection_missing_a_requirement_names_it(
    settings: Settings, db_engine: Engine
) -> None:
    user = new_user(db_engine)
    cid = _cluster(db_engine)
    before = _count(db_engine, Calculation)
    with api_client(settings, db_engine) as client:
        r = client.post(
            "/calculations",
            json={**_body(cid), "analyses": ["qe_energy"]},
            headers=auth_headers(user, settings),
        )
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["missing"] == {"qe_scf_convergence": "required by qe_energy"}
        assert "qe_scf_convergence" in body["detail"]
        r = client.post(
            "/calculations",
            json={**_body(cid), "analyses": ["qe_scf_convergence", "qe_energy"]},
            headers=auth_headers(user, settings),
        )
        assert r.status_code == 201, r.text
        assert r.json()["analyses"] == ["qe_scf_convergence", "qe_energy"]
        r = client.post(
            "/calculations",
            json={**_body(cid), "analyses": ["iv_curve", "current"]},
            headers=auth_headers(user, settings),
        )
        assert r.status_code == 422  # SIESTA analyses on a QE calculation
    assert _count(db_engine, Calculation) == before + 1


def test_only_the_owner_or_a_moderator_changes_a_calculation(
    settings: Settings, db_engine: Engine
) -> None:
    owner = new_user(db_engine)
    colleague = new_user(db_engine)
    moderator = new_user(db_engine, role=Role.MODERATOR)
    cid = _cluster(db_engine, require_approval=True)
    with api_client(settings, db_engine) as client:
        calc = client.post(
            "/calculations", json=_body(cid), headers=auth_headers(owner, settings)
        ).json()
        url = f"/calculations/{calc['id']}"
        # A colleague reads it (results are shared) but neither renames nor cancels it.
        assert client.get(url, headers=auth_headers(colleague, settings)).status_code == 200
        r = client.patch(url, json={"name": "mine now"}, headers=auth_headers(colleague, settings))
        assert r.status_code == 403
        assert "only its owner or a moderator" in r.json()["detail"]
        r = client.post(url + "/cancel", headers=auth_headers(colleague, settings))
        assert r.status_code == 403
        with Session(db_engine) as s:
            row = s.get(Calculation, calc["id"])
            assert row is not None
            assert (row.name, row.state.value) == (calc["name"], "pending_approval")
        # The owner renames it; a moderator cancels it.
        r = client.patch(url, json={"name": "renamed"}, headers=auth_headers(owner, settings))
        assert r.status_code == 200
        assert r.json()["name"] == "renamed"
        r = client.post(url + "/cancel", headers=auth_headers(moderator, settings))
        assert r.status_code == 200
        assert r.json()["state"] == "cancelled"
