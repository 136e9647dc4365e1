"""The ``hpcgate`` command. Errors are one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from hpcgate.agent.cli import AgentConfigError
from hpcgate.errors import ConfigurationError, HpcgateError
from hpcgate.settings import Settings, check_bind

app = typer.Typer(
    name="hpcgate",
    help="Run calculations on HPC clusters: the API, its worker, the cluster agent and tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema management (Alembic migrations).", no_args_is_help=True)
user_app = typer.Typer(help="Manage user accounts from the command line.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")

log = logging.getLogger("hpcgate.cli")


class CliError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        raise CliError(f"configuration error: {where + ': ' if where else ''}{msg}") from None
    except ValueError as exc:
        raise CliError(f"configuration error: {exc}") from None


def _database_url(settings: Settings) -> str:
    from hpcgate.db.session import resolve_database_url

    return resolve_database_url(settings)


def _stop_embedded(settings: Settings) -> None:
    """Stop the embedded PostgreSQL when this process started or adopted it (idempotent)."""
    if settings.database.url is None:
        from hpcgate.db.embedded import stop_embedded

        stop_embedded()


def _prepare_database(settings: Settings, *, auto_migrate: bool) -> str:
    """Return a URL to a migrated database; upgrade automatically for the embedded default."""
    from hpcgate.db import migrate
    from hpcgate.db.session import make_engine
    from hpcgate.services.job_identity import secure_data_dir

    # Before anything is written there (embedded PostgreSQL, the demo admin's password,
    # the blob cache): the data dir is the service's alone, no job may read it.
    secure_data_dir(settings)

    url = _database_url(settings)
    engine = make_engine(settings, url)
    try:
        current = migrate.is_current(engine)
    finally:
        engine.dispose()
    if not current:
        if auto_migrate or settings.database.url is None:
            migrate.upgrade(url)
        else:
            raise CliError("the database schema is not up to date: run `hpcgate db upgrade` first")
    return url


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default from settings).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default from settings).")] = None,
) -> None:
    """Run the HTTP API (and the portal, when built) with uvicorn.

    Uses HPCGATE_DATABASE_URL, or starts the embedded PostgreSQL when it is unset.
    """
    import uvicorn

    from hpcgate.api.app import create_app
    from hpcgate.db.session import make_engine
    from hpcgate.logging import configure_logging

    settings = load_settings()
    try:
        check_bind(settings, host or settings.host)
    except ValueError as exc:
        raise CliError(f"configuration error: {exc}") from None
    configure_logging(json_output=settings.env != "dev")
    url = _prepare_database(settings, auto_migrate=False)
    engine = make_engine(settings, url)
    from hpcgate.db.session import make_sessionmaker
    from hpcgate.services.logs import attach_database_logging

    attach_database_logging(make_sessionmaker(engine), "service")
    api = create_app(settings, engine=engine)
    from hpcgate.signals import stop_on_signals

    try:
        with stop_on_signals():  # SIGTERM/SIGHUP: a graceful shutdown, then the cleanup below
            # Agents poll every 10-30 s: keep their connections open across polls (nginx: 75 s).
            uvicorn.run(
                api,
                host=host or settings.host,
                port=port or settings.port,
                log_config=None,
                timeout_keep_alive=75,
            )
    finally:
        engine.dispose()
        _stop_embedded(settings)


@app.command()
def worker() -> None:
    """Run the periodic work: dispatch calculations, harvest clusters, send mail, clean scratch."""
    from hpcgate.db.session import make_engine, make_sessionmaker
    from hpcgate.logging import configure_logging
    from hpcgate.services.ticks import worker_ticks
    from hpcgate.worker import build_scheduler, run_forever

    settings = load_settings()
    configure_logging(json_output=settings.env != "dev")
    url = _prepare_database(settings, auto_migrate=False)
    factory = make_sessionmaker(make_engine(settings, url))
    from hpcgate.services.logs import attach_database_logging

    attach_database_logging(factory, "worker")
    from hpcgate.metrics.exporter import serve_metrics

    serve_metrics(settings.metrics.host, settings.metrics.worker_port)
    scheduler = build_scheduler(settings, factory, worker_ticks(settings, factory))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # systemd, Ctrl+C, a closed tty
        signal.signal(sig, lambda *_: stop.set())
    log.info("worker started")
    try:
        run_forever(scheduler, stop)
    finally:
        _stop_embedded(settings)
    log.info("worker stopped")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply the Alembic migrations up to REVISION (default: the newest)."""
    from hpcgate.db import migrate

    settings = load_settings()
    migrate.upgrade(_database_url(settings), revision)
    typer.echo(f"database upgraded to {revision}")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Login email address.")],
    role: Annotated[str, typer.Option(help="user, moderator or admin.")] = "user",
    full_name: Annotated[str, typer.Option(help="Display name.")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a user account. The password is prompted for (or read with --password-stdin)."""
    from hpcgate.db.session import make_engine, make_sessionmaker, session_scope
    from hpcgate.domain.access import Role
    from hpcgate.services.users import create_user

    try:
        role_value = Role(role)
    except ValueError:
        raise CliError(f"unknown role {role!r}: choose user, moderator or admin") from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = load_settings()
    url = _prepare_database(settings, auto_migrate=False)
    with session_scope(make_sessionmaker(make_engine(settings, url))) as session:
        user = create_user(
            session, email=email, password=password, role=role_value, full_name=full_name
        )
        typer.echo(f"created {user.role.value} {user.email} (id {user.id})")


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port for the API and portal.")] = 8000,
    data_dir: Annotated[
        Path | None, typer.Option(help="Where the embedded database and scratch live.")
    ] = None,
) -> None:
    """Run everything on this machine: embedded PostgreSQL, API, worker, portal, local executor.

    Seeds an admin account (credentials printed) and a local cluster, so a newcomer
    can follow a calculation from creation to report with no cluster at all.
    """
    from hpcgate.demo import run_demo

    os.environ.setdefault("HPCGATE_ENV", "dev")
    # Snappy ticks on one machine: the demo's chain finishes in seconds, not minutes.
    os.environ.setdefault("HPCGATE_SCHEDULER__POLL_INTERVAL_S", "2")
    os.environ.setdefault("HPCGATE_SCHEDULER__HEARTBEAT_INTERVAL_S", "10")
    if data_dir is not None:
        os.environ["HPCGATE_PATHS__DATA_DIR"] = str(data_dir)
    settings = load_settings()
    from hpcgate.signals import stop_on_signals

    try:
        with stop_on_signals():  # SIGTERM as Ctrl+C: the embedded PostgreSQL stops with us
            run_demo(settings, port=port)
    finally:
        _stop_embedded(settings)


def _register_optional_commands() -> None:
    """Commands contributed by other modules; each registers only when it works."""
    from hpcgate.agent.cli import agent
    from hpcgate.cli_client import register as register_client_verbs
    from hpcgate.cli_validate import validate

    register_client_verbs(app)
    app.command(name="agent")(agent)
    app.command(name="validate")(validate)
    try:
        from hpcgate.cli_extract import extract
    except ImportError:
        return
    app.command(name="extract")(extract)
    try:
        from hpcgate.cli_ml import ml_api
    except ImportError:
        return
    app.command(name="ml-api")(ml_api)


_register_optional_commands()


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"hpcgate: error: {message}", err=True)
    raise SystemExit(code)


def main() -> None:
    try:
        app(standalone_mode=True)
    except CliError as exc:
        _fail(str(exc), exc.code)
    except AgentConfigError as exc:
        _fail(str(exc), 2)
    except (HpcgateError, ConfigurationError) as exc:
        _fail(exc.message, 2 if exc.status_code < 500 else 1)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"
        _fail(f"cannot reach the database: {reason}", 1)
    except SQLAlchemyError as exc:
        _fail(f"database error: {type(exc).__name__}: {str(exc).splitlines()[0]}", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


if __name__ == "__main__":
    main()
