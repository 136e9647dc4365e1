"""Program paths per cluster (``options.programs``) through the API: refused with a 422 when
unsafe, and the job scripts of a calculation on that cluster run the configured path."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from sqlalchemy import Engine

from hpcgate.domain.access import Role
from hpcgate.settings import Settings
from tests.helpers.api import api_client, auth_headers, new_user, unique

pytestmark = pytest.mark.integration

H2 = "&control\n  calculation='scf'\n/\n&system\n  ecutwfc=25.0\n/\n&electrons\n/\n"


def _cluster(**options: Any) -> dict[str, Any]:
    return {
        "name": unique("prog-"),
        "scheduler": "slurm",
        "access_mode": "agent",
        "scratch_root": "/scratch/hpcgate",
        "options": options,
        "queues": [{"logical_queue": "default", "partition": "debug", "max_walltime_s": 3600}],
    }


@pytest.mark.parametrize(
    "programs",
    [
        {"siesta": "siesta"},
        {"siesta": "/opt/siesta/bin/siesta; rm -rf /"},
        {"siesta": "/opt/$(whoami)/siesta"},
        {"siesta": "/opt/../etc/siesta"},
        {"bad name": "/opt/x"},
        ["/opt/siesta/bin/siesta"],
    ],
)
def test_unsafe_program_paths_are_refused(
    settings: Settings, db_engine: Engine, programs: Any
) -> None:
    admin = auth_headers(new_user(db_engine, role=Role.ADMIN), settings)
    with api_client(settings, db_engine) as client:
        r = client.post("/clusters", json=_cluster(programs=programs), headers=admin)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "invalid_input"
        assert "options.programs" in r.json()["detail"]
        # and on update of an existing cluster, which keeps its old options
        ok = client.post("/clusters", json=_cluster(), headers=admin)
        assert ok.status_code == 201, ok.text
        cid = ok.json()["id"]
        r = client.patch(
            f"/clusters/{cid}", json={"options": {"programs": programs}}, headers=admin
        )
        assert r.status_code == 422, r.text
        assert "options.programs" in r.json()["detail"]
        assert client.get(f"/clusters/{cid}/config", headers=admin).json()["options"] == {}


def test_job_scripts_run_the_configured_program(settings: Settings, db_engine: Engine) -> None:
    admin = auth_headers(new_user(db_engine, role=Role.ADMIN), settings)
    user = new_user(db_engine)
    pw = "/opt/qe-6.7/bin/pw.x"
    with api_client(settings, db_engine) as client:
        r = client.post(
            "/clusters",
            json=_cluster(programs={"pw.x": pw, "siesta": "/opt/siesta/bin/siesta"}),
            headers=admin,
        )
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        body = {
            "name": "H2 with a site pw.x",
            "cluster_id": cid,
            "logical_queue": "default",
            "code": "qe",
            "configuration": {
                "kind": "chain",
                "inputs": {"pw.in": H2},
                "variants": [{"label": f"E{i}", "parameters": {"ecutwfc": 20 + i}} for i in (0, 1)],
                "resources": {"tasks": 1, "walltime_s": 600},
            },
        }
        r = client.post("/calculations/preview", json=body, headers=auth_headers(user, settings))
        assert r.status_code == 200, r.text
        for step in r.json()["steps"]:
            command = next(line for line in step["script"].splitlines() if " -in " in line)
            assert shlex.split(command)[0] == pw
        # Without the option the bare name is run (found on the job's PATH).
        r = client.patch(f"/clusters/{cid}", json={"options": {}}, headers=admin)
        assert r.status_code == 200, r.text
        r = client.post("/calculations/preview", json=body, headers=auth_headers(user, settings))
        command = next(line for line in r.json()["steps"][0]["script"].splitlines()
                       if " -in " in line)  # fmt: skip
        assert shlex.split(command)[0] == "pw.x"
