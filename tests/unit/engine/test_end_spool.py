"""The end spool's rules on a real directory: when a harvest is due, what settles an entry,
and that the submitter creates the spool before the first job can announce its end."""

from __future__ import annotations

import stat
import time
from pathlib import Path, PurePosixPath

import pytest

from hpcgate.engine.end_spool import EndSpool, prepare_spool, spool_dir
from scheduler_adapters.runners.local import LocalRunner


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    c = _Clock()
    c.now = time.time()  # entries' ages count from their real mtime
    monkeypatch.setattr(time, "monotonic", c)
    monkeypatch.setattr(time, "time", c)
    return c


def _spool(tmp_path: Path) -> EndSpool:
    (tmp_path / "hpcgate").mkdir()
    spool = EndSpool(tmp_path, max_age_s=120.0, retry_s=1.0, max_retry_s=8.0)
    assert spool.ensure()
    return spool


def test_a_new_entry_is_due_at_once_and_a_settled_one_is_removed(
    tmp_path: Path, clock: _Clock
) -> None:
    spool = _spool(tmp_path)
    assert not spool.due(spool.pending())
    (spool.path / "41").write_text("")
    announced = spool.pending()
    assert spool.due(announced)
    assert spool.settle(announced, still_active=[]) == []
    assert spool.pending() == {}


def test_an_entry_whose_job_stays_active_is_looked_at_less_and_less_often(
    tmp_path: Path, clock: _Clock
) -> None:
    """A scheduler slow to record the end: the entry is kept, with a doubling wait capped at
    ``max_retry_s``, and settles as soon as a look finds its job gone."""
    spool = _spool(tmp_path)
    (spool.path / "7_3").write_text("")  # an array task of job 7
    waits = []
    for _ in range(6):
        announced = spool.pending()
        assert spool.settle(announced, still_active=["7"]) == ["7_3"]
        start = clock.now
        while not spool.due(spool.pending()):
            clock.now += 0.25
        waits.append(clock.now - start)
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert spool.settle(spool.pending(), still_active=[]) == []
    assert not (spool.path / "7_3").exists()


def test_a_new_announcement_resets_the_wait(tmp_path: Path, clock: _Clock) -> None:
    spool = _spool(tmp_path)
    (spool.path / "7").write_text("")
    for _ in range(3):
        spool.settle(spool.pending(), still_active=["7"])
    (spool.path / "8").write_text("")
    assert spool.due(spool.pending())
    assert sorted(spool.settle(spool.pending(), still_active=["7", "8"])) == ["7", "8"]
    clock.now += 1.0
    assert spool.due(spool.pending())


def test_an_entry_too_old_is_dropped_even_while_its_job_runs(tmp_path: Path, clock: _Clock) -> None:
    """A forged entry for a running job costs a bounded number of looks."""
    spool = _spool(tmp_path)
    (spool.path / "9").write_text("")
    looks = 0
    while spool.pending():
        if spool.due(spool.pending()):
            looks += 1
            spool.settle(spool.pending(), still_active=["9"])
        clock.now += 0.25
        assert looks <= 100
    assert 5 <= looks <= 20


def test_the_submitter_creates_the_spool_beside_the_first_step_directory(
    tmp_path: Path,
) -> None:
    runner = LocalRunner(str(tmp_path))
    workdir = PurePosixPath(tmp_path) / "hpcgate" / "calc-1" / "step-0"
    runner.write_text(workdir / "job.sh", "true\n")
    prepare_spool(runner, workdir)
    spool = spool_dir(tmp_path)
    assert stat.S_IMODE(spool.stat().st_mode) == 0o1733
    spool.rmdir()
    prepare_spool(runner, workdir)  # once per runner: no second mkdir
    assert not spool.exists()
    prepare_spool(LocalRunner(str(tmp_path)), workdir)
    assert spool.is_dir()
