"""``GET /ml/models/{id}/accuracy`` on the real PostgreSQL through a live API (uvicorn).

The calculations' DFT values are the real SIESTA validator's verdicts on the shared SIESTA
fixtures (``hpcgate.codes.validation.validate_path``, what a harvest stores as the step's
``validation`` result). Predictions are stored the way the ML-API stores them
(``POST /predictions`` with the ML-API's key), so the values the accuracy reads are recorded
by the real creation path. The expected pairs and metrics are computed here with numpy from
the fixtures' numbers, independently of the service.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from hpcgate.api.app import create_app
from hpcgate.codes.validation import validate_path
from hpcgate.db.models import Calculation, ExtractedResult, Step
from hpcgate.db.models.ml import Prediction, PredictionValue
from hpcgate.domain.access import Role
from hpcgate.domain.states import CalculationState, StepState
from hpcgate.settings import Settings
from tests.helpers.api import auth_headers, new_api_key, new_cluster, new_user, unique
from tests.helpers.fixtures_path import require_siesta_fixtures
from tests.helpers.live_api import live_server

pytestmark = pytest.mark.integration

CASES = (
    "h2o_scf_siesta5",
    "si_scf_converged_max1",
    "si_pdos_siesta5",
    "fe_bands_siesta5",
    "si_scf_not_converged_abort_max1",
)


@dataclass
class World:
    base: str
    admin: dict[str, str]
    user: dict[str, str]
    ml_key: dict[str, str]
    user_id: int
    engine: Engine


@pytest.fixture(scope="module")
def verdicts() -> dict[str, dict[str, Any]]:
    """The stored ``validation`` result of each fixture run, as the harvest stores it."""
    root = require_siesta_fixtures()
    return {case: validate_path(root / case, "siesta").to_dict() for case in CASES}


@pytest.fixture
def world(settings: Settings, db_engine: Engine) -> Iterator[World]:
    admin = new_user(db_engine, role=Role.ADMIN)
    user = new_user(db_engine)
    _, key = new_api_key(db_engine)
    with live_server(create_app(settings, engine=db_engine)) as base:
        yield World(
            base,
            auth_headers(admin, settings),
            auth_headers(user, settings),
            {"X-API-Key": key},
            user.id,
            db_engine,
        )


def _calculation(
    engine: Engine, owner_id: int, code: str, steps: list[dict[str, Any] | None]
) -> int:
    """A completed calculation, one step per stored verdict (None: nothing extracted)."""
    cluster = new_cluster(engine)
    with Session(engine) as s:
        calc = Calculation(
            name=unique("acc"),
            owner_id=owner_id,
            cluster_id=cluster.id,
            logical_queue="default",
            code=code,
            configuration={"kind": "chain"},
            state=CalculationState.COMPLETED,
        )
        s.add(calc)
        s.flush()
        for i, verdict in enumerate(steps):
            step = Step(
                calculation_id=calc.id,
                cluster_id=cluster.id,
                index=i,
                label=f"step {i}",
                template=f"{code}.j2",
                job_name=f"hpcg-{calc.id}-{i}",
                state=StepState.HARVESTED if verdict else StepState.FAILED,
            )
            s.add(step)
            s.flush()
            if verdict is not None:
                s.add(ExtractedResult(step_id=step.id, kind="validation", data=verdict))
        s.commit()
        return calc.id


def _predict(
    w: World, model_id: int, calc_id: int | None, instances: list[dict[str, Any]], at: datetime
) -> int:
    """A prediction stored like the ML-API stores one, dated ``at``."""
    body = {
        "model_id": model_id,
        "calculation_id": calc_id,
        "user_id": w.user_id,
        "request": {"instances": [{"n_atoms": 3}] * len(instances)},
        "response": {"model": "m", "predictions": instances},
    }
    r = httpx.post(f"{w.base}/predictions", json=body, headers=w.ml_key)
    assert r.status_code == 201, r.text
    pid = int(r.json()["id"])
    with Session(w.engine) as s:
        s.execute(update(Prediction).where(Prediction.id == pid).values(created_at=at))
        s.commit()
    return pid


def _model(w: World) -> int:
    body = {"name": unique("acc"), "version": "1", "image": "localhost/x:1"}
    r = httpx.post(f"{w.base}/ml/models", json=body, headers=w.admin)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _get(
    w: World, model_id: int, headers: dict[str, str] | None = None, **q: Any
) -> httpx.Response:
    return httpx.get(f"{w.base}/ml/models/{model_id}/accuracy", params=q, headers=headers or w.user)


def _expected(pairs: list[tuple[datetime, float, float]]) -> dict[str, Any]:
    """MAE/RMSE overall and per month of (when, predicted, dft), with numpy."""
    err = np.array([d - p for _, p, d in pairs])
    months: dict[str, list[float]] = {}
    for (at, _, _), e in zip(pairs, err, strict=True):
        months.setdefault(at.strftime("%Y-%m-01"), []).append(float(e))
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "months": {
            m: (len(v), float(np.mean(np.abs(v))), float(np.sqrt(np.mean(np.square(v)))))
            for m, v in months.items()
        },
    }


T1 = datetime(2026, 10, 15, 9, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
T3 = datetime(2026, 11, 20, 18, 30, tzinfo=UTC)
T4 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _num(verdict: dict[str, Any], key: str) -> Any:
    return verdict["numbers"][key]


def _seed(w: World, v: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Calculations, predictions, and the pairs they should give (computed here)."""
    h2o, si, pdos, fe, bad = (v[c] for c in CASES)
    qe_verdict = {  # a QE run's stored verdict (only the code filter needs a second code)
        "status": "converged",
        "converged": True,
        "code": "qe",
        "numbers": {"energy_total_ev": -1234.5, "fermi_ev": -6.25, "scf_iterations_last": 9},
    }
    uid = w.user_id
    a = _calculation(w.engine, uid, "siesta", [h2o])
    b = _calculation(w.engine, uid, "siesta", [si, pdos])
    c = _calculation(w.engine, uid, "siesta", [fe, bad])  # the last step did not converge
    q = _calculation(w.engine, uid, "qe", [qe_verdict])
    g = _calculation(w.engine, uid, "generic", [h2o])  # no DFT source for generic runs
    d = _calculation(w.engine, uid, "siesta", [None])  # nothing extracted
    m, other = _model(w), _model(w)
    e = {
        k: _num(x, "energy_total_ev")
        for k, x in (("h2o", h2o), ("si", si), ("pdos", pdos), ("fe", fe))
    }
    _predict(w, m, a, [{"energy_total_ev": e["h2o"] + 0.8, "fermi_ev": _num(h2o, "fermi_ev") - 0.1,
                        "scf_iterations": 10, "converged": True}], T1)  # fmt: skip
    # as many instances as steps: one to one
    _predict(w, m, b, [{"energy_total_ev": e["si"] - 1.5},
                       {"energy_total_ev": e["pdos"] + 0.25, "scf_iterations": 6}], T2)  # fmt: skip
    # one instance for a chain: about its final (last judged) step
    _predict(w, m, b, [{"energy_total_ev": e["pdos"] - 0.5}], T3)
    # the final step has no total energy (not converged): no energy pair, an SCF one
    _predict(w, m, c, [{"energy_total_ev": -3400.0, "scf_iterations": 5}], T3)
    _predict(w, m, c, [{"energy_total_ev": e["fe"] + 2.0}, {"energy_total_ev": -215.0}], T4)
    _predict(w, m, q, [{"energy_total_ev": -1234.0}], T4)
    _predict(w, m, g, [{"energy_total_ev": -950.0}], T4)
    _predict(w, m, d, [{"energy_total_ev": -1.0}], T4)
    _predict(w, m, None, [{"energy_total_ev": -2.0}], T4)
    _predict(w, other, a, [{"energy_total_ev": e["h2o"]}], T4)
    not_numbers = _predict(w, m, a, [{"energy_total_ev": True}, 3], T4)  # type: ignore[list-item]
    with Session(w.engine) as s:
        recorded = s.query(PredictionValue).filter_by(prediction_id=not_numbers).count()
    assert recorded == 0
    energy = [  # (calc, step, when, predicted, dft)
        (a, 0, T1, e["h2o"] + 0.8, e["h2o"]),
        (b, 0, T2, e["si"] - 1.5, e["si"]),
        (b, 1, T2, e["pdos"] + 0.25, e["pdos"]),
        (b, 1, T3, e["pdos"] - 0.5, e["pdos"]),
        (c, 0, T4, e["fe"] + 2.0, e["fe"]),
        (q, 0, T4, -1234.0, -1234.5),
    ]
    scf = [
        (a, 0, T1, 10.0, float(_num(h2o, "scf_iterations_last"))),
        (b, 1, T2, 6.0, float(_num(pdos, "scf_iterations_last"))),
        (c, 1, T3, 5.0, float(_num(bad, "scf_iterations_last"))),
    ]
    fermi = [(a, 0, T1, _num(h2o, "fermi_ev") - 0.1, _num(h2o, "fermi_ev"))]
    return {"model": m, "other": other, "qe": q, "energy": energy, "scf": scf, "fermi": fermi}


def _check(body: dict[str, Any], expected: list[tuple[int, int, datetime, float, float]]) -> None:
    got = [(p["calculation_id"], p["step_index"], p["predicted"], p["dft"]) for p in body["pairs"]]
    assert got == [(c, s, pytest.approx(p), pytest.approx(d)) for c, s, _, p, d in expected]
    for pair in body["pairs"]:
        assert pair["error"] == pytest.approx(pair["dft"] - pair["predicted"])
    assert [datetime.fromisoformat(p["predicted_at"]) for p in body["pairs"]] == [
        at for _, _, at, _, _ in expected
    ]
    want = _expected([(at, p, d) for _, _, at, p, d in expected])
    overall = body["overall"]
    assert overall["n"] == len(expected) == body["pairs_total"]
    assert overall["mae"] == pytest.approx(want["mae"], rel=1e-12)
    assert overall["rmse"] == pytest.approx(want["rmse"], rel=1e-12)
    months = {p["start"]: (p["n"], p["mae"], p["rmse"]) for p in body["periods"]}
    assert months.keys() == want["months"].keys()
    for start, (n, mae, rmse) in want["months"].items():
        assert months[start] == (n, pytest.approx(mae, rel=1e-12), pytest.approx(rmse, rel=1e-12))


def test_pairs_and_metrics_against_siesta_results(
    world: World, verdicts: dict[str, dict[str, Any]]
) -> None:
    seeded = _seed(world, verdicts)
    m = seeded["model"]
    r = _get(world, m)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model_id"], body["property"]["name"], body["property"]["unit"]) == (
        m,
        "energy_total_ev",
        "eV",
    )
    assert body["code"] is None
    assert body["period"] == "month"
    assert {p["name"] for p in body["properties"]} >= {"energy_total_ev", "fermi_ev"}
    _check(body, seeded["energy"])
    assert {p["code"] for p in body["pairs"]} == {"siesta", "qe"}

    siesta = [x for x in seeded["energy"] if x[0] != seeded["qe"]]
    _check(_get(world, m, code="siesta").json(), siesta)
    only_qe = _get(world, m, code="qe").json()
    _check(only_qe, [x for x in seeded["energy"] if x[0] == seeded["qe"]])
    assert only_qe["code"] == "qe"
    _check(_get(world, m, property="scf_iterations").json(), seeded["scf"])
    _check(_get(world, m, property="fermi_ev", code="siesta").json(), seeded["fermi"])

    # the newest pairs only; the metrics still over all of them
    last_two = _get(world, m, limit=2).json()
    assert last_two["pairs_total"] == 6
    assert len(last_two["pairs"]) == 2
    assert last_two["overall"] == body["overall"]
    assert last_two["pairs"] == body["pairs"][-2:]

    # per ISO week (Monday), computed here
    weekly = _get(world, m, period="week").json()
    weeks: dict[str, list[float]] = {}
    for _, _, at, p, d in seeded["energy"]:
        monday = datetime.fromordinal(at.toordinal() - at.weekday()).strftime("%Y-%m-%d")
        weeks.setdefault(monday, []).append(d - p)
    assert [(w["start"], w["n"]) for w in weekly["periods"]] == sorted(
        (k, len(v)) for k, v in weeks.items()
    )
    for w in weekly["periods"]:
        assert w["mae"] == pytest.approx(float(np.mean(np.abs(weeks[w["start"]]))), rel=1e-12)

    # another model's predictions are its own
    other = _get(world, seeded["other"]).json()
    assert other["overall"]["n"] == 1
    assert other["overall"]["mae"] == 0.0
    assert other["overall"]["rmse"] == 0.0


def test_no_pairs_bad_parameters_and_access(world: World, settings: Settings) -> None:
    m = _model(world)
    empty = _get(world, m).json()
    assert empty["overall"] == {"n": 0, "mae": None, "rmse": None, "bias": None}
    assert empty["pairs"] == []
    assert empty["periods"] == []
    assert empty["pairs_total"] == 0

    assert _get(world, 987_654_321).status_code == 404
    for q in (
        {"property": "nope"},
        {"property": "energy_total_ev", "code": "generic"},  # no DFT source for generic runs
        {"code": "SIESTA"},
        {"period": "year"},
        {"limit": 0},
        {"limit": 20_001},
    ):
        r = _get(world, m, **q)
        assert r.status_code == 422, (q, r.text)
    assert _get(world, 0).status_code == 422
    assert httpx.get(f"{world.base}/ml/models/abc/accuracy", headers=world.user).status_code == 422

    # RBAC: ml_model.read - every logged-in user, never a machine key or nobody
    moderator = new_user(world.engine, role=Role.MODERATOR)
    blocked = new_user(world.engine, blocked=True)
    assert _get(world, m, auth_headers(moderator, settings)).status_code == 200
    assert _get(world, m, world.admin).status_code == 200
    assert httpx.get(f"{world.base}/ml/models/{m}/accuracy").status_code == 401
    assert _get(world, m, world.ml_key).status_code == 401
    assert _get(world, m, auth_headers(blocked, settings)).status_code in (401, 403)
