"""extract_run / compute_all behaviour and the ``hpcgate extract`` command's exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import pytest
import typer
from typer.testing import CliRunner

from analyses.base import Analysis, AnalysisError, ExtractContext, ExtractionError
from analyses.compute_inputs import ComputeInputs, StepInput
from analyses.pipeline import compute_all, extract_run
from analyses.registry import Registry
from analyses.results import AnalysisOutput
from hpcgate.cli_extract import extract
from tests.helpers.analyses_env import case


class _Ok(Analysis):
    name: ClassVar[str] = "ok"
    title: ClassVar[str] = "Ok"
    codes: ClassVar[frozenset[str]] = frozenset({"siesta"})

    def extract(self, run_dir: Path, ctx: ExtractContext) -> dict[str, Any]:
        import warnings

        warnings.warn("library chatter", UserWarning, stacklevel=1)
        return {"value": float("nan"), "step": ctx.step_index}

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        return self.output(summary={"n": len(inputs.steps_with(self.name))})


class _Fails(_Ok):
    name: ClassVar[str] = "fails"

    def extract(self, run_dir: Path, ctx: ExtractContext) -> dict[str, Any]:
        raise ExtractionError("no such file")

    def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
        raise AnalysisError("nothing to compute")


class _Needs(_Ok):
    name: ClassVar[str] = "needs"
    requires: ClassVar[tuple[str, ...]] = ("fails",)


class _Huge(_Ok):
    name: ClassVar[str] = "huge"

    def extract(self, run_dir: Path, ctx: ExtractContext) -> dict[str, Any]:
        return {"values": list(range(400_000))}


REG = Registry([_Ok(), _Fails(), _Needs(), _Huge()])


def test_failures_are_recorded_and_dependents_skipped(tmp_path: Path) -> None:
    doc = extract_run(
        tmp_path, ExtractContext(code="siesta", step_index=3), ["ok", "fails", "needs", "huge"],
        registry=REG,
    )  # fmt: skip
    assert doc["analyses"]["ok"] == {"value": None, "step": 3}  # NaN -> null
    assert doc["errors"]["fails"] == "no such file"
    assert doc["skipped"] == {"needs": "requires fails, which did not extract"}
    assert "plugin bug" in doc["errors"]["huge"]
    assert doc["warnings"]["ok"] == ["library chatter"]
    json.dumps(doc, allow_nan=False)


def test_compute_all_accepts_extract_documents() -> None:
    steps = [
        {"index": 1, "label": "b", "data": {"analyses": {"ok": {"value": 2}}, "errors": {}}},
        StepInput(index=0, label="a", data={"ok": {"value": 1}}),
    ]
    out = compute_all(["ok", "fails", "needs"], steps, registry=REG)
    assert out["ok"]["summary"] == {"n": 2}
    assert out["fails"]["error"] == "nothing to compute"
    assert out["needs"]["error"] == "requires fails, which failed"


# ---------------------------------------------------------------- CLI


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command(name="extract")(extract)

    @app.command()
    def version() -> None:  # a second command so "extract" stays a subcommand
        """Unused."""

    return app


def test_cli_writes_the_document_and_exits_0(fx: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(case(fx, "ts_au_100_bias_siesta41/0.25V"), run)
    result = CliRunner().invoke(
        _app(),
        ["extract", str(run), "--analyses", "current,iv_curve", "--variant",
         '{"TS.Voltage": 0.25}', "--step", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads((run / ".hpcgate" / "extract.json").read_text())
    assert doc["analyses"]["current"]["current_A"] == 7.69618e-06
    assert doc["analyses"]["iv_curve"]["bias_V"] == 0.25
    assert doc["step_index"] == 1


def test_cli_exit_2_on_a_bad_selection(fx: Path, tmp_path: Path) -> None:
    run = case(fx, "ts_au_100_bias_siesta41/0.25V")
    out = tmp_path / "x.json"
    result = CliRunner().invoke(
        _app(), ["extract", str(run), "--analyses", "iv_curve", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "current (required by iv_curve)" in result.output
    assert not out.exists()
    bad_json = CliRunner().invoke(
        _app(), ["extract", str(run), "--analyses", "current", "--variant", "[1", "--out", str(out)]
    )
    assert bad_json.exit_code == 2
    assert "--variant is not valid JSON" in bad_json.output


def test_cli_exit_1_keeps_what_succeeded(fx: Path, tmp_path: Path) -> None:
    run = case(fx, "si_scf_not_converged_abort_max1")
    out = tmp_path / "x.json"
    result = CliRunner().invoke(
        _app(), ["extract", str(run), "--analyses", "scf_convergence,energy", "--out", str(out)]
    )
    assert result.exit_code == 1
    doc = json.loads(out.read_text())
    assert doc["analyses"]["scf_convergence"]["all_converged"] is False
    assert "no final energy block" in doc["errors"]["energy"]
    assert "hpcgate: extract: energy:" in result.output
    assert "Traceback" not in result.output


def test_cli_missing_run_dir(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["extract", str(tmp_path / "nope"), "--analyses", "dos"])
    assert result.exit_code == 2
    assert "does not exist" in result.output


@pytest.mark.parametrize("selection", ["", " , "])
def test_cli_empty_selection(tmp_path: Path, selection: str) -> None:
    result = CliRunner().invoke(_app(), ["extract", str(tmp_path), "--analyses", selection])
    assert result.exit_code == 2
