"""Storing what a model answered, against a calculation, in the main API (``POST /predictions``).

Stored with the ML-API's own key, for the calling user: users cannot write predictions
themselves (they appear next to real results), so what is stored is what the model said.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from ml.reporting import UserForwarder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Invocation:
    """One proxied call: who asked which model, what was sent and what came back."""

    model_id: int
    calculation_id: int
    user_id: int
    content_type: str
    body: bytes
    upstream: httpx.Response


def as_record(raw: bytes, content_type: str, limit: int) -> dict[str, Any]:
    """What is stored in ``predictions.request``/``response``: the JSON object when it is
    one and fits, else a bounded text, else a digest."""
    if len(raw) > limit:
        return {"truncated": True, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    if "json" in content_type:
        with contextlib.suppress(ValueError):
            value = json.loads(raw)
            if isinstance(value, dict):
                return value
            return {"instances": value} if isinstance(value, list) else {"value": value}
    return {"text": raw.decode("utf-8", errors="replace").replace("\x00", "")}


async def store_prediction(
    forwarder: UserForwarder, call: Invocation, record_max_bytes: int
) -> dict[str, str]:
    """The response headers that say what happened: the new prediction's id, or the error."""
    record = {
        "model_id": call.model_id,
        "calculation_id": call.calculation_id,
        "user_id": call.user_id,
        "request": as_record(call.body, call.content_type, record_max_bytes),
        "response": as_record(
            call.upstream.content,
            call.upstream.headers.get("content-type", ""),
            record_max_bytes,
        ),
    }
    status, out = await forwarder.call("POST", "/predictions", None, record)
    if status == 201 and isinstance(out, dict) and "id" in out:
        return {"X-Hpcgate-Prediction-Id": str(out["id"])}
    detail = out.get("detail") if isinstance(out, dict) else out
    log.warning(
        "prediction for calculation %s not stored: %s %s", call.calculation_id, status, detail
    )
    text = f"{status}: {str(detail)[:200]}".replace("\n", " ").replace("\r", " ")
    return {"X-Hpcgate-Prediction-Error": text.encode("ascii", "replace").decode()}
