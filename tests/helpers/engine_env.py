"""A committed database plus helpers to drive the engine's ticks in tests.

Engine tests cannot use the rolled-back per-test session: the worker's ticks open their own
transactions, exactly as in production. Each test module gets its own fresh database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from hpcgate.db import migrate
from hpcgate.db.models import Calculation, Cluster, QueueMapping, Step, User
from hpcgate.db.models.clusters import AccessMode
from hpcgate.db.session import session_scope
from hpcgate.domain.access import NotifyLevel, Role
from hpcgate.domain.states import FINAL_CALCULATION_STATES, CalculationState
from hpcgate.services.calculations import NewCalculation, create_calculation
from hpcgate.services.users import create_user
from hpcgate.settings import Settings
from tests.conftest import create_scratch_database, drop_database


@dataclass
class EngineEnv:
    url: str
    engine: Engine
    factory: sessionmaker[Session]
    settings: Settings
    user_id: int

    def add_cluster(
        self,
        name: str,
        *,
        scheduler: str,
        access_mode: AccessMode,
        scratch_root: str,
        queues: dict[str, str] | None = None,
        **kw: Any,
    ) -> int:
        with session_scope(self.factory) as s:
            cluster = Cluster(
                name=name,
                scheduler=scheduler,
                access_mode=access_mode,
                scratch_root=scratch_root,
                options=kw.pop("options", {}),
                cleanup_policy=kw.pop("cleanup_policy", {}),
                **kw,
            )
            cluster.queues = [
                QueueMapping(logical_queue=lq, partition=part)
                for lq, part in (queues or {"default": "debug"}).items()
            ]
            s.add(cluster)
            s.flush()
            return cluster.id

    def create(self, **kw: Any) -> int:
        with session_scope(self.factory) as s:
            user = s.get(User, self.user_id)
            assert user is not None
            calc = create_calculation(s, user, NewCalculation(**kw), self.settings)
            return calc.id

    def calc(self, calc_id: int) -> Calculation:
        with session_scope(self.factory) as s:
            calc = s.get(Calculation, calc_id)
            assert calc is not None
            s.expunge(calc)
            return calc

    def steps(self, calc_id: int) -> list[Step]:
        with session_scope(self.factory) as s:
            rows = list(
                s.scalars(select(Step).where(Step.calculation_id == calc_id).order_by(Step.index))
            )
            for r in rows:
                _ = r.tasks
                s.expunge(r)
            return rows

    def run_until_settled(
        self, calc_id: int, tick: Callable[[], None], *, timeout: float = 120, every: float = 0.5
    ) -> Calculation:
        deadline = time.monotonic() + timeout
        while True:
            tick()
            calc = self.calc(calc_id)
            if calc.state in FINAL_CALCULATION_STATES:
                return calc
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"calculation {calc_id} still {calc.state.value} after {timeout}s; steps: "
                    + ", ".join(
                        f"{s.index}:{s.state.value}({s.state_reason})" for s in self.steps(calc_id)
                    )
                )
            time.sleep(every)


@contextmanager
def engine_env(tmp_path: Path, prefix: str = "hpcgate_engine") -> Iterator[EngineEnv]:
    url = create_scratch_database(prefix)
    migrate.upgrade(url)
    engine = create_engine(url, pool_size=5, max_overflow=10)
    factory = sessionmaker(engine, expire_on_commit=False)
    settings = Settings(
        env="test",
        database={"url": url},
        auth={"secret_key": "test-secret-key-0123456789abcdef", "cookie_secure": False},
        paths={"data_dir": str(tmp_path)},
        scheduler={"poll_interval_s": 1, "lost_after_ticks": 3},
    )
    with session_scope(factory) as s:
        user = create_user(
            s,
            email="researcher@example.org",
            password="a-good-password",
            role=Role.USER,
            notify_level=NotifyLevel.INFO,
        )
        user_id = user.id
    try:
        yield EngineEnv(url, engine, factory, settings, user_id)
    finally:
        engine.dispose()
        drop_database(url)


def terminal(state: CalculationState) -> bool:
    return state in FINAL_CALCULATION_STATES
