"""Property-based fuzzing of every operation in the OpenAPI schema: never a 5xx.

Schemathesis generates valid (positive) and invalid (negative) requests for each operation
and calls the ASGI app in-process, authenticated as an admin (``Authorization``) and as a
cluster agent (``X-API-Key``) at once, so protected routes are really exercised. Bounded:
a few examples per operation, derandomized (same cases every run), on a database of its own.

``GET /logs/stream`` is left out: it is an endless SSE stream by design (tested in
test_logs_api.py).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from sqlalchemy import Engine

from hpcgate.api.app import create_app
from hpcgate.api.routes.agent import MAX_PULL_WAIT_S
from hpcgate.domain.access import Role
from hpcgate.settings import Settings
from tests.helpers.api import access_token, new_api_key, new_cluster, new_user

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

EXAMPLES = {
    GenerationMode.POSITIVE: int(os.environ.get("HPCGATE_FUZZ_EXAMPLES", "10")),
    GenerationMode.NEGATIVE: int(os.environ.get("HPCGATE_FUZZ_NEGATIVE_EXAMPLES", "5")),
}
SKIP = {("GET", "/logs/stream")}


@pytest.fixture(scope="module")
def app(isolated_settings: Settings, isolated_engine: Engine) -> FastAPI:
    return create_app(isolated_settings, engine=isolated_engine)


def _accepted_wait(value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return 0 <= number <= MAX_PULL_WAIT_S  # False for NaN too


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    headers: Callable[[], dict[str, str]],
    statuses: Counter[int],
    failures: list[str],
) -> None:
    """Run ``EXAMPLES[mode]`` generated requests against one operation."""
    label = f"{operation.method.upper()} {operation.path} ({mode.value})"

    @hsettings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        # ours win over generated credential headers (random tokens would only 401)
        case.headers = {**(case.headers or {}), **headers()}
        # A valid long-poll waits (up to 25 s) by design: tested in test_agent_long_poll.py.
        # A negative case may still carry a valid wait (its invalid part being the body), so
        # any wait that would be accepted becomes 0; invalid ones stay, to be refused.
        query = case.query or {}
        if label.startswith("POST /agent/pull ") and _accepted_wait(query.get("wait")):
            query["wait"] = 0
        response = case.call()
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(
                f"{label} -> {response.status_code}: {response.text[:300]}\n"
                f"  reproduce: {case.as_curl_command()}"
            )

    try:
        run()
    except Unsatisfiable:
        # nothing to make invalid (e.g. no parameters and no body): fine
        assert mode is GenerationMode.NEGATIVE, f"{label}: no valid request can be generated"


def test_no_server_errors(
    app: FastAPI, isolated_settings: Settings, isolated_engine: Engine
) -> None:
    admin = new_user(isolated_engine, role=Role.ADMIN)
    new_user(isolated_engine)  # someone to find, block, delete...
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    agent_key = ""

    def headers() -> dict[str, str]:
        # a fresh token per call: fuzzed admin calls may revoke the admin's sessions
        return {
            "Authorization": f"Bearer {access_token(admin, isolated_settings)}",
            "X-API-Key": agent_key,
        }

    failures: list[str] = []
    statuses: dict[str, Counter[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        op = f"{operation.method.upper()} {operation.path}"
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        # a fresh agent key: earlier fuzzed admin calls may have deleted its cluster or revoked it
        _, agent_key = new_api_key(isolated_engine, cluster=new_cluster(isolated_engine))
        for mode in EXAMPLES:
            _fuzz(operation, mode, headers, statuses.setdefault(op, Counter()), failures)

    if os.environ.get("HPCGATE_FUZZ_REPORT"):
        for op, counter in sorted(statuses.items()):
            print(f"{op}: {dict(sorted(counter.items()))}")
    assert sum(sum(c.values()) for c in statuses.values()) > 100
    # the credentials really opened the routes: admin and agent operations succeeded
    succeeded = {op for op, c in statuses.items() if any(code < 300 for code in c)}
    assert len(succeeded) >= 15, statuses
    assert any(op.startswith("POST /agent/") for op in succeeded), statuses
    assert not failures, f"{len(failures)} server error(s):\n" + "\n".join(failures[:20])
