"""The 1-D Au chain ladder (hpcgate/demo_data/au_chain, also the demo's), its reference run,
and the clusters the ladder tests run on (SSH + worker, or a real agent process).

The reference is the same ladder run directly with the real ``siesta``/``tbtrans``, once
per session, WITHOUT hpcgate: the fdf is edited by plain text substitution (not sisl,
not ``generate_inputs``), files are copied by hand, and the currents are read with sisl
(TBT.nc) and a regex (stdout). Tests compare what hpcgate produced with these numbers, so
nothing is hard-coded and a bug in hpcgate's generation cannot hide in both sides.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from hpcgate.api.app import create_app
from hpcgate.db.models import User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.agent_env import agent_config
from tests.helpers.api import auth_headers
from tests.helpers.ci import require_path, require_tool
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server
from tests.helpers.siesta_env import siesta_case
from tests.helpers.ssh_env import require_ssh_env

#: The ladder every real-SIESTA test here uses: >= 3 finite biases, one negative.
BIASES = (0.0, 0.1, 0.2, -0.1)
_CURRENT = re.compile(r"V \[V\] / I \[A\]:\s*(\S+)\s*V\s*/\s*(\S+)\s*A")


@dataclass(frozen=True)
class ReferencePoint:
    bias_v: float
    current_stdout_a: float
    current_nc_a: float
    directory: Path


@dataclass(frozen=True)
class Reference:
    root: Path
    electrode: Path
    points: dict[float, ReferencePoint]
    no_tsde: Path  # a +0.1 V device run started without the 0 V TSDE (TranSIESTA's FATAL)


@pytest.fixture(scope="session")
def au_chain() -> dict[str, str]:
    """elec.fdf, device.fdf and Au.psf (the installed pseudopotential)."""
    return siesta_case("au_chain")


def _run(program: str, cwd: Path, stdin: str, stdout: str, *args: str) -> int:
    with (cwd / stdin).open("rb") as fin, (cwd / stdout).open("wb") as fout:
        return subprocess.run(
            [program, *args],
            cwd=cwd,
            stdin=fin,
            stdout=fout,
            stderr=subprocess.DEVNULL,
            timeout=120,
            check=False,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        ).returncode


def _device_fdf(text: str, bias: float, restart: bool) -> str:
    out, n = re.subn(r"(?m)^TS\.Voltage .*$", f"TS.Voltage {bias} eV", text)
    assert n == 1, "device.fdf must hold exactly one 'TS.Voltage' line"
    return out + ("DM.UseSaveDM true\n" if restart else "")


# The netCDF-C/HDF5 libraries under sisl are not thread-safe: the two branches run on
# threads, so their TBT.nc reads take turns (two at once crashed the interpreter).
_NETCDF = threading.Lock()


def _point(
    root: Path, files: dict[str, str], bias: float, previous: float | None
) -> ReferencePoint:
    """One device run (from the previous point's TSDE) and its TBtrans, by hand."""
    import sisl

    d = root / f"point{bias:+.3f}"
    d.mkdir()
    (d / "Au.psf").write_text(files["Au.psf"])
    shutil.copy(root / "electrode" / "elec.TSHS", d / "elec.TSHS")
    if previous is not None:
        shutil.copy(root / f"point{previous:+.3f}" / "device.TSDE", d / "device.TSDE")
    (d / "device.fdf").write_text(_device_fdf(files["device.fdf"], bias, previous is not None))
    assert _run("siesta", d, "device.fdf", "device.out") == 0, f"reference {bias} V failed"
    assert _run("tbtrans", d, "device.fdf", "tbtrans.out") == 0
    found = _CURRENT.search((d / "tbtrans.out").read_text(errors="replace"))
    assert found is not None, f"no current in the reference TBtrans output at {bias} V"
    with _NETCDF:
        current_nc = float(sisl.get_sile(str(d / "device.TBT.nc")).current("Left", "Right"))
    return ReferencePoint(
        bias_v=float(found.group(1)),
        current_stdout_a=float(found.group(2)),
        current_nc_a=current_nc,
        directory=d,
    )


def _branch(root: Path, files: dict[str, str], biases: list[float]) -> list[ReferencePoint]:
    out: list[ReferencePoint] = []
    previous = 0.0
    for bias in biases:
        out.append(_point(root, files, bias, previous))
        previous = bias
    return out


def _no_tsde(root: Path, files: dict[str, str]) -> Path:
    bad = root / "no-tsde"
    bad.mkdir()
    (bad / "Au.psf").write_text(files["Au.psf"])
    shutil.copy(root / "electrode" / "elec.TSHS", bad / "elec.TSHS")
    (bad / "device.fdf").write_text(_device_fdf(files["device.fdf"], 0.1, False))
    assert _run("siesta", bad, "device.fdf", "device.out") != 0
    return bad


@pytest.fixture(scope="session")
def reference(au_chain: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """Electrode, 0 V, then both branches at once (two cores), each point + TBtrans."""
    root = tmp_path_factory.mktemp("au-chain-reference")
    elec = root / "electrode"
    elec.mkdir()
    for name in ("elec.fdf", "Au.psf"):
        (elec / name).write_text(au_chain[name])
    assert _run("siesta", elec, "elec.fdf", "elec.out", "--electrode") == 0
    zero = _point(root, au_chain, 0.0, None)
    positive = sorted(b for b in BIASES if b > 0)
    negative = sorted((b for b in BIASES if b < 0), reverse=True)
    with ThreadPoolExecutor(2) as pool:
        up = pool.submit(_branch, root, au_chain, positive)
        down = pool.submit(_branch, root, au_chain, negative)
        bad = pool.submit(_no_tsde, root, au_chain)
        points = {p.bias_v: p for p in [zero, *up.result(), *down.result()]}
        no_tsde = bad.result()
    return Reference(root, elec, {round(v, 6) + 0.0: p for v, p in points.items()}, no_tsde)


# -- where the ladders run: the real Slurm, reached by the worker over SSH or by an agent

CLUSTER_PYTHON_ENV = Path("/var/lib/hpcgate-test/cluster-python/env")
REPO = Path(__file__).resolve().parents[3]


def cluster_hpcgate() -> str:
    """The ``hpcgate`` the jobs call (the cluster's own Python environment)."""
    path = require_path(
        CLUSTER_PYTHON_ENV,
        what="the cluster-side hpcgate",
        install_hint="run scripts/services/cluster-python.sh",
    )
    return path.read_text().strip().split("=", 1)[1]


@dataclass
class LadderSite:
    """A Slurm cluster with a database of its own and the researcher's API headers.
    ``tick`` does what the test must drive: dispatch and harvest for the worker; for an
    agent (its own process: long-poll, end spool) only a check that it still runs."""

    env: EngineEnv
    cluster_id: int
    headers: dict[str, str]
    tick: Callable[[], None]
    mode: str


def _researcher_headers(env: EngineEnv) -> dict[str, str]:
    with Session(env.engine) as s:
        user = s.get(User, env.user_id)
        assert user is not None
        s.expunge(user)
    return auth_headers(user, env.settings)


@pytest.fixture(scope="module")
def ssh_ladder_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LadderSite]:
    """API -> worker (SSH mode, driven by ``tick``) -> the real Slurm."""
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")
    ssh = require_ssh_env()
    hpcgate = cluster_hpcgate()
    with engine_env(tmp_path_factory.mktemp("ladder-ssh"), "hpcgate_ladder") as env:
        tag = uuid.uuid4().hex[:8]
        cid = env.add_cluster(
            f"ssh-{tag}",
            scheduler="slurm",
            access_mode=AccessMode.SSH,
            scratch_root=f"{ssh.scratch}/ladder-{tag}",
            host=ssh.host,
            port=ssh.port,
            login_user=ssh.user,
            options={
                "key_filename": ssh.key,
                "known_hosts": ssh.known_hosts,
                "hpcgate_command": [hpcgate],
            },
        )
        conns = ClusterConnections()

        def tick() -> None:
            dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
            harvest_tick(env.engine, env.factory, conns, env.settings)

        try:
            yield LadderSite(env, cid, _researcher_headers(env), tick, "ssh")
        finally:
            conns.close()


@pytest.fixture(scope="module")
def agent_ladder_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LadderSite]:
    """API (a live server) <- the real ``hpcgate agent`` process (long-polls, watches the
    end spool) -> the real Slurm. Nothing is driven by the test."""
    require_tool("sbatch", install_hint="scripts/services/slurm.sh")
    hpcgate = cluster_hpcgate()
    root = tmp_path_factory.mktemp("ladder-agent")
    with engine_env(root, "hpcgate_ladder_agent") as env:
        name = f"agent-{uuid.uuid4().hex[:6]}"
        cid = env.add_cluster(
            name,
            scheduler="slurm",
            access_mode=AccessMode.AGENT,
            scratch_root=str(root / "scratch"),
        )
        with live_server(create_app(env.settings, engine=env.engine)) as base:
            cfg = agent_config(
                env, root, base, cid, name,
                hpcgate_command=[hpcgate],
                intervals={"pull_s": 1, "harvest_s": 2, "pull_wait_s": 20},
            )  # fmt: skip
            log = (root / "agent.log").open("wb")
            cmd = [sys.executable, "-m", "hpcgate.cli", "agent", "--config"]
            agent = subprocess.Popen(
                [*cmd, str(cfg)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )

            def tick() -> None:
                if agent.poll() is not None:
                    text = (root / "agent.log").read_text(errors="replace")
                    raise AssertionError(f"the agent exited ({agent.returncode}): {text[-3000:]}")

            try:
                yield LadderSite(env, cid, _researcher_headers(env), tick, "agent")
            finally:
                agent.terminate()  # ours, by its Popen handle
                try:
                    agent.wait(30)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    agent.wait(10)
                log.close()
