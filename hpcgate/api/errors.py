"""The one place that turns errors into HTTP responses: JSON bodies, never a bare 500 for input."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError

from hpcgate.domain.states import IllegalTransition
from hpcgate.errors import HpcgateError

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HpcgateError)
    async def _hpcgate(_: Request, exc: HpcgateError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
        if isinstance(exc.details.get("retry_after"), int):  # a 429 says when to come back
            headers["Retry-After"] = str(exc.details["retry_after"])
        return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(IllegalTransition)
    async def _illegal(_: Request, exc: IllegalTransition) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "code": "illegal_transition"}, status_code=409)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body")
        return JSONResponse(
            {
                "detail": f"{where}: {first['msg']}" if where else str(first["msg"]),
                "code": "invalid_input",
                "errors": errors,
            },
            status_code=422,
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error: %s", exc.orig)
        return JSONResponse(
            {"detail": "conflicts with existing data", "code": "conflict"}, status_code=409
        )

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        log.info("data error: %s", exc.orig)
        return JSONResponse(
            {"detail": "a value is out of range or malformed", "code": "invalid_input"},
            status_code=422,
        )
