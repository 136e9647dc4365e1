"""Issue 15 item 1: an fdf include cannot read files of the API host.

Exploit: a SIESTA calculation whose fdf says ``%include /any/path`` (or ``Label < /path``,
``%block X < /path``, a ``..`` path, a species label that is a path) made the API read that
file while preparing the inputs and stage it into the job; ``POST /calculations/preview``
listed it. Now an include must be a plain name of the calculation's own input files: the
rest is a 422 naming the line (number and text), and nothing is written.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import SecurityStack, tree_snapshot

pytestmark = pytest.mark.integration

TABLES = ("calculations", "steps", "step_edges", "array_tasks")

BASE = """SystemName water
SystemLabel h2o
NumberOfSpecies 2
NumberOfAtoms 3
%block ChemicalSpeciesLabel
 1 8 O
 2 1 H
%endblock ChemicalSpeciesLabel
AtomicCoordinatesFormat Ang
%block AtomicCoordinatesAndAtomicSpecies
 0.000 0.000 0.000 1
 0.757 0.586 0.000 2
-0.757 0.586 0.000 2
%endblock AtomicCoordinatesAndAtomicSpecies
"""
PSEUDOS = {"O.psf": "fake O pseudopotential\n", "H.psf": "fake H pseudopotential\n"}


@pytest.fixture(scope="module")
def host_secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file on the API host that no calculation may read."""
    path = tmp_path_factory.mktemp("host") / "secret.fdf"
    path.write_text(f"MeshCutoff 100 Ry\n# HOST-SECRET-{uuid.uuid4().hex}\n")
    return path


def _body(s: SecurityStack, fdf: str, **extra_inputs: str) -> dict[str, Any]:
    return s.calculation_body(
        code="siesta",
        configuration={
            "kind": "single",
            "main_input": "input.fdf",
            "inputs": {"input.fdf": fdf, **PSEUDOS, **extra_inputs},
        },
    )


def _exploits(secret: Path) -> list[tuple[str, str, int]]:
    """(fdf, the offending line's text, its line number)."""
    rel = "../" * 12 + str(secret).lstrip("/")
    n = BASE.count("\n") + 1
    return [
        (BASE + f"%include {secret}\n", f"%include {secret}", n),
        (BASE + f"%include {rel}\n", f"%include {rel}", n),
        (f"SystemLabel < {secret}\n" + BASE, f"SystemLabel < {secret}", 1),
        (BASE + f"MeshCutoff < {rel}\n", f"MeshCutoff < {rel}", n),
        (BASE + f"%block kgrid_Monkhorst_Pack < {secret}\n", "%block kgrid_Monkhorst_Pack", n),
        # SIESTA ends a line at ';', sisl (which reads the fdf on the API host) does not
        (BASE + f"MeshCutoff 100 Ry ; x < {secret}\n", "MeshCutoff 100 Ry ; x <", n),
        (BASE + "%include sub/geom.fdf\n", "%include sub/geom.fdf", n),
    ]


def test_host_file_includes_are_refused(security_stack: SecurityStack, host_secret: Path) -> None:
    s = security_stack
    secret_text = host_secret.read_text()
    before, files = s.snapshot(*TABLES), tree_snapshot(s.scratch)
    with s.api("user") as api:
        for fdf, line_text, line_no in _exploits(host_secret):
            for path in ("/calculations/preview", "/calculations"):
                r = api.post(path, json=_body(s, fdf))
                assert r.status_code == 422, (path, fdf, r.text)
                detail = r.json()["detail"]
                assert f"input.fdf:{line_no}:" in detail, detail
                assert line_text in detail, detail
                assert "HOST-SECRET" not in r.text
    assert s.snapshot(*TABLES) == before
    assert tree_snapshot(s.scratch) == files
    assert "HOST-SECRET" not in str(s.snapshot("calculations", "steps"))
    assert host_secret.read_text() == secret_text


def test_species_label_cannot_name_a_host_file(
    security_stack: SecurityStack, host_secret: Path
) -> None:
    s = security_stack
    label = "../" * 12 + str(host_secret.with_suffix("")).lstrip("/")
    host_secret.with_suffix(".psf").write_text("HOST-SECRET pseudo\n")
    fdf = BASE.replace(" 2 1 H\n", f" 2 1 {label}\n")
    before = s.snapshot(*TABLES)
    with s.api("user") as api:
        r = api.post("/calculations/preview", json=_body(s, fdf))
    assert r.status_code == 422, r.text
    assert "ChemicalSpeciesLabel" in r.json()["detail"]
    assert "HOST-SECRET" not in r.text
    assert s.snapshot(*TABLES) == before


def test_own_input_files_can_be_included(security_stack: SecurityStack) -> None:
    s = security_stack
    fdf = BASE + "%include params.fdf\nPAO.BasisSize < basis.fdf\n"
    body = _body(s, fdf, **{"params.fdf": "MeshCutoff 150 Ry\n", "basis.fdf": "PAO.BasisSize SZ\n"})
    with s.api("user") as api:
        preview = api.post("/calculations/preview", json=body)
        created = api.post("/calculations", json=body)
    assert preview.status_code == 200, preview.text
    (step,) = preview.json()["steps"]
    assert {"input.fdf", "params.fdf", "basis.fdf", "O.psf", "H.psf"} <= set(step["files"])
    assert created.status_code == 201, created.text


def test_symbolic_link_includes_are_refused(tmp_path: Path, host_secret: Path) -> None:
    """No API call can create a link (input names are plain), but an input set on disk can."""
    from hpcgate.codes.siesta.fdf import InputError
    from hpcgate.codes.siesta.inputs import generate_inputs

    src = tmp_path / "src"
    src.mkdir()
    for name, text in PSEUDOS.items():
        (src / name).write_text(text)
    (src / "input.fdf").write_text(BASE + "%include geom.fdf\n")
    (src / "geom.fdf").symlink_to(host_secret)
    with pytest.raises(InputError, match=r"input\.fdf:\d+: .*symbolic link"):
        generate_inputs(src / "input.fdf", [{}], tmp_path / "out", chain=False)
    assert not (tmp_path / "out").exists()
