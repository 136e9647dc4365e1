"""The recovery ladder, pure: verdict + attempt history -> the next attempt's changes or give up."""

from __future__ import annotations

import pytest

from hpcgate.codes.qe.recovery import QE_RECOVERY, namelist_value
from hpcgate.codes.recovery import (
    AttemptRecord,
    Change,
    GiveUp,
    Policy,
    Retry,
    next_attempt,
    parse_policy,
)
from hpcgate.codes.registry import get_plugin
from hpcgate.codes.siesta.recovery import SIESTA_RECOVERY, fdf_value
from hpcgate.errors import InvalidInput

FDF = """SystemName h2o
# a comment
max.scf_iterations 3
DM.MixingWeight 0.3
%block ChemicalSpeciesLabel
 1 8 O
%endblock ChemicalSpeciesLabel
"""

PW = """&control
  calculation='scf', prefix='h2', outdir='./tmp'
/
&electrons
  conv_thr=1.0d-8, mixing_beta=0.7, electron_maxstep=3
/
K_POINTS gamma
"""

FIRST = AttemptRecord(1, None, None)


def _retry(result: Retry | GiveUp) -> Retry:
    assert isinstance(result, Retry), result
    return result


def test_siesta_scf_ladder_walks_its_rungs_in_order_then_gives_up() -> None:
    policy = Policy(max_attempts=10)
    history = [FIRST]
    text = FDF
    rungs = []
    while True:
        result = next_attempt(SIESTA_RECOVERY, policy, "scf_not_converged", history, text)
        if isinstance(result, GiveUp):
            break
        rungs.append(result.rung)
        assert result.attempt == len(history) + 1
        assert result.inherit == ("*.DM",)
        text = SIESTA_RECOVERY.apply(text, result.changes)
        history.append(AttemptRecord(result.attempt, result.rung, "scf_not_converged"))
    assert rungs == ["more_scf_iterations", "lower_mixing", "raise_temperature"]
    assert "exhausted" in result.reason
    # Changes accumulate; SIESTA reads the first occurrence of each label (any spelling).
    assert fdf_value(text, "MaxSCFIterations") == ("max.scf_iterations", "6")
    assert fdf_value(text, "DM.MixingWeight") == ("DM.MixingWeight", "0.15")
    assert fdf_value(text, "DM.NumberPulay") == ("DM.NumberPulay", "6")
    assert fdf_value(text, "ElectronicTemperature") == ("ElectronicTemperature", "600 K")
    assert fdf_value(text, "DM.UseSaveDM") == ("DM.UseSaveDM", "true")


def test_first_siesta_retry_changes_are_described() -> None:
    result = _retry(next_attempt(SIESTA_RECOVERY, Policy(), "scf_not_converged", [FIRST], FDF))
    assert [c.describe() for c in result.changes] == [
        "DM.UseSaveDM default \u2192 true",
        "max.scf_iterations 3 \u2192 6",
    ]


def test_lower_mixing_halves_the_weight_and_grows_the_history() -> None:
    result = _retry(
        next_attempt(
            SIESTA_RECOVERY,
            Policy(ladders={"scf_not_converged": ("lower_mixing",)}),
            "scf_not_converged",
            [FIRST],
            FDF,
        )
    )
    assert Change("DM.MixingWeight", "0.3", "0.15") in result.changes
    assert Change("DM.NumberPulay", None, 6) in result.changes


def test_max_attempts_stops_the_ladder() -> None:
    history = [FIRST, AttemptRecord(2, "more_scf_iterations", "scf_not_converged")]
    result = next_attempt(
        SIESTA_RECOVERY, Policy(max_attempts=2), "scf_not_converged", history, FDF
    )
    assert isinstance(result, GiveUp)
    assert "max_attempts 2" in result.reason


@pytest.mark.parametrize("verdict", ["aborted", "converged", None])
def test_unrecoverable_verdicts_give_up(verdict: str | None) -> None:
    assert isinstance(next_attempt(SIESTA_RECOVERY, Policy(), verdict, [FIRST], FDF), GiveUp)


def test_no_ladder_or_disabled_gives_up() -> None:
    assert get_plugin("generic").recovery is None
    assert isinstance(next_attempt(None, Policy(), "scf_not_converged", [FIRST], ""), GiveUp)
    disabled = Policy(enabled=False)
    assert isinstance(
        next_attempt(SIESTA_RECOVERY, disabled, "scf_not_converged", [FIRST], FDF), GiveUp
    )


def test_geometry_continues_from_the_last_geometry_with_more_steps() -> None:
    result = _retry(next_attempt(SIESTA_RECOVERY, Policy(), "geometry_not_converged", [FIRST], FDF))
    keys = {c.key: c.new for c in result.changes}
    # No MD.TypeOfRun: SIESTA 4.1's default, CG, whose search history continues too.
    assert keys == {
        "DM.UseSaveDM": "true",
        "MD.UseSaveXV": "true",
        "MD.UseSaveCG": "true",
        "MD.Steps": 50,
    }
    assert result.inherit == ("*.DM", "*.XV", "*.CG")


def test_walltime_doubles_capped_at_the_queue_limit() -> None:
    result = _retry(
        next_attempt(
            SIESTA_RECOVERY,
            Policy(),
            "incomplete",
            [FIRST],
            FDF,
            walltime_s=600,
            walltime_cap=1000,
        )
    )
    assert result.rung == "longer_walltime"
    assert result.walltime_s == 1000
    at_cap = next_attempt(
        SIESTA_RECOVERY, Policy(), "incomplete", [FIRST], FDF, walltime_s=1000, walltime_cap=1000
    )
    assert isinstance(at_cap, GiveUp)
    assert "cannot grow" in at_cap.reason


def test_qe_scf_ladder() -> None:
    history = [FIRST]
    text = PW
    seen = []
    for _ in range(3):
        result = _retry(next_attempt(QE_RECOVERY, Policy(), "scf_not_converged", history, text))
        seen.append([c.describe() for c in result.changes])
        text = QE_RECOVERY.apply(text, result.changes)
        history.append(AttemptRecord(result.attempt, result.rung, "scf_not_converged"))
    assert seen[0] == [
        "electrons.startingpot default \u2192 file",
        "electrons.electron_maxstep 3 \u2192 6",
    ]
    assert seen[1] == ["electrons.mixing_beta 0.7 \u2192 0.35"]
    assert seen[2] == ["electrons.mixing_mode default \u2192 local-TF"]
    assert namelist_value(text, "electrons", "mixing_mode") == "'local-TF'"
    assert namelist_value(text, "electrons", "startingpot") == "'file'"
    assert namelist_value(text, "electrons", "electron_maxstep") == "6"
    # Attempt 5 would exceed the default maximum of 4.
    assert isinstance(
        next_attempt(QE_RECOVERY, Policy(), "scf_not_converged", history, text), GiveUp
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("yes", "must be false or an object"),
        ({"max_attempts": 0}, "from 1 to 10"),
        ({"max_attempts": True}, "from 1 to 10"),
        ({"max_attempts": 11}, "from 1 to 10"),
        ({"tries": 2}, "unknown key"),
        ({"ladder": "lower_mixing"}, "must be false, a list"),
        ({"ladder": ["fewer_atoms"]}, "unknown rung(s) fewer_atoms"),
        ({"ladder": {"aborted": []}}, "not a recoverable verdict"),
        ({"ladder": {"incomplete": ["lower_mixing"]}}, "unknown rung(s) lower_mixing"),
    ],
)
def test_bad_policies_are_refused(raw: object, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_policy(raw, SIESTA_RECOVERY)
    assert message in str(err.value)


def test_policies() -> None:
    assert parse_policy(None, SIESTA_RECOVERY) == Policy()
    assert parse_policy(False, SIESTA_RECOVERY).enabled is False
    assert parse_policy({"ladder": False}, SIESTA_RECOVERY).enabled is False
    custom = parse_policy({"max_attempts": 6, "ladder": ["lower_mixing"]}, SIESTA_RECOVERY)
    assert custom.max_attempts == 6
    assert custom.ladders == {"scf_not_converged": ("lower_mixing",)}
    assert parse_policy(None, None).enabled is False
    with pytest.raises(InvalidInput, match="no recovery ladder"):
        parse_policy({"ladder": ["x"]}, None)
