"""``Client``: the blocking client (scripts, the ``hpcgate`` CLI, notebooks)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx

from hpcgate.client import flows, ops
from hpcgate.client._core import USER_AGENT, AuthState, Op, check
from hpcgate.client.credentials import CredentialStore, Login
from hpcgate.client.errors import ApiError, Unreachable
from hpcgate.client.flows import EventStream, Flow
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
from hpcgate.client.spec import Submission, load_submission

T = TypeVar("T")


class Client:
    """One hpcgate server, as one user.

    ``Client()`` takes the server and token from ``HPCGATE_URL``/``HPCGATE_TOKEN``, else
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.auth = AuthState(url, token, store)
        self._http = httpx.Client(
            base_url=self.auth.url,
            timeout=timeout,
            verify=verify,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )

    @property
    def url(self) -> str:
        return self.auth.url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def _send(self, op: Op[Any], *, stream: bool = False) -> httpx.Response:
        request = op.request(self._http, self.auth.headers(op.auth))
        try:
            return self._http.send(request, stream=stream)
        except httpx.TimeoutException:
            raise Unreachable(f"{self.url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc or type(exc).__name__}") from None
        finally:
            self._http.cookies.clear()  # the refresh cookie lives in the credential store only

    def _run(self, op: Op[T]) -> T:
        if op.auth and self.auth.should_refresh():
            self.refresh()
        resp = self._send(op)
        if resp.status_code == 401 and op.auth and self.auth.can_refresh():
            self.refresh()
            resp = self._send(op)
        check(resp)
        return op.parse(resp)

    def _drive(self, flow: Flow[T]) -> T:
        """Run a multi-request flow (``flows``), answering each of its operations."""
        try:
            op = next(flow)
            while True:
                op = flow.send(self._run(op))
        except StopIteration as done:
            result: T = done.value
            return result

    def _events(self, op: Op[Any], stream: EventStream[T], what: str) -> Iterator[T]:
        """The items of an SSE stream until the server ends it."""
        if self.auth.should_refresh():
            self.refresh()
        resp = self._send(op, stream=True)
        try:
            if resp.status_code >= 400:
                resp.read()
                check(resp)
            for line in resp.iter_lines():
                item = stream.feed(line)
                if item is not None:
                    yield item
                elif stream.ended:
                    return
        except httpx.TransportError as exc:
            raise Unreachable(f"{what} from {self.url} broke: {exc}") from None
        finally:
            resp.close()

    # ------------------------------------------------------------------ login

    def login(self, email: str, password: str) -> Token:
        """Log in and store the tokens for this server (``~/.config/hpcgate``, mode 0600)."""
        op = ops.login(email, password)
        resp = self._send(op)
        check(resp)
        token = op.parse(resp)
        self.auth.accept(token, resp, email)
        return token

    def refresh(self) -> Login:
        """A new access token from the stored refresh token (which rotates)."""
        with self.auth.store.locked():
            if self.auth.adopt_stored():
                assert self.auth.login is not None
                return self.auth.login
            op = self.auth.refresh_op()
            resp = self._send(op)
            if resp.status_code == 401:
                self.auth.forget()
                raise self.auth.expired_error()
            check(resp)
            return self.auth.accept(op.parse(resp), resp)

    def logout(self) -> None:
        """Revoke this login on the server and forget it here."""
        login = self.auth.login
        try:
            if login is not None:
                self._run(ops.logout(login.refresh_token))
        except ApiError as exc:
            if exc.status_code != 401:
                raise
        finally:
            if login is not None:
                self.auth.forget()

    def me(self) -> User:
        return self._run(ops.me())

    # ------------------------------------------------------------------ catalogue

    def clusters(self) -> list[Cluster]:
        return self._run(ops.clusters())

    def analyses(self) -> list[AnalysisInfo]:
        return self._run(ops.analyses())

    # ------------------------------------------------------------------ calculations

    def create(
        self, body: CalculationCreate, files: Mapping[str, bytes] | None = None
    ) -> CalculationDetail:
        """``POST /calculations`` (with ``files``: one multipart request, binary inputs)."""
        return self._run(ops.create(body, files))

    def preview(self, body: CalculationCreate) -> Preview:
        return self._run(ops.preview(body))

    def upload(self, files: Mapping[str, bytes]) -> list[StoredInput]:
        """Store files by content; refer to them as ``binary_inputs: {name: sha256}``."""
        return self._run(ops.upload(files))

    def submission_body(self, submission: Submission) -> CalculationCreate:
        return self._drive(flows.submission_body(submission))

    def submit(self, what: Submission | str | Path) -> CalculationDetail:
        """Create the calculation a directory or YAML spec describes (``spec.py``)."""
        sub = what if isinstance(what, Submission) else load_submission(Path(what))
        return self._drive(flows.submit(sub))

    def calculations(
        self,
        *,
        state: str | None = None,
        owner: Literal["me", "all"] | None = "me",
        query: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> CalculationPage:
        return self._run(
            ops.calculations(state=state, owner=owner, query=query, limit=limit, offset=offset)
        )

    def calculation(self, calc_id: int) -> CalculationDetail:
        return self._run(ops.calculation(calc_id))

    def input_text(self, calc_id: int, name: str) -> str:
        return self._run(ops.input_text(calc_id, name))

    def cancel(self, calc_id: int) -> CalculationDetail:
        return self._run(ops.cancel(calc_id))

    def results(self, calc_id: int) -> Results:
        return self._run(ops.results(calc_id))

    def step(self, step_id: int) -> StepDetail:
        return self._run(ops.step(step_id))

    def report(self, calc_id: int, fmt: ops.ReportFormat = "html") -> bytes:
        return self._run(ops.report(calc_id, fmt))

    # ------------------------------------------------------------------ raw outputs

    def list_outputs(self, calc_id: int, step: int = 0, path: str = "") -> OutputListing:
        """A step's run directory (or ``path`` below it), read on the cluster."""
        return self._run(ops.list_outputs(calc_id, step, path))

    def download_output(
        self, calc_id: int, step: int, path: str, dest: str | Path | None = None
    ) -> bytes | Path:
        """One output file: its bytes, or (``dest``: a file or a directory) written there
        atomically, streamed, and the path written."""
        op = ops.output_file(calc_id, step, path)
        if dest is None:
            return self._run(op)
        target, part = flows.download_target(dest, path)
        if op.auth and self.auth.should_refresh():
            self.refresh()
        resp = self._send(op, stream=True)
        try:
            if resp.status_code >= 400:
                resp.read()
                check(resp)
            with open(part, "wb") as fh:
                for chunk in resp.iter_bytes(1 << 20):
                    fh.write(chunk)
            os.replace(part, target)
        except httpx.TransportError as exc:
            raise Unreachable(f"the download from {self.url} broke: {exc}") from None
        finally:
            part.unlink(missing_ok=True)
            resp.close()
        return target

    def follow_output(
        self,
        calc_id: int,
        step: int = 0,
        *,
        file: str | None = None,
        offset: int | None = None,
        max_duration_s: float = 300.0,
    ) -> Iterator[str]:
        """A running step's output (stdout by default) line by line as it grows (SSE),
        until the step ends or the server ends the stream (``max_duration_s``)."""
        op = ops.output_tail(calc_id, step, file, offset, max_duration_s)
        yield from self._events(op, flows.output_lines(), "the output stream")

    def clone(self, calc_id: int, changes: Mapping[str, Any] | None = None) -> CalculationDetail:
        """Re-run a calculation with ``changes`` (``{"parameters.MeshCutoff": "200 Ry"}``,
        ``{"queue": "long"}``, ``{"cluster": "hpc1"}``); its inputs are fetched and re-sent,
        binary inputs are referenced by hash."""
        return self._drive(flows.clone(calc_id, changes))

    def wait(
        self,
        calc_id: int,
        *,
        poll_s: float = 2.0,
        timeout_s: float | None = None,
        on_update: Callable[[CalculationDetail], None] | None = None,
    ) -> CalculationDetail:
        """Poll until the calculation reaches a final state (or ``timeout_s``: TimeoutError)."""
        deadline = flows.wait_deadline(timeout_s)
        while True:
            detail = self.calculation(calc_id)
            if on_update is not None:
                on_update(detail)
            if flows.wait_over(detail, calc_id, deadline):
                return detail
            time.sleep(poll_s)

    # ------------------------------------------------------------------ logs

    def logs(
        self,
        *,
        calculation_id: int | None = None,
        level: str | None = None,
        source: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> LogPage:
        """One page, newest first; ``next_cursor`` pages back."""
        return self._run(
            ops.logs(
                calculation_id=calculation_id,
                level=level,
                source=source,
                limit=limit,
                cursor=cursor,
            )
        )

    def follow_logs(
        self,
        *,
        calculation_id: int | None = None,
        level: str | None = None,
        after_id: int | None = None,
        max_duration_s: float = 300.0,
    ) -> Iterator[LogLine]:
        """New log lines as they are written (``GET /logs/stream``, SSE) until the server
        ends the stream (``max_duration_s``); call again with the last id to go on."""
        op = flows.log_stream(calculation_id, level, after_id, max_duration_s)
        yield from self._events(op, flows.log_events(), "the log stream")
