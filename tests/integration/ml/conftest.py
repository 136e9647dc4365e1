"""The ML-API against the real Docker engine and a real main API on loopback.

* the engine and images come from ``scripts/services/docker.sh`` (its env file, default
  ``/var/lib/hpcgate-test/docker/env``); tests skip naming what is missing;
* the main API is ``hpcgate serve``'s app in a uvicorn thread on a free loopback port
  (``tests/helpers/live_api.py``) over a scratch database of this module's own;
* each test gets its own label namespace, so its ML-API sees only its containers, and
  every container of that namespace is removed afterwards.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine

from hpcgate.api.app import create_app
from hpcgate.db import migrate
from hpcgate.domain.access import Role
from hpcgate.settings import Settings
from tests.conftest import create_scratch_database, drop_database
from tests.helpers.api import new_api_key, new_user
from tests.helpers.ci import missing
from tests.helpers.live_api import live_server
from tests.integration.ml.ml_env import ENV_FILE, DockerEnv, MainApi, parse_env


@pytest.fixture(scope="session")
def docker_env() -> DockerEnv:
    if not ENV_FILE.is_file():
        missing(f"no Docker test engine: run scripts/services/docker.sh ({ENV_FILE} missing)")
    values = parse_env(ENV_FILE)
    env = DockerEnv(
        host=values.get("DOCKER_HOST", ""),
        image=values.get("HPCGATE_TEST_ML_IMAGE", ""),
        broken_image=values.get("HPCGATE_TEST_ML_BROKEN_IMAGE", ""),
    )
    import docker

    problem = None
    try:
        client = docker.DockerClient(base_url=env.host, timeout=10)
        try:
            client.ping()
            for image in (env.image, env.broken_image):
                client.images.get(image)
        finally:
            client.close()
    except Exception as exc:
        problem = f"{type(exc).__name__}: {exc}"
    if problem is not None:
        missing(
            f"Docker test engine at {env.host} not usable ({problem}); "
            "run scripts/services/docker.sh"
        )
    return env


@pytest.fixture(scope="session")
def docker_client(docker_env: DockerEnv) -> Iterator[Any]:
    import docker

    client = docker.DockerClient(base_url=docker_env.host, timeout=60)
    yield client
    client.close()


@pytest.fixture(scope="module")
def main_api(
    postgres_available: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MainApi]:
    url = create_scratch_database("hpcgate_ml")
    engine = create_engine(url, pool_size=5, max_overflow=10)
    try:
        migrate.upgrade(url)
        settings = Settings(
            env="test",
            database={"url": url},
            auth={"secret_key": "test-secret-key-0123456789abcdef", "cookie_secure": False},
            paths={"data_dir": str(tmp_path_factory.mktemp("ml-main-api"))},
        )
        admin = new_user(engine, role=Role.ADMIN)
        user = new_user(engine, role=Role.USER)
        _, key = new_api_key(engine, name="ml-api")
        with live_server(create_app(settings, engine=engine)) as base:
            yield MainApi(base, settings, engine, admin, user, key)
    finally:
        engine.dispose()
        drop_database(url)


@pytest.fixture
def namespace(docker_client: Any) -> Iterator[str]:
    ns = f"t{uuid.uuid4().hex[:10]}"
    yield ns
    for c in docker_client.containers.list(all=True, filters={"label": f"hpcgate.namespace={ns}"}):
        with contextlib.suppress(Exception):
            c.remove(force=True)
