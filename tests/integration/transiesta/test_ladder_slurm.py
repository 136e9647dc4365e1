"""Complete TranSIESTA ladders through hpcgate: API -> worker (SSH mode) -> the real Slurm.

Two ladders of the 1-D Au chain run side by side (one wait for both):

* the full one — electrode, 0 V, +0.1, +0.2 and -0.1 V, TBtrans per point — completes, and
  its I-V points are the currents of the same inputs run directly with ``siesta`` and
  ``tbtrans`` (the session's reference, computed in conftest, never a constant);
* the same ladder with +0.1 V made impossible (``DM.UseSaveDM false``: TranSIESTA refuses a
  finite bias without the 0 V density) fails there with TranSIESTA's own FATAL as the
  reason; ``afterok`` stops the rest of that branch (+0.2 V never runs), the other branch
  still runs, and the I-V result is ``partial`` with the failed and cancelled points listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hpcgate.domain.states import CalculationState, StepState
from tests.helpers.api import api_client
from tests.helpers.engine_env import EngineEnv
from tests.integration.transiesta.conftest import BIASES, LadderSite, Reference

pytestmark = [pytest.mark.integration, pytest.mark.slurm, pytest.mark.ssh]


@dataclass
class Ladders:
    env: EngineEnv
    full: dict[str, Any]  # GET /calculations/{id} after it settled
    broken: dict[str, Any]
    results: dict[int, dict[str, Any]]  # calculation id -> GET .../results


def _body(cluster_id: int, files: dict[str, str], name: str, **over: Any) -> dict[str, Any]:
    return {
        "name": name,
        "cluster_id": cluster_id,
        "logical_queue": "default",
        "code": "siesta",
        "configuration": {
            "kind": "transiesta",
            "inputs": files,
            "device": "device.fdf",
            "electrodes": {"Left": "elec.fdf", "Right": "elec.fdf"},
            "biases_v": list(BIASES),
            "resources": {"tasks": 1, "walltime_s": 600},
            **over,
        },
    }


@pytest.fixture(scope="module")
def ladders(ssh_ladder_site: LadderSite, au_chain: dict[str, str], reference: Reference) -> Ladders:
    site = ssh_ladder_site
    env, cid, headers = site.env, site.cluster_id, site.headers
    with api_client(env.settings, env.engine) as client:
        full = _create(client, headers, _body(cid, au_chain, "Au chain ladder"))
        broken = _create(
            client,
            headers,
            _body(
                cid,
                au_chain,
                "Au chain ladder, +0.1 V without the 0 V density",
                point_parameters=[{"bias_v": 0.1, "parameters": {"DM.UseSaveDM": False}}],
            ),
        )
        for calc_id in (full, broken):
            env.run_until_settled(calc_id, site.tick, timeout=300, every=0.5)
        detail = {
            c: client.get(f"/calculations/{c}", headers=headers).json() for c in (full, broken)
        }
        results = {
            c: client.get(f"/calculations/{c}/results", headers=headers).json()
            for c in (full, broken)
        }
    return Ladders(env, detail[full], detail[broken], results)


def _create(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> int:
    r = client.post("/calculations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _iv(results: dict[str, Any]) -> dict[str, Any]:
    (iv,) = [a for a in results["analyses"] if a["analysis"] == "transiesta_iv"]
    assert iv["status"] == "ok", iv
    return dict(iv["data"])


def _steps(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["label"]: s for s in detail["steps"]}


def test_full_ladder_completes_with_the_directly_computed_currents(
    ladders: Ladders, reference: Reference
) -> None:
    detail = ladders.full
    assert detail["state"] == CalculationState.COMPLETED.value, [
        (s["label"], s["state"], s["state_reason"]) for s in detail["steps"]
    ]
    steps = _steps(detail)
    assert len(steps) == 1 + 2 * len(BIASES)
    assert all(s["state"] == StepState.HARVESTED.value for s in steps.values())
    assert len({s["scheduler_job_id"] for s in steps.values()}) == len(steps)  # one job each
    iv = _iv(ladders.results[detail["id"]])
    doc = iv["data"]
    assert doc["partial"] is False
    assert doc["failed"] == []
    assert doc["pending"] == []
    assert [p["bias_v"] for p in doc["points"]] == sorted(BIASES)
    for point in doc["points"]:
        ref = reference.points[point["bias_v"]]
        # The same inputs run by hand: the same physics, to the digits each source prints.
        assert point["current_stdout_a"] == ref.current_stdout_a
        assert point["current_a"] == pytest.approx(ref.current_nc_a, rel=1e-9, abs=1e-25)
        assert point["agree"] is True
        assert point["bias_mismatch"] is False  # TBtrans ran at the point's own bias
        assert point["label"] == f"tbtrans {_v(point['bias_v'])}"
        assert point["step_id"] == steps[point["label"]]["id"]
    currents = {p["bias_v"]: p["current_a"] for p in doc["points"]}
    assert currents[0.2] > currents[0.1] > 0 > currents[-0.1]
    assert iv["summary"]["points"] == len(BIASES)
    (series,) = iv["series"]
    assert series["x"] == sorted(BIASES)


def test_every_point_started_from_its_branch_predecessor(ladders: Ladders) -> None:
    steps = _steps(ladders.full)
    for label in ("device +0.1 V", "device +0.2 V", "device -0.1 V"):
        out = Path(steps[label]["workdir"]) / "device.out"
        text = out.read_text(errors="replace")
        assert "Attempting to read DM, EDM from TSDE file... Succeeded..." in text, label
    zero = (Path(steps["device 0 V"]["workdir"]) / "device.out").read_text(errors="replace")
    assert "from TSDE file... Succeeded" not in zero
    # The electrode ran once, as an electrode, and handed only its TSHS over.
    elec = Path(steps["electrode elec.fdf"]["workdir"])
    assert (elec / "elec.TSHS").is_file()
    assert not (Path(steps["device 0 V"]["workdir"]) / "elec.TSDE").exists()


def test_a_failed_point_stops_its_branch_and_the_iv_is_partial(
    ladders: Ladders, reference: Reference
) -> None:
    detail = ladders.broken
    steps = _steps(detail)
    assert detail["state"] == CalculationState.FAILED.value
    bad = steps["device +0.1 V"]
    assert bad["state"] == StepState.INVALID.value
    assert "FATAL: ts: You have to calculate the 0 V" in bad["state_reason"]
    assert "device +0.1 V" in (detail["state_reason"] or "")
    # afterok: nothing after +0.1 V on its side ran, the other branch did.
    for label in ("device +0.2 V", "tbtrans +0.1 V", "tbtrans +0.2 V"):
        assert steps[label]["state"] == StepState.CANCELLED.value, label
        assert not (Path(steps[label]["workdir"]) / "device.out").exists()
        assert not (Path(steps[label]["workdir"]) / "tbtrans.out").exists()
    for label in ("device 0 V", "device -0.1 V", "tbtrans 0 V", "tbtrans -0.1 V"):
        assert steps[label]["state"] == StepState.HARVESTED.value, label

    doc = _iv(ladders.results[detail["id"]])["data"]
    assert doc["partial"] is True
    assert [p["bias_v"] for p in doc["points"]] == [-0.1, 0.0]
    for point in doc["points"]:
        assert point["current_stdout_a"] == reference.points[point["bias_v"]].current_stdout_a
    failed = {f["bias_v"]: f for f in doc["failed"]}
    assert sorted(failed) == [0.1, 0.2]
    assert "FATAL: ts: You have to calculate the 0 V" in failed[0.1]["reason"]
    assert failed[0.1]["step_id"] == bad["id"]
    assert failed[0.2]["reason"].startswith("not run: device +0.1 V did not succeed")
    assert doc["pending"] == []


def _v(bias: float) -> str:
    return "0 V" if bias == 0 else f"{bias:+.6g} V"
