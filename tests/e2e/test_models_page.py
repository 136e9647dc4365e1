"""Models: an admin registers the example model, runs it, calls it and removes it, all from
the portal, against a real ML-API (uvicorn thread) on the real Docker test engine.

The ML-API reports to the e2e stack's own main API (an ML-API key of that database), verifies
the portal's access tokens with the same settings, and allows the portal's origin (CORS), so
the page calls it directly from the browser. Its containers carry a label namespace of this
test's own, and all of them are removed at the end.

The portal's Content-Security-Policy allows ``connect-src`` to the ML-API's public address
(``HPCGATE_ML__PUBLIC_URL``; set on the running app's settings here, since the port is only
known once the ML-API is up), so the browser keeps enforcing the CSP.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Stack, login, page_errors, shot, wait_until
from tests.helpers.api import new_api_key
from tests.helpers.ci import missing
from tests.helpers.live_api import live_server
from tests.integration.ml.ml_env import ENV_FILE, parse_env

pytestmark = pytest.mark.e2e

PAYLOAD = {"instances": [{"n_atoms": 2, "ecutwfc": 25}]}


@pytest.fixture
def docker_engine() -> Iterator[tuple[Any, str, str]]:
    """(Docker client, DOCKER_HOST, example image) or skip, naming what is missing."""
    if not ENV_FILE.is_file():
        missing(f"no Docker test engine: run scripts/services/docker.sh ({ENV_FILE} missing)")
    values = parse_env(ENV_FILE)
    host, image = values.get("DOCKER_HOST", ""), values.get("HPCGATE_TEST_ML_IMAGE", "")
    import docker

    try:
        client = docker.DockerClient(base_url=host, timeout=60)
    except Exception as exc:
        missing(f"Docker test engine at {host} not usable ({type(exc).__name__}: {exc})")
    try:
        client.ping()
        client.images.get(image)
    except Exception as exc:
        client.close()
        missing(
            f"Docker test engine at {host} not usable ({type(exc).__name__}: {exc}); "
            "run scripts/services/docker.sh"
        )
    try:
        yield client, host, image
    finally:
        client.close()


@pytest.fixture
def ml_api(stack: Stack, docker_engine: tuple[Any, str, str]) -> Iterator[tuple[str, str, Any]]:
    """(ML-API base URL, namespace, Docker client): reports to the e2e stack's main API."""
    from ml.api import create_ml_app
    from ml.settings import MlApiConfig

    client, host, _ = docker_engine
    namespace = f"e2e{uuid.uuid4().hex[:10]}"
    _, key = new_api_key(stack.engine, name=f"ml-api-{namespace}")
    config = MlApiConfig(
        main_api_url=stack.base_url,
        api_key=key,
        docker_host=host,
        namespace=namespace,
        cors_origins=[stack.base_url],
        ping_interval_s=0.5,
        ping_timeout_s=2.0,
        start_timeout_s=30.0,
        stop_timeout_s=5.0,
        sync_interval_s=2.0,
        proxy_timeout_s=20.0,
    )
    try:
        with live_server(create_ml_app(stack.settings, config)) as base:
            stack.settings.ml.public_url = base  # the portal's CSP now allows this origin
            try:
                yield base, namespace, client
            finally:
                stack.settings.ml.public_url = None
    finally:
        for c in client.containers.list(
            all=True, filters={"label": f"hpcgate.namespace={namespace}"}
        ):
            with contextlib.suppress(Exception):
                c.remove(force=True)


@pytest.fixture
def ml_page(browser: Any, stack: Stack) -> Iterator[Any]:
    """Like conftest's ``page``, with its own context (the CSP is enforced)."""
    context = browser.new_context(
        base_url=stack.base_url,
        viewport={"width": 1440, "height": 900},
        locale="en-GB",
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.console_errors = errors
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    try:
        yield page
    finally:
        context.close()


def _containers(client: Any, namespace: str) -> list[Any]:
    return list(
        client.containers.list(all=True, filters={"label": f"hpcgate.namespace={namespace}"})
    )


def test_models_register_run_predict_stop_delete(
    ml_page: Any,
    stack: Stack,
    docker_engine: tuple[Any, str, str],
    ml_api: tuple[str, str, Any],
) -> None:
    _, _, image = docker_engine
    ml_url, namespace, client = ml_api
    name = f"scf-risk-{uuid.uuid4().hex[:6]}"
    page = ml_page

    login(page, stack, "admin")
    page.click("[data-nav=Models]")
    page.wait_for_selector("[data-testid=page-models]")

    # The ML-API's address, kept in this browser.
    page.fill("input[aria-label='ML-API address']", ml_url)
    page.click("[data-testid=page-models] form.row button[type=submit]")
    page.wait_for_selector(f"text=run, stop and predictions go to {ml_url}")

    # Register the example image.
    page.click("button:has-text('Register model')")
    page.fill("input[name=name]", name)
    page.fill("input[name=version]", "1.0.0")
    page.fill("input[name=image]", image)
    page.fill("input[name=description]", "SCF convergence risk (e2e)")
    page.click("form.form-grid button[type=submit]")
    row = page.locator("[data-testid=models] tbody tr", has_text=name)
    row.wait_for()
    assert row.locator("td").nth(2).locator("[data-state]").get_attribute("data-state") == (
        "registered"
    )
    model_id = next(
        m["id"] for m in stack.api("admin").get("/ml/models").json() if m["name"] == name
    )
    assert row.get_attribute("data-testid") == f"model-{model_id}"

    # Run it: the ML-API starts the container and reports running/healthy to the main API.
    row.locator("button:has-text('Run')").click()
    state = row.locator("td").nth(2).locator("[data-state]")
    health = row.locator("td").nth(3).locator("[data-state]")
    wait_until(lambda: state.get_attribute("data-state") == "running", timeout=60)
    wait_until(lambda: health.get_attribute("data-state") == "healthy", timeout=60)
    assert row.locator("button:has-text('Stop')").is_visible()
    running = _containers(client, namespace)
    assert len(running) == 1
    assert running[0].status == "running"
    assert running[0].labels["hpcgate.model_id"] == str(model_id)
    shot(page, "models-running")

    # A prediction through the page's JSON form, proxied by the ML-API.
    row.locator("button:has-text('predict')").click()
    predict = page.locator("[data-testid=predict]")
    predict.wait_for()
    predict.locator("textarea").fill(json.dumps(PAYLOAD, indent=2))
    predict.locator("button:has-text('Predict')").click()
    output = predict.locator("pre.json")
    output.wait_for(timeout=30_000)
    answer = json.loads(output.inner_text())
    assert len(answer["predictions"]) == 1
    prediction = answer["predictions"][0]
    assert 0.0 <= prediction["p_not_converged"] <= 1.0
    assert prediction["risk"] in ("low", "medium", "high")
    assert prediction["descriptors"]["n_atoms"] == 2
    shot(page, "models-prediction")

    # Stop it: the container goes, the page shows it stopped.
    row.locator("button:has-text('Stop')").click()
    wait_until(lambda: state.get_attribute("data-state") == "stopped", timeout=60)
    assert row.locator("button:has-text('Run')").is_visible()
    wait_until(
        lambda: all(c.status != "running" for c in _containers(client, namespace)), timeout=30
    )

    # Delete it (after confirming): gone from the page, the main API and the engine.
    page.once("dialog", lambda d: d.accept())
    row.locator("button:has-text('Delete')").click()
    row.wait_for(state="detached", timeout=30_000)
    assert all(m["name"] != name for m in stack.api("admin").get("/ml/models").json())
    assert _containers(client, namespace) == []
    shot(page, "models-deleted")
    assert page_errors(page) == []
