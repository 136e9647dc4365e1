"""The agent's half of the fetch relay: listings, byte ranges, and refusals (never a crash,
never a byte outside the step's directory), each answered to the API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hpcgate.agent.outputs import OutputResponder
from scheduler_adapters.errors import SchedulerError


class FakeClient:
    def __init__(self) -> None:
        self.results: dict[int, dict[str, Any]] = {}
        self.chunks: dict[int, tuple[bytes, int]] = {}

    def answer_output_request(self, request_id: int, result: dict[str, Any]) -> None:
        if request_id == 99:
            raise SchedulerError("the API refused")
        self.results[request_id] = result

    def upload_output_chunk(self, request_id: int, data: bytes, size: int, mtime: float) -> None:
        self.chunks[request_id] = (data, size)


def test_requests_are_answered_and_refusals_reported(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    workdir = scratch / "hpcgate" / "calc-000001-a" / "step-000-main"
    workdir.mkdir(parents=True)
    (workdir / "out.txt").write_bytes(b"0123456789")
    (tmp_path / "secret").write_text("no")
    os.symlink(tmp_path / "secret", workdir / "leak")
    client = FakeClient()
    responder = OutputResponder(client, str(scratch))  # type: ignore[arg-type]
    wd = str(workdir)
    done = responder.answer_all([
        {"id": 1, "kind": "list", "workdir": wd, "path": ""},
        {"id": 2, "kind": "read", "workdir": wd, "path": "out.txt", "offset": 3, "length": 4},
        {"id": 3, "kind": "read", "workdir": wd, "path": "leak", "offset": 0, "length": 10},
        {"id": 4, "kind": "read", "workdir": wd, "path": "none", "offset": 0, "length": 10},
        {"id": 5, "kind": "list", "workdir": str(tmp_path), "path": ""},
        {"id": 99, "kind": "list", "workdir": wd, "path": "../.."},
    ])  # fmt: skip
    assert done == 5  # the refused answer (99) is logged, the others still went out
    assert sorted(e["name"] for e in client.results[1]["entries"]) == ["leak", "out.txt"]
    assert client.chunks[2] == (b"3456", 10)
    assert client.results[3]["code"] == "unsafe"
    assert client.results[4]["code"] == "not_found"
    assert client.results[5]["code"] == "unsafe"  # a directory outside the scratch root
