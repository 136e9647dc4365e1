"""Typed dependency aliases; every route gets its session and caller through these."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": commit BEFORE the response is sent. An agent acts on a 200 (e.g. calls
# sbatch after "submitting" was acknowledged), so the change must be durable by then.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
