"""The ladder I-V's bookkeeping: which point failed, why, and what is still pending.

Pure logic over ``StepInput`` lists shaped like ``step_inputs`` builds them for a ladder
(the currents come from a real extraction in tests/integration/transiesta; here only the
states matter, so each point's extract is reduced to the two current fields).
"""

from __future__ import annotations

from typing import Any

import pytest

from analyses.compute_inputs import StepInput
from analyses.pipeline import compute_all
from analyses.siesta.transiesta_iv import ABS_TOLERANCE_A, REL_TOLERANCE, currents_agree

BIASES = (0.0, 0.1, 0.2, -0.1)
PREVIOUS = {0.0: None, 0.1: 0.0, 0.2: 0.1, -0.1: 0.0}


def _ladder(
    states: dict[str, str],
    reasons: dict[str, str] | None = None,
    currents: dict[float, float] | None = None,
) -> list[StepInput]:
    """One electrode, four device points, four TBtrans steps; default state 'harvested'."""
    reasons = reasons or {}
    currents = currents if currents is not None else {b: 1e-5 * b for b in BIASES}
    steps = [("electrode elec.fdf", {"role": "electrode", "fdf": "elec.fdf"})]
    steps += [
        (f"device {_v(b)}", {"role": "device", "bias_v": b, "previous_bias_v": PREVIOUS[b]})
        for b in BIASES
    ]
    steps += [(f"tbtrans {_v(b)}", {"role": "tbtrans", "bias_v": b}) for b in BIASES]
    out = []
    for index, (label, meta) in enumerate(steps):
        state = states.get(label, "harvested")
        data: dict[str, Any] = {}
        if meta["role"] == "tbtrans" and state == "harvested" and meta["bias_v"] in currents:
            i = currents[meta["bias_v"]]
            data = {
                "transiesta_iv": {
                    "current_a": i,
                    "current_stdout_a": i,
                    "agree": True,
                    "relative_difference": 0.0,
                    "bias_v": meta["bias_v"],
                }
            }
        out.append(
            StepInput(
                index=index,
                label=label,
                step_id=100 + index,
                state=state,
                reason=reasons.get(label, ""),
                meta=meta,
                data=data,
            )
        )
    return out


def _v(b: float) -> str:
    return "0 V" if b == 0 else f"{b:+.6g} V"


def _doc(steps: list[StepInput]) -> dict[str, Any]:
    result = compute_all(["transiesta_iv"], steps, code="siesta")["transiesta_iv"]
    assert "error" not in result, result
    return dict(result["data"])


def test_a_complete_ladder_is_not_partial() -> None:
    doc = _doc(_ladder({}))
    assert doc["partial"] is False
    assert [p["bias_v"] for p in doc["points"]] == [-0.1, 0.0, 0.1, 0.2]
    assert doc["points"][0]["step_id"] == 108  # tbtrans -0.1 V
    assert doc["points"][0]["device_step_id"] == 104
    assert doc["points"][1]["conductance_g0"] is None  # 0 V


def test_a_failed_point_and_the_rest_of_its_branch() -> None:
    doc = _doc(
        _ladder(
            {
                "device +0.1 V": "invalid",
                "device +0.2 V": "cancelled",
                "tbtrans +0.1 V": "cancelled",
                "tbtrans +0.2 V": "cancelled",
            },
            {
                "device +0.1 V": "validation: aborted (FATAL: ts: ...)",
                "device +0.2 V": "a step it depends on did not succeed",
            },
        )
    )
    assert doc["partial"] is True
    assert [p["bias_v"] for p in doc["points"]] == [-0.1, 0.0]
    failed = {f["bias_v"]: f for f in doc["failed"]}
    assert failed[0.1]["reason"] == "validation: aborted (FATAL: ts: ...)"
    assert failed[0.1]["label"] == "device +0.1 V"
    assert failed[0.2]["reason"] == (
        "not run: device +0.1 V did not succeed (validation: aborted (FATAL: ts: ...))"
    )
    assert failed[0.2]["state"] == "cancelled"


def test_a_failed_tbtrans_fails_only_its_point() -> None:
    doc = _doc(
        _ladder(
            {"tbtrans +0.2 V": "invalid"},
            {"tbtrans +0.2 V": "validation: aborted (TBtrans ended without ...)"},
        )
    )
    assert [f["bias_v"] for f in doc["failed"]] == [0.2]
    assert doc["failed"][0]["label"] == "tbtrans +0.2 V"
    assert len(doc["points"]) == 3


def test_a_failed_electrode_is_named_for_every_point() -> None:
    states = {"electrode elec.fdf": "failed"}
    states |= {f"{r} {_v(b)}": "cancelled" for r in ("device", "tbtrans") for b in BIASES}
    doc = _doc(_ladder(states, {"electrode elec.fdf": "exit code 134"}))
    assert doc["points"] == []
    assert len(doc["failed"]) == 4
    assert all(
        f["reason"] == "not run: electrode elec.fdf did not succeed (exit code 134)"
        for f in doc["failed"]
    )


def test_running_points_are_pending_not_failed() -> None:
    doc = _doc(
        _ladder(
            {"device +0.2 V": "running", "tbtrans +0.2 V": "queued", "tbtrans -0.1 V": "queued"}
        )
    )
    assert doc["partial"] is True
    assert doc["failed"] == []
    assert doc["pending"] == [
        {"bias_v": -0.1, "state": "queued"},
        {"bias_v": 0.2, "state": "running"},
    ]


def test_a_finished_tbtrans_without_a_current_says_why() -> None:
    steps = _ladder({}, currents={b: 1e-5 * b for b in BIASES if b != 0.1})
    steps = [
        StepInput(
            index=s.index,
            label=s.label,
            step_id=s.step_id,
            state=s.state,
            meta=s.meta,
            data=s.data,
            errors={"transiesta_iv": "no current: ..."},
        )
        if s.label == "tbtrans +0.1 V"
        else s
        for s in steps
    ]
    doc = _doc(steps)
    assert doc["failed"] == [
        {
            "bias_v": 0.1,
            "reason": "no current: ...",
            "step_id": 106,
            "step_index": 6,
            "label": "tbtrans +0.1 V",
            "state": "harvested",
        }
    ]


def test_disagreements_are_counted_and_noted() -> None:
    steps = _ladder({})
    bad = next(s for s in steps if s.label == "tbtrans +0.2 V")
    bad.data["transiesta_iv"].update(agree=False, relative_difference=0.5, current_stdout_a=1e-6)
    result = compute_all(["transiesta_iv"], steps, code="siesta")["transiesta_iv"]
    assert result["summary"]["disagreements"] == 1
    assert any("differ by 5.00e-01" in n for n in result["notes"])


@pytest.mark.parametrize(
    ("a", "b", "agree"),
    [
        (6.49165e-06, 6.4917e-06, True),
        (1.0, 1.0 + 2 * REL_TOLERANCE, False),
        (0.0, ABS_TOLERANCE_A / 2, True),
        (-1e-6, 1e-6, False),
    ],
)
def test_currents_agree(a: float, b: float, agree: bool) -> None:
    assert currents_agree(a, b)[0] is agree


def test_a_tbtrans_run_at_another_bias_is_flagged() -> None:
    steps = _ladder({})
    odd = next(s for s in steps if s.label == "tbtrans +0.2 V")
    odd.data["transiesta_iv"]["bias_v"] = 0.25
    result = compute_all(["transiesta_iv"], steps, code="siesta")["transiesta_iv"]
    flagged = [p["bias_v"] for p in result["data"]["points"] if p["bias_mismatch"]]
    assert flagged == [0.2]
    assert any("TBtrans ran at 0.25 V" in n for n in result["notes"])
