"""The client's one exception family: every failure a caller can act on, with the API's words."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Anything the client cannot do: the message is one line a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApiError(ClientError):
    """The API answered with an error (4xx/5xx); ``message`` is its own ``detail``."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        retry_after: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status_code})"


class NotLoggedIn(ClientError):
    """No token: neither HPCGATE_TOKEN nor a stored login for this server."""


class Unreachable(ClientError):
    """The server did not answer (refused, timed out, name unknown)."""
