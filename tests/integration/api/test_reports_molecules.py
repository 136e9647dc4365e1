"""Analyses catalogue, molecules (register, list, compare) and report downloads, end to end:
real pw.x runs through the local executor, then the API renders HTML/PDF/CSV/JSON reports."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hpcgate.api.app import create_app
from hpcgate.db.models import User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.states import CalculationState
from hpcgate.services.cluster_ticks import harvest_tick
from hpcgate.services.connections import ClusterConnections
from hpcgate.services.dispatch import dispatch_tick
from tests.helpers.api import access_token
from tests.helpers.ci import missing
from tests.helpers.engine_env import EngineEnv, engine_env
from tests.integration.engine.test_slurm_qe import H2

pytestmark = pytest.mark.integration

H2_XYZ = "2\nhydrogen\nH 0.0 0.0 0.0\nH 0.74 0.0 0.0\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineEnv]:
    with engine_env(tmp_path_factory.mktemp("reports"), "hpcgate_reports") as e:
        yield e


@pytest.fixture(scope="module")
def client(env: EngineEnv) -> Iterator[TestClient]:
    with session_scope(env.factory) as s:
        user = s.get(User, env.user_id)
        assert user is not None
        token = access_token(user, env.settings)
    with TestClient(create_app(env.settings, engine=env.engine)) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def test_catalogue_lists_dependencies(client: TestClient) -> None:
    items = {a["name"]: a for a in client.get("/analyses").json()}
    assert items["energy"]["requires"] == ["scf_convergence"]
    assert items["iv_curve"]["requires"] == ["current"]
    assert items["qe_energy"]["codes"] == ["qe"]


def test_molecules_register_and_refuse(client: TestClient) -> None:
    r = client.post("/molecules", json={"name": "H2", "format": "xyz", "text": H2_XYZ})
    assert r.status_code == 201, r.text
    assert r.json()["formula"] == "H2"
    assert r.json()["atoms"][1]["xyz"] == [0.74, 0.0, 0.0]
    fdf = (
        "AtomicCoordinatesFormat Ang\n%block ChemicalSpeciesLabel\n 1 8 O\n 2 1 H\n"
        "%endblock ChemicalSpeciesLabel\n%block AtomicCoordinatesAndAtomicSpecies\n"
        " 0.0 0.0 0.0 1\n 0.757 0.586 0.0 2\n -0.757 0.586 0.0 2\n"
        "%endblock AtomicCoordinatesAndAtomicSpecies\n"
    )
    r = client.post("/molecules", json={"name": "water", "format": "fdf", "text": fdf})
    assert r.status_code == 201, r.text
    assert r.json()["formula"] == "H2O"
    for bad, fragment in [
        ({"name": "H2", "format": "xyz", "text": H2_XYZ}, "already exists"),
        ({"name": "x", "format": "xyz", "text": "3\nc\nH 0 0 0\n"}, "3 atoms announced"),
        ({"name": "y", "format": "xyz", "text": "1\nc\nXx1 0 0 zero\n"}, "xyz line 3"),
        ({"name": "z", "format": "fdf", "text": "SystemLabel x\n"}, "no AtomicCoordinates"),
    ]:
        r = client.post("/molecules", json=bad)
        assert r.status_code in (409, 422), r.text
        assert fragment in r.json()["detail"]
    names = [m["name"] for m in client.get("/molecules").json()]
    assert {"H2", "water"} <= set(names)


def test_reports_and_comparison(env: EngineEnv, client: TestClient, tmp_path: Path) -> None:
    if shutil.which("pw.x") is None:
        missing("Quantum ESPRESSO is not installed (scripts/services/qe.sh)")
    molecule = client.get("/molecules").json()[0]
    cid = env.add_cluster(
        "reports-local",
        scheduler="local",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(tmp_path / "scratch"),
        queues={"default": "local"},
    )
    ids = []
    for eamps in ((0.0, 0.01), (0.0, 0.02)):
        r = client.post(
            "/calculations",
            json={
                "name": f"H2 field chain {eamps[-1]}",
                "cluster_id": cid,
                "molecule_id": molecule["id"],
                "logical_queue": "default",
                "code": "qe",
                "analyses": ["qe_scf_convergence", "qe_energy"],
                "configuration": {
                    "kind": "chain",
                    "inputs": {"pw.in": H2},
                    "variants": [
                        {"label": f"E={e}", "parameters": {"system.eamp": e}} for e in eamps
                    ],
                },
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    conns = ClusterConnections()

    def tick() -> None:
        dispatch_tick(env.engine, env.factory, conns, env.settings, claimed_by="w")
        harvest_tick(env.engine, env.factory, conns, env.settings)

    for calc_id in ids:
        assert env.run_until_settled(calc_id, tick, timeout=120).state is CalculationState.COMPLETED
    conns.close()
    calc_id = ids[0]
    html = client.get(f"/calculations/{calc_id}/report.html")
    assert html.status_code == 200
    assert "H2 field chain" in html.text
    assert "<img" in html.text
    pdf = client.get(f"/calculations/{calc_id}/report.pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        path = tmp_path / "r.pdf"
        path.write_bytes(pdf.content)
        text = subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "H2 field chain" in text
    data = client.get(f"/calculations/{calc_id}/report.json").json()
    assert set(data["analyses"]) == {"qe_scf_convergence", "qe_energy"}
    assert [s["validation"] for s in data["steps"]] == ["converged", "converged"]
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/calculations/{calc_id}/report.csv").content))
    assert "steps.csv" in archive.namelist()
    # Downloads are never swallowed by the portal, even when a browser asks for HTML.
    nav = client.get(f"/calculations/{calc_id}/report.json", headers={"Accept": "text/html"})
    assert json.loads(nav.text)["calculation"]["id"] == calc_id
    side_by_side = client.get(
        f"/molecules/{molecule['id']}/compare", params={"analysis": "qe_energy"}
    ).json()
    assert sorted(c["calculation_id"] for c in side_by_side) == sorted(ids)
    assert {c["status"] for c in side_by_side} == {"ok"}
    assert client.get("/calculations/999999/report.pdf").status_code == 404
    assert client.get(f"/calculations/{calc_id}/report.docx").status_code == 422
