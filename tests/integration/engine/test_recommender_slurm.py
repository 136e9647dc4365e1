"""The recommender's history from real runs: SIESTA jobs on the real Slurm, harvested by an agent.

A MeshCutoff chain of H2O runs (about a second each) goes through the whole engine; the
finished steps then appear in the recommender's history with the features of the inputs
they ran with, their elapsed time from the step's timestamps and, where sacct reported it,
their MaxRSS. Three runs are too few for a model, so the answer is the queue's default,
saying how many runs are on record.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcgate.agent.client import AgentClient
from hpcgate.agent.config import AgentConfig
from hpcgate.agent.loop import Agent
from hpcgate.api.app import create_app
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.domain.states import CalculationState
from hpcgate.services.api_keys import create_api_key
from hpcgate.services.recommender import history, service
from hpcgate.services.recommender.service import RecommendationRequest, recommend
from tests.helpers.ci import require_tool
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server
from tests.helpers.siesta_env import require_siesta, siesta_case

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

CUTOFFS = (40, 60, 80)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[EngineEnv]:
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")
    require_siesta()
    with engine_env(tmp_path / "engine", "hpcgate_recslurm") as e:
        yield e


def test_real_slurm_runs_feed_the_history(env: EngineEnv, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    scratch = tmp_path / "scratch"
    cid = env.add_cluster(
        f"rec-{tag}", scheduler="slurm", access_mode=AccessMode.AGENT, scratch_root=str(scratch)
    )
    with session_scope(env.factory) as s:
        _, raw_key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="agent", cluster_id=cid)
    files = siesta_case("h2o")
    config = {
        "kind": "chain",
        "inputs": files,
        "main_input": "h2o.fdf",
        "variants": [
            {"label": f"{c} Ry", "parameters": {"MeshCutoff": f"{c} Ry"}} for c in CUTOFFS
        ],
        "resources": {"tasks": 1, "walltime_s": 300},
    }
    calc_id = env.create(
        name="H2O mesh chain", cluster_id=cid, logical_queue="default", code="siesta",
        configuration=config,
    )  # fmt: skip
    app = create_app(env.settings, engine=env.engine)
    with live_server(app) as base:
        agent = Agent(
            AgentConfig(api_url=base, api_key=raw_key, cluster=f"rec-{tag}", scheduler="slurm",
                        scratch_root=scratch, state_dir=tmp_path / "agent", name="test"),
            AgentClient(base, raw_key, state_dir=tmp_path / "agent"),
        )  # fmt: skip

        def tick() -> None:
            agent.pull_and_submit()
            agent.harvest()

        calc = env.run_until_settled(calc_id, tick, timeout=300)
    assert calc.state is CalculationState.COMPLETED
    steps = {s.id: s for s in env.steps(calc_id)}
    service.clear_cache()
    with session_scope(env.factory) as s:
        runs = [r for r in history.load_runs(s, "siesta") if r.step_id in steps]
        answer = recommend(s, RecommendationRequest(cid, "default", "siesta", config), env.settings)
    assert sorted(r.features["mesh_cutoff_ry"] for r in runs) == list(CUTOFFS)
    for run in runs:
        step = steps[run.step_id]
        assert step.started_at is not None
        assert step.finished_at is not None
        assert run.elapsed_s == pytest.approx((step.finished_at - step.started_at).total_seconds())
        assert run.features["atoms"] == 3
        assert run.partition == "debug"
        assert run.kind == "chain"
    assert answer.evidence.source == "queue_default"
    assert f"{len(runs)} finished siesta run(s) on record" in answer.evidence.reason
    # sacct's MaxRSS reaches the history where the harvest stored a sample for the step
    assert all(r.max_rss_mb is None or 1 < r.max_rss_mb < 100_000 for r in runs), runs
