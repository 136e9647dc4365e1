"""The RBAC matrix: every route of the real app x every kind of caller, against ``rbac_table``.

- every route in ``app.routes`` must be in ``RBAC`` (and every entry must be a route): the
  failure message prints the line to add;
- each route's dependency tree must declare the table's minimum through ``hpcgate.api.deps``
  (``permitted(action)``: the lowest role of the action's row in ``hpcgate.domain.access``;
  roles are never checked by hand);
- each route is called by anonymous, user, moderator, admin, an agent key, an ML-API key, a
  revoked key and an expired token; the status must match ``EXPECTED`` for its minimum;
- ``docs/rbac.md`` must be what ``scripts/gen_rbac_doc.py`` generates.

Probes use ids that do not exist and an empty JSON body, on a database of their own, so an
allowed call ends in 404/422 (or a harmless success) - the point is only whether
authorization let it through; a 5xx is a failure in any cell.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hpcgate.api import deps
from hpcgate.api.app import create_app
from hpcgate.domain.access import POLICY, Action, Role
from hpcgate.settings import Settings
from tests.helpers.api import (
    Endpoint,
    access_token,
    api_endpoints,
    new_api_key,
    new_cluster,
    new_user,
)
from tests.integration.api import rbac_table as table

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PROBE_ID = "987654321"


@pytest.fixture(scope="module")
def app(isolated_settings: Settings, isolated_engine: Engine) -> FastAPI:
    return create_app(isolated_settings, engine=isolated_engine)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def principals(isolated_settings: Settings, isolated_engine: Engine) -> dict[str, dict[str, str]]:
    s, e = isolated_settings, isolated_engine
    user = new_user(e, role=Role.USER)
    moderator = new_user(e, role=Role.MODERATOR)
    admin = new_user(e, role=Role.ADMIN)
    cluster = new_cluster(e)
    _, agent_key = new_api_key(e, cluster=cluster)
    _, revoked_key = new_api_key(e, cluster=cluster, revoked=True)
    _, ml_key = new_api_key(e)
    return {
        "anonymous": {},
        "user": {"Authorization": f"Bearer {access_token(user, s)}"},
        "moderator": {"Authorization": f"Bearer {access_token(moderator, s)}"},
        "admin": {"Authorization": f"Bearer {access_token(admin, s)}"},
        "agent_key": {"Authorization": f"Bearer {agent_key}"},
        "ml_api_key": {"X-API-Key": ml_key},
        "revoked_key": {"X-API-Key": revoked_key},
        "expired_token": {"Authorization": f"Bearer {access_token(admin, s, expired=True)}"},
    }


def test_every_route_is_in_the_table(app: FastAPI) -> None:
    routes = api_endpoints(app)
    missing = sorted(set(routes) - set(table.RBAC))
    stale = sorted(set(table.RBAC) - set(routes))
    message = []
    if missing:
        message.append(
            "These routes are not in tests/integration/api/rbac_table.py. Add to RBAC (choose "
            f"the minimum among {', '.join(m.upper() for m in table.MINIMUMS)}), then run "
            "`.venv/bin/python scripts/gen_rbac_doc.py`:\n"
            + "\n".join(table.table_line(m, p, _declared_name(routes[(m, p)])) for m, p in missing)
        )
    if stale:
        message.append(
            "These RBAC entries name no route any more; remove them from rbac_table.py and run "
            "`.venv/bin/python scripts/gen_rbac_doc.py`:\n"
            + "\n".join(table.table_line(m, p, table.RBAC[(m, p)].upper()) for m, p in stale)
        )
    assert not message, "\n\n".join(message)
    assert set(table.RBAC.values()) <= set(table.MINIMUMS)


# ------------------------------------------------------------- declared by dependencies


def _dependency_calls(route: Endpoint) -> set[Any]:
    seen: set[Any] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is not None:
            seen.add(dep.call)
        stack.extend(dep.dependencies)
    return seen


def declared_minimum(route: Endpoint) -> str:
    """What the route's dependencies enforce, in the table's vocabulary."""
    calls = _dependency_calls(route)
    if deps.get_prediction_writer in calls:
        return table.ML_API_OR_ADMIN
    if deps.get_metrics_reader in calls:
        return table.METRICS
    roles = [_lowest_role(a) for a in Action if deps.permitted(a) in calls]
    if deps.get_managed_user in calls:
        roles.append(_lowest_role(Action.USER_MANAGE))
    if roles:
        return max(roles, key=lambda r: r.rank).value  # the table names minimums by role
    if deps.get_current_user in calls:
        return table.USER
    if deps.get_agent_cluster in calls:
        return table.AGENT
    if deps.get_ml_api_key in calls:
        return table.ML_API
    return table.PUBLIC


def _lowest_role(action: Action) -> Role:
    """The least role the policy lets do ``action`` at all (in some scope)."""
    return min(POLICY[action], key=lambda r: r.rank)


def _declared_name(route: Endpoint) -> str:
    return declared_minimum(route).upper()


def test_routes_enforce_the_table_through_deps(app: FastAPI) -> None:
    wrong = []
    for key, route in sorted(api_endpoints(app).items()):
        expected = table.RBAC.get(key)
        if expected is None:
            continue  # reported by test_every_route_is_in_the_table
        if expected == table.REFRESH_COOKIE:
            expected = table.PUBLIC  # the cookie is checked by the handler's service
        declared = declared_minimum(route)
        if declared != expected:
            wrong.append(f"{key[0]} {key[1]}: table says {expected}, dependencies say {declared}")
    assert not wrong, (
        "Use the hpcgate.api.deps aliases (CurrentUser, May..., ManagedUser, AgentCluster, "
        "MlApiKey, PredictionWriter, MetricsReader) so the route enforces what rbac_table.py "
        "says:\n" + "\n".join(wrong)
    )


# ------------------------------------------------------------- the matrix itself


def _probe_path(path: str) -> str:
    return re.sub(r"\{[^}]+\}", PROBE_ID, path)


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> int:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in {"POST", "PUT", "PATCH", "DELETE"}:
        kwargs["json"] = {}
    client.cookies.clear()
    # stream: an SSE route answers with its status and would otherwise never end
    with client.stream(method, _probe_path(path), **kwargs) as response:
        return response.status_code


_SESSION_ENDING = {("POST", "/auth/logout")}


def test_rbac_matrix(
    app: FastAPI, client: TestClient, principals: dict[str, dict[str, str]]
) -> None:
    failures = []
    # Logout revokes the caller's access tokens: probe it after every other route.
    order = sorted(table.RBAC.items(), key=lambda kv: (kv[0] in _SESSION_ENDING, kv[0]))
    for (method, path), minimum in order:
        if (method, path) not in api_endpoints(app):
            continue  # reported by test_every_route_is_in_the_table
        for principal in table.PRINCIPALS:
            status = _call(client, method, path, principals[principal])
            expected = table.EXPECTED[minimum][principal]
            if status >= 500:
                ok = False
            elif expected == table.ALLOW:
                ok = status not in (401, 403)
            else:
                ok = status == expected
            if not ok:
                failures.append(
                    f"{method} {path} as {principal}: got {status}, expected {expected} "
                    f"(minimum {minimum})"
                )
    assert not failures, f"{len(failures)} RBAC cell(s) wrong:\n" + "\n".join(failures)


def test_rbac_doc_is_current() -> None:
    doc = ROOT / "docs" / "rbac.md"
    assert doc.exists(), "docs/rbac.md missing: run `.venv/bin/python scripts/gen_rbac_doc.py`"
    assert doc.read_text(encoding="utf-8") == table.render_doc(), (
        "docs/rbac.md is stale: run `.venv/bin/python scripts/gen_rbac_doc.py`"
    )


# ------------------------------------------------------------- the ML-API's own routes
# (the live matrix runs in tests/integration/ml/test_ml_rbac_matrix.py, against a real
# ML-API and main API)


def ml_api_endpoints() -> dict[tuple[str, str], Endpoint]:
    from ml.api import create_ml_app
    from ml.settings import MlApiConfig

    settings = Settings(env="test", auth={"secret_key": "rbac-ml-secret-0123456789abcdef"})
    return api_endpoints(create_ml_app(settings, MlApiConfig()))


def ml_declared_minimum(route: Endpoint) -> str:
    """What the ML-API route's dependencies enforce, in the table's vocabulary."""
    from ml import deps as ml_deps
    from ml.routes.metrics import metrics_reader

    calls = _dependency_calls(route)
    if metrics_reader in calls:
        return table.METRICS
    roles = [_lowest_role(a) for a in Action if ml_deps.permitted(a) in calls]
    if roles:
        return max(roles, key=lambda r: r.rank).value
    if ml_deps.get_caller in calls:
        return table.USER
    return table.PUBLIC


def test_every_ml_api_route_is_in_the_table_and_enforces_it() -> None:
    routes = ml_api_endpoints()
    missing = sorted(set(routes) - set(table.ML_API_RBAC))
    stale = sorted(set(table.ML_API_RBAC) - set(routes))
    assert not missing, f"ML-API routes missing from ML_API_RBAC in rbac_table.py: {missing}"
    assert not stale, f"ML_API_RBAC entries that name no ML-API route: {stale}"
    wrong = [
        f"{m} {p}: table says {table.ML_API_RBAC[(m, p)]}, dependencies say {declared}"
        for (m, p), route in sorted(routes.items())
        if (declared := ml_declared_minimum(route)) != table.ML_API_RBAC[(m, p)]
    ]
    assert not wrong, "ML-API routes must use ml.api's Caller/Admin:\n" + "\n".join(wrong)
    assert set(table.ML_API_RBAC.values()) <= set(table.ML_API_MINIMUMS)
