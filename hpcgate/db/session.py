"""Engine and session factories. Services own their transaction boundaries."""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    if settings.database.url:
        return settings.database.url
    from hpcgate.db.embedded import embedded_database_url

    return embedded_database_url(settings.paths.embedded_pg_dir)


def make_engine(settings: Settings, url: str | None = None) -> Engine:
    engine = create_engine(
        url or resolve_database_url(settings),
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.pool_size,
        echo=settings.database.echo,
        connect_args={"connect_timeout": 10},
    )
    detect_closed_connections(engine)
    return engine


def detect_closed_connections(engine: Engine) -> None:
    """Replace a dead pooled connection at checkout, without a round trip per request.

    ``pool_pre_ping`` sends ``SELECT 1`` before every checkout: a round trip on every
    request, agents' polls included. An idle connection whose server is closing it (restart,
    shutdown, ``pg_terminate_backend``) has something to read: the server's FATAL message
    and end-of-file. So look at the socket first, and ping only when it is readable. A
    connection that dies after checkout fails that one request, as with a pre-ping.
    """

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        try:
            if dbapi_connection.closed:
                raise DisconnectionError("connection closed")
            readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
        except (OSError, ValueError, psycopg.Error) as exc:
            raise DisconnectionError(str(exc)) from exc
        if readable:
            try:
                engine.dialect.do_ping(dbapi_connection)
                dbapi_connection.rollback()
            except psycopg.Error as exc:
                raise DisconnectionError(str(exc)) from exc


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
