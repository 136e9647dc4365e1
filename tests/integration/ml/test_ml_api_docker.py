"""The ML-API on the real Docker engine, reporting to a real main API on loopback.

Models are the example image (``ml/example_model``, built by scripts/services/docker.sh)
and a "broken contract" image (no ``/ping``, port 9000). The example server's test-only
switches (``MODEL_TEST_SWITCHES=1``) make ``/ping`` fail or hang, the process crash, or
``/invocations`` slow; the watchdog runs every 0.3 s with a 1 s ping timeout, restarts
after one failed ping, backoff 0.2 s doubling, at most 2 restarts.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from hpcgate.auth.jwt import issue_access_token
from ml.api import create_ml_app
from tests.integration.ml.ml_env import DockerEnv, MainApi, ml_api, ml_config, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.timeout(240)]

SWITCHES = {"MODEL_TEST_SWITCHES": "1"}
PW_INPUT = """&control calculation='scf', prefix='fe', pseudo_dir='/pseudo', outdir='./tmp' /
&system ibrav=3, celldm(1)=5.217, nat=1, ntyp=1, ecutwfc=25.0, ecutrho=200.0,
  occupations='smearing', smearing='mv', degauss=0.002, nspin=2,
  starting_magnetization(1)=0.6 /
&electrons conv_thr=1.0d-10, mixing_beta=0.9, electron_maxstep=4 /
ATOMIC_SPECIES
 Fe 55.845 Fe.pz-nd-rrkjus.UPF
ATOMIC_POSITIONS alat
 Fe 0.00 0.00 0.00
K_POINTS automatic
 6 6 6 1 1 1
"""


def _state(client: TestClient, model_id: int, headers: dict[str, str]) -> dict[str, Any]:
    r = client.get(f"/models/{model_id}", headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _touch_in_container(docker_client: Any, container_id: str, path: str) -> None:
    """Create an empty file inside the container (put_archive: no shell needed)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path.rsplit("/", 1)[1])
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(b""))
    container = docker_client.containers.get(container_id)
    assert container.put_archive(path.rsplit("/", 1)[0] or "/", buf.getvalue())


def _container_of(docker_client: Any, namespace: str, model_id: int) -> Any:
    """The model's one container (a replaced one may take a moment to be gone)."""
    labels = [f"hpcgate.namespace={namespace}", f"hpcgate.model_id={model_id}"]
    found = wait_for(
        lambda: (
            (c := docker_client.containers.list(all=True, filters={"label": labels}))
            and len(c) == 1
            and c
        ),
        timeout=10,
        what=f"exactly one container of model {model_id}",
    )
    return found[0]


def _metric(client: TestClient, headers: dict[str, str], name: str, **labels: str) -> float:
    """One sample of the ML-API's ``GET /metrics``, parsed by the Prometheus parser."""
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    return sum(
        s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_need_the_scrape_token_or_an_admin(
    main_api: MainApi, docker_env: DockerEnv, namespace: str
) -> None:
    token = "scrape-" + uuid.uuid4().hex
    settings = main_api.settings.model_copy(update={"metrics": main_api.settings.metrics.model_copy(
        update={"token": SecretStr(token)})})  # fmt: skip
    config = ml_config(main_api, docker_env, namespace)
    with TestClient(create_ml_app(settings, config)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get("/metrics", headers=main_api.user_headers()).status_code == 403
        assert client.get("/metrics", headers=main_api.admin_headers()).status_code == 200
        by_token = {"Authorization": f"Bearer {token}"}
        assert _metric(client, by_token, "hpcgate_ml_request_duration_seconds_count",
                       route="/metrics", status="4xx") >= 3  # fmt: skip


# ------------------------------------------------------------------ the happy path
def test_run_invoke_stop_delete(
    main_api: MainApi, docker_env: DockerEnv, docker_client: Any, namespace: str
) -> None:
    admin, user = main_api.admin_headers(), main_api.user_headers()
    with ml_api(main_api, docker_env, namespace) as client:
        # registration through the ML-API is forwarded to the main API as the caller
        body = {
            "name": f"scf-{namespace}",
            "version": "1.0.0",
            "image": docker_env.image,
            "description": "example",
            "resources": {"cpus": 0.5, "memory_mb": 128},
        }
        assert client.post("/models", json=body, headers=user).status_code == 403
        r = client.post("/models", json=body, headers=admin)
        assert r.status_code == 201, r.text
        model_id = r.json()["id"]
        listed = {m["id"]: m for m in client.get("/models", headers=user).json()}
        assert listed[model_id]["state"] == "registered"

        r = client.post(f"/models/{model_id}/run", headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "running"
        assert r.json()["health"] == "healthy"
        # the container carries the labels and the limits
        container = _container_of(docker_client, namespace, model_id)
        assert container.labels["hpcgate.managed"] == "true"
        assert container.labels["hpcgate.model_id"] == str(model_id)
        assert container.attrs["HostConfig"]["NanoCpus"] == 500_000_000
        assert container.attrs["HostConfig"]["Memory"] == 128 << 20
        binding = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]
        assert binding["HostIp"] == "127.0.0.1"
        # ... and the main API shows it (reported with the ML-API key)
        wait_for(lambda: main_api.model(model_id)["state"] == "running", what="report")
        assert main_api.model(model_id)["health"] == "healthy"
        assert main_api.model(model_id)["last_reported_at"] is not None

        # invocation through the proxy == direct call to the container
        payload = {"instances": [{"pw_input": PW_INPUT}]}
        direct = httpx.post(
            f"http://127.0.0.1:{binding['HostPort']}/invocations", json=payload, timeout=10
        )
        r = client.post(f"/models/{model_id}/invocations", json=payload, headers=user)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == direct.json()
        prediction = r.json()["predictions"][0]
        assert prediction["converged"] is False  # beta 0.9, 4 steps, magnetic metal
        assert prediction["risk"] == "high"
        # a text/plain body (the pw.x input itself) goes through untouched
        r = client.post(
            f"/models/{model_id}/invocations",
            content=PW_INPUT.encode(),
            headers={**user, "Content-Type": "text/plain"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["p_not_converged"] == prediction["p_not_converged"]
        # the model's own errors come back as they are
        r = client.post(
            f"/models/{model_id}/invocations",
            content=b"{not json",
            headers={**user, "Content-Type": "application/json"},
        )
        assert r.status_code == 400
        assert "invalid JSON" in r.json()["error"]
        r = client.post(
            f"/models/{model_id}/invocations",
            content=b"x",
            headers={**user, "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 415

        r = client.get(f"/models/{model_id}/logs", headers=admin)
        assert r.status_code == 200
        assert "POST /invocations" in r.json()["logs"]
        assert client.get(f"/models/{model_id}/logs", headers=user).status_code == 403

        r = client.post(f"/models/{model_id}/stop", headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "stopped"
        assert (
            docker_client.containers.list(
                all=True, filters={"label": f"hpcgate.namespace={namespace}"}
            )
            == []
        )
        r = client.post(f"/models/{model_id}/invocations", json=payload, headers=user)
        assert r.status_code == 503
        assert "stopped" in r.json()["detail"]
        wait_for(lambda: main_api.model(model_id)["state"] == "stopped", what="stop report")
        # the logs of the stopped container are kept
        assert (
            "POST /invocations"
            in client.get(f"/models/{model_id}/logs", headers=admin).json()["previous"]
        )

        # run again, then delete: containers gone, registration kept and back to idle
        assert client.post(f"/models/{model_id}/run", headers=admin).status_code == 200
        assert client.delete(f"/models/{model_id}", headers=admin).status_code == 204
        assert (
            docker_client.containers.list(
                all=True, filters={"label": f"hpcgate.namespace={namespace}"}
            )
            == []
        )
        wait_for(lambda: main_api.model(model_id)["state"] == "registered", what="delete report")
        assert _state(client, model_id, user)["state"] == "registered"


def test_prediction_is_stored_against_a_calculation(
    main_api: MainApi, docker_env: DockerEnv, namespace: str
) -> None:
    from tests.integration.ml.ml_env import new_calculation

    calc_id = new_calculation(main_api)
    model_id = main_api.register(image=docker_env.image)
    user = main_api.user_headers()
    with ml_api(main_api, docker_env, namespace) as client:
        assert (
            client.post(f"/models/{model_id}/run", headers=main_api.admin_headers()).status_code
            == 200
        )
        r = client.post(
            f"/models/{model_id}/invocations?calculation_id={calc_id}",
            json={"instances": [{"pw_input": PW_INPUT}]},
            headers=user,
        )
        assert r.status_code == 200, r.text
        prediction_id = int(r.headers["X-Hpcgate-Prediction-Id"])
        # an unknown calculation: the prediction is still returned, the storing error said
        r = client.post(
            f"/models/{model_id}/invocations?calculation_id=987654321",
            json={"instances": [{"pw_input": PW_INPUT}]},
            headers=user,
        )
        assert r.status_code == 200
        assert r.headers["X-Hpcgate-Prediction-Error"].startswith("404")
    r = httpx.get(f"{main_api.url}/calculations/{calc_id}/predictions", headers=user, timeout=10)
    assert r.status_code == 200, r.text
    stored = r.json()["predictions"]
    assert [p["id"] for p in stored] == [prediction_id]
    assert stored[0]["user_id"] == main_api.user.id
    assert stored[0]["request"]["instances"][0]["pw_input"] == PW_INPUT
    assert stored[0]["response"]["predictions"][0]["converged"] is False


# ------------------------------------------------------------------ the watchdog
def test_failing_ping_is_restarted(
    main_api: MainApi, docker_env: DockerEnv, docker_client: Any, namespace: str
) -> None:
    model_id = main_api.register(image=docker_env.image, environment=SWITCHES)
    admin = main_api.admin_headers()
    with ml_api(main_api, docker_env, namespace) as client:
        assert client.post(f"/models/{model_id}/run", headers=admin).status_code == 200
        first = _container_of(docker_client, namespace, model_id)
        _touch_in_container(docker_client, first.id, "/tmp/hpcgate-fail-ping")
        # a restart recreates the container: fresh filesystem, the switch is gone
        state = wait_for(
            lambda: (
                (s := _state(client, model_id, admin))["restarts"] == 1
                and s["state"] == "running"
                and s["health"] == "healthy"
                and s
            ),
            timeout=30,
            what="a restart",
        )
        assert "GET /ping failed" in state["last_error"]
        assert "HTTP 503" in state["last_error"]
        second = _container_of(docker_client, namespace, model_id)
        assert second.id != first.id
        assert second.labels["hpcgate.restarts"] == "1"
        wait_for(lambda: main_api.model(model_id)["restarts"] == 1, what="restart report")
        # The registry is the process's: an earlier test's model may have had this id.
        invocations = "hpcgate_ml_invocations_total"
        before = _metric(client, admin, invocations, model=str(model_id))
        r = client.post(
            f"/models/{model_id}/invocations",
            json={"instances": [{"n_atoms": 2, "ecutwfc": 25}]},
            headers=main_api.user_headers(),
        )
        assert r.status_code == 200
        assert _metric(client, admin, invocations, model=str(model_id)) - before == 1


def test_hanging_ping_times_out_and_is_restarted(
    main_api: MainApi, docker_env: DockerEnv, docker_client: Any, namespace: str
) -> None:
    model_id = main_api.register(image=docker_env.image, environment=SWITCHES)
    admin = main_api.admin_headers()
    with ml_api(main_api, docker_env, namespace, ping_timeout_s=0.5) as client:
        assert client.post(f"/models/{model_id}/run", headers=admin).status_code == 200
        first = _container_of(docker_client, namespace, model_id)
        _touch_in_container(docker_client, first.id, "/tmp/hpcgate-hang-ping")
        state = wait_for(
            lambda: (
                (s := _state(client, model_id, admin))["restarts"] == 1
                and s["state"] == "running"
                and s
            ),
            timeout=30,
            what="a restart",
        )
        assert "no answer within 0.5 s" in state["last_error"]


def test_crash_loop_is_restarted_up_to_the_limit_then_failed(
    main_api: MainApi, docker_env: DockerEnv, docker_client: Any, namespace: str
) -> None:
    env = {**SWITCHES, "MODEL_TEST_CRASH_AFTER_S": "1.5"}
    model_id = main_api.register(image=docker_env.image, environment=env)
    admin = main_api.admin_headers()
    seen: set[str] = set()
    restarts = "hpcgate_ml_container_restarts_total"
    with ml_api(main_api, docker_env, namespace) as client:
        before = _metric(client, admin, restarts, model=str(model_id))
        assert client.post(f"/models/{model_id}/run", headers=admin).status_code == 200

        def failed() -> dict[str, Any] | None:
            s = _state(client, model_id, admin)
            seen.add(s["state"])
            return s if s["state"] == "failed" else None

        state = wait_for(failed, timeout=60, what="state failed")
        assert state["restarts"] == 2
        assert state["last_error"].startswith("gave up after 2 restart(s): ")
        # the supervisor counted each restart of the crashed container (GET /metrics)
        assert _metric(client, admin, restarts, model=str(model_id)) - before == 2
        assert "container exited with code 3" in state["last_error"]
        assert "running" in seen
        # reported to the real main API: the portal shows it
        reported = wait_for(
            lambda: (m := main_api.model(model_id))["state"] == "failed" and m, what="report"
        )
        assert reported["restarts"] == 2
        assert reported["health"] == "unhealthy"
        assert "container exited with code 3" in reported["last_error"]
        # the last container is kept, stopped, for its logs
        kept = _container_of(docker_client, namespace, model_id)
        assert kept.status == "exited"
        assert kept.name.endswith("-failed")
        assert kept.labels["hpcgate.restarts"] == "2"
        r = client.post(f"/models/{model_id}/invocations", json={}, headers=main_api.user_headers())
        assert r.status_code == 503
        assert "failed" in r.json()["detail"]


def test_image_without_the_contract_is_reported_clearly(
    main_api: MainApi, docker_env: DockerEnv, docker_client: Any, namespace: str
) -> None:
    model_id = main_api.register(image=docker_env.broken_image)
    admin = main_api.admin_headers()
    with ml_api(main_api, docker_env, namespace, start_timeout_s=3) as client:
        t0 = time.monotonic()
        r = client.post(f"/models/{model_id}/run", headers=admin)
        assert time.monotonic() - t0 < 15
        assert r.status_code == 503
        body = r.json()
        assert body["code"] == "model_failed"
        assert body["detail"].startswith("did not answer GET /ping on port 8080 within 3 s")
        assert body["model"]["state"] == "failed"
        assert _state(client, model_id, admin)["state"] == "failed"
        reported = wait_for(
            lambda: (m := main_api.model(model_id))["state"] == "failed" and m, what="report"
        )
        assert reported["last_error"].startswith("did not answer GET /ping on port 8080 within 3 s")
        # no restarts for an image that never answered: a restart cannot fix a contract
        time.sleep(1.0)
        assert _state(client, model_id, admin)["restarts"] == 0
        assert _container_of(docker_client, namespace, model_id).status == "exited"


def test_missing_image_is_reported(
    main_api: MainApi, docker_env: DockerEnv, namespace: str
) -> None:
    model_id = main_api.register(image="localhost/hpcgate-no-such-image:0")
    with ml_api(main_api, docker_env, namespace) as client:
        r = client.post(f"/models/{model_id}/run", headers=main_api.admin_headers())
        assert r.status_code == 503
        assert "not on the engine" in r.json()["detail"]
        assert "never pulls" in r.json()["detail"]


# ------------------------------------------------------------------ the proxy's edges
def test_invalid_tokens_are_refused(
    main_api: MainApi, docker_env: DockerEnv, namespace: str
) -> None:
    model_id = main_api.register(image=docker_env.image)
    settings = main_api.settings
    other_key = jwt.encode(
        {
            "iss": "hpcgate",
            "sub": "1",
            "role": "admin",
            "iat": 0,
            "exp": 2**31,
            "jti": "x",
            "typ": "access",
        },
        "another-secret-key-0123456789abcdef",
        algorithm="HS256",
    )
    expired = issue_access_token(
        main_api.admin.id,
        "admin",
        settings,
        now=datetime.now(UTC) - timedelta(hours=2),
        lifetime=timedelta(hours=1),
    ).token
    unsigned = jwt.encode(
        {
            "iss": "hpcgate",
            "sub": "1",
            "role": "admin",
            "iat": 0,
            "exp": 2**31,
            "jti": "x",
            "typ": "access",
        },
        None,
        algorithm="none",
    )
    with ml_api(main_api, docker_env, namespace) as client:
        path = f"/models/{model_id}/invocations"
        for headers in (
            {},
            {"Authorization": "Bearer not-a-jwt"},
            {"Authorization": f"Bearer {other_key}"},
            {"Authorization": f"Bearer {expired}"},
            {"Authorization": f"Bearer {unsigned}"},
            {"Authorization": f"Basic {main_api.ml_key}"},
            {"X-API-Key": main_api.ml_key},  # the ML-API key is for the main API only
        ):
            r = client.post(path, json={}, headers=headers)
            assert r.status_code == 401, (headers, r.text)
            assert r.json()["code"] == "unauthorized"
            assert client.post(f"/models/{model_id}/run", headers=headers).status_code == 401
        # a valid user token is not enough for lifecycle operations
        user = main_api.user_headers()
        assert client.post(f"/models/{model_id}/run", headers=user).status_code == 403
        assert client.post(f"/models/{model_id}/stop", headers=user).status_code == 403
        assert client.delete(f"/models/{model_id}", headers=user).status_code == 403
        assert client.get("/health").status_code == 200  # public


def test_unknown_model_is_404(main_api: MainApi, docker_env: DockerEnv, namespace: str) -> None:
    user, admin = main_api.user_headers(), main_api.admin_headers()
    with ml_api(main_api, docker_env, namespace) as client:
        for method, path, headers in (
            ("POST", "/models/987654321/invocations", user),
            ("GET", "/models/987654321", user),
            ("POST", "/models/987654321/run", admin),
            ("POST", "/models/987654321/stop", admin),
            ("DELETE", "/models/987654321", admin),
            ("GET", "/models/987654321/logs", admin),
        ):
            r = client.request(method, path, json={}, headers=headers)
            assert r.status_code == 404, (method, path, r.text)
            assert r.json()["code"] == "not_found"


def test_slow_model_is_504_and_dead_model_503(
    main_api: MainApi, docker_env: DockerEnv, docker_client: Any, namespace: str
) -> None:
    env = {**SWITCHES, "MODEL_TEST_INVOKE_DELAY_S": "3"}
    model_id = main_api.register(image=docker_env.image, environment=env)
    admin, user = main_api.admin_headers(), main_api.user_headers()
    # a slow watchdog, so the dead container is met by the proxy first
    with ml_api(main_api, docker_env, namespace, proxy_timeout_s=0.5, ping_interval_s=30) as client:
        assert client.post(f"/models/{model_id}/run", headers=admin).status_code == 200
        r = client.post(f"/models/{model_id}/invocations", json={}, headers=user)
        assert r.status_code == 504
        assert "did not answer within 0.5 s" in r.json()["detail"]
        victim = _container_of(docker_client, namespace, model_id)
        victim.kill()
        victim.wait(timeout=30)  # really dead before the next call
        r = client.post(f"/models/{model_id}/invocations", json={}, headers=user)
        assert r.status_code == 503
        assert "not reachable" in r.json()["detail"]


def test_body_too_large_is_413(main_api: MainApi, docker_env: DockerEnv, namespace: str) -> None:
    model_id = main_api.register(image=docker_env.image)
    with ml_api(main_api, docker_env, namespace, max_body_bytes=4096) as client:
        assert (
            client.post(f"/models/{model_id}/run", headers=main_api.admin_headers()).status_code
            == 200
        )
        r = client.post(
            f"/models/{model_id}/invocations",
            content=json.dumps({"x": "y" * 5000}).encode(),
            headers={**main_api.user_headers(), "Content-Type": "application/json"},
        )
        assert r.status_code == 413


# ------------------------------------------------------------------ ML-API restarts
def test_state_is_recovered_from_labels_after_an_ml_api_restart(
    main_api: MainApi, docker_env: DockerEnv, docker_client: Any, namespace: str
) -> None:
    admin, user = main_api.admin_headers(), main_api.user_headers()
    running = main_api.register(image=docker_env.image)
    crashed = main_api.register(image=docker_env.image)
    failed = main_api.register(image=docker_env.broken_image)
    with ml_api(main_api, docker_env, namespace, start_timeout_s=2) as client:
        assert client.post(f"/models/{running}/run", headers=admin).status_code == 200
        assert client.post(f"/models/{crashed}/run", headers=admin).status_code == 200
        assert client.post(f"/models/{failed}/run", headers=admin).status_code == 503
        before = _state(client, running, admin)
    # the first ML-API is gone; its containers are not
    running_c = _container_of(docker_client, namespace, running)
    assert running_c.status == "running"
    _container_of(docker_client, namespace, crashed).kill()  # dies while nobody watches

    with ml_api(main_api, docker_env, namespace) as client:
        after = _state(client, running, admin)
        assert after["state"] == "running"
        assert after["container_id"] == before["container_id"]
        r = client.post(
            f"/models/{running}/invocations", json={"n_atoms": 2, "ecutwfc": 25}, headers=user
        )
        assert r.status_code == 200, r.text
        wait_for(lambda: _state(client, running, admin)["health"] == "healthy", what="ping")
        # the one that died meanwhile is treated as any crash: restarted
        wait_for(
            lambda: (
                (s := _state(client, crashed, admin))["state"] == "running" and s["restarts"] == 1
            ),
            timeout=30,
            what="restart of the crashed model",
        )
        # the failed one stays failed, with the reason the main API kept
        state = _state(client, failed, admin)
        assert state["state"] == "failed"
        assert state["last_error"].startswith("did not answer GET /ping on port 8080")
        health = client.get("/health").json()
        assert health["engine"] == "ok"
        assert health["main_api"] == "ok"
