"""The dispatch and harvest lag histograms (issue 18), observed where the database records
the event, so both dispatch modes are measured alike:

* dispatch lag, when a calculation is recorded SUBMITTED (``dispatch.apply_submitted``):
  now - the moment it became dispatchable (``ready_at``: created approved, or approved;
  ``created_at`` for rows older than that column). In worker mode the worker observes it
  (its exporter), in agent mode the API does when the agent reports the submission.
* harvest lag, when a step is recorded ended (``harvest._apply_seen``): now - the job's end
  as the scheduler's accounting (sacct ``End``, PBS ``mtime``, the local executor's exit
  record) reported it. Observed by the worker, or by the API for agents' observations.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from hpcgate.metrics.registry import DISPATCH_LAG_SECONDS, HARVEST_LAG_SECONDS

log = logging.getLogger(__name__)


def observe_dispatch_lag(ready_at: datetime | None, submitted_at: datetime) -> None:
    if ready_at is not None:
        DISPATCH_LAG_SECONDS.observe(max(0.0, (submitted_at - ready_at).total_seconds()))


def observe_harvest_lag(ended_at: str | None, recorded_at: datetime) -> None:
    """``ended_at`` is ISO 8601 with a zone (``engine.observe`` adds the dispatcher's)."""
    if not ended_at:
        return
    try:
        end = datetime.fromisoformat(ended_at)
    except (TypeError, ValueError):
        log.warning("ignoring a job end time that is not ISO 8601: %r", ended_at[:64])
        return
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    HARVEST_LAG_SECONDS.observe(max(0.0, (recorded_at - end).total_seconds()))


def end_time_text(end: datetime | None) -> str | None:
    """A scheduler's end time (naive: the dispatcher's local time, as sacct prints it) as
    ISO 8601 with its zone, for the wire."""
    if end is None:
        return None
    return (end if end.tzinfo is not None else end.astimezone()).astimezone(UTC).isoformat()
