"""Log lines: the persisting handler, listing with filters, the SSE tail, deletion, agents."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import Calculation, ServiceLog
from hpcgate.domain.access import Role
from hpcgate.logging import bind_context
from hpcgate.services.logs import DatabaseLogHandler, attach_database_logging
from hpcgate.settings import Settings
from tests.helpers.api import api_client, auth_headers, new_api_key, new_cluster, new_user, unique

pytestmark = pytest.mark.integration


def _lines(engine: Engine, source: str) -> list[ServiceLog]:
    with Session(engine) as s:
        return list(
            s.scalars(select(ServiceLog).where(ServiceLog.source == source).order_by(ServiceLog.id))
        )


def test_handler_persists_warnings_with_context_and_redaction(db_engine: Engine) -> None:
    source = unique("svc-")
    cluster = new_cluster(db_engine)
    logger = logging.getLogger(f"hpcgate.test.{source}")
    logger.setLevel(logging.DEBUG)
    handler = DatabaseLogHandler(sessionmaker(db_engine), source, flush_interval=0.05)
    logger.addHandler(handler)
    try:
        logger.info("info is below the handler level")
        with bind_context(cluster_id=cluster.id, job_id="123"):
            logger.warning("disk almost full, password=hunter2 token: abc.def")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("tick failed")
        # a calculation id that does not exist: kept, moved to the context
        logger.error("orphan", extra={"ctx": {"calc_id": 999_999_999}})
        assert handler.drain(5)
    finally:
        logger.removeHandler(handler)
        handler.close()
    rows = _lines(db_engine, source)
    assert [r.level for r in rows] == ["warning", "error", "error"]
    warning, failure, orphan = rows
    assert warning.cluster_id == cluster.id
    assert warning.context["job_id"] == "123"
    assert "hunter2" not in warning.message
    assert "password=***" in warning.message
    assert "RuntimeError: boom" in failure.message
    assert orphan.calculation_id is None
    assert orphan.context["unknown_calculation_id"] == 999_999_999


def test_handler_never_recurses_and_never_blocks(db_engine: Engine) -> None:
    source = unique("svc-")
    broken = sessionmaker(bind=None)  # every write fails
    handler = DatabaseLogHandler(broken, source, flush_interval=0.01, max_queue=10)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        started = time.monotonic()
        for i in range(200):
            logging.getLogger("hpcgate.test.flood").warning("line %d", i)
        assert time.monotonic() - started < 2.0  # emit only enqueues
        handler.drain(5)
        assert handler.dropped >= 190  # queue full or write failed: dropped, counted
        # SQLAlchemy's own warnings are never persisted (they would come from the writer)
        logging.getLogger("sqlalchemy.engine").warning("ignored")
    finally:
        root.removeHandler(handler)
        handler.close()
    with Session(db_engine) as s:
        assert (
            s.scalar(
                select(func.count()).select_from(ServiceLog).where(ServiceLog.source == source)
            )
            == 0
        )


def test_attach_database_logging(db_engine: Engine) -> None:
    source = unique("worker-")
    handler = attach_database_logging(sessionmaker(db_engine), source)
    try:
        logging.getLogger("hpcgate.test.attached").warning("via root")
        logging.getLogger("hpcgate.test.attached").info("not persisted")
        handler.drain(5)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert [r.message for r in _lines(db_engine, source)] == ["via root"]


def _seed(engine: Engine, source: str, count: int, **kw: Any) -> list[int]:
    with Session(engine) as s:
        rows = [
            ServiceLog(
                source=source,
                level=kw.get("level", "info"),
                message=f"m{i}",
                **{k: v for k, v in kw.items() if k != "level"},
            )
            for i in range(count)
        ]
        s.add_all(rows)
        s.commit()
        return [r.id for r in rows]


def test_list_logs_filters_and_pagination(settings: Settings, db_engine: Engine) -> None:
    h = auth_headers(new_user(db_engine), settings)
    source = unique("list-")
    cluster = new_cluster(db_engine)
    ids = _seed(db_engine, source, 5, level="info")
    err = _seed(db_engine, source, 2, level="error", cluster_id=cluster.id)
    with api_client(settings, db_engine) as client:
        page = client.get("/logs", params={"source": source, "limit": 3}, headers=h).json()
        assert [x["id"] for x in page["items"]] == sorted(ids + err, reverse=True)[:3]
        assert page["next_cursor"]
        page2 = client.get(
            "/logs", params={"source": source, "limit": 3, "cursor": page["next_cursor"]}, headers=h
        ).json()
        page3 = client.get(
            "/logs",
            params={"source": source, "limit": 3, "cursor": page2["next_cursor"]},
            headers=h,
        ).json()
        got = [x["id"] for p in (page, page2, page3) for x in p["items"]]
        assert got == sorted(ids + err, reverse=True)
        assert page3["next_cursor"] is None

        only_errors = client.get(
            "/logs", params={"source": source, "level": "warning"}, headers=h
        ).json()
        assert sorted(x["id"] for x in only_errors["items"]) == err
        by_cluster = client.get("/logs", params={"cluster_id": cluster.id}, headers=h).json()
        assert sorted(x["id"] for x in by_cluster["items"]) == err
        prefix = client.get("/logs", params={"source": source[:-3] + "*"}, headers=h).json()
        assert len(prefix["items"]) == 7
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert (
            client.get("/logs", params={"source": source, "since": future}, headers=h).json()[
                "items"
            ]
            == []
        )
        assert client.get("/logs", params={"cursor": "abc"}, headers=h).status_code == 422
        # digits that are not ASCII (str.isdigit() says yes, int() says no): a 422, never a 500
        for odd in ("\u00b3", "\u2460", "1\u0662"):
            assert client.get("/logs", params={"cursor": odd}, headers=h).status_code == 422
        assert client.get("/logs", params={"level": "loud"}, headers=h).status_code == 422
        assert client.get("/logs", params={"limit": 0}, headers=h).status_code == 422


def _read_events(
    response: Any, stop: threading.Event, out: list[dict[str, Any]], raw: list[str]
) -> None:
    event: dict[str, Any] = {}
    for line in response.iter_lines():
        raw.append(line)
        if line.startswith("id: "):
            event["id"] = int(line[4:])
        elif line.startswith("event: "):
            event["event"] = line[7:]
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])
        elif line == "" and event:
            out.append(event)
            event = {}
            if stop.is_set():
                return


def test_log_stream_sends_backlog_then_live_lines(settings: Settings, db_engine: Engine) -> None:
    h = auth_headers(new_user(db_engine), settings)
    source = unique("sse-")
    first = _seed(db_engine, source, 2)
    _seed(db_engine, unique("other-"), 1)
    with api_client(settings, db_engine) as client:
        params = {
            "source": source,
            "after_id": first[0] - 1,
            "poll_s": 1,
            "heartbeat_s": 1,
            "max_duration_s": 3,
        }
        with client.stream("GET", "/logs/stream", params=params, headers=h) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events: list[dict[str, Any]] = []
            raw: list[str] = []
            stop = threading.Event()
            reader = threading.Thread(target=_read_events, args=(response, stop, events, raw))
            reader.start()
            time.sleep(0.5)
            live = _seed(db_engine, source, 1, level="error")
            reader.join(timeout=10)
        logs = [e for e in events if e.get("event") == "log"]
        assert [e["id"] for e in logs] == first + live
        assert logs[-1]["data"]["level"] == "error"
        assert all(e["data"]["source"] == source for e in logs)
        assert events[-1]["event"] == "end"
        assert ": keepalive" in raw
        assert raw[0] == "retry: 3000"


def test_log_stream_resumes_from_last_event_id(settings: Settings, db_engine: Engine) -> None:
    h = auth_headers(new_user(db_engine), settings)
    source = unique("sse-")
    ids = _seed(db_engine, source, 3)
    with api_client(settings, db_engine) as client:
        params = {"source": source, "max_duration_s": 0}
        headers = {**h, "Last-Event-ID": str(ids[0])}
        with client.stream("GET", "/logs/stream", params=params, headers=headers) as response:
            body = response.read().decode()
        assert [int(x[4:]) for x in body.splitlines() if x.startswith("id: ")] == ids[1:]
        # without a cursor the stream starts at the current end: nothing old is replayed
        with client.stream("GET", "/logs/stream", params=params, headers=h) as response:
            assert "event: log" not in response.read().decode()


def test_log_stream_needs_a_user(settings: Settings, db_engine: Engine) -> None:
    with api_client(settings, db_engine) as client, client.stream("GET", "/logs/stream") as r:
        assert r.status_code == 401


def test_delete_logs(settings: Settings, db_engine: Engine) -> None:
    admin = auth_headers(new_user(db_engine, role=Role.ADMIN), settings)
    user = auth_headers(new_user(db_engine), settings)
    source = unique("del-")
    old = _seed(db_engine, source, 3, ts=datetime.now(UTC) - timedelta(days=40))
    recent = _seed(db_engine, source, 2)
    with api_client(settings, db_engine) as client:
        assert client.delete("/logs", params={"source": source}, headers=user).status_code == 403
        assert client.delete("/logs", headers=admin).status_code == 422  # no filter, no all=true
        cutoff = (datetime.now(UTC) - timedelta(days=30)).isoformat()
        r = client.delete("/logs", params={"source": source, "before": cutoff}, headers=admin)
        assert r.status_code == 200
        assert r.json() == {"deleted": 3}
        left = [
            x["id"]
            for x in client.get("/logs", params={"source": source}, headers=admin).json()["items"]
        ]
        assert sorted(left) == recent
        assert set(old).isdisjoint(left)


def test_agent_posts_log_lines(settings: Settings, db_engine: Engine) -> None:
    cluster = new_cluster(db_engine)
    other_cluster = new_cluster(db_engine)
    owner = new_user(db_engine)
    _, key = new_api_key(db_engine, cluster=cluster)
    with Session(db_engine) as s:
        mine = Calculation(name="c", owner_id=owner.id, cluster_id=cluster.id, logical_queue="q")
        theirs = Calculation(
            name="d", owner_id=owner.id, cluster_id=other_cluster.id, logical_queue="q"
        )
        s.add_all([mine, theirs])
        s.commit()
        mine_id, theirs_id = mine.id, theirs.id
    body = {
        "lines": [
            {
                "level": "warning",
                "message": "sbatch slow",
                "calculation_id": mine_id,
                "ts": "2026-01-01T10:00:00",
            },
            {
                "level": "error",
                "message": "not mine",
                "calculation_id": theirs_id,
                "context": {"rc": 1},
            },
            {"message": "api_key=hpcg_abcdefgh_SECRETSECRETSECRETSECRET"},
        ]
    }
    with api_client(settings, db_engine) as client:
        r = client.post("/agent/logs", json=body, headers={"X-API-Key": key})
        assert r.status_code == 201, r.text
        assert r.json() == {"accepted": 3}
        assert (
            client.post("/agent/logs", json={"lines": []}, headers={"X-API-Key": key}).status_code
            == 422
        )
        assert (
            client.post(
                "/agent/logs",
                json={"lines": [{"message": "x", "level": "loud"}]},
                headers={"X-API-Key": key},
            ).status_code
            == 422
        )
    rows = _lines(db_engine, f"agent:{cluster.name}")
    assert [r.level for r in rows] == ["warning", "error", "info"]
    assert rows[0].calculation_id == mine_id
    assert rows[0].ts == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert rows[1].calculation_id is None  # another cluster's calculation is not trusted
    assert rows[1].context == {"rc": 1, "unknown_calculation_id": theirs_id}
    assert all(r.cluster_id == cluster.id for r in rows)
    assert "SECRET" not in rows[2].message
