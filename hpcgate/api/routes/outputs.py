"""A step's raw outputs: list, download, live tail (SSE); and the agent's relay answers.

Thin: the rules are in ``services/outputs.py`` (access modes, size cap, errors),
``services/output_follow.py`` (the tail) and ``services/output_relay.py`` (agents).
Reading follows the rule for reading a calculation (``calculation.read``: shared across
the lab). While these requests wait on the cluster they give their admission slot back,
like the agents' long-poll: a slow cluster must not starve the API.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from hpcgate.api.deps import AgentCluster, CurrentUser, SessionDep, SettingsDep, get_current_user
from hpcgate.api.middleware import admission_released
from hpcgate.api.routes.logs import _stream_slots
from hpcgate.api.schemas.outputs import OutputListing, RelayResult
from hpcgate.api.stream_slots import SlotStreamingResponse
from hpcgate.db.models import Calculation
from hpcgate.domain.access import Action, Owned, require
from hpcgate.domain.states import StepState
from hpcgate.engine.outputs import Chunk
from hpcgate.errors import HpcgateError, InvalidInput, NotFound, RateLimited
from hpcgate.services import output_relay as relay
from hpcgate.services import outputs as svc
from hpcgate.services.output_follow import TailBounds, TailStopped, follow
from hpcgate.settings import Settings

router = APIRouter(prefix="/calculations", tags=["outputs"])
agent_router = APIRouter(prefix="/agent", tags=["agent"])

StepIndex = Annotated[int, Path(ge=0, le=100_000)]
CalcId = Annotated[int, Path(ge=1, le=2**63 - 1)]


_CONN_LOCK = threading.Lock()


def _connections(request: Request, settings: Settings) -> Any:
    with _CONN_LOCK:
        conns = getattr(request.app.state, "output_connections", None)
        if conns is None:
            from hpcgate.services.connections import ClusterConnections

            conns = request.app.state.output_connections = ClusterConnections(settings=settings)
        return conns


def _locate(
    session: Session, user: Any, calc_id: int, step_index: int
) -> svc.StepLocation:
    calc = session.get(Calculation, calc_id)
    if calc is None:
        raise NotFound(f"calculation {calc_id} does not exist")
    require(Action.CALCULATION_READ, user, Owned(calc.owner_id))
    return svc.locate(session, calc_id, step_index)


def _source(request: Request, session: Session, loc: svc.StepLocation, settings: Settings) -> Any:
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    return svc.source_for(session, factory, loc, settings, _connections(request, settings))


@router.get("/{calc_id}/steps/{step_index}/outputs", response_model=OutputListing)
async def list_outputs(
    request: Request,
    calc_id: CalcId,
    step_index: StepIndex,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    path: Annotated[str, Query(max_length=1024, description="a sub-directory")] = "",
) -> dict[str, Any]:
    """The files of a step's run directory (name, kind, size, mtime), read on the cluster."""
    def work() -> dict[str, Any]:
        loc = _locate(session, user, calc_id, step_index)
        source = _source(request, session, loc, settings)
        session.commit()
        return svc.listing(source, loc, path)

    async with admission_released(request.scope):
        return await run_in_threadpool(work)


@router.get(
    "/{calc_id}/steps/{step_index}/outputs/{path:path}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "the file"}},
)
async def download_output(
    request: Request,
    calc_id: CalcId,
    step_index: StepIndex,
    path: str,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
) -> StreamingResponse:
    """One file, streamed; 413 above ``outputs.max_download_mb``."""
    if len(path) > 1024:
        raise InvalidInput("the path is longer than 1024 characters")

    def work() -> svc.Download:
        loc = _locate(session, user, calc_id, step_index)
        source = _source(request, session, loc, settings)
        session.commit()
        return svc.download(source, loc, path, settings)

    async with admission_released(request.scope):
        dl = await run_in_threadpool(work)
    quoted = urllib.parse.quote(dl.name, safe="")

    async def body() -> Any:
        # Without the admission slot while the file streams (a slow client, a big file).
        async with admission_released(request.scope):
            async for chunk in iterate_in_threadpool(dl.chunks):
                yield chunk

    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(dl.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get(
    "/{calc_id}/steps/{step_index}/tail",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
async def tail_output(
    request: Request,
    calc_id: CalcId,
    step_index: StepIndex,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[str | None, Query(max_length=1024, description="default: stdout")] = None,
    offset: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    max_duration_s: Annotated[float, Query(ge=1, le=3600)] = 300.0,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """The step's output file as it grows (see ``services/output_follow.py`` for the events);
    ends when the step ends. Counts against the log streams' per-user limit (429)."""
    def prepare() -> tuple[svc.StepLocation, Any, str]:
        loc = _locate(session, user, calc_id, step_index)
        source = _source(request, session, loc, settings)
        session.commit()
        rel = svc.checked_path(file if file is not None else loc.stdout)
        if not rel:
            raise InvalidInput("file: name a file of the step's directory")
        # Refusals (a path leaving the directory...) before the stream starts; a file not
        # written yet is fine: the tail waits for it.
        with contextlib.suppress(NotFound):
            svc.mapped_errors(lambda: source.read(loc.workdir, rel, 0, 0))
        return loc, source, rel

    async with admission_released(request.scope):
        loc, source, rel = await run_in_threadpool(prepare)
    if offset is None and last_event_id and last_event_id.isascii() and last_event_id.isdigit():
        offset = int(last_event_id)
    slot = _stream_slot(request, user.id, settings)
    tail = _tail_bounds(settings, source, max_duration_s)
    poll = _poller(request, settings, loc, source, rel)

    async def events() -> Any:
        async with admission_released(request.scope):
            async for text in follow(poll, tail, offset, request.is_disconnected):
                yield text

    return SlotStreamingResponse(
        events(),
        slot,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _stream_slot(request: Request, user_id: int, settings: Settings) -> Any:
    """A tail counts against the log streams' per-user limit (429 past it)."""
    bounds = settings.log_stream
    slot = _stream_slots(request).acquire(user_id, bounds.max_per_user)
    if slot is None:
        raise RateLimited(
            f"at most {bounds.max_per_user} log streams per user at once; close one first",
            retry_after=5,
        )
    return slot


def _tail_bounds(settings: Settings, source: Any, max_duration_s: float) -> TailBounds:
    """Agents answer through the relay, so their tail polls more slowly."""
    out = settings.outputs
    agent = isinstance(source, svc.RelaySource)
    return TailBounds(
        poll_s=out.tail_agent_poll_s if agent else out.tail_poll_s,
        max_bytes=min(out.tail_max_bytes, out.relay_chunk_kb << 10),
        max_line=out.tail_max_line,
        max_duration_s=min(max_duration_s, settings.log_stream.max_duration_s),
    )


def _poller(
    request: Request, settings: Settings, loc: svc.StepLocation, source: Any, rel: str
) -> Any:
    """One poll of the tail: re-checks the caller's token (a revoked session ends the
    stream), reads the step's state and the next chunk of the file."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip())

    def poll(at: int, length: int) -> tuple[StepState | None, Chunk | None]:
        with factory() as s:
            try:
                get_current_user(session=s, settings=settings, credentials=credentials)
            except HpcgateError:
                return None, None
            state = svc.step_state(s, loc.step_id)
        if state is None:
            return None, None
        try:
            chunk: Chunk = svc.mapped_errors(lambda: source.read(loc.workdir, rel, at, length))
        except NotFound:
            return state, None
        except HpcgateError as exc:
            raise TailStopped(exc.message) from None
        return state, chunk

    return poll


# ---------------------------------------------------------------- the agent's answers


@agent_router.post("/output-requests/{request_id}/result")
def answer_output_request(
    request_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    body: RelayResult,
    cluster: AgentCluster,
    session: SessionDep,
) -> dict[str, bool]:
    """The agent's answer to a listing, or its refusal of any request."""
    result = body.model_dump(exclude_none=True)
    return {"accepted": relay.answer(session, cluster.id, request_id, result)}


@agent_router.put("/output-requests/{request_id}/content")
async def upload_output_chunk(
    request: Request,
    request_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    cluster: AgentCluster,
    session: SessionDep,
    size: Annotated[int, Query(ge=0, le=2**62)],
    mtime: Annotated[float, Query(ge=0)] = 0.0,
) -> dict[str, bool]:
    """The bytes the agent read (at most the request's length) and the file's size then."""
    content = await request.body()
    meta = {"size": size, "mtime": mtime}
    return {
        "accepted": await run_in_threadpool(
            relay.answer, session, cluster.id, request_id, meta, content
        )
    }
