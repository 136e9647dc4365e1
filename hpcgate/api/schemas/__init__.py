"""Pydantic request/response models (never ORM objects in or out), one module per area.

Shared constrained types live here so every area rejects the same bad input the same way
(a 422 with a message, never a database error): no NUL characters (PostgreSQL text cannot
hold them) and bounded JSON documents.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, Field

MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 12


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _json_ok(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(str(key))
            _json_ok(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json_ok(item, depth + 1)
    elif isinstance(value, float) and value != value:  # NaN: not JSON
        raise ValueError("NaN is not allowed")


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    _json_ok(value)
    try:
        size = len(json.dumps(value, allow_nan=False))
    except ValueError as exc:
        raise ValueError("not representable as JSON (infinite number?)") from exc
    if size > MAX_JSON_BYTES:
        raise ValueError(f"larger than {MAX_JSON_BYTES} bytes of JSON")
    return value


# Free text without NUL characters.
SafeStr = Annotated[str, AfterValidator(_no_nul)]
# A JSON object stored as JSONB: bounded size and depth, no NUL, no NaN/Infinity.
JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
# Database ids (BIGINT): positive.
DbId = Annotated[int, Field(ge=1, le=2**63 - 1)]
