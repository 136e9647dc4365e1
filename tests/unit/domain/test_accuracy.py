"""Accuracy of predictions against DFT: the metrics, the periods, which step a predicted
instance is about, and the property table (predicted values in, DFT values out)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcgate.domain.accuracy import Period, metrics, per_period, period_start, pick_unit
from hpcgate.domain.dft_properties import (
    PROPERTIES,
    codes_of,
    dft_value,
    instances_of,
    predicted_values,
)
from hpcgate.services.predictions import compare_prediction

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
errors_lists = st.lists(finite, min_size=1, max_size=60)


@given(errors_lists)
def test_mae_never_exceeds_rmse(errors: list[float]) -> None:
    m = metrics(errors)
    assert m.mae is not None
    assert m.rmse is not None
    assert m.n == len(errors)
    assert 0.0 <= m.mae <= m.rmse


@given(st.lists(finite, min_size=1, max_size=60))
def test_zero_when_predictions_equal_dft(values: list[float]) -> None:
    m = metrics(dft - predicted for dft, predicted in zip(values, values, strict=True))
    assert (m.mae, m.rmse, m.bias) == (0.0, 0.0, 0.0)


@given(errors_lists, st.randoms(use_true_random=False))
def test_permutation_invariant(errors: list[float], rnd: object) -> None:
    shuffled = list(errors)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert metrics(shuffled) == metrics(errors)


@given(errors_lists)
def test_agrees_with_numpy(errors: list[float]) -> None:
    m = metrics(errors)
    e = np.array(errors)
    assert m.mae == pytest.approx(float(np.mean(np.abs(e))), rel=1e-9, abs=1e-9)
    assert m.rmse == pytest.approx(float(np.sqrt(np.mean(e**2))), rel=1e-9, abs=1e-9)
    assert m.bias == pytest.approx(float(np.mean(e)), rel=1e-9, abs=1e-6)


def test_no_errors_no_metrics() -> None:
    m = metrics([])
    assert (m.n, m.mae, m.rmse, m.bias) == (0, None, None, None)


def test_period_starts_in_utc() -> None:
    at = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)  # a Thursday
    assert period_start(at, Period.DAY) == date(2026, 12, 3)
    assert period_start(at, Period.WEEK) == date(2026, 11, 30)
    assert period_start(at, Period.MONTH) == date(2026, 12, 1)
    # 00:30 on the 1st in UTC+2 is still the previous month in UTC
    east = datetime(2026, 12, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert period_start(east, Period.MONTH) == date(2026, 11, 1)


@given(
    st.lists(
        st.tuples(
            st.datetimes(
                min_value=datetime(2020, 1, 1),
                max_value=datetime(2030, 1, 1),
                timezones=st.just(UTC),
            ),
            finite,
        ),
        max_size=40,
    ),
    st.sampled_from(list(Period)),
)
def test_periods_partition_the_points(points: list[tuple[datetime, float]], period: Period) -> None:
    buckets = per_period(points, period)
    assert [b.start for b in buckets] == sorted({period_start(at, period) for at, _ in points})
    assert sum(b.metrics.n for b in buckets) == len(points)
    for b in buckets:
        mine = [e for at, e in points if period_start(at, period) == b.start]
        assert b.metrics == metrics(mine)


def test_pick_unit_follows_the_comparison_rule() -> None:
    # as many instances as units: one to one; otherwise the last judged unit
    assert [pick_unit(i, 3, 3, 1) for i in range(3)] == [0, 1, 2]
    assert pick_unit(0, 1, 3, 1) == 1
    assert pick_unit(1, 2, 3, 2) == 2
    assert pick_unit(0, 1, 2, None) is None
    assert pick_unit(0, 1, 0, None) is None


@given(st.integers(1, 5), st.integers(1, 5), st.data())
def test_pick_unit_matches_compare_prediction(
    n_inst: int, n_units: int, data: st.DataObject
) -> None:
    """The accuracy pairs a value with the outcome compare_prediction compares it with."""
    judged = data.draw(st.lists(st.booleans(), min_size=n_units, max_size=n_units))

    class Outcome:
        def __init__(self, i: int, ok: bool) -> None:
            self.status = "converged" if ok else None
            self.converged = None
            self.scf_iterations = i if ok else None
            self.energy_total_ev = None

    outcomes = [Outcome(i, ok) for i, ok in enumerate(judged)]
    instances = [{"scf_iterations": 100} for _ in range(n_inst)]
    compared = compare_prediction({"predictions": instances}, outcomes)
    last = max((i for i, ok in enumerate(judged) if ok), default=None)
    for index, pair in enumerate(compared):
        chosen = pick_unit(index, n_inst, n_units, last)
        if chosen is None or not judged[chosen]:
            assert pair == {}
        else:
            assert pair["scf_iterations"].actual == chosen


def test_predicted_values_of_an_answer() -> None:
    answer = {
        "predictions": [
            {"energy_total_ev": -10.5, "fermi_ev": -4, "converged": True, "scf_iterations": 7},
            3,
            {"energy_total_ev": True, "scf_iterations": "7", "fermi_ev": math.inf},
        ]
    }
    assert sorted(predicted_values(answer)) == [
        ("energy_total_ev", 0, 3, -10.5),
        ("fermi_ev", 0, 3, -4.0),
        ("scf_iterations", 0, 3, 7.0),
    ]
    assert predicted_values({"energy_total_ev": -1}) == [("energy_total_ev", 0, 1, -1.0)]
    assert instances_of({"predictions": []}) == []
    assert predicted_values({"predictions": "x"}) == []


def test_dft_values_per_code() -> None:
    results = {"validation": {"numbers": {"energy_total_ev": -950.957882, "fermi_ev": None}}}
    assert dft_value("energy_total_ev", "siesta", results) == -950.957882
    assert dft_value("energy_total_ev", "qe", results) == -950.957882
    assert dft_value("energy_total_ev", "generic", results) is None
    assert dft_value("fermi_ev", "siesta", results) is None
    assert dft_value("scf_iterations", "siesta", {}) is None
    assert dft_value("scf_iterations", "siesta", {"validation": {"numbers": 3}}) is None
    assert (
        dft_value(
            "energy_total_ev", "siesta", {"validation": {"numbers": {"energy_total_ev": True}}}
        )
        is None
    )


def test_property_table() -> None:
    assert PROPERTIES["energy_total_ev"].unit == "eV"
    assert PROPERTIES["fermi_ev"].unit == "eV"
    for name, spec in PROPERTIES.items():
        assert spec.name == name
        assert codes_of(name) == sorted(spec.sources)
