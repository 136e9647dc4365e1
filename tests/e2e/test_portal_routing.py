"""Who answers a request, the portal or the API (``hpcgate/api/portal.py``), without a browser.

Page navigations (``Accept: text/html``) to portal sections get ``index.html``; API calls on
the same paths reach the API; assets come from ``/_portal/``; a missing build gets a page
that says how to build it. No database is touched: the API answers these probes before it
queries anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.datastructures import Headers

from hpcgate.api.app import create_app
from hpcgate.api.portal import PortalMiddleware, find_portal_dir, is_navigation
from hpcgate.settings import Settings

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
JSON = {"Accept": "application/json"}


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        database={"url": "postgresql+psycopg://nobody@127.0.0.1:1/not-contacted"},
        auth={"secret_key": "portal-routing-secret-0123456789abcdef"},
        paths={"data_dir": str(tmp_path)},
    )


def _app_with(tmp_path: Path, dist: Path | None) -> FastAPI:
    app = create_app(_settings(tmp_path))
    # Pin the build directory: put a second portal middleware in front of the default one.
    app.add_middleware(PortalMiddleware, directory=dist or tmp_path / "no-build-here")
    return app


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    root = tmp_path / "dist"
    (root / "_portal").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><div id=root>PORTAL</div>")
    (root / "_portal" / "app-1234.js").write_text("console.log('portal')")
    (tmp_path / "secret.txt").write_text("not for the web")
    return root


@pytest.fixture
def client(tmp_path: Path, dist: Path) -> Iterator[TestClient]:
    with TestClient(_app_with(tmp_path, dist)) as c:
        yield c


def test_root_and_sections_are_the_portal_for_browsers(client: TestClient) -> None:
    for path in ("/", "/calculations", "/calculations/12?tab=logs", "/clusters", "/login"):
        r = client.get(path, headers=HTML)
        assert r.status_code == 200, path
        assert "PORTAL" in r.text
        assert r.headers["cache-control"] == "no-cache"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "PORTAL" in client.get("/").text  # `/` whatever the Accept header
    assert client.head("/users", headers=HTML).status_code == 200


def test_api_calls_on_the_same_paths_reach_the_api(client: TestClient) -> None:
    r = client.get("/calculations/12", headers=JSON)
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert "Accept" in r.headers["vary"]
    # curl/httpx default Accept (*/*) is an API call too
    assert client.get("/clusters").status_code == 401
    # other methods never see the portal, even with an HTML Accept header
    assert client.post("/auth/login", json={}, headers=HTML).status_code == 422
    # paths outside the portal's sections stay with the API in a browser
    assert (
        client.get("/health", headers=HTML).headers["content-type"].startswith("application/json")
    )
    assert "swagger" in client.get("/docs", headers=HTML).text.lower()
    assert client.get("/openapi.json", headers=HTML).json()["info"]["title"] == "hpcgate"
    assert client.get("/agent/active-steps", headers=HTML).status_code == 401


def test_navigation_detection() -> None:
    assert is_navigation(Headers({"accept": "text/html"}))
    assert is_navigation(Headers({"accept": "*/*", "sec-fetch-dest": "document"}))
    assert not is_navigation(Headers({"accept": "application/json"}))
    assert not is_navigation(Headers({"accept": "text/event-stream"}))
    assert not is_navigation(Headers({"accept": "text/htmlx"}))
    assert not is_navigation(Headers({}))


def test_assets_are_served_and_confined(client: TestClient) -> None:
    r = client.get("/_portal/app-1234.js")
    assert r.status_code == 200
    assert "immutable" in r.headers["cache-control"]
    assert client.get("/_portal/missing.js").status_code == 404
    assert client.get("/_portal/../../secret.txt").status_code == 404
    assert client.get("/_portal/%2e%2e/%2e%2e/secret.txt").status_code == 404
    assert client.get("/_portal/").status_code == 404


def test_missing_build_explains_how_to_build(tmp_path: Path) -> None:
    with TestClient(_app_with(tmp_path, None)) as c:
        r = c.get("/", headers=HTML)
        assert r.status_code == 200
        assert "scripts/build-web.sh" in r.text
        assert "not built" in r.text
        assert c.get("/calculations", headers=JSON).status_code == 401
        assert c.get("/_portal/app.js").status_code == 404


def test_build_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dist: Path) -> None:
    assert find_portal_dir([tmp_path / "nothing", dist]) == dist
    assert find_portal_dir([tmp_path / "nothing"]) is None
    monkeypatch.setenv("HPCGATE_PORTAL_DIR", str(dist))
    assert find_portal_dir() == dist
