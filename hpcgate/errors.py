"""One error hierarchy for the service; the API and the CLI map it in one place each."""

from __future__ import annotations

from typing import Any


class HpcgateError(Exception):
    status_code = 400
    code = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_body(self) -> dict[str, Any]:
        return {"detail": self.message, "code": self.code, **self.details}


class InvalidInput(HpcgateError):
    status_code = 422
    code = "invalid_input"


class NotFound(HpcgateError):
    status_code = 404
    code = "not_found"


class Unauthorized(HpcgateError):
    status_code = 401
    code = "unauthorized"


class Forbidden(HpcgateError):
    status_code = 403
    code = "forbidden"


class Conflict(HpcgateError):
    status_code = 409
    code = "conflict"


class TooLarge(HpcgateError):
    status_code = 413
    code = "too_large"


class RateLimited(HpcgateError):
    status_code = 429
    code = "rate_limited"


class ServiceBusy(HpcgateError):
    """A bounded resource (e.g. the input-preparation workers) stayed busy: retry later."""

    status_code = 503
    code = "busy"


class ConfigurationError(HpcgateError):
    """The service cannot start as configured (bad URL, default secret...)."""

    code = "configuration"
