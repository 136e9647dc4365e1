"""``hpcgate validate``: output formats and the exit-code contract (0 / 1 / 2)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpcgate.cli_validate import app
from tests.helpers.ci import missing
from tests.helpers.fixtures_path import require_siesta_fixtures

runner = CliRunner()


def fixture(rel: str) -> Path:
    path = require_siesta_fixtures() / rel
    if not path.exists():
        missing(f"fixture {path} missing")
    return path


def _expected_reason(status: str, path: Path) -> str:
    """The decisive line, found with grep: the marker that explains the verdict."""
    out = path if path.is_file() else next(p for p in path.glob("*.out"))
    marker = {
        "converged": r"^Job completed",
        "scf_not_converged": r"^SCF_NOT_CONV",
        "geometry_not_converged": r"^GEOM_NOT_CONV",
    }[status]
    lines = out.read_bytes().decode("latin-1").split("\n")
    n = next(i for i, line in enumerate(lines, 1) if re.search(marker, line))
    return f"{lines[n - 1].strip()} (line {n})"


@pytest.mark.parametrize(
    ("rel", "status", "exit_code"),
    [
        ("h2o_scf_siesta5", "converged", 0),
        ("si_scf_not_converged_abort_max1", "scf_not_converged", 1),
        ("si_geom_not_converged_max1/aiida.out", "geometry_not_converged", 1),
        ("ts_au_100_bias_siesta41/0.25V/au_100.out", "converged", 0),
    ],
)
def test_json_output_and_exit_code(rel: str, status: str, exit_code: int) -> None:
    result = runner.invoke(app, [str(fixture(rel)), "--json"])
    assert result.exit_code == exit_code
    data = json.loads(result.stdout)
    assert data["status"] == status
    assert data["code"] == "siesta"
    assert isinstance(data["evidence"], list)
    assert all(
        isinstance(line_no, int) and isinstance(text, str) for line_no, text in data["evidence"]
    )
    assert data["reason"] == _expected_reason(status, fixture(rel))


def test_human_output_has_verdict_numbers_and_evidence() -> None:
    path = fixture("ts_au_100_bias_siesta41/0.25V/au_100.out")
    result = runner.invoke(app, [str(path)])
    assert result.exit_code == 0
    out = result.stdout
    assert out.splitlines()[0].startswith("converged")
    total = re.search(r"siesta:\s+Total =\s+(\S+)", path.read_text(errors="replace"))
    assert total is not None
    assert f"{float(total.group(1)):.6f} eV" in out
    assert "bias voltage" in out
    assert "0.250000 V" in out
    completed = [
        i
        for i, line in enumerate(path.read_text(errors="replace").split("\n"), 1)
        if line.startswith("Job completed")
    ]
    assert re.search(rf"^  \*\s+{completed[0]}: Job completed$", out, re.MULTILINE)
    assert f"reason: Job completed (line {completed[0]})" in out


def test_explicit_code_mismatch_still_gives_a_verdict() -> None:
    result = runner.invoke(app, [str(fixture("h2o_scf_siesta5/RUN.out")), "--code", "qe"])
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith("incomplete")


def test_tbtrans_current_is_printed() -> None:
    result = runner.invoke(app, [str(fixture("ts_au_100_bias_siesta41/0.25V/tbt_au_100.out"))])
    assert result.exit_code == 0
    assert "current Left -> Right" in result.stdout
    assert "7.696180e-06 A" in result.stdout


def test_truncated_run_exits_one(tmp_path: Path) -> None:
    src = fixture("graphite_relax_large_siesta41/graphite_c6_full.out")
    data = src.read_bytes()
    dst = tmp_path / "graphite.out"
    dst.write_bytes(data[: int(len(data) * 0.6)])
    result = runner.invoke(app, [str(tmp_path), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "incomplete"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/run"], "path not found: /nonexistent/run"),
        ([".", "--code", "vasp"], "unknown code 'vasp'"),
    ],
)
def test_usage_errors_exit_two_with_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert message in lines[0]


def test_usage_error_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hpcgate.cli_validate", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_real_process_exit_codes(tmp_path: Path) -> None:
    ok = fixture("si_scf_converged_max1")
    bad = fixture("si_scf_not_converged_abort_max1")
    for path, rc in ((ok, 0), (bad, 1)):
        proc = subprocess.run(
            [sys.executable, "-m", "hpcgate.cli_validate", str(path), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == rc
        assert json.loads(proc.stdout)["converged"] is (rc == 0)


def test_validation_does_not_import_sisl() -> None:
    code = (
        "import sys; from hpcgate.cli_validate import validate; "
        "import hpcgate.codes.siesta.validate, hpcgate.codes.qe.validate; "
        "print('sisl' in sys.modules, 'numpy' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout.split() == ["False", "False"]


def test_mounts_on_another_typer_app() -> None:
    """How the lead mounts it: ``app.command("validate")(validate)``."""
    import typer

    from hpcgate.cli_validate import validate

    main = typer.Typer()
    main.command("validate")(validate)

    @main.command("other")
    def other() -> None:  # a second command makes "validate" a real sub-command
        """Placeholder."""

    path = fixture("si_scf_converged_max1")
    result = runner.invoke(main, ["validate", str(path), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["status"] == "converged"
    result = runner.invoke(main, ["validate", "/nonexistent", "--code", "qe"])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
