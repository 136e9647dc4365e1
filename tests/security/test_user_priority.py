"""Issue 15 item 4: a plain user cannot give their own calculation a priority.

Exploit: POST /calculations (or /calculations/preview) with ``"priority": 1000`` as a plain
user, to jump the queue. Refused with 403, and no calculation, step or edge is written.
Moderators (and admins) still set it, at creation or with PUT .../priority.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import SecurityStack

pytestmark = pytest.mark.integration

TABLES = ("calculations", "steps", "step_edges", "array_tasks")


@pytest.mark.parametrize("priority", [1000, 1, -5])
def test_user_priority_at_creation_is_refused(security_stack: SecurityStack, priority: int) -> None:
    s = security_stack
    before = s.snapshot(*TABLES)
    with s.api("user") as api:
        created = api.post("/calculations", json=s.calculation_body(priority=priority))
        previewed = api.post("/calculations/preview", json=s.calculation_body(priority=priority))
    assert created.status_code == 403, created.text
    assert "only moderators may set" in created.json()["detail"]
    assert previewed.status_code == 403, previewed.text
    assert s.snapshot(*TABLES) == before


def test_user_without_priority_still_creates_at_default(security_stack: SecurityStack) -> None:
    s = security_stack
    with s.api("user") as api:
        r = api.post("/calculations", json=s.calculation_body())
        explicit_default = api.post("/calculations", json=s.calculation_body(priority=0))
    assert r.status_code == 201, r.text
    assert r.json()["priority"] == 0
    assert explicit_default.status_code == 201, explicit_default.text


def test_moderator_sets_priority(security_stack: SecurityStack) -> None:
    s = security_stack
    with s.api("moderator") as api:
        r = api.post("/calculations", json=s.calculation_body(priority=700))
    assert r.status_code == 201, r.text
    calc_id = r.json()["id"]
    assert s.scalar("SELECT priority FROM calculations WHERE id = :i", i=calc_id) == 700
    # a plain user cannot raise it afterwards either
    with s.api("user") as api:
        put = api.put(f"/calculations/{calc_id}/priority", json={"priority": 1000})
    assert put.status_code == 403
    assert s.scalar("SELECT priority FROM calculations WHERE id = :i", i=calc_id) == 700
