"""The ladder's continuations (issue 17 gaps), pure: QE's ``max_seconds`` checkpoint and its
``restart_mode='restart'`` after a walltime end, SIESTA's CG history beside the XV."""

from __future__ import annotations

import pytest

from hpcgate.codes.qe.recovery import QE_RECOVERY, max_seconds_for, namelist_value
from hpcgate.codes.recovery import (
    AttemptRecord,
    GiveUp,
    Policy,
    Retry,
    all_changes,
    checkpointed,
    next_attempt,
)
from hpcgate.codes.siesta.recovery import SIESTA_RECOVERY, fdf_value

FIRST = AttemptRecord(1, None, None)
PW = """&CONTROL
  calculation='scf', prefix='si', outdir='./tmp'
/
&system
  ibrav=2, celldm(1)=10.26, nat=2, ntyp=1, ecutwfc=30.0
/
&electrons
  conv_thr=1.0d-10
/
K_POINTS gamma
"""


def _retry(result: Retry | GiveUp) -> Retry:
    assert isinstance(result, Retry), result
    return result


@pytest.mark.parametrize(
    ("walltime_s", "expected"),
    [
        (60, 30),  # never more than half the walltime kept back
        (120, 60),  # at least 60 s kept back
        (600, 540),
        (3600, 3240),  # a tenth
        (86400, 84600),  # at most 30 min
    ],
)
def test_max_seconds_is_the_walltime_less_a_margin(walltime_s: int, expected: int) -> None:
    assert max_seconds_for(walltime_s) == expected


def test_the_first_attempt_gets_max_seconds_in_control() -> None:
    files = checkpointed(QE_RECOVERY, {"pw.in": PW, "H.UPF": "x"}, "pw.in", 3600)
    assert namelist_value(files["pw.in"], "control", "max_seconds") == "3240"
    assert files["H.UPF"] == "x"
    # pw.x reads it where it was put: inside &CONTROL, before its "/"
    head, _, rest = files["pw.in"].partition("/\n&system")
    assert "max_seconds = 3240" in head
    assert "max_seconds" not in rest


def test_a_users_smaller_max_seconds_stays_a_larger_one_is_lowered() -> None:
    small = PW.replace("outdir='./tmp'", "outdir='./tmp', max_seconds=2")
    kept = checkpointed(QE_RECOVERY, {"pw.in": small}, "pw.in", 3600)["pw.in"]
    assert namelist_value(kept, "control", "max_seconds") == "2"
    large = PW.replace("outdir='./tmp'", "outdir='./tmp', max_seconds=1.0d5")
    lowered = checkpointed(QE_RECOVERY, {"pw.in": large}, "pw.in", 3600)["pw.in"]
    assert namelist_value(lowered, "control", "max_seconds") == "3240"


def test_no_walltime_no_checkpoint_and_siesta_has_none() -> None:
    assert checkpointed(QE_RECOVERY, {"pw.in": PW}, "pw.in", None) == {"pw.in": PW}
    fdf = "SystemLabel h2o\n"
    assert checkpointed(SIESTA_RECOVERY, {"h2o.fdf": fdf}, "h2o.fdf", 600) == {"h2o.fdf": fdf}


def test_an_input_without_control_is_left_alone() -> None:
    text = "&system\n  ecutwfc=25.0\n/\n"
    assert checkpointed(QE_RECOVERY, {"pw.in": text}, "pw.in", 600) == {"pw.in": text}


def test_an_arrays_per_task_copies_are_checkpointed() -> None:
    files = {"task-0/pw.in": PW, "task-1/pw.in": PW, "task-1/other.in": PW}
    out = checkpointed(QE_RECOVERY, files, "pw.in", 600)
    assert namelist_value(out["task-0/pw.in"], "control", "max_seconds") == "540"
    assert namelist_value(out["task-1/pw.in"], "control", "max_seconds") == "540"
    assert out["task-1/other.in"] == PW


def test_qe_walltime_end_restarts_from_outdir_with_a_longer_walltime() -> None:
    first = checkpointed(QE_RECOVERY, {"pw.in": PW}, "pw.in", 600)["pw.in"]
    result = _retry(
        next_attempt(
            QE_RECOVERY, Policy(), "incomplete", [FIRST], first, walltime_s=600, walltime_cap=900
        )
    )
    assert result.rung == "longer_walltime"
    assert result.walltime_s == 900  # doubled, capped at the queue's limit
    assert result.inherit == ("tmp",)
    assert [c.describe() for c in result.changes] == [
        "control.restart_mode default \u2192 restart",
        "control.max_seconds 540 \u2192 810",
    ]
    text = QE_RECOVERY.apply(first, result.changes)
    assert namelist_value(text, "control", "restart_mode") == "'restart'"
    assert namelist_value(text, "control", "max_seconds") == "810"
    # The next walltime rung: restart_mode is already set; the cap leaves no growth.
    history = [FIRST, AttemptRecord(2, "longer_walltime", "incomplete")]
    capped = next_attempt(
        QE_RECOVERY, Policy(), "incomplete", history, text, walltime_s=900, walltime_cap=900
    )
    assert isinstance(capped, GiveUp)
    assert "cannot grow" in capped.reason


def test_a_users_tiny_max_seconds_gives_way_to_the_longer_walltime() -> None:
    tiny = PW.replace("outdir='./tmp'", "outdir='./tmp', max_seconds=2")
    first = checkpointed(QE_RECOVERY, {"pw.in": tiny}, "pw.in", 120)["pw.in"]
    result = _retry(
        next_attempt(QE_RECOVERY, Policy(), "incomplete", [FIRST], first, walltime_s=120)
    )
    assert result.walltime_s == 240
    assert {c.key: (c.old, c.new) for c in result.changes}["control.max_seconds"] == ("2", 180)


def test_qe_scf_retry_keeps_the_walltime_and_its_max_seconds() -> None:
    first = checkpointed(QE_RECOVERY, {"pw.in": PW}, "pw.in", 600)["pw.in"]
    result = _retry(next_attempt(QE_RECOVERY, Policy(), "scf_not_converged", [FIRST], first))
    assert result.walltime_s is None
    assert all(c.key != "control.max_seconds" for c in result.changes)


@pytest.mark.parametrize(
    ("run", "cg"),
    [("", True), ("MD.TypeOfRun CG\n", True), ("md.type-of-run cg\n", True),
     ("MD.TypeOfRun Broyden\n", False), ("MD.TypeOfRun Verlet\n", False)],
)  # fmt: skip
def test_siesta_continues_a_cg_history_only_for_cg(run: str, cg: bool) -> None:
    fdf = f"SystemLabel h2o\n{run}MD.NumCGsteps 3\n"
    for verdict in ("geometry_not_converged", "incomplete"):
        result = _retry(
            next_attempt(SIESTA_RECOVERY, Policy(), verdict, [FIRST], fdf, walltime_s=60)
        )
        keys = [c.key for c in result.changes]
        assert ("MD.UseSaveCG" in keys) is cg
        assert "*.CG" in result.inherit  # harmless without one: the glob copies nothing
        text = SIESTA_RECOVERY.apply(fdf, result.changes)
        assert fdf_value(text, "MD.UseSaveXV") == ("MD.UseSaveXV", "true")


def test_the_walltime_change_records_what_it_replaced() -> None:
    result = _retry(next_attempt(QE_RECOVERY, Policy(), "incomplete", [FIRST], PW, walltime_s=120))
    (walltime,) = [c for c in all_changes(result) if c.key == "walltime_s"]
    assert walltime.describe() == "walltime_s 120 \u2192 240"
