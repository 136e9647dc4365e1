"""The Docker daemon itself restarts under a running ML-API: the model's container dies with
it; the watchdog notices, the ML-API recovers the model (labels + restart) and serves again."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.ci import missing
from tests.integration.ml.ml_env import DockerEnv, MainApi, ml_api, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.docker]
REPO = Path(__file__).resolve().parents[3]
PIDFILE = Path(os.environ.get("HPCGATE_TEST_DOCKER_DIR", "/var/lib/hpcgate-test/docker")) / (
    "dockerd.pid"
)


def restart_dockerd() -> None:
    pid = int(PIDFILE.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and ") Z " in stat.read_text():
            break
        time.sleep(0.2)
    subprocess.run(["bash", str(REPO / "scripts/services/docker.sh")], check=True,
                   capture_output=True, timeout=300)


def _state(client: Any, model_id: int, headers: dict[str, str]) -> dict[str, Any]:
    r = client.get(f"/models/{model_id}", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_model_state_recovered_after_a_docker_daemon_restart(
    main_api: MainApi, docker_env: DockerEnv, docker_client: Any, namespace: str
) -> None:
    if not PIDFILE.exists() or os.geteuid() != 0:
        missing("needs the project's dockerd (scripts/services/docker.sh) and root")
    admin, user = main_api.admin_headers(), main_api.user_headers()
    model = main_api.register(image=docker_env.image)
    with ml_api(main_api, docker_env, namespace) as client:
        assert client.post(f"/models/{model}/run", headers=admin).status_code == 200
        wait_for(lambda: _state(client, model, admin)["health"] == "healthy", what="healthy")
        restart_dockerd()
        wait_for(
            lambda: (s := _state(client, model, admin))["state"] == "running"
            and s["health"] == "healthy"
            and s["restarts"] >= 1,
            timeout=90,
            every=0.5,
            what="recovery after the daemon restart",
        )
        r = client.post(f"/models/{model}/invocations", json={"n_atoms": 2, "ecutwfc": 25},
                        headers=user)
        assert r.status_code == 200, r.text
        assert client.get("/health").json()["engine"] == "ok"
