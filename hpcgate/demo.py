"""``hpcgate demo``: the whole product on one machine with no cluster and no setup."""

from __future__ import annotations

import logging
import secrets
import threading
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import Cluster, QueueMapping
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.models.users import NotifyLevel, Role
from hpcgate.settings import Settings

log = logging.getLogger(__name__)

DEMO_ADMIN_EMAIL = "admin@hpcgate.example.org"
LOCAL_CLUSTER = "local"


def seed(factory: sessionmaker[Session], settings: Settings) -> tuple[str, str]:
    """Create the demo admin and the local cluster if missing; return the admin credentials."""
    from hpcgate.db.session import session_scope
    from hpcgate.services.users import create_user, get_user_by_email

    data_dir = settings.paths.data_dir
    secret_file = data_dir / "demo-admin-password"
    with session_scope(factory) as session:
        if get_user_by_email(session, DEMO_ADMIN_EMAIL) is None:
            password = secrets.token_urlsafe(12)
            create_user(
                session,
                email=DEMO_ADMIN_EMAIL,
                password=password,
                role=Role.ADMIN,
                full_name="Demo Admin",
                notify_level=NotifyLevel.INFO,
            )
            secret_file.write_text(password + "\n", encoding="utf-8")
            secret_file.chmod(0o600)
        password = secret_file.read_text(encoding="utf-8").strip() if secret_file.exists() else "?"
        if session.scalar(select(Cluster).where(Cluster.name == LOCAL_CLUSTER)) is None:
            scratch = settings.paths.local_scratch
            scratch.mkdir(parents=True, exist_ok=True)
            cluster = Cluster(
                name=LOCAL_CLUSTER,
                description="This machine, through the local executor (no scheduler needed).",
                scheduler="local",
                access_mode=AccessMode.LOCAL,
                scratch_root=str(scratch),
                enabled=True,
                options={},
                cleanup_policy={"delete_patterns": ["*.tmp"], "keep_days": 7, "dry_run": False},
            )
            cluster.queues = [QueueMapping(logical_queue="default", partition="local")]
            session.add(cluster)
    return DEMO_ADMIN_EMAIL, password


def run_demo(settings: Settings, *, port: int) -> None:
    import uvicorn

    from hpcgate.api.app import create_app
    from hpcgate.cli import _prepare_database
    from hpcgate.db.session import make_engine, make_sessionmaker
    from hpcgate.logging import configure_logging
    from hpcgate.services.ticks import worker_ticks
    from hpcgate.worker import build_scheduler

    configure_logging(json_output=False)
    Path(settings.paths.data_dir).mkdir(parents=True, exist_ok=True)
    url = _prepare_database(settings, auto_migrate=True)
    engine = make_engine(settings, url)
    factory = make_sessionmaker(engine)
    email, password = seed(factory, settings)
    scheduler = build_scheduler(settings, factory, worker_ticks(settings, factory))
    scheduler.start()
    base = f"http://127.0.0.1:{port}"
    banner = (
        "\n"
        "  hpcgate demo is running\n"
        f"    portal:   {base}/\n"
        f"    API docs: {base}/docs\n"
        f"    health:   {base}/health\n"
        f"    login:    {email}\n"
        f"    password: {password}\n"
        f"    data:     {settings.paths.data_dir}\n"
        "  Press Ctrl+C to stop.\n"
    )
    started = threading.Event()

    def announce() -> None:
        started.wait(30)
        print(banner, flush=True)

    threading.Thread(target=announce, daemon=True).start()
    api = create_app(settings, engine=engine)

    @api.on_event("startup")
    async def _ready() -> None:
        started.set()

    try:
        uvicorn.run(api, host="127.0.0.1", port=port, log_config=None, log_level="warning")
    finally:
        scheduler.shutdown(wait=False)
