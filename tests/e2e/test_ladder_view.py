"""TranSIESTA bias ladders in the portal: created in the form, run by the real SIESTA/TBtrans,
shown as a DAG and an I-V curve that match what the API says.

Two ladders of the 1-D Au chain (``hpcgate/demo_data/au_chain``: the inputs of
``tests/integration/transiesta``) run in the e2e stack's worker (local executor, the real
``siesta``/``tbtrans`` on PATH), side by side:

* one created through the New Calculation form ("TranSIESTA bias ladder": device fdf,
  electrodes read from its TS.Elecs block, biases 0, +0.1, +0.2, -0.1 V, TBtrans on; the
  pseudopotential sent through the binary picker when the server takes uploads). The
  client refuses a ladder without 0 V or with a bias twice before sending; the server's
  422 (an electrode name the device does not declare) is shown as it comes;
* one created through the API whose +0.1 V point cannot start (``DM.UseSaveDM false``:
  TranSIESTA's FATAL), so +0.2 V never runs: the partly failed ladder.

On each calculation page the DAG nodes carry the states, roles and biases of the API's
steps, and the I-V rows carry exactly the points, failed points (with their reasons) and
the partial flag of the API's ``transiesta_iv`` result. Screenshots go to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, login, page_errors, shot, wait_until
from tests.helpers.siesta_env import require_siesta, siesta_case

pytestmark = pytest.mark.e2e

BIASES = (0.0, 0.1, 0.2, -0.1)
SETTLED = {"completed", "failed", "cancelled", "rejected"}


@pytest.fixture(scope="module")
def au_dir(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """device.fdf, elec.fdf and Au.psf (the installed pseudopotential), ready to upload."""
    d = tmp_path_factory.mktemp("au-chain")
    for name, text in siesta_case("au_chain", require_siesta()).items():
        (d / name).write_text(text, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.api("user") as c:
        yield c


@pytest.fixture(scope="module")
def broken_ladder(stack: Stack, au_dir: Path, client: httpx.Client) -> int:
    """Created first (through the API) so it runs while the form is being filled in."""
    inputs = {
        n: (au_dir / n).read_text(encoding="utf-8") for n in ("device.fdf", "elec.fdf", "Au.psf")
    }
    r = client.post(
        "/calculations",
        json={
            "name": f"Au chain ladder, +0.1 V without the 0 V density ({uuid.uuid4().hex[:4]})",
            "cluster_id": stack.clusters["local-e2e"],
            "logical_queue": "default",
            "code": "siesta",
            "configuration": {
                "kind": "transiesta",
                "inputs": inputs,
                "device": "device.fdf",
                "electrodes": {"Left": "elec.fdf", "Right": "elec.fdf"},
                "biases_v": list(BIASES),
                "point_parameters": [{"bias_v": 0.1, "parameters": {"DM.UseSaveDM": False}}],
                "resources": {"tasks": 1, "walltime_s": 600},
            },
        },
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _settled(client: httpx.Client, calc_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        detail = client.get(f"/calculations/{calc_id}").json()
        return detail if detail["state"] in SETTLED else None

    return dict(wait_until(done, timeout=300, every=1))


def _iv_doc(client: httpx.Client, calc_id: int) -> dict[str, Any]:
    results = client.get(f"/calculations/{calc_id}/results").json()
    (iv,) = [a for a in results["analyses"] if a["analysis"] == "transiesta_iv"]
    assert iv["status"] == "ok", iv
    return dict(iv["data"]["data"])


def _attr_float(value: str | None) -> float | None:
    return None if value in (None, "") else float(value)


def _check_dag(page: Any, detail: dict[str, Any]) -> None:
    """Every API step is a node with its state, role and bias; every dependency an edge."""
    dag = page.locator("[data-testid=steps-dag] [data-testid=dag]")
    assert dag.get_attribute("data-layout") == "ladder"
    assert page.locator("[data-testid=steps-dag] g.dag-node").count() == len(detail["steps"])
    for step in detail["steps"]:
        node = page.locator(f"[data-testid=dag-node-{step['index']}]")
        assert node.get_attribute("data-step-id") == str(step["id"])
        assert node.get_attribute("data-state") == step["state"], step["label"]
        assert node.get_attribute("data-role") == step["ladder"]["role"]
        assert _attr_float(node.get_attribute("data-bias")) == step["ladder"].get("bias_v")
        title = node.locator("title").text_content() or ""
        assert step["label"] in title
        assert step["state"] in title
        if step["state_reason"]:
            assert step["state_reason"] in title  # the reason on hover
    edges = {
        (int(e.get_attribute("data-from")), int(e.get_attribute("data-to")))
        for e in page.locator("[data-testid=dag-edge]").all()
    }
    assert edges == {(p, s["id"]) for s in detail["steps"] for p in s["parents"]}


def _check_iv(page: Any, doc: dict[str, Any]) -> None:
    """The rows shown are the API's points, failed points and partial flag, exactly."""
    page.wait_for_selector("[data-testid=iv-chart] canvas")
    shown = [
        (
            float(row.get_attribute("data-bias")),
            float(row.get_attribute("data-current")),
            int(row.get_attribute("data-step-id")),
        )
        for row in page.locator("[data-testid=iv-point]").all()
    ]
    assert shown == [(p["bias_v"], p["current_a"], p["step_id"]) for p in doc["points"]]
    failed = {
        float(row.get_attribute("data-bias")): row.inner_text()
        for row in page.locator("[data-testid=iv-failed-point]").all()
    }
    assert sorted(failed) == sorted(f["bias_v"] for f in doc["failed"])
    for f in doc["failed"]:
        assert f["reason"] in failed[f["bias_v"]]
    assert page.locator("[data-testid=iv-pending-point]").count() == len(doc["pending"])
    badge = "iv-partial" if doc["partial"] else "iv-complete"
    assert page.locator(f"[data-testid={badge}]").count() == 1


def test_ladder_from_the_form_runs_and_shows_its_dag_and_iv(
    page: Any, stack: Stack, au_dir: Path, client: httpx.Client, broken_ladder: int
) -> None:
    name = f"Au chain ladder (e2e {uuid.uuid4().hex[:4]})"
    login(page, stack, "user")
    page.click("[data-nav=Calculations]")
    page.click("[data-testid=new-calculation]")
    page.wait_for_selector("[data-testid=page-new-calculation]")
    page.fill("input[name=name]", name)
    page.select_option("select[name=code]", "siesta")
    page.select_option("select[name=cluster]", label="local-e2e")
    page.check("input[name=kind][value=transiesta]")
    page.wait_for_selector("[data-testid=ladder-form]")
    page.set_input_files(
        "input[name=input_files]", [str(au_dir / "device.fdf"), str(au_dir / "elec.fdf")]
    )
    binary = page.locator("input[name=binary_files]").count() == 1
    if binary:  # the server takes binary uploads: the pseudopotential goes as bytes
        page.set_input_files("input[name=binary_files]", [str(au_dir / "Au.psf")])
        page.wait_for_selector("[data-testid=binary-files] >> text=Au.psf")
    else:
        page.set_input_files("input[name=input_files]", [str(au_dir / "Au.psf")])
    # The device is found by its SolutionMethod, its electrodes from TS.Elecs.
    page.wait_for_function(
        "document.querySelector('select[name=ladder_device]').value === 'device.fdf'"
    )
    page.wait_for_selector("input[name=electrode_name_1]")
    assert page.input_value("input[name=electrode_name_0]") == "Left"
    assert page.input_value("input[name=electrode_name_1]") == "Right"
    assert page.input_value("select[name=electrode_fdf_0]") == "elec.fdf"

    # Refused before sending: no 0 V, then a bias twice.
    page.fill("input[name=ladder_biases]", "0.1, 0.2")
    page.wait_for_selector("[data-testid=ladder-bias-note]:has-text('must include 0 V')")
    page.wait_for_selector("[data-testid=config-problem]:has-text('must include 0 V')")
    page.fill("input[name=ladder_biases]", "0, 0.1, 0.10, -0.1")
    page.wait_for_selector("[data-testid=ladder-bias-note]:has-text('listed twice')")
    page.fill("input[name=ladder_biases]", ", ".join(f"{b:g}" for b in BIASES))
    page.wait_for_selector("[data-testid=ladder-bias-note]:has-text('4 point(s)')")

    # The server's 422, as it comes: an electrode the device does not declare.
    page.fill("input[name=electrode_name_1]", "Middle")
    page.click("[data-testid=preview]")
    page.wait_for_selector("[role=alert]:has-text('Middle')")
    assert "TS.Elecs" in page.inner_text("[role=alert]")
    page.fill("input[name=electrode_name_1]", "Right")

    page.click("[data-testid=preview]")
    preview = page.wait_for_selector("[data-testid=preview-result]")
    assert "9 step(s)" in preview.inner_text()  # electrode, 4 points, 4 TBtrans
    assert "tbtrans -0.1 V" in preview.inner_text()
    shot(page, "20-ladder-create")
    page.click("[data-testid=create]")
    page.wait_for_selector("[data-testid=page-calculation]")
    calc_id = int(re.search(r"/calculations/(\d+)", page.url).group(1))  # type: ignore[union-attr]

    detail = _settled(client, calc_id)
    assert detail["state"] == "completed", [
        (s["label"], s["state"], s["state_reason"]) for s in detail["steps"]
    ]
    config = detail["configuration"]
    assert config["kind"] == "transiesta"
    assert config["biases_v"] == list(BIASES)
    assert config["electrodes"] == {"Left": "elec.fdf", "Right": "elec.fdf"}
    assert ("Au.psf" in (config.get("binary_inputs") or {})) is binary
    doc = _iv_doc(client, calc_id)
    assert doc["partial"] is False
    assert doc["failed"] == []
    assert doc["pending"] == []
    assert [p["bias_v"] for p in doc["points"]] == sorted(BIASES)
    currents = {p["bias_v"]: p["current_a"] for p in doc["points"]}
    assert currents[0.2] > currents[0.1] > 0 > currents[-0.1]  # real transport, not zeros

    page.reload()
    page.wait_for_selector("h1 [data-state=completed]")
    page.wait_for_selector("[data-testid=iv-complete]")
    _check_dag(page, detail)
    _check_iv(page, doc)
    shot(page, "21-ladder-detail")
    assert page_errors(page) == []


def test_partly_failed_ladder_marks_its_failed_points(
    page: Any, stack: Stack, client: httpx.Client, broken_ladder: int
) -> None:
    detail = _settled(client, broken_ladder)
    assert detail["state"] == "failed"
    steps = {s["label"]: s for s in detail["steps"]}
    assert steps["device +0.1 V"]["state"] == "invalid"
    assert steps["device +0.2 V"]["state"] == "cancelled"
    doc = _iv_doc(client, broken_ladder)
    assert doc["partial"] is True
    assert sorted(f["bias_v"] for f in doc["failed"]) == [0.1, 0.2]
    assert [p["bias_v"] for p in doc["points"]] == [-0.1, 0.0]

    login(page, stack, "user", f"/calculations/{broken_ladder}")
    page.wait_for_selector("h1 [data-state=failed]")
    page.wait_for_selector("[data-testid=iv-partial]")
    _check_dag(page, detail)
    _check_iv(page, doc)
    failed_row = page.locator("[data-testid=iv-failed-point][data-bias='0.1']").inner_text()
    assert "FATAL: ts: You have to calculate the 0 V" in failed_row
    # The failed point's node: marked as failed, its reason pinned below on a click.
    bad = steps["device +0.1 V"]
    node = page.locator(f"[data-testid=dag-node-{bad['index']}]")
    assert "✗ invalid" in (node.locator("text.dag-state").text_content() or "")
    node.click()
    reason = page.locator("[data-testid=dag-detail-reason]").text_content() or ""
    assert reason == bad["state_reason"]
    assert "FATAL: ts:" in reason
    shot(page, "22-ladder-partly-failed")
    assert page_errors(page) == []
