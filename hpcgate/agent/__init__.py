"""The cluster agent (``hpcgate agent``): runs on a login node, pulls work with an API key.

It needs only ``scheduler_adapters``, the engine's cluster-side code and an HTTP client;
every state change is reported to (and committed by) the API before it is acted on.
"""
