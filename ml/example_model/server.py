#!/usr/bin/env python3
"""The example model's server: SCF non-convergence risk of a pw.x input (standard library only).

Model contract (docs/models.md, the SageMaker bring-your-own-container convention):

* ``GET /ping`` on port 8080 -> 200 when the model is loaded and ready;
* ``POST /invocations`` -> the predictions.

Requests to ``/invocations``:

* ``Content-Type: application/json`` with ``{"instances": [...]}`` (or one bare instance),
  each instance either ``{"pw_input": "<text of a pw.x input>"}`` or the descriptors of
  ``features.DESCRIPTORS`` (missing ones take pw.x's defaults);
* ``Content-Type: text/plain``: the text of one pw.x input.

Answer: ``{"model", "version", "predictions": [{"p_not_converged", "converged", "risk",
"scf_iterations", "descriptors"}]}``. Bad input is a 400 with ``{"error": ...}``.

The model is plain coefficients in ``model.json`` (exported by ``train.py`` from
scikit-learn): no numpy in the image.

Test-only switches, active only when ``MODEL_TEST_SWITCHES=1`` (never set in production):
the file ``/tmp/hpcgate-fail-ping`` makes ``/ping`` answer 503, ``/tmp/hpcgate-hang-ping``
makes it hang for 60 s, ``MODEL_TEST_CRASH_AFTER_S=N`` makes the process exit with
code 3 N seconds after it starts, and ``MODEL_TEST_INVOKE_DELAY_S=N`` delays every
``/invocations`` answer by N seconds.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from features import InputError, describe, vectorize

PORT = int(os.environ.get("PORT", "8080"))
MODEL_PATH = Path(os.environ.get("MODEL_PATH", str(Path(__file__).resolve().parent / "model.json")))
MAX_BODY = 8 << 20
MAX_INSTANCES = 1000
TEST_SWITCHES = os.environ.get("MODEL_TEST_SWITCHES") == "1"
# test switches: files in the container's own /tmp, looked at only with MODEL_TEST_SWITCHES=1
FAIL_PING = Path("/tmp/hpcgate-fail-ping")  # noqa: S108
HANG_PING = Path("/tmp/hpcgate-hang-ping")  # noqa: S108
INVOKE_DELAY_S = float(os.environ.get("MODEL_TEST_INVOKE_DELAY_S") or 0)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Model:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.name = str(doc["name"])
        self.version = str(doc["version"])
        self.features = list(doc["features"])
        self.classifier: dict[str, Any] = doc["classifier"]
        self.iterations: dict[str, Any] | None = doc.get("iterations")
        self.bands: dict[str, float] = doc.get("risk_bands", {"low": 0.2, "high": 0.6})
        self.card = {k: v for k, v in doc.items() if k not in ("classifier", "iterations")}

    @staticmethod
    def _linear(part: dict[str, Any], x: list[float]) -> float:
        z = float(part["intercept"])
        for xi, m, s, c in zip(x, part["mean"], part["scale"], part["coef"], strict=True):
            z += (xi - m) / s * c
        return z

    def predict(self, desc: dict[str, Any]) -> dict[str, Any]:
        x = vectorize(desc)
        p = _sigmoid(self._linear(self.classifier, x))
        threshold = float(self.classifier.get("threshold", 0.5))
        out: dict[str, Any] = {
            "p_not_converged": round(p, 4),
            "converged": p < threshold,
            "risk": "low"
            if p < self.bands["low"]
            else "high"
            if p >= self.bands["high"]
            else "medium",
        }
        if self.iterations is not None:
            out["scf_iterations"] = round(math.exp(self._linear(self.iterations, x)), 1)
        out["descriptors"] = desc
        return out


def _instance_descriptors(item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return dict(describe(item))
    if not isinstance(item, dict):
        raise InputError("each instance must be an object or the text of a pw.x input")
    if "pw_input" in item:
        return dict(describe(item["pw_input"]))
    return dict(item)


class Handler(BaseHTTPRequestHandler):
    server_version = "hpcgate-example-model/1"
    protocol_version = "HTTP/1.1"  # keep-alive: the ML-API proxy reuses connections
    # headers and body leave in two writes: without TCP_NODELAY, Nagle + the client's
    # delayed ACK add ~40 ms to every keep-alive answer
    disable_nagle_algorithm = True
    model: Model

    def _send(self, code: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/ping":
            if TEST_SWITCHES and HANG_PING.exists():
                time.sleep(60)
            if TEST_SWITCHES and FAIL_PING.exists():
                return self._send(503, {"status": "failing (test switch)"})
            return self._send(
                200, {"status": "ok", "model": self.model.name, "version": self.model.version}
            )
        if self.path == "/model":
            return self._send(200, self.model.card)
        self._send(404, {"error": f"no route GET {self.path}"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            return self._send(413, {"error": f"body larger than {MAX_BODY} bytes"})
        raw = self.rfile.read(length)
        if self.path != "/invocations":
            return self._send(404, {"error": f"no route POST {self.path}"})
        if TEST_SWITCHES and INVOKE_DELAY_S > 0:
            time.sleep(INVOKE_DELAY_S)
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        try:
            if ctype == "text/plain":
                instances: list[Any] = [raw.decode("utf-8", errors="replace")]
            elif ctype == "application/json":
                data = json.loads(raw or b"null")
                if isinstance(data, dict) and "instances" in data:
                    data = data["instances"]
                instances = data if isinstance(data, list) else [data]
            else:
                return self._send(
                    415,
                    {
                        "error": f"unsupported content type {ctype!r}: "
                        "send application/json or text/plain"
                    },
                )
            if not instances or len(instances) > MAX_INSTANCES:
                raise InputError(f"send between 1 and {MAX_INSTANCES} instances")
            predictions = [self.model.predict(_instance_descriptors(i)) for i in instances]
        except json.JSONDecodeError as exc:
            return self._send(400, {"error": f"invalid JSON: {exc.msg}"})
        except InputError as exc:
            return self._send(400, {"error": str(exc)})
        self._send(
            200,
            {"model": self.model.name, "version": self.model.version, "predictions": predictions},
        )

    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def main() -> None:
    Handler.model = Model(json.loads(MODEL_PATH.read_text()))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1 ignores SIGTERM otherwise
    crash_after = os.environ.get("MODEL_TEST_CRASH_AFTER_S")
    if TEST_SWITCHES and crash_after:
        timer = threading.Timer(float(crash_after), lambda: os._exit(3))
        timer.daemon = True
        timer.start()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)  # noqa: S104 - inside a container
    server.daemon_threads = True
    print(f"model {Handler.model.name} {Handler.model.version} listening on :{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
