"""Issue 15 item 6: a login flood never delays the agents, against the live API.

Many concurrent clients (each from its own loopback address) flood ``POST /auth/login`` with
random e-mails - every attempt an argon2 hash. Meanwhile a cluster agent keeps pulling work
(``POST /agent/pull`` with its API key). The API's ``Server-Timing`` header says which
admission pool admitted each request and how long it waited for admission, exactly 0 when it
did not queue. Proven without any timing bound:

* the flood did queue (logins answered with a non-zero admission wait, in the ``login`` pool);
* every agent pull answered 200 from the ``agent`` pool with an admission wait of 0: not one
  was queued behind a login.
"""

from __future__ import annotations

import re
import threading
import uuid

import httpx
import pytest

from tests.security.conftest import SecurityStack

pytestmark = pytest.mark.integration

FLOODERS = 24
PULLS = 20
_TIMING = re.compile(r'admit;dur=([\d.]+), app;dur=[\d.]+, pool;desc="(\w+)"')


def _admission(response: httpx.Response) -> tuple[float, str]:
    match = _TIMING.fullmatch(response.headers.get("server-timing", ""))
    assert match, response.headers.get("server-timing")
    return float(match[1]), match[2]


@pytest.fixture(scope="module")
def agent_key(security_stack: SecurityStack) -> str:
    from hpcgate.db.models import Cluster
    from hpcgate.db.models.clusters import AccessMode
    from hpcgate.db.session import session_scope
    from hpcgate.domain.access import ApiKeyOwner
    from hpcgate.services.api_keys import create_api_key

    with session_scope(security_stack.factory) as session:
        cluster = Cluster(
            name=f"agent-flood-{uuid.uuid4().hex[:6]}",
            description="an agent-mode cluster for the login flood test",
            scheduler="slurm",
            access_mode=AccessMode.AGENT,
            scratch_root="/scratch/flood",
            enabled=True,
            options={},
            cleanup_policy={},
        )
        session.add(cluster)
        session.flush()
        _, key = create_api_key(
            session, owner_kind=ApiKeyOwner.CLUSTER, name="flood-agent", cluster_id=cluster.id
        )
    return key


def test_login_flood_does_not_queue_agent_pulls(
    security_stack: SecurityStack, agent_key: str
) -> None:
    s = security_stack
    stop = threading.Event()
    lock = threading.Lock()
    flood: list[tuple[int, float, str]] = []
    flood_queued = threading.Event()
    errors: list[str] = []

    def flooder(n: int) -> None:
        transport = httpx.HTTPTransport(local_address=f"127.0.0.{10 + n}")
        with httpx.Client(base_url=s.base_url, transport=transport, timeout=60) as client:
            while not stop.is_set():
                try:
                    r = client.post(
                        "/auth/login",
                        json={
                            "email": f"flood.{uuid.uuid4().hex[:10]}@example.org",
                            "password": "guess-123456",
                        },
                    )
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(repr(exc))
                    return
                wait, pool = _admission(r)
                with lock:
                    flood.append((r.status_code, wait, pool))
                if wait > 0 and pool == "login":
                    flood_queued.set()

    threads = [threading.Thread(target=flooder, args=(n,), daemon=True) for n in range(FLOODERS)]
    for t in threads:
        t.start()
    pulls: list[tuple[int, float, str]] = []
    try:
        assert flood_queued.wait(60), "the flood never made logins queue; the test proves nothing"
        with httpx.Client(
            base_url=s.base_url, headers={"X-API-Key": agent_key}, timeout=60
        ) as agent:
            for i in range(PULLS):
                r = agent.post("/agent/pull", json={"agent": f"login-node:{i}"})
                pulls.append((r.status_code, *_admission(r)))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors[:3]
    # the flood ran alongside every pull and queued in its own pool
    assert {status for status, _, _ in flood} <= {401, 429}
    assert {pool for _, _, pool in flood} == {"login"}
    assert sum(1 for _, wait, _ in flood if wait > 0) >= 1
    # not one agent pull waited for admission
    assert pulls == [(200, 0.0, "agent")] * PULLS
