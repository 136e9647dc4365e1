"""`hpcgate demo`, `serve` and `worker` stop cleanly on SIGTERM (systemd, `docker stop`, a
closed terminal), as real processes on the embedded PostgreSQL.

What it proves: a SIGTERM'd process exits 0 after its cleanup; the embedded PostgreSQL
stops with the last process using it (a worker leaving does not stop the server the API
still uses); after a demo killed outright (SIGKILL, no cleanup at all) left its PostgreSQL
running, the next start takes that server over and stops it when it ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers.live_api import free_port

pytestmark = pytest.mark.integration


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCGATE_")}
    env.update(
        HPCGATE_ENV="dev",
        HPCGATE_PATHS__DATA_DIR=str(data_dir),
        HPCGATE_LOCAL__JOB_USER="",
        # no SIESTA seeding: these tests are about processes, not calculations
        HPCGATE_SIESTA_PSEUDOS=str(data_dir / "no-pseudos"),
        HPCGATE_SCHEDULER__POLL_INTERVAL_S="1",
    )
    return env


@contextmanager
def started(args: list[str], data_dir: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hpcgate.cli", *args],
            env=_env(data_dir),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("no /health: " + log.read_text(errors="replace")[-3000:])


def _postmaster(data_dir: Path) -> psutil.Process:
    pid_file = data_dir / "postgres" / "postmaster.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the embedded PostgreSQL never started"
        time.sleep(0.2)
    return psutil.Process(int(pid_file.read_text().splitlines()[0]))


def _sigterm(proc: subprocess.Popen[bytes], log: Path) -> None:
    before = log.stat().st_size
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        raise AssertionError("did not stop on SIGTERM: " + log.read_text()[-3000:]) from None
    assert code == 0, log.read_text(errors="replace")[-3000:]
    with log.open("rb") as fh:  # what the stop itself wrote: no traceback
        fh.seek(before)
        assert b"Traceback" not in fh.read()


def _gone(postmaster: psutil.Process, data_dir: Path) -> None:
    try:
        postmaster.wait(timeout=30)
    except psutil.TimeoutExpired:
        raise AssertionError(f"the embedded PostgreSQL {postmaster.pid} still runs") from None
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


def test_serve_and_worker_stop_on_sigterm_and_the_last_one_stops_postgres(
    tmp_path: Path,
) -> None:
    data, log = tmp_path / "data", tmp_path / "procs.log"
    port = free_port()
    with started(["serve", "--port", str(port)], data, log) as api:
        _healthy(port, api, log)
        postmaster = _postmaster(data)
        with started(["worker"], data, log) as worker:
            while "worker started" not in log.read_text(errors="replace"):
                assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
                time.sleep(0.2)
            _sigterm(worker, log)
        # the API still uses the server: it keeps running and answering
        assert postmaster.is_running()
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        _sigterm(api, log)
    _gone(postmaster, data)


def test_demo_stops_postgres_on_sigterm_even_after_a_killed_one_left_it_running(
    tmp_path: Path,
) -> None:
    data, log = tmp_path / "data", tmp_path / "demo.log"
    port = free_port()
    with started(["demo", "--port", str(port)], data, log) as demo:
        _healthy(port, demo, log)
        postmaster = _postmaster(data)
        demo.kill()  # SIGKILL, no cleanup at all: the server is orphaned
        demo.wait()
    assert postmaster.is_running()

    with started(["demo", "--port", str(port)], data, log) as again:
        _healthy(port, again, log)
        assert _postmaster(data).pid == postmaster.pid  # the orphan, taken over
        _sigterm(again, log)
    _gone(postmaster, data)
    assert "takes it over" in log.read_text(errors="replace")
