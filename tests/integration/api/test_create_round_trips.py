"""Creating a calculation costs a fixed, small number of SQL statements (issue 16).

Issue 16's N separate calculations are N POSTs: each statement is a round trip and a
statement's worth of CPU in the API. The counts below are deterministic (no timing); a
change that adds a read-back, a lazy load or a per-row INSERT fails here with the list of
statements. The answer, built from what the creation wrote, must equal a later GET.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, QueueMapping, UsageQuota
from hpcgate.db.models.clusters import AccessMode
from hpcgate.services import parse_pool
from hpcgate.services.calculations import NewCalculation, create
from hpcgate.settings import Settings
from tests.helpers.api import api_client, auth_headers, new_cluster, new_user

pytestmark = pytest.mark.integration

COMMAND = ["bash", "-c", "echo $((1+2))"]
H2 = "&control\n calculation='scf'\n/\n&system\n ecutwfc=25.0\n/\n&electrons\n/\n"
# user (auth), cluster + queue (one join), the quota (services/quotas.py: the month's usage
# is summed only for a user with one), INSERT calculation, INSERT step, pg_notify.
SINGLE = 6
# the same, plus one INSERT of every array task (one statement, many rows).
SWEEP = SINGLE + 1
# the same as a single, plus one INSERT of the edges: the 3 steps are one statement too.
CHAIN = SINGLE + 1


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _cluster(engine: Engine) -> int:
    cluster = new_cluster(engine, access_mode=AccessMode.LOCAL, scratch_root="/tmp/hpcgate-rt")
    with Session(engine) as s:
        s.add(QueueMapping(cluster_id=cluster.id, logical_queue="default", partition="debug"))
        s.commit()
    return cluster.id


def _body(cluster_id: int, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "trivial",
        "cluster_id": cluster_id,
        "logical_queue": "default",
        "code": "generic",
        "configuration": config,
    }


CONFIGS = {
    "single": ({"kind": "single", "command": COMMAND}, SINGLE),
    "sweep": (
        {
            "kind": "sweep",
            "command": COMMAND,
            "variants": [{"label": f"p{j}", "parameters": {"j": j}} for j in range(5)],
        },
        SWEEP,
    ),
    "chain": (
        {
            "kind": "chain",
            "command": COMMAND,
            "variants": [{"label": f"s{j}", "parameters": {"j": j}} for j in range(3)],
        },
        CHAIN,
    ),
}


@pytest.mark.parametrize("with_quota", [False, True], ids=["no-quota", "quota"])
@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_a_trivial_post_costs_a_fixed_number_of_statements(
    kind: str, with_quota: bool, settings: Settings, db_engine: Engine
) -> None:
    config, expected = CONFIGS[kind]
    user = new_user(db_engine)
    cluster_id = _cluster(db_engine)
    if with_quota:  # the month's usage is summed only for a user with a quota
        with Session(db_engine) as s:
            s.add(UsageQuota(cluster_id=cluster_id, user_id=user.id, soft_core_hours=1e6))
            s.commit()
        expected += 1
    headers = auth_headers(user, settings)
    with api_client(settings, db_engine) as client:
        # once before counting: nothing per process (imports, caches) is counted
        assert (
            client.post(
                "/calculations", json=_body(cluster_id, config), headers=headers
            ).status_code
            == 201
        )
        with statements(db_engine) as seen:
            r = client.post("/calculations", json=_body(cluster_id, config), headers=headers)
        assert r.status_code == 201, r.text
        sql = [s for s in seen if not s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
        assert len(sql) == expected, "\n".join(s[:200] for s in sql)
        # nothing the creation wrote is read back
        assert not [
            s
            for s in sql
            if s.startswith("SELECT")
            and ("FROM calculations" in s or "FROM steps" in s or "FROM step_edges" in s)
        ], "\n".join(sql)
        # the answer is what a later read shows (the quota warnings aside)
        created = r.json()
        again = client.get(f"/calculations/{created['id']}", headers=headers).json()
        assert {**created, "warnings": []} == {**again, "warnings": []}
        assert len(created["steps"]) == (3 if kind == "chain" else 1)
        if kind == "chain":
            ids = [s["id"] for s in created["steps"]]
            assert [s["parents"] for s in created["steps"]] == [[], [ids[0]], [ids[1]]]


def test_a_generic_calculation_needs_no_parse_worker(
    db_session: Session, settings: Settings, db_engine: Engine
) -> None:
    """Generic only checks names and copies text: no hop to the parse pool. A code that
    parses its inputs still goes there (its own settings key, so no other test's pool)."""
    tuned = settings.model_copy(update={"parse_timeout_s": 29.25})
    key = (tuned.parse_workers, tuned.parse_timeout_s)
    user = new_user(db_engine)
    cluster_id = _cluster(db_engine)
    owner = db_session.merge(user)
    new = NewCalculation(
        name="g",
        cluster_id=cluster_id,
        logical_queue="default",
        code="generic",
        configuration={"kind": "single", "command": COMMAND},
    )
    made = create(db_session, owner, new, tuned)
    assert key not in parse_pool._pools
    assert [s.index for s in made.steps] == [0]
    assert made.calculation.steps == made.steps

    qe = NewCalculation(
        name="q",
        cluster_id=cluster_id,
        logical_queue="default",
        code="qe",
        configuration={
            "kind": "single",
            "inputs": {"pw.in": H2},
        },
    )
    create(db_session, owner, qe, tuned)
    assert key in parse_pool._pools
    parse_pool._pools.pop(key).close()


def test_bad_generic_input_is_refused_in_the_request_thread_and_nothing_is_written(
    settings: Settings, db_engine: Engine
) -> None:
    user = new_user(db_engine)
    cluster_id = _cluster(db_engine)

    def count() -> int:
        with Session(db_engine) as s:
            return int(s.scalar(select(func.count()).select_from(Calculation)) or 0)

    before = count()
    bad = [
        {
            "kind": "sweep",
            "command": COMMAND,
            "variants": [{"label": "a", "parameters": {"bad name": 1}}],
        },
        {"kind": "single", "command": COMMAND, "parameters": {"x": "two\nlines"}},
        {"kind": "single", "command": "echo hi"},
        {"kind": "single", "command": COMMAND, "inputs": {"../escape": "x"}},
    ]
    with api_client(settings, db_engine) as client:
        for config in bad:
            r = client.post(
                "/calculations",
                json=_body(cluster_id, config),
                headers=auth_headers(user, settings),
            )
            assert r.status_code == 422, (config, r.text)
    assert count() == before
