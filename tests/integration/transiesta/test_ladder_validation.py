"""Validation and extraction on real TranSIESTA/TBtrans outputs of the Au chain ladder.

The runs are the session's reference ladder (conftest): electrode, device points, TBtrans
per point, and a finite-bias device run started without the 0 V density.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analyses.base import ExtractContext
from analyses.siesta.transiesta_iv import REL_TOLERANCE, TransiestaIv, currents_agree
from hpcgate.codes.report import Verdict
from hpcgate.codes.validation import validate_path
from tests.integration.transiesta.conftest import BIASES, Reference

pytestmark = pytest.mark.integration


def test_electrode_and_every_point_converge_at_their_bias(reference: Reference) -> None:
    elec = validate_path(reference.electrode, "siesta")
    assert elec.status is Verdict.CONVERGED, elec.reason
    for bias, point in reference.points.items():
        report = validate_path(point.directory / "device.out", "siesta")
        assert report.status is Verdict.CONVERGED, report.reason
        assert report.numbers["transiesta"] is True
        assert report.numbers["bias_v"] == pytest.approx(bias, abs=1e-6)


def test_a_transiesta_fatal_is_the_stated_reason(reference: Reference) -> None:
    report = validate_path(reference.no_tsde, "siesta")
    assert report.status is Verdict.ABORTED
    messages = (reference.no_tsde / "MESSAGES").read_text().strip().splitlines()
    fatal = next(line for line in messages if line.startswith("FATAL"))
    assert "0 V" in fatal  # what TranSIESTA itself wrote
    assert fatal in report.reason
    assert report.evidence[0][1] == f"[MESSAGES] {fatal}"
    # The job script acts on the exit code: non-zero, so afterok stops the branch.
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcgate.cli",
            "validate",
            str(reference.no_tsde),
            "--code",
            "siesta",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 1, cli.stderr
    assert json.loads(cli.stdout)["reason"] == report.reason


def test_tbtrans_converges_only_with_a_current(reference: Reference, tmp_path: Path) -> None:
    point = reference.points[0.1]
    report = validate_path(point.directory / "tbtrans.out", "siesta")
    assert report.status is Verdict.CONVERGED, report.reason
    assert report.numbers["program"] == "tbtrans"
    assert report.numbers["currents_a"]["Left -> Right"] == point.current_stdout_a
    # The same real output without its current lines: TBtrans ran, but not for an I-V.
    cut = tmp_path / "tbtrans.out"
    lines = (point.directory / "tbtrans.out").read_text().splitlines(keepends=True)
    cut.write_text("".join(line for line in lines if "V [V] /" not in line))
    no_current = validate_path(cut, "siesta")
    assert no_current.status is Verdict.ABORTED
    assert "without printing a current" in no_current.reason


@pytest.mark.parametrize("bias", BIASES)
def test_extraction_reads_both_currents_and_they_agree(
    reference: Reference, bias: float, tmp_path: Path
) -> None:
    point = reference.points[bias]
    run = tmp_path / "run"
    run.mkdir()
    for name in ("device.fdf", "tbtrans.out", "device.TBT.nc"):
        shutil.copy(point.directory / name, run / name)
    data = TransiestaIv().extract(run, ExtractContext(code="siesta", variant={"TS.Voltage": bias}))
    assert data["current_nc_a"] == pytest.approx(point.current_nc_a, rel=1e-12, abs=1e-30)
    assert data["current_stdout_a"] == point.current_stdout_a
    assert data["current_a"] == data["current_nc_a"]
    assert data["bias_v"] == pytest.approx(bias, abs=1e-5)
    assert data["requested_bias_v"] == bias
    agree, rel = currents_agree(point.current_nc_a, point.current_stdout_a)
    assert data["agree"] is agree is True
    assert data["relative_difference"] == pytest.approx(rel)
    assert data["pair"] == "Left->Right"
    if bias:
        assert data["current_a"] * bias > 0  # current follows the bias' sign
    # Without the NetCDF file the stdout value stands alone, unchecked.
    (run / "device.TBT.nc").unlink()
    alone = TransiestaIv().extract(run, ExtractContext(code="siesta"))
    assert alone["current_a"] == point.current_stdout_a
    assert alone["agree"] is None
    assert alone["current_nc_a"] is None


def test_a_disagreement_is_recorded_not_hidden(reference: Reference, tmp_path: Path) -> None:
    point = reference.points[0.2]
    run = tmp_path / "run"
    run.mkdir()
    for name in ("device.fdf", "device.TBT.nc"):
        shutil.copy(point.directory / name, run / name)
    text = (point.directory / "tbtrans.out").read_text()
    wrong = point.current_stdout_a * (1 + 20 * REL_TOLERANCE)
    lines = []
    for line in text.splitlines(keepends=True):
        if "V [V] / I [A]" in line:
            head, _, _ = line.rpartition("/")
            line = f"{head}/ {wrong:.6E} A\n"
        lines.append(line)
    (run / "tbtrans.out").write_text("".join(lines))
    data = TransiestaIv().extract(run, ExtractContext(code="siesta"))
    assert data["agree"] is False
    assert data["relative_difference"] > REL_TOLERANCE
    assert data["current_stdout_a"] == pytest.approx(wrong, rel=1e-6)
