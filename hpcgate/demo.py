"""``hpcgate demo``: the whole product on one machine with no cluster and no setup."""

from __future__ import annotations

import logging
import secrets
import threading

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db.models import Cluster, QueueMapping
from hpcgate.db.models.clusters import AccessMode
from hpcgate.domain.access import NotifyLevel, Role
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
            from hpcgate.services.job_identity import local_scratch_root

            # Outside the (private) data dir when jobs run as the job account.
            scratch = local_scratch_root(settings)
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
            session.flush()
        local = session.scalar(select(Cluster).where(Cluster.name == LOCAL_CLUSTER))
        if local is not None:
            _point_jobs_at_a_reachable_hpcgate(local, settings)
    return DEMO_ADMIN_EMAIL, password


#: Where ``scripts/services/cluster-python.sh`` (run by ``make demo`` as root) installs an
#: hpcgate that any account can run; ``HPCGATE_JOB_HPCGATE`` names another one.
JOB_SIDE_HPCGATE = "/opt/hpcgate-cluster/venv/bin/hpcgate"


def _point_jobs_at_a_reachable_hpcgate(cluster: Cluster, settings: Settings) -> None:
    """Give the local cluster an ``hpcgate_command`` its job account can run.

    Started as root, the demo's jobs run as the job account, and every SIESTA step ends with
    ``hpcgate validate``. Our own interpreter may live where that account cannot go (a pyenv
    under root's 0700 home): the job would fail with rc 126. Then the job-side install that
    ``make demo`` prepares is used; without one, the demo says what to run.
    """
    import os
    import sys

    from hpcgate.errors import HpcgateError
    from hpcgate.services.job_identity import can_execute, job_user_for

    try:
        account = job_user_for(settings, cluster)
    except HpcgateError:
        return  # no job account yet: the worker reports that itself
    options = dict(cluster.options or {})
    current = options.get("hpcgate_command")
    if account is None or can_execute(account, str((current or [sys.executable])[0])):
        return
    for candidate in (os.environ.get("HPCGATE_JOB_HPCGATE"), JOB_SIDE_HPCGATE):
        if candidate and os.path.isfile(candidate) and can_execute(account, candidate):
            options["hpcgate_command"] = [candidate]
            cluster.options = options
            log.info("demo jobs run as %s and call %s", account, candidate)
            return
    print(
        f"  note: demo jobs run as {account!r}, which cannot run {sys.executable}; SIESTA "
        "steps would fail their in-job validation (rc 126). Run "
        "scripts/services/cluster-python.sh (make demo does) and restart the demo.",
        flush=True,
    )


# A small numerical chain any machine can run: Newton's method for sqrt(a), where each step
# continues from the previous step's state file (the same hand-over a SIESTA chain uses
# for its density matrix).
NEWTON = r"""
import json, os, pathlib
a = float(os.environ["HPCGATE_PARAM_A"])
n = int(os.environ["HPCGATE_PARAM_ITERATIONS"])
state = pathlib.Path("state.json")
x = json.loads(state.read_text())["x"] if state.exists() else a
history = json.loads(state.read_text())["history"] if state.exists() else []
for _ in range(n):
    x = 0.5 * (x + a / x)
    history.append(x)
    print(f"x = {x:.15f}  error = {abs(x * x - a):.3e}")
state.write_text(json.dumps({"x": x, "history": history}))
"""


def seed_demo_calculation(factory: sessionmaker[Session], settings: Settings) -> int:
    """A 3-step chain on the local cluster, created once; returns its id."""

    from hpcgate.db.models import Calculation
    from hpcgate.db.session import session_scope
    from hpcgate.services.calculations import NewCalculation, create_calculation
    from hpcgate.services.users import get_user_by_email

    with session_scope(factory) as session:
        existing = session.scalar(select(Calculation.id).where(Calculation.name == DEMO_CHAIN))
        if existing is not None:
            return int(existing)
        admin = get_user_by_email(session, DEMO_ADMIN_EMAIL)
        cluster = session.scalar(select(Cluster).where(Cluster.name == LOCAL_CLUSTER))
        if admin is None or cluster is None:
            raise RuntimeError("demo seed incomplete")
        calc = create_calculation(
            session,
            admin,
            NewCalculation(
                name=DEMO_CHAIN,
                description="Newton's method for sqrt(2), refined over a chain of three steps; "
                "each step starts from the previous step's state.json.",
                cluster_id=cluster.id,
                logical_queue="default",
                code="generic",
                configuration={
                    "kind": "chain",
                    "variants": [
                        {"label": f"refine {i + 1}", "parameters": {"a": 2, "iterations": 2}}
                        for i in range(3)
                    ],
                    "inherit": ["state.json"],
                    # The system Python: the job account may not read our interpreter's
                    # directory (a pyenv under /root).
                    "command": [_job_python(), "-c", NEWTON],
                },
            ),
            settings,
        )
        return calc.id


DEMO_CHAIN = "Demo: Newton chain for sqrt(2)"


def _job_python() -> str:
    import os
    import sys

    system = "/usr/bin/python3"
    return system if os.access(system, os.X_OK) else sys.executable


def run_demo(settings: Settings, *, port: int) -> None:
    import uvicorn

    from hpcgate.api.app import create_app
    from hpcgate.cli import _prepare_database
    from hpcgate.db.session import make_engine, make_sessionmaker
    from hpcgate.logging import configure_logging
    from hpcgate.services.job_identity import secure_data_dir
    from hpcgate.services.ticks import worker_ticks
    from hpcgate.worker import build_scheduler

    configure_logging(json_output=False)
    secure_data_dir(settings)
    url = _prepare_database(settings, auto_migrate=True)
    engine = make_engine(settings, url)
    factory = make_sessionmaker(engine)
    base = f"http://127.0.0.1:{port}"
    banner = _seed_all(settings, factory, base)
    scheduler = build_scheduler(settings, factory, worker_ticks(settings, factory))
    scheduler.start()
    threading.Thread(target=_announce, args=(base, banner), daemon=True).start()
    api = create_app(settings, engine=engine)
    try:
        uvicorn.run(api, host="127.0.0.1", port=port, log_config=None, log_level="warning")
    finally:
        scheduler.shutdown(wait=False)
        engine.dispose()
        if settings.database.url is None:
            from hpcgate.db.embedded import stop_embedded

            stop_embedded()


def _seed_all(settings: Settings, factory: sessionmaker[Session], base: str) -> str:
    """Seed the users, cluster and demo calculations; the banner that tells where they are."""
    from hpcgate.demo_siesta import seed_siesta_calculation
    from hpcgate.demo_transiesta import seed_transiesta_calculation, siesta_banner

    email, password = seed(factory, settings)
    demo_calc = seed_demo_calculation(factory, settings)
    siesta_calc = seed_siesta_calculation(
        factory, settings, owner_email=DEMO_ADMIN_EMAIL, cluster_name=LOCAL_CLUSTER
    )
    ladder_calc = seed_transiesta_calculation(
        factory, settings, owner_email=DEMO_ADMIN_EMAIL, cluster_name=LOCAL_CLUSTER
    )
    return (
        "\n"
        "  hpcgate demo is running\n"
        f"    portal:   {base}/\n"
        f"    API docs: {base}/docs\n"
        f"    health:   {base}/health\n"
        f"    login:    {email}\n"
        f"    password: {password}\n"
        f"    demo:     {base}/calculations/{demo_calc} (a 3-step chain running now)\n"
        f"{siesta_banner(base, siesta_calc, ladder_calc)}"
        f"    data:     {settings.paths.data_dir}\n"
        "  Press Ctrl+C to stop.\n"
    )


def _announce(base: str, banner: str) -> None:
    """Print the banner once the server answers (uvicorn gives no simpler signal)."""
    import time
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1):  # noqa: S310
                break
        except OSError:
            time.sleep(0.1)
    print(banner, flush=True)
