"""A TranSIESTA ladder through the HTTP API: its steps, edges, staged files, scripts — and
every refusal as a 422 that names the problem, with nothing written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, QueueMapping, Step, StepEdge
from hpcgate.db.models.users import User
from hpcgate.settings import Settings
from tests.helpers.api import api_client, auth_headers, new_cluster, new_user

pytestmark = pytest.mark.integration

ELECTRODES = {"Left": "elec.fdf", "Right": "elec.fdf"}


@pytest.fixture
def api(settings: Settings, db_engine: Engine) -> Iterator[tuple[TestClient, dict[str, str], int]]:
    user: User = new_user(db_engine)
    cluster = new_cluster(db_engine)
    with Session(db_engine) as s:
        s.add(QueueMapping(cluster_id=cluster.id, logical_queue="default", partition="debug"))
        s.commit()
    with api_client(settings, db_engine) as client:
        yield client, auth_headers(user, settings), cluster.id


def _body(cluster_id: int, files: dict[str, str], **over: Any) -> dict[str, Any]:
    configuration: dict[str, Any] = {
        "kind": "transiesta",
        "inputs": files,
        "device": "device.fdf",
        "electrodes": ELECTRODES,
        "biases_v": [0.0, 0.1, 0.2, -0.1],
        "resources": {"tasks": 1, "walltime_s": 600},
    }
    configuration.update(over)
    return {
        "name": "Au chain ladder",
        "cluster_id": cluster_id,
        "logical_queue": "default",
        "code": "siesta",
        "configuration": configuration,
    }


def _without_block(text: str, name: str) -> str:
    out = re.sub(
        rf"(?ims)^%block {re.escape(name)}\s*$.*?^%endblock {re.escape(name)}\s*$", "", text
    )
    assert out != text
    return out


def _fdf_value(text: str, key: str) -> str | None:
    """The first occurrence of ``key`` (SIESTA's rule), any spelling."""
    pattern = re.escape(key).replace(r"\.", "[._-]?")
    m = re.search(rf"(?im)^\s*{pattern}\s+(.+?)\s*$", text)
    return m.group(1) if m else None


def test_ladder_steps_edges_and_files(
    api: tuple[TestClient, dict[str, str], int], db_engine: Engine, au_chain: dict[str, str]
) -> None:
    client, headers, cid = api
    r = client.post("/calculations", json=_body(cid, au_chain), headers=headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["kind"] == "transiesta"
    assert "transiesta_iv" in body["analyses"]
    by_label = {s["label"]: s for s in body["steps"]}
    assert list(by_label) == [
        "electrode elec.fdf",
        "device 0 V",
        "device +0.1 V",
        "device +0.2 V",
        "device -0.1 V",
        "tbtrans 0 V",
        "tbtrans +0.1 V",
        "tbtrans +0.2 V",
        "tbtrans -0.1 V",
    ]
    ids = {label: s["id"] for label, s in by_label.items()}
    elec = ids["electrode elec.fdf"]
    assert by_label["device +0.2 V"]["parents"] == sorted([elec, ids["device +0.1 V"]])
    assert by_label["device -0.1 V"]["parents"] == sorted([elec, ids["device 0 V"]])
    assert by_label["tbtrans -0.1 V"]["parents"] == [ids["device -0.1 V"]]
    assert by_label["tbtrans 0 V"]["template"] == "tbtrans.j2"
    assert by_label["device 0 V"]["template"] == "siesta.j2"
    assert by_label["device -0.1 V"]["ladder"] == {
        "role": "device",
        "fdf": "device.fdf",
        "bias_v": -0.1,
        "previous_bias_v": 0.0,
        "branch": "negative",
    }

    with Session(db_engine) as s:
        steps = {st.label: st for st in s.scalars(select(Step).where(Step.id.in_(ids.values())))}
        edges = {
            (e.parent_id, e.child_id): e.inherit
            for e in s.scalars(select(StepEdge).where(StepEdge.child_id.in_(ids.values())))
        }
    assert edges[(elec, ids["device +0.1 V"])] == ["*.TSHS"]
    assert edges[(ids["device 0 V"], ids["device +0.1 V"])] == ["*.TSDE"]
    assert edges[(ids["device +0.1 V"], ids["tbtrans +0.1 V"])] == ["*.TSHS"]

    electrode = steps["electrode elec.fdf"].spec
    assert sorted(electrode["files"]) == ["Au.psf", "elec.fdf"]  # not the device's fdf
    assert electrode["context"]["program_args"] == ["--electrode"]
    assert electrode["context"]["output"] == "elec.out"
    zero = steps["device 0 V"].spec["files"]["device.fdf"]
    up = steps["device +0.2 V"].spec["files"]["device.fdf"]
    assert _fdf_value(zero, "TS.Voltage") == "0.0 eV"
    assert _fdf_value(up, "TS.Voltage") == "0.2 eV"
    assert _fdf_value(up, "DM.UseSaveDM") == "true"
    assert _fdf_value(zero, "DM.UseSaveDM") is None
    assert _fdf_value(up, "TS.DE.Save") == "true"
    assert _fdf_value(up, "TS.HS.Save") == "true"
    tbt = steps["tbtrans +0.2 V"].spec
    assert sorted(tbt["files"]) == ["device.fdf"]  # TBtrans needs no pseudopotential
    assert _fdf_value(tbt["files"]["device.fdf"], "TS.Voltage") == "0.2 eV"
    assert tbt["context"]["program"] == "tbtrans"
    assert tbt["analyses"] == ["transiesta_iv"]
    assert steps["device 0 V"].spec["analyses"] == []

    detail = client.get(f"/steps/{ids['device +0.1 V']}", headers=headers).json()
    assert detail["inherit"] == ["*.TSDE", "*.TSHS"]
    assert detail["variant"] == {"TS.Voltage": 0.1}

    # The preview renders every job: electrode args, TBtrans body, per-edge copies.
    p = client.post("/calculations/preview", json=_body(cid, au_chain), headers=headers)
    assert p.status_code == 200, p.text
    scripts = {s["label"]: s["script"] for s in p.json()["steps"]}
    assert "siesta --electrode < elec.fdf > elec.out" in scripts["electrode elec.fdf"]
    assert "tbtrans < device.fdf > tbtrans.out" in scripts["tbtrans +0.1 V"]
    copies = re.findall(r"for f in (\S+)/(\S+); do cp", scripts["device +0.1 V"])
    assert sorted(pattern for _, pattern in copies) == ["*.TSDE", "*.TSHS"]


@pytest.mark.parametrize(
    ("over", "fragment"),
    [
        ({"biases_v": [0.1, 0.2]}, "must include 0 V"),
        ({"biases_v": [0, 0.1, -0.1, 0.1]}, "+0.1 V is listed twice"),
        (
            {"electrodes": {"Left": "elec.fdf", "Middle": "elec.fdf"}},
            "unknown electrode(s) 'Middle'",
        ),
        ({"electrodes": {"Left": "elec.fdf"}}, "uses electrode(s) 'Right'"),
        ({"electrodes": {"Left": "elec.fdf", "Right": "other.fdf"}}, "'other.fdf', which is not"),
        (
            {"device": "elec.fdf", "electrodes": {"Left": "device.fdf"}},
            "SolutionMethod is transiesta",
        ),
        ({"parameters": {"TS.Voltage": 1}}, "must not set TS.Voltage"),
        ({"parameters": {"MeshCutoff": "80\nRy"}}, "single line"),
    ],
)
def test_refusals_are_422_and_write_nothing(
    api: tuple[TestClient, dict[str, str], int],
    db_engine: Engine,
    au_chain: dict[str, str],
    over: dict[str, Any],
    fragment: str,
) -> None:
    client, headers, cid = api
    with Session(db_engine) as s:
        before = s.scalar(select(func.count()).select_from(Calculation))
    r = client.post("/calculations", json=_body(cid, au_chain, **over), headers=headers)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["detail"]
    with Session(db_engine) as s:
        assert s.scalar(select(func.count()).select_from(Calculation)) == before


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            lambda f: {
                **f,
                "device.fdf": f["device.fdf"].replace("TSHS elec.TSHS", "TSHS x.TSHS", 1),
            },
            "reads 'x.TSHS', but its electrode input elec.fdf (SystemLabel 'elec') writes "
            "'elec.TSHS'",
        ),
        (
            lambda f: {
                **f,
                "device.fdf": f["device.fdf"].replace("TSHS elec.TSHS", "TSHS ../e/elec.TSHS", 1),
            },
            "give a plain file name",
        ),
        (
            lambda f: {
                **f,
                "device.fdf": f["device.fdf"].replace(
                    "SolutionMethod transiesta", "SolutionMethod diagon"
                ),
            },
            "needs SolutionMethod transiesta",
        ),
        (
            lambda f: {
                **f,
                "device.fdf": f["device.fdf"].replace("SystemLabel device", "SystemLabel elec"),
            },
            "has the SystemLabel 'elec' of an electrode input",
        ),
        (
            lambda f: {k: v for k, v in f.items() if k != "Au.psf"},
            "no pseudopotential file for species Au",
        ),
        (
            lambda f: {**f, "device.fdf": _without_block(f["device.fdf"], "TS.Elecs")},
            "device.fdf: no %block TS.Elecs naming the electrodes",
        ),
        (
            lambda f: {**f, "device.fdf": _without_block(f["device.fdf"], "TS.Elec.Right")},
            "device.fdf: no %block TS.Elec.Right for electrode 'Right'",
        ),
        (
            lambda f: {**f, "device.fdf": "\x00\x1b[31m%block TS.Elecs\n" + "\ufffd" * 50},
            "device.fdf",
        ),
    ],
)
def test_inconsistent_inputs_are_refused(
    api: tuple[TestClient, dict[str, str], int],
    au_chain: dict[str, str],
    edit: Any,
    fragment: str,
) -> None:
    client, headers, cid = api
    r = client.post("/calculations", json=_body(cid, edit(au_chain)), headers=headers)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["detail"]
    assert "/tmp" not in r.json()["detail"]  # the server's private scratch paths stay private


def test_a_ladder_is_a_siesta_calculation(
    api: tuple[TestClient, dict[str, str], int], au_chain: dict[str, str]
) -> None:
    client, headers, cid = api
    r = client.post("/calculations", json={**_body(cid, au_chain), "code": "qe"}, headers=headers)
    assert r.status_code == 422
    assert "use code 'siesta'" in r.json()["detail"]


def test_different_electrodes_run_as_two_steps(
    api: tuple[TestClient, dict[str, str], int], db_engine: Engine, au_chain: dict[str, str]
) -> None:
    """Left and right from their own fdfs: two electrode steps, each point needs both."""
    files = dict(au_chain)
    for side in ("left", "right"):
        files[f"{side}.fdf"] = au_chain["elec.fdf"].replace(
            "SystemLabel elec", f"SystemLabel elec_{side}"
        )
    files["device.fdf"] = (
        au_chain["device.fdf"]
        .replace(
            "%block TS.Elec.Left\n  TSHS elec.TSHS", "%block TS.Elec.Left\n  TSHS elec_left.TSHS"
        )
        .replace(
            "%block TS.Elec.Right\n  TSHS elec.TSHS",
            "%block TS.Elec.Right\n  TSHS ./elec_right.TSHS",
        )
    )
    del files["elec.fdf"]
    client, headers, cid = api
    body = _body(cid, files, electrodes={"Left": "left.fdf", "Right": "right.fdf"})
    r = client.post("/calculations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    steps = {s["label"]: s for s in r.json()["steps"]}
    left, right = steps["electrode left.fdf"], steps["electrode right.fdf"]
    assert left["ladder"]["electrodes"] == ["Left"]
    assert right["ladder"]["electrodes"] == ["Right"]
    assert steps["device 0 V"]["parents"] == sorted([left["id"], right["id"]])
    with Session(db_engine) as s:
        spec = s.get(Step, right["id"]).spec  # type: ignore[union-attr]
    assert spec["context"]["output"] == "elec_right.out"
    assert sorted(spec["files"]) == ["Au.psf", "right.fdf"]
    # Swapped mapping: each TS.Elec block reads the other electrode's TSHS.
    swapped = _body(cid, files, electrodes={"Left": "right.fdf", "Right": "left.fdf"})
    r = client.post("/calculations", json=swapped, headers=headers)
    assert r.status_code == 422
    assert "TS.Elec.Left reads 'elec_left.TSHS'" in r.json()["detail"]
