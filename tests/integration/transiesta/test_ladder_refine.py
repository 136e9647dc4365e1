"""Adaptive bias refinement on a real ladder: API -> worker (SSH) -> real Slurm, and API <-
the real ``hpcgate agent`` process -> real Slurm (agent mode: the API's harvest of the
agent's report adds the points, the agent's long-poll brings them and it submits them);
real SIESTA/TBtrans (the 1-D Au chain of conftest). Every check runs for both modes.

The ladder asks for 0 and +0.2 V only, with ``refine``. The Au chain's current rises
steeply at first and then flattens (I(0.1) is about 2/3 of I(0.2)), so with a 5 µA
threshold the refinement must bisect where the current changes fast, near 0 V, and leave
the flat part alone. Nothing here hard-codes which points: the test replays the
decisions from the currents hpcgate recorded (its own arithmetic, not
``hpcgate.domain.refine``) and checks that exactly the intervals that exceeded got a
midpoint, that each new point started from the ``.TSDE`` of the nearest converged bias,
that the ladder stayed running until no interval exceeded, and that each midpoint's
current equals a direct ``siesta``/``tbtrans`` run of that bias from the same start
(computed here by hand, without hpcgate).
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hpcgate.db.models import AnalysisResult, Calculation
from hpcgate.db.session import session_scope
from hpcgate.domain.states import CalculationState, StepState
from tests.helpers.api import api_client
from tests.integration.transiesta.conftest import LadderSite, _point, _run
from tests.integration.transiesta.test_ladder_slurm import _iv

# The ladder runs 9 real jobs mostly one after another (about 1 min on an idle 2-core
# machine, 3.5 min at load 15): more than the default 300 s per test on a busy machine.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slurm,
    pytest.mark.timeout(600),
]

BIASES = [0.0, 0.2]
REFINE = {"max_points": 3, "max_delta_current": 5e-6, "min_step_v": 0.03}


@dataclass
class Refined:
    detail: dict[str, Any]  # GET /calculations/{id} once settled
    results: dict[str, Any]  # GET .../results
    report: dict[str, Any]  # GET .../report.json
    direct: Future[Path]  # a direct run (no hpcgate) of the electrode and 0 V, for the checks
    states_seen: list[str] = field(default_factory=list)  # calculation states, tick by tick
    curves: list[tuple[list[float], list[float]]] = field(default_factory=list)  # points, pending


def _body(cluster_id: int, files: dict[str, str]) -> dict[str, Any]:
    return {
        "name": "Au chain refined",
        "cluster_id": cluster_id,
        "logical_queue": "default",
        "code": "siesta",
        "configuration": {
            "kind": "transiesta",
            "inputs": files,
            "device": "device.fdf",
            "electrodes": {"Left": "elec.fdf", "Right": "elec.fdf"},
            "biases_v": BIASES,
            "refine": REFINE,
            "resources": {"tasks": 1, "walltime_s": 600},
        },
    }


def _snapshot(factory: Any, calc_id: int, seen: Refined) -> None:
    """The ladder's state and I-V as stored right now (what the portal would show)."""
    with session_scope(factory) as s:
        iv = s.scalar(
            select(AnalysisResult).where(
                AnalysisResult.calculation_id == calc_id,
                AnalysisResult.analysis == "transiesta_iv",
            )
        )
        calc = s.get(Calculation, calc_id)
        assert calc is not None
        seen.states_seen.append(calc.state.value)
        if iv is not None and iv.status == "ok":
            data = iv.data["data"]
            curve = ([p["bias_v"] for p in data["points"]], [p["bias_v"] for p in data["pending"]])
            if not seen.curves or seen.curves[-1] != curve:
                seen.curves.append(curve)


@pytest.fixture(scope="module", params=[pytest.param("ssh", marks=pytest.mark.ssh), "agent"])
def refined(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    au_chain: dict[str, str],
) -> Refined:
    """The refined ladder, run by the worker over SSH or by a real agent process."""
    site: LadderSite = request.getfixturevalue(f"{request.param}_ladder_site")
    env = site.env
    with api_client(env.settings, env.engine) as client:
        calc_id = _create_when_not_busy(client, site.headers, _body(site.cluster_id, au_chain))
        # Started now, run while the ladder runs: electrode and 0 V by hand.
        pool = ThreadPoolExecutor(1)
        direct = pool.submit(_direct_start, tmp_path_factory.mktemp("direct"), au_chain)
        pool.shutdown(wait=False)
        seen = Refined({}, {}, {}, direct)

        def tick() -> None:
            site.tick()
            _snapshot(env.factory, calc_id, seen)

        env.run_until_settled(calc_id, tick, timeout=420, every=0.5)
        seen.detail = client.get(f"/calculations/{calc_id}", headers=site.headers).json()
        seen.results = client.get(f"/calculations/{calc_id}/results", headers=site.headers).json()
        r = client.get(f"/calculations/{calc_id}/report.json", headers=site.headers)
        assert r.status_code == 200, r.text
        seen.report = r.json()
    return seen


def _create_when_not_busy(client: Any, headers: dict[str, str], body: dict[str, Any]) -> int:
    """POST /calculations; a 503 "busy" (the input parsers are all taken: other tests share
    this machine) says to retry in a moment, as a client would."""
    for _ in range(30):
        r = client.post("/calculations", json=body, headers=headers)
        if r.status_code != 503:
            break
        time.sleep(2)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _direct_start(root: Path, files: dict[str, str]) -> Path:
    """The electrode and the 0 V point run directly with siesta/tbtrans, in ``root``."""
    elec = root / "electrode"
    elec.mkdir()
    for name in ("elec.fdf", "Au.psf"):
        (elec / name).write_text(files[name])
    assert _run("siesta", elec, "elec.fdf", "elec.out", "--electrode") == 0
    _point(root, files, 0.0, None)
    return root


def _exceeds(points: dict[float, float], a: float, b: float, t: float) -> bool:
    """Neighbouring biases a < b of ``points``: the current step, or a neighbour's distance
    from the chord of its own neighbours (dI/dV changing), beyond t."""
    if abs(points[b] - points[a]) > t:
        return True
    xs = sorted(points)
    for v in (a, b):
        i = xs.index(v)
        if 0 < i < len(xs) - 1:
            u, w = xs[i - 1], xs[i + 1]
            chord = points[u] + (v - u) / (w - u) * (points[w] - points[u])
            if abs(points[v] - chord) > t:
                return True
    return False


def _devices(detail: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        (s for s in detail["steps"] if (s.get("ladder") or {}).get("role") == "device"),
        key=lambda s: s["index"],
    )


def test_midpoints_exactly_where_the_current_changed_fast(refined: Refined) -> None:
    detail = refined.detail
    assert detail["state"] == CalculationState.COMPLETED.value, [
        (s["label"], s["state"], s["state_reason"]) for s in detail["steps"]
    ]
    assert all(s["state"] == StepState.HARVESTED.value for s in detail["steps"])
    doc = _iv(refined.results)["data"]
    assert doc["partial"] is False
    assert doc["pending"] == []
    assert doc["failed"] == []
    currents = {p["bias_v"]: p["current_a"] for p in doc["points"]}
    assert [p["bias_v"] for p in doc["points"]] == sorted(currents)  # sorted by bias
    added = [d for d in _devices(detail) if d["ladder"].get("refined")]
    assert added, "the Au chain's steep start must be refined"
    assert len(added) <= REFINE["max_points"]
    t = float(REFINE["max_delta_current"])
    # Replay: each added point bisected an interval of the points known before it.
    known = {v: currents[v] for v in BIASES}
    for step in added:
        v = step["ladder"]["bias_v"]
        a = max(x for x in known if x < v)
        b = min(x for x in known if x > v)
        assert v == pytest.approx((a + b) / 2, abs=1e-6), (v, a, b)
        assert _exceeds(known, a, b, t), f"{v} V bisects [{a}, {b}], which did not exceed"
        assert min(v - a, b - v) >= REFINE["min_step_v"] - 1e-9
        # It started from the nearest converged bias (closer to 0 V on a tie).
        nearest = min(known, key=lambda x: (abs(x - v), abs(x)))
        assert step["ladder"]["previous_bias_v"] == nearest
        known[v] = currents[v]
    assert known == currents  # every point on the curve is accounted for
    # The curve marks the points refinement added.
    added_biases = {d["ladder"]["bias_v"] for d in added}
    assert {p["bias_v"] for p in doc["points"] if p["refined"]} == added_biases
    assert _iv(refined.results)["summary"]["refined_points"] == len(added)
    # And it stopped only when nothing wide enough exceeded (or the budget was spent).
    xs = sorted(currents)
    if len(added) < REFINE["max_points"]:
        for a, b in itertools.pairwise(xs):
            wide = (b - a) / 2 >= REFINE["min_step_v"]
            assert not (wide and _exceeds(currents, a, b, t)), f"[{a}, {b}] left unrefined"
    # Where the curve flattens (+0.1 to +0.2 V changes by less than the threshold in the
    # Au chain) nothing is added: the points went where the current changes fast.
    assert not any(0.1 < x < 0.2 for x in xs)


def test_new_points_start_from_their_neighbours_density(refined: Refined) -> None:
    steps = {s["label"]: s for s in refined.detail["steps"]}
    by_id = {s["id"]: s for s in refined.detail["steps"]}
    for device in (d for d in _devices(refined.detail) if d["ladder"].get("refined")):
        text = (Path(device["workdir"]) / "device.out").read_text(errors="replace")
        assert "Attempting to read DM, EDM from TSDE file... Succeeded..." in text
        start = device["ladder"]["previous_bias_v"]
        parent_labels = {by_id[p]["label"] for p in device["parents"]}
        assert f"device {_v(start)}" in parent_labels
        assert "electrode elec.fdf" in parent_labels
        tbtrans = steps[f"tbtrans {_v(device['ladder']['bias_v'])}"]
        assert tbtrans["parents"] == [device["id"]]
        assert tbtrans["ladder"]["refined"] is True


def test_the_ladder_stayed_running_and_the_curve_grew(refined: Refined) -> None:
    states = refined.states_seen
    # Never completed (nor failed) while refinement could still add points.
    assert states.index(CalculationState.COMPLETED.value) == len(states) - 1
    assert CalculationState.FAILED.value not in states
    # The stored I-V grew point by point, refined points listed as pending first.
    added = {d["ladder"]["bias_v"] for d in _devices(refined.detail) if d["ladder"].get("refined")}
    pending_seen = {v for _, pending in refined.curves for v in pending}
    assert added <= pending_seen
    sizes = [len(points) for points, _ in refined.curves]
    assert sizes == sorted(sizes)
    assert sizes[-1] == len(BIASES) + len(added)
    # The report shows the same curve, refined points included.
    currents = {p["bias_v"] for p in _iv(refined.results)["data"]["points"]}
    assert currents <= set(_iv_biases(refined.report))


def _iv_biases(node: Any) -> list[float]:
    """Every ``bias_v`` of an I-V point (a dict with a current) anywhere in a document."""
    if isinstance(node, dict):
        own = [node["bias_v"]] if "bias_v" in node and "current_a" in node else []
        return own + [b for v in node.values() for b in _iv_biases(v)]
    if isinstance(node, list):
        return [b for v in node for b in _iv_biases(v)]
    return []


def test_midpoint_currents_match_direct_runs(refined: Refined, au_chain: dict[str, str]) -> None:
    """Each refined point run by hand from its start point's density, without hpcgate."""
    doc = _iv(refined.results)["data"]
    currents = {p["bias_v"]: p for p in doc["points"]}
    root = refined.direct.result()
    starts = {
        d["ladder"]["bias_v"]: d["ladder"]["previous_bias_v"] for d in _devices(refined.detail)
    }
    done: set[float] = {0.0}

    def direct(v: float) -> None:
        if v in done:
            return
        start = starts[v]
        if start is not None:
            direct(start)
        ref = _point(root, au_chain, v, start)
        done.add(v)
        got = currents[v]
        assert got["current_stdout_a"] == ref.current_stdout_a, v
        assert got["current_a"] == pytest.approx(ref.current_nc_a, rel=1e-9, abs=1e-25), v

    for device in _devices(refined.detail):
        if device["ladder"].get("refined"):
            direct(device["ladder"]["bias_v"])
            v = device["ladder"]["bias_v"]
            below = max(x for x in currents if x < v)
            above = min(x for x in currents if x > v)
            lo, hi = sorted((currents[below]["current_a"], currents[above]["current_a"]))
            assert lo < currents[v]["current_a"] < hi  # on the curve, between its neighbours


def _v(bias: float) -> str:
    return "0 V" if bias == 0 else f"{bias:+.6g} V"
