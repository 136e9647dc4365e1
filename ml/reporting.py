"""Talking to the main API: the model registry, state reports, and calls made for a user.

The main API owns the ``ml_models`` rows (admins register models there) and the
``predictions`` table. The ML-API

* reads registrations and reports each model's state and health with its own API key
  (``X-API-Key: hpcg_...``, an ``ml_api`` key; ``MainApiClient``), and keeps the latest
  report per model until the main API accepted it (``StateReporter``): a main API that is
  down or restarting loses no state change, only delays it;
* forwards a user's own access token for what the user does (``UserForwarder``):
  registering a model. It never issues tokens. Predictions are stored with the ML-API's
  own key, naming the user (the main API takes them from that key or an admin only).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx

log = logging.getLogger(__name__)


class MainApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return str(body)[:200]


class MainApiClient:
    """The ML-API's own calls to the main API, authenticated with the ML-API key."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 10.0) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise MainApiError(f"main API unreachable at {self.base_url}: {exc}") from None
        if response.status_code in (401, 403):
            raise MainApiError(
                f"main API refused the ML-API key ({response.status_code}: {_detail(response)})",
                response.status_code,
            )
        return response

    def list_models(self) -> list[dict[str, Any]]:
        response = self._call("GET", "/ml-api/models")
        if response.status_code != 200:
            raise MainApiError(f"GET /ml-api/models: {response.status_code}", response.status_code)
        data = response.json()
        return list(data) if isinstance(data, list) else []

    def get_model(self, model_id: int) -> dict[str, Any] | None:
        response = self._call("GET", f"/ml-api/models/{model_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise MainApiError(
                f"GET /ml-api/models/{model_id}: {response.status_code} {_detail(response)}",
                response.status_code,
            )
        body: dict[str, Any] = response.json()
        return body

    def report_state(self, model_id: int, payload: dict[str, Any]) -> bool:
        """True when stored; False when the model is no longer registered (404)."""
        response = self._call("PUT", f"/ml-api/models/{model_id}/state", json=payload)
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise MainApiError(
                f"PUT /ml-api/models/{model_id}/state: {response.status_code} {_detail(response)}",
                response.status_code,
            )
        return True

    def healthy(self) -> bool:
        try:
            return self._http.get("/health", timeout=2).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._http.close()


class StateReporter:
    """Latest state per model, delivered to the main API; retried until accepted.

    ``submit`` replaces any undelivered report of the same model (only the newest state
    matters) and tries to deliver at once; ``flush`` retries what is left (the watchdog
    calls it every tick). Never raises: reporting must not stop the watchdog.
    """

    def __init__(self, client: MainApiClient | None) -> None:
        self.client = client
        self._pending: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self.last_error: str | None = None
        self.delivered = 0

    def submit(self, model_id: int, payload: dict[str, Any]) -> None:
        if self.client is None:
            return
        with self._lock:
            self._pending[model_id] = dict(payload)
        self.flush()

    def pending(self) -> dict[int, dict[str, Any]]:
        with self._lock:
            return dict(self._pending)

    def flush(self) -> int:
        """Deliver pending reports; the number still pending afterwards."""
        if self.client is None:
            return 0
        with self._send_lock:
            for model_id, payload in self.pending().items():
                try:
                    self.client.report_state(model_id, payload)
                except MainApiError as exc:
                    if self.last_error != str(exc):
                        log.warning("state report for model %s not delivered: %s", model_id, exc)
                    self.last_error = str(exc)
                    break  # the main API is down: keep the order, retry next tick
                with self._lock:
                    if self._pending.get(model_id) is payload:  # not replaced meanwhile
                        self._pending.pop(model_id, None)
                self.delivered += 1
                self.last_error = None
            with self._lock:
                return len(self._pending)


class UserForwarder:
    """Calls made on behalf of a user: with the user's own ``Authorization`` header, or
    (``authorization=None``) with the ML-API's key, for what only the ML-API may write."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout)
        self._api_key = api_key

    async def call(
        self, method: str, path: str, authorization: str | None, json: Any = None
    ) -> tuple[int, Any]:
        """``(status, body)``; (502, {...}) when the main API cannot be reached."""
        if authorization is None and self._api_key is None:
            return 503, {"detail": "the ML-API has no API key for the main API", "code": "no_key"}
        headers = (
            {"Authorization": authorization}
            if authorization is not None
            else {"X-API-Key": str(self._api_key)}
        )
        try:
            response = await self._http.request(method, path, json=json, headers=headers)
        except httpx.HTTPError as exc:
            return 502, {
                "detail": f"main API unreachable at {self.base_url}: {exc}",
                "code": "bad_gateway",
            }
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = {"detail": response.text[:500]}
        return response.status_code, body

    async def aclose(self) -> None:
        await self._http.aclose()
