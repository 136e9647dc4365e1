"""Plans: chains, sweeps, DAGs, and the refusals (cycles, bad variants, hostile globs)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcgate.domain.plan import PlanError, build_plan, job_name, slug


def test_single() -> None:
    plan = build_plan({"kind": "single", "parameters": {"a": 1}})
    assert [s.index for s in plan.steps] == [0]
    assert plan.edges == ()
    assert plan.steps[0].variant is not None
    assert plan.steps[0].variant.parameters == {"a": 1}


def test_chain_is_linear_with_inheritance_from_the_second_step() -> None:
    plan = build_plan(
        {
            "kind": "chain",
            "variants": [
                {"label": "0.0V", "parameters": {"TS.Voltage": "0.0 eV"}},
                {"label": "0.1V", "parameters": {"TS.Voltage": "0.1 eV"}},
                {"label": "0.2V", "parameters": {"TS.Voltage": "0.2 eV"}},
            ],
            "inherit": ["*.DM", "*.TSDE"],
        }
    )
    assert plan.edges == ((0, 1), (1, 2))
    assert plan.order() == [0, 1, 2]
    assert plan.heads() == [0]
    assert plan.steps[0].inherit == ()
    assert plan.steps[2].inherit == ("*.DM", "*.TSDE")
    assert [s.label for s in plan.steps] == ["0.0V", "0.1V", "0.2V"]


def test_sweep_is_one_array_step() -> None:
    plan = build_plan(
        {"kind": "sweep", "variants": [{"label": f"p{i}"} for i in range(20)], "max_concurrent": 4}
    )
    assert len(plan.steps) == 1
    assert plan.steps[0].is_array
    assert len(plan.steps[0].array) == 20
    assert plan.steps[0].max_concurrent == 4


def test_dag_reindexes_topologically() -> None:
    plan = build_plan(
        {
            "kind": "dag",
            "steps": [
                {"name": "analyse", "after": ["left", "right"]},
                {"name": "left", "after": ["relax"]},
                {"name": "right", "after": ["relax"], "inherit": ["*.DM"]},
                {"name": "relax"},
            ],
        }
    )
    by_label = {s.label: s for s in plan.steps}
    assert by_label["relax"].index == 0
    assert by_label["analyse"].index == 3
    assert set(by_label["analyse"].parents) == {by_label["left"].index, by_label["right"].index}
    for step in plan.steps:
        assert all(p < step.index for p in step.parents)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {
                "kind": "dag",
                "steps": [{"name": "a", "after": ["b"]}, {"name": "b", "after": ["a"]}],
            },
            "cycle",
        ),
        ({"kind": "dag", "steps": [{"name": "a", "after": ["zzz"]}]}, "unknown step"),
        ({"kind": "dag", "steps": [{"name": "a"}, {"name": "a"}]}, "used twice"),
        ({"kind": "chain", "variants": []}, "non-empty list"),
        ({"kind": "chain", "variants": [{"label": "x"}, {"label": "x"}]}, "used twice"),
        (
            {"kind": "chain", "variants": [{"label": "x"}], "inherit": ["../../etc/passwd"]},
            "plain file name",
        ),
        (
            {"kind": "chain", "variants": [{"label": "x"}], "inherit": ["$(reboot)"]},
            "plain file name",
        ),
        ({"kind": "sweep", "variants": [{"label": "x"}], "max_concurrent": 0}, "positive integer"),
        ({"kind": "sweep", "variants": [{"label": str(i)} for i in range(1001)]}, "at most"),
        ({"kind": "teleport"}, "unknown calculation kind"),
        ({"kind": "single", "parameters": [1, 2]}, "must be an object"),
    ],
)
def test_refusals(config: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        build_plan(config)


def test_job_names_are_deterministic_and_safe() -> None:
    assert job_name(42, "a1b2c3", 3, 1) == "hpcg-42-a1b2c3-3-a1"
    assert job_name(42, "a1b2c3", 3, 1) == job_name(42, "a1b2c3", 3, 1)
    with pytest.raises(ValueError):
        job_name(42, "$(x)", 3, 1)


@given(st.text())
def test_slug_is_always_safe(text: str) -> None:
    out = slug(text)
    assert out
    assert all(c.isascii() and (c.isalnum() or c in "_.+-") for c in out)
    assert len(out) <= 40


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=30, unique=True))
def test_any_chain_orders_parents_first(labels: list[str]) -> None:
    plan = build_plan({"kind": "chain", "variants": [{"label": lab} for lab in labels]})
    position = {idx: pos for pos, idx in enumerate(plan.order())}
    for parent, child in plan.edges:
        assert position[parent] < position[child]
