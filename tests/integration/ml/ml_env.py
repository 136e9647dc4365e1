"""Helpers for the ML-API integration tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import shlex
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hpcgate.settings import Settings
from ml.api import create_ml_app
from ml.settings import MlApiConfig
from tests.helpers.api import access_token

ENV_FILE = Path(os.environ.get("HPCGATE_TEST_DOCKER_ENV", "/var/lib/hpcgate-test/docker/env"))


@dataclass(frozen=True)
class DockerEnv:
    host: str
    image: str
    broken_image: str


def parse_env(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip().removeprefix("export ")
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            words = shlex.split(value)
            out[key.strip()] = words[0] if words else ""
    return out


@dataclass
class MainApi:
    url: str
    settings: Settings
    engine: Engine
    admin: Any
    user: Any
    ml_key: str

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {access_token(self.admin, self.settings)}"}

    def user_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {access_token(self.user, self.settings)}"}

    def model(self, model_id: int) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/ml/models/{model_id}", headers=self.admin_headers(), timeout=10)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def register(self, **fields: Any) -> int:
        body = {
            "name": fields.pop("name", f"m-{uuid.uuid4().hex[:8]}"),
            "version": "1.0.0",
            **fields,
        }
        r = httpx.post(f"{self.url}/ml/models", json=body, headers=self.admin_headers(), timeout=10)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])


def ml_config(main_api: MainApi, docker_env: DockerEnv, namespace: str, **kw: Any) -> MlApiConfig:
    values: dict[str, Any] = {
        "main_api_url": main_api.url,
        "api_key": main_api.ml_key,
        "docker_host": docker_env.host,
        "namespace": namespace,
        "ping_interval_s": 0.3,
        "ping_timeout_s": 1.0,
        "max_restarts": 2,
        "failures_before_restart": 1,
        "backoff_initial_s": 0.2,
        "backoff_max_s": 1.0,
        "start_timeout_s": 20.0,
        "stop_timeout_s": 5.0,
        "sync_interval_s": 2.0,
        "proxy_timeout_s": 10.0,
        **kw,
    }
    return MlApiConfig(**values)


@contextmanager
def ml_api(
    main_api: MainApi, docker_env: DockerEnv, namespace: str, **kw: Any
) -> Iterator[TestClient]:
    """An ML-API (lifespan, watchdog thread included) as a TestClient."""
    config = ml_config(main_api, docker_env, namespace, **kw)
    with TestClient(create_ml_app(main_api.settings, config)) as client:
        yield client


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 30.0, every: float = 0.1, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}: {last!r}")


def new_calculation(main_api: MainApi, *, code: str = "qe") -> int:
    """A committed calculation (and a cluster for it) owned by the main API's user."""
    from sqlalchemy.orm import Session

    from hpcgate.db.models import Calculation
    from tests.helpers.api import new_cluster

    cluster = new_cluster(main_api.engine)
    with Session(main_api.engine) as session:
        calc = Calculation(
            name=f"calc-{uuid.uuid4().hex[:6]}",
            owner_id=main_api.user.id,
            cluster_id=cluster.id,
            logical_queue="default",
            code=code,
            configuration={"kind": "single"},
        )
        session.add(calc)
        session.commit()
        return calc.id
