"""The CI-honesty helpers: skip with a reason outside CI, fail under ``CI=true``.

Each check runs the helper inside ``pytest.raises`` on pytest's own outcome exceptions,
so the skip/fail decision is observed directly rather than through a skipped test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import ci
from tests.helpers.fixtures_path import ENV_VAR, require_siesta_fixture, require_siesta_fixtures
from tests.helpers.siesta_env import PSEUDOS_ENV, require_siesta, species_labels

Skipped = pytest.skip.Exception
Failed = pytest.fail.Exception


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("", False),
        ("false", False),
        ("0", False),
    ],
)
def test_in_ci_reads_the_ci_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: bool
) -> None:
    monkeypatch.setenv("CI", value)
    assert ci.in_ci() is expected


def test_in_ci_is_false_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert ci.in_ci() is False


def test_missing_skips_outside_ci_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(Skipped, match=r"install it with scripts/services/x\.sh"):
        ci.missing("thing absent (install it with scripts/services/x.sh)")


def test_missing_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match="CI=true and a requirement is missing: thing absent"):
        ci.missing("thing absent")


def test_require_tool_names_the_installer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent-hpcgate-test")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(Skipped, match=r"siesta not found on PATH .*scripts/services/siesta\.sh"):
        ci.require_tool("siesta", install_hint="scripts/services/siesta.sh")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match="siesta not found on PATH"):
        ci.require_tool("siesta", install_hint="scripts/services/siesta.sh")


def test_require_tool_returns_the_path_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    assert ci.require_tool("mytool", install_hint="-") == str(tool)


def test_require_passes_or_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    ci.require(True, "never shown")
    with pytest.raises(Failed, match="slurmctld down"):
        ci.require(False, "slurmctld down")


def test_require_path_and_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert ci.require_path(tmp_path, what="dir", install_hint="-") == tmp_path
    with pytest.raises(Failed, match=r"pseudo not found at .*nope \(run x\)"):
        ci.require_path(tmp_path / "nope", what="pseudo", install_hint="run x")
    assert ci.require_module("json", install_hint="-").__name__ == "json"
    with pytest.raises(Failed, match="no_such_module_hpcgate"):
        ci.require_module("no_such_module_hpcgate", install_hint="pip install it")


def test_missing_fixture_directory_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "absent"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match=f"set {ENV_VAR}"):
        require_siesta_fixtures()
    monkeypatch.delenv("CI")
    with pytest.raises(Skipped, match="absent"):
        require_siesta_fixtures()
    (tmp_path / "absent").mkdir()
    assert require_siesta_fixtures() == (tmp_path / "absent").resolve()
    with pytest.raises(Skipped, match="case_x"):
        require_siesta_fixture("case_x")


def test_missing_siesta_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent-hpcgate-test")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match=r"scripts/services/siesta\.sh"):
        require_siesta()


def test_missing_pseudos_fail_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("siesta", "tbtrans"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv(PSEUDOS_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match=r"no SIESTA pseudopotentials .*empty"):
        require_siesta()


def test_species_labels_follow_the_block() -> None:
    fdf = (
        "x 1\n%block ChemicalSpeciesLabel\n 1 8 O\n 2 1 H  # hydrogen\n"
        "%endblock ChemicalSpeciesLabel\n"
    )
    assert species_labels(fdf) == ["O", "H"]
    with pytest.raises(ValueError, match="ChemicalSpeciesLabel"):
        species_labels("SystemLabel x\n")
