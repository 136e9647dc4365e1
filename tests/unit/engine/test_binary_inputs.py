"""Binary inputs without a server: name and reference rules, the SIESTA plugin seeing binary
pseudopotentials, the dispatcher's verified blob cache, byte-exact staging, the settings."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any

import pytest

from hpcgate.codes.plugin import check_binary_inputs, check_input_files, check_input_name
from hpcgate.codes.registry import get_plugin
from hpcgate.engine.blobs import BlobCache
from hpcgate.engine.submission import stage_inputs
from hpcgate.engine.work import StepWork
from hpcgate.errors import InvalidInput
from hpcgate.settings import Settings
from scheduler_adapters.errors import SchedulerError, UnsafePath
from scheduler_adapters.runners.local import LocalRunner
from tests.helpers.fixtures_path import require_siesta_fixture

SHA = "ab" * 32


@pytest.mark.parametrize("name", ["electrode.TSHS", "Au.psml", "C.ion.nc", "h2o.DM", "a+b-c_1"])
def test_plain_names_are_accepted(name: str) -> None:
    assert check_input_name(name) == name


@pytest.mark.parametrize(
    "name", ["../x", "a/b", "/etc/passwd", ".", "..", "", ".hidden", "x" * 200, 5, "a b"]
)
def test_paths_and_odd_names_are_refused(name: Any) -> None:
    with pytest.raises(InvalidInput, match="not allowed"):
        check_input_name(name)


@pytest.mark.parametrize("name", ["hpcgate-params.json", "HPCGATE-x", "hpcgate-"])
def test_hpcgate_names_are_reserved_for_text_and_binary_inputs(name: str) -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        check_input_name(name)
    with pytest.raises(InvalidInput, match="reserved"):
        check_input_files({name: "x"})
    with pytest.raises(InvalidInput, match="reserved"):
        check_binary_inputs({name: SHA}, ())


def test_binary_references_must_be_hashes_and_must_not_shadow_text() -> None:
    assert check_binary_inputs({"e.TSHS": SHA}, ["in.fdf"]) == {"e.TSHS": SHA}
    assert check_binary_inputs(None, ["in.fdf"]) == {}
    with pytest.raises(InvalidInput, match="both as text and as a binary"):
        check_binary_inputs({"in.fdf": SHA}, ["in.fdf"])
    for bad in ("AB" * 32, "ab" * 31, "zz" * 32, 7, None):
        with pytest.raises(InvalidInput, match="sha256"):
            check_binary_inputs({"e.TSHS": bad}, ())
    with pytest.raises(InvalidInput, match="object"):
        check_binary_inputs(["e.TSHS"], ())


def test_siesta_accepts_a_pseudopotential_given_as_a_binary_input() -> None:
    case = require_siesta_fixture("h2o_scf_siesta5")
    fdf = (case / "h2o_dipole.fdf").read_text()
    plugin = get_plugin("siesta")
    with pytest.raises(InvalidInput, match="pseudopotential"):
        plugin.prepare({"h2o_dipole.fdf": fdf}, "h2o_dipole.fdf", {}, False)
    prepared = plugin.prepare(
        {"h2o_dipole.fdf": fdf},
        "h2o_dipole.fdf",
        {"MeshCutoff": "150 Ry"},
        False,
        binary=frozenset({"H.psml", "O.psml", "h2o_dipole.DM"}),
    )
    # the binary files are staged from their blobs, never as (placeholder) text
    assert set(prepared.files) == {"h2o_dipole.fdf"}
    assert "150 Ry" in prepared.files["h2o_dipole.fdf"]


# ------------------------------------------------------------------ the blob cache
class Source:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.calls: list[str] = []

    def __call__(self, sha256: str) -> Iterator[bytes]:
        self.calls.append(sha256)
        if sha256 not in self.blobs:
            raise LookupError("not stored")
        data = self.blobs[sha256]
        for i in range(0, len(data), 1000):
            yield data[i : i + 1000]


def test_cache_fetches_once_and_verifies(tmp_path: Path) -> None:
    data = os.urandom(5000) + b"\xff"
    sha = hashlib.sha256(data).hexdigest()
    source = Source({sha: data})
    cache = BlobCache(tmp_path / "c", source)
    assert cache.path(sha).read_bytes() == data
    assert cache.path(sha).read_bytes() == data
    assert source.calls == [sha]


def test_a_corrupt_blob_is_refused_and_not_kept(tmp_path: Path) -> None:
    sha = hashlib.sha256(b"the real bytes").hexdigest()
    cache = BlobCache(tmp_path / "c", Source({sha: b"other bytes"}))
    with pytest.raises(SchedulerError, match="corrupt") as err:
        cache.path(sha)
    assert err.value.transient is True
    assert [p for p in (tmp_path / "c").rglob("*") if p.is_file()] == []


def test_a_missing_blob_is_a_permanent_error(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "c", Source({}))
    with pytest.raises(SchedulerError) as err:
        cache.path(SHA)
    assert err.value.transient is False
    with pytest.raises(SchedulerError, match="not a sha256"):
        cache.path("../../etc/passwd")


def test_prune_removes_blobs_unused_for_keep_days(tmp_path: Path) -> None:
    data = b"\x00\x01"
    sha = hashlib.sha256(data).hexdigest()
    cache = BlobCache(tmp_path / "c", Source({sha: data}), keep_days=1)
    path = cache.path(sha)
    assert cache.prune() == 0
    old = path.stat().st_mtime - 2 * 86400
    os.utime(path, (old, old))
    assert cache.prune() == 1
    assert not path.exists()


# ------------------------------------------------------------------ staging
def _step(workdir: Path, blobs: dict[str, str]) -> StepWork:
    return StepWork(
        step_id=1, index=0, label="s", job_name="j", attempt=1, template="generic.j2",
        workdir=str(workdir), files={"in.txt": "text\n"}, blobs=blobs,
    )


def test_staging_writes_blobs_byte_for_byte(tmp_path: Path) -> None:
    data = os.urandom(10_000) + b"\x80"
    sha = hashlib.sha256(data).hexdigest()
    scratch = tmp_path / "scratch"
    adapter: Any = SimpleNamespace(runner=LocalRunner(str(scratch)))
    cache = BlobCache(tmp_path / "c", Source({sha: data}))
    workdir = scratch / "calc" / "step"
    stage_inputs(adapter, _step(workdir, {"task-0/e.TSHS": sha, "task-1/e.TSHS": sha}), cache)
    assert (workdir / "task-0" / "e.TSHS").read_bytes() == data
    assert (workdir / "task-1" / "e.TSHS").read_bytes() == data
    assert (workdir / "in.txt").read_text() == "text\n"


def test_staging_refuses_paths_outside_the_step_and_missing_sources(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    adapter: Any = SimpleNamespace(runner=LocalRunner(str(scratch)))
    cache = BlobCache(tmp_path / "c", Source({SHA: b""}))
    with pytest.raises(SchedulerError, match="not a relative path"):
        stage_inputs(adapter, _step(scratch / "calc", {"../../x": SHA}), cache)
    with pytest.raises(SchedulerError, match="cannot stage binary"):
        stage_inputs(adapter, _step(scratch / "calc", {"e.TSHS": SHA}), None)
    with pytest.raises(UnsafePath):
        adapter.runner.write_bytes(PurePosixPath(str(tmp_path / "elsewhere")), b"\xff")


def test_input_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(env="dev")
    assert s.inputs.max_file_bytes == 256 << 20
    assert s.inputs.max_calculation_bytes == 1 << 30
    monkeypatch.setenv("HPCGATE_INPUTS__MAX_FILE_BYTES", "1024")
    assert Settings(env="dev").inputs.max_file_bytes == 1024
