"""The ``hpcgate_agent`` Ansible role, deployed for real.

``ansible/site.yml`` runs against the loopback "login node" (sshd on 127.0.0.2:2222 as
``hpctest`` with sudo, scripts/services/sshd.sh), installs hpcgate from a wheel built
from this repository into the role's own virtualenv, with the cluster's API key from an
Ansible Vault file, and starts the agent under the supervised fallback (no systemd here).
The agent then talks to a real API (uvicorn on loopback over a scratch database): its
heartbeat arrives, it pulls a calculation and runs it on the real Slurm, with the queue
mapping of the inventory. A second run changes nothing, ``--check`` works on a fresh and on
a configured host, ``hpcgate_agent_state=stopped`` stops the agent and ``absent`` removes
everything the role created.

Everything the role creates is unique to the test (user, service name, paths under
/var/tmp, cron file), so it can run next to other tests on the same machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import yaml
from sqlalchemy import func, select

from hpcgate.api.app import create_app
from hpcgate.db.models import Cluster
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.models.telemetry import HeartbeatSample
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.domain.states import CalculationState
from hpcgate.services.api_keys import create_api_key
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server
from tests.helpers.ssh_env import SshTestEnv, require_ssh_env

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO / "ansible"
VENV_BIN = REPO / ".venv" / "bin"
HOST = "login-ansible-test"
T = TypeVar("T")
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


def _tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        missing(f"{name} is not installed in .venv (run scripts/services/ansible.sh)")
    return str(path)


def _ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        "PY_COLORS": "0",
    }


@dataclass
class Run:
    rc: int
    output: str
    seconds: float

    def recap(self) -> dict[str, int]:
        found = {m["host"]: m for m in RECAP.finditer(self.output)}
        assert HOST in found, f"no PLAY RECAP for {HOST} (rc={self.rc}):\n{self.output[-4000:]}"
        m = found[HOST]
        return {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}

    def assert_ok(self) -> dict[str, int]:
        recap = self.recap()
        ok = self.rc == 0 and recap["failed"] == 0 and recap["unreachable"] == 0
        assert ok, f"playbook failed (rc={self.rc}, {recap}):\n{self.output[-6000:]}"
        return recap


@dataclass
class Deployment:
    """What the role deploys for this test, and how to reach it."""

    root: Path
    inventory: Path
    vault_password: Path
    user: str
    service: str
    api_key: str

    @property
    def ctl(self) -> Path:
        return self.root / "sbin" / f"{self.service}ctl"

    @property
    def cron_file(self) -> Path:
        return Path("/etc/cron.d") / self.service

    @property
    def run_dir(self) -> Path:
        return Path("/run") / self.service

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    def playbook(self, *args: str, timeout: float = 900) -> Run:
        cmd = [
            _tool("ansible-playbook"),
            "-i",
            str(self.inventory),
            "--vault-password-file",
            str(self.vault_password),
            "site.yml",
            *args,
        ]
        started = time.monotonic()
        proc = subprocess.run(
            cmd,
            cwd=ANSIBLE_DIR,
            env=_ansible_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started)

    def status(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.ctl), "status"], capture_output=True, text=True)

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process running as the service user."""
        try:
            uid = pwd.getpwnam(self.user).pw_uid
        except KeyError:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                found.append((int(entry), cmdline.decode(errors="replace").strip()))
        return found

    def log_tail(self, lines: int = 40) -> str:
        log = self.root / "log" / "agent.log"
        if not log.exists():
            return "(no agent.log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def force_cleanup(self) -> None:
        """Whatever the playbook's uninstall left behind (after a failure)."""
        if self.ctl.exists():
            subprocess.run([str(self.ctl), "stop"], capture_output=True, timeout=60)
        with contextlib.suppress(KeyError):
            pwd.getpwnam(self.user)
            subprocess.run(["scancel", "-u", self.user], capture_output=True, timeout=30)
            for pid, _ in self.processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
            subprocess.run(["userdel", self.user], capture_output=True, timeout=30)
        subprocess.run(["groupdel", self.user], capture_output=True, timeout=30)
        self.cron_file.unlink(missing_ok=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------- static checks


@pytest.mark.integration
def test_playbook_syntax_and_lint_production_profile() -> None:
    """``--syntax-check`` and ``ansible-lint`` (profile production, ansible/.ansible-lint)."""
    env = _ansible_env()
    syntax = subprocess.run(
        [_tool("ansible-playbook"), "--syntax-check", "site.yml"],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    lint = subprocess.run(
        [_tool("ansible-lint"), "--offline", "--profile", "production"],
        cwd=ANSIBLE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = lint.stdout + lint.stderr
    assert lint.returncode == 0, out
    assert "0 failure(s), 0 warning(s)" in out, out


@pytest.mark.integration
def test_example_inventory_maps_queues_per_cluster() -> None:
    """The example inventory: two clusters, one agent each, with different queue mappings."""
    proc = subprocess.run(
        [_tool("ansible-inventory"), "-i", "inventory/example", "--list"],
        cwd=ANSIBLE_DIR,
        env=_ansible_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    assert set(inv["hpcgate_agents"]["children"]) == {"cluster_alpha", "cluster_beta"}
    hostvars = inv["_meta"]["hostvars"]
    alpha = hostvars[inv["cluster_alpha"]["hosts"][0]]
    beta = hostvars[inv["cluster_beta"]["hosts"][0]]
    assert alpha["hpcgate_agent_cluster"] != beta["hpcgate_agent_cluster"]
    assert alpha["hpcgate_agent_queues"] != beta["hpcgate_agent_queues"]
    assert set(alpha["hpcgate_agent_queues"]) == set(beta["hpcgate_agent_queues"])
    for vars_ in (alpha, beta):
        # the key comes from the (vaulted) vault_ variable, never in plain group_vars
        assert vars_["hpcgate_agent_api_key"] == "{{ vault_hpcgate_agent_api_key }}"
        assert vars_["hpcgate_agent_api_url"].startswith("https://")


@pytest.mark.integration
def test_systemd_unit_renders(tmp_path: Path) -> None:
    """The systemd branch cannot run here (no systemd); its unit is rendered and checked."""
    play = tmp_path / "render.yml"
    out = tmp_path / "hpcgate-agent.service"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Render the unit",
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "vars_files": [
                        str(ANSIBLE_DIR / "roles/hpcgate_agent/defaults/main.yml"),
                        str(ANSIBLE_DIR / "roles/hpcgate_agent/vars/main.yml"),
                    ],
                    "vars": {"hpcgate_agent_cluster": "alpha"},
                    "tasks": [
                        {
                            "name": "Template",
                            "ansible.builtin.template": {
                                "src": str(
                                    ANSIBLE_DIR
                                    / "roles/hpcgate_agent/templates/hpcgate-agent.service.j2"
                                ),
                                "dest": str(out),
                                "mode": "0644",
                            },
                        }
                    ],
                }
            ]
        )
    )
    proc = subprocess.run(
        [
            _tool("ansible-playbook"),
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={VENV_BIN / 'python'}",
            str(play),
        ],
        cwd=tmp_path,
        env=_ansible_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    unit = out.read_text()
    assert "User=hpcgate-agent\n" in unit
    assert (
        "ExecStart=/opt/hpcgate-agent/venv/bin/hpcgate agent --config /etc/hpcgate-agent/agent.yaml"
        in unit
    )
    assert "EnvironmentFile=/etc/hpcgate-agent/environment\n" in unit
    assert "Restart=always" in unit
    assert "WantedBy=multi-user.target" in unit
    analyze = shutil.which("systemd-analyze")
    if analyze:
        check = subprocess.run([analyze, "verify", str(out)], capture_output=True, text=True)
        assert "Unknown" not in check.stderr, check.stderr


# ---------------------------------------------------------------- the real deployment


@pytest.fixture
def env(tmp_path: Path, postgres_available: str) -> Iterator[EngineEnv]:
    if shutil.which("sbatch") is None or shutil.which("sacct") is None:
        missing("Slurm is not installed (scripts/services/slurm.sh)")
    with engine_env(tmp_path, "hpcgate_ansible") as e:
        yield e


def _wheel(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    proc = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(dist),
            str(REPO / "packaging" / "agent"),  # the slim cluster side
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    wheels = sorted(dist.glob("hpcgate_agent-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _write_inventory(
    tmp_path: Path,
    ssh: SshTestEnv,
    root: Path,
    base_url: str,
    cluster: str,
    user: str,
    service: str,
    api_key: str,
    wheel: Path,
) -> tuple[Path, Path]:
    inventory = tmp_path / "inventory"
    group_vars = inventory / "group_vars" / "hpcgate_agents"
    group_vars.mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "hpcgate_agents": {
                    "hosts": {
                        HOST: {
                            "ansible_host": ssh.host2,
                            "ansible_port": ssh.port,
                            "ansible_user": ssh.user,
                            "ansible_ssh_private_key_file": ssh.key,
                            "ansible_ssh_common_args": (
                                f"-o UserKnownHostsFile={ssh.known_hosts} "
                                "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
                            ),
                        }
                    }
                }
            }
        )
    )
    (group_vars / "vars.yml").write_text(
        yaml.safe_dump(
            {
                "hpcgate_agent_api_url": base_url,
                "hpcgate_agent_api_key": "{{ vault_hpcgate_agent_api_key }}",
                "hpcgate_agent_cluster": cluster,
                "hpcgate_agent_package": str(wheel),
                "hpcgate_agent_user": user,
                "hpcgate_agent_service_name": service,
                "hpcgate_agent_home": str(root / "home"),
                "hpcgate_agent_install_dir": str(root / "opt"),
                "hpcgate_agent_config_dir": str(root / "etc"),
                "hpcgate_agent_log_dir": str(root / "log"),
                "hpcgate_agent_sbin_dir": str(root / "sbin"),
                "hpcgate_agent_scratch_root": str(root / "scratch"),
                # The central DB maps "default" to the debug partition; this agent maps it to
                # "long" (with a QoS): the job must land where the inventory says.
                "hpcgate_agent_queues": {"default": {"partition": "long", "qos": "normal"}},
                "hpcgate_agent_intervals": {
                    "pull_s": 1,
                    "harvest_s": 1,
                    "heartbeat_s": 2,
                    "cleanup_s": 300,
                },
                "hpcgate_agent_restart_delay_s": 2,
            }
        )
    )
    # The key lives only in a vault-encrypted file.
    vault = group_vars / "vault.yml"
    vault.write_text(yaml.safe_dump({"vault_hpcgate_agent_api_key": api_key}))
    password = tmp_path / "vault-password"
    password.write_text(uuid.uuid4().hex + "\n")
    password.chmod(0o600)
    enc = subprocess.run(
        [_tool("ansible-vault"), "encrypt", "--vault-password-file", str(password), str(vault)],
        env=_ansible_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert enc.returncode == 0, enc.stderr
    text = vault.read_text()
    assert text.startswith("$ANSIBLE_VAULT;")
    assert api_key not in text
    return inventory, password


def _wait(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str,
    dep: Deployment,
    every: float = 0.5,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout}s; agent log:\n{dep.log_tail()}")
        time.sleep(every)


@pytest.mark.integration
@pytest.mark.ssh
@pytest.mark.slurm
@pytest.mark.timeout(1800)
def test_playbook_deploys_agent_that_runs_a_calculation(env: EngineEnv, tmp_path: Path) -> None:
    ssh = require_ssh_env()
    _tool("ansible-playbook")
    suffix = uuid.uuid4().hex[:8]
    user = service = f"hpcga-{suffix}"
    root = Path(f"/var/tmp/hpcgate-ansible-{suffix}")  # traversable by the service user
    root.mkdir(mode=0o755)
    root.chmod(0o755)

    cluster_name = f"ansible-{suffix}"
    cid = env.add_cluster(
        cluster_name,
        scheduler="slurm",
        access_mode=AccessMode.AGENT,
        scratch_root=str(root / "scratch"),
        queues={"default": "debug"},
    )
    with session_scope(env.factory) as s:
        _, api_key = create_api_key(
            s, owner_kind=ApiKeyOwner.CLUSTER, name="ansible-test", cluster_id=cid
        )
    timings: dict[str, float] = {}
    app = create_app(env.settings, engine=env.engine)
    with live_server(app) as base_url:
        inventory, password = _write_inventory(
            tmp_path,
            ssh,
            root,
            base_url,
            cluster_name,
            user,
            service,
            api_key,
            _wheel(tmp_path),
        )
        dep = Deployment(root, inventory, password, user, service, api_key)
        absent: Run | None = None
        leftovers: list[str] = []
        user_left = False
        try:
            _deploy_and_run(env, dep, cid, timings)
        finally:
            # Uninstall through the role (state absent), then make sure nothing is left.
            try:
                subprocess.run(["scancel", "-u", user], capture_output=True, timeout=30)
                absent = dep.playbook(
                    "-e", "hpcgate_agent_state=absent", "-e", "hpcgate_agent_remove_scratch=true"
                )
                timings["absent"] = absent.seconds
                leftovers = [
                    str(p)
                    for p in (
                        dep.ctl,
                        dep.cron_file,
                        dep.run_dir,
                        root / "opt",
                        root / "etc",
                        root / "home",
                        root / "log",
                        root / "scratch",
                    )
                    if p.exists()
                ]
                user_left = _user_exists(user)
            finally:
                dep.force_cleanup()
    print("playbook timings (s):", {k: round(v, 1) for k, v in timings.items()})
    assert absent is not None
    absent.assert_ok()
    assert not leftovers, f"state=absent left {leftovers}"
    assert not user_left, "state=absent left the service user"


# The job account the role creates by default (scripts/services/job-accounts.sh creates it
# too; the role keeps it on uninstall, so other tests' jobs are never orphaned).
JOB_ACCOUNT = "hpcgate-job"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _deploy_and_run(env: EngineEnv, dep: Deployment, cid: int, timings: dict[str, float]) -> None:
    # 1. --check on a fresh host: no failure, and nothing is created.
    check_fresh = dep.playbook("--check")
    timings["check_fresh"] = check_fresh.seconds
    recap = check_fresh.assert_ok()
    assert recap["changed"] > 0
    assert not _user_exists(dep.user)
    assert not dep.ctl.exists()
    assert not (dep.root / "opt").exists()

    # 2. The real run (verbose with diffs: the key must not appear anywhere).
    first = dep.playbook("--diff", "-v")
    timings["first_run"] = first.seconds
    recap = first.assert_ok()
    assert recap["changed"] > 0
    assert dep.api_key not in first.output, "the API key leaked into Ansible's output"
    assert dep.api_key not in check_fresh.output

    # The service account, the key file, the configuration.
    account = pwd.getpwnam(dep.user)
    assert account.pw_shell.endswith("nologin")
    assert account.pw_uid < 1000, "not a system account"
    key_file = dep.root / "etc" / "api-key"
    st = key_file.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == account.pw_uid
    assert key_file.read_text().strip() == dep.api_key
    config = yaml.safe_load((dep.root / "etc" / "agent.yaml").read_text())
    assert "api_key" not in config
    assert config["api_key_file"] == str(key_file)
    assert config["queues"] == {"default": {"partition": "long", "qos": "normal"}}
    assert config["scratch_root"] == str(dep.scratch)
    assert dep.scratch.stat().st_uid == account.pw_uid
    assert dep.cron_file.read_text().count("@reboot root ") == 1

    # The agent runs, detached, as the service user.
    status = dep.status()
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("running"), status.stdout
    procs = dep.processes()
    assert any(" agent --config " in cmd for _, cmd in procs), (procs, dep.log_tail())
    supervisor = int((dep.run_dir / "agent.pid").read_text())
    assert supervisor in {pid for pid, _ in procs}

    # 3. Its heartbeat reaches the real API.
    def heartbeat() -> bool:
        with session_scope(env.factory) as s:
            cluster = s.get(Cluster, cid)
            samples = s.scalar(
                select(func.count())
                .select_from(HeartbeatSample)
                .where(HeartbeatSample.cluster_id == cid)
            )
            return bool(cluster and cluster.last_heartbeat_at and cluster.online and samples)

    _wait(heartbeat, 120, "no heartbeat from the agent", dep)

    # The sudo rule: exactly the scheduler's job commands, as the job account (issue 15).
    sudoers = Path("/etc/sudoers.d") / dep.service
    rule = sudoers.read_text()
    assert stat.S_IMODE(sudoers.stat().st_mode) == 0o440
    assert f"{dep.user} ALL=({JOB_ACCOUNT}) NOPASSWD: " in rule
    assert rule.rstrip().endswith(
        "/usr/bin/sbatch, /usr/bin/scancel, /usr/bin/squeue, /usr/bin/sacct, /usr/bin/scontrol"
    )
    assert subprocess.run(["visudo", "-cf", str(sudoers)], capture_output=True).returncode == 0
    job_account = pwd.getpwnam(JOB_ACCOUNT)

    # 4. It pulls a calculation and runs it on the real Slurm, on the inventory's partition,
    # as the job account: the job cannot read the agent's key.
    calc_id = env.create(
        name="hello from ansible",
        cluster_id=cid,
        logical_queue="default",
        code="generic",
        configuration={
            "kind": "single",
            "command": [
                "bash", "-c",
                f"echo hello > out.txt; id -un > who.txt; cat {key_file} > stolen.txt 2>&1; true",
            ],
            "resources": {"walltime_s": 120},
        },
    )
    calc = env.run_until_settled(calc_id, lambda: None, timeout=300, every=1)
    steps = env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, (
        calc.state,
        calc.state_reason,
        [(s.state, s.state_reason) for s in steps],
        dep.log_tail(),
    )
    (step,) = steps
    out = Path(step.workdir or "") / "out.txt"
    assert out.read_text() == "hello\n"
    assert out.stat().st_uid == job_account.pw_uid
    assert (out.parent / "who.txt").read_text().strip() == JOB_ACCOUNT
    stolen = (out.parent / "stolen.txt").read_text()
    assert dep.api_key not in stolen
    assert "Permission denied" in stolen

    def accounted() -> list[str] | None:
        # slurmdbd records a job in steps: wait for the finished record
        text = subprocess.run(
            [
                "sacct",
                "-X",
                "-n",
                "-P",
                "-j",
                str(step.scheduler_job_id),
                "-o",
                "State,Partition,UID,QOS",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
        fields = text.splitlines()[0].split("|") if text else []
        return fields if fields and fields[0] == "COMPLETED" and fields[1] else None

    acct = _wait(accounted, 60, f"job {step.scheduler_job_id} not accounted as COMPLETED", dep)
    assert acct[1:] == ["long", str(job_account.pw_uid), "normal"], acct

    # 5. A second run changes nothing and does not restart the agent.
    second = dep.playbook()
    timings["second_run"] = second.seconds
    assert second.assert_ok()["changed"] == 0, second.output[-6000:]
    assert int((dep.run_dir / "agent.pid").read_text()) == supervisor

    # 6. --check on the configured host: no failure, no change.
    check_done = dep.playbook("--check", "--diff")
    timings["check_configured"] = check_done.seconds
    assert check_done.assert_ok()["changed"] == 0, check_done.output[-6000:]
    assert dep.api_key not in check_done.output

    # 7. state=stopped: the agent and its supervisor are gone, no start at boot.
    stopped = dep.playbook("-e", "hpcgate_agent_state=stopped")
    timings["stop"] = stopped.seconds
    assert stopped.assert_ok()["changed"] > 0
    assert dep.status().returncode == 3
    _wait(lambda: not dep.processes(), 30, "agent processes still running", dep, every=0.2)
    assert not dep.cron_file.exists()
