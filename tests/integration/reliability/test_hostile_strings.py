"""Shell metacharacters in every user-controlled string that reaches a job script never
execute: name, description, labels, parameter values and command words go through the real
API, the planner, the renderer and the real Slurm, and arrive verbatim."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.states import CalculationState
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[EngineEnv]:
    if shutil.which("sbatch") is None:
        missing("Slurm is not installed (scripts/services/slurm.sh)")
    with engine_env(tmp_path, "hpcgate_hostile") as e:
        yield e


def hostile(marker: Path) -> list[str]:
    return [
        f"$(touch {marker}-a)",
        f"`touch {marker}-b`",
        f"'; touch {marker}-c; '",
        f'"; touch {marker}-d; "',
        f"x && touch {marker}-e",
        f"x | touch {marker}-f",
        f"${{IFS}}touch${{IFS}}{marker}-g",
        "--wrap=touch " + str(marker) + "-h",
        "ünïcødé ☃ #SBATCH --partition=long",
    ]


def test_hostile_strings_arrive_verbatim_and_never_execute(
    env: EngineEnv, tmp_path: Path
) -> None:
    marker = tmp_path / f"pwned-{uuid.uuid4().hex[:6]}"
    values = hostile(marker)
    cid = env.add_cluster("hostile", scheduler="slurm", access_mode=AccessMode.LOCAL,
                          scratch_root=str(tmp_path / "scratch"))
    calc_id = env.create(
        name=values[0], description=" ".join(values), cluster_id=cid,
        logical_queue="default", code="generic",
        configuration={
            "kind": "sweep",
            "variants": [{"label": v, "parameters": {"value": v}} for v in values],
            "command": ["python3", "-c",
                        "import json, os, sys; json.dump({'argv': sys.argv[1:], "
                        "'param': os.environ['HPCGATE_PARAM_VALUE']}, open('seen.json', 'w'))",
                        *values],
            "resources": {"walltime_s": 120},
        },
    )
    conns = ClusterConnections()

    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    calc = env.run_until_settled(calc_id, tick, timeout=120)
    conns.close()
    assert calc.state is CalculationState.COMPLETED, calc.state_reason
    (step,) = env.steps(calc_id)
    for i, value in enumerate(values):
        seen = json.loads((Path(step.workdir or "") / f"task-{i}" / "seen.json").read_text())
        assert seen["argv"] == values
        assert seen["param"] == value
    assert sorted(p.name for p in tmp_path.glob(marker.name + "*")) == []
    script = next(Path(step.workdir or "").glob("*.sh")).read_text()
    assert "#SBATCH --partition=long" not in script.replace(values[-1], "")
