"""ONE contract suite for every adapter x runner pair (AiiDA test_all_plugins / PSI/J style).

Pairs (``contract`` fixture params):

* ``slurm-local``: SlurmAdapter + LocalRunner against the real slurmctld.
* ``local-local``: LocalAdapter + LocalRunner (no scheduler at all).
* ``slurm-ssh``:   SlurmAdapter + SshRunner through the loopback sshd (user hpctest);
  runs when ``scheduler_adapters.runners.ssh`` imports and scripts/services/sshd.sh
  has written /var/lib/hpcgate-test/sshd/env.
* ``pbs-local``:   PbsAdapter (``PbsAdapter.detect``) + LocalRunner; here the PBS
  commands are the slurm-wlm-torque wrappers. Runs when ``scheduler_adapters.pbs.adapter``
  imports and ``qsub`` exists.
* ``slurm-runas`` / ``local-runas``: the same adapters with ``run_as`` the job account
  (``hpcgate-job``, scripts/services/job-accounts.sh): Slurm commands go through
  ``sudo -n -u``, the local executor switches account per task, and the runner hands the
  job directories over. Needs root.

A pair whose component is missing is skipped with a reason naming it. An adapter may
declare ``capabilities`` (a set of names) and ``unsupported_reasons``; a test needing
a capability the adapter lacks is skipped with that reason (the Slurm wrappers for PBS
cannot show HELD, for example). Jobs run as the runner's user, so every work directory
is created through the runner, under its scratch root, before submission.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from scheduler_adapters.base import SchedulerAdapter
from scheduler_adapters.runners.base import Runner
from scheduler_adapters.runners.local import LocalRunner
from scheduler_adapters.types import (
    AccountingRecord,
    ArraySpec,
    JobId,
    JobSpec,
    JobState,
    JobStatus,
    Resources,
)
from tests.helpers.ci import missing

pytestmark = [pytest.mark.integration, pytest.mark.slurm, pytest.mark.timeout(120)]

NEVER_RAN = {JobState.CANCELLED, JobState.DEPENDENCY_NEVER_SATISFIED}
POLL_S = 0.2


@dataclass
class Contract:
    """One adapter x runner pair plus helpers that keep the tests short."""

    pair: str
    adapter: SchedulerAdapter
    runner: Runner
    root: PurePosixPath
    timeout: float = 45.0
    submitted: list[JobId] = field(default_factory=list)

    def require(self, *capabilities: str) -> None:
        have = getattr(self.adapter, "capabilities", None)
        if have is None:
            return
        reasons = getattr(self.adapter, "unsupported_reasons", {})
        for cap in capabilities:
            if cap not in have:
                pytest.skip(f"{self.pair}: no {cap!r}: {reasons.get(cap, 'unsupported')}")

    def spec(self, label: str, command: Sequence[str], **kw: Any) -> JobSpec:
        name = f"ct-{uuid.uuid4().hex[:8]}-{label}"
        workdir = self.root / name
        # created through the runner, so it belongs to the user the job runs as
        self.runner.write_text(workdir / ".keep", "")
        kw.setdefault("resources", Resources(walltime_s=300))
        return JobSpec(name=name, template="generic.j2", workdir=workdir,
                       context={"command": list(command)}, **kw)

    def submit(self, spec: JobSpec, **kw: Any) -> JobId:
        job_id = self.adapter.submit(spec, **kw)
        self.submitted.append(job_id)
        return job_id

    def wait_status(self, ids: Sequence[JobId], until: Callable[[JobStatus], bool],
                    *, count: int | None = None) -> dict[JobId, JobStatus]:
        """Poll ``status`` (one call per tick) until every reported task satisfies ``until``."""
        deadline = time.monotonic() + self.timeout
        seen: dict[JobId, JobStatus] = {}
        while time.monotonic() < deadline:
            seen = self.adapter.status(list(ids))
            enough = len(seen) >= (count if count is not None else len(ids))
            if enough and all(until(s) for s in seen.values()):
                return seen
            time.sleep(POLL_S)
        pytest.fail(f"{self.pair}: timeout waiting for {ids}; last status {seen}")

    def wait_final(self, ids: Sequence[JobId], *, count: int | None = None
                   ) -> dict[JobId, JobStatus]:
        return self.wait_status(ids, lambda s: s.state.is_final, count=count)

    def wait_accounting(self, ids: Sequence[JobId], *, count: int | None = None
                        ) -> dict[JobId, AccountingRecord]:
        """Accounting lags the live queue (sacct ~0.1-1 s): poll until all records are final."""
        deadline = time.monotonic() + self.timeout
        records: list[AccountingRecord] = []
        while time.monotonic() < deadline:
            records = self.adapter.accounting(list(ids))
            want = count if count is not None else len(ids)
            if len(records) >= want and all(r.state.is_final for r in records):
                return {r.job_id: r for r in records}
            time.sleep(POLL_S)
        pytest.fail(f"{self.pair}: accounting incomplete for {ids}: {records}")

    def read(self, path: PurePosixPath) -> str:
        return self.runner.read_text(path)

    def exists(self, path: PurePosixPath) -> bool:
        return self.runner.exists(path)


# ------------------------------------------------------------------ pairs
def _slurm_ready() -> str | None:
    if shutil.which("sinfo") is None:
        return "sinfo not found: start Slurm with scripts/services/slurm.sh"
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                          timeout=30, check=False)
    if proc.returncode != 0:
        return f"Slurm not answering (sinfo: {proc.stderr.strip()}): run scripts/services/slurm.sh"
    return None


def _local_root(tmp_path_factory: pytest.TempPathFactory, label: str) -> PurePosixPath:
    return PurePosixPath(str(tmp_path_factory.mktemp(label)))


def _make_slurm_local(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    reason = _slurm_ready()
    if reason:
        missing(reason)
    from scheduler_adapters.slurm.adapter import SlurmAdapter

    # pytest's tmp dir: the Slurm job runs as this same user (root here) and can write it
    root = _local_root(tmp_path_factory, "slurm-local")
    runner = LocalRunner(root)
    return Contract("slurm-local", SlurmAdapter(runner), runner, runner.scratch_root)


def _make_local_local(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    from scheduler_adapters.local.adapter import LocalAdapter

    root = _local_root(tmp_path_factory, "local-local")
    runner = LocalRunner(root)
    return Contract("local-local", LocalAdapter(runner), runner, runner.scratch_root)


def _make_slurm_ssh(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    reason = _slurm_ready()
    if reason:
        missing(reason)
    try:
        ssh_env = importlib.import_module("tests.helpers.ssh_env")
    except ImportError as exc:  # the SSH runner is being written alongside this suite
        missing(f"SshRunner not importable yet: {exc}")
    env = ssh_env.load_ssh_env()
    if env is None:
        missing(f"sshd test component not running: {ssh_env.ENV_FILE} missing "
                    "(start it with scripts/services/sshd.sh)")
    from scheduler_adapters.slurm.adapter import SlurmAdapter

    root = PurePosixPath(env.scratch) / f"contract-{uuid.uuid4().hex[:8]}"
    runner = ssh_env.make_ssh_runner(env, str(root))
    return Contract("slurm-ssh", SlurmAdapter(runner), runner, root)


def _make_pbs_local(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    try:
        pbs = importlib.import_module("scheduler_adapters.pbs.adapter")
    except ImportError as exc:  # the PBS adapter is being written alongside this suite
        missing(f"PbsAdapter not importable yet: {exc}")
    if shutil.which("qsub") is None:
        missing("qsub not found (slurm-wlm-torque from scripts/services/slurm.sh, or PBS)")
    root = _local_root(tmp_path_factory, "pbs-local")
    runner = LocalRunner(root)
    adapter = pbs.PbsAdapter.detect(runner)
    return Contract("pbs-local", adapter, runner, runner.scratch_root)


def _job_account_root(label: str) -> PurePosixPath:
    """A scratch root the job account can traverse (pytest's tmp dirs are 0700 to root)."""
    import os
    import pwd
    import tempfile

    if os.geteuid() != 0:
        missing(f"{label}: switching the job's account needs root")
    try:
        pwd.getpwnam(JOB_ACCOUNT)
    except KeyError:
        missing(f"job account {JOB_ACCOUNT!r} missing: run scripts/services/job-accounts.sh")
    root = tempfile.mkdtemp(prefix=f"hpcgate-{label}-")
    os.chmod(root, 0o711)
    return PurePosixPath(root)


JOB_ACCOUNT = "hpcgate-job"


def _make_slurm_runas(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    reason = _slurm_ready()
    if reason:
        missing(reason)
    from scheduler_adapters.slurm.adapter import SlurmAdapter

    runner = LocalRunner(_job_account_root("slurm-runas"), job_user=JOB_ACCOUNT)
    adapter = SlurmAdapter(runner, run_as=JOB_ACCOUNT)
    # like the service: <scratch>/hpcgate (shared, ours) / calculation / job (the account's)
    return Contract("slurm-runas", adapter, runner, runner.scratch_root / "hpcgate" / "calc")


def _make_local_runas(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    from scheduler_adapters.local.adapter import LocalAdapter

    runner = LocalRunner(_job_account_root("local-runas"), job_user=JOB_ACCOUNT)
    adapter = LocalAdapter(runner, run_as=JOB_ACCOUNT)
    return Contract("local-runas", adapter, runner, runner.scratch_root / "hpcgate" / "calc")


PAIRS: dict[str, Callable[[pytest.TempPathFactory], Contract]] = {
    "slurm-local": _make_slurm_local,
    "local-local": _make_local_local,
    "slurm-ssh": _make_slurm_ssh,
    "pbs-local": _make_pbs_local,
    "slurm-runas": _make_slurm_runas,
    "local-runas": _make_local_runas,
}


@pytest.fixture(params=list(PAIRS))
def contract(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    case = PAIRS[request.param](tmp_path_factory)
    try:
        yield case
    finally:
        if case.submitted:
            with contextlib.suppress(Exception):
                case.adapter.cancel(case.submitted)
        if case.pair == "slurm-ssh":
            with contextlib.suppress(Exception):
                case.runner.remove_tree(case.root)
            case.runner.close()
        if case.pair.endswith("-runas"):
            shutil.rmtree(str(case.runner.scratch_root), ignore_errors=True)


def ec_path(spec: JobSpec, job_id: JobId) -> PurePosixPath:
    return spec.workdir / ".hpcgate" / f"{job_id}.ec"


# ------------------------------------------------------------------ tests
def test_submit_status_accounting(contract: Contract) -> None:
    contract.require("submit", "status", "accounting", "final_state")
    spec = contract.spec("ok", ["bash", "-c", "echo contract-ok"])
    job_id = contract.submit(spec)
    final = contract.wait_final([job_id])
    assert [(j, s.state) for j, s in final.items()] == [(job_id, JobState.COMPLETED)]
    record = contract.wait_accounting([job_id])[job_id]
    assert (record.state, record.exit_code) == (JobState.COMPLETED, 0)
    assert contract.read(ec_path(spec, job_id)) == "0\n"


def test_failing_job_keeps_exit_code(contract: Contract) -> None:
    contract.require("submit", "accounting", "final_state")
    spec = contract.spec("fail", ["bash", "-c", "echo about to fail; exit 3"])
    job_id = contract.submit(spec)
    assert contract.wait_final([job_id])[job_id].state == JobState.FAILED
    record = contract.wait_accounting([job_id])[job_id]
    assert (record.state, record.exit_code) == (JobState.FAILED, 3)
    assert contract.read(ec_path(spec, job_id)) == "3\n"


def test_cancel_running_job(contract: Contract) -> None:
    contract.require("submit", "status", "cancel", "final_state")
    spec = contract.spec("cancel", ["sleep", "120"])
    job_id = contract.submit(spec)
    contract.wait_status([job_id], lambda s: s.state == JobState.RUNNING)
    contract.adapter.cancel([job_id])
    assert contract.wait_final([job_id])[job_id].state == JobState.CANCELLED
    contract.adapter.cancel([job_id])  # idempotent


def test_array_with_throttle(contract: Contract) -> None:
    contract.require("arrays", "array_throttle", "accounting", "final_state")
    n, k = 6, 2
    spec = contract.spec(
        "array",
        ["bash", "-c", "date +%s.%N > t$HPCGATE_TASK_INDEX.start; sleep 0.5; "
                       "date +%s.%N > t$HPCGATE_TASK_INDEX.end"],
        array=ArraySpec.of_size(n, max_concurrent=k),
    )
    job_id = contract.submit(spec)
    final = contract.wait_final([job_id], count=n)
    assert sorted(j.task for j in final if j.task is not None) == list(range(n))
    assert {s.state for s in final.values()} == {JobState.COMPLETED}
    records = contract.wait_accounting([job_id], count=n)
    assert sorted((j.task, r.exit_code) for j, r in records.items()) == [(i, 0) for i in range(n)]
    intervals = [
        (float(contract.read(spec.workdir / f"t{i}.start")),
         float(contract.read(spec.workdir / f"t{i}.end")))
        for i in range(n)
    ]
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= k
    assert peak >= 1


def test_afterok_chain_whose_parent_fails(contract: Contract) -> None:
    contract.require("dependencies", "hold", "release", "final_state")
    parent_spec = contract.spec("parent", ["bash", "-c", "exit 3"])
    child_spec = contract.spec("child", ["touch", "child-ran"])
    grandchild_spec = contract.spec("grandchild", ["touch", "grandchild-ran"])
    # Hold the head so it cannot end before its dependents reference it (notes 8.4).
    parent = contract.submit(parent_spec, hold=True)
    child = contract.submit(child_spec, after_ok=[parent])
    grandchild = contract.submit(grandchild_spec, after_ok=[child])
    contract.adapter.release(parent)
    final = contract.wait_final([parent, child, grandchild])
    assert final[parent].state == JobState.FAILED
    assert final[child].state in NEVER_RAN
    assert final[grandchild].state in NEVER_RAN
    assert contract.exists(child_spec.workdir / "child-ran") is False
    assert contract.exists(grandchild_spec.workdir / "grandchild-ran") is False


def test_afterok_chain_whose_parent_succeeds(contract: Contract) -> None:
    contract.require("dependencies", "final_state")
    parent_spec = contract.spec("parent-ok", ["bash", "-c", "sleep 1; echo 42 > ../result"])
    child_spec = contract.spec("child-ok", ["bash", "-c", "cat ../result > seen"])
    parent = contract.submit(parent_spec)
    child = contract.submit(child_spec, after_ok=[parent])
    final = contract.wait_final([parent, child])
    assert (final[parent].state, final[child].state) == (JobState.COMPLETED, JobState.COMPLETED)
    assert contract.read(child_spec.workdir / "seen") == "42\n"


def test_hold_and_release(contract: Contract) -> None:
    contract.require("hold", "release", "status", "final_state")
    spec = contract.spec("held", ["true"])
    job_id = contract.submit(spec, hold=True)
    contract.wait_status([job_id], lambda s: s.state == JobState.HELD)
    time.sleep(1.0)  # a held job must stay held
    assert contract.adapter.status([job_id])[job_id].state == JobState.HELD
    contract.adapter.release(job_id)
    assert contract.wait_final([job_id])[job_id].state == JobState.COMPLETED


def test_find_by_name(contract: Contract) -> None:
    contract.require("find_by_name")
    spec = contract.spec("named", ["true"])
    job_id = contract.submit(spec)
    assert contract.adapter.find_by_name(spec.name) == [job_id]
    assert contract.adapter.find_by_name(f"ct-absent-{uuid.uuid4().hex[:8]}") == []


def test_node_metrics(contract: Contract) -> None:
    contract.require("node_metrics")
    nodes = contract.adapter.node_metrics()
    assert len(nodes) >= 1
    assert len({n.name for n in nodes}) == len(nodes)
    for node in nodes:
        assert node.cpus_total >= 1
        assert 0 <= node.cpus_allocated <= node.cpus_total
        assert node.memory_total_mb > 0


def test_queue_summary(contract: Contract) -> None:
    """Every user's queue per partition: a job of ours running (or waiting) is counted in
    its partition; partitions are unique and counts never negative."""
    spec = contract.spec("queued", ["sleep", "30"])
    job_id = contract.submit(spec)
    contract.wait_status([job_id], lambda s: s.state in (JobState.PENDING, JobState.RUNNING))
    loads = contract.adapter.queue_summary()
    assert len({x.partition for x in loads}) == len(loads)
    assert all(x.pending >= 0 and x.running >= 0 for x in loads)
    assert sum(x.pending + x.running for x in loads) >= 1
    contract.adapter.cancel([job_id])


def test_live_usage_of_a_running_job(contract: Contract) -> None:
    """One ``live_usage`` call samples a running job: CPU time grows past 0 while the
    scheduler still says RUNNING (sstat / qstat resources_used / /proc)."""
    contract.require("live_usage")
    spec = contract.spec("busy", ["timeout", "60", "sha256sum", "/dev/zero"])
    job_id = contract.submit(spec)
    contract.wait_status([job_id], lambda s: s.state == JobState.RUNNING)
    deadline = time.monotonic() + contract.timeout
    usage = None
    while time.monotonic() < deadline:
        usage = contract.adapter.live_usage([job_id, JobId("999999991")]).get(job_id)
        if usage is not None and (usage.cpu_time_s or 0) > 0:
            break
        time.sleep(1)
    else:
        pytest.fail(f"{contract.pair}: no CPU time sampled for {job_id}: {usage}")
    assert contract.adapter.status([job_id])[job_id].state == JobState.RUNNING
    assert usage.max_rss_kb is None or usage.max_rss_kb >= 0
    assert contract.adapter.live_usage([]) == {}
    contract.adapter.cancel([job_id])


def test_metacharacters_never_execute(contract: Contract) -> None:
    contract.require("submit", "final_state")
    marker = f"/tmp/hpcgate-pwned-{uuid.uuid4().hex[:8]}"
    evil = {
        "EVIL_SUBST": f"$(touch {marker}-env1)",
        "EVIL_QUOTE": f"'; touch {marker}-env2; '",
        "EVIL_TICK": f"`touch {marker}-env3`",
        "EVIL_DQ": f'"; touch {marker}-env4; "',
    }
    args = [f"$(touch {marker}-arg1)", f"'; touch {marker}-arg2; '", f"`touch {marker}-arg3`",
            "a b", "*", "&&", "|"]
    spec = contract.spec(
        "meta",
        ["python3", "-c",
         "import json, os, sys; json.dump([{k: v for k, v in os.environ.items() "
         "if k.startswith('EVIL_')}, sys.argv[1:]], open('seen.json', 'w'))",
         *args],
        environment=evil,
    )
    job_id = contract.submit(spec)
    assert contract.wait_final([job_id])[job_id].state == JobState.COMPLETED
    assert json.loads(contract.read(spec.workdir / "seen.json")) == [evil, args]
    leftovers = sorted(str(p) for p in Path("/tmp").glob(Path(marker).name + "*"))
    assert leftovers == []
    for bad_name in ("x; touch /tmp/p", "a b", "$(id)", "n'q"):
        with pytest.raises(ValueError):
            JobSpec(name=bad_name, template="generic.j2", workdir=spec.workdir)


SECRETS = {
    "HPCGATE_SECRET_KEY": "contract-secret-key-never-in-a-job",
    "HPCGATE_DATABASE_URL": "postgresql://svc:contract-db-password@127.0.0.1/x",
    "HPCGATE_SMTP__PASSWORD": "contract-smtp-password",
    "SERVICE_ONLY_VARIABLE": "contract-service-variable",
}


@pytest.fixture
def service_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The submitting process holds secrets (set before the pair's runner is built)."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return SECRETS


def test_job_environment_is_allow_listed(service_secrets: dict[str, str],
                                         contract: Contract) -> None:
    """Issue 15: a job sees PATH and the scheduler's variables, never the service's."""
    contract.require("submit", "final_state")
    spec = contract.spec("env", ["bash", "-c", "env > job-env.txt; id -un > job-user.txt"])
    job_id = contract.submit(spec)
    assert contract.wait_final([job_id])[job_id].state == JobState.COMPLETED
    seen = contract.read(spec.workdir / "job-env.txt")
    names = {line.split("=", 1)[0] for line in seen.splitlines() if "=" in line}
    assert "PATH" in names
    for name, value in service_secrets.items():
        assert name not in names, f"{contract.pair}: job saw {name}"
        assert value not in seen, f"{contract.pair}: job saw the value of {name}"
    if contract.pair.endswith("-runas"):
        assert contract.read(spec.workdir / "job-user.txt").strip() == JOB_ACCOUNT
    if contract.pair in ("slurm-local", "slurm-runas"):
        # sbatch --export=ALL hands on sbatch's own environment, which is the allow-list:
        # nothing else reaches the job, not even the account's login profile.
        assert not _beyond_allow_list(names), f"{contract.pair}: {_beyond_allow_list(names)}"


# What a Slurm batch job may see besides the allow-list: slurmd's own variables, bash's,
# the job script's own, and sudo's (a job submitted through ``sudo -u``: they name the
# submitter and hold no secret).
_SCHEDULER_NAMES = {"ENVIRONMENT", "HOSTNAME", "PWD", "OLDPWD", "SHLVL", "_", "MAIL",
                    "OMPI_MCA_orte_tmpdir_base"}  # the last one set by the job script
_SCHEDULER_PREFIXES = ("SLURM_", "SLURMD_", "SUDO_", "HPCGATE_")


def _beyond_allow_list(names: set[str]) -> set[str]:
    from scheduler_adapters.environment import passable_names

    allowed = set(passable_names()) | _SCHEDULER_NAMES
    return {n for n in names if n not in allowed and not n.startswith(_SCHEDULER_PREFIXES)}
