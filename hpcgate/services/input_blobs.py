"""Binary input files: stored once by sha256, linked to calculations, read back in chunks.

An upload is spooled to disk and hashed while it streams in (``api/uploads.py``); only a
complete, accepted file becomes a row here, in the same transaction as whatever refers to it,
so a refused request leaves nothing behind. Identical bytes uploaded twice (a sweep's
electrode, a ladder's ``.psml``) are one row: the insert is ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import psycopg
from sqlalchemy import LargeBinary, and_, delete, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.codes.plugin import check_binary_inputs
from hpcgate.db.models import Calculation, CalculationInput, InputBlob, Step
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.errors import InvalidInput, TooLarge
from hpcgate.settings import Settings

log = logging.getLogger(__name__)

#: Bytes per read of a stored blob: bounded memory in the worker and the agent route.
READ_CHUNK = 4 << 20
_COPY_CHUNK = 1 << 20
_COPY = "COPY input_blobs (sha256, size, uploader_id, content) FROM STDIN"


@dataclass(frozen=True)
class BlobRef:
    name: str
    sha256: str
    size: int


def store_blob(
    session: Session, fh: BinaryIO, sha256: str, size: int, uploader_id: int | None
) -> bool:
    """Store the bytes of ``fh`` under ``sha256`` unless already there; True if a row was added.

    Streamed with ``COPY``, a MiB at a time, so a file at ``max_file_bytes`` never sits in the
    API's memory (a plain INSERT would hold it, plus its escaped copy). The caller computed
    ``sha256`` while receiving the bytes; it is checked again as they go out, and a mismatch
    aborts the COPY, so a row's key always matches its content. Two identical uploads at
    once: the second one's unique violation is rolled back to a savepoint and it reports
    ``False``, like any later duplicate.
    """
    if session.scalar(select(exists().where(InputBlob.sha256 == sha256))):
        return False
    return copy_blob(session, fh, sha256, size, uploader_id)


def copy_blob(
    session: Session, fh: BinaryIO, sha256: str, size: int, uploader_id: int | None
) -> bool:
    """``store_blob`` without the existence check: the COPY itself, inside a savepoint."""
    fh.seek(0)
    uploader = str(int(uploader_id)) if uploader_id is not None else "\\N"
    try:
        with session.begin_nested():
            # connection() here emits the SAVEPOINT (begin_nested alone is lazy); the COPY
            # runs on the same psycopg connection, inside it.
            raw: Any = session.connection().connection.driver_connection
            with raw.cursor() as cur, cur.copy(_COPY) as copy:
                # COPY text format: tab-separated, bytea as \x<hex>, the backslash escaped.
                copy.write(f"{sha256}\t{int(size)}\t{uploader}\t\\\\x".encode())
                digest, seen = hashlib.sha256(), 0
                while chunk := fh.read(_COPY_CHUNK):
                    digest.update(chunk)
                    seen += len(chunk)
                    copy.write(chunk.hex().encode())
                if seen != size or digest.hexdigest() != sha256:
                    raise InvalidInput("an uploaded file changed while it was stored; upload again")
                copy.write(b"\n")
    except psycopg.errors.UniqueViolation:
        return False
    return True


def resolve_binary_inputs(
    session: Session, config: Mapping[str, Any], settings: Settings
) -> list[BlobRef]:
    """Check ``configuration.binary_inputs`` against the stored blobs and the size limits."""
    text_names = config.get("inputs") or {}
    refs = check_binary_inputs(config.get("binary_inputs"), list(text_names))
    if not refs:
        return []
    if len(refs) > settings.inputs.max_files:
        raise TooLarge(f"a calculation has at most {settings.inputs.max_files} binary inputs")
    rows = session.execute(
        select(InputBlob.sha256, InputBlob.size).where(InputBlob.sha256.in_(set(refs.values())))
    )
    sizes: dict[str, int] = {sha: size for sha, size in rows}
    missing = sorted(name for name, digest in refs.items() if digest not in sizes)
    if missing:
        raise InvalidInput(
            "binary input(s) refer to files that were never uploaded: "
            + ", ".join(f"{n} ({refs[n][:12]}…)" for n in missing)
            + "; upload them with POST /inputs first",
            missing=missing,
        )
    total = sum(sizes[d] for d in refs.values())
    if total > settings.inputs.max_calculation_bytes:
        raise TooLarge(
            f"binary inputs total {total} bytes, more than the "
            f"{settings.inputs.max_calculation_bytes} bytes a calculation may use"
        )
    return [BlobRef(name, digest, sizes[digest]) for name, digest in sorted(refs.items())]


def link_inputs(session: Session, calculation_id: int, refs: list[BlobRef]) -> None:
    for ref in refs:
        session.add(
            CalculationInput(calculation_id=calculation_id, name=ref.name, sha256=ref.sha256)
        )


def calculation_blob(session: Session, calc_id: int, name: str) -> tuple[str, int] | None:
    """The sha256 and size of a calculation's binary input file, or None."""
    row = session.execute(
        select(InputBlob.sha256, InputBlob.size)
        .join(CalculationInput, CalculationInput.sha256 == InputBlob.sha256)
        .where(CalculationInput.calculation_id == calc_id, CalculationInput.name == name)
    ).first()
    return None if row is None else (row[0], row[1])


def blob_size(session: Session, sha256: str) -> int | None:
    return session.scalar(select(InputBlob.size).where(InputBlob.sha256 == sha256))


def read_chunks(
    session: Session, sha256: str, size: int, chunk: int = READ_CHUNK
) -> Iterator[bytes]:
    """The blob's bytes, ``chunk`` at a time (``substring`` on uncompressed, out-of-line storage
    reads only the pages it needs)."""
    for offset in range(0, size, chunk):
        data = session.scalar(
            select(func.substring(InputBlob.content, offset + 1, chunk, type_=LargeBinary)).where(
                InputBlob.sha256 == sha256
            )
        )
        if data is None:
            raise LookupError(f"blob {sha256} vanished while being read")
        yield bytes(data)


class DbBlobFetcher:
    """For the worker (SSH and local mode): blob bytes straight from PostgreSQL."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def __call__(self, sha256: str) -> Iterator[bytes]:
        with self.factory() as s:
            size = blob_size(s, sha256)
            if size is None:
                raise LookupError(f"input blob {sha256} is not stored")
            yield from read_chunks(s, sha256, size)


_RUNNING = (CalculationState.SUBMITTED, CalculationState.RUNNING)


def agent_may_read(session: Session, cluster_id: int, sha256: str) -> bool:
    """Only a blob that a calculation of this cluster, being submitted right now, refers to
    (a running one too while steps added to it, by refinement, wait to be submitted)."""
    adding = (
        exists()
        .where(Step.calculation_id == Calculation.id)
        .where(Step.state.in_((StepState.PLANNED, StepState.SUBMITTING)))
    )
    return bool(
        session.scalar(
            select(
                exists()
                .where(CalculationInput.sha256 == sha256)
                .where(Calculation.id == CalculationInput.calculation_id)
                .where(Calculation.cluster_id == cluster_id)
                .where(
                    or_(
                        Calculation.state == CalculationState.SUBMITTING,
                        and_(Calculation.state.in_(_RUNNING), adding),
                    )
                )
            )
        )
    )


def prune_unused_blobs(factory: sessionmaker[Session], keep_days: float) -> int:
    """Delete blobs no calculation refers to, uploaded more than ``keep_days`` ago.

    A calculation created at this very moment with such a blob makes the delete fail on
    the link's foreign key (the blob stays; retried next time), never the calculation.
    """
    cutoff = datetime.now(UTC) - timedelta(days=keep_days)
    try:
        with factory.begin() as s:
            result = s.execute(
                delete(InputBlob).where(
                    InputBlob.created_at < cutoff,
                    ~exists().where(CalculationInput.sha256 == InputBlob.sha256),
                )
            )
            removed = int(getattr(result, "rowcount", 0) or 0)
    except IntegrityError:
        log.info("an unused input file was just referenced; pruning again later")
        return 0
    if removed:
        log.info("removed %d unused input file(s)", removed)
    return removed
