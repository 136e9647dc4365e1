"""The real SIESTA reads binary inputs that went through the upload, the database and staging.

A reference H2O SCF runs directly (``siesta`` in a temporary directory) and leaves its density
matrix ``h2o.DM`` (Fortran unformatted: not text). A calculation is then created through the
live API with only the fdf as text; ``H.psf``, ``O.psf`` and that ``h2o.DM`` go as multipart
binary files and ``DM.UseSaveDM`` as a parameter. The worker (local executor) stages them and
runs SIESTA, which must say it read the DM and land on the reference energy: the plugin's
pseudopotential check accepted binary ``.psf`` files, and the bytes arrived intact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hpcgate.api.app import create_app
from hpcgate.db.models import User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.states import CalculationState
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.api import auth_headers
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.helpers.live_api import live_server
from tests.helpers.siesta_env import (
    DM_READ_MARKER,
    final_energy_ev,
    require_siesta,
    run_siesta,
    siesta_case,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path, postgres_available: str) -> Iterator[EngineEnv]:
    with engine_env(tmp_path, "hpcgate_binsiesta") as e:
        yield e


def test_siesta_reads_uploaded_pseudopotentials_and_density_matrix(
    env: EngineEnv, tmp_path: Path
) -> None:
    tools = require_siesta()
    files = siesta_case("h2o", tools)
    reference = run_siesta(tmp_path / "reference", files, "h2o.fdf")
    dm = (tmp_path / "reference" / "h2o.DM").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        dm.decode("utf-8")

    cid = env.add_cluster(
        "laptop",
        scheduler="local",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
        queues={"default": "local"},
    )
    body = {
        "name": "H2O from an uploaded DM",
        "cluster_id": cid,
        "logical_queue": "default",
        "code": "siesta",
        "configuration": {
            "inputs": {"h2o.fdf": files["h2o.fdf"]},
            "main_input": "h2o.fdf",
            "parameters": {"DM.UseSaveDM": True},
        },
    }
    binary = {
        "H.psf": files["H.psf"].encode(),
        "O.psf": files["O.psf"].encode(),
        "h2o.DM": dm,
    }
    with session_scope(env.factory) as s:
        user = s.get(User, env.user_id)
        assert user is not None
        headers = auth_headers(user, env.settings)
    with live_server(create_app(env.settings, engine=env.engine)) as base:
        r = httpx.post(
            f"{base}/calculations/upload",
            headers=headers,
            files=[("calculation", (None, json.dumps(body).encode(), "application/json"))]
            + [("file", (name, data, "application/octet-stream")) for name, data in binary.items()],
            timeout=120,
        )
    assert r.status_code == 201, r.text
    calc_id = r.json()["id"]
    (step,) = env.steps(calc_id)
    assert set(step.spec["files"]) == {"h2o.fdf"}  # the .psf files are not copied as text
    assert set(step.spec["blobs"]) == set(binary)

    conns = ClusterConnections()

    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    try:
        calc = env.run_until_settled(calc_id, tick, timeout=180)
    finally:
        conns.close()
    (step,) = env.steps(calc_id)
    assert calc.state is CalculationState.COMPLETED, (step.state, step.state_reason)
    workdir = Path(step.workdir or "")
    for name in ("H.psf", "O.psf"):
        assert (workdir / name).read_bytes() == binary[name]
    out = workdir / str(step.spec["context"]["output"])
    assert DM_READ_MARKER in out.read_text(errors="replace")
    assert final_energy_ev(out) == pytest.approx(final_energy_ev(reference), abs=1e-3)
