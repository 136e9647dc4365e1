"""Core-hour usage in the portal (issue 18): a finished calculation's row on the Usage page
and its CSV download; the approval view shows the estimate and the owner's month usage."""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack, login, page_errors, shot, wait_until

pytestmark = pytest.mark.e2e


def _create(stack: Stack, cluster: str, name: str) -> dict[str, Any]:
    with stack.api("user") as api:
        r = api.post(
            "/calculations",
            json={
                "name": name,
                "cluster_id": stack.clusters[cluster],
                "logical_queue": "default",
                "code": "generic",
                "configuration": {
                    "kind": "single",
                    "command": ["bash", "-c", "echo usage"],
                    "resources": {"cpus_per_task": 2, "walltime_s": 900},
                },
            },
        )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _state(stack: Stack, calc_id: int) -> str:
    with stack.api("user") as api:
        return str(api.get(f"/calculations/{calc_id}").json()["state"])


def test_usage_page_shows_a_row_and_downloads_csv(page: Any, stack: Stack, tmp_path: Path) -> None:
    name = f"usage e2e {uuid.uuid4().hex[:6]}"
    calc = _create(stack, "local-e2e", name)
    wait_until(lambda: _state(stack, calc["id"]) == "completed", 120)
    with stack.api("user") as api:
        wait_until(lambda: api.get(f"/calculations/{calc['id']}/usage").json()["steps"], 30)
        mine = api.get("/usage", params={"group_by": "calculation"}).json()
    [row] = [r for r in mine["rows"] if r["key"] == str(calc["id"])]

    login(page, stack, "user")
    page.click("[data-nav=Usage]")
    page.wait_for_selector("[data-testid=usage-page]")
    page.select_option("[data-testid=usage-group]", "calculation")
    cell = page.locator(f"[data-testid=usage-row]:has-text('{name}')")
    cell.wait_for()
    assert "Your usage" in page.inner_text("[data-testid=usage-scope]")
    shot(page, "usage-page")

    with page.expect_download() as info:
        page.click("[data-testid=usage-csv]")
    target = tmp_path / "usage.csv"
    info.value.save_as(target)
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    [line] = [r for r in rows if r["key"] == str(calc["id"])]
    assert line["label"] == name
    assert float(line["core_hours"]) == pytest.approx(row["core_hours"])
    assert int(line["steps"]) == 1
    assert page_errors(page) == []


def test_approval_view_shows_estimate_and_month_usage(page: Any, stack: Stack) -> None:
    calc = _create(stack, "approval-e2e", f"approve with context {uuid.uuid4().hex[:6]}")
    assert calc["state"] == "pending_approval"
    with stack.api("moderator") as api:
        ctx = api.get(f"/calculations/{calc['id']}/approval-context").json()
    assert ctx["estimated_core_hours"] == pytest.approx(2 * 900 / 3600, abs=1e-6)
    login(page, stack, "moderator", f"/calculations/{calc['id']}")
    page.wait_for_selector("[data-testid=approval-context]")
    assert page.inner_text("[data-testid=approval-estimate]") == "0.50"
    assert stack.accounts["user"].email in page.inner_text("[data-testid=approval-context]")
    shot(page, "approval-context")
    page.click("[data-testid=reject]")
    page.wait_for_selector("h1 .badge:not([data-state=pending_approval])")
    assert page_errors(page) == []
