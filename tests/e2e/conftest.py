"""The portal end to end: Debian's Chromium (Playwright) against the real app on loopback.

One stack per test session:

* a scratch PostgreSQL database, migrated;
* the API with the built portal (``create_app`` + ``mount_portal``) in a uvicorn thread
  (``tests/helpers/live_api.py``);
* a real ``hpcgate worker`` subprocess on the same database, whose local executor runs the
  job scripts with the real SIESTA 4.1 on its PATH (``scripts/services/siesta.sh``): every
  SIESTA step of these tests is a real run of our small H2O input (``tests/data/siesta/h2o``
  plus the installed pseudopotentials, gathered in ``Stack.siesta_dir`` for uploads);
* seeded accounts (admin, moderator, researcher, one user to block) and two local clusters
  (one of them requiring approval).

Playwright drives ``/usr/bin/chromium`` through ``executable_path`` (never ``playwright
install``). Screenshots go to ``test-artifacts/screenshots/`` (gitignored).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.settings import Settings
from tests.conftest import create_scratch_database, drop_database
from tests.helpers.ci import missing
from tests.helpers.live_api import live_server
from tests.helpers.siesta_env import require_siesta, siesta_case

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("HPCGATE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "e2e-password-correct-horse"
SECRET = "e2e-secret-key-0123456789abcdef-0123456789"
# The SIESTA input the e2e runs use (tests/data/siesta/h2o) and the files uploaded with it.
H2O_MAIN = "h2o.fdf"
H2O_FILES = ("h2o.fdf", "H.psf", "O.psf")


@dataclass
class Account:
    email: str
    role: str
    id: int = 0
    password: str = PASSWORD


@dataclass
class Stack:
    base_url: str
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    accounts: dict[str, Account]
    clusters: dict[str, int]
    siesta_dir: Path  # h2o.fdf + H.psf + O.psf, ready to upload
    data_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def token(self, who: str) -> str:
        account = self.accounts[who]
        r = httpx.post(
            self.base_url + "/auth/login",
            json={"email": account.email, "password": account.password},
            timeout=10,
        )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def api(self, who: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token(who)}", "Accept": "application/json"},
            timeout=20,
        )


def _require_chromium() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing(f"Chromium not found at {CHROMIUM} (run scripts/services/chromium.sh)")
    return CHROMIUM


@pytest.fixture(scope="session")
def portal_dist() -> Path:
    """The built portal; built now (idempotent, fast when up to date) if needed."""
    dist = REPO / "web" / "dist"
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "build-web.sh")],
        env={**os.environ, "HPCGATE_WEB_REQUIRED": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0 or not (dist / "index.html").is_file():
        pytest.fail(f"building the portal failed:\n{result.stdout}\n{result.stderr}")
    return dist


def _seed(
    factory: sessionmaker[Session], scratch: Path
) -> tuple[dict[str, Account], dict[str, int]]:
    from hpcgate.db.models import Cluster, QueueMapping
    from hpcgate.db.models.clusters import AccessMode
    from hpcgate.db.session import session_scope
    from hpcgate.domain.access import NotifyLevel, Role
    from hpcgate.services.users import create_user

    tag = uuid.uuid4().hex[:6]
    accounts = {
        "admin": Account(f"ada.admin.{tag}@example.org", "admin"),
        "moderator": Account(f"mo.moderator.{tag}@example.org", "moderator"),
        "user": Account(f"rita.researcher.{tag}@example.org", "user"),
        "victim": Account(f"vic.victim.{tag}@example.org", "user"),
    }
    names = {"admin": "Ada Admin", "moderator": "Mo Moderator", "user": "Rita Researcher"}
    clusters: dict[str, int] = {}
    with session_scope(factory) as s:
        for key, acc in accounts.items():
            user = create_user(
                s,
                email=acc.email,
                password=acc.password,
                role=Role(acc.role),
                full_name=names.get(key, "Victor Victim"),
                notify_level=NotifyLevel.ERROR,
            )
            s.flush()
            acc.id = user.id
        for name, approval in (("local-e2e", False), ("approval-e2e", True)):
            root = scratch / name
            root.mkdir(parents=True, exist_ok=True)
            cluster = Cluster(
                name=name,
                description="this machine, local executor (e2e)",
                scheduler="local",
                access_mode=AccessMode.LOCAL,
                scratch_root=str(root),
                enabled=True,
                require_approval=approval,
                options={},
                cleanup_policy={},
            )
            cluster.queues = [QueueMapping(logical_queue="default", partition="local")]
            s.add(cluster)
            s.flush()
            clusters[name] = cluster.id
    return accounts, clusters


def _start_worker(url: str, data_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HPCGATE_ENV": "test",
        "HPCGATE_DATABASE_URL": url,
        "HPCGATE_AUTH__SECRET_KEY": SECRET,
        "HPCGATE_PATHS__DATA_DIR": str(data_dir),
        "HPCGATE_SCHEDULER__POLL_INTERVAL_S": "1",
        "HPCGATE_SCHEDULER__HEARTBEAT_INTERVAL_S": "2",
        "HPCGATE_WORKER_NAME": f"e2e-worker-{uuid.uuid4().hex[:8]}",
    }
    env.pop("HPCGATE_CONFIG_FILE", None)
    log = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "hpcgate.cli", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(REPO),
        start_new_session=True,
    )


@pytest.fixture(scope="session")
def stack(
    postgres_available: str, portal_dist: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    from hpcgate.api.app import create_app
    from hpcgate.db import migrate

    root = tmp_path_factory.mktemp("e2e")
    data_dir = root / "data"
    siesta_dir = root / "siesta-h2o"
    siesta_dir.mkdir()
    for name, text in siesta_case("h2o", require_siesta()).items():
        (siesta_dir / name).write_text(text, encoding="utf-8")
    assert sorted(p.name for p in siesta_dir.iterdir()) == sorted(H2O_FILES)

    url = create_scratch_database("hpcgate_e2e")
    migrate.upgrade(url)
    engine = create_engine(url, pool_size=10, max_overflow=10)
    factory = sessionmaker(engine, expire_on_commit=False)
    settings = Settings(
        env="test",
        database={"url": url},
        # cookie_secure stays on, as in production: Chromium keeps Secure cookies on 127.0.0.1.
        auth={"secret_key": SECRET, "login_rate_per_minute": 1000},
        paths={"data_dir": str(data_dir)},
    )
    accounts, clusters = _seed(factory, root / "scratch")
    worker = _start_worker(url, data_dir, root / "worker.log")
    app = create_app(settings, engine=engine)
    try:
        with live_server(app) as base:
            yield Stack(base, settings, engine, factory, accounts, clusters, siesta_dir, data_dir)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=5)
        log_text = (root / "worker.log").read_text(errors="replace")
        artifacts = REPO / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        (artifacts / "e2e-worker.log").write_text(log_text)
        engine.dispose()
        drop_database(url)
        shutil.rmtree(root / "scratch", ignore_errors=True)


@pytest.fixture(scope="session")
def browser(stack: Stack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _require_chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; console errors are collected."""
    context = browser.new_context(
        base_url=stack.base_url, viewport={"width": 1440, "height": 900}, locale="en-GB"
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.console_errors = errors
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    try:
        yield page
    finally:
        context.close()


def login(page: Any, stack: Stack, who: str, path: str = "/") -> None:
    account = stack.accounts[who]
    page.goto(path)
    page.wait_for_selector("form[aria-label='log in']")
    page.fill("input[name=email]", account.email)
    page.fill("input[name=password]", account.password)
    page.click("form[aria-label='log in'] button[type=submit]")
    page.wait_for_selector("[data-testid=nav]")


def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.wait_for_timeout(300)  # let charts finish their first draw
    page.screenshot(path=str(path), full_page=full_page)
    return path


def page_errors(page: Any) -> list[str]:
    """Console errors other than expected 401/403/404/409/422 answers."""
    ignored = ("status of 401", "status of 403", "status of 404", "status of 409", "status of 422")
    return [e for e in page.console_errors if not any(i in e for i in ignored)]


def wait_until(predicate: Any, timeout: float = 60, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)
