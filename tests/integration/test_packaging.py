"""`pip install hpcgate` gives a complete server: the wheel, built from this tree and installed
alone in a fresh venv (outside the repository), runs the demo (embedded PostgreSQL) and
answers its health check and a SIESTA preview, which needs sisl and numpy (a 500 before they
became dependencies). The client verbs log in against it from that same install.

It needs the package index pip is configured with (the dependencies are installed for
real); without one it skips outside CI and fails under CI=true.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.ci import missing
from tests.helpers.live_api import free_port
from tests.helpers.siesta_env import siesta_case

pytestmark = [pytest.mark.integration, pytest.mark.packaging]

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCGATE_", "VIRTUAL_ENV"))}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.timeout(1500)
def test_the_wheel_installs_a_complete_server(tmp_path: Path) -> None:
    h2o = siesta_case("h2o")  # the real pseudopotentials, read before anything is built
    dist = tmp_path / "dist"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        tmp_path,
    )
    if built.returncode != 0:
        missing(f"cannot build the wheel (package index for hatchling?): {built.stderr[-500:]}")
    (wheel,) = dist.glob("hpcgate-*.whl")

    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], tmp_path).returncode == 0
    python, hpcgate = venv / "bin" / "python", venv / "bin" / "hpcgate"
    installed = _run([str(python), "-m", "pip", "install", "-q", str(wheel)], tmp_path)
    if installed.returncode != 0:
        missing(f"cannot install the wheel's dependencies: {installed.stderr[-800:]}")
    where = _run([str(python), "-c", "import hpcgate, sisl, numpy, reportlab, matplotlib, rich; "
                  "print(hpcgate.__file__)"], tmp_path)  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(venv))  # not this source tree

    data, port = tmp_path / "data", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCGATE_")}
    env.update(
        HPCGATE_LOCAL__JOB_USER="",
        HPCGATE_SIESTA_PSEUDOS=str(tmp_path / "no-pseudos"),  # no SIESTA runs seeded
        XDG_CONFIG_HOME=str(tmp_path / "config"),
    )
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [str(hpcgate), "demo", "--port", str(port), "--data-dir", str(data)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert demo.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)

        password = (data / "demo-admin-password").read_text().strip()
        login = _run_cli(hpcgate, env, base, password, tmp_path)
        assert login.returncode == 0, login.stderr
        token = httpx.post(
            f"{base}/auth/login",
            json={"email": "admin@hpcgate.example.org", "password": password},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        (cluster,) = httpx.get(f"{base}/clusters", headers=headers).json()
        preview = httpx.post(
            f"{base}/calculations/preview",
            headers=headers,
            json={
                "name": "H2O preview from the wheel",
                "cluster_id": cluster["id"],
                "logical_queue": cluster["queues"][0]["logical_queue"],
                "code": "siesta",
                "configuration": {"kind": "single", "inputs": h2o, "main_input": "h2o.fdf"},
            },
            timeout=60,
        )
        assert preview.status_code == 200, preview.text
        (step,) = preview.json()["steps"]
        assert "h2o.fdf" in step["files"]
        assert "siesta" in step["script"]
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=120) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()


def _run_cli(
    hpcgate: Path, env: dict[str, str], base: str, password: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """The installed client verbs against the installed server."""
    return subprocess.run(
        [str(hpcgate), "login", "--url", base, "--email", "admin@hpcgate.example.org",
         "--password-stdin"],
        input=password, env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
