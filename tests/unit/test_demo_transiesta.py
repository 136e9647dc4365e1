"""The demo's TranSIESTA ladder: seeded only with siesta, tbtrans and Au.psf; the banner
says how to get what is missing; the inputs it ships are a valid ladder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpcgate.demo_transiesta import (
    AU_CHAIN_DIR,
    BIASES_V,
    DEVICE_FDF,
    ELECTRODE_FDF,
    find_transiesta,
    ladder_inputs,
    siesta_banner,
)
from tests.helpers.ci import require_tool
from tests.helpers.siesta_env import INSTALL_HINT


def _path_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *programs: str) -> Path:
    """A PATH holding exactly ``programs`` (links to real executables) and a pseudos dir."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in programs:
        (bin_dir / name).symlink_to("/bin/true")
    pseudos = tmp_path / "pseudos"
    pseudos.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("HPCGATE_SIESTA_PSEUDOS", str(pseudos))
    return pseudos


def test_needs_siesta_tbtrans_and_the_gold_pseudopotential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pseudos = _path_with(tmp_path, monkeypatch, "siesta")
    (pseudos / "Au.psf").write_text("pseudo\n")
    assert find_transiesta() is None  # no tbtrans
    (tmp_path / "bin" / "tbtrans").symlink_to("/bin/true")
    assert find_transiesta() == pseudos
    (pseudos / "Au.psf").unlink()
    assert find_transiesta() is None  # no Au.psf


def test_inputs_come_from_the_package_and_the_installation(tmp_path: Path) -> None:
    (tmp_path / "Au.psf").write_text("the installed pseudopotential\n")
    files = ladder_inputs(tmp_path)
    assert set(files) == {DEVICE_FDF, ELECTRODE_FDF, "Au.psf"}
    assert files["Au.psf"] == "the installed pseudopotential\n"
    assert files[DEVICE_FDF] == (AU_CHAIN_DIR / DEVICE_FDF).read_text()
    assert "SolutionMethod transiesta" in files[DEVICE_FDF]
    assert "TSHS elec.TSHS" in files[DEVICE_FDF]
    assert "SystemLabel elec" in files[ELECTRODE_FDF]


def test_the_ladder_is_small_but_complete() -> None:
    finite = [v for v in BIASES_V if v != 0]
    assert 0.0 in BIASES_V
    assert len(set(BIASES_V)) == len(BIASES_V)
    assert any(v < 0 for v in finite)
    assert 2 <= len(finite) <= 3


def test_banner_without_siesta_says_how_to_install_it() -> None:
    text = siesta_banner("http://127.0.0.1:8000", None, None)
    assert text.startswith("    siesta:   not installed")
    assert "scripts/services/siesta.sh" in text.splitlines()[0]
    assert "TranSIESTA" in text
    assert "ladder:" not in text


def test_banner_names_both_runs_or_what_the_ladder_lacks() -> None:
    both = siesta_banner("http://h", 2, 3)
    assert "siesta:   http://h/calculations/2" in both
    assert "ladder:   http://h/calculations/3" in both
    assert "/calculations/3/results" in both
    only_h2o = siesta_banner("http://h", 2, None)
    (ladder,) = [line for line in only_h2o.splitlines() if "ladder:" in line]
    assert "not seeded" in ladder
    assert "tbtrans" in ladder
    assert "scripts/services/siesta.sh" in ladder


def test_installed_layout_is_found_without_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``<prefix>/share/siesta/pseudos`` beside ``<prefix>/bin/siesta`` (siesta.sh's layout)."""
    siesta = require_tool("siesta", install_hint=INSTALL_HINT)
    require_tool("tbtrans", install_hint=INSTALL_HINT)
    monkeypatch.delenv("HPCGATE_SIESTA_PSEUDOS", raising=False)
    expected = Path(os.path.realpath(siesta)).parent.parent / "share" / "siesta" / "pseudos"
    assert find_transiesta() == (expected if (expected / "Au.psf").is_file() else None)
