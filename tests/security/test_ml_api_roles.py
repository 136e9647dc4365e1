"""Issue 15 item 5: the ML-API takes the caller's role from the main API, not from the token.

Exploit: the ML-API granted admin from the access token's ``role`` claim, so an admin who was
demoted (or blocked) kept control of model containers until the token expired (15 min).

Replayed against a real ``hpcgate ml-api`` process talking to the live main API (uvicorn on
loopback, real PostgreSQL). The ML-API needs a Docker engine to start; no container is
started here (the routes are probed with a model id that does not exist: an allowed call is
a 404). Its role cache is set to 1 s to keep the test short (the default and maximum is 5 s):

* an admin demoted through the main API: after the window, their old token is refused by the
  ML-API (401: the main API revoked the demoted admin's sessions), and a fresh token of the
  demoted user gets 403 on admin routes;
* an admin whose role is changed in the database without revoking sessions (an operator's
  SQL): the token's claim still says admin, and after the window the ML-API answers 403;
* a user blocked through the main API: after the window, 401 on every route.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.helpers.live_api import free_port
from tests.security.conftest import PASSWORD, SECRET, SecurityStack

pytestmark = pytest.mark.integration

ROLE_CACHE_S = 1.0
DOCKER_ENV = Path(os.environ.get("HPCGATE_TEST_DOCKER_ENV", "/var/lib/hpcgate-test/docker/env"))
PROBE = "/models/987654321"


def _missing(reason: str) -> None:
    """Skip outside CI, fail under CI=true (CI installed everything)."""
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"CI=true and a requirement is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def _docker_host() -> str:
    if not DOCKER_ENV.is_file():
        _missing(f"no Docker test engine: run scripts/services/docker.sh ({DOCKER_ENV} missing)")
    for line in DOCKER_ENV.read_text().splitlines():
        key, _, value = line.strip().removeprefix("export ").partition("=")
        if key == "HPCGATE_ML__DOCKER_HOST" and value:
            return shlex.split(value)[0]
    _missing(f"{DOCKER_ENV} names no HPCGATE_ML__DOCKER_HOST: run scripts/services/docker.sh")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def ml_api_url(
    security_stack: SecurityStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real ``hpcgate ml-api`` process on loopback, in front of the stack's main API."""
    docker_host = _docker_host()
    key_file = tmp_path_factory.mktemp("ml-api") / "ml.key"
    key_file.write_text(security_stack.ml_api_key + "\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCGATE_", "DOCKER_"))}
    env.update(
        {
            "HPCGATE_ENV": "test",
            "HPCGATE_AUTH__SECRET_KEY": SECRET,
            "HPCGATE_ML__DOCKER_HOST": docker_host,
            "HPCGATE_MLAPI_ROLE_CACHE_S": str(ROLE_CACHE_S),
        }
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "hpcgate.cli", "ml-api"),
            *("--port", str(port), "--api-key-file", str(key_file)),
            *("--namespace", f"sec{uuid.uuid4().hex[:10]}"),
            *("--main-api-url", security_stack.base_url),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(base + "/health", timeout=1).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                raise AssertionError(f"hpcgate ml-api exited: {out}")
            assert time.monotonic() < deadline, "hpcgate ml-api did not answer /health"
            time.sleep(0.1)
        health = httpx.get(base + "/health", timeout=5).json()
        if health.get("engine") != "ok":
            _missing(f"the Docker engine at {docker_host} is not usable: {health.get('engine')}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _new_account(s: SecurityStack, role: str) -> tuple[int, str]:
    email = f"ml-{role}.{uuid.uuid4().hex[:8]}@example.org"
    with s.api("admin") as admin:
        r = admin.post("/users", json={"email": email, "password": PASSWORD, "role": role})
        assert r.status_code == 201, r.text
        return int(r.json()["id"]), email


def _token(s: SecurityStack, email: str) -> str:
    r = httpx.post(
        s.base_url + "/auth/login", json={"email": email, "password": PASSWORD}, timeout=20
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _ml(base: str, method: str, path: str, token: str) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}, "timeout": 30}
    if method != "GET":
        kwargs["json"] = {}
    return httpx.request(method, base + path, **kwargs)


ADMIN_PROBES = (("POST", f"{PROBE}/stop"), ("POST", f"{PROBE}/run"), ("GET", f"{PROBE}/logs"))


def _wait_out_the_cache() -> None:
    time.sleep(ROLE_CACHE_S + 0.5)


def test_demoted_admin_loses_ml_api_admin(security_stack: SecurityStack, ml_api_url: str) -> None:
    s = security_stack
    victim_id, email = _new_account(s, "admin")
    token = _token(s, email)
    for method, path in ADMIN_PROBES:  # an admin: allowed (unknown model: 404)
        assert _ml(ml_api_url, method, path, token).status_code == 404
    before = s.snapshot("ml_models", "users")
    with s.api("admin") as admin:
        r = admin.patch(f"/users/{victim_id}", json={"role": "user"})
        assert r.status_code == 200, r.text
    demoted = s.snapshot("users")
    _wait_out_the_cache()
    for method, path in ADMIN_PROBES:
        r = _ml(ml_api_url, method, path, token)
        assert r.status_code == 401, r.text  # the main API revoked the old token
        assert "main API refused" in r.json()["detail"]
    assert _ml(ml_api_url, "GET", "/models", token).status_code == 401
    fresh = _token(s, email)  # logs in again: now a plain user
    for method, path in ADMIN_PROBES:
        assert _ml(ml_api_url, method, path, fresh).status_code == 403
    assert _ml(ml_api_url, "GET", "/models", fresh).status_code == 200
    assert s.snapshot("ml_models")["ml_models"] == before["ml_models"]
    assert s.snapshot("users") == demoted  # refusals changed nothing


def test_role_claim_is_not_trusted(security_stack: SecurityStack, ml_api_url: str) -> None:
    """The role changes in the database without any session revocation: the token still says
    admin; the ML-API follows the main API, not the claim."""
    s = security_stack
    victim_id, email = _new_account(s, "admin")
    token = _token(s, email)
    assert _ml(ml_api_url, "POST", f"{PROBE}/stop", token).status_code == 404
    with s.engine.begin() as conn:
        conn.execute(text("UPDATE users SET role = 'user' WHERE id = :i"), {"i": victim_id})
    before = s.snapshot("ml_models")
    _wait_out_the_cache()
    for method, path in ADMIN_PROBES:
        r = _ml(ml_api_url, method, path, token)
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "forbidden"
    assert _ml(ml_api_url, "GET", "/models", token).status_code == 200  # still a user
    assert s.snapshot("ml_models") == before


def test_blocked_user_loses_ml_api_access(security_stack: SecurityStack, ml_api_url: str) -> None:
    s = security_stack
    victim_id, email = _new_account(s, "user")
    token = _token(s, email)
    assert _ml(ml_api_url, "GET", "/models", token).status_code == 200
    assert _ml(ml_api_url, "POST", f"{PROBE}/invocations", token).status_code == 404
    with s.api("moderator") as moderator:
        r = moderator.post(f"/users/{victim_id}/block")
        assert r.status_code in (200, 204), r.text
    _wait_out_the_cache()
    for method, path in (("GET", "/models"), ("GET", PROBE), ("POST", f"{PROBE}/invocations")):
        r = _ml(ml_api_url, method, path, token)
        assert r.status_code == 401, r.text
