"""The ML-API's errors and how every error becomes a JSON answer.

The same body as the main API's (``{"detail", "code", ...}``): clients handle both alike.
The ML-API has no database, so only ``HpcgateError`` and request validation need mapping.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from hpcgate.errors import HpcgateError


class ServiceUnavailable(HpcgateError):
    status_code = 503
    code = "unavailable"


class GatewayTimeout(HpcgateError):
    status_code = 504
    code = "timeout"


class BadGateway(HpcgateError):
    status_code = 502
    code = "bad_gateway"


class ModelFailed(HpcgateError):
    """``run`` could not bring the model up; the body carries the model's state."""

    status_code = 503
    code = "model_failed"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HpcgateError)
    async def _hpcgate(_: Request, exc: HpcgateError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
        if isinstance(exc.details.get("retry_after"), int):
            headers["Retry-After"] = str(exc.details["retry_after"])
        return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        body = {
            "detail": f"{where}: {first['msg']}" if where else str(first["msg"]),
            "code": "invalid_input",
            "errors": errors,
        }
        return JSONResponse(body, status_code=422)
