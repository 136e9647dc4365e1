"""Live logs (SSE) with filters and admin deletion; every other section renders."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, login, page_errors, shot

pytestmark = pytest.mark.e2e


def _agent_key(stack: Stack) -> str:
    if "agent_key" not in stack.extra:
        with stack.api("admin") as api:
            r = api.post(
                f"/clusters/{stack.clusters['local-e2e']}/api-keys", json={"name": "e2e logs"}
            )
        assert r.status_code == 201, r.text
        stack.extra["agent_key"] = r.json()["key"]
    return str(stack.extra["agent_key"])


def test_live_logs_filters_and_admin_delete(page: Any, stack: Stack) -> None:
    key = _agent_key(stack)
    marker = uuid.uuid4().hex[:8]
    login(page, stack, "admin")
    page.click("[data-nav=Logs]")
    page.wait_for_selector("[data-testid=live-status]:has-text('open')")

    # Lines posted by an agent appear without a reload (server-sent events).
    r = httpx.post(
        stack.base_url + "/agent/logs",
        headers={"X-API-Key": key},
        json={
            "lines": [
                {"level": "info", "message": f"queue drained {marker}"},
                {"level": "error", "message": f"node n07 down {marker}"},
            ]
        },
    )
    assert r.status_code == 201, r.text
    page.wait_for_selector(
        f"[data-testid=log-lines] >> text=node n07 down {marker}", timeout=15_000
    )
    page.wait_for_selector(f"[data-testid=log-lines] >> text=queue drained {marker}")
    shot(page, "12-logs")

    # Filters: errors and above from the agents only.
    page.select_option("select[aria-label=level]", "error")
    page.fill("input[aria-label=source]", "agent:*")
    page.wait_for_selector(
        f"[data-testid=log-lines] >> text=queue drained {marker}", state="detached"
    )
    assert page.locator(f"[data-testid=log-lines] >> text=node n07 down {marker}").count() == 1
    page.wait_for_selector("[data-testid=live-status]:has-text('open')")
    # A new matching line arrives live through the filtered stream.
    httpx.post(
        stack.base_url + "/agent/logs",
        headers={"X-API-Key": key},
        json={"lines": [{"level": "critical", "message": f"scheduler gone {marker}"}]},
    )
    page.wait_for_selector(
        f"[data-testid=log-lines] >> text=scheduler gone {marker}", timeout=15_000
    )

    # Admins delete what matches the filters (after confirming).
    page.once("dialog", lambda d: d.accept())
    page.click("[data-testid=delete-logs]")
    page.wait_for_selector("text=line(s) deleted")
    with stack.api("admin") as api:
        left = api.get("/logs", params={"source": "agent:*", "level": "error"}).json()["items"]
    assert not [line for line in left if marker in line["message"]]
    assert page_errors(page) == []


def test_other_sections_render(page: Any, stack: Stack) -> None:
    login(page, stack, "user")
    page.click("[data-nav=Molecules]")
    page.wait_for_selector("[data-testid=page-molecules]")
    shot(page, "13-molecules")
    if page.locator("[data-nav=Models]").count():
        with stack.api("admin") as api:
            api.post(
                "/ml/models",
                json={
                    "name": "qe-scf-convergence",
                    "version": "1.0.0",
                    "image": "localhost/hpcgate-example-model:1.0.0",
                    "description": "predicts whether a pw.x SCF converges",
                },
            )
        page.click("[data-nav=Models]")
        page.wait_for_selector("[data-testid=models] >> text=qe-scf-convergence")
        shot(page, "14-models")
    page.click("[data-testid=profile-link]")
    page.wait_for_selector("[data-testid=page-profile]")
    page.fill("input[name=full_name]", "Rita R. Researcher")
    page.select_option("select[name=notify_level]", "info")
    page.click("[data-testid=page-profile] button:has-text('Save')")
    page.wait_for_selector("text=profile saved")
    assert page.inner_text("[data-testid=profile-link]") == "Rita R. Researcher"
    shot(page, "15-profile")
    page.click("[data-nav=Dashboard]")
    page.wait_for_selector("[data-testid=page-dashboard]")
    page.wait_for_selector("[data-testid=cpu-chart-local-e2e] canvas")
    shot(page, "16-dashboard")
    assert page_errors(page) == []
