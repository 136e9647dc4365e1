"""Login, token refresh through the cookie, logout; the navigation each role gets."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack, login, page_errors, shot

pytestmark = pytest.mark.e2e


def test_login_refresh_and_logout(page: Any, stack: Stack) -> None:
    # A wrong password is refused with the server's message; nothing is stored.
    page.clock.install()
    page.goto("/calculations?state=failed")
    page.wait_for_selector("form[aria-label='log in']")
    assert "/login?next=" in page.url
    shot(page, "00-login")
    page.fill("input[name=email]", stack.accounts["user"].email)
    page.fill("input[name=password]", "not the password")
    page.click("form[aria-label='log in'] button[type=submit]")
    page.wait_for_selector("[role=alert]:has-text('invalid e-mail or password')")

    page.fill("input[name=password]", stack.accounts["user"].password)
    page.click("form[aria-label='log in'] button[type=submit]")
    # Back where the user was going, logged in.
    page.wait_for_selector("[data-testid=page-calculations]")
    assert page.url.endswith("/calculations?state=failed")
    cookies = {c["name"]: c for c in page.context.cookies()}
    refresh_cookie = cookies["hpcgate_refresh"]
    assert refresh_cookie["httpOnly"] is True
    assert refresh_cookie["path"] == "/auth"
    assert refresh_cookie["sameSite"] == "Strict"
    # The access token is in memory only: nothing in web storage.
    assert (
        page.evaluate("Object.keys(localStorage).length + Object.keys(sessionStorage).length") == 0
    )

    # A reload keeps the session: the cookie is exchanged for a new access token.
    with page.expect_response("**/auth/refresh") as refreshed:
        page.reload()
    assert refreshed.value.status == 200
    page.wait_for_selector("[data-testid=page-calculations]")
    rotated = {c["name"]: c["value"] for c in page.context.cookies()}["hpcgate_refresh"]
    assert rotated != refresh_cookie["value"]

    # Before the access token expires (15 min), the page refreshes it on its own.
    with page.expect_response("**/auth/refresh", timeout=20_000) as timed:
        page.clock.fast_forward("15:00")
    assert timed.value.status == 200
    page.wait_for_selector("[data-testid=page-calculations]")

    # Logout revokes the cookie's login: a reload lands on the login form.
    page.click("[data-testid=logout]")
    page.wait_for_selector("form[aria-label='log in']")
    page.goto("/")
    page.wait_for_selector("form[aria-label='log in']")
    assert page_errors(page) == []


NAV = {
    "user": ["Dashboard", "Calculations", "Analyses", "Molecules", "Clusters", "Logs", "Usage"],
    "moderator": [
        "Dashboard",
        "Calculations",
        "Analyses",
        "Molecules",
        "Clusters",
        "Logs",
        "Usage",
        "Users",
    ],
    "admin": [
        "Dashboard", "Calculations", "Analyses", "Molecules", "Clusters", "Logs", "Usage", "Users",
    ],
}


@pytest.mark.parametrize("role", ["user", "moderator", "admin"])
def test_navigation_follows_the_role(page: Any, stack: Stack, role: str) -> None:
    login(page, stack, role)
    page.wait_for_selector("[data-testid=page-dashboard]")
    nav = page.locator("[data-testid=nav] a").all_inner_texts()
    expected = list(NAV[role])
    if "Models" in nav:  # shown only when the API lists ML models
        expected.insert(4, "Models")
    assert nav == expected
    assert page.inner_text("[data-testid=role]").lower() == role
    page.wait_for_selector("[data-testid^=cluster-card-]")
    shot(page, f"01-dashboard-{role}")

    # What the UI hides, the API refuses.
    with stack.api(role) as api:
        users = api.get("/users")
        cluster_config = api.get(f"/clusters/{stack.clusters['local-e2e']}/config")
        delete_logs = api.delete("/logs", params={"source": "nothing-here"})
    if role == "user":
        assert users.status_code == 403
        page.goto("/users")
        page.wait_for_selector("[data-testid=forbidden]")
    else:
        assert users.status_code == 200
    if role != "admin":
        assert cluster_config.status_code == 403
        assert delete_logs.status_code == 403
        page.goto("/clusters")
        page.wait_for_selector("[data-testid=clusters-table]")
        assert page.locator("[data-testid=add-cluster]").count() == 0
        page.goto("/logs")
        page.wait_for_selector("[data-testid=logs-view]")
        assert page.locator("[data-testid=delete-logs]").count() == 0
    else:
        assert delete_logs.status_code == 200
        assert cluster_config.status_code == 200
        page.goto("/clusters")
        page.wait_for_selector("[data-testid=add-cluster]")
    assert page_errors(page) == []


def test_api_paths_stay_api(stack: Stack) -> None:
    """Page addresses and API routes share paths; only browser navigations get the page."""
    nav = httpx.get(stack.base_url + "/calculations/1", headers={"Accept": "text/html"})
    assert nav.status_code == 200
    assert nav.headers["content-type"].startswith("text/html")
    api = httpx.get(stack.base_url + "/calculations/1", headers={"Accept": "application/json"})
    assert api.status_code == 401
    assert api.json()["code"] == "unauthorized"
    assert "accept" in api.headers.get("vary", "").lower()
    assert (
        httpx.get(stack.base_url + "/health").headers["content-type"].startswith("application/json")
    )
    docs = httpx.get(stack.base_url + "/docs", headers={"Accept": "text/html"})
    assert "swagger" in docs.text.lower()
