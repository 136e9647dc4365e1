"""A model's predictions against DFT in the portal (``/models/:id/accuracy``).

Seeded in the e2e stack's database: SIESTA calculations whose stored ``validation`` results
are the real validator's verdicts on the shared SIESTA fixtures, a registered model, and
predictions stored through the API (an admin's ``POST /predictions``, the creation path the
ML-API uses). A researcher opens the page from the Models page: the parity plot's canvas,
MAE and RMSE as computed here with numpy, calculation links, selecting a pair by a click on
the plot or on a row.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import numpy as np
import pytest

from hpcgate.codes.validation import validate_path
from hpcgate.db.models import Calculation, ExtractedResult, Step
from hpcgate.domain.states import CalculationState, StepState
from tests.e2e.conftest import Stack, login, page_errors, shot, wait_until
from tests.helpers.fixtures_path import require_siesta_fixtures

pytestmark = pytest.mark.e2e

CASES = ("h2o_scf_siesta5", "si_scf_converged_max1", "si_pdos_siesta5")
OFFSETS = (0.8, -1.5, 0.25)  # predicted = DFT + offset


def _calculation(stack: Stack, verdict: dict[str, Any], name: str) -> int:
    with stack.factory() as s:
        calc = Calculation(
            name=name,
            owner_id=stack.accounts["user"].id,
            cluster_id=stack.clusters["local-e2e"],
            logical_queue="default",
            code="siesta",
            configuration={"kind": "chain"},
            state=CalculationState.COMPLETED,
        )
        s.add(calc)
        s.flush()
        step = Step(
            calculation_id=calc.id,
            cluster_id=calc.cluster_id,
            index=0,
            label="scf",
            template="siesta.j2",
            job_name=f"hpcg-{calc.id}-0",
            state=StepState.HARVESTED,
        )
        s.add(step)
        s.flush()
        s.add(ExtractedResult(step_id=step.id, kind="validation", data=verdict))
        s.commit()
        return calc.id


def _seed(stack: Stack) -> tuple[int, list[int], np.ndarray]:
    root = require_siesta_fixtures()
    admin = stack.api("admin")
    model = admin.post(
        "/ml/models",
        json={"name": f"dft-{uuid.uuid4().hex[:6]}", "version": "1", "image": "localhost/x:1"},
    )
    assert model.status_code == 201, model.text
    model_id = int(model.json()["id"])
    calc_ids, errors = [], []
    for case, offset in zip(CASES, OFFSETS, strict=True):
        verdict = validate_path(root / case, "siesta").to_dict()
        dft = float(verdict["numbers"]["energy_total_ev"])
        calc_id = _calculation(stack, verdict, f"e2e {case}")
        body = {
            "model_id": model_id,
            "calculation_id": calc_id,
            "user_id": stack.accounts["user"].id,
            "request": {"instances": [{"case": case}]},
            "response": {"predictions": [{"energy_total_ev": dft + offset}]},
        }
        r = admin.post("/predictions", json=body)
        assert r.status_code == 201, r.text
        calc_ids.append(calc_id)
        errors.append(dft - (dft + offset))
    return model_id, calc_ids, np.array(errors)


def _figure(text: str) -> float:
    match = re.match(r"\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*eV", text)
    assert match, text
    return float(match.group(1))


def test_accuracy_page_parity_metrics_and_links(page: Any, stack: Stack) -> None:
    model_id, calc_ids, errors = _seed(stack)
    mae = float(np.mean(np.abs(errors)))
    rmse = float(np.sqrt(np.mean(errors**2)))

    login(page, stack, "user")
    page.click("[data-nav=Models]")
    page.click(f"[data-testid=accuracy-link-{model_id}]")
    page.wait_for_url(f"**/models/{model_id}/accuracy")
    page.wait_for_selector("[data-testid=page-model-accuracy]")

    canvas = page.locator("[data-testid=parity-plot] canvas")
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box is not None
    assert box["width"] > 100
    assert box["height"] > 100
    assert page.locator("[data-testid=error-trend] canvas").count() == 1

    shown_mae = _figure(page.locator("[data-testid=accuracy-mae] .stat-value").inner_text())
    shown_rmse = _figure(page.locator("[data-testid=accuracy-rmse] .stat-value").inner_text())
    assert shown_mae == pytest.approx(mae, rel=1e-3)
    assert shown_rmse == pytest.approx(rmse, rel=1e-3)
    assert page.locator("[data-testid=accuracy-n] .stat-value").inner_text() == str(len(CASES))

    rows = page.locator("[data-testid=accuracy-pairs] tbody tr")
    assert rows.count() == len(CASES)
    for calc_id in calc_ids:
        link = page.locator(f"[data-testid=accuracy-pairs] a[href='/calculations/{calc_id}']")
        assert link.count() == 1
    shot(page, "model-accuracy")

    # a click on the plot selects the nearest point: its row is highlighted, its
    # calculation linked
    selected = page.locator("[data-testid=selected-pair] a")
    assert selected.count() == 0
    canvas.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
    selected.wait_for()
    hrefs = {f"/calculations/{c}" for c in calc_ids}
    assert selected.get_attribute("href") in hrefs
    highlighted = page.locator("[data-testid=accuracy-pairs] tr.selected")
    assert highlighted.count() == 1
    assert highlighted.locator("a").get_attribute("href") == selected.get_attribute("href")
    shot(page, "model-accuracy-selected")

    # a row selects its pair too
    rows.first.locator("td").nth(1).click()
    href = rows.first.locator("a").get_attribute("href")
    wait_until(lambda: selected.get_attribute("href") == href, timeout=10)
    assert page.locator("[data-testid=accuracy-pairs] tr.selected").count() == 1

    selected.click()
    page.wait_for_url(f"**{href}")
    assert page_errors(page) == []
