"""TranSIESTA bias ladders as plans: DAG shape, per-edge hand-over, and the refusals."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcgate.domain.ladder import MAX_POINTS, bias_label, build_transiesta_plan
from hpcgate.domain.plan import Plan, PlanError, build_plan


def _ladder(**over: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "kind": "transiesta",
        "device": "device.fdf",
        "electrodes": {"Left": "elec.fdf", "Right": "elec.fdf"},
        "biases_v": [0.2, -0.1, 0.0, 0.1],
    }
    config.update(over)
    return config


def _by_label(plan: Plan) -> dict[str, Any]:
    return {s.label: s for s in plan.steps}


def test_identical_electrodes_run_once_then_zero_then_two_branches_then_tbtrans() -> None:
    plan = build_plan(_ladder())
    assert plan.kind == "transiesta"
    assert [s.label for s in plan.steps] == [
        "electrode elec.fdf",
        "device 0 V",
        "device +0.1 V",
        "device +0.2 V",
        "device -0.1 V",
        "tbtrans 0 V",
        "tbtrans +0.1 V",
        "tbtrans +0.2 V",
        "tbtrans -0.1 V",
    ]
    s = _by_label(plan)
    elec = s["electrode elec.fdf"].index
    assert s["electrode elec.fdf"].meta["electrodes"] == ["Left", "Right"]
    assert s["electrode elec.fdf"].parents == ()
    # 0 V only after the electrode; each bias after the nearest point of its branch.
    assert s["device 0 V"].parents == (elec,)
    assert s["device +0.1 V"].parents == (elec, s["device 0 V"].index)
    assert s["device +0.2 V"].parents == (elec, s["device +0.1 V"].index)
    assert s["device -0.1 V"].parents == (elec, s["device 0 V"].index)
    for v in ("0 V", "+0.1 V", "+0.2 V", "-0.1 V"):
        assert s[f"tbtrans {v}"].parents == (s[f"device {v}"].index,)
    # Heads: only the electrode; parents always have smaller indices (submission order).
    assert plan.heads() == [elec]
    assert all(p < step.index for step in plan.steps for p in step.parents)


def test_each_edge_hands_over_only_its_own_files() -> None:
    s = _by_label(build_plan(_ladder()))
    elec, zero, up = (s[k].index for k in ("electrode elec.fdf", "device 0 V", "device +0.1 V"))
    assert s["device 0 V"].inherit_from(elec) == ("*.TSHS",)
    assert s["device +0.1 V"].inherit_from(elec) == ("*.TSHS",)
    assert s["device +0.1 V"].inherit_from(zero) == ("*.TSDE",)  # never the parent's TSHS
    assert s["device +0.2 V"].inherit_from(up) == ("*.TSDE",)
    assert s["tbtrans +0.1 V"].inherit_from(up) == ("*.TSHS",)


def test_points_carry_bias_branch_and_previous_point() -> None:
    s = _by_label(build_plan(_ladder(parameters={"MeshCutoff": "80 Ry"})))
    assert dict(s["device -0.1 V"].meta) == {
        "role": "device",
        "fdf": "device.fdf",
        "bias_v": -0.1,
        "previous_bias_v": 0.0,
        "branch": "negative",
    }
    assert s["device 0 V"].meta["previous_bias_v"] is None
    assert s["tbtrans +0.2 V"].meta == {"role": "tbtrans", "fdf": "device.fdf", "bias_v": 0.2}
    assert s["device +0.2 V"].variant.parameters == {"MeshCutoff": "80 Ry", "TS.Voltage": 0.2}


def test_different_electrodes_are_two_steps_and_both_feed_every_point() -> None:
    plan = build_plan(_ladder(electrodes={"Left": "left.fdf", "Right": "right.fdf"}))
    s = _by_label(plan)
    left, right = s["electrode left.fdf"].index, s["electrode right.fdf"].index
    assert s["device 0 V"].parents == (left, right)
    assert s["device -0.1 V"].parents == (left, right, s["device 0 V"].index)
    assert sorted(plan.heads()) == [left, right]


def test_point_parameters_apply_to_that_point_and_its_tbtrans_only() -> None:
    s = _by_label(
        build_plan(
            _ladder(
                parameters={"MaxSCFIterations": 50},
                point_parameters=[{"bias_v": 0.1, "parameters": {"DM.UseSaveDM": False}}],
            )
        )
    )
    assert s["device +0.1 V"].variant.parameters["DM.UseSaveDM"] is False
    assert s["tbtrans +0.1 V"].variant.parameters["DM.UseSaveDM"] is False
    assert "DM.UseSaveDM" not in s["device +0.2 V"].variant.parameters
    assert s["device +0.2 V"].variant.parameters["MaxSCFIterations"] == 50


def test_without_tbtrans_only_electrodes_and_points() -> None:
    plan = build_plan(_ladder(tbtrans=False))
    assert [s.meta["role"] for s in plan.steps] == ["electrode"] + ["device"] * 4


def test_only_zero_bias_is_a_valid_ladder() -> None:
    plan = build_plan(_ladder(biases_v=[0]))
    assert [s.label for s in plan.steps] == ["electrode elec.fdf", "device 0 V", "tbtrans 0 V"]


@pytest.mark.parametrize(
    ("over", "fragment"),
    [
        ({"biases_v": [0.1, 0.2]}, "must include 0 V"),
        ({"biases_v": [0, 0.1, 0.1]}, "+0.1 V is listed twice"),
        ({"biases_v": [0, 0.1, 0.1000000001]}, "+0.1 V is listed twice"),
        ({"biases_v": [0, -0.0]}, "0 V is listed twice"),
        ({"biases_v": []}, "non-empty list"),
        ({"biases_v": "0,0.1"}, "non-empty list"),
        ({"biases_v": [0, True]}, "must be a number"),
        ({"biases_v": [0, "0.1"]}, "must be a number"),
        ({"biases_v": [0, float("nan")]}, "not a finite number"),
        ({"biases_v": [0, 100]}, "beyond"),
        ({"biases_v": [i / 1000 for i in range(MAX_POINTS + 1)]}, "at most"),
        ({"device": None}, "needs 'device'"),
        ({"device": "../device.fdf"}, "needs 'device'"),
        ({"electrodes": {}}, "needs 'electrodes'"),
        ({"electrodes": ["elec.fdf"]}, "needs 'electrodes'"),
        ({"electrodes": {"Left": "sub/elec.fdf"}}, "not a plain input file name"),
        ({"electrodes": {"Le ft": "elec.fdf"}}, "electrode name 'Le ft'"),
        ({"electrodes": {"Left": "device.fdf"}}, "both the device and an electrode"),
        ({"tbtrans": "yes"}, "'tbtrans' must be true or false"),
        ({"parameters": {"TS.Voltage": 0.3}}, "must not set TS.Voltage"),
        ({"parameters": {"ts_voltage": 0.3}}, "must not set TS.Voltage"),
        ({"point_parameters": [{"bias_v": 0.3, "parameters": {}}]}, "not one of the ladder"),
        ({"point_parameters": [{"parameters": {}}]}, "with 'bias_v'"),
        ({"point_parameters": {"0.1": {}}}, "must be a list"),
        ({"variants": []}, "unknown key(s) for a transiesta ladder: variants"),
    ],
)
def test_refusals_name_the_problem(over: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PlanError) as err:
        build_plan(_ladder(**over))
    assert fragment in str(err.value)


def test_unknown_kind_lists_transiesta() -> None:
    with pytest.raises(PlanError, match="transiesta"):
        build_plan({"kind": "ladder"})


@given(
    st.lists(
        st.decimals(min_value=-2, max_value=2, places=3).map(float),
        min_size=1,
        max_size=12,
        unique=True,
    )
)
def test_every_point_starts_from_the_nearest_point_of_its_branch(biases: list[float]) -> None:
    biases = sorted({round(b, 6) + 0.0 for b in biases} | {0.0})
    plan = build_transiesta_plan(_ladder(biases_v=biases))
    device = {s.meta["bias_v"]: s for s in plan.steps if s.meta["role"] == "device"}
    assert sorted(device) == biases
    for v, step in device.items():
        before = step.meta["previous_bias_v"]
        if v == 0:
            assert before is None
            continue
        assert before is not None
        assert abs(before) < abs(v)
        assert before == 0 or before * v > 0
        between = [b for b in biases if abs(before) < abs(b) < abs(v) and b * v > 0]
        assert between == []  # nothing on the same side between a point and its start
        assert device[before].index in step.parents
    tbtrans = [s for s in plan.steps if s.meta["role"] == "tbtrans"]
    assert len(tbtrans) == len(biases)
    assert {bias_label(s.meta["bias_v"]) for s in tbtrans} == {bias_label(b) for b in biases}


def test_submission_order_puts_every_point_before_any_tbtrans() -> None:
    """Submission order is scheduler priority: a TBtrans job must not outrank a bias point."""
    plan = build_plan(_ladder(biases_v=[0, 0.3, -0.2, 0.1, -0.4, 0.2]))
    order = plan.order()
    roles = [plan.steps[i].meta["role"] for i in order]
    assert roles == ["electrode"] + ["device"] * 6 + ["tbtrans"] * 6
    position = {index: n for n, index in enumerate(order)}
    assert all(position[p] < position[s.index] for s in plan.steps for p in s.parents)
