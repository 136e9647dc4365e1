"""A 200 means committed: an agent acts on the answer, so the write must be durable first.

A deferred constraint trigger refuses the commit of one specific report. If the session
committed after the response (FastAPI's "request" scope), the agent would get a 200 for a
change that was never stored; with the commit inside the request it gets an error.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from hpcgate.db.models import Calculation, Step
from hpcgate.domain.states import StepState
from hpcgate.settings import Settings
from tests.helpers.api import api_client, new_api_key, new_cluster, new_user

pytestmark = pytest.mark.integration


def test_agent_report_is_committed_before_the_response(
    settings: Settings, db_engine: Engine
) -> None:
    from hpcgate.db.models import QueueMapping
    from hpcgate.services.calculations import NewCalculation, create_calculation

    user = new_user(db_engine)
    cluster = new_cluster(db_engine)
    with Session(db_engine, expire_on_commit=False) as s:
        s.add(QueueMapping(cluster_id=cluster.id, logical_queue="default", partition="debug"))
        s.commit()
        owner = s.get(type(user), user.id)
        assert owner is not None
        calc = create_calculation(
            s, owner,
            NewCalculation(name="c", cluster_id=cluster.id, logical_queue="default",
                           code="generic",
                           configuration={"kind": "single", "command": ["true"]}),
            settings,
        )
        s.commit()
        calc_id = calc.id
    _, key = new_api_key(db_engine, cluster=cluster)
    headers = {"X-API-Key": key}
    with api_client(settings, db_engine, raise_server_exceptions=False) as client:
        pulled = client.post("/agent/pull", json={"agent": "a"}, headers=headers).json()
        step_id = pulled["calculations"][0]["steps"][0]["step_id"]
        # A separate connection (what another process would see) right after each answer.
        r = client.post(f"/agent/steps/{step_id}/submitting", headers=headers)
        assert r.status_code == 200
        with Session(db_engine) as other:
            step = other.get(Step, step_id)
            assert step is not None
            assert step.state is StepState.SUBMITTING
        with db_engine.begin() as conn:
            conn.execute(text(
                "CREATE OR REPLACE FUNCTION hpcgate_test_refuse() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'commit refused by test'; END $$ LANGUAGE plpgsql"))
            conn.execute(text(
                "CREATE CONSTRAINT TRIGGER hpcgate_test_refuse AFTER UPDATE ON steps "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                "WHEN (NEW.scheduler_job_id = '666') EXECUTE FUNCTION hpcgate_test_refuse()"))
        try:
            r = client.post(f"/agent/steps/{step_id}/job-id", json={"job_id": "666"},
                            headers=headers)
        finally:
            with db_engine.begin() as conn:
                conn.execute(text("DROP TRIGGER hpcgate_test_refuse ON steps"))
                conn.execute(text("DROP FUNCTION hpcgate_test_refuse()"))
        assert r.status_code >= 500, "a report whose commit failed was acknowledged"
        with Session(db_engine) as other:
            step = other.get(Step, step_id)
            assert step is not None
            assert step.scheduler_job_id is None
        r = client.post(f"/agent/steps/{step_id}/job-id", json={"job_id": "4242"},
                        headers=headers)
        assert r.status_code == 200
        with Session(db_engine) as other:
            step = other.get(Step, step_id)
            assert step is not None
            assert step.scheduler_job_id == "4242"
            calc_row = other.get(Calculation, calc_id)
            assert calc_row is not None
