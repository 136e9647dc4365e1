"""A moderator approves a calculation and blocks a user; an admin adds a cluster and a key."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, login, page_errors, shot, wait_until

pytestmark = pytest.mark.e2e


def _pending_calculation(stack: Stack, name: str) -> int:
    with stack.api("user") as api:
        r = api.post(
            "/calculations",
            json={
                "name": name,
                "cluster_id": stack.clusters["approval-e2e"],
                "logical_queue": "default",
                "code": "generic",
                "configuration": {"kind": "single", "command": ["bash", "-c", "echo approved"]},
            },
        )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["state"] == "pending_approval"
    return int(body["id"])


def test_moderator_approves_and_blocks(page: Any, stack: Stack) -> None:
    calc_id = _pending_calculation(stack, "needs a nod (e2e)")
    login(page, stack, "moderator")
    page.wait_for_selector("[data-testid=stat-awaiting-approval]")
    wait_until(
        lambda: page.inner_text("[data-testid=stat-awaiting-approval] .stat-value") != "…", 20
    )
    page.click("[data-testid=stat-awaiting-approval]")
    page.wait_for_selector("[data-testid=calculations-table]")
    page.click("[data-testid=calculations-table] a:has-text('needs a nod (e2e)')")
    page.wait_for_selector("h1 [data-state=pending_approval]")

    # Priority first (moderators only), then the approval.
    page.fill("input[aria-label=priority]", "50")
    page.click("[data-testid=set-priority]")
    page.wait_for_selector("[data-testid=priority]:has-text('50')")
    shot(page, "08-approval")
    page.click("[data-testid=approve]")
    page.wait_for_selector("h1 .badge:not([data-state=pending_approval])")
    assert page.locator("[data-testid=approve]").count() == 0
    with stack.api("moderator") as api:
        calc = api.get(f"/calculations/{calc_id}").json()
    assert calc["approved"] is True
    assert calc["priority"] == 50
    # It then runs to the end on the local executor.
    page.wait_for_selector("h1 [data-state=completed]", timeout=90_000)

    # Block a plain user; a moderator cannot act on admins (no buttons on their row).
    victim = stack.accounts["victim"]
    page.click("[data-nav=Users]")
    page.wait_for_selector("[data-testid=users-table]")
    admin_row = page.locator(f"tr[data-user='{stack.accounts['admin'].email}']")
    assert admin_row.locator("[data-testid=block]").count() == 0
    page.fill("input[aria-label='search users']", victim.email)
    row = page.locator(f"tr[data-user='{victim.email}']")
    row.wait_for()
    page.once("dialog", lambda d: d.accept())
    row.locator("[data-testid=block]").click()
    row.locator("[data-state=blocked]").wait_for()
    shot(page, "09-users-moderator")
    refused = httpx.post(
        stack.base_url + "/auth/login", json={"email": victim.email, "password": victim.password}
    )
    assert refused.status_code == 403
    # Unblock again so other tests may use the account.
    row.locator("[data-testid=unblock]").click()
    row.locator("[data-state=online]").wait_for()
    assert page_errors(page) == []


def test_admin_adds_a_cluster_and_generates_a_key(page: Any, stack: Stack) -> None:
    login(page, stack, "admin")
    page.click("[data-nav=Clusters]")
    page.click("[data-testid=add-cluster]")
    form = page.locator("[data-testid=cluster-form]")
    form.locator("input[name=name]").fill("hpc-e2e")
    form.locator("input[name=description]").fill("Slurm cluster reached through its agent")
    form.locator("select[name=scheduler]").select_option("slurm")
    form.locator("select[name=access_mode]").select_option("agent")
    form.locator("input[name=scratch_root]").fill("/scratch/hpcgate-e2e")
    form.locator("input[name=queue]").fill("short")
    form.locator("input[name=partition]").fill("debug")
    form.locator("[data-testid=save-cluster]").click()
    panel = page.locator("[data-testid=cluster-panel-hpc-e2e]")
    panel.wait_for()
    assert "short" in panel.locator("[data-testid=queues]").inner_text()

    # Map a second queue with limits.
    queue_form = panel.locator("[data-testid=queue-form]")
    queue_form.locator("input[name=logical_queue]").fill("long")
    queue_form.locator("input[name=partition]").fill("batch")
    queue_form.locator("input[name=max_walltime_s]").fill("86400")
    queue_form.locator("button[type=submit]").click()
    panel.locator("[data-testid=queues] >> text=86400 s").wait_for()

    # A key is shown once, works for the agent API, and rotates.
    panel.locator("[data-testid=generate-key]").click()
    key = panel.locator("[data-testid=secret-value]").inner_text().strip()
    assert key.startswith("hpcg_")
    shot(page, "10-clusters-key")
    r = httpx.get(stack.base_url + "/agent/active-steps", headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    panel.locator("button:has-text('I have stored it')").click()
    panel.locator("[data-testid=secret-value]").wait_for(state="detached")
    assert key not in page.content()
    prefix = key.split("_")[1]
    panel.locator(f"[data-testid=rotate-{prefix}]").click()
    rotated = panel.locator("[data-testid=secret-value]").inner_text().strip()
    assert rotated.startswith("hpcg_")
    assert rotated != key
    assert (
        httpx.get(stack.base_url + "/agent/active-steps", headers={"X-API-Key": key}).status_code
        == 401
    )
    panel.locator("button:has-text('I have stored it')").click()

    # Maintenance on and off.
    panel.locator("[data-testid=toggle-enabled]").click()
    page.wait_for_selector("tr[data-cluster=hpc-e2e] [data-state=maintenance]")
    panel.locator("[data-testid=toggle-enabled]").click()
    page.wait_for_selector("tr[data-cluster=hpc-e2e] [data-state=offline]")
    shot(page, "11-clusters")
    assert page_errors(page) == []


def test_owner_cancels_a_running_calculation(page: Any, stack: Stack) -> None:
    with stack.api("user") as api:
        r = api.post(
            "/calculations",
            json={
                "name": "long sleeper (e2e)",
                "cluster_id": stack.clusters["local-e2e"],
                "logical_queue": "default",
                "code": "generic",
                "configuration": {"kind": "single", "command": ["sleep", "300"]},
            },
        )
    assert r.status_code == 201, r.text
    calc_id = r.json()["id"]
    login(page, stack, "user", f"/calculations/{calc_id}")
    page.wait_for_selector("h1 [data-state=running]", timeout=60_000)
    page.wait_for_selector("[data-testid=job-id-0]:has-text('L')")
    page.once("dialog", lambda d: d.accept())
    page.click("[data-testid=cancel]")
    page.wait_for_selector("h1 [data-state=cancelled]")
    page.wait_for_selector("[data-testid=state-reason]:has-text('cancelled by')")
    assert page.locator("[data-testid=cancel]").count() == 0
    # A plain user sees no moderator controls on it.
    assert page.locator("[data-testid=set-priority]").count() == 0
    assert page_errors(page) == []
