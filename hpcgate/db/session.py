"""Engine and session factories. Services own their transaction boundaries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.settings import Settings


def resolve_database_url(settings: Settings) -> str:
    if settings.database.url:
        return settings.database.url
    from hpcgate.db.embedded import embedded_database_url

    return embedded_database_url(settings.paths.embedded_pg_dir)


def make_engine(settings: Settings, url: str | None = None) -> Engine:
    return create_engine(
        url or resolve_database_url(settings),
        pool_size=settings.database.pool_size,
        max_overflow=settings.database.pool_size,
        pool_pre_ping=True,
        echo=settings.database.echo,
        connect_args={"connect_timeout": 10},
    )


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
