"""Real SIESTA 4.1 calculations through hpcgate on the real Slurm (agent mode) and locally.

What each test proves, with every number computed in the test, never a constant:

* an H2O SCF completes with the energy a direct ``siesta`` run of the same input gives
  (and sisl reads the same from the step's own output); the job runs the program path the
  cluster configured (``options.programs``), not just whatever ``siesta`` is on PATH;
* a MeshCutoff sweep is ONE array job whose points give different energies;
* in a chain the second step starts from the first step's density matrix: SIESTA itself
  says so in the second step's output (and not in the first's);
* a CG relaxation converges with relaxed coordinates and small forces.

The systems are tiny (H2O, SZ basis, 30-60 Ry mesh): each SIESTA run takes about a second.
"""

from __future__ import annotations

import re
import shlex
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from hpcgate.agent.client import AgentClient
from hpcgate.agent.config import AgentConfig
from hpcgate.agent.loop import Agent
from hpcgate.api.app import create_app
from hpcgate.db.models import ExtractedResult
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.services.api_keys import create_api_key
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.ci import require_tool
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server
from tests.helpers.siesta_env import (
    DM_READ_MARKER,
    SiestaTools,
    final_energy_ev,
    require_siesta,
    run_siesta,
    siesta_case,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

_MAX_FORCE = re.compile(r"(?m)^\s+Max\s+([0-9.]+)\s+constrained\s*$")


@dataclass
class Mode:
    name: str
    env: EngineEnv
    cluster_id: int
    tick: Callable[[], None]
    site_siesta: Path


@pytest.fixture(scope="module")
def tools() -> SiestaTools:
    return require_siesta()


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory: pytest.TempPathFactory, tools: SiestaTools) -> Iterator[EngineEnv]:
    with engine_env(tmp_path_factory.mktemp("siesta-engine"), "hpcgate_slurmsiesta") as env:
        yield env


def _site_siesta(tmp_path: Path, tools: SiestaTools) -> Path:
    """The real binary under a name no PATH has: only ``options.programs`` can find it."""
    site = tmp_path / "site" / "siesta-4.1" / "bin"
    site.mkdir(parents=True)
    link = site / f"siesta-{uuid.uuid4().hex[:6]}"
    link.symlink_to(tools.siesta)
    return link


@pytest.fixture
def agent_mode(shared_env: EngineEnv, tmp_path: Path, tools: SiestaTools) -> Iterator[Mode]:
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")
    env = shared_env
    tag = uuid.uuid4().hex[:8]
    scratch = str(tmp_path / "scratch")
    site = _site_siesta(tmp_path, tools)
    cid = env.add_cluster(
        f"agent-{tag}",
        scheduler="slurm",
        access_mode=AccessMode.AGENT,
        scratch_root=scratch,
        options={"programs": {"siesta": str(site)}},
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

        yield Mode("slurm-agent", env, cid, tick, site)


@pytest.fixture
def local_mode(shared_env: EngineEnv, tmp_path: Path, tools: SiestaTools) -> Iterator[Mode]:
    env = shared_env
    site = _site_siesta(tmp_path, tools)
    cid = env.add_cluster(
        f"local-{uuid.uuid4().hex[:8]}",
        scheduler="local",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
        queues={"default": "local"},
        options={"programs": {"siesta": str(site)}},
    )
    conns = ClusterConnections()

    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    yield Mode("local", env, cid, tick, site)
    conns.close()


def _run(mode: Mode, name: str, main: str, files: dict[str, str], config: dict[str, Any]) -> int:
    calc_id = mode.env.create(
        name=name,
        cluster_id=mode.cluster_id,
        logical_queue="default",
        code="siesta",
        configuration={
            "inputs": files,
            "main_input": main,
            "resources": {"tasks": 1, "walltime_s": 300},
            **config,
        },
    )
    calc = mode.env.run_until_settled(calc_id, mode.tick, timeout=180)
    steps = mode.env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, [
        (s.state, s.state_reason, s.workdir) for s in steps
    ]
    return calc_id


def _validation(mode: Mode, step_id: int) -> dict[int, dict[str, Any]]:
    """The stored validation reports of a step, by array task index (-1: not an array)."""
    with session_scope(mode.env.factory) as s:
        return {
            r.task_index: dict(r.data)
            for r in s.scalars(
                select(ExtractedResult).where(
                    ExtractedResult.step_id == step_id, ExtractedResult.kind == "validation"
                )
            )
        }


def _command_line(script: Path) -> list[str]:
    """The program invocation of a rendered job script (the line reading the fdf on stdin)."""
    line = next(x for x in script.read_text().splitlines() if " < " in x and " > " in x)
    return shlex.split(line)


def test_h2o_scf_energy_matches_a_direct_run(
    local_mode: Mode, tools: SiestaTools, tmp_path: Path
) -> None:
    """The local executor (the demo's path); the Slurm runs are cross-checked below."""
    any_mode = local_mode
    files = siesta_case("h2o", tools)
    calc_id = _run(any_mode, "H2O SCF", "h2o.fdf", files, {"kind": "single"})
    (step,) = any_mode.env.steps(calc_id)
    assert step.state is StepState.HARVESTED
    workdir = Path(step.workdir or "")
    out = workdir / "h2o.out"
    # The configured program path ran (no PATH lookup could find this name).
    scripts = [p for p in workdir.iterdir() if p.suffix == ".sh"]
    assert scripts, sorted(p.name for p in workdir.iterdir())
    assert _command_line(scripts[0])[0] == str(any_mode.site_siesta)
    reference = final_energy_ev(run_siesta(tmp_path / "direct", files, "h2o.fdf"))
    report = _validation(any_mode, step.id)[-1]
    assert report["status"] == "converged"
    assert report["numbers"]["version"].startswith("v4.1")
    assert report["numbers"]["energy_total_ev"] == pytest.approx(reference, abs=1e-4)
    assert final_energy_ev(out) == pytest.approx(reference, abs=1e-4)


def test_mesh_cutoff_sweep_is_one_array_with_distinct_energies(
    agent_mode: Mode, tools: SiestaTools, tmp_path: Path
) -> None:
    cutoffs = (30, 45, 60)
    files = siesta_case("h2o", tools)
    calc_id = _run(
        agent_mode,
        "H2O MeshCutoff sweep",
        "h2o.fdf",
        files,
        {
            "kind": "sweep",
            "variants": [
                {"label": f"mesh {c} Ry", "parameters": {"MeshCutoff": f"{c} Ry"}} for c in cutoffs
            ],
        },
    )
    (step,) = agent_mode.env.steps(calc_id)
    assert step.array_size == len(cutoffs)
    assert step.scheduler_job_id
    assert [t.state for t in step.tasks] == [StepState.FINISHED] * len(cutoffs)
    reports = _validation(agent_mode, step.id)
    assert sorted(reports) == list(range(len(cutoffs)))
    energies = [reports[i]["numbers"]["energy_total_ev"] for i in range(len(cutoffs))]
    for i, cutoff in enumerate(cutoffs):
        task_dir = Path(step.workdir or "") / f"task-{i}"
        text = (task_dir / "h2o.out").read_text(errors="replace")
        # Each task ran its own cutoff (SIESTA echoes the input and reports the mesh it used).
        assert f"MeshCutoff {cutoff} Ry" in " ".join(text.split()), f"task {i}"
        assert final_energy_ev(task_dir / "h2o.out") == pytest.approx(energies[i], abs=1e-5)
    assert len({round(e, 4) for e in energies}) == len(cutoffs), energies
    # The array script runs the cluster's configured siesta (a name no PATH has).
    scripts = [p for p in Path(step.workdir or "").iterdir() if p.suffix == ".sh"]
    assert scripts
    assert _command_line(scripts[0])[0] == str(agent_mode.site_siesta)
    # The middle point is the same H2O SCF as a direct siesta run at that cutoff.
    direct = dict(files)
    direct["h2o.fdf"] = f"MeshCutoff {cutoffs[1]} Ry\n" + files["h2o.fdf"]  # first one wins
    reference = final_energy_ev(run_siesta(tmp_path / "direct", direct, "h2o.fdf"))
    assert energies[1] == pytest.approx(reference, abs=1e-4)


def test_chain_second_step_starts_from_the_first_steps_dm(
    agent_mode: Mode, tools: SiestaTools
) -> None:
    calc_id = _run(
        agent_mode,
        "H2O DM hand-over",
        "h2o.fdf",
        siesta_case("h2o", tools),
        {
            "kind": "chain",
            "variants": [
                {"label": "50 Ry", "parameters": {"MeshCutoff": "50 Ry"}},
                {"label": "60 Ry", "parameters": {"MeshCutoff": "60 Ry"}},
            ],
        },
    )
    first, second = agent_mode.env.steps(calc_id)
    assert [first.state, second.state] == [StepState.HARVESTED] * 2
    first_out = (Path(first.workdir or "") / "h2o.out").read_text(errors="replace")
    second_out = (Path(second.workdir or "") / "h2o.out").read_text(errors="replace")
    assert DM_READ_MARKER not in first_out
    assert DM_READ_MARKER in second_out
    assert "IO-DM: h2o.DM" in second_out  # the file it read is the inherited h2o.DM
    # Starting from a converged density, the second SCF needs fewer iterations.
    iterations = [
        _validation(agent_mode, s.id)[-1]["numbers"]["scf_iterations_total"]
        for s in (first, second)
    ]
    assert iterations[1] < iterations[0], iterations


def test_cg_relaxation_converges(agent_mode: Mode, tools: SiestaTools) -> None:
    import sisl.io.siesta as sio

    files = siesta_case("h2o_relax", tools)
    calc_id = _run(agent_mode, "H2O relaxation", "h2o_relax.fdf", files, {"kind": "single"})
    (step,) = agent_mode.env.steps(calc_id)
    out = Path(step.workdir or "") / "h2o_relax.out"
    report = _validation(agent_mode, step.id)[-1]
    assert report["status"] == "converged"
    numbers = report["numbers"]
    assert numbers["geometry_steps"] > 1
    # The last step's forces from SIESTA's own .FA file, the relaxed geometry from the stdout.
    forces = sio.faSileSiesta(str(out.with_suffix(".FA"))).read_force()
    with out.open(encoding="utf-8", errors="replace") as fh:
        relaxed = sio.stdoutSileSiesta(fh).read_geometry()
    assert "outcoor: Relaxed atomic coordinates" in out.read_text(errors="replace")
    assert float(np.abs(forces).max()) < 0.05  # MD.MaxForceTol of the input
    assert numbers["max_force_ev_ang"] == pytest.approx(float(np.abs(forces).max()), abs=1e-4)
    with (Path(step.workdir or "") / "h2o_relax.fdf").open() as fh:
        start = sio.fdfSileSiesta(fh.name).read_geometry()
    moved = np.linalg.norm(relaxed.xyz - start.xyz, axis=1)
    assert moved.max() > 0.01, moved  # the atoms moved from the displaced start
    # SIESTA's per-move maximum force: large at the start, below the tolerance at the end.
    max_forces = [float(m) for m in _MAX_FORCE.findall(out.read_text(errors="replace"))]
    assert len(max_forces) == numbers["geometry_steps"]
    assert max_forces[0] > 0.05 > max_forces[-1], max_forces
