"""Issue 15 item 3 (isolation): one request's parsing can neither freeze nor stall the API.

Exploit: ``POST /calculations/preview`` with a 300 KB pw.x input of ``"&a\\n" * 100000``
froze the whole API for minutes (a quadratic regex, holding the GIL of the process that
serves agents too). Now the parsers are linear (``test_linear_parsers.py``), and preparing
a calculation's inputs runs in worker processes with a time limit (``parse_timeout_s``;
here 5 s): an input that takes longer is refused with a 422 that says so, the worker is
replaced, and the API keeps answering everyone meanwhile. Nothing is written.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from hpcgate.services.parse_pool import ParsePool, get_pool
from tests.security.conftest import SecurityStack

pytestmark = pytest.mark.integration

TABLES = ("calculations", "steps", "step_edges", "array_tasks")
LIMIT_S = 5.0
FDF = """SystemLabel h2o
%block ChemicalSpeciesLabel
 1 8 O
 2 1 H
%endblock ChemicalSpeciesLabel
AtomicCoordinatesFormat Ang
%block AtomicCoordinatesAndAtomicSpecies
 0.000 0.000 0.000 1
 0.757 0.586 0.000 2
-0.757 0.586 0.000 2
%endblock AtomicCoordinatesAndAtomicSpecies
"""


@pytest.fixture(scope="module")
def security_settings_overrides() -> dict[str, Any]:
    return {"parse_workers": 1, "parse_timeout_s": LIMIT_S}


def _qe(s: SecurityStack, text: str) -> dict[str, Any]:
    config = {"kind": "single", "main_input": "pw.in", "inputs": {"pw.in": text}}
    return s.calculation_body(code="qe", configuration=config)


def _big_fdf(atoms: int = 6000) -> str:
    """A large (but legitimate) structure: each variant's preparation re-reads it."""
    head, tail = FDF.split("%block AtomicCoordinatesAndAtomicSpecies\n")
    rows = "".join(f" {i * 0.9:.3f} {0.1 * (i % 7):.3f} 0.000 {1 + i % 2}\n" for i in range(atoms))
    return head + "%block AtomicCoordinatesAndAtomicSpecies\n" + rows + tail.split("\n", 3)[-1]


def _big_siesta_sweep(s: SecurityStack) -> dict[str, Any]:
    """Legitimate, but 1000 variants of a 6000-atom SIESTA input take far longer than 5 s.

    Measured on an idle 2-core machine: about 45 ms per variant (45 s in all), so the 5 s
    limit is reached with a wide margin however fast the machine is; with the 3-atom input
    alone (2.5 ms per variant) a quiet machine finished inside the limit.
    """
    return s.calculation_body(
        code="siesta",
        configuration={
            "kind": "sweep",
            "main_input": "input.fdf",
            "inputs": {"input.fdf": _big_fdf(), "O.psf": "O\n", "H.psf": "H\n"},
            "variants": [
                {"label": f"m{i}", "parameters": {"MeshCutoff": f"{100 + i} Ry"}}
                for i in range(1000)
            ],
        },
    )


def _busy(pool: ParsePool) -> bool:
    """Its one worker is started and not idle: a preparation is running."""
    return pool.busy() > 0


def test_the_quadratic_pw_input_is_answered(security_stack: SecurityStack) -> None:
    s = security_stack
    before = s.snapshot(*TABLES)
    with s.api("user") as api:
        for text in ("&a\n" * 100000, "&system\n" + " \n" * 150000):
            r = api.post("/calculations/preview", json=_qe(s, text))
            assert r.status_code in (200, 422), r.text
            r = api.post("/calculations/preview", json=_qe(s, text + "&system\n ecutwfc=1\n/\n"))
            assert r.status_code in (200, 422), r.text
    assert s.snapshot(*TABLES) == before


def test_slow_preparation_is_cut_off_and_the_api_keeps_serving(
    security_stack: SecurityStack,
) -> None:
    s = security_stack
    before = s.snapshot(*TABLES)
    token = s.token("user")
    headers = {"Authorization": f"Bearer {token}"}
    result: dict[str, httpx.Response] = {}

    def slow() -> None:
        with httpx.Client(base_url=s.base_url, headers=headers, timeout=60) as c:
            result["create"] = c.post("/calculations", json=_big_siesta_sweep(s))

    pool = get_pool(1, LIMIT_S)  # the API of this stack runs in this process: its pool
    worker = threading.Thread(target=slow)
    worker.start()
    while worker.is_alive() and not _busy(pool):
        time.sleep(0.01)  # until the preparation is running in the pool's worker
    # While it runs, other callers are served (health, a listing, a login).
    with httpx.Client(base_url=s.base_url, headers=headers, timeout=30) as other:
        answered = [
            other.get("/health").status_code,
            other.get("/clusters").status_code,
            s.login("other").status_code,
        ]
    busy_meanwhile = _busy(pool) and worker.is_alive()
    worker.join(timeout=60)
    assert answered[1:] == [200, 200], answered
    assert answered[0] in (200, 503), answered
    assert busy_meanwhile, "the preparation ended before the others were served"
    r = result["create"]
    assert r.status_code == 422, r.text
    assert f"took longer than {LIMIT_S:g} s" in r.json()["detail"]
    assert s.snapshot(*TABLES) == before
    # the killed worker was replaced: a normal calculation still goes through
    with s.api("user") as api:
        ok = api.post("/calculations", json=s.calculation_body())
    assert ok.status_code == 201, ok.text
