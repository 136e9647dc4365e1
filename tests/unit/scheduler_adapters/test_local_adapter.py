"""LocalAdapter specifics beyond the shared contract: restart, dependencies, pid safety."""

from __future__ import annotations

import os
import time
from pathlib import Path, PurePosixPath

import pytest

from scheduler_adapters.errors import JobNotFound, UnsupportedFeature
from scheduler_adapters.local.adapter import LocalAdapter
from scheduler_adapters.local.files import live_pid, pid_record
from scheduler_adapters.runners.local import LocalRunner
from scheduler_adapters.types import ArraySpec, JobId, JobSpec, JobState


def make(tmp_path: Path) -> LocalAdapter:
    return LocalAdapter(LocalRunner(tmp_path), poll_interval=0.05, kill_wait=1.0)


def spec(tmp_path: Path, name: str, command: list[str], **kw: object) -> JobSpec:
    return JobSpec(name=name, template="generic.j2", workdir=PurePosixPath(str(tmp_path / name)),
                   context={"command": command}, **kw)  # type: ignore[arg-type]


def wait_final(
    adapter: LocalAdapter, ids: list[JobId], timeout: float = 20
) -> dict[JobId, JobState]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = adapter.status(ids)
        if st and all(s.state.is_final for s in st.values()):
            return {j: s.state for j, s in st.items()}
        time.sleep(0.05)
    pytest.fail(f"not final: {adapter.status(ids)}")


def test_a_restarted_service_sees_the_same_jobs(tmp_path: Path) -> None:
    first = make(tmp_path)
    done = first.submit(spec(tmp_path, "done", ["true"]))
    running = first.submit(spec(tmp_path, "running", ["sleep", "30"]))
    assert wait_final(first, [done]) == {done: JobState.COMPLETED}
    second = make(tmp_path)  # a new process would build exactly this from the same root
    assert second.status([done])[done].state == JobState.COMPLETED
    assert second.find_by_name("running") == [running]
    second.cancel([running])
    assert wait_final(first, [running]) == {running: JobState.CANCELLED}
    assert [r.exit_code for r in second.accounting([done])] == [0]


def test_dependency_on_unknown_or_cancelled_parent_is_never_satisfied(tmp_path: Path) -> None:
    adapter = make(tmp_path)
    orphan = adapter.submit(spec(tmp_path, "orphan", ["true"]), after_ok=[JobId("L999")])
    held = adapter.submit(spec(tmp_path, "held", ["true"]), hold=True)
    child = adapter.submit(spec(tmp_path, "child", ["true"]), after_ok=[held])
    adapter.cancel([held])
    states = wait_final(adapter, [orphan, held, child])
    assert states == {
        orphan: JobState.DEPENDENCY_NEVER_SATISFIED,
        held: JobState.CANCELLED,
        child: JobState.DEPENDENCY_NEVER_SATISFIED,
    }
    assert adapter.status([child])[child].reason == f"afterok:{held} (failed)"


def test_cancel_one_array_task(tmp_path: Path) -> None:
    adapter = make(tmp_path)
    arr = adapter.submit(spec(tmp_path, "arr", ["sleep", "1"], array=ArraySpec.of_size(3, 1)))
    adapter.cancel([JobId(arr.value, 2)])
    states = wait_final(adapter, [arr])
    assert states == {
        JobId(arr.value, 0): JobState.COMPLETED,
        JobId(arr.value, 1): JobState.COMPLETED,
        JobId(arr.value, 2): JobState.CANCELLED,
    }


def test_release_unknown_job(tmp_path: Path) -> None:
    with pytest.raises(JobNotFound):
        make(tmp_path).release(JobId("L404"))


def test_pid_records_are_checked_against_start_time() -> None:
    record = pid_record(os.getpid())
    assert live_pid(record) == os.getpid()
    pid = record.split()[0]
    assert live_pid(f"{pid} 1") is None  # same pid, other start time: a reused pid
    assert live_pid("garbage") is None
    assert live_pid(None) is None


def test_needs_a_local_runner(replay_runner: type) -> None:
    with pytest.raises(UnsupportedFeature):
        LocalAdapter(replay_runner())
