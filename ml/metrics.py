"""The ML-API's Prometheus metrics, served by ``ml/routes/metrics.py`` (``docs/observability.md``).

Labels are bounded: route templates (never raw paths), model ids of *registered* models
(counted only once the model was found), status classes.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ML_REQUEST_SECONDS = Histogram(
    "hpcgate_ml_request_duration_seconds",
    "ML-API request latency, by method, route template and status class.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
ML_CONTAINER_RESTARTS = Counter(
    "hpcgate_ml_container_restarts_total",
    "Model containers restarted by the ML-API's watchdog (a crash or failed pings).",
    ["model"],
)
ML_INVOCATIONS = Counter(
    "hpcgate_ml_invocations_total",
    "Invocations forwarded to a model's container, by the container's status class.",
    ["model", "status"],
)
