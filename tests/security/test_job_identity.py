"""Issue 15, item 2: jobs never run as the identity holding the service's secrets.

Black-box against the live API (``security_stack``: uvicorn + PostgreSQL), with the real
worker code (dispatch and harvest ticks, built from settings exactly as ``hpcgate worker``
builds them), the real local executor, the real Slurm 22.05 and the real accounts from
``scripts/services/job-accounts.sh``. The worker process holds secrets in its environment
(``SECRETS``) while it submits. Each exploit is a user's job that tries to read them:

* the environment (secret key, database URL, SMTP password, any other service variable);
* the data dir (the demo admin's password file, the embedded PostgreSQL's files);
* the agent's API key file (agent mode: the agent submits through ``sudo -n -u``);
* another user's calculation directory (users mapped to their own cluster accounts).

Scratch and data live under a fresh ``/tmp/hpcgate-idt-*`` (0711), not pytest's tmp dir,
which is 0700 to root and would hide everything from the job account by accident.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hpcgate.db.models import Calculation, Step
from hpcgate.db.session import session_scope
from hpcgate.domain.states import FINAL_CALCULATION_STATES
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from hpcgate.services.job_identity import secure_data_dir
from hpcgate.settings import Settings
from tests.helpers.ci import missing
from tests.security.conftest import SecurityStack

pytestmark = [pytest.mark.integration, pytest.mark.slurm, pytest.mark.timeout(300)]

JOB_USER = "hpcgate-job"
ALICE, BOB = "hpcg-alice", "hpcg-bob"
SECRETS = {
    "HPCGATE_SECRET_KEY": "idt-secret-key-must-never-reach-a-job-0123456789",
    "HPCGATE_DATABASE_URL": "postgresql+psycopg://svc:idt-db-password@127.0.0.1/hpcgate",
    "HPCGATE_SMTP__PASSWORD": "idt-smtp-password",
    "HPCGATE_CLUSTER_ACCOUNTS__ENCRYPTION_KEY": "idt-fernet-key-material",
    "SOME_SERVICE_TOKEN": "idt-other-service-variable",
}
ADMIN_PASSWORD = "idt-admin-password-in-the-data-dir"
PG_MARKER = "idt-embedded-postgres-data"


def _require_environment() -> None:
    if os.geteuid() != 0:
        missing("job identity tests switch accounts: run them as root")
    for account in (JOB_USER, ALICE, BOB):
        try:
            pwd.getpwnam(account)
        except KeyError:
            missing(f"account {account} missing: run scripts/services/job-accounts.sh")
    if shutil.which("sbatch") is None or subprocess.run(
        ["sinfo", "-h"], capture_output=True, check=False, timeout=30
    ).returncode != 0:
        missing("Slurm not answering: run scripts/services/slurm.sh")


@dataclass
class World:
    stack: SecurityStack
    base: Path
    data_dir: Path
    settings: Settings

    def scratch(self, label: str) -> Path:
        path = self.base / f"scratch-{label}"
        path.mkdir(mode=0o711, exist_ok=True)
        return path

    def cluster(self, label: str, scheduler: str, partition: str, **extra: Any) -> int:
        body = {
            "name": f"idt-{label}-{uuid.uuid4().hex[:6]}",
            "scheduler": scheduler,
            "access_mode": extra.pop("access_mode", "local"),
            "scratch_root": str(self.scratch(label)),
            "queues": [{"logical_queue": "default", "partition": partition}],
            **extra,
        }
        with self.stack.api("admin") as api:
            r = api.post("/clusters", json=body)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def submit(self, who: str, cluster_id: int, script: str) -> int:
        body = self.stack.calculation_body(
            cluster_id=cluster_id,
            configuration={"kind": "single", "command": ["/bin/bash", "-c", script]},
        )
        with self.stack.api(who) as api:
            r = api.post("/calculations", json=body)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def run(self, *calc_ids: int, timeout: float = 120) -> dict[int, str]:
        """The worker's ticks, with the service's secrets in its environment, until done."""
        stack = self.stack
        conns = ClusterConnections(settings=self.settings)
        saved = {k: os.environ.get(k) for k in SECRETS}
        os.environ.update(SECRETS)
        try:
            deadline = time.monotonic() + timeout
            while True:
                dispatch_tick(stack.engine, stack.factory, conns, self.settings,
                              claimed_by="idt-worker")
                harvest_tick(stack.engine, stack.factory, conns, self.settings)
                states = self.states(*calc_ids)
                if all(states[c] in {s.value for s in FINAL_CALCULATION_STATES}
                       for c in calc_ids):
                    return states
                assert time.monotonic() < deadline, f"not settled: {states}"
                time.sleep(0.3)
        finally:
            conns.close()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def states(self, *calc_ids: int) -> dict[int, str]:
        with session_scope(self.stack.factory) as s:
            return {c: s.get(Calculation, c).state.value for c in calc_ids}  # type: ignore[union-attr]

    def workdir(self, calc_id: int) -> Path:
        with session_scope(self.stack.factory) as s:
            step = s.scalar(select(Step).where(Step.calculation_id == calc_id))
            assert step is not None
            assert step.workdir
            return Path(step.workdir)

    def job_ids(self, calc_id: int) -> dict[str, str]:
        """Scheduler id -> job name of the calculation's steps."""
        with session_scope(self.stack.factory) as s:
            rows = s.execute(
                select(Step.scheduler_job_id, Step.job_name).where(Step.calculation_id == calc_id)
            ).all()
            return {str(r[0]): str(r[1]) for r in rows}


FERNET_KEY = "kV0hq3n9qZ1m4yq0w8xK2bL5cT7dR9fG1hJ3kL5mN7o="  # test-only Fernet key
ACCOUNTS_STATE = Path("/var/lib/hpcgate-test/job-accounts")


@pytest.fixture(scope="module")
def security_settings_overrides() -> dict[str, Any]:
    """The live API stores users' SSH keys: it needs the encryption key."""
    return {"cluster_accounts": {"encryption_key": FERNET_KEY}}


@pytest.fixture(scope="module")
def world(security_stack: SecurityStack) -> Iterator[World]:
    _require_environment()
    base = Path(tempfile.mkdtemp(prefix="hpcgate-idt-"))
    os.chmod(base, 0o711)
    data_dir = base / "data"
    settings = security_stack.settings.model_copy(
        update={
            "paths": security_stack.settings.paths.model_copy(update={"data_dir": data_dir}),
            "local": security_stack.settings.local.model_copy(update={"job_user": JOB_USER}),
        }
    )
    secure_data_dir(settings)
    # What `hpcgate demo` keeps there: the admin's password and the embedded PostgreSQL.
    (data_dir / "demo-admin-password").write_text(ADMIN_PASSWORD + "\n")
    (data_dir / "postgres").mkdir(mode=0o700)
    (data_dir / "postgres" / "PG_VERSION").write_text(PG_MARKER + "\n")
    try:
        yield World(security_stack, base, data_dir, settings)
    finally:
        shutil.rmtree(base, ignore_errors=True)


PROBE = (
    "env > env.txt; id -un > who.txt; "
    "{{ cat {data}/demo-admin-password; ls {data}/postgres; cat {data}/postgres/PG_VERSION; }}"
    " > stolen.txt 2>&1; echo done"
)


def _assert_contained(workdir: Path, data_dir: Path, account: str) -> None:
    env = (workdir / "env.txt").read_text()
    names = {line.split("=", 1)[0] for line in env.splitlines() if "=" in line}
    assert "PATH" in names
    for name, value in SECRETS.items():
        assert name not in names, f"the job saw {name}"
        assert value not in env
    assert not {n for n in names if n.startswith("HPCGATE_") and not n.startswith(
        ("HPCGATE_PARAM_", "HPCGATE_LOCAL_", "HPCGATE_JOB", "HPCGATE_TASK", "HPCGATE_WORKDIR",
         "HPCGATE_STATE", "HPCGATE_RC", "HPCGATE_OMPI"))}
    assert (workdir / "who.txt").read_text().strip() == account
    stolen = (workdir / "stolen.txt").read_text()
    assert ADMIN_PASSWORD not in stolen
    assert PG_MARKER not in stolen
    assert "PG_VERSION" not in stolen.splitlines()  # not listed either
    assert "Permission denied" in stolen
    # and the data dir is the service's alone
    assert data_dir.stat().st_mode & 0o077 == 0


def test_local_executor_job_runs_as_job_account_without_secrets(world: World) -> None:
    cluster = world.cluster("local", "local", "local")
    calc = world.submit("user", cluster, PROBE.format(data=world.data_dir))
    assert world.run(calc)[calc] == "completed"
    _assert_contained(world.workdir(calc), world.data_dir, JOB_USER)


def _sacct_final(jobs: dict[str, str]) -> list[list[str]]:
    """Final accounting rows ``[id, name, user, state]`` of the jobs (sacct lags the queue).

    ``jobs``: scheduler id -> job name. Matched by name too: after a Slurm reinstall the
    accounting database still holds older jobs with the same ids.
    """
    deadline = time.monotonic() + 30
    rows: list[list[str]] = []
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "--duplicates", "-o", "JobIDRaw,JobName,User,State",
             "-S", "now-1days", "-j", ",".join(jobs)],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout
        rows = [line.split("|") for line in out.splitlines() if line.strip()]
        ours = [r for r in rows if jobs.get(r[0]) == r[1]]
        if len(ours) == len(jobs) and all(
            r[3].split()[0] in {"COMPLETED", "FAILED", "CANCELLED"} for r in ours
        ):
            return ours
        time.sleep(0.5)
    raise AssertionError(f"no final accounting for {jobs}: {rows}")


def _sacct_users(jobs: dict[str, str]) -> set[str]:
    return {r[2] for r in _sacct_final(jobs)}


def test_slurm_job_runs_as_job_account_without_secrets(world: World) -> None:
    cluster = world.cluster("slurm", "slurm", "debug")
    calc = world.submit("user", cluster, PROBE.format(data=world.data_dir))
    assert world.run(calc)[calc] == "completed"
    _assert_contained(world.workdir(calc), world.data_dir, JOB_USER)
    assert _sacct_users(world.job_ids(calc)) == {JOB_USER}, world.job_ids(calc)


def test_cluster_options_add_variables_but_never_reserved_ones(world: World) -> None:
    """An admin adds variables (job_environment, pass_environment); HPCGATE_* is refused."""
    with world.stack.api("admin") as api:
        for bad in ({"job_environment": {"HPCGATE_SECRET_KEY": "x"}},
                    {"pass_environment": ["HPCGATE_DATABASE_URL"]},
                    {"pass_environment": ["SLURM_JOB_ID"]},
                    {"job_user": "root"}):
            r = api.post("/clusters", json={
                "name": f"idt-bad-{uuid.uuid4().hex[:6]}", "scheduler": "local",
                "access_mode": "local", "scratch_root": str(world.scratch("bad")),
                "options": bad,
            })
            assert r.status_code == 422, (bad, r.text)
    cluster = world.cluster("opts", "slurm", "debug", options={
        "job_environment": {"SITE_LICENSE": "27000@lic.example.org"},
        "pass_environment": ["SOME_SERVICE_TOKEN"],
    })
    calc = world.submit("user", cluster, "env > env.txt")
    assert world.run(calc)[calc] == "completed"
    env = (world.workdir(calc) / "env.txt").read_text()
    assert "SITE_LICENSE=27000@lic.example.org" in env.splitlines()
    # passed on purpose by the admin: the one service variable a job may see
    assert f"SOME_SERVICE_TOKEN={SECRETS['SOME_SERVICE_TOKEN']}" in env.splitlines()
    assert SECRETS["HPCGATE_SECRET_KEY"] not in env


def test_mapped_users_run_as_themselves_and_cannot_read_each_other(world: World) -> None:
    stack = world.stack
    cluster = world.cluster("mapped", "slurm", "debug")
    with stack.api("admin") as api:
        for who, login in (("user", ALICE), ("other", BOB)):
            r = api.put(f"/clusters/{cluster}/accounts/{stack.accounts[who].id}",
                        json={"login_name": login})
            assert r.status_code == 200, r.text
            assert r.json()["login_name"] == login
        assert api.put(f"/clusters/{cluster}/accounts/{stack.accounts['moderator'].id}",
                       json={"login_name": "root"}).status_code == 422
        listed = api.get(f"/clusters/{cluster}/accounts").json()
        assert {a["login_name"] for a in listed} == {ALICE, BOB}
    with stack.api("user") as api:  # a plain user cannot map themselves
        r = api.put(f"/clusters/{cluster}/accounts/{stack.accounts['user'].id}",
                    json={"login_name": BOB})
        assert r.status_code == 403
    a = world.submit("user", cluster, "echo alice-private-result > result.txt; id -un > who.txt")
    assert world.run(a)[a] == "completed"
    a_dir = world.workdir(a)
    assert (a_dir / "result.txt").read_text() == "alice-private-result\n"
    b = world.submit("other", cluster, (
        f"id -un > who.txt; {{ cat {a_dir}/result.txt; ls {a_dir}; ls {a_dir.parent}; "
        f"touch {a_dir}/planted-by-bob; }} > probe.txt 2>&1; true"
    ))
    assert world.run(b)[b] == "completed"
    b_dir = world.workdir(b)
    assert (a_dir / "who.txt").read_text().strip() == ALICE
    assert (b_dir / "who.txt").read_text().strip() == BOB
    probe = (b_dir / "probe.txt").read_text()
    assert "alice-private-result" not in probe
    assert "result.txt" not in probe.splitlines()  # not listed
    assert "Permission denied" in probe
    assert not (a_dir / "planted-by-bob").exists()
    # site accounting sees the real users
    assert _sacct_users(world.job_ids(a)) == {ALICE}
    assert _sacct_users(world.job_ids(b)) == {BOB}


def test_agent_job_cannot_read_the_agent_key(world: World) -> None:
    """Agent mode: the agent submits with ``sudo -n -u hpcgate-job``; the key stays its own."""
    from hpcgate.agent.config import AgentConfig
    from hpcgate.agent.loop import Agent

    stack = world.stack
    cluster = world.cluster("agent", "slurm", "debug", access_mode="agent")
    with stack.api("admin") as api:
        r = api.post(f"/clusters/{cluster}/api-keys", json={"name": "idt-agent"})
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        name = api.get(f"/clusters/{cluster}").json()["name"]
    agent_dir = world.base / "agent"
    agent_dir.mkdir(mode=0o700)
    key_file = agent_dir / "api-key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    calc = world.submit("user", cluster, (
        f"id -un > who.txt; env > env.txt; cat {key_file} > stolen.txt 2>&1; "
        f"ls {agent_dir} >> stolen.txt 2>&1; true"
    ))
    config = AgentConfig(
        api_url=stack.base_url, api_key_file=key_file, cluster=name, name="idt",
        scheduler="slurm", scratch_root=world.scratch("agent"),
        state_dir=agent_dir / "state", job_user=JOB_USER,
    )
    os.environ.update(SECRETS)
    try:
        agent = Agent(config)
        stop = threading.Event()
        deadline = time.monotonic() + 120
        while world.states(calc)[calc] not in {s.value for s in FINAL_CALCULATION_STATES}:
            assert time.monotonic() < deadline, world.states(calc)
            agent.pull_and_submit()
            agent.harvest()
            time.sleep(0.3)
        stop.set()
    finally:
        for k in SECRETS:
            os.environ.pop(k, None)
    assert world.states(calc)[calc] == "completed"
    workdir = world.workdir(calc)
    assert (workdir / "who.txt").read_text().strip() == JOB_USER
    stolen = (workdir / "stolen.txt").read_text()
    assert key not in stolen
    assert "Permission denied" in stolen
    env = (workdir / "env.txt").read_text()
    assert SECRETS["HPCGATE_SECRET_KEY"] not in env
    assert _sacct_users(world.job_ids(calc)) == {JOB_USER}


def test_local_supervisor_never_follows_a_planted_symlink(world: World) -> None:
    """A job plants ``<next job>-L<n>.out -> /root-owned/file`` in its own directory; the
    root supervisor must not append the next job's output to that file."""
    from pathlib import PurePosixPath

    from scheduler_adapters.local.adapter import LocalAdapter
    from scheduler_adapters.runners.local import LocalRunner
    from scheduler_adapters.types import JobSpec

    scratch = world.scratch("symlink")
    runner = LocalRunner(scratch, job_user=JOB_USER)
    adapter = LocalAdapter(runner, run_as=JOB_USER)
    target = world.base / "root-owned-target"
    target.write_text("untouched\n")
    target.chmod(0o644)
    workdir = PurePosixPath(str(scratch)) / "hpcgate" / "calc" / "victim"
    runner.write_text(workdir / ".keep", "")
    counter = scratch / ".hpcgate-local" / "counter"
    next_id = int(counter.read_text()) + 1 if counter.exists() else 1
    name = "victim"
    planted = Path(str(workdir)) / f"{name}-L{next_id}.out"
    os.symlink(target, planted)
    entry = pwd.getpwnam(JOB_USER)
    os.lchown(planted, entry.pw_uid, entry.pw_gid)  # as if the job account planted it
    spec = JobSpec(name=name, template="generic.j2", workdir=workdir,
                   context={"command": ["echo", "pwned-by-output"]})
    job = adapter.submit(spec)
    assert job.value == f"L{next_id}"
    deadline = time.monotonic() + 60
    while not adapter.status([job])[job].state.is_final:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert target.read_text() == "untouched\n"
    assert target.stat().st_uid == 0


def test_a_mapped_users_job_is_cancelled_as_that_user(world: World) -> None:
    """Only the job's own account (or root) may scancel it: cancels go through its sudo."""
    stack = world.stack
    cluster = world.cluster("cancel", "slurm", "debug")
    with stack.api("admin") as api:
        r = api.put(f"/clusters/{cluster}/accounts/{stack.accounts['user'].id}",
                    json={"login_name": ALICE})
        assert r.status_code == 200, r.text
    calc = world.submit("user", cluster, "sleep 300")
    conns = ClusterConnections(settings=world.settings)
    try:
        deadline = time.monotonic() + 60
        while not world.job_ids(calc) or "None" in world.job_ids(calc):
            assert time.monotonic() < deadline
            dispatch_tick(stack.engine, stack.factory, conns, world.settings,
                          claimed_by="idt-worker")
            time.sleep(0.3)
    finally:
        conns.close()
    with stack.api("user") as api:
        r = api.post(f"/calculations/{calc}/cancel")
        assert r.status_code in (200, 202), r.text
    assert world.run(calc)[calc] == "cancelled"
    rows = _sacct_final(world.job_ids(calc))
    assert [r[2] for r in rows] == [ALICE]
    assert rows[0][3].startswith("CANCELLED"), rows


def test_ssh_mapped_user_logs_in_with_their_own_encrypted_key(world: World) -> None:
    """SSH mode: a mapped user's jobs run under their own login, with their own key, which
    the API stores encrypted and never returns; an unmapped user's job cannot read them."""
    from tests.helpers.ssh_env import load_ssh_env

    ssh = load_ssh_env()
    key_path = ACCOUNTS_STATE / f"{ALICE}_ed25519"
    if ssh is None or not key_path.exists():
        missing("sshd or the per-user SSH keys missing: run scripts/services/sshd.sh and "
                "scripts/services/job-accounts.sh")
    stack = world.stack
    scratch = world.scratch("ssh")
    shared = scratch / "hpcgate"  # the shared first level: every login creates its own dirs
    shared.mkdir(exist_ok=True)
    shared.chmod(0o1777)
    cluster = world.cluster(
        "ssh", "slurm", "debug", access_mode="ssh", host=ssh.host, port=ssh.port,
        login_user=ssh.user,
        options={"key_filename": ssh.key, "known_hosts": ssh.known_hosts},
    )
    private_key = key_path.read_text()
    user_id = stack.accounts["user"].id
    with stack.api("admin") as api:
        r = api.put(f"/clusters/{cluster}/accounts/{user_id}",
                    json={"login_name": ALICE, "ssh_private_key": "not a key"})
        assert r.status_code == 422
        assert "not a key" not in r.text
        # an SSH cluster's mapped user needs their own key
        r = api.put(f"/clusters/{cluster}/accounts/{user_id}", json={"login_name": ALICE})
        assert r.status_code == 422
        r = api.put(f"/clusters/{cluster}/accounts/{user_id}",
                    json={"login_name": ALICE, "ssh_private_key": private_key})
        assert r.status_code == 200, r.text
        assert r.json()["has_ssh_key"] is True
        listed = api.get(f"/clusters/{cluster}/accounts")
        body_text = r.text + listed.text
    secret_part = private_key.strip().splitlines()[1]
    assert secret_part not in body_text
    stored = stack.scalar(
        "SELECT ssh_key_encrypted FROM cluster_accounts WHERE cluster_id = :c AND user_id = :u",
        c=cluster, u=user_id,
    )
    assert stored is not None
    assert b"PRIVATE KEY" not in bytes(stored)
    assert secret_part.encode() not in bytes(stored)

    a = world.submit("user", cluster, "echo alice-over-ssh > result.txt; id -un > who.txt")
    assert world.run(a)[a] == "completed"
    a_dir = world.workdir(a)
    assert (a_dir / "who.txt").read_text().strip() == ALICE
    assert a_dir.stat().st_uid == pwd.getpwnam(ALICE).pw_uid
    assert a_dir.parent.stat().st_mode & 0o777 == 0o700  # the calculation's directory
    assert _sacct_users(world.job_ids(a)) == {ALICE}
    b = world.submit("other", cluster, (
        f"id -un > who.txt; {{ cat {a_dir}/result.txt; ls {a_dir.parent}; }} > probe.txt 2>&1; true"
    ))
    assert world.run(b)[b] == "completed"
    b_dir = world.workdir(b)
    assert (b_dir / "who.txt").read_text().strip() == ssh.user
    probe = (b_dir / "probe.txt").read_text()
    assert "alice-over-ssh" not in probe
    assert "Permission denied" in probe
    # Cleanup reaches the private directory through the owner's own login.
    from hpcgate.services.scratch_cleanup import cleanup_cluster

    with stack.api("admin") as api:
        r = api.patch(f"/clusters/{cluster}",
                      json={"cleanup_policy": {"keep_days": 0, "dry_run": False}})
        assert r.status_code == 200, r.text
    conns = ClusterConnections(settings=world.settings)
    try:
        cleanup_cluster(stack.factory, conns, cluster)
    finally:
        conns.close()
    assert not a_dir.exists()
    assert not b_dir.exists()


def test_agent_cancels_a_mapped_users_job_as_that_user(world: World) -> None:
    """Agent mode: a cancel for a job of a user mapped to their own login goes through
    ``sudo -n -u LOGIN scancel`` (the job account may not cancel it)."""
    from hpcgate.agent.config import AgentConfig
    from hpcgate.agent.loop import Agent

    stack = world.stack
    cluster = world.cluster("agent-cancel", "slurm", "debug", access_mode="agent")
    with stack.api("admin") as api:
        key = api.post(f"/clusters/{cluster}/api-keys", json={"name": "idt-c"}).json()["key"]
        name = api.get(f"/clusters/{cluster}").json()["name"]
        r = api.put(
            f"/clusters/{cluster}/accounts/{stack.accounts['user'].id}", json={"login_name": ALICE}
        )
        assert r.status_code == 200, r.text
    agent_dir = world.base / "agent-cancel"
    agent_dir.mkdir(mode=0o700)
    (agent_dir / "api-key").write_text(key)
    (agent_dir / "api-key").chmod(0o600)
    agent = Agent(
        AgentConfig(
            api_url=stack.base_url,
            api_key_file=agent_dir / "api-key",
            cluster=name,
            name="idt-c",
            scheduler="slurm",
            scratch_root=world.scratch("agent-cancel"),
            state_dir=agent_dir / "state",
            job_user=JOB_USER,
        )
    )
    calc = world.submit("user", cluster, "sleep 300")
    deadline = time.monotonic() + 60
    while not world.job_ids(calc) or "None" in world.job_ids(calc):
        assert time.monotonic() < deadline
        agent.pull_and_submit()
        time.sleep(0.3)
    with stack.api("user") as api:
        assert api.post(f"/calculations/{calc}/cancel").status_code in (200, 202)
    final = {s.value for s in FINAL_CALCULATION_STATES}
    deadline = time.monotonic() + 120
    while True:
        agent.pull_and_submit()
        agent.harvest()
        rows = _sacct_rows_now(world.job_ids(calc))
        if world.states(calc)[calc] in final and rows and rows[0][3].startswith("CANCELLED"):
            break
        assert time.monotonic() < deadline, (world.states(calc), rows)
        time.sleep(0.5)
    assert [r[2] for r in rows] == [ALICE]


def _sacct_rows_now(jobs: dict[str, str]) -> list[list[str]]:
    out = subprocess.run(
        [
            "sacct",
            "-n",
            "-X",
            "-P",
            "--duplicates",
            "-o",
            "JobIDRaw,JobName,User,State",
            "-S",
            "now-1days",
            "-j",
            ",".join(jobs),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return [r for r in rows if jobs.get(r[0]) == r[1]]


def test_harvest_never_follows_a_jobs_symlink_nor_blocks_on_its_fifo(world: World) -> None:
    """The worker (root) reads ``.hpcgate/*.json`` from directories the job's account
    controls: a symlink to a root-only JSON file must not leak it into the database, and a
    FIFO must not hang the harvest."""
    secret = world.base / "root-only.json"
    secret.write_text('{"stolen": "idt-root-only-json-content"}')
    secret.chmod(0o600)
    cluster = world.cluster("harvest", "local", "local")
    links = world.submit("user", cluster, (
        f"mkdir -p .hpcgate && ln -sf {secret} .hpcgate/validation.json && "
        f"ln -sf {secret} .hpcgate/extract.json"
    ))
    fifo = world.submit("user", cluster, "mkdir -p .hpcgate && mkfifo .hpcgate/extract.json")
    states = world.run(links, fifo, timeout=120)  # a blocking read would never return
    assert set(states.values()) <= {"completed", "failed"}
    dump = repr(world.stack.snapshot("steps", "array_tasks", "extracted_results"))
    assert "idt-root-only-json-content" not in dump
    assert secret.read_text() == '{"stolen": "idt-root-only-json-content"}'
