"""What ``Client`` and ``AsyncClient`` share, free of I/O: requests as data (``Op``), how a
response becomes a model or an ``ApiError``, login state and its refresh, and the SSE parser.

Both clients only *send*; everything here is decided once, so the two never disagree.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from hpcgate import __version__
from hpcgate.client.credentials import (
    DEFAULT_URL,
    ENV_TOKEN,
    ENV_URL,
    CredentialStore,
    Login,
    normalize_url,
)
from hpcgate.client.errors import ApiError, ClientError, NotLoggedIn
from hpcgate.client.models import CalculationCreate, LogLine, Token

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

REFRESH_COOKIE = "hpcgate_refresh"
USER_AGENT = f"hpcgate-client/{__version__}"


@dataclass
class Op(Generic[T]):
    """One API call: what to send and how to read the answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    files: Mapping[str, bytes] | None = None
    form: dict[str, str] | None = None
    auth: bool = True
    extra_headers: dict[str, str] = field(default_factory=dict)

    def request(self, http: httpx.Client | httpx.AsyncClient, headers: dict[str, str]) -> Any:
        parts: list[tuple[str, Any]] | None = None
        if self.files is not None or self.form is not None:
            form = (self.form or {}).items()
            parts = [(k, (None, v.encode(), "application/json")) for k, v in form]
            parts += [
                ("file", (name, data, "application/octet-stream"))
                for name, data in (self.files or {}).items()
            ]
        params = {k: v for k, v in (self.params or {}).items() if v is not None}
        return http.build_request(
            self.method,
            self.path,
            params=params or None,
            json=self.json if parts is None else None,
            files=parts,
            headers={**headers, **self.extra_headers},
        )


def model(kind: type[M]) -> Callable[[httpx.Response], M]:
    def parse(resp: httpx.Response) -> M:
        try:
            return kind.model_validate(resp.json())
        except (ValueError, ValidationError) as exc:
            raise ClientError(f"unexpected answer from {resp.request.url.path}: {exc}") from None

    return parse


def model_list(kind: type[M]) -> Callable[[httpx.Response], list[M]]:
    adapter = TypeAdapter(list[kind])  # type: ignore[valid-type]

    def parse(resp: httpx.Response) -> list[M]:
        try:
            return list(adapter.validate_python(resp.json()))
        except (ValueError, ValidationError) as exc:
            raise ClientError(f"unexpected answer from {resp.request.url.path}: {exc}") from None

    return parse


def raw_json(resp: httpx.Response) -> Any:
    return resp.json()


def raw_bytes(resp: httpx.Response) -> bytes:
    return resp.content


def nothing(_: httpx.Response) -> None:
    return None


def api_error(resp: httpx.Response) -> ApiError:
    """The API's own words: ``{"detail": "...", "code": "..."}`` from ``api/errors.py``."""
    body: Any = None
    try:
        body = resp.json()
    except ValueError:
        body = None
    detail: Any = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # FastAPI's own
        first = detail[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        detail = f"{where}: {first.get('msg')}" if where else first.get("msg")
    message = str(detail) if detail else (resp.reason_phrase or "error")
    retry = resp.headers.get("retry-after", "")
    return ApiError(
        resp.status_code,
        message.splitlines()[0] if message else "error",
        code=body.get("code") if isinstance(body, dict) else None,
        retry_after=int(retry) if (retry.isascii() and retry.isdigit()) else None,
        body=body,
    )


def refresh_cookie(resp: httpx.Response) -> str | None:
    """The rotated refresh token from ``Set-Cookie`` (read by hand: the cookie may be marked
    ``Secure`` for browsers while a CLI talks plain HTTP to a loopback server)."""
    for header in resp.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        if REFRESH_COOKIE in jar and jar[REFRESH_COOKIE].value:
            return jar[REFRESH_COOKIE].value
    return None


class AuthState:
    """Which server, which token, and whether it can be refreshed (stored logins can;
    ``HPCGATE_TOKEN`` cannot)."""

    def __init__(self, url: str | None, token: str | None, store: CredentialStore | None) -> None:
        self.store = store if store is not None else CredentialStore()
        env_url = os.environ.get(ENV_URL)
        self.url = normalize_url(url or env_url or self.store.current_url() or DEFAULT_URL)
        self.fixed_token = token or os.environ.get(ENV_TOKEN) or None
        self.login: Login | None = None if self.fixed_token else self.store.get(self.url)

    def headers(self, with_auth: bool) -> dict[str, str]:
        if not with_auth:
            return {}
        token = self.fixed_token or (self.login.access_token if self.login else None)
        if not token:
            raise NotLoggedIn(f"not logged in to {self.url}: run `hpcgate login` first")
        return {"Authorization": f"Bearer {token}"}

    def should_refresh(self) -> bool:
        return bool(
            self.fixed_token is None
            and self.login is not None
            and self.login.refresh_token
            and self.login.expires_soon()
        )

    def can_refresh(self) -> bool:
        return bool(self.fixed_token is None and self.login and self.login.refresh_token)

    def adopt_stored(self) -> bool:
        """Under the lock: did another process refresh already? Then use its token."""
        stored = self.store.get(self.url)
        if (
            stored is not None
            and self.login is not None
            and stored.access_token != self.login.access_token
            and not stored.expires_soon()
        ):
            self.login = stored
            return True
        if stored is not None:
            self.login = stored
        return False

    def refresh_op(self) -> Op[Token]:
        cookie = self.login.refresh_token if self.login else None
        if not cookie:
            raise NotLoggedIn(f"no refresh token for {self.url}: run `hpcgate login`")
        return Op(
            "POST",
            "/auth/refresh",
            model(Token),
            auth=False,
            extra_headers={"Cookie": f"{REFRESH_COOKIE}={cookie}"},
        )

    def accept(self, token: Token, resp: httpx.Response, email: str | None = None) -> Login:
        """Store a new access token (and the rotated cookie) for this server."""
        login = Login(
            url=self.url,
            access_token=token.access_token,
            expires_at=time.time() + token.expires_in,
            refresh_token=refresh_cookie(resp)
            or (self.login.refresh_token if self.login else None),
            email=email or token.user.email,
        )
        self.login = login
        self.fixed_token = None
        self.store.put(login)
        return login

    def forget(self) -> None:
        self.login = None
        self.store.remove(self.url)

    def expired_error(self) -> NotLoggedIn:
        return NotLoggedIn(f"the login to {self.url} has expired: run `hpcgate login` again")


def check(resp: httpx.Response) -> None:
    if resp.status_code >= 400:
        raise api_error(resp)


# ------------------------------------------------------------------ calls both clients make


def create_op(body: CalculationCreate, files: Mapping[str, bytes] | None) -> Op[Any]:
    from hpcgate.client.models import CalculationDetail

    payload = body.model_dump(mode="json")
    if files:
        return Op(
            "POST",
            "/calculations/upload",
            model(CalculationDetail),
            files=dict(files),
            form={"calculation": json.dumps(payload)},
        )
    return Op("POST", "/calculations", model(CalculationDetail), json=payload)


class SseParser:
    """Server-Sent Events, line by line (the ``/logs/stream`` format): yields complete
    ``(event, data, id)`` triples; comments (keepalives) are dropped."""

    def __init__(self) -> None:
        self.event = "message"
        self.data: list[str] = []
        self.last_id: str | None = None

    def feed(self, line: str) -> tuple[str, str, str | None] | None:
        if line == "":
            if not self.data:
                self.event = "message"
                return None
            out = (self.event, "\n".join(self.data), self.last_id)
            self.event, self.data = "message", []
            return out
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id":
            self.last_id = value
        return None


def log_line(data: str) -> LogLine:
    try:
        return LogLine.model_validate_json(data)
    except ValidationError as exc:
        raise ClientError(f"unexpected log event: {exc}") from None
