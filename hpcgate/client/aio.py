"""``AsyncClient``: the same calls as ``Client`` for asyncio code (Jupyter cells, services),
sharing its operations, models and login store."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar

import httpx

from hpcgate.client import ops
from hpcgate.client._core import USER_AGENT, AuthState, Op, SseParser, check, log_line
from hpcgate.client.credentials import CredentialStore, Login
from hpcgate.client.errors import ApiError, Unreachable
from hpcgate.client.models import (
    AnalysisInfo,
    CalculationCreate,
    CalculationDetail,
    CalculationPage,
    Cluster,
    LogLine,
    LogPage,
    OutputListing,
    Preview,
    Results,
    StepDetail,
    StoredInput,
    Token,
    User,
)
from hpcgate.client.spec import Submission, clone_body, load_submission, pick_target

T = TypeVar("T")


class AsyncClient:
    """One hpcgate server, as one user, for ``async`` code.

    ``AsyncClient()`` takes the server and token from ``HPCGATE_URL``/``HPCGATE_TOKEN``, else
    from the login stored by ``hpcgate login`` (refreshed when it expires). Every API
    refusal raises ``ApiError`` with the API's own message.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        store: CredentialStore | None = None,
        timeout: float = 30.0,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.auth = AuthState(url, token, store)
        self._http = httpx.AsyncClient(
            base_url=self.auth.url,
            timeout=timeout,
            verify=verify,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )

    @property
    def url(self) -> str:
        return self.auth.url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ plumbing

    async def _send(self, op: Op[Any], *, stream: bool = False) -> httpx.Response:
        request = op.request(self._http, self.auth.headers(op.auth))
        try:
            return await self._http.send(request, stream=stream)
        except httpx.TimeoutException:
            raise Unreachable(f"{self.url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None
        finally:
            self._http.cookies.clear()  # the refresh cookie lives in the credential store only

    async def _run(self, op: Op[T]) -> T:
        if op.auth and self.auth.should_refresh():
            await self.refresh()
        resp = await self._send(op)
        if resp.status_code == 401 and op.auth and self.auth.can_refresh():
            await self.refresh()
            resp = await self._send(op)
        check(resp)
        return op.parse(resp)

    # ------------------------------------------------------------------ login

    async def login(self, email: str, password: str) -> Token:
        """Log in and store the tokens for this server (``~/.config/hpcgate``, mode 0600)."""
        op = ops.login(email, password)
        resp = await self._send(op)
        check(resp)
        token = op.parse(resp)
        self.auth.accept(token, resp, email)
        return token

    async def refresh(self) -> Login:
        """A new access token from the stored refresh token (which rotates)."""
        with self.auth.store.locked():
            if self.auth.adopt_stored():
                assert self.auth.login is not None
                return self.auth.login
            op = self.auth.refresh_op()
            resp = await self._send(op)
            if resp.status_code == 401:
                self.auth.forget()
                raise self.auth.expired_error()
            check(resp)
            return self.auth.accept(op.parse(resp), resp)

    async def logout(self) -> None:
        """Revoke this login on the server and forget it here."""
        login = self.auth.login
        try:
            if login is not None:
                await self._run(ops.logout(login.refresh_token))
        except ApiError as exc:
            if exc.status_code != 401:
                raise
        finally:
            if login is not None:
                self.auth.forget()

    async def me(self) -> User:
        return await self._run(ops.me())

    # ------------------------------------------------------------------ catalogue

    async def clusters(self) -> list[Cluster]:
        return await self._run(ops.clusters())

    async def analyses(self) -> list[AnalysisInfo]:
        return await self._run(ops.analyses())

    # ------------------------------------------------------------------ calculations

    async def create(
        self, body: CalculationCreate, files: Mapping[str, bytes] | None = None
    ) -> CalculationDetail:
        """``POST /calculations`` (with ``files``: one multipart request, binary inputs)."""
        return await self._run(ops.create(body, files))

    async def preview(self, body: CalculationCreate) -> Preview:
        return await self._run(ops.preview(body))

    async def upload(self, files: Mapping[str, bytes]) -> list[StoredInput]:
        """Store files by content; refer to them as ``binary_inputs: {name: sha256}``."""
        return await self._run(ops.upload(files))

    async def submission_body(self, submission: Submission) -> CalculationCreate:
        cluster, queue = pick_target(await self.clusters(), submission.cluster, submission.queue)
        return submission.body(cluster.id, queue)

    async def submit(self, what: Submission | str | Path) -> CalculationDetail:
        """Create the calculation a directory or YAML spec describes (``spec.py``)."""
        sub = what if isinstance(what, Submission) else load_submission(Path(what))
        return await self.create(await self.submission_body(sub), sub.binary or None)

    async def calculations(
        self,
        *,
        state: str | None = None,
        owner: Literal["me", "all"] | None = "me",
        query: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> CalculationPage:
        return await self._run(
            ops.calculations(state=state, owner=owner, query=query, limit=limit, offset=offset)
        )

    async def calculation(self, calc_id: int) -> CalculationDetail:
        return await self._run(ops.calculation(calc_id))

    async def input_text(self, calc_id: int, name: str) -> str:
        return await self._run(ops.input_text(calc_id, name))

    async def cancel(self, calc_id: int) -> CalculationDetail:
        return await self._run(ops.cancel(calc_id))

    async def results(self, calc_id: int) -> Results:
        return await self._run(ops.results(calc_id))

    async def step(self, step_id: int) -> StepDetail:
        return await self._run(ops.step(step_id))

    async def report(self, calc_id: int, fmt: ops.ReportFormat = "html") -> bytes:
        return await self._run(ops.report(calc_id, fmt))

    # ------------------------------------------------------------------ raw outputs

    async def list_outputs(self, calc_id: int, step: int = 0, path: str = "") -> OutputListing:
        """A step's run directory (or ``path`` below it), read on the cluster."""
        return await self._run(ops.list_outputs(calc_id, step, path))

    async def download_output(
        self, calc_id: int, step: int, path: str, dest: str | Path | None = None
    ) -> bytes | Path:
        """One output file: its bytes, or (``dest``: a file or a directory) written there
        atomically, streamed, and the path written."""
        op = ops.output_file(calc_id, step, path)
        if dest is None:
            return await self._run(op)
        target = Path(dest)
        if target.is_dir():
            target = target / PurePosixPath(path).name
        if op.auth and self.auth.should_refresh():
            await self.refresh()
        resp = await self._send(op, stream=True)
        part = target.with_name(f".{target.name}.part")
        try:
            if resp.status_code >= 400:
                await resp.aread()
                check(resp)
            with open(part, "wb") as fh:
                async for chunk in resp.aiter_bytes(1 << 20):
                    fh.write(chunk)
            os.replace(part, target)
        except httpx.TransportError as exc:
            raise Unreachable(f"the download from {self.url} broke: {exc}") from None
        finally:
            part.unlink(missing_ok=True)
            await resp.aclose()
        return target

    async def follow_output(
        self,
        calc_id: int,
        step: int = 0,
        *,
        file: str | None = None,
        offset: int | None = None,
        max_duration_s: float = 300.0,
    ) -> AsyncIterator[str]:
        """A running step's output (stdout by default) line by line as it grows (SSE),
        until the step ends or the server ends the stream (``max_duration_s``)."""
        op = ops.output_tail(calc_id, step, file, offset, max_duration_s)
        if self.auth.should_refresh():
            await self.refresh()
        resp = await self._send(op, stream=True)
        try:
            if resp.status_code >= 400:
                await resp.aread()
                check(resp)
            parser = SseParser()
            async for line in resp.aiter_lines():
                event = parser.feed(line)
                if event is None:
                    continue
                kind, data, _ = event
                if kind == "line":
                    yield data
                elif kind in ("done", "end"):
                    return
        except httpx.TransportError as exc:
            raise Unreachable(f"the output stream from {self.url} broke: {exc}") from None
        finally:
            await resp.aclose()

    async def clone(
        self, calc_id: int, changes: Mapping[str, Any] | None = None
    ) -> CalculationDetail:
        """Re-run a calculation with ``changes`` (``{"parameters.MeshCutoff": "200 Ry"}``,
        ``{"queue": "long"}``, ``{"cluster": "hpc1"}``); its inputs are fetched and re-sent,
        binary inputs are referenced by hash."""
        detail = await self.calculation(calc_id)
        names = list((detail.configuration.get("inputs") or {}).keys())
        texts = {name: await self.input_text(calc_id, name) for name in names}
        changes = dict(changes or {})
        cluster = changes.pop("cluster", None)
        body = clone_body(detail, texts, changes)
        if cluster is not None:
            chosen, queue = pick_target(await self.clusters(), cluster, body["logical_queue"])
            body["cluster_id"], body["logical_queue"] = chosen.id, queue
        return await self.create(CalculationCreate.model_validate(body))

    async def wait(
        self,
        calc_id: int,
        *,
        poll_s: float = 2.0,
        timeout_s: float | None = None,
        on_update: Callable[[CalculationDetail], None] | None = None,
    ) -> CalculationDetail:
        """Poll until the calculation reaches a final state (or ``timeout_s``: TimeoutError)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            detail = await self.calculation(calc_id)
            if on_update is not None:
                on_update(detail)
            if detail.finished:
                return detail
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"calculation {calc_id} still {detail.state}")
            await asyncio.sleep(poll_s)

    # ------------------------------------------------------------------ logs

    async def logs(
        self,
        *,
        calculation_id: int | None = None,
        level: str | None = None,
        source: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> LogPage:
        """One page, newest first; ``next_cursor`` pages back."""
        return await self._run(
            ops.logs(
                calculation_id=calculation_id,
                level=level,
                source=source,
                limit=limit,
                cursor=cursor,
            )
        )

    async def follow_logs(
        self,
        *,
        calculation_id: int | None = None,
        level: str | None = None,
        after_id: int | None = None,
        max_duration_s: float = 300.0,
    ) -> AsyncIterator[LogLine]:
        """New log lines as they are written (``GET /logs/stream``, SSE) until the server
        ends the stream (``max_duration_s``); call again with the last id to go on."""
        op: Op[None] = Op(
            "GET",
            "/logs/stream",
            lambda _: None,
            params={
                "calculation_id": calculation_id,
                "level": level,
                "after_id": after_id,
                "max_duration_s": max_duration_s,
                "heartbeat_s": 5,
            },
        )
        if self.auth.should_refresh():
            await self.refresh()
        resp = await self._send(op, stream=True)
        try:
            if resp.status_code >= 400:
                await resp.aread()
                check(resp)
            parser = SseParser()
            async for line in resp.aiter_lines():
                event = parser.feed(line)
                if event is None:
                    continue
                kind, data, _ = event
                if kind == "log":
                    yield log_line(data)
                elif kind == "end":
                    return
        except httpx.TransportError as exc:
            raise Unreachable(f"the log stream from {self.url} broke: {exc}") from None
        finally:
            await resp.aclose()
