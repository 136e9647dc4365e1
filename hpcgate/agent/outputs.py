"""The agent's half of the fetch relay: answer the API's raw-output requests.

A pull may carry ``output_requests`` (a user browses or downloads a step's files, or
follows its stdout). Each is answered at once from the login node: a listing, or one byte
range of one file (at most the request's length, which the API sized below its body limit).
The API sends the step's directory; both it and the file are confined here again with real
paths (``engine/outputs.py``), since the job's account owns what is inside.
"""

from __future__ import annotations

import logging
from typing import Any

from hpcgate.agent.client import AgentClient
from hpcgate.engine.outputs import LocalOutputs, OutputPathError
from scheduler_adapters.errors import SchedulerError

log = logging.getLogger(__name__)

MAX_CHUNK = 32 << 20  # never more than this in one upload, whatever the request says


def _refusal(exc: Exception) -> dict[str, str]:
    if isinstance(exc, OutputPathError):
        return {"error": str(exc), "code": "unsafe"}
    if isinstance(exc, FileNotFoundError):
        return {"error": "no such file or directory", "code": "not_found"}
    if isinstance(exc, NotADirectoryError):
        return {"error": "a path component is not a directory", "code": "not_a_directory"}
    if isinstance(exc, PermissionError):
        return {"error": "the agent's account may not read that", "code": "permission"}
    return {"error": f"{type(exc).__name__}: {exc}"[:500], "code": "error"}


class OutputResponder:
    def __init__(self, client: AgentClient, scratch_root: str) -> None:
        self.client = client
        self.files = LocalOutputs(scratch_root)

    def answer_all(self, requests: list[dict[str, Any]]) -> int:
        """Answer every request; one that fails is logged, never blocks the others."""
        done = 0
        for req in requests:
            try:
                self.answer(req)
                done += 1
            except SchedulerError as exc:  # the API did not take the answer: it times out
                log.warning("output request %s: answer not delivered: %s", req.get("id"), exc)
        return done

    def answer(self, req: dict[str, Any]) -> None:
        rid = int(req["id"])
        workdir, path = str(req["workdir"]), str(req.get("path") or "")
        try:
            if req.get("kind") == "list":
                entries, truncated = self.files.list_dir(workdir, path)
                result = {"entries": [e.to_dict() for e in entries], "truncated": truncated}
                self.client.answer_output_request(rid, result)
                return
            length = max(0, min(int(req.get("length") or 0), MAX_CHUNK))
            chunk = self.files.read(workdir, path, max(0, int(req.get("offset") or 0)), length)
        except (OSError, OutputPathError) as exc:
            self.client.answer_output_request(rid, _refusal(exc))
            return
        self.client.upload_output_chunk(rid, chunk.data, chunk.size, chunk.mtime)
