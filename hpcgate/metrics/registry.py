"""Every metric hpcgate exports, defined once per process.

Names follow Prometheus conventions (``_seconds``, ``_total``); label values are bounded
sets (route templates, tick names, cluster ids), never user input, so a hostile client
cannot grow the series count.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Request latency buckets: agents' polls are milliseconds, long-polls up to 25 s.
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUEST_SECONDS = Histogram(
    "hpcgate_http_request_duration_seconds",
    "API request latency, by method, route template and status class.",
    ["method", "route", "status"],
    buckets=_LATENCY,
)
TICK_SECONDS = Histogram(
    "hpcgate_tick_duration_seconds",
    "Duration of a periodic tick of the worker or the agent.",
    ["process", "tick"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0),
)
TICK_FAILURES = Counter(
    "hpcgate_tick_failures_total",
    "Ticks that raised (the tick runs again at its next interval).",
    ["process", "tick"],
)
DISPATCH_LAG_SECONDS = Histogram(
    "hpcgate_dispatch_lag_seconds",
    "From a calculation becoming dispatchable (created or approved) to its submission.",
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
)
HARVEST_LAG_SECONDS = Histogram(
    "hpcgate_harvest_lag_seconds",
    "From a job's end (as the scheduler reports it) to hpcgate recording the step's state.",
    buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0),
)
RECOVERY_ATTEMPTS = Counter(
    "hpcgate_recovery_attempts_total",
    "Retries scheduled by the recovery ladder (issue 17), by code and the verdict retried.",
    ["code", "verdict"],
)
