"""Binary input files over HTTP: upload once by content, or with the calculation that uses them.

* ``POST /inputs`` — multipart, one part per file (the part's filename is the input's name);
  answers ``{name, sha256, size}`` per file. A client uploads an electrode once and refers
  to it by hash in any number of calculations: ``configuration.binary_inputs = {name: sha}``.
* ``POST /calculations/upload`` — multipart, a ``calculation`` field holding exactly the JSON
  body of ``POST /calculations``, plus any number of file parts, which are added to its
  ``configuration.binary_inputs``. One request, one transaction: a refused calculation
  stores none of its files.
* ``GET /calculations/{id}/binary-inputs/{name}`` — a binary input's bytes, streamed.

Both check ``settings.inputs`` limits while the body streams in (``api/uploads.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from hpcgate.api.deps import CurrentUser, SessionDep, SettingsDep
from hpcgate.api.routes.calculations import created_detail, new_calculation
from hpcgate.api.schemas.calculations import CalculationCreate, CalculationDetail
from hpcgate.api.uploads import ReceivedUpload, Upload
from hpcgate.db.models import User
from hpcgate.errors import InvalidInput, NotFound, TooLarge
from hpcgate.services import calculations as svc
from hpcgate.services.input_blobs import calculation_blob, read_chunks, store_blob
from hpcgate.settings import Settings

router = APIRouter(tags=["inputs"])

# The route's own body ceiling replaces the app-wide one (max_body_mb, for JSON): uploads
# are bounded by settings.inputs instead, checked while streaming (api/uploads.py).
_ROUTE_CEILING = 64 << 30


class StoredInput(BaseModel):
    name: str
    sha256: str
    size: int
    new: bool  # False: identical bytes were already stored (uploaded before)


class StoredInputs(BaseModel):
    files: list[StoredInput]


def _multipart(fields: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI description of a multipart body (the route parses it itself, streaming)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            **fields,
                            "file": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "input files; each part's filename is the "
                                "input's file name",
                            },
                        },
                        **({"required": list(fields)} if fields else {}),
                    }
                }
            },
        }
    }


def _store_all(session: Session, upload: Upload, user_id: int) -> list[StoredInput]:
    out = []
    for f in upload.files:
        with f.open() as fh:
            new = store_blob(session, fh, f.sha256, f.size, user_id)
        out.append(StoredInput(name=f.name, sha256=f.sha256, size=f.size, new=new))
    return out


def _release(session: Session) -> None:
    """End the authentication query's transaction: no pooled connection is held while a
    large body streams in."""
    session.rollback()


@router.post(
    "/inputs",
    response_model=StoredInputs,
    status_code=201,
    max_body_size=_ROUTE_CEILING,
    openapi_extra=_multipart({}),
)
async def upload_inputs(
    request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> StoredInputs:
    """Store input files by content (sha256); reference them in ``binary_inputs``."""
    user_id = user.id
    await run_in_threadpool(_release, session)
    async with ReceivedUpload(request, settings, frozenset()) as upload:
        if not upload.files:
            raise InvalidInput("no files: send each file as a multipart part with a filename")
        stored = await run_in_threadpool(_store_all, session, upload, user_id)
    return StoredInputs(files=stored)


def _calculation_body(upload: Upload) -> CalculationCreate:
    raw = upload.fields.get("calculation")
    if raw is None:
        raise InvalidInput(
            "the 'calculation' form field is missing: it holds the JSON of POST /calculations"
        )
    try:
        return CalculationCreate.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidInput(
            f"calculation: {where + ': ' if where else ''}{first.get('msg', 'invalid')}"
        ) from None


def _create(
    session: Session, user_id: int, body: CalculationCreate, upload: Upload, settings: Settings
) -> CalculationDetail:
    config = dict(body.configuration)
    refs = config.get("binary_inputs") or {}
    if not isinstance(refs, dict):
        raise InvalidInput("'binary_inputs' must be an object mapping file names to sha256 hashes")
    refs = dict(refs)
    for f in upload.files:
        if f.name in refs:
            raise InvalidInput(f"file {f.name!r} is both uploaded and listed in 'binary_inputs'")
        refs[f.name] = f.sha256
    if upload.total_bytes > settings.inputs.max_calculation_bytes:  # also checked while streaming
        raise TooLarge("the uploaded files exceed the limit per calculation")
    config["binary_inputs"] = refs
    body = body.model_copy(update={"configuration": config})
    user = session.get(User, user_id)
    if user is None:  # deleted while uploading
        raise InvalidInput("your account no longer exists")
    _store_all(session, upload, user_id)
    calc = svc.create_calculation(session, user, new_calculation(body), settings)
    session.refresh(calc)
    return created_detail(calc, session)


@router.post(
    "/calculations/upload",
    response_model=CalculationDetail,
    status_code=201,
    max_body_size=_ROUTE_CEILING,
    openapi_extra=_multipart(
        {
            "calculation": {
                "type": "string",
                "description": "the JSON body of POST /calculations",
            }
        }
    ),
)
async def create_calculation_with_files(
    request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep
) -> CalculationDetail:
    """``POST /calculations`` with its binary input files in the same (multipart) request."""
    user_id = user.id
    await run_in_threadpool(_release, session)
    async with ReceivedUpload(request, settings, frozenset({"calculation"})) as upload:
        body = _calculation_body(upload)
        return await run_in_threadpool(_create, session, user_id, body, upload, settings)


@router.get(
    "/calculations/{calc_id}/binary-inputs/{file_name}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_binary_input(
    calc_id: int, file_name: str, user: CurrentUser, session: SessionDep, request: Request
) -> StreamingResponse:
    """A binary input file's bytes (every user reads every calculation, as for text inputs)."""
    svc.get_calculation(session, calc_id)
    row = calculation_blob(session, calc_id, file_name)
    if row is None:
        raise NotFound(f"calculation {calc_id} has no binary input file {file_name!r}")
    sha256, size = row
    factory: sessionmaker[Session] = request.app.state.sessionmaker

    def chunks() -> Iterator[bytes]:
        with factory() as s:  # its own session: the request's one ends before the stream
            yield from read_chunks(s, sha256, size)

    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(file_name)}",
            "X-Content-SHA256": sha256,
        },
    )
