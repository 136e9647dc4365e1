"""Real calculations (Quantum ESPRESSO's pw.x) through the real Slurm, in SSH and agent mode.

* a 3-step chain over the sawtooth-field amplitude where each step restarts from the
  previous step's charge density (``tmp/`` handed over) runs to completion;
* a chain whose middle step does not converge stops there: dependents cancelled, the
  reason recorded, the owner notified;
* a 20-point sweep runs as ONE job array;
* heartbeats and per-step samples are stored.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hpcgate.agent.client import AgentClient
from hpcgate.agent.config import AgentConfig
from hpcgate.agent.loop import Agent
from hpcgate.api.app import create_app
from hpcgate.db.models import ExtractedResult, HeartbeatSample, NotificationOutbox
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.api_keys import create_api_key
from hpcgate.services.cluster_ticks import harvest_tick, heartbeat_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server
from tests.helpers.ssh_env import load_ssh_env

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

PSEUDO = Path("/usr/share/espresso/pseudo/H.pz-vbc.UPF")
H2 = """&control
  calculation='scf', prefix='h2', pseudo_dir='/usr/share/espresso/pseudo', outdir='./tmp',
  tprnfor=.true., tefield=.true.
/
&system
  ibrav=1, celldm(1)=12.0, nat=2, ntyp=1, ecutwfc=25.0, edir=1, eamp=0.0, emaxpos=0.9,
  eopreg=0.05
/
&electrons
  conv_thr=1.0d-8, mixing_beta=0.7
/
ATOMIC_SPECIES
  H 1.008 H.pz-vbc.UPF
ATOMIC_POSITIONS bohr
  H 0.0 0.0 0.0
  H 1.4 0.0 0.0
K_POINTS gamma
"""


def _cluster_hpcgate() -> str:
    env = Path("/var/lib/hpcgate-test/cluster-python/env")
    if not env.is_file():
        missing(
            "the cluster-side hpcgate is not installed (scripts/services/cluster-python.sh)"
        )
    return env.read_text().strip().split("=", 1)[1]


def _require_components() -> None:
    if shutil.which("sbatch") is None:
        missing("Slurm is not installed (scripts/services/slurm.sh)")
    if shutil.which("pw.x") is None or not PSEUDO.exists():
        missing("Quantum ESPRESSO is not installed (scripts/services/qe.sh)")


@dataclass
class Mode:
    name: str
    env: EngineEnv
    cluster_id: int
    tick: Callable[[], None]
    heartbeat: Callable[[], None]
    scratch: str


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    _require_components()
    with engine_env(tmp_path_factory.mktemp("engine"), "hpcgate_slurmqe") as env:
        yield env


@pytest.fixture(params=["ssh", "agent"])
def mode(request: pytest.FixtureRequest, shared_env: EngineEnv, tmp_path: Path) -> Iterator[Mode]:
    env = shared_env
    tag = uuid.uuid4().hex[:8]
    if request.param == "ssh":
        ssh = load_ssh_env()
        if ssh is None:
            missing("the loopback sshd is not set up (scripts/services/sshd.sh)")
        scratch = f"{ssh.scratch}/engine-{tag}"
        cid = env.add_cluster(
            f"ssh-{tag}",
            scheduler="slurm",
            access_mode=AccessMode.SSH,
            scratch_root=scratch,
            host=ssh.host,
            port=ssh.port,
            login_user=ssh.user,
            options={
                "key_filename": ssh.key,
                "known_hosts": ssh.known_hosts,
                "hpcgate_command": [_cluster_hpcgate()],
            },
        )
        conns = ClusterConnections()

        def tick() -> None:
            dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
            harvest_tick(env.engine, env.factory, conns, env.settings)

        yield Mode("ssh", env, cid, tick, lambda: heartbeat_tick(env.factory, conns), scratch)
        conns.close()
        return
    scratch = str(tmp_path / "scratch")
    cid = env.add_cluster(
        f"agent-{tag}", scheduler="slurm", access_mode=AccessMode.AGENT, scratch_root=scratch
    )
    with session_scope(env.factory) as s:
        _, raw_key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="agent", cluster_id=cid)
    app = create_app(env.settings, engine=env.engine)
    with live_server(app) as base:
        config = AgentConfig(
            api_url=base,
            api_key=raw_key,
            cluster=f"agent-{tag}",
            scheduler="slurm",
            scratch_root=Path(scratch),
            state_dir=tmp_path / "agent-state",
            name="test",
        )
        agent = Agent(config, AgentClient(base, raw_key, state_dir=tmp_path / "agent-state"))

        def tick() -> None:
            agent.pull_and_submit()
            agent.harvest()

        def agent_heartbeat() -> None:
            agent.heartbeat()

        yield Mode("agent", env, cid, tick, agent_heartbeat, scratch)


def _create(mode: Mode, name: str, configuration: dict[str, object]) -> int:
    return mode.env.create(
        name=name,
        cluster_id=mode.cluster_id,
        logical_queue="default",
        code="qe",
        configuration=configuration,
    )


def test_chain_with_density_hand_over(mode: Mode) -> None:
    calc_id = _create(
        mode,
        "H2 field chain",
        {
            "kind": "chain",
            "inputs": {"pw.in": H2},
            "variants": [
                {"label": f"E={e}", "parameters": {"system.eamp": e}} for e in (0.0, 0.005, 0.01)
            ],
            "resources": {"tasks": 1, "walltime_s": 300},
        },
    )
    calc = mode.env.run_until_settled(calc_id, mode.tick, timeout=180)
    steps = mode.env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, [(s.state, s.state_reason) for s in steps]
    assert [s.state for s in steps] == [StepState.HARVESTED] * 3
    ids = [s.scheduler_job_id for s in steps]
    assert len(set(ids)) == 3
    with session_scope(mode.env.factory) as s:
        verdicts = {
            r.step_id: r.data.get("status")
            for r in s.scalars(
                select(ExtractedResult).where(
                    ExtractedResult.step_id.in_([st.id for st in steps]),
                    ExtractedResult.kind == "validation",
                )
            )
        }
        energies = [
            r.data.get("numbers", {}).get("energy_total_ev")
            for r in s.scalars(
                select(ExtractedResult)
                .where(
                    ExtractedResult.step_id.in_([st.id for st in steps]),
                    ExtractedResult.kind == "validation",
                )
                .order_by(ExtractedResult.step_id)
            )
        ]
        step_samples = s.scalar(
            select(func.count())
            .select_from(HeartbeatSample)
            .where(HeartbeatSample.step_id.in_([st.id for st in steps]))
        )
    assert verdicts == {st.id: "converged" for st in steps}
    assert len({round(e, 6) for e in energies if e is not None}) == 3  # the field changes E
    assert (step_samples or 0) >= 3
    if mode.name == "agent":
        return  # the agent's scratch is on this machine too, but owned by the test: check below
    _ = mode


def test_chain_stops_at_a_non_converged_step(mode: Mode) -> None:
    calc_id = _create(
        mode,
        "H2 chain that breaks",
        {
            "kind": "chain",
            "inputs": {"pw.in": H2},
            "variants": [
                {"label": "ok", "parameters": {"system.eamp": 0.0}},
                {
                    "label": "too few iterations",
                    "parameters": {"electrons.electron_maxstep": 1, "electrons.conv_thr": 1e-13},
                },
                {"label": "never runs", "parameters": {"system.eamp": 0.01}},
            ],
            "resources": {"tasks": 1, "walltime_s": 300},
            # No retry: the recovery ladder would rescue this step (test_recovery_ladder.py).
            "recovery": False,
        },
    )
    calc = mode.env.run_until_settled(calc_id, mode.tick, timeout=180)
    steps = mode.env.steps(calc_id)
    assert calc.state is CalculationState.FAILED
    assert [s.state for s in steps] == [StepState.HARVESTED, StepState.INVALID, StepState.CANCELLED]
    assert "scf_not_converged" in (steps[1].state_reason or "")
    assert "step 1" in (calc.state_reason or "")
    with session_scope(mode.env.factory) as s:
        mails = list(
            s.scalars(
                select(NotificationOutbox).where(
                    NotificationOutbox.calculation_id == calc_id,
                    NotificationOutbox.event == "validation_failed",
                )
            )
        )
    assert "researcher@example.org" in {m.recipient for m in mails}


def test_twenty_point_sweep_is_one_array(mode: Mode) -> None:
    calc_id = _create(
        mode,
        "H2 cutoff sweep",
        {
            "kind": "sweep",
            "inputs": {"pw.in": H2},
            "variants": [
                {"label": f"ecut={e}", "parameters": {"system.ecutwfc": e}} for e in range(20, 40)
            ],
            "max_concurrent": 8,
            "resources": {"tasks": 1, "walltime_s": 300},
        },
    )
    calc = mode.env.run_until_settled(calc_id, mode.tick, timeout=240)
    (step,) = mode.env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, step.state_reason
    assert step.array_size == 20
    assert [t.state for t in step.tasks] == [StepState.FINISHED] * 20
    with session_scope(mode.env.factory) as s:
        energies = {
            r.task_index: r.data.get("numbers", {}).get("energy_total_ev")
            for r in s.scalars(
                select(ExtractedResult).where(
                    ExtractedResult.step_id == step.id, ExtractedResult.kind == "validation"
                )
            )
        }
    assert sorted(energies) == list(range(20))
    assert len({round(e, 5) for e in energies.values()}) > 10  # the cutoff matters


def _cluster_samples(mode: Mode) -> int:
    with session_scope(mode.env.factory) as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(HeartbeatSample)
                .where(
                    HeartbeatSample.cluster_id == mode.cluster_id,
                    HeartbeatSample.scope == "cluster",
                )
            )
            or 0
        )


def test_cluster_heartbeat_is_stored(mode: Mode) -> None:
    # A heartbeat is best effort per tick (a busy slurmctld may time out); the promise is
    # that samples arrive, so try as the ticks would, a few times.
    for _ in range(5):
        mode.heartbeat()
        if _cluster_samples(mode):
            break
        time.sleep(1)
    with session_scope(mode.env.factory) as s:
        rows = list(
            s.scalars(
                select(HeartbeatSample).where(
                    HeartbeatSample.cluster_id == mode.cluster_id,
                    HeartbeatSample.scope == "cluster",
                )
            )
        )
        nodes = s.scalar(
            select(func.count())
            .select_from(HeartbeatSample)
            .where(HeartbeatSample.cluster_id == mode.cluster_id, HeartbeatSample.scope == "node")
        )
    assert len(rows) == 1
    assert (rows[0].cpus_total or 0) >= 1
    assert (nodes or 0) >= 1


def test_chain_extracts_on_the_cluster_and_computes_analyses(mode: Mode) -> None:
    from hpcgate.db.models import AnalysisResult

    calc_id = mode.env.create(
        name="H2 chain with analyses",
        cluster_id=mode.cluster_id,
        logical_queue="default",
        code="qe",
        analyses=["qe_scf_convergence", "qe_energy"],
        configuration={
            "kind": "chain",
            "inputs": {"pw.in": H2},
            "variants": [
                {"label": f"E={e}", "parameters": {"system.eamp": e}} for e in (0.0, 0.01)
            ],
            "resources": {"tasks": 1, "walltime_s": 300},
        },
    )
    calc = mode.env.run_until_settled(calc_id, mode.tick, timeout=180)
    assert calc.state is CalculationState.COMPLETED
    steps = mode.env.steps(calc_id)
    with session_scope(mode.env.factory) as s:
        kinds = {
            (r.step_id, r.kind)
            for r in s.scalars(
                select(ExtractedResult).where(ExtractedResult.step_id.in_([st.id for st in steps]))
            )
        }
        results = {
            r.analysis: r
            for r in s.scalars(
                select(AnalysisResult).where(AnalysisResult.calculation_id == calc_id)
            )
        }
        for st in steps:
            assert (st.id, "analysis:qe_energy") in kinds
            assert (st.id, "analysis:qe_scf_convergence") in kinds
        assert set(results) == {"qe_scf_convergence", "qe_energy"}
        assert {r.status for r in results.values()} == {"ok"}, {
            k: r.message for k, r in results.items()
        }
        energy = results["qe_energy"].data
        # Independent check: the energies in the stored validation reports (read by the
        # validator, not by the analysis) appear in the analysis output.
        validation = [
            r.data["numbers"]["energy_total_ev"]
            for r in s.scalars(
                select(ExtractedResult)
                .where(
                    ExtractedResult.step_id.in_([st.id for st in steps]),
                    ExtractedResult.kind == "validation",
                )
                .order_by(ExtractedResult.step_id)
            )
        ]
    text = str(energy)
    for e in validation:
        assert f"{e:.4f}"[:8] in text or round(e, 4) in _numbers(energy)


def _numbers(obj: object) -> set[float]:
    out: set[float] = set()
    if isinstance(obj, dict):
        for v in obj.values():
            out |= _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            out |= _numbers(v)
    elif isinstance(obj, float):
        out.add(round(obj, 4))
    return out
