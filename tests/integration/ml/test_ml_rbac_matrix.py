"""The ML-API's RBAC matrix: every route of a real ML-API x every kind of caller.

The ML-API runs against a real main API (uvicorn on loopback, scratch database) and the
real Docker engine, but no container is started: probes use a model id that does not
exist, so an allowed call ends in 404/422 (or a harmless listing). The table is
``ML_API_RBAC``/``ML_API_EXPECTED`` in ``tests/integration/api/rbac_table.py`` (also the
source of docs/rbac.md). Callers include the ones a claim-trusting ML-API got wrong: a
plain user whose token's ``role`` claim says admin, a user blocked and an admin whose
sessions were revoked after their tokens were issued.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from hpcgate.domain.access import Role
from tests.helpers.api import access_token, new_api_key, new_cluster, new_user
from tests.integration.api import rbac_table as table
from tests.integration.ml.ml_env import DockerEnv, MainApi, ml_api

pytestmark = [pytest.mark.integration, pytest.mark.docker]

PROBE_ID = "987654321"


def _principals(main_api: MainApi) -> dict[str, dict[str, str]]:
    e, s = main_api.engine, main_api.settings
    user = new_user(e, role=Role.USER)
    moderator = new_user(e, role=Role.MODERATOR)
    admin = new_user(e, role=Role.ADMIN)
    claim_user = new_user(e, role=Role.USER)
    blocked = new_user(e, role=Role.USER)
    revoked = new_user(e, role=Role.ADMIN)
    _, agent_key = new_api_key(e, cluster=new_cluster(e))
    out = {
        "anonymous": {},
        "user": {"Authorization": f"Bearer {access_token(user, s)}"},
        "moderator": {"Authorization": f"Bearer {access_token(moderator, s)}"},
        "admin": {"Authorization": f"Bearer {access_token(admin, s)}"},
        # signed with the shared key, valid, but the claim lies about the role
        "admin_claim_user": {
            "Authorization": f"Bearer {access_token(claim_user, s, role=Role.ADMIN)}"
        },
        "blocked_user": {"Authorization": f"Bearer {access_token(blocked, s)}"},
        "revoked_admin": {"Authorization": f"Bearer {access_token(revoked, s)}"},
        "expired_token": {"Authorization": f"Bearer {access_token(admin, s, expired=True)}"},
        "ml_api_key": {"X-API-Key": main_api.ml_key},
        "agent_key": {"Authorization": f"Bearer {agent_key}"},
    }
    # after the tokens were issued: through the main API, as an operator would
    for path in (f"/users/{blocked.id}/block", f"/users/{revoked.id}/revoke-sessions"):
        r = httpx.post(main_api.url + path, headers=main_api.admin_headers(), timeout=10)
        assert r.status_code in (200, 204), r.text
    return out


def test_ml_api_rbac_matrix(main_api: MainApi, docker_env: DockerEnv, namespace: str) -> None:
    principals = _principals(main_api)
    failures = []
    with ml_api(main_api, docker_env, namespace) as client:
        for (method, path), minimum in sorted(table.ML_API_RBAC.items()):
            for principal in table.ML_API_PRINCIPALS:
                kwargs: dict[str, Any] = {"headers": principals[principal]}
                if method in {"POST", "PUT", "PATCH", "DELETE"}:
                    kwargs["json"] = {}
                r = client.request(method, re.sub(r"\{[^}]+\}", PROBE_ID, path), **kwargs)
                expected = table.ML_API_EXPECTED[minimum][principal]
                if r.status_code >= 500 and not (path == "/health" and r.status_code == 503):
                    ok = False
                elif expected == table.ALLOW:
                    ok = r.status_code not in (401, 403)
                else:
                    ok = r.status_code == expected
                if not ok:
                    failures.append(
                        f"{method} {path} as {principal}: got {r.status_code} {r.text[:120]}, "
                        f"expected {expected} (minimum {minimum})"
                    )
    assert not failures, f"{len(failures)} ML-API RBAC cell(s) wrong:\n" + "\n".join(failures)
