"""``GET /auth/me`` tells each role what it may do, and the live API enforces exactly that.

The portal hides what the permissions do not list; a hidden button is a convenience, the
403 is the guarantee. Here the two are held together: every role-level permission is
probed on a real route (ids that do not exist, so an allowed call ends in 404/422/200 and
changes nothing), and listed <=> not refused.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration

NO_ID = "987654321"
EVERYONE = [
    "calculation.read",
    "calculation.create",
    "cluster.read",
    "ml_model.read",
    "ml_model.invoke",
    "log.read",
]
EXPECTED: dict[str, list[str]] = {
    "user": [
        "calculation.read",
        "calculation.create",
        "calculation.update:own",
        "calculation.cancel:own",
        "cluster.read",
        "ml_model.read",
        "ml_model.invoke",
        "log.read",
        "usage.read:own",
    ],
    "moderator": [
        "calculation.read",
        "calculation.create",
        "calculation.update",
        "calculation.cancel",
        "calculation.approve",
        "calculation.prioritize",
        "user.read",
        "user.manage:lower_role",
        "cluster.read",
        "ml_model.read",
        "ml_model.invoke",
        "log.read",
        "usage.read",
    ],
    "admin": [
        "calculation.read",
        "calculation.create",
        "calculation.update",
        "calculation.cancel",
        "calculation.approve",
        "calculation.prioritize",
        "user.read",
        "user.manage",
        "user.administer",
        "cluster.read",
        "cluster.manage",
        "api_key.manage",
        "ml_model.read",
        "ml_model.invoke",
        "ml_model.manage",
        "prediction.write",
        "notification.manage",
        "log.read",
        "log.delete",
        "metrics.read",
        "usage.read",
        "quota.manage",
    ],
}
# A route that needs exactly this permission (and nothing more), probed without side effects.
PROBES: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "calculation.approve": ("POST", f"/calculations/{NO_ID}/approve", None),
    "calculation.prioritize": ("PUT", f"/calculations/{NO_ID}/priority", {"priority": 1}),
    "user.read": ("GET", "/users", None),
    "user.administer": ("POST", "/users", {}),
    "cluster.manage": ("GET", f"/clusters/{NO_ID}/config", None),
    "api_key.manage": ("GET", "/ml-api-keys", None),
    "ml_model.manage": ("GET", f"/ml/models/{NO_ID}/config", None),
    "prediction.write": ("POST", "/predictions", {}),
    "notification.manage": ("GET", "/notifications", None),
    "log.delete": ("DELETE", f"/logs?calculation_id={NO_ID}", None),
    "metrics.read": ("GET", "/metrics", None),
    "quota.manage": ("GET", f"/clusters/{NO_ID}/quotas", None),
}


@pytest.mark.parametrize("who", ["user", "moderator", "admin"])
def test_me_lists_the_permissions_of_the_role(security_stack: Any, who: str) -> None:
    with security_stack.api(who) as api:
        r = api.get("/auth/me")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["role"] == who
    assert body["permissions"] == EXPECTED[who]
    assert set(EVERYONE) <= set(body["permissions"])


@pytest.mark.parametrize("who", ["user", "moderator", "admin"])
def test_listed_permissions_are_what_the_api_enforces(security_stack: Any, who: str) -> None:
    with security_stack.api(who) as api:
        listed = set(api.get("/auth/me").json()["permissions"])
        wrong = []
        for permission, (method, path, body) in PROBES.items():
            r = api.request(method, path, json=body)
            assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text}"
            refused = r.status_code == 403
            if refused == (permission in listed):
                wrong.append(
                    f"{permission}: listed={permission in listed}, {method} {path} -> "
                    f"{r.status_code}"
                )
    assert not wrong, "\n".join(wrong)


def test_patch_me_answers_with_permissions_too(security_stack: Any) -> None:
    with security_stack.api("moderator") as api:
        r = api.patch("/auth/me", json={"full_name": "Moderator"})
    assert r.status_code == 200, r.text
    assert r.json()["permissions"] == EXPECTED["moderator"]
