"""The main API's side of ML: the model registry, the ML-API's reports, predictions vs results.

No container here (tests/integration/ml/test_ml_api_docker.py drives the ML-API); this is
the database-backed API the portal and the ML-API talk to.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from hpcgate.api.schemas.ml import OutcomeOut
from hpcgate.db.models import ArrayTask, Calculation, ExtractedResult, Step
from hpcgate.domain.access import Role
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.predictions import compare_prediction
from hpcgate.settings import Settings
from tests.helpers.api import api_client, auth_headers, new_api_key, new_cluster, new_user

pytestmark = pytest.mark.integration


def _model(**over: Any) -> dict[str, Any]:
    return {
        "name": f"m-{uuid.uuid4().hex[:8]}",
        "version": "1.0.0",
        "image": "localhost/hpcgate-example-model:1.0.0",
        "description": "SCF risk",
        "resources": {"cpus": 1.0, "memory_mb": 256},
        "environment": {"TOKEN": "s3cret", "MODE": "fast"},
        **over,
    }


def test_registry_roles_and_secrets(settings: Settings, db_engine: Engine) -> None:
    admin = new_user(db_engine, role=Role.ADMIN)
    user = new_user(db_engine)
    _, ml_key = new_api_key(db_engine)
    a, u, k = auth_headers(admin, settings), auth_headers(user, settings), {"X-API-Key": ml_key}
    with api_client(settings, db_engine) as client:
        body = _model()
        assert client.post("/ml/models", json=body, headers=u).status_code == 403
        r = client.post("/ml/models", json=body, headers=a)
        assert r.status_code == 201, r.text
        model = r.json()
        assert model["state"] == "registered"
        assert model["environment"] == {"TOKEN": "s3cret", "MODE": "fast"}
        mid = model["id"]
        # the same name and version twice: 409
        assert client.post("/ml/models", json=body, headers=a).status_code == 409
        # users see names of variables, never their values
        seen = client.get(f"/ml/models/{mid}", headers=u).json()
        assert seen["environment_keys"] == ["MODE", "TOKEN"]
        assert "environment" not in seen
        assert "s3cret" not in client.get("/ml/models", headers=u).text
        assert client.get(f"/ml/models/{mid}/config", headers=u).status_code == 403
        assert client.get(f"/ml/models/{mid}/config", headers=a).json()["environment"]["TOKEN"]
        # the ML-API reads everything with its key, and only with its key
        assert client.get(f"/ml-api/models/{mid}", headers=k).json()["environment"]["TOKEN"]
        assert client.get("/ml-api/models", headers=u).status_code == 401
        # state reports
        report = {"state": "running", "health": "healthy", "restarts": 1, "last_error": "x"}
        assert client.put(f"/ml-api/models/{mid}/state", json=report, headers=u).status_code == 401
        r = client.put(f"/ml-api/models/{mid}/state", json=report, headers=k)
        assert r.status_code == 200, r.text
        seen = client.get(f"/ml/models/{mid}", headers=u).json()
        assert (seen["state"], seen["health"], seen["restarts"]) == ("running", "healthy", 1)
        assert seen["last_reported_at"] is not None
        bad = {**report, "state": "exploded"}
        assert client.put(f"/ml-api/models/{mid}/state", json=bad, headers=k).status_code == 422
        assert (
            client.put("/ml-api/models/987654321/state", json=report, headers=k).status_code == 404
        )
        # a running model cannot be deleted; a stopped one can
        assert client.delete(f"/ml/models/{mid}", headers=a).status_code == 409
        client.put(f"/ml-api/models/{mid}/state", json={"state": "stopped"}, headers=k)
        r = client.patch(f"/ml/models/{mid}", json={"environment": {}}, headers=a)
        assert r.status_code == 200
        assert r.json()["environment"] == {}
        assert client.delete(f"/ml/models/{mid}", headers=u).status_code == 403
        assert client.delete(f"/ml/models/{mid}", headers=a).status_code == 204
        assert client.get(f"/ml/models/{mid}", headers=u).status_code == 404


@pytest.mark.parametrize(
    "over",
    [
        {"name": "Upper Case"},
        {"name": ""},
        {"version": "1 0"},
        {"image": "bad image"},
        {"image": "-leading"},
        {"resources": {"cpus": 0}},
        {"resources": {"memory_mb": 1}},
        {"resources": {"gpus": 1}},
        {"environment": {"1BAD": "x"}},
        {"environment": {"OK": 1}},
        {"environment": {"OK": "nul\x00"}},
        {"description": "nul\x00"},
        {"extra": 1},
    ],
)
def test_registration_is_validated(
    settings: Settings, db_engine: Engine, over: dict[str, Any]
) -> None:
    admin = new_user(db_engine, role=Role.ADMIN)
    with api_client(settings, db_engine) as client:
        r = client.post("/ml/models", json=_model(**over), headers=auth_headers(admin, settings))
        assert r.status_code == 422, r.text


def _calculation(engine: Engine, owner_id: int, outcomes: list[dict[str, Any] | None]) -> int:
    """A finished calculation: one step per outcome (None: no validation stored)."""
    cluster = new_cluster(engine)
    with Session(engine) as s:
        calc = Calculation(
            name="scf sweep",
            owner_id=owner_id,
            cluster_id=cluster.id,
            logical_queue="default",
            code="qe",
            configuration={"kind": "chain"},
            state=CalculationState.COMPLETED,
        )
        s.add(calc)
        s.flush()
        for i, validation in enumerate(outcomes):
            step = Step(
                calculation_id=calc.id,
                cluster_id=cluster.id,
                index=i,
                label=f"beta={0.1 * (i + 1):.1f}",
                template="qe.j2",
                job_name=f"hpcg-{calc.id}-{i}",
                state=StepState.HARVESTED if validation else StepState.FAILED,
            )
            s.add(step)
            s.flush()
            if validation is not None:
                s.add(ExtractedResult(step_id=step.id, kind="validation", data=validation))
        s.commit()
        return calc.id


def _validation(converged: bool, iterations: int, energy: float | None) -> dict[str, Any]:
    return {
        "status": "converged" if converged else "scf_not_converged",
        "converged": converged,
        "code": "qe",
        "numbers": {"scf_iterations_last": iterations, "energy_total_ev": energy},
    }


def test_predictions_are_compared_with_the_results(settings: Settings, db_engine: Engine) -> None:
    admin = new_user(db_engine, role=Role.ADMIN)
    user = new_user(db_engine)
    u = auth_headers(user, settings)
    _, ml_key = new_api_key(db_engine)
    ml = {"X-API-Key": ml_key}  # predictions are written by the ML-API (or an admin)
    calc_id = _calculation(
        db_engine, user.id, [_validation(True, 9, -31.5), _validation(False, 4, None)]
    )
    with api_client(settings, db_engine) as client:
        mid = client.post(
            "/ml/models", json=_model(), headers=auth_headers(admin, settings)
        ).json()["id"]
        two = {  # one instance per step: compared one to one
            "predictions": [
                {"converged": True, "scf_iterations": 10.5, "p_not_converged": 0.1},
                {"converged": True, "scf_iterations": 7.0, "p_not_converged": 0.4},
            ]
        }
        one = {"predictions": [{"converged": False, "p_not_converged": 0.9}]}  # the final step
        for response in (two, one):
            r = client.post(
                "/predictions",
                json={
                    "model_id": mid,
                    "calculation_id": calc_id,
                    "user_id": user.id,
                    "request": {"instances": []},
                    "response": response,
                },
                headers=ml,
            )
            assert r.status_code == 201, r.text
            assert r.json()["user_id"] == user.id
        r = client.get(f"/calculations/{calc_id}/predictions", headers=u)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["calculation_state"] == "completed"
        assert [(o["status"], o["converged"], o["scf_iterations"]) for o in body["outcomes"]] == [
            ("converged", True, 9),
            ("scf_not_converged", False, 4),
        ]
        newest, older = body["predictions"]
        assert newest["response"] == one
        assert newest["comparison"] == [
            {"converged": {"predicted": False, "actual": False, "agrees": True, "error": None}}
        ]
        assert older["model_name"] is not None
        first, second = older["comparison"]
        assert first["converged"]["agrees"] is True
        assert first["scf_iterations"]["error"] == pytest.approx(-1.5)
        assert second["converged"]["agrees"] is False
        # a prediction needs an existing model and calculation
        for bad in ({"model_id": 987654321}, {"model_id": mid, "calculation_id": 987654321}):
            assert client.post("/predictions", json=bad, headers=ml).status_code == 404
        assert client.get("/calculations/987654321/predictions", headers=u).status_code == 404
        assert client.post("/predictions", json={"model_id": mid}).status_code == 401


def test_compare_prediction_pairing() -> None:
    def outcome(i: int, status: str | None, converged: bool | None) -> OutcomeOut:
        return OutcomeOut(
            step_index=i,
            task_index=-1,
            label="",
            state="harvested",
            status=status,
            converged=converged,
            scf_iterations=None,
            energy_total_ev=None,
        )

    done = [outcome(0, "converged", True), outcome(1, "converged", True)]
    assert compare_prediction({"predictions": [{"converged": True}]}, []) == [{}]
    # three instances for two steps: each against the final outcome
    out = compare_prediction({"predictions": [{"converged": b} for b in (True, False, True)]}, done)
    assert [c["converged"].agrees for c in out] == [True, False, True]
    # a bare object is one instance; non-bool guesses are not compared with booleans
    assert compare_prediction({"converged": "yes"}, done) == [{}]
    # no outcome yet (still running): nothing to compare
    assert compare_prediction({"converged": True}, [outcome(0, None, None)]) == [{}]


def test_array_tasks_are_outcomes(settings: Settings, db_engine: Engine) -> None:
    user = new_user(db_engine)
    cluster = new_cluster(db_engine)
    with Session(db_engine) as s:
        calc = Calculation(
            name="sweep",
            owner_id=user.id,
            cluster_id=cluster.id,
            logical_queue="default",
            code="qe",
            configuration={"kind": "sweep"},
        )
        s.add(calc)
        s.flush()
        step = Step(
            calculation_id=calc.id,
            cluster_id=cluster.id,
            index=0,
            template="qe.j2",
            job_name=f"hpcg-{calc.id}",
            array_size=2,
        )
        s.add(step)
        s.flush()
        for t in range(2):
            s.add(ArrayTask(step_id=step.id, task_index=t, label=f"t{t}"))
        s.add(
            ExtractedResult(
                step_id=step.id, task_index=1, kind="validation", data=_validation(True, 5, -10.0)
            )
        )
        s.commit()
        calc_id = calc.id
    with api_client(settings, db_engine) as client:
        body = client.get(
            f"/calculations/{calc_id}/predictions", headers=auth_headers(user, settings)
        ).json()
    assert [(o["task_index"], o["status"], o["energy_total_ev"]) for o in body["outcomes"]] == [
        (0, None, None),
        (1, "converged", -10.0),
    ]
    assert body["predictions"] == []
