"""Log lines: list with filters, a live Server-Sent Events tail, admin deletion, agent upload.

``GET /logs/stream`` polls ``service_logs`` by id (no LISTEN/NOTIFY: works through any
connection pooler, costs one indexed query per ``poll_s``) and sends::

    retry: 3000                      (once)
    id: <log id>                     (one event per line; resume with Last-Event-ID)
    event: log
    data: {...LogLineOut...}

    : keepalive                      (a comment every ``heartbeat_s`` without lines)
    event: end                       (data {"last_id", "reason"}; clients reconnect)

It holds no database connection between polls. Bounds (``settings.log_stream``), because
each stream costs a query per poll for as long as it lives:

* at most ``max_per_user`` streams per user at once (per API process): 429 beyond;
* ``poll_s`` below ``min_poll_s`` is a 422;
* the stream ends (``reason: "max_duration"``) after ``max_duration_s`` - the caller's value
  or the server's maximum, whichever is smaller;
* every poll re-checks the caller exactly as ``CurrentUser`` does (token expiry, blocked,
  revoked sessions): a stream of a caller who lost access ends at its next poll
  (``reason: "unauthorized"``).

``EventSource``-style clients reconnect with ``Last-Event-ID`` and lose nothing. The stream
needs the ``Authorization`` header, so browsers use a fetch-based SSE client.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from hpcgate.api.deps import (
    AgentCluster,
    CurrentUser,
    MayDeleteLogs,
    SessionDep,
    SettingsDep,
    get_current_user,
)
from hpcgate.api.schemas.logs import (
    AgentLogAccepted,
    AgentLogBatch,
    Level,
    LogLineOut,
    LogPage,
    LogsDeleted,
)
from hpcgate.api.stream_slots import SlotStreamingResponse, StreamSlots
from hpcgate.errors import HpcgateError, InvalidInput, RateLimited
from hpcgate.services import log_stream
from hpcgate.services import logs as svc
from hpcgate.settings import Settings

router = APIRouter(prefix="/logs", tags=["logs"])
agent_router = APIRouter(prefix="/agent", tags=["agent"])

Source = Annotated[
    str | None,
    Query(max_length=101, description='exact source, or a prefix ending in "*" ("agent:*")'),
]
MinLevel = Annotated[Level | None, Query(description="this level and above")]
CalculationId = Annotated[int | None, Query(ge=1, le=2**63 - 1)]
ClusterId = Annotated[int | None, Query(ge=1, le=2**63 - 1)]


def _filter(
    source: str | None,
    level: str | None,
    calculation_id: int | None,
    cluster_id: int | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> svc.LogFilter:
    if source is not None and "\x00" in source:
        raise InvalidInput("source: must not contain NUL characters")
    return svc.LogFilter(
        source=source or None,
        level=level,
        calculation_id=calculation_id,
        cluster_id=cluster_id,
        since=since,
        until=until,
    )


@router.get("", response_model=LogPage)
def list_logs(
    _: CurrentUser,
    session: SessionDep,
    source: Source = None,
    level: MinLevel = None,
    calculation_id: CalculationId = None,
    cluster_id: ClusterId = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=20)] = None,
) -> dict[str, Any]:
    """Log lines, newest first, ``limit`` per page; follow ``next_cursor`` for older ones."""
    flt = _filter(source, level, calculation_id, cluster_id, since, until)
    rows, next_id = svc.list_logs(session, flt, limit=limit, before_id=svc.parse_cursor(cursor))
    return {"items": rows, "next_cursor": str(next_id) if next_id is not None else None}


@router.delete("", response_model=LogsDeleted)
def delete_logs(
    _: MayDeleteLogs,
    session: SessionDep,
    before: Annotated[datetime | None, Query(description="lines older than this")] = None,
    source: Source = None,
    level: MinLevel = None,
    calculation_id: CalculationId = None,
    cluster_id: ClusterId = None,
    everything: Annotated[
        bool, Query(alias="all", description="required to delete without any filter")
    ] = False,
) -> dict[str, int]:
    """Delete log lines matching every filter given (admin)."""
    flt = _filter(source, level, calculation_id, cluster_id, until=before)
    return {"deleted": svc.delete_logs(session, flt, everything=everything)}


_SLOTS_LOCK = threading.Lock()


def _stream_slots(request: Request) -> StreamSlots:
    with _SLOTS_LOCK:
        slots: StreamSlots | None = getattr(request.app.state, "log_stream_slots", None)
        if slots is None:
            slots = request.app.state.log_stream_slots = StreamSlots()
        return slots


def _fetch(
    factory: sessionmaker[Session],
    settings: Settings,
    credentials: HTTPAuthorizationCredentials,
    flt: svc.LogFilter,
    after_id: int,
) -> list[dict[str, Any]] | None:
    """The next lines, or None when the caller lost access (checked as ``CurrentUser`` is)."""
    with factory() as session:
        try:
            get_current_user(session=session, settings=settings, credentials=credentials)
        except HpcgateError:
            return None
        rows = svc.logs_after(session, flt, after_id, limit=log_stream.BATCH)
        return [LogLineOut.model_validate(r).model_dump(mode="json") for r in rows]


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
def stream_logs(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    source: Source = None,
    level: MinLevel = None,
    calculation_id: CalculationId = None,
    cluster_id: ClusterId = None,
    after_id: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="send lines after this id first")
    ] = None,
    poll_s: Annotated[float, Query(gt=0, le=10)] = 1.0,
    heartbeat_s: Annotated[float, Query(ge=1, le=120)] = 15.0,
    max_duration_s: Annotated[float, Query(ge=0, le=3600)] = 300.0,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """Live tail of the log as Server-Sent Events (see the module docstring for the format).

    429 when the caller already has ``log_stream.max_per_user`` streams open.
    """
    bounds = settings.log_stream
    plan = log_stream.plan_stream(
        session,
        bounds,
        after_id=after_id,
        last_event_id=last_event_id,
        poll_s=poll_s,
        heartbeat_s=heartbeat_s,
        max_duration_s=max_duration_s,
    )
    flt = _filter(source, level, calculation_id, cluster_id)
    session.commit()  # release the connection now; polls use their own short sessions
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip())
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    slot = _stream_slots(request).acquire(user.id, bounds.max_per_user)
    if slot is None:
        raise RateLimited(
            f"at most {bounds.max_per_user} log streams per user at once; close one first",
            retry_after=5,
        )

    async def fetch(after: int) -> list[dict[str, Any]] | None:
        return await run_in_threadpool(_fetch, factory, settings, credentials, flt, after)

    return SlotStreamingResponse(
        log_stream.sse_events(plan, fetch, request.is_disconnected),
        slot,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@agent_router.post("/logs", response_model=AgentLogAccepted, status_code=201)
def post_agent_logs(
    body: AgentLogBatch, cluster: AgentCluster, session: SessionDep
) -> dict[str, int]:
    """An agent's log lines (source ``agent:<cluster>``), up to 1000 per request."""
    accepted = svc.store_agent_lines(session, cluster, [line.model_dump() for line in body.lines])
    return {"accepted": accepted}
