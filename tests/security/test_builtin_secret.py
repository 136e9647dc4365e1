"""Issue 15 item 8: the built-in secret is refused everywhere except ``env=dev`` on loopback.

Exploit: a service started with ``HPCGATE_ENV=test`` (or dev bound to ``0.0.0.0``) kept the
public built-in secret, so anyone could sign an admin token with it. Now:

* ``hpcgate serve`` and ``hpcgate ml-api`` refuse to start (one line, exit 2, nothing bound);
* ``hpcgate serve`` in dev on 127.0.0.1 (what ``make demo`` runs) still starts;
* against the live API (real secret), a token signed with the built-in secret is a 401 and
  changes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hpcgate.auth.jwt import issue_access_token
from hpcgate.domain.access import Role
from hpcgate.settings import DEFAULT_SECRET, Settings
from tests.helpers.live_api import free_port
from tests.security.conftest import REPO, SecurityStack

pytestmark = pytest.mark.integration


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCGATE_")}
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hpcgate.cli", *args],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _refused(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "built-in default" in lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("env_name", "host"),
    [("test", "127.0.0.1"), ("production", "127.0.0.1"), ("dev", "0.0.0.0"), ("dev", "::")],
)
def test_serve_refuses_the_builtin_secret(
    security_stack: SecurityStack, env_name: str, host: str
) -> None:
    s = security_stack
    port = free_port()
    before = s.snapshot("users", "refresh_tokens")
    proc = _run(
        ["serve", "--host", host, "--port", str(port)],
        _env(HPCGATE_ENV=env_name, HPCGATE_DATABASE_URL=s.database_url),
    )
    line = _refused(proc)
    assert f"env={env_name}" in line
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    assert s.snapshot("users", "refresh_tokens") == before


def test_ml_api_refuses_the_builtin_secret_off_loopback() -> None:
    proc = _run(
        ["ml-api", "--host", "0.0.0.0", "--port", str(free_port())], _env(HPCGATE_ENV="dev")
    )
    _refused(proc)


def test_dev_on_loopback_still_starts(security_stack: SecurityStack, tmp_path: Path) -> None:
    """What ``make demo`` relies on: env dev, built-in secret, bound to 127.0.0.1."""
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcgate.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(
            HPCGATE_ENV="dev",
            HPCGATE_DATABASE_URL=security_stack.database_url,
            HPCGATE_PATHS__DATA_DIR=str(tmp_path),
        ),
        cwd=str(REPO),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert status in (200, 503), (tmp_path / "serve.log").read_text(errors="replace")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def test_token_signed_with_the_builtin_secret_is_refused(security_stack: SecurityStack) -> None:
    s = security_stack
    forged_settings = Settings(env="dev", auth={"secret_key": DEFAULT_SECRET})
    admin_id = s.accounts["admin"].id
    forged = issue_access_token(admin_id, Role.ADMIN, forged_settings).token
    before = s.snapshot("users")
    with s.client(Authorization=f"Bearer {forged}") as api:
        listed = api.get("/users")
        created = api.post(
            "/users",
            json={"email": "mallory@example.org", "password": "x" * 20, "role": "admin"},
        )
    assert listed.status_code == 401
    assert created.status_code == 401
    assert s.snapshot("users") == before
