"""HTTP client of the agent: the API is its durable store; heartbeats are buffered on disk.

Reports that change state (``submitting``, job ids) must be acknowledged before the agent
acts, so they raise on failure (the caller retries next tick). Heartbeats are appended to a
local JSONL buffer first and flushed in batches: an API or database outage delays them but
loses none, and the API de-duplicates by ``sample_key`` if a flush is retried.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from hpcgate.engine.work import (
    AGENT_FEATURES,
    ActiveStep,
    ClusterSample,
    StepObservation,
    StepWork,
)
from scheduler_adapters.errors import SchedulerError

log = logging.getLogger(__name__)


class ApiUnavailable(SchedulerError):
    """The API did not acknowledge: nothing may be acted on; retry later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


class AgentClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        verify: bool | str = True,
        timeout: float = 30.0,
        state_dir: Path | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"X-API-Key": api_key, "User-Agent": "hpcgate-agent"},
            verify=verify,
            timeout=timeout,
        )
        self._buffer_lock = threading.Lock()
        self._buffer = (state_dir or Path(".")) / "heartbeat-buffer.jsonl"
        self._buffer.parent.mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise ApiUnavailable(f"{method} {path}: HTTP {resp.status_code}")
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail")
            except ValueError:
                detail = resp.text[:300]
            raise SchedulerError(f"{method} {path}: HTTP {resp.status_code}: {detail}")
        return resp.json() if resp.content else None

    # -- work
    def pull(self, agent: str, limit: int = 10, wait: float = 0.0) -> dict[str, Any]:
        """``wait`` > 0: a long-poll; the server answers when work arrives, within ``wait``."""
        body = {"agent": agent, "limit": limit, "features": sorted(AGENT_FEATURES)}
        kw: dict[str, Any] = {"json": body}
        if wait > 0:
            kw["params"] = {"wait": f"{wait:.1f}"}
            kw["timeout"] = self._http.timeout.read + wait if self._http.timeout.read else None
        result: dict[str, Any] = self._call("POST", "/agent/pull", **kw)
        return result

    def active_steps(self) -> list[ActiveStep]:
        return [ActiveStep.from_dict(d) for d in self._call("GET", "/agent/active-steps")]

    def report_observations(self, observations: list[StepObservation]) -> list[str]:
        body = {"observations": [o.to_dict() for o in observations]}
        return list(self._call("POST", "/agent/observations", json=body)["cancel"])

    def acknowledge_cancellations(self, job_ids: list[str]) -> None:
        self._call("POST", "/agent/cancellations/ack", json={"job_ids": job_ids})

    def fetch_blob(self, sha256: str) -> Iterator[bytes]:
        """A binary input's bytes, streamed (the caller checks the sha256 and caches them).

        404: the blob is not (or no longer) for this cluster, a permanent ``LookupError``.
        """
        path = f"/agent/blobs/{sha256}"
        try:
            with self._http.stream("GET", path) as resp:
                if resp.status_code == 404:
                    raise LookupError(f"the API has no input file {sha256[:12]}… for this cluster")
                if resp.status_code >= 400:
                    resp.read()
                    raise ApiUnavailable(f"GET {path}: HTTP {resp.status_code}")
                yield from resp.iter_bytes(1 << 20)
        except httpx.HTTPError as exc:
            raise ApiUnavailable(f"GET {path}: {type(exc).__name__}: {exc}") from exc

    def cleanup_work(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/agent/cleanup")
        return result

    def report_cleanup(
        self, step_id: int, freed: int, expired: bool, dry_run: bool, refused: list[str]
    ) -> None:
        self._call(
            "POST",
            "/agent/cleanup",
            json={
                "step_id": step_id,
                "freed_bytes": freed,
                "expired": expired,
                "dry_run": dry_run,
                "refused": refused,
            },
        )

    # -- raw outputs (the fetch relay, agent/outputs.py)
    def answer_output_request(self, request_id: int, result: dict[str, Any]) -> None:
        self._call("POST", f"/agent/output-requests/{request_id}/result", json=result)

    def upload_output_chunk(self, request_id: int, data: bytes, size: int, mtime: float) -> None:
        self._call(
            "PUT",
            f"/agent/output-requests/{request_id}/content",
            params={"size": size, "mtime": f"{mtime:.6f}"},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def post_logs(self, lines: list[dict[str, Any]]) -> None:
        self._call("POST", "/agent/logs", json={"lines": lines})

    # -- heartbeats (buffered)
    def buffer_sample(self, sample: ClusterSample) -> None:
        with self._buffer_lock, open(self._buffer, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(sample.to_dict()) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def flush_samples(self, batch: int = 200) -> int:
        """Send buffered samples; keep whatever was not acknowledged. Returns the number sent."""
        with self._buffer_lock:
            if not self._buffer.exists():
                return 0
            lines = [ln for ln in self._buffer.read_text(encoding="utf-8").splitlines() if ln]
            sent = 0
            try:
                while sent < len(lines):
                    chunk = [json.loads(ln) for ln in lines[sent : sent + batch]]
                    self._call("POST", "/agent/heartbeats", json={"samples": chunk})
                    sent += len(chunk)
            finally:
                rest = lines[sent:]
                tmp = self._buffer.with_suffix(".tmp")
                tmp.write_text("".join(ln + "\n" for ln in rest), encoding="utf-8")
                os.replace(tmp, self._buffer)
            return sent

    def buffered_count(self) -> int:
        with self._buffer_lock:
            if not self._buffer.exists():
                return 0
            return sum(1 for ln in self._buffer.read_text(encoding="utf-8").splitlines() if ln)


class HttpStepStore:
    """``StepStore`` over the API: each call returns only after the API committed it."""

    def __init__(self, client: AgentClient) -> None:
        self.client = client

    def mark_submitting(self, calculation_id: int, step: StepWork) -> bool:
        """An API without ``fresh`` (older) means: search by name, as before."""
        reply = self.client._call("POST", f"/agent/steps/{step.step_id}/submitting")
        return isinstance(reply, dict) and reply.get("fresh") is True

    def record_job_id(
        self, calculation_id: int, step: StepWork, job_id: str, *, recovered: bool
    ) -> None:
        self.client._call(
            "POST",
            f"/agent/steps/{step.step_id}/job-id",
            json={"job_id": job_id, "recovered": recovered},
        )

    def mark_submitted(self, calculation_id: int) -> None:
        self.client._call("POST", f"/agent/calculations/{calculation_id}/submitted")

    def mark_failed(self, calculation_id: int, message: str) -> None:
        self.client._call(
            "POST", f"/agent/calculations/{calculation_id}/failed", json={"message": message[:4000]}
        )


class HttpAddedStepStore(HttpStepStore):
    """For steps added to a running calculation (refinement): it stays running, so there
    is no "submitted" to report; a refusal is, and fails only the added steps."""

    def mark_submitted(self, calculation_id: int) -> None:
        """Nothing: the calculation is already submitted or running."""
