"""A live hpcgate for client and CLI tests: uvicorn on loopback, a real PostgreSQL database of
this package's own, a local-executor cluster, and a real ``hpcgate worker`` process (the
same command users run) dispatching and harvesting what the CLI submits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from typer.testing import CliRunner, Result

from hpcgate.api.app import create_app
from hpcgate.cli import app as cli_app
from hpcgate.db import migrate
from hpcgate.db.models import QueueMapping
from hpcgate.db.models.clusters import AccessMode
from hpcgate.settings import Settings
from tests.conftest import create_scratch_database, drop_database
from tests.helpers.api import PASSWORD, new_api_key, new_cluster, new_user
from tests.helpers.live_api import live_server

SECRET = "client-test-secret-0123456789abcdef"


@dataclass
class Live:
    base: str
    url: str
    engine: Engine
    settings: Settings
    cluster_id: int
    cluster_name: str
    email: str
    password: str
    agent_key: str
    home: Path  # XDG_CONFIG_HOME of a user logged in once for the module

    def cli(self, *args: str, home: Path | None = None, stdin: str | None = None,
            env: dict[str, Any] | None = None) -> Result:  # fmt: skip
        """The real ``hpcgate`` typer app, in process (CliRunner)."""
        merged: dict[str, Any] = {
            "HPCGATE_URL": self.base,
            "HPCGATE_TOKEN": None,
            "XDG_CONFIG_HOME": str(home or self.home),
            "COLUMNS": "200",
            **(env or {}),
        }
        return CliRunner().invoke(cli_app, list(args), input=stdin, env=merged)

    def subprocess_env(self, home: Path | None = None) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HPCGATE_")}
        return {
            **clean,
            "HPCGATE_LOCAL__JOB_USER": "",
            "HPCGATE_URL": self.base,
            "XDG_CONFIG_HOME": str(home or self.home),
            "COLUMNS": "200",
        }


def one_line_error(result: Result, fragment: str) -> str:
    assert result.exit_code != 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("hpcgate: error: "), lines[0]
    assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory, postgres_available: str) -> Iterator[Live]:
    url = create_scratch_database("hpcgate_client")
    migrate.upgrade(url)
    engine = create_engine(url, pool_size=5, max_overflow=10)
    data = tmp_path_factory.mktemp("client-data")
    scratch = tmp_path_factory.mktemp("client-scratch")
    settings = Settings(
        env="test",
        database={"url": url},
        auth={"secret_key": SECRET, "cookie_secure": False, "login_rate_per_minute": 1000},
        paths={"data_dir": str(data)},
    )
    user = new_user(engine)
    cluster = new_cluster(
        engine,
        scheduler="local",
        access_mode=AccessMode.LOCAL,
        scratch_root=str(scratch),
        queues=[QueueMapping(logical_queue="default", partition="local")],
    )
    _, agent_key = new_api_key(engine, cluster=cluster)
    worker_log = open(data / "worker.log", "wb")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCGATE_")}
    env.update(
        HPCGATE_ENV="dev",
        HPCGATE_DATABASE_URL=url,
        HPCGATE_SECRET_KEY=SECRET,
        HPCGATE_PATHS__DATA_DIR=str(data),
        HPCGATE_SCHEDULER__POLL_INTERVAL_S="0.5",
        HPCGATE_LOCAL__JOB_USER="",
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "hpcgate.cli", "worker"],
        env=env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    home = tmp_path_factory.mktemp("client-home")
    try:
        with live_server(create_app(settings, engine=engine)) as base:
            live = Live(
                base, url, engine, settings, cluster.id, cluster.name, user.email, PASSWORD,
                agent_key, home,
            )  # fmt: skip
            res = live.cli("login", "--email", user.email, "--password-stdin", stdin=PASSWORD)
            assert res.exit_code == 0, res.output
            yield live
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        worker_log.close()
        engine.dispose()
        drop_database(url)
