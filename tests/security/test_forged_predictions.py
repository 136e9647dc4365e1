"""Issue 15 item 10: users cannot forge predictions.

Exploit: any logged-in user POSTed /predictions for any model and any calculation, and the
made-up numbers then showed in the comparison view next to real results. Now only the
ML-API's key (naming the user it predicted for) or an admin writes them; users and
moderators get 403 and the ``predictions`` table is unchanged.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.security.conftest import SecurityStack

pytestmark = pytest.mark.integration


def _setup(s: SecurityStack) -> tuple[int, int]:
    with s.api("admin") as admin:
        r = admin.post(
            "/ml/models",
            json={
                "name": f"m-{uuid.uuid4().hex[:8]}",
                "version": "1.0.0",
                "image": "localhost/hpcgate-example-model:1.0.0",
            },
        )
        assert r.status_code == 201, r.text
        model_id = int(r.json()["id"])
    with s.api("other") as victim:
        r = victim.post("/calculations", json=s.calculation_body())
        assert r.status_code == 201, r.text
        calc_id = int(r.json()["id"])
    return model_id, calc_id


def _forged(model_id: int, calc_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "calculation_id": calc_id,
        "request": {"instances": []},
        "response": {"predictions": [{"converged": False, "p_not_converged": 0.99}]},
        **extra,
    }


@pytest.mark.parametrize("who", ["user", "other", "moderator"])
def test_users_cannot_write_predictions(security_stack: SecurityStack, who: str) -> None:
    s = security_stack
    model_id, calc_id = _setup(s)
    before = s.snapshot("predictions")
    with s.api(who) as api:
        plain = api.post("/predictions", json=_forged(model_id, calc_id))
        named = api.post(
            "/predictions", json=_forged(model_id, calc_id, user_id=s.accounts["admin"].id)
        )
        shown = api.get(f"/calculations/{calc_id}/predictions")
    assert plain.status_code == 403, plain.text
    assert "ML-API" in plain.json()["detail"]
    assert named.status_code == 403, named.text
    assert shown.status_code == 200
    assert shown.json()["predictions"] == []
    assert s.snapshot("predictions") == before


def test_a_user_token_dressed_as_a_key_is_refused(security_stack: SecurityStack) -> None:
    s = security_stack
    model_id, calc_id = _setup(s)
    before = s.snapshot("predictions")
    token = s.token("user")
    with s.client(**{"X-API-Key": token}) as api:
        r = api.post("/predictions", json=_forged(model_id, calc_id))
    assert r.status_code == 401
    with s.client(**{"X-API-Key": "hpcg_abcdefgh_" + "x" * 43}) as api:
        r = api.post("/predictions", json=_forged(model_id, calc_id))
    assert r.status_code == 401
    assert s.snapshot("predictions") == before


def test_the_ml_api_key_and_admins_write_predictions(security_stack: SecurityStack) -> None:
    s = security_stack
    model_id, calc_id = _setup(s)
    user_id = s.accounts["user"].id
    with s.ml_api() as ml:
        r = ml.post("/predictions", json=_forged(model_id, calc_id, user_id=user_id))
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == user_id
    with s.ml_api() as ml:
        unknown = ml.post("/predictions", json=_forged(model_id, calc_id, user_id=987654321))
    assert unknown.status_code == 404
    with s.api("admin") as admin:
        r = admin.post("/predictions", json=_forged(model_id, calc_id))
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == s.accounts["admin"].id
    with s.api("user") as api:
        shown = api.get(f"/calculations/{calc_id}/predictions").json()["predictions"]
    assert len(shown) == 2
