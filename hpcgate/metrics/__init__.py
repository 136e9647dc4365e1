"""Prometheus metrics of the API, the worker and the agent (``docs/observability.md``).

``registry.py`` defines every metric once (process-wide, as Prometheus clients expect);
``asgi.py`` times API requests; ``exporter.py`` serves a worker's or an agent's metrics.
Nothing here imports the server's database layer, so the slim agent ships it.
"""
