"""The tail's event stream, driven by a scripted file: lines with resume offsets, a start near
the end, bytes skipped when the job writes faster than the bound, truncation, the step's end
(with the last partial line), and a lost login."""

from __future__ import annotations

import json
from collections.abc import Callable

from hpcgate.domain.states import StepState
from hpcgate.engine.outputs import Chunk
from hpcgate.services.output_follow import TAIL_START, TailBounds, TailStopped, follow
from tests.helpers.aio import run_coroutine


class FakeFile:
    """A growing file; ``script`` changes it (and the step's state) before each poll."""

    def __init__(self, script: list[Callable[[FakeFile], None]]) -> None:
        self.data = b""
        self.state: StepState | None = StepState.RUNNING
        self.script = script
        self.polls: list[tuple[int, int]] = []

    def poll(self, offset: int, length: int) -> tuple[StepState | None, Chunk | None]:
        if self.script:
            self.script.pop(0)(self)
        self.polls.append((offset, length))
        return self.state, Chunk(offset, self.data[offset : offset + length], len(self.data), 0.0)


Event = tuple[str, str, str | None]


def _events(file: FakeFile, start: int | None = 0, max_bytes: int = 1 << 16) -> list[Event]:
    bounds = TailBounds(poll_s=0.0, max_bytes=max_bytes, max_line=100, max_duration_s=30)

    async def never() -> bool:
        return False

    async def collect() -> list[str]:
        return [text async for text in follow(file.poll, bounds, start, never)]

    out = []
    for block in run_coroutine(collect()):
        fields = dict(
            line.split(": ", 1) for line in block.strip("\n").split("\n") if ": " in line
        )
        if "event" in fields:
            out.append((fields["event"], fields.get("data", ""), fields.get("id")))
    return out


def _append(text: bytes) -> Callable[[FakeFile], None]:
    def act(f: FakeFile) -> None:
        f.data += text

    return act


def _end(state: StepState) -> Callable[[FakeFile], None]:
    def act(f: FakeFile) -> None:
        f.state = state

    return act


def test_lines_arrive_with_the_offset_to_resume_from_and_the_stream_ends_with_the_step() -> None:
    file = FakeFile([_append(b"one\ntwo\nthr"), _append(b"ee\npartial"), _end(StepState.FINISHED)])
    events = _events(file)
    assert [e[:2] for e in events] == [
        ("line", "one"), ("line", "two"), ("line", "three"), ("line", "partial"),
        ("done", json.dumps({"state": "finished"})),
    ]  # fmt: skip
    assert events[1][2] == "8"  # after "one\ntwo\n": the partial "thr" is not yet sent
    assert events[2][2] == str(len(b"one\ntwo\nthree\n"))


def test_a_new_stream_starts_near_the_end_of_a_long_file() -> None:
    head = b"".join(b"old %d\n" % i for i in range(10000))
    file = FakeFile([_append(head + b"newest\n"), _end(StepState.FINISHED)])
    events = _events(file, start=None)
    lines = [d for kind, d, _ in events if kind == "line"]
    assert lines[-1] == "newest"
    assert len(b"\n".join(x.encode() for x in lines)) <= TAIL_START
    assert file.polls[1][0] >= len(head) + 7 - TAIL_START


def test_a_job_writing_faster_than_the_bound_is_skipped_not_queued() -> None:
    burst = b"x" * 10 + b"\n" + b"y" * 5000 + b"\nlast\n"
    file = FakeFile([_append(burst), _end(StepState.FAILED)])
    events = _events(file, max_bytes=1024)
    kinds = [k for k, _, _ in events]
    assert "skipped" in kinds
    assert ("line", "last", str(len(file.data))) in events
    assert events[-1][0] == "done"


def test_a_truncated_file_is_read_again_from_its_start() -> None:
    def truncate(f: FakeFile) -> None:
        f.data = b"fresh\n"

    file = FakeFile([_append(b"first run\n"), truncate, _end(StepState.FINISHED)])
    lines = [d for k, d, _ in _events(file) if k == "line"]
    assert lines == ["first run", "fresh"]


def test_a_lost_login_or_an_unreadable_file_ends_the_stream_with_a_reason() -> None:
    file = FakeFile([_append(b"a\n"), _end(None)])  # type: ignore[arg-type]
    assert _events(file)[-1] == ("end", json.dumps({"reason": "unauthorized"}), None)

    def broken(offset: int, length: int) -> tuple[StepState | None, Chunk | None]:
        raise TailStopped("the file became unreadable")

    file = FakeFile([])
    file.poll = broken  # type: ignore[method-assign]
    assert _events(file)[-1] == ("end", json.dumps({"reason": "the file became unreadable"}), None)
