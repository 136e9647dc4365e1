"""The supervisor's policy on a fake engine: restarts, backoff, the limit, recovery, reports.

The real engine, real pings and a real main API are exercised in
tests/integration/ml/test_ml_api_docker.py; here every decision is checked step by step,
with pings and container deaths under the test's control and restarts run inline.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import pytest

import ml.containers as containers_mod
import ml.supervisor as supervisor_mod
from ml.engine import ContainerInfo, ContainerSpec
from ml.errors import ModelFailed
from ml.health import PingResult
from ml.manager import ModelManager
from ml.reporting import MainApiError, StateReporter
from ml.settings import MlApiConfig

NS = "unit"


class FakeEngine:
    def __init__(self) -> None:
        self.containers: dict[str, ContainerInfo] = {}
        self._ids = itertools.count(1)
        self.fail_next_run: str | None = None

    def ping(self) -> None:
        pass

    def list_managed(self, namespace: str) -> list[ContainerInfo]:
        return [
            c
            for c in self.containers.values()
            if c.labels.get("hpcgate.managed") == "true"
            and c.labels.get("hpcgate.namespace") == namespace
        ]

    def run(self, spec: ContainerSpec) -> ContainerInfo:
        from ml.engine import EngineError

        if self.fail_next_run:
            msg, self.fail_next_run = self.fail_next_run, None
            raise EngineError(msg)
        n = next(self._ids)
        info = ContainerInfo(
            id=f"c{n:064d}",
            name=spec.name,
            image=spec.image,
            status="running",
            exit_code=0,
            host_port=40000 + n,
            labels=spec.labels(),
        )
        self.containers[info.id] = info
        return info

    def inspect(self, container_id: str) -> ContainerInfo | None:
        return self.containers.get(container_id)

    def stop(self, container_id: str, timeout: float) -> None:
        if container_id in self.containers:
            self.containers[container_id] = replace(
                self.containers[container_id], status="exited", exit_code=0
            )

    def remove(self, container_id: str) -> None:
        self.containers.pop(container_id, None)

    def logs(self, container_id: str, tail: int) -> str:
        return "2026-01-01T00:00:00Z model listening\n" if container_id in self.containers else ""

    def rename(self, container_id: str, name: str) -> None:
        self.containers[container_id] = replace(self.containers[container_id], name=name)

    def close(self) -> None:
        pass

    # test controls
    def crash(self, container_id: str, code: int = 3) -> None:
        self.containers[container_id] = replace(
            self.containers[container_id], status="exited", exit_code=code
        )


class FakeMainApi:
    def __init__(self, models: dict[int, dict[str, Any]]) -> None:
        self.models = models
        self.reports: list[tuple[int, dict[str, Any]]] = []
        self.down = False

    def list_models(self) -> list[dict[str, Any]]:
        if self.down:
            raise MainApiError("down")
        return [dict(m) for m in self.models.values()]  # fresh copies, as JSON would be

    def get_model(self, model_id: int) -> dict[str, Any] | None:
        if self.down:
            raise MainApiError("down")
        found = self.models.get(model_id)
        return dict(found) if found is not None else None

    def report_state(self, model_id: int, payload: dict[str, Any]) -> bool:
        if self.down:
            raise MainApiError("down")
        if model_id not in self.models:
            return False  # the real client: 404
        self.reports.append((model_id, payload))
        self.models[model_id].update(payload)
        return True

    def states(self, model_id: int) -> list[str]:
        return [p["state"] for mid, p in self.reports if mid == model_id]


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> dict[int, str]:
    """host port -> "ok" | "fail" | "never" (controls probe() and wait_for_ping())."""
    answers: dict[int, str] = {}

    def probe(client: Any, host: str, port: int, timeout: float) -> PingResult:
        mode = answers.get(port, "ok")
        return PingResult(mode == "ok", "HTTP 200" if mode == "ok" else "HTTP 503", 0.0)

    def wait_for_ping(client: Any, host: str, port: int | None, **kw: Any) -> PingResult:
        gone = kw["alive"]()
        if gone is not None:
            return PingResult(False, gone, 0.0)
        mode = answers.get(port or 0, "ok")
        if mode == "never":
            return PingResult(False, "no answer (connection refused)", kw["deadline_s"])
        return PingResult(True, "HTTP 200", 0.0)

    monkeypatch.setattr(supervisor_mod, "probe", probe)
    monkeypatch.setattr(containers_mod, "wait_for_ping", wait_for_ping)
    return answers


def _setup(**config: Any) -> tuple[ModelManager, FakeEngine, FakeMainApi]:
    engine = FakeEngine()
    api = FakeMainApi(
        {
            1: {
                "id": 1,
                "name": "m",
                "version": "1",
                "image": "img:1",
                "state": "registered",
                "environment": {"A": "1"},
                "resources": {"cpus": 0.5, "memory_mb": 64},
            },
        }
    )
    values: dict[str, Any] = {
        "namespace": NS,
        "max_restarts": 2,
        "failures_before_restart": 2,
        "backoff_initial_s": 1.0,
        "backoff_max_s": 3.0,
        "start_timeout_s": 5,
        **config,
    }
    mgr = ModelManager(engine, MlApiConfig(**values), api)  # type: ignore[arg-type]
    mgr.spawn = lambda target, rt: target(rt)  # restarts inline
    return mgr, engine, api


def _due(mgr: ModelManager, model_id: int = 1) -> None:
    """Make a scheduled restart due now."""
    rt = mgr.models[model_id]
    assert rt.next_restart_at is not None
    rt.next_restart_at = 0.0


def test_run_starts_a_labelled_container_and_reports(pings: dict[int, str]) -> None:
    mgr, engine, api = _setup()
    out = mgr.run(1)
    assert out["state"] == "running"
    assert out["health"] == "healthy"
    (info,) = engine.containers.values()
    assert info.labels == {
        "hpcgate.managed": "true",
        "hpcgate.namespace": NS,
        "hpcgate.model_id": "1",
        "hpcgate.model_version": "1",
        "hpcgate.restarts": "0",
        "hpcgate.streak": "0",
    }
    assert info.name.startswith(f"hpcgate-{NS}-model-1-")
    assert api.states(1) == ["starting", "running"]
    # idempotent
    assert mgr.run(1)["container_id"] == out["container_id"]
    assert len(engine.containers) == 1


def test_unknown_model_is_not_found(pings: dict[int, str]) -> None:
    from hpcgate.errors import NotFound

    mgr, _, _ = _setup()
    for call in (mgr.run, mgr.stop, mgr.delete, mgr.snapshot, mgr.endpoint):
        with pytest.raises(NotFound):
            call(99)


def test_one_failed_ping_is_tolerated_two_restart(pings: dict[int, str]) -> None:
    mgr, engine, api = _setup()
    mgr.run(1)
    rt = mgr.models[1]
    pings[rt.host_port] = "fail"  # type: ignore[index]
    mgr.tick()
    assert (rt.state, rt.health, rt.failures) == ("running", "unhealthy", 1)
    mgr.tick()
    assert rt.state == "restarting"
    assert rt.last_error == "GET /ping failed 2 time(s) in a row: HTTP 503"
    old = rt.container_id
    _due(mgr)
    mgr.tick()
    assert rt.state == "running"
    assert rt.health == "healthy"
    assert (rt.restarts, rt.streak) == (1, 1)
    assert rt.container_id != old
    assert old not in engine.containers  # recreated, not restarted in place
    assert engine.containers[rt.container_id].labels["hpcgate.restarts"] == "1"  # type: ignore[index]
    assert api.models[1]["restarts"] == 1


def test_backoff_doubles_and_is_capped(pings: dict[int, str]) -> None:
    import time

    mgr, engine, _ = _setup(max_restarts=5, failures_before_restart=1)
    mgr.run(1)
    rt = mgr.models[1]
    delays = []
    for _ in range(4):
        engine.crash(rt.container_id)  # type: ignore[arg-type]
        mgr.tick()
        assert rt.state == "restarting"
        delays.append(round(rt.next_restart_at - time.monotonic()))  # type: ignore[operator]
        _due(mgr)
        mgr.tick()
        assert rt.state == "running"
    assert delays == [1, 2, 3, 3]


def test_crash_loop_gives_up_at_the_limit(pings: dict[int, str]) -> None:
    mgr, engine, api = _setup(max_restarts=2)
    mgr.run(1)
    rt = mgr.models[1]
    for expected_streak in (1, 2):
        engine.crash(rt.container_id, 3)  # type: ignore[arg-type]
        mgr.tick()
        assert rt.state == "restarting"
        assert rt.last_error == "container exited with code 3"
        _due(mgr)
        mgr.tick()
        assert rt.streak == expected_streak
    engine.crash(rt.container_id, 3)  # type: ignore[arg-type]
    mgr.tick()
    assert rt.state == "failed"
    assert rt.last_error == "gave up after 2 restart(s): container exited with code 3"
    kept = engine.containers[rt.container_id]  # type: ignore[index]
    assert kept.name.endswith("-failed")
    assert api.models[1]["state"] == "failed"
    assert api.models[1]["restarts"] == 2
    # failed models are left alone by the watchdog
    mgr.tick()
    assert rt.state == "failed"
    assert len(engine.containers) == 1


def test_zero_restarts_allowed_fails_at_once(pings: dict[int, str]) -> None:
    mgr, engine, _ = _setup(max_restarts=0)
    mgr.run(1)
    engine.crash(mgr.models[1].container_id)  # type: ignore[arg-type]
    mgr.tick()
    assert mgr.models[1].state == "failed"


def test_a_restart_that_never_answers_counts_as_a_failure(pings: dict[int, str]) -> None:
    mgr, engine, _ = _setup(max_restarts=1, failures_before_restart=1)
    mgr.run(1)
    rt = mgr.models[1]
    pings[40002] = "never"  # the replacement container's port
    engine.crash(rt.container_id)  # type: ignore[arg-type]
    mgr.tick()
    _due(mgr)
    mgr.tick()
    assert rt.state == "failed"
    assert "did not answer GET /ping on port 8080 within 5 s" in (rt.last_error or "")


def test_healthy_long_enough_starts_a_new_streak(pings: dict[int, str]) -> None:
    mgr, engine, _ = _setup(failures_before_restart=1, healthy_reset_s=60)
    mgr.run(1)
    rt = mgr.models[1]
    engine.crash(rt.container_id)  # type: ignore[arg-type]
    mgr.tick()
    _due(mgr)
    mgr.tick()
    assert (rt.restarts, rt.streak) == (1, 1)
    mgr.tick()
    assert rt.streak == 1
    rt.healthy_since = (rt.healthy_since or 0) - 61
    mgr.tick()
    assert (rt.restarts, rt.streak) == (1, 0)


def test_contract_failure_on_run_is_failed_without_restarts(pings: dict[int, str]) -> None:
    mgr, engine, _api = _setup()
    pings[40001] = "never"
    with pytest.raises(ModelFailed) as err:
        mgr.run(1)
    assert err.value.message.startswith("did not answer GET /ping on port 8080 within 5 s")
    assert err.value.details["model"]["state"] == "failed"
    mgr.tick()
    assert mgr.models[1].state == "failed"
    assert mgr.models[1].restarts == 0
    # running it again replaces the failed container
    pings[40002] = "ok"
    assert mgr.run(1)["state"] == "running"
    assert len(engine.containers) == 1


def test_engine_error_on_run_is_reported(pings: dict[int, str]) -> None:
    mgr, engine, api = _setup()
    engine.fail_next_run = "image 'img:1' is not on the engine"
    with pytest.raises(ModelFailed):
        mgr.run(1)
    assert api.models[1]["state"] == "failed"
    assert api.models[1]["last_error"] == "image 'img:1' is not on the engine"


def test_stop_removes_the_container_and_keeps_its_logs(pings: dict[int, str]) -> None:
    from hpcgate.errors import HpcgateError

    mgr, engine, api = _setup()
    mgr.run(1)
    assert mgr.stop(1)["state"] == "stopped"
    assert engine.containers == {}
    assert "model listening" in mgr.logs(1, 10)["previous"]
    with pytest.raises(HpcgateError) as err:
        mgr.endpoint(1)
    assert err.value.status_code == 503
    mgr.delete(1)
    assert 1 not in mgr.models
    assert api.models[1]["state"] == "registered"


def test_recovery_from_labels(pings: dict[int, str]) -> None:
    mgr, engine, api = _setup(failures_before_restart=1)
    api.models[2] = {**api.models[1], "id": 2}
    api.models[3] = {**api.models[1], "id": 3}
    api.models[4] = {**api.models[1], "id": 4}
    for mid in (1, 2, 3):
        mgr.run(mid)
    engine.crash(mgr.models[2].container_id)  # type: ignore[arg-type]
    # model 3 fails for good
    mgr.models[3].streak = 2
    engine.crash(mgr.models[3].container_id)  # type: ignore[arg-type]
    mgr.tick()
    assert mgr.models[3].state == "failed"
    api.models[4]["state"] = "running"  # the record says running, no container exists
    # a new ML-API on the same engine
    fresh = ModelManager(engine, mgr.config, api)  # type: ignore[arg-type]
    fresh.spawn = lambda target, rt: target(rt)
    fresh.recover()
    assert fresh.models[1].state == "running"
    assert fresh.models[1].container_id == mgr.models[1].container_id
    assert fresh.models[1].host_port == mgr.models[1].host_port
    assert fresh.models[2].state == "restarting"  # died unwatched: a failure like any other
    assert fresh.models[3].state == "failed"
    assert fresh.models[3].last_error == mgr.models[3].last_error
    assert fresh.models[4].state == "stopped"
    assert "disappeared" in (fresh.models[4].last_error or "")
    _due(fresh, 2)
    fresh.tick()
    assert fresh.models[2].state == "running"
    assert fresh.models[2].restarts == 1


def test_reports_wait_for_the_main_api(pings: dict[int, str]) -> None:
    mgr, engine, api = _setup(failures_before_restart=1)
    mgr.run(1)
    api.down = True
    engine.crash(mgr.models[1].container_id)  # type: ignore[arg-type]
    mgr.tick()
    _due(mgr)
    mgr.tick()
    assert mgr.reporter.pending() == {1: mgr.models[1].report()}
    assert api.models[1]["state"] == "running"  # the stale record
    assert api.models[1]["restarts"] == 0
    api.down = False
    mgr.tick()  # every tick flushes
    assert mgr.reporter.pending() == {}
    assert api.models[1]["restarts"] == 1
    # only the newest state was sent
    assert api.reports[-1][1]["state"] == "running"


def test_reporter_without_main_api_is_a_no_op() -> None:
    reporter = StateReporter(None)
    reporter.submit(1, {"state": "running"})
    assert reporter.flush() == 0
    assert reporter.pending() == {}


def test_backoff_settings() -> None:
    cfg = MlApiConfig(backoff_initial_s=0.5, backoff_max_s=10)
    assert [cfg.backoff(n) for n in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]
    assert cfg.backoff(10_000) == 10
    with pytest.raises(ValueError, match="backoff_max_s"):
        MlApiConfig(backoff_initial_s=5, backoff_max_s=1)
    with pytest.raises(ValueError, match="namespace"):
        MlApiConfig(namespace="Bad_NS")


def test_shared_settings_fill_the_gaps() -> None:
    from hpcgate.settings import MlSettings

    shared = MlSettings(
        docker_host="unix:///x.sock", ping_interval_s=7, ping_timeout_s=3, max_restarts=9
    )
    cfg = MlApiConfig().with_shared(shared)
    assert (cfg.docker_host, cfg.ping_interval, cfg.ping_timeout, cfg.restart_limit) == (
        "unix:///x.sock",
        7,
        3,
        9,
    )
    own = MlApiConfig(max_restarts=0, ping_interval_s=1).with_shared(shared)
    assert (own.restart_limit, own.ping_interval) == (0, 1)


def test_a_restart_waits_for_an_unreachable_main_api(pings: dict[int, str]) -> None:
    mgr, engine, api = _setup(failures_before_restart=1)
    mgr.run(1)
    # a new ML-API starts while the main API is down: nothing cached
    api.down = True
    engine.crash(mgr.models[1].container_id)  # type: ignore[arg-type]
    fresh = ModelManager(engine, mgr.config, api)  # type: ignore[arg-type]
    fresh.spawn = lambda target, rt: target(rt)
    fresh.recover()
    rt = fresh.models[1]
    assert rt.state == "restarting"
    _due(fresh)
    fresh.tick()
    assert rt.state == "restarting"  # deferred, not given up, not counted
    assert rt.streak == 0
    assert "waits for the main API" in (rt.last_error or "")
    api.down = False
    _due(fresh)
    fresh.tick()
    assert rt.state == "running"
    assert rt.restarts == 1


def test_a_model_deleted_meanwhile_is_not_restarted(pings: dict[int, str]) -> None:
    mgr, engine, api = _setup(failures_before_restart=1)
    mgr.run(1)
    engine.crash(mgr.models[1].container_id)  # type: ignore[arg-type]
    mgr.tick()
    del api.models[1]
    _due(mgr)
    mgr.tick()
    assert mgr.models[1].state == "failed"
    assert mgr.models[1].last_error == "the model is no longer registered"


def test_a_ping_refused_by_an_exiting_model_reports_the_exit(
    pings: dict[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash race: the engine still says running, the ping is reset, then the exit shows.

    The restart reason is the container's exit code (the cause), not the ping (its symptom).
    """
    mgr, engine, _api = _setup(failures_before_restart=1)
    mgr.run(1)
    rt = mgr.models[1]
    cid = rt.container_id
    assert cid is not None
    calls = {"n": 0}
    real_inspect = engine.inspect

    def inspect(container_id: str) -> ContainerInfo | None:
        calls["n"] += 1
        if calls["n"] == 2:  # the first look after the failed ping: the process is gone
            engine.crash(container_id, 3)
        return real_inspect(container_id)

    monkeypatch.setattr(engine, "inspect", inspect)
    monkeypatch.setattr(
        supervisor_mod,
        "probe",
        lambda *a, **k: PingResult(False, "no answer (connection reset by peer)", 0.0),
    )
    mgr.tick()
    assert rt.state == "restarting"
    assert rt.last_error == "container exited with code 3"


def test_a_hung_model_is_blamed_on_its_ping_without_waiting(
    pings: dict[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr, _engine, _ = _setup(failures_before_restart=1, exit_grace_s=60)
    mgr.run(1)
    rt = mgr.models[1]
    monkeypatch.setattr(
        supervisor_mod, "probe", lambda *a, **k: PingResult(False, "no answer within 2 s", 2.0)
    )
    mgr.tick()  # would block for a minute if a timed-out ping waited for an exit
    assert rt.state == "restarting"
    assert rt.last_error == "GET /ping failed 1 time(s) in a row: no answer within 2 s"
