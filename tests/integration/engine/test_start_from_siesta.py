"""``configuration.start_from`` on the real Slurm with real SIESTA: an H2O run started from
another H2O calculation's outputs reads its density matrix (SIESTA says so), and what
cannot be started from is refused at creation with a message naming the problem."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.states import StepState
from hpcgate.errors import InvalidInput
from tests.helpers.siesta_env import DM_READ_MARKER, SiestaTools, siesta_case
from tests.integration.engine.test_slurm_siesta import (  # noqa: F401 - fixtures
    Mode,
    _run,
    agent_mode,
    shared_env,
    tools,
)

pytestmark = [pytest.mark.integration, pytest.mark.slurm]


def _h2o(mode: Mode, kit: SiestaTools, name: str, **config: object) -> int:
    return _run(
        mode, name, "h2o.fdf", siesta_case("h2o", kit),
        {"parameters": {"MeshCutoff": "50 Ry"}, **config},
    )  # fmt: skip


def test_an_h2o_run_started_from_another_reads_its_dm(
    agent_mode: Mode, tools: SiestaTools  # noqa: F811
) -> None:
    source = _h2o(agent_mode, tools, "H2O source")
    (src_step,) = agent_mode.env.steps(source)
    assert (Path(str(src_step.workdir)) / "h2o.DM").is_file()
    follow_up = _h2o(agent_mode, tools, "H2O from source", start_from={"calculation": source})
    (step,) = agent_mode.env.steps(follow_up)
    assert step.state is StepState.HARVESTED
    out = (Path(str(step.workdir)) / "h2o.out").read_text(errors="replace")
    assert DM_READ_MARKER in out
    assert "IO-DM: h2o.DM" in out
    stored = agent_mode.env.calc(follow_up).configuration["start_from"]
    assert stored == {
        "calculation": source, "step": 0, "inherit": ["*.DM", "*.TSDE"],
        "dir": src_step.workdir,
    }  # fmt: skip
    src_out = (Path(str(src_step.workdir)) / "h2o.out").read_text(errors="replace")
    assert DM_READ_MARKER not in src_out


def test_what_cannot_be_started_from_is_refused_at_creation(
    agent_mode: Mode, tools: SiestaTools  # noqa: F811
) -> None:
    env = agent_mode.env
    files = siesta_case("h2o", tools)

    def create(start_from: object, cluster_id: int | None = None) -> str:
        with pytest.raises(InvalidInput) as err:
            env.create(
                name="refused", cluster_id=cluster_id or agent_mode.cluster_id,
                logical_queue="default", code="siesta",
                configuration={"inputs": files, "main_input": "h2o.fdf",
                               "start_from": start_from},
            )  # fmt: skip
        return err.value.message

    assert "does not exist" in create({"calculation": 10**9})
    assert "must be an object" in create(42)
    assert "calculation id" in create({"calculation": "abc"})
    assert "unknown key" in create({"calculation": 1, "from": "x"})
    never_run = env.create(
        name="never run", cluster_id=agent_mode.cluster_id, logical_queue="default",
        code="siesta", configuration={"inputs": files, "main_input": "h2o.fdf"},
    )  # fmt: skip
    assert "no succeeded step" in create({"calculation": never_run})
    assert "is planned" in create({"calculation": never_run, "step": 0})
    assert "has no step 5" in create({"calculation": never_run, "step": 5})
    other = env.add_cluster(
        f"other-{uuid.uuid4().hex[:6]}", scheduler="slurm", access_mode=AccessMode.AGENT,
        scratch_root="/tmp/other-scratch",
    )  # fmt: skip
    assert "another cluster" in create({"calculation": never_run}, cluster_id=other)
    done = _h2o(agent_mode, tools, "H2O done")
    assert "plain file name or glob" in create({"calculation": done, "inherit": ["../x"]})
    assert "plain file name or glob" in create({"calculation": done, "inherit": ["a/*.DM"]})
