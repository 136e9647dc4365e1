"""Service and agent log lines in ``service_logs``: a persisting handler, queries, deletion.

``DatabaseLogHandler`` is what the API and the worker attach (``attach_database_logging``)
to keep WARNING+ lines in the database, where ``GET /logs`` and the SSE stream show them:

- ``emit`` never touches the database: it formats the record (secrets redacted, bound
  context captured in the caller's thread) and puts it on a bounded queue; when the queue is
  full the line is dropped and counted - logging must never stall a request;
- one daemon thread writes batches (up to ``batch_size`` rows, or every ``flush_interval``
  seconds) in its own short transactions;
- never recursive: records emitted by the writer thread itself, and those of SQLAlchemy /
  psycopg (which the writer would produce), are ignored; write errors go to stderr, not to
  ``logging``;
- a batch whose foreign keys point at deleted calculations/clusters is retried row by row with
  those ids moved into ``context``, so a line is not lost because its calculation was deleted.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import Calculation, ServiceLog
from hpcgate.errors import InvalidInput
from hpcgate.logging import current_context, redact
from hpcgate.services.api_keys import AgentIdentity

LEVELS = ("debug", "info", "warning", "error", "critical")
_LEVEL_RANK = {name: i for i, name in enumerate(LEVELS)}
MAX_MESSAGE = 16_000
_IGNORED_LOGGERS = ("sqlalchemy", "psycopg", "hpcgate.services.logs")


def level_name(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def levels_at_least(level: str) -> list[str]:
    if level not in _LEVEL_RANK:
        raise InvalidInput(f"unknown level {level!r}; one of {', '.join(LEVELS)}")
    return list(LEVELS[_LEVEL_RANK[level] :])


def _as_int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


# ------------------------------------------------------------------ the handler


class DatabaseLogHandler(logging.Handler):
    def __init__(
        self,
        factory: sessionmaker[Session],
        source: str,
        *,
        level: int = logging.WARNING,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
    ) -> None:
        super().__init__(level)
        self.factory = factory
        self.source = source[:100]
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._stopped = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(
            target=self._run, name=f"db-log-writer:{self.source}", daemon=True
        )
        self._thread.start()

    # ---- caller side (any thread)
    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread.ident or record.name.startswith(_IGNORED_LOGGERS):
            return
        if self._stopped.is_set():
            return
        try:
            row = self._row(record)
        except Exception:
            self.handleError(record)
            return
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _row(self, record: logging.LogRecord) -> dict[str, Any]:
        context: dict[str, Any] = dict(current_context())
        extra = getattr(record, "ctx", None)
        if isinstance(extra, Mapping):
            context.update(extra)
        message = redact(record.getMessage())
        if record.exc_info:
            formatter = self.formatter or logging.Formatter()
            message += "\n" + redact(formatter.formatException(record.exc_info))
        calc = context.pop("calc_id", None) or context.pop("calculation_id", None)
        calculation_id = _as_int(calc)
        cluster_id = _as_int(context.pop("cluster_id", None))
        context["logger"] = record.name
        safe_context = {
            str(k)[:100].replace("\x00", ""): redact(str(v))[:1000].replace("\x00", "")
            for k, v in context.items()
        }
        return {
            "ts": datetime.fromtimestamp(record.created, UTC),
            "source": self.source,
            "level": level_name(record.levelno),
            "message": message[:MAX_MESSAGE].replace("\x00", "\\x00"),
            "calculation_id": calculation_id,
            "cluster_id": cluster_id,
            "context": safe_context,
        }

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every queued line is written (or ``timeout``); True when drained."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.1))
        return True

    def flush(self) -> None:
        self.drain()

    def close(self) -> None:
        if not self._stopped.is_set():
            self.drain()
            self._stopped.set()
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
            self._thread.join(timeout=5)
        super().close()

    # ---- writer thread
    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.flush_interval)
            except queue.Empty:
                if self._stopped.is_set():
                    return
                continue
            if first is None:
                return
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._stopped.set()
                    break
                batch.append(item)
            self._write(batch)
            with self._idle:
                self._pending -= len(batch)
                self._idle.notify_all()

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            written = write_log_rows(self.factory, rows)
        except Exception as exc:  # report without logging: logging here would recurse
            written = 0
            print(f"hpcgate: could not persist {len(rows)} log line(s): {exc!r}", file=sys.stderr)
        if written < len(rows):
            self.dropped += len(rows) - written
            print(f"hpcgate: dropped {len(rows) - written} log line(s)", file=sys.stderr)


def write_log_rows(factory: sessionmaker[Session], rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert rows in one transaction; on a foreign-key miss, row by row without the ids."""
    if not rows:
        return 0
    try:
        with factory() as session, session.begin():
            session.execute(insert(ServiceLog), [dict(r) for r in rows])
        return len(rows)
    except SQLAlchemyError:
        pass
    written = 0
    for row in rows:
        data = dict(row)
        try:
            with factory() as session, session.begin():
                session.execute(insert(ServiceLog), [data])
            written += 1
            continue
        except SQLAlchemyError:
            pass
        context = dict(data.get("context") or {})
        for key in ("calculation_id", "cluster_id"):
            if data.get(key) is not None:
                context[f"unknown_{key}"] = data[key]
            data[key] = None
        data["context"] = context
        try:
            with factory() as session, session.begin():
                session.execute(insert(ServiceLog), [data])
            written += 1
        except SQLAlchemyError:
            continue  # the database refuses this line whatever we do: counted as dropped
    return written


def attach_database_logging(
    factory: sessionmaker[Session], source: str, *, level: int = logging.WARNING
) -> DatabaseLogHandler:
    """Add a ``DatabaseLogHandler`` to the root logger (call ``close()`` on shutdown)."""
    handler = DatabaseLogHandler(factory, source, level=level)
    logging.getLogger().addHandler(handler)
    return handler


# ------------------------------------------------------------------ queries


@dataclass(frozen=True)
class LogFilter:
    source: str | None = None  # exact, or a prefix ending with "*" ("agent:*")
    level: str | None = None  # minimum level
    calculation_id: int | None = None
    cluster_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        if self.source:
            if self.source.endswith("*"):
                prefix = self.source[:-1]
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                stmt = stmt.where(ServiceLog.source.like(escaped + "%", escape="\\"))
            else:
                stmt = stmt.where(ServiceLog.source == self.source)
        if self.level:
            stmt = stmt.where(ServiceLog.level.in_(levels_at_least(self.level)))
        if self.calculation_id is not None:
            stmt = stmt.where(ServiceLog.calculation_id == self.calculation_id)
        if self.cluster_id is not None:
            stmt = stmt.where(ServiceLog.cluster_id == self.cluster_id)
        if self.since is not None:
            stmt = stmt.where(ServiceLog.ts >= self.since)
        if self.until is not None:
            stmt = stmt.where(ServiceLog.ts < self.until)
        return stmt

    @property
    def empty(self) -> bool:
        return not any(
            v is not None and v != ""
            for v in (
                self.source,
                self.level,
                self.calculation_id,
                self.cluster_id,
                self.since,
                self.until,
            )
        )


def parse_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    # ASCII digits only: str.isdigit() also accepts '³' or '①', which int() refuses (a 500).
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
        raise InvalidInput("cursor: not a cursor returned by this API")
    return int(cursor)


def list_logs(
    session: Session, flt: LogFilter, *, limit: int = 100, before_id: int | None = None
) -> tuple[list[ServiceLog], int | None]:
    """Newest first; returns the page and the cursor of the next (older) page, if any."""
    stmt = flt.apply(select(ServiceLog))
    if before_id is not None:
        stmt = stmt.where(ServiceLog.id < before_id)
    rows = list(session.scalars(stmt.order_by(ServiceLog.id.desc()).limit(limit + 1)))
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


def logs_after(
    session: Session, flt: LogFilter, after_id: int, *, limit: int = 500
) -> list[ServiceLog]:
    """Oldest first, strictly after ``after_id``: what a live tail needs."""
    stmt = flt.apply(select(ServiceLog)).where(ServiceLog.id > after_id)
    return list(session.scalars(stmt.order_by(ServiceLog.id).limit(limit)))


def latest_log_id(session: Session) -> int:
    return int(session.scalar(select(func.coalesce(func.max(ServiceLog.id), 0))) or 0)


def delete_logs(session: Session, flt: LogFilter, *, everything: bool = False) -> int:
    """Delete matching lines (and commit); refuses an unfiltered delete unless ``everything``."""
    if flt.empty and not everything:
        raise InvalidInput("give at least one filter (e.g. before=...) or all=true")
    ids = flt.apply(select(ServiceLog.id))
    result = session.execute(
        delete(ServiceLog)
        .where(ServiceLog.id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def store_agent_lines(
    session: Session, cluster: AgentIdentity, lines: Sequence[Mapping[str, Any]]
) -> int:
    """Lines an agent sent: source ``agent:<cluster>``; calculation ids outside this cluster
    are not trusted (moved into ``context``). Commits."""
    wanted = {int(x["calculation_id"]) for x in lines if x.get("calculation_id") is not None}
    valid: set[int] = set()
    if wanted:
        valid = set(
            session.scalars(
                select(Calculation.id).where(
                    Calculation.id.in_(wanted), Calculation.cluster_id == cluster.id
                )
            )
        )
    now = datetime.now(UTC)
    rows = []
    for line in lines:
        context = {str(k): v for k, v in dict(line.get("context") or {}).items()}
        calc = line.get("calculation_id")
        if calc is not None and calc not in valid:
            context["unknown_calculation_id"] = calc
            calc = None
        rows.append(
            ServiceLog(
                ts=line.get("ts") or now,
                source=f"agent:{cluster.name}"[:100],
                level=line["level"],
                message=redact(str(line["message"]))[:MAX_MESSAGE],
                calculation_id=calc,
                cluster_id=cluster.id,
                context=context,
            )
        )
    session.add_all(rows)
    session.commit()
    return len(rows)
