"""Raw outputs of an SSH cluster on the real loopback sshd: the directory listed and a file
downloaded over SFTP, symlinks planted on the cluster refused by the server's own real
paths (a link out of the directory, and the step directory itself replaced by a link out of
the scratch), and the live tail following a file the cluster appends to until the step ends."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import PurePosixPath

import httpx
import pytest

from hpcgate.api.app import create_app
from hpcgate.db.models import Step, User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.states import StepState
from tests.helpers.api import auth_headers
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server
from tests.helpers.ssh_env import SshTestEnv, load_ssh_env, make_ssh_runner

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ssh() -> SshTestEnv:
    found = load_ssh_env()
    if found is None:
        missing("the loopback sshd is not set up (scripts/services/sshd.sh)")
    return found


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    with engine_env(tmp_path_factory.mktemp("outputs-ssh"), "hpcgate_outssh") as e:
        yield e


def _set_step(env: EngineEnv, calc_id: int, state: StepState) -> str:
    with session_scope(env.factory) as s:
        step = s.query(Step).filter_by(calculation_id=calc_id).one()
        step.state = state
        step.scheduler_job_id = "4242"
        return str(step.workdir)


def test_outputs_over_sftp(env: EngineEnv, ssh: SshTestEnv) -> None:
    scratch = f"{ssh.scratch}/outputs-{uuid.uuid4().hex[:8]}"
    cid = env.add_cluster(
        f"ssh-{uuid.uuid4().hex[:6]}", scheduler="slurm", access_mode=AccessMode.SSH,
        scratch_root=scratch, host=ssh.host, port=ssh.port, login_user=ssh.user,
        options={"key_filename": ssh.key, "known_hosts": ssh.known_hosts},
    )  # fmt: skip
    calc_id = env.create(
        name="over ssh", cluster_id=cid, logical_queue="default", code="generic",
        configuration={"command": ["true"]},
    )  # fmt: skip
    workdir = PurePosixPath(_set_step(env, calc_id, StepState.RUNNING))
    runner = make_ssh_runner(ssh, scratch)
    payload = bytes(range(256)) * 5000  # 1.28 MB: several SFTP requests, pipelined
    runner.write_bytes(workdir / "data.bin", payload)
    runner.write_text(workdir / "sub" / "note.txt", "inside\n")
    runner.write_text(workdir / "stdout.txt", "first\n")
    outside = f"{ssh.scratch}/outside-{uuid.uuid4().hex[:6]}.txt"
    assert runner.run(["sh", "-c", f"echo secret > {outside}"]).returncode == 0
    assert runner.run(["ln", "-s", outside, str(workdir / "leak")]).returncode == 0
    with session_scope(env.factory) as s:
        user = s.get(User, env.user_id)
        assert user is not None
        s.expunge(user)
    headers = auth_headers(user, env.settings)
    with live_server(create_app(env.settings, engine=env.engine)) as base:
        url = f"{base}/calculations/{calc_id}/steps/0"
        r = httpx.get(f"{url}/outputs", headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        entries = {e["name"]: e for e in r.json()["entries"]}
        assert entries["data.bin"]["size"] == len(payload)
        assert entries["sub"]["kind"] == "dir"
        assert entries["leak"]["kind"] == "link"
        r = httpx.get(f"{url}/outputs", params={"path": "sub"}, headers=headers, timeout=30)
        assert [e["name"] for e in r.json()["entries"]] == ["note.txt"]
        r = httpx.get(f"{url}/outputs/data.bin", headers=headers, timeout=30)
        assert r.status_code == 200
        assert r.content == payload
        r = httpx.get(f"{url}/outputs/leak", headers=headers, timeout=30)
        assert r.status_code == 422, r.text
        assert "secret" not in r.text

        seen: list[str] = []

        def follow() -> None:
            with httpx.stream(
                "GET", f"{url}/tail", params={"file": "stdout.txt"}, headers=headers, timeout=60
            ) as rs:
                seen.extend(ln[6:] for ln in rs.iter_lines() if ln.startswith("data: "))

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        time.sleep(1.5)
        runner.run(["sh", "-c", f"echo second >> {workdir}/stdout.txt"])
        time.sleep(1.5)
        _set_step(env, calc_id, StepState.FINISHED)
        reader.join(30)
        assert not reader.is_alive()
        assert seen[:2] == ["first", "second"]
        assert seen[-1] == '{"state": "finished"}'

        # The job's account replaces its step directory by a link out of the scratch.
        moved = f"{workdir}.moved"
        assert runner.run(["mv", str(workdir), moved]).returncode == 0
        assert runner.run(["ln", "-s", "/etc", str(workdir)]).returncode == 0
        r = httpx.get(f"{url}/outputs/hostname", headers=headers, timeout=30)
        assert r.status_code == 422
        assert "outside the scratch root" in r.json()["detail"]
    runner.run(["rm", "-rf", "--", scratch, outside])
    runner.close()
