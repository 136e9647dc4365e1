"""The code plugins: every registered code satisfies the protocol, and each stdout marker
is one object shared by the in-job validator and the analyses' parser (issue 19)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import analyses.qe.stdout as qe_stdout
import analyses.siesta.stdout as siesta_stdout
from hpcgate.codes import markers as marker_types
from hpcgate.codes.plugin import CodePlugin, PreparedInputs
from hpcgate.codes.qe import markers as qe_markers
from hpcgate.codes.qe import validate as qe_validate
from hpcgate.codes.registry import PLUGINS, get_plugin, validating_plugins
from hpcgate.codes.scan import Analyzer
from hpcgate.codes.siesta import markers as siesta_markers
from hpcgate.codes.siesta import validate as siesta_validate
from hpcgate.codes.validation import detect_code, known_codes, resolve_code
from hpcgate.errors import InvalidInput
from tests.helpers.fixtures_path import siesta_fixtures_dir

_PROTOCOL_MEMBERS = [
    name
    for name, _ in inspect.getmembers(CodePlugin)
    if not name.startswith("_") and name not in dir(object)
]


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_every_plugin_satisfies_the_protocol(name: str) -> None:
    plugin = PLUGINS[name]
    assert plugin.name == name
    for member in _PROTOCOL_MEMBERS:
        assert hasattr(plugin, member), f"{name} lacks {member}"
    assert plugin.template.endswith(".j2")
    assert (Path(__file__).parents[3] / "templates" / "sbatch" / plugin.template).is_file()
    assert all(isinstance(p, str) for p in plugin.default_inherit)
    if plugin.validates:
        assert isinstance(plugin.analyzer(Path("/nonexistent/out")), Analyzer)
        assert plugin.banner_at(b"nothing to see here") is None
    else:
        with pytest.raises(ValueError, match="no validator"):
            plugin.analyzer(Path("out"))


def test_protocol_members_are_checked() -> None:
    assert {"name", "template", "prepare", "validates", "analyzer", "banner_at"} <= set(
        _PROTOCOL_MEMBERS
    )


def test_generic_prepare_gives_parameters_as_data() -> None:
    prepared = get_plugin("generic").prepare({"run.sh": "echo\n"}, "", {"n": 2}, False)
    assert isinstance(prepared, PreparedInputs)
    assert prepared.files["hpcgate-params.json"].replace(" ", "").replace("\n", "") == '{"n":2}'


def test_registry_lookups() -> None:
    assert get_plugin("siesta") is PLUGINS["siesta"]
    with pytest.raises(InvalidInput, match="unknown code 'vasp'"):
        get_plugin("vasp")
    assert known_codes() == tuple(p.name for p in validating_plugins()) == ("siesta", "qe")
    assert resolve_code(" PW.X ") == "qe"
    with pytest.raises(ValueError, match="unknown code"):
        resolve_code("generic")  # it does not validate


def test_banners_are_recognised_by_their_plugin() -> None:
    assert detect_code(b"\n  Program PWSCF v.6.7MaX starts on 7Dec2026\n") == "qe"
    assert detect_code(b"Siesta Version  : v4.1-b4-351\n") == "siesta"
    assert detect_code(b"Executable      : siesta\n") == "siesta"
    assert not PLUGINS["siesta"].is_main_program(b"TBtrans Version: v4.1\n")
    assert PLUGINS["siesta"].is_main_program(b"Siesta Version  : 5.1\n")


def test_validators_and_analyses_share_the_marker_objects() -> None:
    # One table per code: the modules hold the very same objects, not copies.
    assert siesta_stdout.markers is siesta_markers
    assert qe_stdout.markers is qe_markers
    assert siesta_validate.MARKERS is siesta_markers.MARKERS
    assert qe_validate.MARKERS is qe_markers.MARKERS
    # The validators scan with the table's pattern, whose groups are the markers' names.
    siesta = siesta_validate.SiestaAnalyzer(Path("/nonexistent/out"))
    assert siesta.pattern is siesta_markers.MARKERS.pattern
    assert set(siesta.pattern.groupindex) == set(siesta_markers.MARKERS.names)
    qe = qe_validate.QeAnalyzer(Path("/nonexistent/out"))
    assert qe.pattern is qe_markers.MARKERS.pattern
    assert set(qe.pattern.groupindex) == set(qe_markers.MARKERS.names)


def _compiled(module: object) -> list[re.Pattern[str]]:
    return [v for v in vars(module).values() if isinstance(v, re.Pattern)]


@pytest.mark.parametrize(
    ("marker", "module"),
    [
        (siesta_markers.SCF, siesta_stdout),
        (siesta_markers.TS_SCF, siesta_stdout),
        (siesta_markers.BEGIN, siesta_stdout),
        (siesta_markers.MAX_FORCE, siesta_stdout),
        (siesta_markers.TS_VOLTAGE, siesta_stdout),
        (qe_markers.ITERATION, qe_stdout),
        (qe_markers.TOTAL_ENERGY_FINAL, qe_stdout),
        (qe_markers.ACCURACY, qe_stdout),
        (qe_markers.CONVERGED, qe_stdout),
        (qe_markers.FERMI, qe_stdout),
        (qe_markers.HOMO, qe_stdout),
        (qe_markers.FINAL, qe_stdout),
        (qe_markers.THRESHOLD, qe_stdout),
    ],
)
def test_analyses_regexes_extend_the_markers(marker: marker_types.Marker, module: object) -> None:
    """A value-capturing regex of the analyses starts with the marker's own text."""
    assert any(marker.text in rx.pattern for rx in _compiled(module))


def test_markers_match_the_lines_they_name() -> None:
    m = siesta_markers
    assert m.SCF_NOT_CONV.match("SCF_NOT_CONV: SCF did not converge in maximum number of steps.")
    assert m.SCF.match("   scf:    1   -1000.1   -1000.2")
    assert not m.SCF.match("   scf: none")
    assert m.VERSION.match("Siesta Version  : v4.1-b4-351")["v"] == "v4.1-b4-351"
    assert qe_markers.JOB_DONE.match("   JOB DONE.")
    with pytest.raises(ValueError, match="share a name"):
        marker_types.MarkerTable(m.SCF, m.SCF)


def _flat(table: marker_types.MarkerTable) -> re.Pattern[bytes]:
    """The plain alternation the factored pattern must agree with."""
    alternatives = [
        f"(?P<{m.name}>{' ++' if m.indented else ''}(?:{m.text}))" for m in table.markers
    ]
    return re.compile((r"\n(?:" + "|".join(alternatives) + r")[^\n]*+").encode())


_TABLES = [siesta_markers.MARKERS, siesta_markers.TBTRANS_MARKERS, qe_markers.MARKERS]


@pytest.mark.parametrize("table", _TABLES, ids=["siesta", "tbtrans", "qe"])
def test_factored_pattern_matches_like_the_plain_alternation(
    table: marker_types.MarkerTable,
) -> None:
    # Every marker's own line, its neighbours' prefixes, and lines that almost match.
    lines = []
    for m in table.markers:
        sample = re.sub(r"\\(.)", r"\1", re.sub(r"\(\?[=!][^)]*\)|[*+?]+|\[[^\]]*\]", "", m.text))
        lines += [sample + " 1.0", " " + sample + " 2", "   " + sample[:-1], sample[:3]]
    text = ("\n" + "\n".join(lines) + "\n").encode()
    for path in sorted(siesta_fixtures_dir().glob("*/*.out"))[:6]:  # none: synthetic only
        text += b"\n" + path.read_bytes()
    factored = [(m.start(), m.group(0), m.lastgroup) for m in table.pattern.finditer(text)]
    plain = [(m.start(), m.group(0), m.lastgroup) for m in _flat(table).finditer(text)]
    assert factored == plain
    seen = {k for _, _, k in factored}
    assert len(seen) >= 0.8 * len(table.markers), seen  # the samples do reach the markers
