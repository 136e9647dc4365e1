"""The agent's own log lines, shipped to the API's log feed (``POST /agent/logs``) the way
heartbeats are: appended to a JSONL buffer in the state directory first, then posted in
batches by the heartbeat tick. An API outage delays them; a restart loses none; only a
buffer past ``max_bytes`` (a long outage) drops its oldest lines, and says how many.

A login node's errors (a failed ``sbatch``, an unreadable result, an API refusal) thus reach
the portal next to the service's and the worker's, with their calculation when the record
names one (``extra={"ctx": {"calc_id": ...}}`` or ``hpcgate.logging.bind_context``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcgate.logging import current_context, redact

if TYPE_CHECKING:
    from hpcgate.agent.client import AgentClient

MAX_MESSAGE = 16_000  # the API's limit per line
MAX_BATCH = 1000  # the API's limit per request
# Never shipped: the HTTP client's own records (shipping logs would log again), and a
# record that the shipping itself emits (marked so it cannot loop).
_QUIET_LOGGERS = ("httpx", "httpcore", "hpcgate.agent.log_buffer")

log = logging.getLogger(__name__)

_LEVELS = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


def _level(levelno: int) -> str:
    best = "debug"
    for number, name in sorted(_LEVELS.items()):
        if levelno >= number:
            best = name
    return best


def _int(value: Any) -> int | None:
    try:
        out = int(value)
    except (TypeError, ValueError):
        return None
    return out if 0 < out < 2**63 else None


class LogBuffer(logging.Handler):
    def __init__(
        self, state_dir: Path, *, level: int = logging.INFO, max_bytes: int = 8 << 20
    ) -> None:
        super().__init__(level)
        self.path = Path(state_dir) / "log-buffer.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._shipping = False
        self.dropped = 0

    # ------------------------------------------------------------------ buffering

    def line(self, record: logging.LogRecord) -> dict[str, Any]:
        context: dict[str, Any] = dict(current_context())
        extra = getattr(record, "ctx", None)
        if isinstance(extra, dict):
            context.update(extra)
        message = redact(record.getMessage())
        if record.exc_info:
            message += "\n" + redact(logging.Formatter().formatException(record.exc_info))
        calc = _int(context.pop("calc_id", None) or context.pop("calculation_id", None))
        context["logger"] = record.name
        return {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": _level(record.levelno),
            "message": message.replace("\x00", "\\x00")[:MAX_MESSAGE],
            "calculation_id": calc,
            "context": {
                str(k)[:100].replace("\x00", ""): redact(str(v))[:1000].replace("\x00", "")
                for k, v in context.items()
            },
        }

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_QUIET_LOGGERS):
            return
        try:
            text = json.dumps(self.line(record)) + "\n"
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                if not self._shipping and fh.tell() > self.max_bytes:
                    self._trim()
        except Exception:  # a log handler never breaks the agent
            self.handleError(record)

    def _trim(self) -> None:
        """Keep the newer half (under the lock, never while a batch is in flight)."""
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        keep = lines[len(lines) // 2 :]
        dropped = len(lines) - len(keep)
        self.dropped += dropped
        note = {
            "ts": datetime.now(UTC).isoformat(),
            "level": "warning",
            "message": f"agent log buffer full: dropped the {dropped} oldest lines",
            "calculation_id": None,
            "context": {"logger": __name__},
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(note) + "\n" + "".join(keep), encoding="utf-8")
        os.replace(tmp, self.path)

    def pending(self) -> int:
        with self._lock:
            if not self.path.exists():
                return 0
            return sum(1 for ln in self.path.read_text(encoding="utf-8").splitlines() if ln)

    # ------------------------------------------------------------------ shipping

    def ship(self, client: AgentClient, batch: int = 500) -> int:
        """Post buffered lines in batches; keep what was not acknowledged. Returns the number
        posted. The lock is not held while posting: records keep arriving meanwhile."""
        from hpcgate.agent.client import ApiUnavailable
        from scheduler_adapters.errors import SchedulerError

        with self._lock:
            if not self.path.exists():
                return 0
            lines = [ln for ln in self.path.read_text(encoding="utf-8").splitlines() if ln]
            self._shipping = True
        done = 0  # lines acknowledged or refused for good, from the front
        sent = 0
        try:
            while done < len(lines):
                chunk = lines[done : done + min(batch, MAX_BATCH)]
                try:
                    client.post_logs([json.loads(ln) for ln in chunk])
                    sent += len(chunk)
                except ApiUnavailable:
                    break  # the API is away: keep everything from here for the next tick
                except (SchedulerError, ValueError) as exc:
                    # Refused for good (4xx) or unreadable: keeping it would block the queue.
                    log.error("agent log lines refused by the API, dropped: %s", exc)
                done += len(chunk)
        finally:
            with self._lock:
                current = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
                rest = [ln for ln in current if ln.strip()][done:]
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text("".join(rest), encoding="utf-8")
                os.replace(tmp, self.path)
                self._shipping = False
        return sent
