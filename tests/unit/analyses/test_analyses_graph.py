"""Selection resolution and registry loading: refusals name what is wrong, order is stable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from analyses import registry as registry_mod
from analyses.base import Analysis, ExtractContext
from analyses.compute_inputs import ComputeInputs
from analyses.graph import InvalidSelection, resolve
from analyses.registry import Registry, RegistryError, build_registry, default_registry
from analyses.results import AnalysisOutput
from hpcgate.errors import InvalidInput


def _make(name: str, requires: tuple[str, ...] = (), codes: frozenset[str] | None = None) -> Any:
    class _A(Analysis):
        title: ClassVar[str] = name.title()

        def extract(self, run_dir: Path, ctx: ExtractContext) -> dict[str, Any]:
            return {}

        def compute(self, inputs: ComputeInputs) -> AnalysisOutput:
            return self.output()

    _A.name = name
    _A.requires = requires
    _A.codes = codes or frozenset({"siesta"})
    return _A


# ---------------------------------------------------------------- built-in graph


def test_missing_requirement_is_refused_with_its_name() -> None:
    with pytest.raises(InvalidSelection) as info:
        resolve(["energy"])
    assert info.value.missing == {"scf_convergence": "required by energy"}
    assert info.value.unknown == []
    assert info.value.status_code == 422
    body = info.value.to_body()
    assert body["missing"] == {"scf_convergence": "required by energy"}
    assert body["code"] == "invalid_selection"


def test_invalid_selection_is_an_invalid_input_for_the_api() -> None:
    assert issubclass(InvalidSelection, InvalidInput)


def test_unknown_names_are_refused_alongside_missing_ones() -> None:
    with pytest.raises(InvalidSelection) as info:
        resolve(["iv_curve", "band_gap_magic", "nope"])
    assert info.value.unknown == ["band_gap_magic", "nope"]
    assert info.value.missing == {"current": "required by iv_curve"}
    assert "band_gap_magic" in info.value.message
    assert "current (required by iv_curve)" in info.value.message


def test_requirements_come_first_and_selection_order_is_kept() -> None:
    order = resolve(["iv_curve", "energy", "current", "scf_convergence"])
    assert order == ["current", "scf_convergence", "iv_curve", "energy"]
    assert order.index("current") < order.index("iv_curve")
    assert order.index("scf_convergence") < order.index("energy")


def test_duplicates_are_ignored_and_empty_resolves_to_nothing() -> None:
    assert resolve(["current", "current"]) == ["current"]
    assert resolve([]) == []


def test_auto_complete_adds_requirements_when_asked() -> None:
    assert resolve(["iv_curve"], auto_complete=True) == ["current", "iv_curve"]


def test_code_mismatch_is_refused() -> None:
    with pytest.raises(InvalidSelection) as info:
        resolve(["qe_scf_convergence", "qe_energy"], code="siesta")
    assert set(info.value.unsupported) == {"qe_scf_convergence", "qe_energy"}
    assert resolve(["qe_scf_convergence", "qe_energy"], code="qe") == [
        "qe_scf_convergence",
        "qe_energy",
    ]


def test_catalogue_is_json_and_lists_dependencies() -> None:
    entries = json.loads(json.dumps(registry_mod.catalogue()))
    by_name = {e["name"]: e for e in entries}
    assert by_name["energy"]["requires"] == ["scf_convergence"]
    assert by_name["iv_curve"]["requires"] == ["current"]
    assert by_name["qe_energy"]["codes"] == ["qe"]
    names = [e["name"] for e in entries]
    for entry in entries:  # dependency order: requirements listed before dependents
        for req in entry["requires"]:
            assert names.index(req) < names.index(entry["name"])
    assert set(names) >= {
        "scf_convergence", "energy", "forces", "relaxed_geometry", "eigenvalues",
        "band_structure", "dos", "pdos", "transmission", "current", "iv_curve",
        "qe_energy", "qe_scf_convergence",
    }  # fmt: skip


# ---------------------------------------------------------------- registry validation


def test_cycle_is_detected_at_registry_load() -> None:
    a, b = _make("a", ("b",)), _make("b", ("a",))
    with pytest.raises(RegistryError, match="cycle"):
        Registry([a(), b()])


def test_unknown_requirement_is_detected_at_registry_load() -> None:
    with pytest.raises(RegistryError, match="requires 'ghost'"):
        Registry([_make("a", ("ghost",))()])


class _EP:
    """Stands in for importlib.metadata.EntryPoint (name, value, load)."""

    def __init__(self, name: str, obj: Any = None, error: Exception | None = None) -> None:
        self.name, self.value, self._obj, self._error = name, f"lab.{name}:X", obj, error

    def load(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._obj


def _with_entry_points(monkeypatch: pytest.MonkeyPatch, eps: list[_EP]) -> None:
    monkeypatch.setattr(registry_mod, "entry_points", lambda group: eps)


def test_a_lab_plugin_is_loaded_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = _make("band_gap_map", ("eigenvalues",))
    _with_entry_points(monkeypatch, [_EP("band_gap_map", plugin)])
    reg = build_registry()
    assert "band_gap_map" in reg
    assert reg.load_errors == {}
    assert resolve(["eigenvalues", "band_gap_map"], registry=reg) == [
        "eigenvalues",
        "band_gap_map",
    ]


def test_bad_plugins_are_left_out_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [
        _EP("broken", error=ImportError("no module named lab")),
        _EP("not_an_analysis", object()),
        _EP("shadow", _make("energy")),  # would replace a built-in
        _EP("dangling", _make("dangling", ("ghost",))),
        _EP("cyc_a", _make("cyc_a", ("cyc_b",))),
        _EP("cyc_b", _make("cyc_b", ("cyc_a",))),
        _EP("good", _make("good")),
    ]
    _with_entry_points(monkeypatch, eps)
    reg = build_registry()
    assert "good" in reg
    assert sorted(reg.load_errors) == [
        "broken", "cyc_a", "cyc_b", "dangling", "not_an_analysis", "shadow",
    ]  # fmt: skip
    assert "cycle" in reg.load_errors["cyc_a"]
    assert "already registered" in reg.load_errors["shadow"]
    assert reg.get("energy").requires == ("scf_convergence",)  # the built-in survived


def test_strict_mode_raises_on_a_plugin_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_entry_points(
        monkeypatch,
        [_EP("cyc_a", _make("cyc_a", ("cyc_b",))), _EP("cyc_b", _make("cyc_b", ("cyc_a",)))],
    )
    with pytest.raises(RegistryError, match="cycle"):
        build_registry(strict=True)


def test_default_registry_has_no_load_errors() -> None:
    assert default_registry().load_errors == {}
