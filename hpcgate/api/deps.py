"""Typed dependency aliases; every route gets its session and caller through these.

Both are ``async`` because neither needs I/O to start: FastAPI runs a *sync* dependency in
the thread pool, and each hop there costs about as much CPU as a small query. A session
checks out its connection on its first query (in the route's or a dependency's thread); at the
end of the request, a session with an open transaction is committed (or rolled back) in a
worker thread, and one that has none left (the route committed) is closed without a hop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from hpcgate.settings import Settings


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _finish(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_session(request: Request) -> AsyncIterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    session = factory()
    commit = False
    try:
        yield session
        commit = True
    finally:
        if session.in_transaction():
            # Shielded: a cancelled request (client gone) still ends its transaction.
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(_finish, session, commit)
        else:
            session.close()  # nothing to end: no I/O


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": commit BEFORE the response is sent. An agent acts on a 200 (e.g. calls
# sbatch after "submitting" was acknowledged), so the change must be durable by then.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
