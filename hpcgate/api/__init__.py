"""The HTTP API (FastAPI): portal, CLI, agents and the ML-API all talk to it."""
