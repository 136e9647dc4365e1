"""The fetch relay for agent clusters: requests in a table, answered by the cluster's agent.

Why a table: the agent has no inbound port, and the API may run as several processes, so
the request must be durable and visible to whichever process the agent's pull reaches.
The API side inserts a row and ``NOTIFY``s the cluster (the agent's ``pull?wait=`` returns
at once), the pull claims pending rows (``claim``), the agent answers (``answer``), and the
waiting request polls the row (``poll``) and deletes it. A request not answered within
``outputs.relay_timeout_s`` is a 504 naming the cluster; stale rows are purged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from hpcgate.db.models import OutputRequest
from hpcgate.errors import HpcgateError
from hpcgate.services.wakeup import notify_work

STALE_S = 600  # rows older than this are purged, answered or not
CLAIM_LIMIT = 20


class RelayTimeout(HpcgateError):
    """The cluster's agent did not answer in time (not running, or busy)."""

    status_code = 504
    code = "agent_timeout"


@dataclass(frozen=True)
class RelayAnswer:
    result: dict[str, Any]
    content: bytes


def request(
    session: Session,
    *,
    cluster_id: int,
    step_id: int,
    kind: str,
    workdir: str,
    path: str,
    offset: int = 0,
    length: int = 0,
) -> int:
    """Store a request and wake the cluster's agent (delivered at commit, which this does)."""
    session.execute(
        delete(OutputRequest).where(
            OutputRequest.created_at < text(f"now() - interval '{STALE_S} seconds'")
        )
    )
    row = OutputRequest(
        cluster_id=cluster_id,
        step_id=step_id,
        kind=kind,
        workdir=workdir,
        path=path,
        byte_offset=offset,
        length=length,
        state="pending",
    )
    session.add(row)
    session.flush()
    notify_work(session, cluster_id)
    session.commit()
    return row.id


def poll(session: Session, request_id: int) -> tuple[str, RelayAnswer | None]:
    """The request's state, and its answer once done (the row is then deleted)."""
    row = session.execute(
        select(OutputRequest.state, OutputRequest.result).where(OutputRequest.id == request_id)
    ).first()
    if row is None:
        return "gone", None
    if row.state != "done":
        return row.state, None
    content = session.scalar(
        select(OutputRequest.content).where(OutputRequest.id == request_id)
    )
    session.execute(delete(OutputRequest).where(OutputRequest.id == request_id))
    session.commit()
    return "done", RelayAnswer(dict(row.result or {}), bytes(content or b""))


def forget(session: Session, request_id: int) -> None:
    """The waiting side gave up: the agent's late answer finds no row."""
    session.execute(delete(OutputRequest).where(OutputRequest.id == request_id))
    session.commit()


def claim(session: Session, cluster_id: int) -> list[dict[str, Any]]:
    """Pending requests of this cluster, marked claimed (the caller's pull commits)."""
    ids = list(
        session.scalars(
            select(OutputRequest.id)
            .where(OutputRequest.cluster_id == cluster_id, OutputRequest.state == "pending")
            .order_by(OutputRequest.id)
            .limit(CLAIM_LIMIT)
            .with_for_update(skip_locked=True)
        )
    )
    if not ids:
        return []
    rows = session.execute(
        update(OutputRequest)
        .where(OutputRequest.id.in_(ids))
        .values(state="claimed", claimed_at=text("now()"))
        .returning(
            OutputRequest.id,
            OutputRequest.kind,
            OutputRequest.workdir,
            OutputRequest.path,
            OutputRequest.byte_offset,
            OutputRequest.length,
        )
    ).all()
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "workdir": r.workdir,
            "path": r.path,
            "offset": r.byte_offset,
            "length": r.length,
        }
        for r in sorted(rows, key=lambda r: r.id)
    ]


def answer(
    session: Session,
    cluster_id: int,
    request_id: int,
    result: dict[str, Any],
    content: bytes | None = None,
) -> bool:
    """Store the agent's answer; False when the request is gone (timed out) or not its own."""
    row = session.get(OutputRequest, request_id, with_for_update=True)
    if row is None or row.cluster_id != cluster_id or row.state == "done":
        return False
    if content is not None and len(content) > row.length:
        result = {"error": "the agent sent more bytes than asked", "code": "protocol"}
        content = None
    row.result = result
    row.content = content
    row.state = "done"
    session.flush()
    return True
