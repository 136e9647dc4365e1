"""``hpcgate ml-api`` as an operator meets it: one-line errors, and a real process serving."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.live_api import free_port
from tests.integration.ml.ml_env import DockerEnv, MainApi

pytestmark = pytest.mark.integration

HPCGATE = [sys.executable, "-m", "hpcgate.cli"]
SECRET = "test-secret-key-0123456789abcdef"


def _env(extra: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HPCGATE_", "DOCKER_"))}
    return {**clean, **extra}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HPCGATE, "ml-api", *args],
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hpcgate: error: ")
    assert fragment in lines[0]


def test_configuration_errors_are_one_line(tmp_path: Path) -> None:
    _one_line_error(_run([], {"HPCGATE_ENV": "production"}), "built-in default")
    ok = {"HPCGATE_ENV": "test", "HPCGATE_AUTH__SECRET_KEY": SECRET}
    _one_line_error(_run(["--namespace", "Not OK"], ok), "namespace")
    _one_line_error(_run([], {**ok, "HPCGATE_MLAPI_MAIN_API_URL": "ftp://x"}), "main_api_url")
    _one_line_error(
        _run(["--api-key-file", str(tmp_path / "missing")], ok), "cannot read the API key file"
    )


@pytest.mark.docker
def test_a_real_ml_api_process(
    main_api: MainApi, docker_env: DockerEnv, docker_client: Any, namespace: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "ml.key"
    key_file.write_text(main_api.ml_key + "\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            *HPCGATE,
            "ml-api",
            "--port",
            str(port),
            "--api-key-file",
            str(key_file),
            "--namespace",
            namespace,
            "--main-api-url",
            main_api.url,
        ],
        env=_env(
            {
                "HPCGATE_ENV": "test",
                "HPCGATE_AUTH__SECRET_KEY": SECRET,
                "HPCGATE_ML__DOCKER_HOST": docker_env.host,
            }
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(base + "/health", timeout=1)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "hpcgate ml-api did not answer /health"
            time.sleep(0.1)
        assert health.json()["main_api"] == "ok"
        model_id = main_api.register(image=docker_env.image)
        r = httpx.post(
            f"{base}/models/{model_id}/run", headers=main_api.admin_headers(), timeout=60
        )
        assert r.status_code == 200, r.text
        r = httpx.post(
            f"{base}/models/{model_id}/invocations",
            json={"instances": [{"n_atoms": 2, "ecutwfc": 25, "electron_maxstep": 3}]},
            headers=main_api.user_headers(),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["converged"] is False
        assert main_api.model(model_id)["state"] == "running"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # the ML-API is gone; the model keeps serving on its own
    (container,) = docker_client.containers.list(
        filters={"label": f"hpcgate.namespace={namespace}"}
    )
    assert container.status == "running"
