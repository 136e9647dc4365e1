"""Issue 18: core-hour accounting on the real Slurm and PostgreSQL, through the live API.

A job burns two CPUs for a few seconds; the step's usage is stored by the harvest that saw it
end (worker mode and agent mode). The numbers the API answers are compared with what
``sacct`` itself prints for that job, read here independently. Then quotas (hard refusal,
soft warning and notification), who sees whose usage, and the approval context.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hpcgate.agent.client import AgentClient
from hpcgate.agent.config import AgentConfig
from hpcgate.agent.loop import Agent
from hpcgate.api.app import create_app
from hpcgate.db.models import NotificationOutbox, User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner, NotifyLevel, Role
from hpcgate.domain.states import CalculationState
from hpcgate.services.api_keys import create_api_key
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from hpcgate.services.users import create_user
from tests.helpers.api import access_token
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

# Two processes spinning for 3 s each on a 2-CPU allocation.
BURN = (
    "import multiprocessing, time\n"
    "def spin():\n"
    "    end = time.time() + 3\n"
    "    while time.time() < end:\n"
    "        pass\n"
    "ps = [multiprocessing.Process(target=spin) for _ in range(2)]\n"
    "[p.start() for p in ps]\n"
    "[p.join() for p in ps]\n"
)
RESOURCES = {"tasks": 1, "cpus_per_task": 2, "walltime_s": 120}


@dataclass
class Stack:
    env: EngineEnv
    base: str
    tokens: dict[str, str]
    ids: dict[str, int]

    def api(self, who: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=60
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("sbatch") is None or shutil.which("sacct") is None:
        missing("Slurm is not installed (scripts/services/slurm.sh)")
    with engine_env(tmp_path_factory.mktemp("usage"), "hpcgate_usage") as env:
        tokens, ids = {}, {}
        with session_scope(env.factory) as s:
            owner = s.get(User, env.user_id)
            assert owner is not None
            people = {"owner": owner}
            for who, role in (("other", Role.USER), ("moderator", Role.MODERATOR),
                              ("admin", Role.ADMIN)):  # fmt: skip
                people[who] = create_user(
                    s, email=f"{who}@example.org", password="a-good-password", role=role,
                    notify_level=NotifyLevel.INFO,
                )  # fmt: skip
            for who, user in people.items():
                tokens[who], ids[who] = access_token(user, env.settings), user.id
        app = create_app(env.settings, engine=env.engine)
        with live_server(app) as base:
            yield Stack(env, base, tokens, ids)


@dataclass
class Mode:
    name: str
    cluster_id: int
    cluster_name: str
    tick: Callable[[], None]


@pytest.fixture(scope="module", params=["worker", "agent"])
def mode(
    request: pytest.FixtureRequest, stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mode]:
    tag = f"{request.param}-{uuid.uuid4().hex[:6]}"
    scratch = tmp_path_factory.mktemp(f"scratch-{tag}")
    env = stack.env
    if request.param == "worker":
        cid = env.add_cluster(tag, scheduler="slurm", access_mode=AccessMode.LOCAL,
                              scratch_root=str(scratch))  # fmt: skip
        conns = ClusterConnections()

        def tick() -> None:
            dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="usage")
            harvest_tick(env.engine, env.factory, conns, env.settings)

        yield Mode("worker", cid, tag, tick)
        conns.close()
        return
    cid = env.add_cluster(tag, scheduler="slurm", access_mode=AccessMode.AGENT,
                          scratch_root=str(scratch))  # fmt: skip
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="a", cluster_id=cid)
    state = tmp_path_factory.mktemp(f"state-{tag}")
    config = AgentConfig(api_url=stack.base, api_key=key, cluster=tag, scheduler="slurm",
                         scratch_root=Path(scratch), state_dir=state, name="usage")  # fmt: skip
    agent = Agent(config, AgentClient(stack.base, key, state_dir=state))

    def agent_tick() -> None:
        agent.pull_and_submit()
        agent.harvest()

    yield Mode("agent", cid, tag, agent_tick)


def _create(stack: Stack, who: str, cluster_id: int, name: str = "burn") -> httpx.Response:
    body = {
        "name": name,
        "cluster_id": cluster_id,
        "logical_queue": "default",
        "code": "generic",
        "configuration": {"kind": "single", "command": ["python3", "-c", BURN],
                          "resources": RESOURCES},
    }  # fmt: skip
    with stack.api(who) as api:
        return api.post("/calculations", json=body)


def _sacct(job_id: str) -> dict[str, str]:
    """What sacct itself says about the job's allocation (MaxRSS: the max over its steps)."""
    fields = ["JobID", "CPUTimeRAW", "TotalCPU", "MaxRSS", "ReqMem", "AllocCPUS", "ElapsedRaw",
              "State"]  # fmt: skip
    out = subprocess.run(
        ["sacct", "-j", job_id, "-n", "-P", "--noconvert", "-o", ",".join(fields)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines() if line]
    alloc = next(r for r in rows if r["JobID"] == job_id)
    rss = [int(r["MaxRSS"].rstrip("K")) for r in rows if r["MaxRSS"].rstrip("K").isdigit()]
    return {**alloc, "MaxRSS": str(max(rss)) if rss else ""}


def _seconds(total_cpu: str) -> float:
    """sacct TotalCPU ``[DD-][HH:]MM:SS.mmm`` -> seconds (independent of the service's parser)."""
    days, _, rest = total_cpu.rpartition("-")
    parts = [float(p) for p in rest.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    return (int(days) if days else 0) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]


def _run(stack: Stack, mode: Mode, who: str = "owner") -> tuple[int, str]:
    r = _create(stack, who, mode.cluster_id)
    assert r.status_code == 201, r.text
    calc_id = r.json()["id"]
    calc = stack.env.run_until_settled(calc_id, mode.tick, timeout=180)
    assert calc.state is CalculationState.COMPLETED, calc.state_reason
    [step] = stack.env.steps(calc_id)
    assert step.scheduler_job_id
    return calc_id, step.scheduler_job_id


def test_usage_equals_what_sacct_reports(stack: Stack, mode: Mode) -> None:
    calc_id, job_id = _run(stack, mode)
    acct = _sacct(job_id)
    with stack.api("owner") as api:
        mine = api.get(f"/calculations/{calc_id}/usage")
        report = api.get("/usage", params={"group_by": "calculation"})
    assert mine.status_code == 200, mine.text
    [step] = mine.json()["steps"]
    assert step["core_seconds"] == float(acct["CPUTimeRAW"])
    assert step["alloc_cpus"] == int(acct["AllocCPUS"]) == 2
    assert step["elapsed_s"] == int(acct["ElapsedRaw"])
    assert step["core_seconds"] == step["elapsed_s"] * step["alloc_cpus"]
    assert step["cpu_seconds"] == pytest.approx(_seconds(acct["TotalCPU"]), abs=0.001)
    if re.fullmatch(r"[0-9]+[KMG][nc]?", acct["ReqMem"]):
        assert step["req_mem_kb"] == int(acct["ReqMem"].rstrip("KMG").rstrip("nc")) * {
            "K": 1, "M": 1024, "G": 1024**2}[acct["ReqMem"].rstrip("nc")[-1]]  # fmt: skip
    else:  # sacct 22.05 sometimes prints NO_VAL64 (18446744073709551616.00) or "16?" here
        assert step["req_mem_kb"] is None or step["req_mem_kb"] > 0
    assert step["max_rss_kb"] == (int(acct["MaxRSS"]) // 1024 if acct["MaxRSS"] else None)
    assert step["state"] == "finished"
    expected_eff = round(_seconds(acct["TotalCPU"]) / float(acct["CPUTimeRAW"]), 4)
    assert step["cpu_efficiency"] == pytest.approx(expected_eff, abs=1e-4)
    assert report.status_code == 200, report.text
    row = next(r for r in report.json()["rows"] if r["key"] == str(calc_id))
    assert row["core_hours"] == pytest.approx(float(acct["CPUTimeRAW"]) / 3600, abs=1e-6)
    assert row["steps"] == 1


def test_csv_export_has_the_same_numbers(stack: Stack, mode: Mode) -> None:
    with stack.api("owner") as api:
        js = api.get("/usage", params={"group_by": "cluster"}).json()
        csv = api.get("/usage", params={"group_by": "cluster", "format": "csv"})
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    lines = csv.text.strip().splitlines()
    assert lines[0] == "key,label,core_hours,cpu_hours,cpu_efficiency,steps,calculations"
    by_key = {line.split(",")[0]: line.split(",") for line in lines[1:]}
    for row in js["rows"]:
        assert float(by_key[row["key"]][2]) == pytest.approx(row["core_hours"])
    assert str(mode.cluster_id) in by_key


def _set_quota(stack: Stack, mode: Mode, **body: Any) -> httpx.Response:
    with stack.api("admin") as api:
        return api.put(f"/clusters/{mode.cluster_id}/quotas/{stack.ids['owner']}", json=body)


def test_quotas_refuse_and_warn(stack: Stack, mode: Mode) -> None:
    with stack.api("owner") as api:
        used = api.get("/usage", params={"group_by": "cluster", "cluster_id": mode.cluster_id})
    used_hours = used.json()["total_core_hours"]
    assert used_hours > 0
    with stack.api("owner") as api:  # a user may not set their own quota
        r = api.put(f"/clusters/{mode.cluster_id}/quotas/{stack.ids['owner']}", json={})
    assert r.status_code == 403

    r = _set_quota(stack, mode, soft_core_hours=None, hard_core_hours=used_hours / 2)
    assert r.status_code == 200, r.text
    assert r.json()["hard_reached"] is True
    refused = _create(stack, "owner", mode.cluster_id, "over the hard quota")
    assert refused.status_code == 403, refused.text
    body = refused.json()
    assert body["code"] == "quota_exceeded"
    assert body["detail"] == (
        f"hard quota of {used_hours / 2:.2f} core-hours on cluster {mode.cluster_name} "
        f"reached: {used_hours:.2f} used this month"
    )
    assert _create(stack, "other", mode.cluster_id, "someone else").status_code == 201

    r = _set_quota(stack, mode, soft_core_hours=used_hours / 2, hard_core_hours=used_hours * 10)
    assert r.status_code == 200, r.text
    created = _create(stack, "owner", mode.cluster_id, "over the soft quota")
    assert created.status_code == 201, created.text
    [warning] = created.json()["warnings"]
    assert warning.startswith(f"soft quota of {used_hours / 2:.2f} core-hours on cluster")
    with session_scope(stack.env.factory) as s:
        mails = s.scalars(
            select(NotificationOutbox).where(
                NotificationOutbox.calculation_id == created.json()["id"],
                NotificationOutbox.event == "quota_warning",
            )
        ).all()
        assert {m.user_id for m in mails} >= {stack.ids["owner"], stack.ids["admin"]}
    with stack.api("admin") as api:
        assert (
            api.delete(f"/clusters/{mode.cluster_id}/quotas/{stack.ids['owner']}").status_code
            == 204
        )
        listed = api.get(f"/clusters/{mode.cluster_id}/quotas").json()
    assert listed == []
    _cancel_leftovers(stack)


def _cancel_leftovers(stack: Stack) -> None:
    with stack.api("moderator") as api:
        page = api.get("/calculations", params={"limit": 200}).json()
        for c in page["items"]:
            if c["state"] in ("ready", "pending_approval", "submitted", "running"):
                api.post(f"/calculations/{c['id']}/cancel")


def test_users_see_only_their_usage_moderators_everyone(stack: Stack, mode: Mode) -> None:
    calc_id, _ = _run(stack, mode, "other")
    with stack.api("owner") as api:
        mine = api.get("/usage", params={"group_by": "user"}).json()
        theirs = api.get(f"/calculations/{calc_id}/usage")
        filtered = api.get("/usage", params={"user_id": stack.ids["other"]}).json()
    assert mine["all_users"] is False
    assert {r["key"] for r in mine["rows"]} == {str(stack.ids["owner"])}
    assert theirs.status_code == 403
    assert filtered["rows"] == []
    with stack.api("moderator") as api:
        everyone = api.get("/usage", params={"group_by": "user"}).json()
        theirs_mod = api.get(f"/calculations/{calc_id}/usage")
    assert everyone["all_users"] is True
    assert {str(stack.ids["owner"]), str(stack.ids["other"])} <= {
        r["key"] for r in everyone["rows"]
    }
    assert theirs_mod.status_code == 200
    with stack.api("other") as api:
        assert api.get(f"/calculations/{calc_id}/usage").status_code == 200


def test_approval_shows_estimate_and_month_usage(stack: Stack, mode: Mode) -> None:
    with session_scope(stack.env.factory) as s:
        from hpcgate.db.models import Cluster

        cluster = s.get(Cluster, mode.cluster_id)
        assert cluster is not None
        cluster.require_approval = True
    try:
        r = _create(stack, "owner", mode.cluster_id, "needs approval")
        assert r.status_code == 201, r.text
        calc_id = r.json()["id"]
        assert r.json()["state"] == "pending_approval"
        with stack.api("owner") as api:
            total = api.get("/usage").json()["total_core_hours"]
            on_cluster = api.get("/usage", params={"cluster_id": mode.cluster_id}).json()
            assert api.get("/approvals").status_code == 403
        with stack.api("moderator") as api:
            pending = api.get("/approvals").json()
            one = api.get(f"/calculations/{calc_id}/approval-context").json()
        [ctx] = [p for p in pending if p["calculation_id"] == calc_id]
        assert ctx == one
        assert ctx["estimated_core_hours"] == pytest.approx(2 * 120 / 3600, abs=1e-6)
        assert ctx["walltime_assumed"] is False
        assert ctx["owner_month_core_hours_total"] == pytest.approx(total)
        assert ctx["owner_month_core_hours_cluster"] == pytest.approx(
            on_cluster["total_core_hours"]
        )
        assert ctx["owner_month_core_hours_cluster"] > 0
        assert ctx["owner_email"] == "researcher@example.org"
    finally:
        with session_scope(stack.env.factory) as s:
            from hpcgate.db.models import Cluster

            cluster = s.get(Cluster, mode.cluster_id)
            assert cluster is not None
            cluster.require_approval = False
        _cancel_leftovers(stack)
